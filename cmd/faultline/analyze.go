package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/faultline/faultline/analyzers/rules"
	"github.com/faultline/faultline/analyzers/steadystate"
	"github.com/faultline/faultline/internal/app"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/internal/roles"
)

func newAnalyzeCommand() *cobra.Command {
	var flags *config.Flags
	names := make([]string, 0, len(roles.Analyzers()))
	for _, p := range roles.Analyzers() {
		names = append(names, p.Name)
	}
	names = append(names, steadystate.Name)
	cmd := &cobra.Command{
		Use:   "analyze [ANALYZER...]",
		Short: "Run the analyzers as their own process (a Deployment that scales as a consumer group)",
		Long: `analyze runs the enabled analyzers (or the ones named: ` + strings.Join(names, ", ") + `) against
the configured bus. Each analyzer reads audit events through a durable
JetStream consumer named after it and the cluster, so every replica of the
Deployment shares the events (a consumer group), and publishes its findings
on fl.finding.<cluster>.<analyzer>, acknowledging an event only once its
findings are stored. The steady-state analyzer evaluates the experiment runs
in progress (see docs/experiments.md).`,
		Example: `  faultline analyze --config faultline.yaml
  faultline analyze rules --bus.urls nats://nats:4222 --bus.replicas 3`,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if !slices.Contains(names, a) {
					return exitError{code: 2, err: fmt.Errorf("analyze: no analyzer %q (have %s)", a, strings.Join(names, ", "))}
				}
			}
			cfg, err := flags.Load(os.Environ())
			if err != nil {
				return exitError{code: 2, err: err}
			}
			rt, err := app.Start(cmd.Context(), cfg, "analyze", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var comps []app.Component
			for _, p := range roles.Analyzers() {
				if (len(args) == 0 && !p.Enabled(&cfg)) || (len(args) > 0 && !slices.Contains(args, p.Name)) {
					continue
				}
				r, err := roles.NewAnalyzer(rt, p)
				if err != nil {
					rt.Abort()
					return err
				}
				comps = append(comps, r)
			}
			if (len(args) == 0 && cfg.Analyzers.SteadyState.Enabled) || slices.Contains(args, steadystate.Name) {
				s, err := roles.NewSteadyState(rt, version)
				if err != nil {
					rt.Abort()
					return err
				}
				comps = append(comps, s)
			}
			if len(comps) == 0 {
				rt.Abort()
				return exitError{code: 2, err: fmt.Errorf("analyze: no analyzer enabled")}
			}
			return rt.Run(cmd.Context(), comps...)
		},
	}
	flags = config.BindFlags(cmd.Flags())
	cmd.Flags().SortFlags = false
	return cmd
}

func newRulesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Check and test detection rules",
	}
	var noDefault bool
	test := &cobra.Command{
		Use:   "test DIR...",
		Short: "Load the rules of DIR (with the default ruleset) and run the rule tests (*.test.yaml) under it",
		Long: `test compiles the default ruleset and the rule files (*.yaml) of each DIR
exactly as the analyzer does at start — a bad rule is reported with its file,
rule id and CEL error — and then runs every rule test file (*.test.yaml)
found under the DIRs. Exit status 0 when every case passes, 1 when one fails,
2 when the rules do not load. See docs/rules.md.`,
		Example: `  faultline rules test ./my-rules`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts rules.Options
			if !noDefault {
				opts.Sources = append(opts.Sources, rules.DefaultSource())
			}
			var files []string
			for _, d := range args {
				st, err := os.Stat(d)
				if err != nil {
					return exitError{code: 2, err: fmt.Errorf("rules test: %w", err)}
				}
				if !st.IsDir() {
					return exitError{code: 2, err: fmt.Errorf("rules test: %s is not a directory", d)}
				}
				opts.Sources = append(opts.Sources, rules.DirSource(d))
				fs, err := rules.FindTestFiles(d)
				if err != nil {
					return exitError{code: 2, err: err}
				}
				files = append(files, fs...)
			}
			results, err := rules.RunTests(opts, files)
			if err != nil {
				return exitError{code: 2, err: err}
			}
			out := cmd.OutOrStdout()
			failed := 0
			for _, r := range results {
				fmt.Fprintln(out, r.String())
				if !r.Passed() {
					failed++
				}
			}
			fmt.Fprintf(out, "%d passed, %d failed\n", len(results)-failed, failed)
			if failed > 0 {
				return exitError{code: 1, err: fmt.Errorf("rules test: %d of %d cases failed", failed, len(results))}
			}
			return nil
		},
	}
	test.Flags().BoolVar(&noDefault, "no-default", false, "do not load the embedded default ruleset")
	cmd.AddCommand(test)
	return cmd
}
