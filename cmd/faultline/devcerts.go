package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline/faultline/collectors/auditwebhook"
	"github.com/faultline/faultline/internal/tlsutil"
)

func newDevCertsCommand() *cobra.Command {
	var (
		dir       string
		hosts     []string
		url       string
		validity  time.Duration
		overwrite bool
	)
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Write a self-signed CA, certificates and a token for the audit webhook, and print how to wire them",
		Long: `certs writes what the audit webhook receiver and the API server need to talk
over HTTPS with authentication, for development and tests (production brings
its own certificates, e.g. from cert-manager):

  ca.crt, ca.key                  a self-signed CA
  tls.crt, tls.key                the receiver's serving certificate for --host
  apiserver-client.crt, .key      a client certificate for the API server (CN kube-apiserver)
  token                           a random bearer token for the API server
  webhook-kubeconfig.yaml         the API server's --audit-webhook-config-file:
                                  --url, the CA, the token and the client certificate

and prints the CA and the settings that use them. Existing files are kept
unless --force.`,
		Example: `  faultline dev certs
  faultline run --config faultline.yaml     # with the printed collectors.audit_webhook settings
  faultline dev cluster --audit-webhook-ca-file data/dev-certs/ca.crt --audit-webhook-token-file data/dev-certs/token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			abs, err := filepath.Abs(dir)
			if err != nil {
				return fmt.Errorf("dev certs: %w", err)
			}
			files, err := writeDevCerts(abs, hosts, url, validity, overwrite)
			if err != nil {
				if errors.Is(err, fs.ErrExist) {
					return exitError{code: 2, err: fmt.Errorf("dev certs: %w (use --force to replace)", err)}
				}
				return fmt.Errorf("dev certs: %w", err)
			}
			out := cmd.OutOrStdout()
			listen, path := listenAndPath(url)
			fmt.Fprintf(out, "Wrote %s\n\nCA certificate (certificate-authority-data of the webhook kubeconfig, base64 of this):\n\n%s\n",
				strings.Join(files.list(), "\n      "), files.caPEM)
			fmt.Fprintf(out, `Receiver settings (faultline.yaml):

  collectors:
    audit_webhook:
      enabled: true
      listen: %q
      path: %s
      tls_cert_file: %s
      tls_key_file: %s
      token_file: %s
      client_ca_file: %s

API server flags:

  --audit-policy-file=<policy, e.g. deploy/audit/policy.yaml>
  --audit-webhook-config-file=%s
  --audit-webhook-mode=batch

Or the local control plane of 'faultline dev cluster':

  faultline dev cluster --audit-webhook-url %s --audit-webhook-ca-file %s --audit-webhook-token-file %s
`, listen, path, files.cert, files.key, files.token, files.ca, files.kubeconfig, url, files.ca, files.token)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", filepath.Join("data", "dev-certs"), "directory to write the files to")
	f.StringSliceVar(&hosts, "host", []string{"127.0.0.1", "localhost", "::1"}, "DNS names and IP addresses of the serving certificate (repeat or comma-separate)")
	f.StringVar(&url, "url", "https://127.0.0.1:9443"+auditwebhook.DefaultPath, "the receiver's URL as the API server reaches it, for the webhook kubeconfig")
	f.DurationVar(&validity, "validity", tlsutil.DefaultValidity, "how long the certificates are valid")
	f.BoolVar(&overwrite, "force", false, "replace existing files")
	cmd.Flags().SortFlags = false
	return cmd
}

type devCertFiles struct {
	ca, caKey, cert, key, clientCert, clientKey, token, kubeconfig string
	caPEM                                                          []byte
}

func (f devCertFiles) list() []string {
	return []string{f.ca, f.caKey, f.cert, f.key, f.clientCert, f.clientKey, f.token, f.kubeconfig}
}

// writeDevCerts writes the development CA, key pairs, token and webhook
// kubeconfig into dir.
func writeDevCerts(dir string, hosts []string, url string, validity time.Duration, overwrite bool) (devCertFiles, error) {
	f := devCertFiles{
		ca: filepath.Join(dir, "ca.crt"), caKey: filepath.Join(dir, "ca.key"),
		cert: filepath.Join(dir, "tls.crt"), key: filepath.Join(dir, "tls.key"),
		clientCert: filepath.Join(dir, "apiserver-client.crt"), clientKey: filepath.Join(dir, "apiserver-client.key"),
		token: filepath.Join(dir, "token"), kubeconfig: filepath.Join(dir, "webhook-kubeconfig.yaml"),
	}
	if !overwrite {
		for _, p := range f.list() {
			if _, err := os.Stat(p); err == nil {
				return f, fmt.Errorf("%s: %w", p, fs.ErrExist)
			}
		}
	}
	ca, err := tlsutil.NewCA("faultline-dev-ca", validity)
	if err != nil {
		return f, err
	}
	serving, err := ca.Serving(hosts, validity)
	if err != nil {
		return f, err
	}
	client, err := ca.Client("kube-apiserver", nil, validity)
	if err != nil {
		return f, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return f, fmt.Errorf("token: %w", err)
	}
	token := hex.EncodeToString(raw[:])
	kubeconfig, err := auditwebhook.WebhookKubeconfig{URL: url, CAPEM: ca.CertPEM, Token: token,
		ClientCertFile: f.clientCert, ClientKeyFile: f.clientKey}.Render()
	if err != nil {
		return f, err
	}
	for _, w := range []struct {
		cert, key       string
		certPEM, keyPEM []byte
	}{
		{f.ca, f.caKey, ca.CertPEM, ca.KeyPEM},
		{f.cert, f.key, serving.CertPEM, serving.KeyPEM},
		{f.clientCert, f.clientKey, client.CertPEM, client.KeyPEM},
	} {
		if err := tlsutil.WriteFiles(w.cert, w.certPEM, w.key, w.keyPEM, overwrite); err != nil {
			return f, err
		}
	}
	if err := tlsutil.WriteFile(f.token, []byte(token+"\n"), 0o600, overwrite); err != nil {
		return f, err
	}
	if err := tlsutil.WriteFile(f.kubeconfig, kubeconfig, 0o600, overwrite); err != nil {
		return f, err
	}
	f.caPEM = ca.CertPEM
	return f, nil
}

// listenAndPath derives the receiver's listen address and path from the
// URL the API server uses.
func listenAndPath(raw string) (listen, path string) {
	listen, path = auditwebhook.DefaultListen, auditwebhook.DefaultPath
	u, err := neturl.Parse(raw)
	if err != nil {
		return listen, path
	}
	if p := u.Port(); p != "" {
		listen = ":" + p
	}
	if u.Path != "" {
		path = u.Path
	}
	return listen, path
}
