package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/faultline/faultline/internal/bench"
)

func newBenchRulesCommand() *cobra.Command {
	var (
		corpusDir  string
		auditFiles []string
		passes     int
		rounds     int
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Measure the rules analyzer against plain encoding/json decoding of the same audit events",
		Long: `bench rules measures, per core, on the audit events recorded from a real API
server (--corpus-dir: every recorded event, and the benign control-plane
traffic alone) and on the events of each --audit file:

  decode   plain encoding/json decoding of each event into the upstream
           k8s.io/apiserver/pkg/apis/audit/v1.Event: the yardstick;
  bus      the rules analyzer, full default ruleset, as the bus runner feeds
           it: the data of an envelope the envelope decoder has checked;
  runner   everything the bus runner does with a message but talk to NATS:
           decode the envelope, analyse, wrap the findings in envelopes;
  replay   faultline replay without the files: the events as JSON lines in
           memory, read, checked, parsed and analysed, findings written.

Per core means GOMAXPROCS=1 for the run: every path runs on one goroutine
and garbage collection shares its core. Each rate is given per second of
elapsed time and per CPU second of the process (which other work on the
machine does not inflate). Rounds alternate the paths so they see the same
noise; each rate is the median over the rounds, each ratio is to the decode
rate. The analyzer paths must agree on the number of findings. Run it from
the repository root (or pass --corpus-dir).`,
		Example: `  faultline bench rules
  faultline bench rules --audit /var/log/kubernetes/audit/audit.log --passes 5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var corpora []bench.RulesCorpus
			if corpusDir != "" {
				rec, err := bench.RecordedCorpora(corpusDir)
				if err != nil {
					return fmt.Errorf("bench rules: %w", err)
				}
				corpora = append(corpora, rec...)
			}
			for _, f := range auditFiles {
				c, err := bench.LoadRulesCorpus(filepath.Base(f), f)
				if err != nil {
					return fmt.Errorf("bench rules: %w", err)
				}
				corpora = append(corpora, c)
			}
			if len(corpora) == 0 {
				return fmt.Errorf("bench rules: no events: set --corpus-dir or --audit")
			}
			o := bench.RulesOptions{Corpora: corpora, Passes: passes, Rounds: rounds, Out: cmd.OutOrStdout()}
			if asJSON {
				o.Out = nil
			}
			procs := runtime.GOMAXPROCS(0)
			rep, err := bench.Rules(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "\nper core: GOMAXPROCS=%d for the run (the machine has %d), medians of %d rounds of %d passes\n",
				rep.GOMAXPROCS, procs, rep.Rounds, rep.Passes)
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "corpus\tevents\tbytes/event\tfindings\trate\tdecode\tbus\trunner\treplay\t")
			for _, c := range rep.Corpora {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\tevents/s\t", c.Corpus, c.Events, c.BytesPerEvent, c.FindingsPerRun)
				for _, p := range c.Paths {
					if p.Path == bench.PathDecode {
						fmt.Fprintf(tw, "%.0f\t", p.EventsPerS)
					} else {
						fmt.Fprintf(tw, "%.0f (%.2fx)\t", p.EventsPerS, p.Ratio)
					}
				}
				fmt.Fprintln(tw)
				if c.Paths[0].EventsPerCPUS == 0 {
					continue
				}
				fmt.Fprintf(tw, "\t\t\t\tevents/CPU-s\t")
				for _, p := range c.Paths {
					if p.Path == bench.PathDecode {
						fmt.Fprintf(tw, "%.0f\t", p.EventsPerCPUS)
					} else {
						fmt.Fprintf(tw, "%.0f (%.2fx)\t", p.EventsPerCPUS, p.CPURatio)
					}
				}
				fmt.Fprintln(tw)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&corpusDir, "corpus-dir", filepath.Join("analyzers", "rules", "testdata", "recorded"), "directory of the recorded corpora (empty: only --audit files)")
	f.StringArrayVar(&auditFiles, "audit", nil, "audit log file to measure on too (JSON lines, EventList or array; .gz allowed); repeat for more")
	f.IntVar(&passes, "passes", 20, "passes over a corpus per path and round")
	f.IntVar(&rounds, "rounds", 3, "rounds, alternating the paths")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
