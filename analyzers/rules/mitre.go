package rules

// techniqueNames are the ATT&CK technique names of the ids the default
// rules use, so findings carry threat.technique.name. An id not listed here
// is kept without a name.
var techniqueNames = map[string]string{
	"T1021":     "Remote Services",
	"T1036.005": "Masquerading: Match Legitimate Name or Location",
	"T1046":     "Network Service Discovery",
	"T1059":     "Command and Scripting Interpreter",
	"T1059.004": "Command and Scripting Interpreter: Unix Shell",
	"T1069":     "Permission Groups Discovery",
	"T1070":     "Indicator Removal",
	"T1078":     "Valid Accounts",
	"T1078.001": "Valid Accounts: Default Accounts",
	"T1078.004": "Valid Accounts: Cloud Accounts",
	"T1090":     "Proxy",
	"T1098":     "Account Manipulation",
	"T1098.006": "Account Manipulation: Additional Container Cluster Roles",
	"T1105":     "Ingress Tool Transfer",
	"T1133":     "External Remote Services",
	"T1134":     "Access Token Manipulation",
	"T1136":     "Create Account",
	"T1190":     "Exploit Public-Facing Application",
	"T1204.003": "User Execution: Malicious Image",
	"T1528":     "Steal Application Access Token",
	"T1543":     "Create or Modify System Process",
	"T1550.001": "Use Alternate Authentication Material: Application Access Token",
	"T1552":     "Unsecured Credentials",
	"T1552.001": "Unsecured Credentials: Credentials In Files",
	"T1552.005": "Unsecured Credentials: Cloud Instance Metadata API",
	"T1552.007": "Unsecured Credentials: Container API",
	"T1557":     "Adversary-in-the-Middle",
	"T1562.001": "Impair Defenses: Disable or Modify Tools",
	"T1565":     "Data Manipulation",
	"T1572":     "Protocol Tunneling",
	"T1580":     "Cloud Infrastructure Discovery",
	"T1609":     "Container Administration Command",
	"T1610":     "Deploy Container",
	"T1611":     "Escape to Host",
	"T1613":     "Container and Resource Discovery",
	"T1649":     "Steal or Forge Authentication Certificates",
}

// TechniqueName returns the ATT&CK name of a technique id, or "".
func TechniqueName(id string) string { return techniqueNames[id] }
