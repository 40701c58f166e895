package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/faultline/faultline/internal/app"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/internal/roles"
)

func newIndexCommand() *cobra.Command {
	var flags *config.Flags
	cmd := &cobra.Command{
		Use:   "index",
		Short: "Index results and events into Elasticsearch as their own process (a Deployment that scales as a consumer group)",
		Long: `index runs the Elasticsearch indexer against the configured bus. It checks
that the cluster answers and runs 8.x or 9.x (waiting up to
sinks.elasticsearch.start_timeout), installs its component and index
templates, then reads audit events, Kubernetes Events, findings,
deviations, experiment reports and fault statuses (sinks.elasticsearch.documents)
through durable JetStream consumers named index-<cluster>-<stream>, shared by
every replica, and writes them in bulk into the data streams
logs-kubernetes.audit_logs-<namespace>, logs-faultline.findings-<namespace>,
logs-faultline.experiments-<namespace> and logs-faultline.kevents-<namespace>.

A message is acknowledged only once its document is indexed (or found
already indexed); overload and outages are retried with backoff, and a
document Elasticsearch rejects goes to the dead letters with its reason.
See docs/elasticsearch.md.`,
		Example: `  faultline index --config faultline.yaml
  faultline index --sinks.elasticsearch.urls https://es.example:9200 \
    --sinks.elasticsearch.api-key-file /etc/faultline/es/api-key --bus.urls nats://nats:4222`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.Load(os.Environ())
			if err != nil {
				return exitError{code: 2, err: err}
			}
			if !cfg.Sinks.Elasticsearch.Enabled() {
				return exitError{code: 2, err: errors.New("index: sinks.elasticsearch.urls is not set")}
			}
			rt, err := app.Start(cmd.Context(), cfg, "index", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ix, err := roles.NewElasticsearchIndexer(rt)
			if err != nil {
				rt.Abort()
				return err
			}
			return rt.Run(cmd.Context(), ix)
		},
	}
	flags = config.BindFlags(cmd.Flags())
	cmd.Flags().SortFlags = false
	return cmd
}
