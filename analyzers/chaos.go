package analyzers

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/faultline/faultline/analyzers/audit"
	"github.com/faultline/faultline/schemas"
)

// Labels chaos awareness sets on findings.
const (
	// LabelChaos is "injector" on a finding about a request made by
	// Faultline's own fault injector.
	LabelChaos = "chaos"
	// ChaosInjector is the LabelChaos value of such findings.
	ChaosInjector = "injector"
	// UnknownExperiment is the experiment id of an injector request whose
	// experiment could not be told.
	UnknownExperiment = "unknown"
)

// ChaosConfig configures chaos awareness, shared by every analyzer.
type ChaosConfig struct {
	InjectorUsers []string `yaml:"injector_users" doc:"User names (globs with '*') of Faultline's fault injector. Their requests are not alerted as attacks: their findings are kept with severity info, labels.chaos=injector and labels.experiment_id."`

	ExperimentUserAgentMarker string `yaml:"experiment_user_agent_marker" doc:"The injector puts '<marker><experiment id>' in its User-Agent; the id after the marker (up to a space, ';' or ')') is the experiment_id of its findings. Empty: the experiment is taken from the active experiments only."`
}

// DefaultChaosConfig is the built-in default.
func DefaultChaosConfig() ChaosConfig {
	return ChaosConfig{
		InjectorUsers:             []string{"system:serviceaccount:faultline:faultline-injector"},
		ExperimentUserAgentMarker: "faultline-experiment/",
	}
}

// Validate returns one error per invalid field.
func (c ChaosConfig) Validate() []error {
	var errs []error
	for i, u := range c.InjectorUsers {
		if strings.TrimSpace(u) == "" {
			errs = append(errs, fmt.Errorf("injector_users[%d]: must not be empty", i))
		}
	}
	if strings.ContainsAny(c.ExperimentUserAgentMarker, " \t") {
		errs = append(errs, fmt.Errorf("experiment_user_agent_marker: %q must not contain spaces", c.ExperimentUserAgentMarker))
	}
	return errs
}

// Experiment is a chaos experiment in progress as analyzers see it: its id
// and its blast radius.
type Experiment struct {
	ID string
	// Namespaces are the namespaces (globs with '*') faults may touch.
	Namespaces []string
	// Until is when the experiment ends at the latest (zero: open-ended).
	Until time.Time
}

// Covers tells whether namespace is in the experiment's blast radius.
func (e Experiment) Covers(namespace string) bool {
	if namespace == "" {
		return false
	}
	for _, p := range e.Namespaces {
		if Glob(p, namespace) {
			return true
		}
	}
	return false
}

// ExperimentSource tells which experiments are active. It is the seam where
// the experiments component plugs in its record of running experiments;
// it must be fast (it is asked once per finding) and safe for concurrent
// use.
type ExperimentSource interface {
	Active(ctx context.Context, at time.Time) ([]Experiment, error)
}

// StaticExperiments is a fixed list, for replay (--experiment) and tests.
type StaticExperiments []Experiment

// Active returns the experiments whose Until is zero or after at.
func (s StaticExperiments) Active(_ context.Context, at time.Time) ([]Experiment, error) {
	var out []Experiment
	for _, e := range s {
		if e.Until.IsZero() || e.Until.After(at) {
			out = append(out, e)
		}
	}
	return out, nil
}

// Chaos applies chaos awareness to findings.
type Chaos struct {
	cfg     ChaosConfig
	source  ExperimentSource
	log     *slog.Logger
	errOnce sync.Once
}

// NewChaos builds chaos awareness from configuration and an experiment
// source (nil: none is active).
func NewChaos(cfg ChaosConfig, source ExperimentSource, log *slog.Logger) *Chaos {
	if log == nil {
		log = slog.Default()
	}
	return &Chaos{cfg: cfg, source: source, log: log}
}

// IsInjector tells whether the request was made by the injector identity.
func (c *Chaos) IsInjector(ev *audit.Event) bool {
	if c == nil || ev == nil {
		return false
	}
	for _, p := range c.cfg.InjectorUsers {
		if Glob(p, ev.User.Username) {
			return true
		}
	}
	return false
}

// Apply marks f: a finding about an injector request becomes severity info
// with labels.chaos=injector and labels.experiment_id; any other finding in
// the blast radius of an active experiment gets labels.experiment_id.
func (c *Chaos) Apply(f *schemas.Finding, ev *audit.Event) {
	if c == nil {
		return
	}
	at := f.Timestamp
	if c.IsInjector(ev) {
		id := c.experimentFromUserAgent(ev.UserAgent)
		if id == "" {
			if e, ok := c.activeFor(f.Orchestrator.Namespace, at); ok {
				id = e.ID
			}
		}
		if id == "" {
			id = UnknownExperiment
		}
		f.SetSeverity(schemas.SeverityInfo)
		setLabel(f, LabelChaos, ChaosInjector)
		setLabel(f, schemas.LabelExperimentID, id)
		f.Message = "[chaos experiment " + id + "] " + f.Message
		return
	}
	if e, ok := c.activeFor(f.Orchestrator.Namespace, at); ok {
		setLabel(f, schemas.LabelExperimentID, e.ID)
	}
}

func (c *Chaos) activeFor(namespace string, at time.Time) (Experiment, bool) {
	if c.source == nil || namespace == "" {
		return Experiment{}, false
	}
	exps, err := c.source.Active(context.Background(), at)
	if err != nil {
		c.errOnce.Do(func() { c.log.Warn("chaos: active experiments unavailable; findings are not tagged", "err", err) })
		return Experiment{}, false
	}
	for _, e := range exps {
		if e.Covers(namespace) {
			return e, true
		}
	}
	return Experiment{}, false
}

func (c *Chaos) experimentFromUserAgent(ua string) string {
	m := c.cfg.ExperimentUserAgentMarker
	if m == "" {
		return ""
	}
	_, rest, ok := strings.Cut(ua, m)
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, " ;)"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

func setLabel(f *schemas.Finding, k, v string) {
	if f.Labels == nil {
		f.Labels = map[string]string{}
	}
	f.Labels[k] = v
}

// Glob matches s against pattern, where '*' matches any run of characters
// (including none) and every other character itself.
func Glob(pattern, s string) bool {
	for {
		star := strings.IndexByte(pattern, '*')
		if star < 0 {
			return pattern == s
		}
		if !strings.HasPrefix(s, pattern[:star]) {
			return false
		}
		s = s[star:]
		pattern = pattern[star+1:]
		if pattern == "" {
			return true
		}
		// Find the next literal segment; try every position (patterns are
		// short and have few stars).
		next := strings.IndexByte(pattern, '*')
		lit := pattern
		if next >= 0 {
			lit = pattern[:next]
		}
		if next < 0 {
			return strings.HasSuffix(s, lit)
		}
		i := strings.Index(s, lit)
		if i < 0 {
			return false
		}
		s = s[i+len(lit):]
		pattern = pattern[len(lit):]
	}
}
