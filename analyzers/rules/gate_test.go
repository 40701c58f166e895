package rules

import "testing"

func TestGateOf(t *testing.T) {
	env, err := newEnv(map[string][]string{"x": {"a"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cond string
		want gate
	}{
		{`impersonated && impersonatedUser.username == "system:admin"`, gateImpersonated},
		{`!user.system && verb == "get"`, gateNotSystem},
		{`verb == "get" && (impersonated && !user.system)`, gateImpersonated | gateNotSystem},
		{`user.system && impersonated`, gateSystem | gateImpersonated},
		{`impersonated || user.system`, 0},        // a disjunction requires neither
		{`!(user.system && verb != "create")`, 0}, // nor a negated conjunction
		{`!impersonated`, 0},
		{`verb == "get"`, 0},
		{`"impersonated" in lists.x`, 0},
	}
	for _, tc := range tests {
		ast, iss := env.Compile(tc.cond)
		if iss.Err() != nil {
			t.Fatalf("%s: %v", tc.cond, iss.Err())
		}
		if got := gateOf(ast); got != tc.want {
			t.Errorf("gateOf(%s) = %b, want %b", tc.cond, got, tc.want)
		}
	}
}

// TestGatesOfTheDefaultRules: the default rules that start with the usual
// guards get their gates (which skip a CEL evaluation on most events).
func TestGatesOfTheDefaultRules(t *testing.T) {
	e, err := Compile(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]gate{
		"impersonation-privileged":       gateImpersonated,
		"wildcard-role":                  gateNotSystem,
		"rbac-changed-by-serviceaccount": gateNotSystem,
	} {
		if r := e.Rule(id); r == nil || r.gate != want {
			t.Errorf("rule %s: %+v, want gate %b", id, r, want)
		}
	}
}
