// Package replay runs analyzers offline over audit logs: no NATS, no
// cluster. `faultline replay` is its command; SOCs use it on old logs.
package replay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/audit"
	"github.com/faultline/faultline/schemas"
)

// Input is one source of audit events.
type Input struct {
	// Name is the file name ("-" for standard input), shown in rejects.
	Name string
	R    io.Reader
}

// Options configure a replay.
type Options struct {
	Analyzers []analyzers.Analyzer
	// Cluster is orchestrator.cluster.name of the findings.
	Cluster string
	Chaos   *analyzers.Chaos
	// MinSeverity drops findings below it.
	MinSeverity schemas.Severity
	// Out gets one finding per line (JSON).
	Out io.Writer
	// Log gets rejects, progress and the summary (standard error).
	Log io.Writer
	// ProgressEvery is how often a progress line is written (0: never).
	ProgressEvery time.Duration
}

// Summary is what a replay did.
type Summary struct {
	Events   int
	Findings int
	ByRule   map[string]int
	Rejected int
	Elapsed  time.Duration
}

// Run analyses the inputs in order. Lines that are not audit events are
// reported on Log with their file and line and counted in Rejected; the rest
// of the input is still analysed. An error is returned only when an input
// cannot be read or the output cannot be written.
func Run(ctx context.Context, o Options, inputs []Input) (Summary, error) {
	s := Summary{ByRule: map[string]int{}}
	start := time.Now()
	out := bufio.NewWriterSize(o.Out, 64<<10)
	var line []byte // a finding as a json.Encoder without HTML escaping writes it
	lastProgress := start
	// One Input for every event: analyzers do not keep it. Its SourceID
	// is left empty: analyzers derive it (ev.ID()) only for a finding.
	in := &analyzers.Input{Cluster: o.Cluster}
	for _, src := range inputs {
		name := src.Name
		r := audit.NewReader(src.R, name)
		r.Reuse() // each event is done with before the next is read
		for {
			if s.Events%1024 == 0 && ctx.Err() != nil {
				return s, fmt.Errorf("replay: %w", ctx.Err())
			}
			ev, err := r.Next()
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				var rej *audit.Reject
				if errors.As(err, &rej) {
					s.Rejected++
					fmt.Fprintln(o.Log, rej.Error())
					continue
				}
				return s, fmt.Errorf("replay: %w", err)
			}
			s.Events++
			in.Event = ev
			for _, a := range o.Analyzers {
				fs, err := a.Analyze(ctx, in)
				if err != nil {
					return s, fmt.Errorf("replay: %s: %w", a.Name(), err)
				}
				for _, f := range fs {
					analyzers.Finish(f, o.Cluster, ev, o.Chaos)
					if !f.Faultline.Severity.AtLeast(o.MinSeverity) {
						continue
					}
					var err error
					if line, err = f.AppendJSON(line[:0], false); err == nil {
						_, err = out.Write(append(line, '\n'))
					}
					if err != nil {
						return s, fmt.Errorf("replay: write finding: %w", err)
					}
					s.Findings++
					s.ByRule[f.Rule.ID]++
				}
			}
			if o.ProgressEvery > 0 && s.Events%256 == 0 && time.Since(lastProgress) >= o.ProgressEvery {
				lastProgress = time.Now()
				fmt.Fprintf(o.Log, "replay: %s: %d events, %d findings, %d rejected (%.0f events/s)\n",
					name, s.Events, s.Findings, s.Rejected, float64(s.Events)/time.Since(start).Seconds())
			}
		}
	}
	if err := out.Flush(); err != nil {
		return s, fmt.Errorf("replay: write findings: %w", err)
	}
	s.Elapsed = time.Since(start)
	return s, nil
}

// WriteSummary writes the summary: events read, findings by rule, rejected
// lines.
func WriteSummary(w io.Writer, s Summary) {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Events) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "replay: %d events read, %d findings, %d rejected lines, %s (%.0f events/s)\n",
		s.Events, s.Findings, s.Rejected, s.Elapsed.Round(time.Millisecond), rate)
	ids := make([]string, 0, len(s.ByRule))
	for id := range s.ByRule {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if s.ByRule[ids[i]] != s.ByRule[ids[j]] {
			return s.ByRule[ids[i]] > s.ByRule[ids[j]]
		}
		return ids[i] < ids[j]
	})
	for _, id := range ids {
		fmt.Fprintf(w, "replay:   %6d  %s\n", s.ByRule[id], id)
	}
}
