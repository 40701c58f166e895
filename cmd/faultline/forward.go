package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/faultline/faultline/internal/app"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/internal/roles"
)

func newForwardCommand() *cobra.Command {
	var flags *config.Flags
	cmd := &cobra.Command{
		Use:   "forward",
		Short: "Forward findings (and other results) to Fluentd or Fluent Bit as their own process",
		Long: `forward runs the Fluentd forward sink against the configured bus. It reads
the kinds of documents in sinks.fluent.documents (findings by default) through
durable JetStream consumers named fluent-<cluster>-<stream>, shared by every
replica, and sends each as a Fluent Forward record tagged <tag_prefix>.<kind>
(faultline.finding, ...) to sinks.fluent.address: a Fluentd or Fluent Bit
forward input.

With delivery acknowledged (the default) a message is acknowledged on the
bus only once the receiver has answered its record's ack; a receiver outage
leaves the messages on the bus, retried with backoff. A full client buffer
refuses records (counted in faultline_fluent_records_total{result="overflow"})
instead of blocking. See docs/fluentd.md.`,
		Example: `  faultline forward --config faultline.yaml
  faultline forward --sinks.fluent.address fluent-bit.logging.svc:24224 --bus.urls nats://nats:4222`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.Load(os.Environ())
			if err != nil {
				return exitError{code: 2, err: err}
			}
			if !cfg.Sinks.Fluent.Enabled() {
				return exitError{code: 2, err: errors.New("forward: sinks.fluent.address is not set")}
			}
			rt, err := app.Start(cmd.Context(), cfg, "forward", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			f, err := roles.NewFluentForwarder(rt)
			if err != nil {
				rt.Abort()
				return err
			}
			return rt.Run(cmd.Context(), f)
		},
	}
	flags = config.BindFlags(cmd.Flags())
	cmd.Flags().SortFlags = false
	return cmd
}
