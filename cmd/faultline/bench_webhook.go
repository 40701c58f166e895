package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/faultline/faultline/internal/bench"
)

func newBenchAuditWebhookCommand() *cobra.Command {
	o := bench.AuditWebhookOptions{}
	var asJSON bool
	var profile string
	cmd := &cobra.Command{
		Use:   "audit-webhook",
		Short: "Post recorded audit events to the audit webhook over HTTPS and compare with a bare nats.go loop",
		Long: `bench audit-webhook starts an embedded NATS server with JetStream on file
storage (in a temporary directory unless --data-dir is given) and the audit
webhook receiver on HTTPS with a bearer token, and in alternating rounds on an
emptied FL_AUDIT stream:

  - posts EventLists of --batch recorded audit events (--fixture, recorded from
    a real API server; every event gets a fresh auditID so all are stored) from
    --senders concurrent senders over one HTTP/2 connection, as the API
    server's batch backend does; each answer is 200 only once JetStream has
    acknowledged every event of the request;
  - publishes the same event bytes with a bare nats.go PublishAsync loop (the
    ceiling of this machine), with the same in-flight limit.

It prints events/s, MB/s of request bodies, request latency percentiles, and
the ratio of the medians. Run it from the repository root (or pass --fixture).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Out = cmd.OutOrStdout()
			if asJSON {
				o.Out = nil
			}
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					return fmt.Errorf("bench audit-webhook: %w", err)
				}
				defer f.Close()
				o.CPUProfile = f
			}
			o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelError}))
			rep, err := bench.AuditWebhook(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(),
				"\n%d events of %d bytes on average per request (%d bytes), %d senders, in-flight limit %d, %d rounds, %s, GOMAXPROCS=%d\n"+
					"median bare nats.go:   %.0f events/s\nmedian audit webhook: %.0f events/s (%.1f MB/s of request bodies), request latency p50 %.1f ms, p99 %.1f ms\nratio: %.2f\n",
				o.BatchSize, rep.EventBytes, rep.RequestBytes, o.Senders, o.Inflight, o.Rounds, transport(o.InProcess), runtime.GOMAXPROCS(0),
				rep.BareMedian, rep.WebhookMedian, rep.WebhookMedian*float64(rep.RequestBytes)/float64(o.BatchSize)/1e6,
				rep.P50Millis, rep.P99Millis, rep.Ratio)
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Events, "events", 200000, "events per round and path")
	f.IntVar(&o.BatchSize, "batch", 400, "events per request (the API server's --audit-webhook-batch-max-size default)")
	f.IntVar(&o.Senders, "senders", 4, "concurrent requests")
	f.IntVar(&o.Inflight, "inflight", 4096, "publishes in flight (both paths)")
	f.IntVar(&o.Rounds, "rounds", 3, "rounds per path, alternating")
	f.StringVar(&o.Fixture, "fixture", filepath.Join("test", "testdata", "kube", "audit-eventlist.json"), "EventList of recorded audit events")
	f.StringVar(&o.DataDir, "data-dir", "", "JetStream store directory (default: a temporary directory)")
	f.BoolVar(&o.InProcess, "in-process", false, "connect in-process instead of over loopback TCP")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.StringVar(&profile, "cpuprofile", "", "write a CPU profile of the webhook rounds to this file")
	return cmd
}
