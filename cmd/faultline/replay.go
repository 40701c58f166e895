package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/baseline"
	"github.com/faultline/faultline/analyzers/replay"
	"github.com/faultline/faultline/analyzers/rules"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/schemas"
)

func newReplayCommand() *cobra.Command {
	var (
		auditFiles  []string
		ruleDirs    []string
		configPath  string
		cluster     string
		minSeverity string
		noDefault   bool
		experiments []string
		quiet       bool
		withBase    bool
		learning    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "replay --audit FILE...",
		Short: "Analyse audit log files offline and print findings as JSON lines",
		Long: `replay reads Kubernetes audit events — JSON lines as the API server's log
backend writes them, an EventList or a JSON array; audit.k8s.io/v1 or v1beta1;
gzipped or not — runs the rules analyzer (and, with --baseline, the baseline analyzer) over
them and prints one finding per
line on standard output, in the same document shape as on the bus and in
Elasticsearch. It needs no NATS and no cluster: it is the forensic tool for
old audit logs.

Progress and a summary (events read, findings by rule, rejected lines) go to
standard error. A line that is not an audit event is reported there with its
file and line number and the rest is still analysed; the exit status is then
2, otherwise 0. With no --audit (or --audit -) standard input is read.`,
		Example: `  faultline replay --audit /var/log/kubernetes/audit/audit.log
  faultline replay --audit audit-2026-11-21.log.gz --audit audit.log --rules ./my-rules > findings.jsonl
  zcat old/*.gz | faultline replay --cluster prod-eu-1 --min-severity high`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stderr := cmd.ErrOrStderr()
			rcfg := rules.DefaultConfig()
			bcfg := baseline.DefaultConfig()
			chaos := analyzers.DefaultChaosConfig()
			if configPath != "" {
				data, err := os.ReadFile(configPath)
				if err != nil {
					return exitError{code: 2, err: fmt.Errorf("replay: %w", err)}
				}
				c := config.Default()
				if err := config.DecodeYAML(data, &c); err != nil {
					return exitError{code: 2, err: fmt.Errorf("replay: %s: %w", configPath, err)}
				}
				rcfg, bcfg, chaos = c.Analyzers.Rules, c.Analyzers.Baseline, c.Analyzers.Chaos
				if !cmd.Flags().Changed("cluster") {
					cluster = c.Cluster
				}
			}
			if noDefault {
				rcfg.DefaultRuleset = false
			}
			rcfg.Dirs = append(rcfg.Dirs, ruleDirs...)
			sev, err := schemas.ParseSeverity(minSeverity)
			if err != nil {
				return exitError{code: 2, err: fmt.Errorf("replay: --min-severity: %w", err)}
			}
			var exps analyzers.StaticExperiments
			for _, e := range experiments {
				id, nss, ok := strings.Cut(e, "=")
				if !ok || id == "" || nss == "" {
					return exitError{code: 2, err: fmt.Errorf("replay: --experiment %q: want ID=NAMESPACE[,NAMESPACE...]", e)}
				}
				exps = append(exps, analyzers.Experiment{ID: id, Namespaces: strings.Split(nss, ",")})
			}
			engine, err := rules.Compile(rcfg.Options())
			if err != nil {
				return exitError{code: 2, err: fmt.Errorf("replay: %w", err)}
			}
			if len(auditFiles) == 0 {
				auditFiles = []string{"-"}
			}
			var inputs []replay.Input
			for _, name := range auditFiles {
				if name == "-" {
					inputs = append(inputs, replay.Input{Name: "-", R: cmd.InOrStdin()})
					continue
				}
				f, err := os.Open(name)
				if err != nil {
					return exitError{code: 2, err: fmt.Errorf("replay: %w", err)}
				}
				defer f.Close()
				inputs = append(inputs, replay.Input{Name: name, R: f})
			}
			as := []analyzers.Analyzer{rules.NewWithEngine(engine)}
			if withBase {
				if cmd.Flags().Changed("baseline-learning") {
					bcfg.LearningPeriod = learning
				}
				b, err := baseline.New(bcfg, &baseline.MemoryStore{}, cluster, nil, nil)
				if err != nil {
					return exitError{code: 2, err: fmt.Errorf("replay: %w", err)}
				}
				as = append(as, b)
			}
			o := replay.Options{
				Analyzers:     as,
				Cluster:       cluster,
				Chaos:         analyzers.NewChaos(chaos, exps, nil),
				MinSeverity:   sev,
				Out:           cmd.OutOrStdout(),
				Log:           stderr,
				ProgressEvery: 2 * time.Second,
			}
			if quiet {
				o.ProgressEvery = 0
			}
			s, err := replay.Run(cmd.Context(), o, inputs)
			replay.WriteSummary(stderr, s)
			if err != nil {
				if errors.Is(err, io.ErrShortWrite) {
					return err
				}
				return exitError{code: 1, err: err}
			}
			if s.Rejected > 0 {
				return exitError{code: 2, err: fmt.Errorf("replay: %d lines were not audit events", s.Rejected)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&auditFiles, "audit", nil, "audit log file (JSON lines, EventList or array; .gz allowed); repeat for more; - for standard input")
	f.StringArrayVar(&ruleDirs, "rules", nil, "directory of rule files of your own, added to the default ruleset; repeat for more")
	f.StringVar(&configPath, "config", "", "configuration file whose analyzers.rules and analyzers.chaos settings apply (lists, rule dirs, disabled rules)")
	f.StringVar(&cluster, "cluster", "default", "orchestrator.cluster.name of the findings")
	f.StringVar(&minSeverity, "min-severity", "info", "print findings of this severity or higher: info, low, medium, high, critical")
	f.BoolVar(&noDefault, "no-default-rules", false, "do not load the embedded default ruleset")
	f.StringArrayVar(&experiments, "experiment", nil, "an experiment that was active, ID=NAMESPACE[,NAMESPACE...]: findings in those namespaces get labels.experiment_id")
	f.BoolVar(&quiet, "quiet", false, "no progress lines (the summary is still written)")
	f.BoolVar(&withBase, "baseline", false, "also run the baseline analyzer, learning from the replayed events themselves (in memory; event time)")
	f.DurationVar(&learning, "baseline-learning", 7*24*time.Hour, "the baseline's learning period per identity, from its first replayed event")
	return cmd
}
