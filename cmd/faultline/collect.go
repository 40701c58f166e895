package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/faultline/faultline/internal/app"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/internal/roles"
)

func newCollectCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "collect",
		Short: "Run one collector as its own process (one Deployment per collector)",
		Long: `collect runs a single collector against the configured bus, whatever its
"enabled" setting says. In production each collector runs as its own
Deployment against an external NATS JetStream cluster (bus.urls).`,
	}
	for _, p := range roles.Collectors() {
		var flags *config.Flags
		sub := &cobra.Command{
			Use:   p.Name,
			Short: p.Short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := flags.Load(os.Environ())
				if err != nil {
					return exitError{code: 2, err: err}
				}
				rt, err := app.Start(cmd.Context(), cfg, "collector-"+p.Name, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				c, err := roles.NewCollector(rt, p, version)
				if err != nil {
					rt.Abort()
					return err
				}
				return rt.Run(cmd.Context(), c)
			},
		}
		flags = config.BindFlags(sub.Flags())
		sub.Flags().SortFlags = false
		cmd.AddCommand(sub)
	}
	return cmd
}
