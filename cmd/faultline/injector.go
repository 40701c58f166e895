package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/faultline/faultline/internal/app"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/internal/roles"
)

func newInjectorCommand() *cobra.Command {
	var flags *config.Flags
	cmd := &cobra.Command{
		Use:   "injector",
		Short: "Run the fault injector as its own process (a Deployment of replicas that share the commands)",
		Long: `injector takes signed fault commands from fl.fault.cmd.<cluster>.<fault>
(pod-kill, network-partition, resource-starvation) through a durable consumer
that its replicas share, checks every guard rail (trusted signature, fresh,
not replayed, allowed and opted-in namespace, blast radius, concurrent-fault
cap), records each fault's intent and revert in JetStream KV before changing
the cluster, and reverts it at its deadline, on an abort, at shutdown, or
when its experiment stops heartbeating. Every replica also takes over and
reverts the faults of a replica that died. Statuses go to
fl.fault.status.<cluster>.<experiment>. See docs/injectors.md.`,
		Example: `  faultline injector --config faultline.yaml
  faultline injector --bus.urls nats://nats:4222 --injectors.guard.allowed-namespaces shop,checkout`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.Load(os.Environ())
			if err != nil {
				return exitError{code: 2, err: err}
			}
			rt, err := app.Start(cmd.Context(), cfg, "injector", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			inj, err := roles.NewInjector(rt, version)
			if err != nil {
				rt.Abort()
				return err
			}
			return rt.Run(cmd.Context(), inj)
		},
	}
	flags = config.BindFlags(cmd.Flags())
	cmd.Flags().SortFlags = false
	return cmd
}
