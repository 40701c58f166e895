package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/faultline/faultline/internal/bench"
)

func newBenchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Faultline's paths against the bare library ceilings of this machine",
	}
	o := bench.BusOptions{}
	var asJSON bool
	busCmd := &cobra.Command{
		Use:   "bus",
		Short: "Publish envelopes through Faultline's bus and through a bare nats.go loop, and compare",
		Long: `bench bus starts an embedded NATS server with JetStream on file storage (in a
temporary directory unless --data-dir is given) and, in alternating rounds
on an emptied stream, publishes the same envelope bytes:

  - with a bare nats.go jetstream PublishAsync loop (the ceiling), and
  - through Faultline's publisher (bounded in flight, batch results, metrics),

both with a distinct Nats-Msg-Id per message and the same in-flight limit.
It prints each round and the ratio of the medians.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Out = cmd.OutOrStdout()
			if asJSON {
				o.Out = nil
			}
			o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			rep, err := bench.Bus(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(),
				"\n%d-byte messages, in-flight limit %d, %d rounds, %s, GOMAXPROCS=%d\nmedian bare nats.go: %.0f msg/s (%.1f MB/s)\nmedian faultline bus: %.0f msg/s (%.1f MB/s)\nratio: %.2f\n",
				rep.MessageBytes, o.Inflight, o.Rounds, transport(o.InProcess), runtime.GOMAXPROCS(0),
				rep.BareMedian, rep.BareMedian*float64(rep.MessageBytes)/1e6,
				rep.BusMedian, rep.BusMedian*float64(rep.MessageBytes)/1e6, rep.Ratio)
			return err
		},
	}
	f := busCmd.Flags()
	f.IntVar(&o.Messages, "messages", 200000, "messages per round")
	f.IntVar(&o.Size, "size", 1536, "approximate envelope size in bytes")
	f.IntVar(&o.Inflight, "inflight", 4096, "publishes in flight (both paths)")
	f.IntVar(&o.Rounds, "rounds", 3, "rounds per path, alternating")
	f.StringVar(&o.DataDir, "data-dir", "", "JetStream store directory (default: a temporary directory)")
	f.BoolVar(&o.InProcess, "in-process", false, "connect in-process instead of over loopback TCP")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.AddCommand(busCmd)
	cmd.AddCommand(newBenchAuditWebhookCommand())
	cmd.AddCommand(newBenchRulesCommand())
	return cmd
}

func transport(inProcess bool) string {
	if inProcess {
		return "in-process connection"
	}
	return "loopback TCP"
}
