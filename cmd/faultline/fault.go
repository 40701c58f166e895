package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/injectors/runner"
	"github.com/faultline/faultline/injectors/signing"
	"github.com/faultline/faultline/internal/app"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/schemas"
)

func newFaultCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fault",
		Short: "List, abort and forget injected faults; create signing keys",
	}
	cmd.AddCommand(newFaultListCommand(), newFaultAbortCommand(), newFaultKeygenCommand(), newFaultForgetCommand())
	return cmd
}

// faultClient connects to the bus and opens the fault records.
func faultClient(cmd *cobra.Command, flags *config.Flags, name string) (*bus.Bus, *runner.Store, config.Config, error) {
	cfg, err := flags.Load(os.Environ())
	if err != nil {
		return nil, nil, cfg, exitError{code: 2, err: err}
	}
	b, _, err := app.Client(cmd.Context(), cfg, name, cmd.ErrOrStderr())
	if err != nil {
		return nil, nil, cfg, err
	}
	store, err := runner.OpenStore(cmd.Context(), b, cfg.Cluster)
	if err != nil {
		closeBus(b)
		return nil, nil, cfg, fmt.Errorf("%s: %w", name, err)
	}
	return b, store, cfg, nil
}

func closeBus(b *bus.Bus) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.Close(ctx)
}

func newFaultListCommand() *cobra.Command {
	var flags *config.Flags
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show the active faults of the cluster from their records in JetStream KV",
		Long: `list prints every fault recorded for the cluster: applied faults waiting for
their deadline, faults being reverted, and faults whose revert failed (these
are retried until they succeed; 'faultline fault forget' removes the record of
one a person reverted by hand).`,
		Example: `  faultline fault list --bus.urls nats://127.0.0.1:4222
  faultline fault list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, store, _, err := faultClient(cmd, flags, "fault list")
			if err != nil {
				return err
			}
			defer closeBus(b)
			entries, err := store.List(cmd.Context())
			if err != nil {
				return err
			}
			return printFaults(cmd.OutOrStdout(), entries, output, time.Now())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json (one record per line)")
	flags = config.BindFlags(cmd.Flags())
	return cmd
}

func printFaults(w io.Writer, entries []*runner.Entry, output string, now time.Time) error {
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		for _, e := range entries {
			if err := enc.Encode(e.Record); err != nil {
				return err
			}
		}
		return nil
	case "table":
	default:
		return exitError{code: 2, err: fmt.Errorf("fault list: --output %q: want table or json", output)}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMMAND\tEXPERIMENT\tFAULT\tSTATE\tOWNER\tDEADLINE\tAFFECTED")
	for _, e := range entries {
		r := e.Record
		state := string(r.State)
		if r.LastError != "" {
			state += fmt.Sprintf(" (%d attempts: %s)", r.Attempts, r.LastError)
		}
		var affected []string
		for _, o := range r.Affected {
			affected = append(affected, o.Kind+"/"+o.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s (in %s)\t%s\n", r.Command.ID, r.Command.ExperimentID, r.Command.Fault, state, r.Owner,
			r.Deadline.Local().Format(time.TimeOnly), r.Deadline.Sub(now).Round(time.Second), strings.Join(affected, ","))
	}
	if len(entries) == 0 {
		fmt.Fprintln(tw, "(no active faults)")
	}
	return tw.Flush()
}

func newFaultAbortCommand() *cobra.Command {
	var flags *config.Flags
	var experiment, reason string
	var all bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "abort (--experiment ID | --all)",
		Short: "Revert every fault of one experiment, or of all, at once",
		Long: `abort records the abort in JetStream KV (so every injector replica honours it,
even one that is reconnecting) and publishes it on fl.fault.abort.<cluster>;
every injector replica reverts every matching fault in parallel. abort then
waits until no matching fault record is left, i.e. until the injectors have
confirmed every revert with the API server, and prints how long that took.
Commands of the experiment issued before the abort are refused afterwards.`,
		Example: `  faultline fault abort --experiment checkout-latency --reason "pager went off"
  faultline fault abort --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all == (experiment != "") {
				return exitError{code: 2, err: errors.New("fault abort: give exactly one of --experiment ID and --all")}
			}
			b, store, _, err := faultClient(cmd, flags, "fault abort")
			if err != nil {
				return err
			}
			defer closeBus(b)
			a := &schemas.FaultAbort{ID: "abort-" + randomHex(8), ExperimentID: experiment, All: all, Reason: reason, IssuedAt: time.Now().UTC(), Issuer: "cli"}
			start := time.Now()
			if err := runner.PublishAbort(cmd.Context(), b, store, a); err != nil {
				return err
			}
			what := "experiment " + experiment
			if all {
				what = "all experiments"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "abort %s published for %s; waiting for the reverts\n", a.ID, what)
			if wait <= 0 {
				return nil
			}
			left, err := waitReverted(cmd.Context(), store, a, wait)
			if err != nil {
				return err
			}
			if left > 0 {
				return fmt.Errorf("fault abort: %d faults of %s still recorded after %v; see 'faultline fault list'", left, what, wait)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "every fault of %s is reverted (%v after the abort)\n", what, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&experiment, "experiment", "", "experiment id to abort")
	cmd.Flags().BoolVar(&all, "all", false, "abort every experiment")
	cmd.Flags().StringVar(&reason, "reason", "aborted from the command line", "why, recorded in every revert status")
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long to wait for every revert (0: do not wait)")
	flags = config.BindFlags(cmd.Flags())
	return cmd
}

// waitReverted polls the records until none the abort covers is left, and
// returns how many are left when wait runs out.
func waitReverted(ctx context.Context, store *runner.Store, a *schemas.FaultAbort, wait time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		entries, err := store.List(ctx)
		if err != nil && ctx.Err() == nil {
			return 0, err
		}
		left := 0
		for _, e := range entries {
			if a.Matches(e.Record.Command.ExperimentID) && !e.Record.Command.IssuedAt.After(a.IssuedAt) {
				left++
			}
		}
		if err == nil && left == 0 {
			return 0, nil
		}
		select {
		case <-ctx.Done():
			return left, nil
		case <-t.C:
		}
	}
}

func newFaultKeygenCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Create an NKey pair for signing fault commands",
		Long: `keygen writes a new NKey (ed25519) seed to FILE (mode 0600; it refuses to
overwrite) and prints its public key. Give the seed file to whoever issues
commands ('faultline inject --key FILE', the experiment runner) and the public
key to the injectors (injectors.guard.trusted_keys).`,
		Example: `  faultline fault keygen --out ~/.config/faultline/issuer.nk`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return exitError{code: 2, err: errors.New("fault keygen: --out FILE is required")}
			}
			kp, err := signing.NewKey()
			if err != nil {
				return err
			}
			seed, err := kp.Seed()
			if err != nil {
				return err
			}
			pub, err := kp.PublicKey()
			if err != nil {
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("fault keygen: %w", err)
			}
			_, werr := fmt.Fprintf(f, "# Faultline fault command signing key (NKey seed). Keep it secret.\n# public key: %s\n%s\n", pub, seed)
			if err := errors.Join(werr, f.Close()); err != nil {
				return fmt.Errorf("fault keygen: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), pub)
			fmt.Fprintf(cmd.ErrOrStderr(), "seed written to %s; add the public key above to injectors.guard.trusted_keys\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the seed to")
	return cmd
}

func newFaultForgetCommand() *cobra.Command {
	var flags *config.Flags
	cmd := &cobra.Command{
		Use:   "forget COMMAND_ID",
		Short: "Remove the record of a fault a person reverted by hand (after revert-failed)",
		Long: `forget deletes a fault's record so the injectors stop retrying its revert.
Use it only after checking by hand that the fault's objects (see 'faultline
fault list') are gone: without the record nobody will revert it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, store, _, err := faultClient(cmd, flags, "fault forget")
			if err != nil {
				return err
			}
			defer closeBus(b)
			if err := store.Forget(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "forgot fault %s\n", args[0])
			return nil
		},
	}
	flags = config.BindFlags(cmd.Flags())
	return cmd
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
