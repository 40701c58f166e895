package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline/faultline/analyzers/steadystate"
	"github.com/faultline/faultline/injectors/experiment"
	"github.com/faultline/faultline/injectors/runner"
	"github.com/faultline/faultline/injectors/signing"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/schemas"
)

func newExperimentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "experiment",
		Short: "Run chaos experiments: steady-state hypothesis, faults, automatic aborts, verdict and report",
	}
	cmd.AddCommand(newExperimentRunCommand(), newExperimentValidateCommand(), newExperimentAbortCommand(), newExperimentStatusCommand())
	return cmd
}

func readExperiment(path string) (*schemas.Experiment, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	e, err := schemas.ParseExperiment(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return e, nil
}

func newExperimentValidateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check an experiment file and list every problem with its field",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := readExperiment(args[0])
			if err != nil {
				return exitError{code: 2, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "experiment %s is valid: %d indicators, %d faults over %v after a %v warmup\n",
				e.Name, len(e.SteadyState), len(e.Method), e.MethodDuration(), e.Warmup.Std())
			return nil
		},
	}
}

func newExperimentRunCommand() *cobra.Command {
	var flags *config.Flags
	var keyFile, reportFile string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run an experiment and print its verdict: passed, deviated, aborted or failed",
		Long: `run records the experiment run for the steady-state analyzer, keeps its
heartbeat (if this command dies, the injectors revert its faults after the
file's heartbeat_timeout), watches the steady state for the warmup and
refuses to inject anything if it does not hold, then publishes the method's
faults (signed with --key) on schedule and follows every evaluation and
fault. The run stops at once when the analyzer aborts it (a deviation after
the hysteresis, a telemetry gap, a finding in the experimental group) or on
Ctrl-C; every fault is reverted before the command ends.

The report (JSON: verdict, timeline, each indicator's evaluations per group,
the faults) goes to --report and to the bus. Exit status: 0 passed, 1
deviated, aborted or failed, 2 for a bad file or flags. --dry-run sends the
faults as dry runs and prints what the injectors would do.`,
		Example: `  faultline experiment run checkout-pod-kill.yaml --key issuer.nk --bus.urls nats://127.0.0.1:4222 --report report.json
  faultline experiment run checkout-pod-kill.yaml --key issuer.nk --dry-run`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := readExperiment(args[0])
			if err == nil && keyFile == "" {
				err = errors.New("--key (or FAULTLINE_SIGNING_KEY_FILE) is required: injectors accept only signed commands")
			}
			if err != nil {
				return exitError{code: 2, err: fmt.Errorf("experiment run: %w", err)}
			}
			kp, err := signing.LoadSeed(keyFile)
			if err != nil {
				return exitError{code: 2, err: fmt.Errorf("experiment run: %w", err)}
			}
			b, _, cfg, err := faultClient(cmd, flags, "experiment run")
			if err != nil {
				return err
			}
			defer closeBus(b)
			o := experiment.Options{Experiment: e, Bus: b, Cluster: cfg.Cluster, Key: kp, Progress: cmd.ErrOrStderr()}
			if dryRun {
				plans, err := experiment.DryRun(cmd.Context(), o, 15*time.Second)
				if err != nil {
					return err
				}
				refused := 0
				for i, st := range plans {
					fmt.Fprintf(cmd.OutOrStdout(), "step %s: %s", e.Method[i].Name, st.Phase)
					if st.Phase == schemas.PhaseRefused {
						refused++
						fmt.Fprintf(cmd.OutOrStdout(), " (%s): %s\n", st.ReasonCode, st.Reason)
						continue
					}
					fmt.Fprintf(cmd.OutOrStdout(), ": %s\n", refsOf(st.Affected))
					for _, s := range st.RevertSteps {
						fmt.Fprintf(cmd.OutOrStdout(), "    revert: %s\n", s)
					}
					for _, w := range st.Warnings {
						fmt.Fprintf(cmd.OutOrStdout(), "    note: %s\n", w)
					}
				}
				if refused > 0 {
					return exitError{code: 1, err: fmt.Errorf("experiment run --dry-run: %d of %d steps would be refused", refused, len(plans))}
				}
				return nil
			}
			rep, err := experiment.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if reportFile != "" {
				data, err := json.MarshalIndent(rep, "", "  ")
				if err == nil {
					err = os.WriteFile(reportFile, append(data, '\n'), 0o644)
				}
				if err != nil {
					return fmt.Errorf("experiment run: write report: %w", err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s", rep.RunID, rep.Verdict)
			if rep.Reason != "" {
				fmt.Fprintf(cmd.OutOrStdout(), ": %s", rep.Reason)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			if rep.Verdict != experiment.VerdictPassed {
				return exitError{code: 1, err: fmt.Errorf("experiment %s: %s", rep.RunID, rep.Verdict)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", os.Getenv("FAULTLINE_SIGNING_KEY_FILE"), "NKey seed file to sign the faults with ($FAULTLINE_SIGNING_KEY_FILE)")
	cmd.Flags().StringVar(&reportFile, "report", "", "write the report (JSON) to this file")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "send the faults as dry runs and print the injectors' plans")
	flags = config.BindFlags(cmd.Flags())
	return cmd
}

func refsOf(objs []schemas.ObjectRef) string {
	s := make([]string, len(objs))
	for i, o := range objs {
		s[i] = o.Kind + "/" + o.Name
	}
	return strings.Join(s, ", ")
}

func newExperimentAbortCommand() *cobra.Command {
	var flags *config.Flags
	var reason string
	cmd := &cobra.Command{
		Use:   "abort RUN_ID|NAME",
		Short: "Abort a running experiment (by run id, or by name when one run of it is active): its runner stops and every fault is reverted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, store, cfg, err := faultClient(cmd, flags, "experiment abort")
			if err != nil {
				return err
			}
			defer closeBus(b)
			runs, err := steadystate.OpenRuns(cmd.Context(), b, cfg.Cluster)
			if err != nil {
				return err
			}
			id, err := resolveRun(cmd.Context(), runs, args[0])
			if err != nil {
				return err
			}
			if _, err := runs.End(cmd.Context(), id, steadystate.PhaseAborted, reason, ""); err != nil {
				return err
			}
			a := &schemas.FaultAbort{ID: "abort-" + randomHex(8), ExperimentID: id, Reason: reason, IssuedAt: time.Now().UTC(), Issuer: "cli"}
			if err := runner.PublishAbort(cmd.Context(), b, store, a); err != nil {
				return err
			}
			left, err := waitReverted(cmd.Context(), store, a, 30*time.Second)
			if err != nil {
				return err
			}
			if left > 0 {
				return fmt.Errorf("experiment abort: %d faults of %s still recorded after 30s; see 'faultline fault list'", left, id)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "experiment %s aborted; every fault reverted\n", id)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "aborted from the command line", "why, recorded in the run and every revert")
	flags = config.BindFlags(cmd.Flags())
	return cmd
}

func newExperimentStatusCommand() *cobra.Command {
	var flags *config.Flags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List the experiment runs in progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, store, cfg, err := faultClient(cmd, flags, "experiment status")
			if err != nil {
				return err
			}
			defer closeBus(b)
			runs, err := steadystate.OpenRuns(cmd.Context(), b, cfg.Cluster)
			if err != nil {
				return err
			}
			list, err := runs.List(cmd.Context())
			if err != nil {
				return err
			}
			faults, err := store.List(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tPHASE\tSTARTED\tENDS\tACTIVE FAULTS\tREASON")
			for _, r := range list {
				n := 0
				for _, f := range faults {
					if f.Record.Command.ExperimentID == r.ID {
						n++
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.Phase, r.Started.Local().Format(time.TimeOnly), r.Ends.Local().Format(time.TimeOnly), n, r.Reason)
			}
			if len(list) == 0 {
				fmt.Fprintln(tw, "(no experiment running)")
			}
			return tw.Flush()
		},
	}
	flags = config.BindFlags(cmd.Flags())
	return cmd
}

// resolveRun finds the run id of arg: a run id, or the name of the one
// experiment with a run in progress.
func resolveRun(ctx context.Context, runs *steadystate.Runs, arg string) (string, error) {
	if r, _, err := runs.Get(ctx, arg); err != nil {
		return "", err
	} else if r != nil {
		return arg, nil
	}
	list, err := runs.List(ctx)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, r := range list {
		if r.Experiment.Name == arg {
			ids = append(ids, r.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("experiment abort: no run %q and no run of an experiment named so in progress; see 'faultline experiment status'", arg)
	case 1:
		return ids[0], nil
	}
	return "", fmt.Errorf("experiment abort: %d runs of %s in progress (%s): give the run id", len(ids), arg, strings.Join(ids, ", "))
}
