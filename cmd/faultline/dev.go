package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/internal/testkube"
)

func newDevCommand() *cobra.Command {
	dev := &cobra.Command{
		Use:   "dev",
		Short: "Tools for trying Faultline by hand",
	}
	dev.AddCommand(newDevClusterCommand())
	dev.AddCommand(newDevCertsCommand())
	return dev
}

func newDevClusterCommand() *cobra.Command {
	var (
		dir             string
		binDir          string
		withControllers bool
		webhookURL      string
		webhookCAFile   string
		webhookToken    string
	)
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Run a local Kubernetes control plane whose audit webhook points at Faultline",
		Long: `cluster runs a real Kubernetes control plane on this machine — etcd,
kube-apiserver and, unless --with-controllers=false, kube-controller-manager and
kube-scheduler — built from Go modules by scripts/kube-build.sh (run it first;
the binaries are found through FAULTLINE_KUBE_BIN or the build cache). There is
no kubelet: pods are accepted and stay Pending.

It prints the admin kubeconfig (system:masters), a low-privilege kubeconfig
(no RBAC bindings) and the command that points kubectl at the cluster, and runs
until SIGINT or SIGTERM, then stops the scheduler and controller-manager, the
API server and etcd in that order. State, certificates, kubeconfigs, the audit
log and each binary's log live in --dir; etcd's data survives a restart,
certificates and tokens are made anew at every start.

Every API request is audited to <dir>/audit.log and sent to --audit-webhook-url
in batch mode: events leave at least every 200ms and no API request ever waits
for the webhook. A batch nobody listens for (connection refused) is dropped at
once; a timeout, a reset, or a 429 or 5xx answer is retried for about 4s before
the batch is dropped; either way the API server logs the error and the dropped
events to <dir>/logs/kube-apiserver.log. So the cluster works before the audit
collector listens, and the audit log keeps every event regardless.
--audit-webhook-url "" turns the webhook off.`,
		Example: `  scripts/kube-build.sh
  faultline dev cluster
  faultline dev cluster --dir /tmp/fl-dev --with-controllers=false
  faultline dev cluster --audit-webhook-ca-file collector-ca.crt --audit-webhook-token-file audit.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			opts := testkube.Options{
				BinDir:      binDir,
				Dir:         dir,
				Name:        "faultline-dev",
				Controllers: withControllers,
				DurableEtcd: true,
				StopGrace:   20 * time.Second,
				Logger:      logger,
			}
			if webhookURL != "" {
				w := &testkube.AuditWebhook{URL: webhookURL}
				if webhookCAFile != "" {
					b, err := os.ReadFile(webhookCAFile)
					if err != nil {
						return exitError{code: 2, err: fmt.Errorf("dev cluster: --audit-webhook-ca-file: %w", err)}
					}
					w.CAPEM = b
				}
				if webhookToken != "" {
					b, err := os.ReadFile(webhookToken)
					if err != nil {
						return exitError{code: 2, err: fmt.Errorf("dev cluster: --audit-webhook-token-file: %w", err)}
					}
					w.Token = strings.TrimSpace(string(b))
				}
				opts.AuditWebhook = w
			}

			logger.Info("dev cluster: starting", "dir", dir, "controllers", withControllers)
			c, err := testkube.Start(ctx, opts)
			if err != nil {
				if errors.Is(err, testkube.ErrNoBinaries) {
					return exitError{code: 2, err: fmt.Errorf("dev cluster: %w", err)}
				}
				return fmt.Errorf("dev cluster: %w", err)
			}
			printDevCluster(cmd, c, opts.AuditWebhook)

			<-ctx.Done()
			logger.Info("dev cluster: stopping")
			if err := c.Stop(); err != nil {
				return fmt.Errorf("dev cluster: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", filepath.Join("data", "dev-cluster"), "directory for the cluster's state, certificates, kubeconfigs and logs")
	f.BoolVar(&withControllers, "with-controllers", true, "also run kube-controller-manager and kube-scheduler (default ServiceAccounts, Deployments, Events)")
	f.StringVar(&webhookURL, "audit-webhook-url", "https://127.0.0.1:9443/audit/webhook", `where the API server sends audit events ("" for none)`)
	f.StringVar(&webhookCAFile, "audit-webhook-ca-file", "", "PEM CA that verifies the audit webhook's certificate (default: the system roots)")
	f.StringVar(&webhookToken, "audit-webhook-token-file", "", "file holding the bearer token the API server sends to the audit webhook")
	f.StringVar(&binDir, "kube-bin", "", "directory with the control-plane binaries (default: $FAULTLINE_KUBE_BIN, else the newest build of scripts/kube-build.sh)")
	cmd.Flags().SortFlags = false
	return cmd
}

func printDevCluster(cmd *cobra.Command, c *testkube.Cluster, w *testkube.AuditWebhook) {
	version := "unknown version"
	if client, err := kubernetes.NewForConfig(c.Admin.RESTConfig()); err == nil {
		if v, err := client.Discovery().ServerVersion(); err == nil {
			version = v.GitVersion
		}
	}
	webhook := "off"
	if w != nil {
		webhook = w.URL + " (batch mode: while nothing listens, batches are dropped and the audit log keeps them)"
	}
	controllers := "kube-controller-manager, kube-scheduler (no kubelet: pods stay Pending)"
	if !c.Controllers {
		controllers = "off (create each namespace's \"default\" ServiceAccount yourself before pods)"
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, `Kubernetes %s control plane is up at %s

  admin kubeconfig:          %s  (%s, system:masters)
  low-privilege kubeconfig:  %s  (%s, no RBAC bindings)
  audit log:                 %s
  audit webhook:             %s
  controllers:               %s
  state and logs:            %s

Point kubectl at it with:

  export KUBECONFIG=%s

Stop it with Ctrl-C.
`, version, c.Host,
		c.Admin.Kubeconfig, c.Admin.Name,
		c.User.Kubeconfig, c.User.Name,
		c.AuditLogPath, webhook, controllers, c.Dir,
		c.Admin.Kubeconfig)
}
