package main

import (
	"github.com/spf13/cobra"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "faultline",
		Short: "Event-streaming pipeline for Kubernetes security analytics and chaos experiments",
		Long: `Faultline collects Kubernetes API-server audit events, Kubernetes Events and
metrics onto NATS JetStream, runs analyzers over them to find security
anomalies and steady-state deviations, injects and reverts chaos faults, and
indexes the results in Elasticsearch.

Start everything in one process with an embedded NATS server:

  faultline run`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// subcommands
	root.AddCommand(newDevCommand())
	root.AddCommand(newVersionCommand())
	root.AddCommand(newRunCommand())
	root.AddCommand(newConfigCommand())
	root.AddCommand(newBenchCommand())
	root.AddCommand(newCollectCommand())
	root.AddCommand(newAnalyzeCommand(), newRulesCommand())
	root.AddCommand(newReplayCommand())
	root.AddCommand(newInjectorCommand(), newInjectCommand(), newFaultCommand())
	root.AddCommand(newExperimentCommand())
	root.AddCommand(newIndexCommand(), newForwardCommand())
	return root
}
