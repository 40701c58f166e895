package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/faultline/faultline/internal/app"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/internal/roles"
)

func newRunCommand() *cobra.Command {
	var flags *config.Flags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run every role in one process (embedded NATS JetStream by default)",
		Long: `Run starts every Faultline role in one process. With no bus.urls configured it
starts an embedded NATS server with JetStream on file storage under --data-dir
(default ./data), so nothing needs to be installed first.

The operations endpoint (default http://127.0.0.1:9880) serves /metrics,
/healthz and /readyz. SIGINT or SIGTERM stops intake, drains work in flight,
flushes publishes and exits 0.

Every configuration field is a flag below, an environment variable
(FAULTLINE_*) and a key of the --config YAML file; see docs/configuration.md.`,
		Example: `  faultline run
  faultline run --data-dir /var/lib/faultline --log-format text
  faultline run --config faultline.yaml --bus.urls nats://nats-0:4222,nats://nats-1:4222 --bus.replicas 3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.Load(os.Environ())
			if err != nil {
				return exitError{code: 2, err: err}
			}
			rt, err := app.Start(cmd.Context(), cfg, "all", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			comps, err := roles.EnabledComponents(rt, version)
			if err != nil {
				rt.Abort()
				return err
			}
			return rt.Run(cmd.Context(), comps...)
		},
	}
	flags = config.BindFlags(cmd.Flags())
	cmd.Flags().SortFlags = false
	return cmd
}

func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check or print the configuration",
	}
	var checkFlags *config.Flags
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration (file, environment and flags) and exit",
		Long:  "check loads the configuration exactly as run does and lists every problem, each naming its field. Exit status 0 when valid, 2 otherwise.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := checkFlags.Load(os.Environ()); err != nil {
				return exitError{code: 2, err: err}
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "configuration is valid")
			return err
		},
	}
	checkFlags = config.BindFlags(check.Flags())
	example := &cobra.Command{
		Use:   "example",
		Short: "Print a configuration file with every default",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			y, err := config.ExampleYAML()
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), y)
			return err
		},
	}
	cmd.AddCommand(check, example)
	return cmd
}
