package auditwebhook

import (
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// WebhookKubeconfig describes the file the API server's
// --audit-webhook-config-file names: where the receiver is and how the API
// server authenticates to it.
type WebhookKubeconfig struct {
	// URL of the receiver, e.g. https://faultline-audit.faultline.svc:9443/audit/webhook.
	URL string
	// CAPEM verifies the receiver's serving certificate (embedded as
	// certificate-authority-data).
	CAPEM []byte
	// Token is sent as a bearer token (one of the receiver's token_file).
	Token string
	// ClientCertFile and ClientKeyFile, when set, are the client
	// certificate the API server presents (paths on the API server's host).
	ClientCertFile, ClientKeyFile string
}

// Render returns the kubeconfig YAML.
func (w WebhookKubeconfig) Render() ([]byte, error) {
	if w.URL == "" {
		return nil, fmt.Errorf("audit webhook kubeconfig: no URL")
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["faultline"] = &clientcmdapi.Cluster{Server: w.URL, CertificateAuthorityData: w.CAPEM}
	cfg.AuthInfos["kube-apiserver"] = &clientcmdapi.AuthInfo{
		Token:             w.Token,
		ClientCertificate: w.ClientCertFile,
		ClientKey:         w.ClientKeyFile,
	}
	cfg.Contexts["faultline-audit"] = &clientcmdapi.Context{Cluster: "faultline", AuthInfo: "kube-apiserver"}
	cfg.CurrentContext = "faultline-audit"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("audit webhook kubeconfig: %w", err)
	}
	return b, nil
}
