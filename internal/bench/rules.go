package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/audit"
	"github.com/faultline/faultline/analyzers/replay"
	"github.com/faultline/faultline/analyzers/rules"
	"github.com/faultline/faultline/schemas"
)

// The paths `faultline bench rules` and BenchmarkRulesVsDecode measure.
const (
	// PathDecode is plain encoding/json decoding of each event into the
	// upstream k8s.io/apiserver/pkg/apis/audit/v1.Event: the yardstick.
	PathDecode = "decode"
	// PathBus is the rules analyzer as the bus runner feeds it: the data of
	// an envelope the envelope decoder has checked, parsed lazily
	// (audit.ParseValid), every candidate rule evaluated, findings built.
	PathBus = "bus"
	// PathRunner is everything the bus runner does with a message but
	// talk to NATS: decode the envelope (which checks the event's syntax),
	// PathBus, and wrap each finding in its envelope.
	PathRunner = "runner"
	// PathReplay is `faultline replay` without the files: replay.Run over
	// the events as JSON lines in memory (read, check and parse each line,
	// analyse it, write each finding as a JSON line to io.Discard).
	PathReplay = "replay"
)

// RulesPaths are the measured paths in the order they alternate.
var RulesPaths = []string{PathDecode, PathBus, PathRunner, PathReplay}

// RecordedLists are the list overrides the benchmark runs the default
// ruleset with, so that every rule runs (untrusted-registry-image and
// node-credentials-used-elsewhere are off until their lists are set): the
// registries and the nodes' network of the harness the corpora were
// recorded on.
var RecordedLists = map[string][]string{
	"allowed_registries": {"registry.k8s.io/", "registry.example/"},
	"trusted_cidrs":      {"127.0.0.0/8"},
}

// RulesCorpus is a named set of audit events, each compact JSON as the API
// server writes it.
type RulesCorpus struct {
	Name   string
	Events [][]byte
}

// LoadRulesCorpus reads the audit events of the files matching the
// patterns (JSON lines, EventList or array, gzipped or not, as `faultline
// replay` reads them); a file with an item that is not an audit event is an
// error.
func LoadRulesCorpus(name string, patterns ...string) (RulesCorpus, error) {
	c := RulesCorpus{Name: name}
	var files []string
	for _, p := range patterns {
		m, err := filepath.Glob(p)
		if err != nil {
			return c, fmt.Errorf("corpus %s: %w", name, err)
		}
		if len(m) == 0 {
			return c, fmt.Errorf("corpus %s: no file matches %s (run from the repository root or pass --corpus-dir)", name, p)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			return c, fmt.Errorf("corpus %s: %w", name, err)
		}
		r := audit.NewReader(f, file)
		for {
			ev, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return c, fmt.Errorf("corpus %s: %w", name, err)
			}
			raw := ev.Raw
			if bytes.ContainsAny(raw, "\n\r") { // an item of an indented document
				var buf bytes.Buffer
				if err := json.Compact(&buf, raw); err != nil {
					f.Close()
					return c, fmt.Errorf("corpus %s: %w", name, err)
				}
				raw = buf.Bytes()
			}
			c.Events = append(c.Events, bytes.Clone(raw))
		}
		f.Close()
	}
	if len(c.Events) == 0 {
		return c, fmt.Errorf("corpus %s: no audit event in %s", name, strings.Join(files, ", "))
	}
	return c, nil
}

// RecordedCorpora are the corpora recorded from the real API server in dir
// (analyzers/rules/testdata/recorded): every recorded event, and the benign
// control-plane traffic alone.
func RecordedCorpora(dir string) ([]RulesCorpus, error) {
	all, err := LoadRulesCorpus("recorded", filepath.Join(dir, "*.jsonl"), filepath.Join(dir, "*.jsonl.gz"))
	if err != nil {
		return nil, err
	}
	benign, err := LoadRulesCorpus("benign-only", filepath.Join(dir, "benign.jsonl.gz"))
	if err != nil {
		return nil, err
	}
	return []RulesCorpus{all, benign}, nil
}

// RulesSetup holds one corpus in the form each path takes it, and the
// compiled default ruleset.
type RulesSetup struct {
	Corpus RulesCorpus
	// Bytes is the corpus's total size.
	Bytes    int
	engine   *rules.Engine
	envelope [][]byte // the events in envelopes, as on the bus
	checked  [][]byte // the data of the envelopes, checked by DecodeEnvelope
	lines    []byte   // the events as JSON lines, as in an audit log
}

// NewRulesSetup compiles the default ruleset (with RecordedLists) and
// prepares the corpus for every path.
func NewRulesSetup(c RulesCorpus) (*RulesSetup, error) {
	eng, err := rules.Compile(rules.Options{ReplaceLists: RecordedLists})
	if err != nil {
		return nil, err
	}
	s := &RulesSetup{Corpus: c, engine: eng}
	for i, raw := range c.Events {
		s.Bytes += len(raw)
		s.lines = append(append(s.lines, raw...), '\n')
		ev, err := audit.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("corpus %s: event %d: %w", c.Name, i, err)
		}
		env, err := schemas.NewEnvelopeRaw(schemas.Attributes{
			ID: ev.ID(), Source: "/faultline/collectors/audit-webhook", Type: schemas.TypeAudit,
			Subject: ev.Resource(), Cluster: "bench", Time: ev.StageAt(),
		}, raw)
		if err != nil {
			return nil, fmt.Errorf("corpus %s: event %d: %w", c.Name, i, err)
		}
		b, err := env.Encode()
		if err != nil {
			return nil, fmt.Errorf("corpus %s: event %d: %w", c.Name, i, err)
		}
		dec, err := schemas.DecodeEnvelope(b)
		if err != nil {
			return nil, fmt.Errorf("corpus %s: event %d: %w", c.Name, i, err)
		}
		s.envelope = append(s.envelope, b)
		s.checked = append(s.checked, dec.Data)
	}
	return s, nil
}

// PassResult is one pass of one path over a corpus.
type PassResult struct {
	// Wall is the elapsed time; CPU the CPU time of the whole process
	// (garbage collection included), which other work on the machine
	// does not inflate: with GOMAXPROCS=1 it is the time of the one core
	// the pass had. CPU is 0 where it is not measured.
	Wall, CPU time.Duration
	// Findings made (0 for PathDecode).
	Findings int
}

// Pass runs one path once over the corpus. Every pass starts from fresh
// analyzer state (windows, stage dedupe), built before the clocks start.
func (s *RulesSetup) Pass(ctx context.Context, path string) (PassResult, error) {
	res, err := s.pass(ctx, path)
	if err != nil {
		return res, fmt.Errorf("%s: %s: %w", s.Corpus.Name, path, err)
	}
	return res, nil
}

func (s *RulesSetup) pass(ctx context.Context, path string) (PassResult, error) {
	var none PassResult
	a := rules.NewWithEngine(s.engine.Fresh())
	findings := 0
	cpu0 := processCPU()
	start := time.Now()
	switch path {
	case PathDecode:
		for _, raw := range s.Corpus.Events {
			var ev auditv1.Event
			if err := json.Unmarshal(raw, &ev); err != nil {
				return none, err
			}
		}
	case PathBus:
		for _, data := range s.checked {
			ev, err := audit.ParseValid(data)
			if err != nil {
				return none, err
			}
			fs, err := a.Analyze(ctx, &analyzers.Input{Cluster: "bench", SourceID: ev.ID(), Event: ev})
			if err != nil {
				return none, err
			}
			findings += len(fs)
		}
	case PathRunner:
		for _, msg := range s.envelope {
			env, err := schemas.DecodeEnvelope(msg)
			if err != nil {
				return none, err
			}
			ev, err := audit.ParseValid(env.Data)
			if err != nil {
				return none, err
			}
			fs, err := a.Analyze(ctx, &analyzers.Input{Cluster: env.Cluster, SourceID: env.ID, Event: ev})
			if err != nil {
				return none, err
			}
			for _, f := range fs {
				analyzers.Finish(f, env.Cluster, ev, nil)
				if _, err := analyzers.EncodeFinding(f); err != nil {
					return none, err
				}
			}
			findings += len(fs)
		}
	case PathReplay:
		sum, err := replay.Run(ctx, replay.Options{Analyzers: []analyzers.Analyzer{a}, Cluster: "bench",
			Out: io.Discard, Log: io.Discard}, []replay.Input{{Name: s.Corpus.Name, R: bytes.NewReader(s.lines)}})
		if err != nil {
			return none, err
		}
		if sum.Rejected > 0 || sum.Events != len(s.Corpus.Events) {
			return none, fmt.Errorf("replay read %d events and rejected %d of %d", sum.Events, sum.Rejected, len(s.Corpus.Events))
		}
		findings = sum.Findings
	default:
		return none, fmt.Errorf("no path %q", path)
	}
	wall := time.Since(start)
	return PassResult{Wall: wall, CPU: processCPU() - cpu0, Findings: findings}, nil
}

// RulesOptions configures `faultline bench rules`.
type RulesOptions struct {
	Corpora []RulesCorpus
	// Passes over a corpus per path and round; rounds alternate the paths.
	Passes int
	Rounds int
	// Out gets a line per round and path (nil: none).
	Out io.Writer
}

// RulesPathResult is one path's rate on one corpus.
type RulesPathResult struct {
	Path string `json:"path"`
	// EventsPerS is the median over the rounds of events per second of
	// elapsed time, on one core.
	EventsPerS float64   `json:"events_per_s"`
	Rounds     []float64 `json:"rounds_events_per_s"`
	// Ratio is EventsPerS over the decode path's.
	Ratio float64 `json:"ratio_to_decode"`
	// EventsPerCPUS is the median of events per CPU second of the process
	// (0 where not measured), and CPURatio its ratio to the decode path's:
	// steadier than the elapsed-time figures on a busy machine.
	EventsPerCPUS float64 `json:"events_per_cpu_s,omitempty"`
	CPURatio      float64 `json:"cpu_ratio_to_decode,omitempty"`
}

// RulesCorpusResult is the outcome on one corpus.
type RulesCorpusResult struct {
	Corpus         string            `json:"corpus"`
	Events         int               `json:"events"`
	BytesPerEvent  int               `json:"bytes_per_event"`
	FindingsPerRun int               `json:"findings_per_pass"`
	Paths          []RulesPathResult `json:"paths"`
}

// RulesReport is the outcome of a run.
type RulesReport struct {
	GOMAXPROCS int                 `json:"gomaxprocs"`
	Passes     int                 `json:"passes"`
	Rounds     int                 `json:"rounds"`
	Corpora    []RulesCorpusResult `json:"corpora"`
}

// Rules measures every path on every corpus, per core: GOMAXPROCS is set to
// 1 for the run (garbage collection included, as it shares the core), and
// every path runs on one goroutine. Rates are given per second of elapsed
// time and per CPU second of the process. Rounds alternate the paths so they see
// the same noise; each path's rate is the median over the rounds. The bus,
// runner and replay paths must agree on the number of findings.
func Rules(ctx context.Context, o RulesOptions) (*RulesReport, error) {
	if o.Passes <= 0 || o.Rounds <= 0 || len(o.Corpora) == 0 {
		return nil, errors.New("bench rules: passes, rounds and corpora must be positive")
	}
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	rep := &RulesReport{GOMAXPROCS: 1, Passes: o.Passes, Rounds: o.Rounds}
	for _, c := range o.Corpora {
		s, err := NewRulesSetup(c)
		if err != nil {
			return nil, fmt.Errorf("bench rules: %w", err)
		}
		res := RulesCorpusResult{Corpus: c.Name, Events: len(c.Events), BytesPerEvent: s.Bytes / len(c.Events), FindingsPerRun: -1}
		rates, cpuRates := map[string][]float64{}, map[string][]float64{}
		for r := 1; r <= o.Rounds; r++ {
			for _, path := range RulesPaths {
				var wall, cpu time.Duration
				for range o.Passes {
					if err := ctx.Err(); err != nil {
						return nil, fmt.Errorf("bench rules: %w", err)
					}
					p, err := s.Pass(ctx, path)
					if err != nil {
						return nil, fmt.Errorf("bench rules: %w", err)
					}
					wall += p.Wall
					cpu += p.CPU
					if path == PathDecode {
						continue
					}
					if res.FindingsPerRun < 0 {
						res.FindingsPerRun = p.Findings
					} else if p.Findings != res.FindingsPerRun {
						return nil, fmt.Errorf("bench rules: %s: the %s path made %d findings, another path %d", c.Name, path, p.Findings, res.FindingsPerRun)
					}
				}
				n := float64(len(c.Events) * o.Passes)
				rates[path] = append(rates[path], n/wall.Seconds())
				if cpu > 0 {
					cpuRates[path] = append(cpuRates[path], n/cpu.Seconds())
				}
				if o.Out != nil {
					fmt.Fprintf(o.Out, "round %d  %-12s %-7s %9.0f events/s", r, c.Name, path, n/wall.Seconds())
					if cpu > 0 {
						fmt.Fprintf(o.Out, "  %9.0f events/CPU-s", n/cpu.Seconds())
					}
					fmt.Fprintln(o.Out)
				}
			}
		}
		decode, decodeCPU := median(rates[PathDecode]), median(cpuRates[PathDecode])
		for _, path := range RulesPaths {
			m := median(rates[path])
			pr := RulesPathResult{Path: path, EventsPerS: m, Rounds: rates[path], Ratio: m / decode}
			if decodeCPU > 0 {
				pr.EventsPerCPUS = median(cpuRates[path])
				pr.CPURatio = pr.EventsPerCPUS / decodeCPU
			}
			res.Paths = append(res.Paths, pr)
		}
		rep.Corpora = append(rep.Corpora, res)
	}
	return rep, nil
}
