package testkube

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Identity is a user of the cluster, authenticated by a static bearer token.
type Identity struct {
	// Name is the user name the API server sees.
	Name string
	// Groups are the groups it is in, besides system:authenticated.
	Groups []string
	// Token is its bearer token.
	Token string
	// Kubeconfig is the path of a kubeconfig file for it.
	Kubeconfig string

	host  string
	caPEM []byte
}

// RESTConfig returns a new client configuration for the identity.
func (id Identity) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            id.host,
		BearerToken:     id.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), id.caPEM...)},
		QPS:             100,
		Burst:           200,
		UserAgent:       "faultline-testkube/" + id.Name,
	}
}

// writeKubeconfig writes a kubeconfig for a token user of the server.
func writeKubeconfig(path, server string, caPEM []byte, user, token, clusterName string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[clusterName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[user+"@"+clusterName] = &clientcmdapi.Context{Cluster: clusterName, AuthInfo: user}
	cfg.CurrentContext = user + "@" + clusterName
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// writeWebhookKubeconfig writes the kubeconfig-format file that tells the
// API server where to send audit events.
func writeWebhookKubeconfig(path string, w *AuditWebhook) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["audit-sink"] = &clientcmdapi.Cluster{Server: w.URL, CertificateAuthorityData: w.CAPEM}
	cfg.AuthInfos["kube-apiserver"] = &clientcmdapi.AuthInfo{
		Token:                 w.Token,
		ClientCertificateData: w.ClientCertPEM,
		ClientKeyData:         w.ClientKeyPEM,
	}
	cfg.Contexts["audit"] = &clientcmdapi.Context{Cluster: "audit-sink", AuthInfo: "kube-apiserver"}
	cfg.CurrentContext = "audit"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write audit webhook config %s: %w", path, err)
	}
	return nil
}
