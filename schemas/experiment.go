package schemas

import (
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// An experiment file describes one chaos experiment: the steady state of a
// service as measurable indicators, the hypothesis that it holds in an
// experimental group while faults hit that group (compared with an untouched
// control group), the faults, and when to stop early. docs/experiments.md
// documents the format; ParseExperiment reads it.
//
// The experiment file is input for the runner, not a bus message, so it is
// not a Kind; its JSON form has a JSON Schema all the same
// (jsonschema/experiment.schema.json, ValidateExperimentJSON) for editors
// and other tools.

// Defaults of an experiment file.
const (
	DefaultExperimentInterval    = 10 * time.Second
	DefaultExperimentHysteresis  = 2
	DefaultExperimentHeartbeat   = 15 * time.Second
	DefaultTelemetryGapIntervals = 3
	DefaultFindingMinSeverity    = SeverityHigh
	// DefaultStatisticalP is the significance of "mann-whitney-u" without
	// p=.
	DefaultStatisticalP = 0.05
	// DefaultWarmupIntervals: the warmup defaults to this many intervals.
	DefaultWarmupIntervals = 3
	// DefaultStatisticalWindowIntervals: a statistical indicator's window
	// defaults to this many intervals.
	DefaultStatisticalWindowIntervals = 10
	// DefaultEventsWindow is the least default window of an events
	// indicator (the interval if that is longer).
	DefaultEventsWindow = time.Minute
)

// MaxExperimentNameLength leaves room in a 256-byte experiment id (a
// keyToken) for the run suffix RunID appends.
const MaxExperimentNameLength = 200

// MaxExperimentFileSize bounds what ParseExperiment reads.
const MaxExperimentFileSize = 1 << 20

// GroupName names one of an experiment's two groups.
type GroupName string

// The two groups. Faults only ever target the experimental one.
const (
	GroupControl      GroupName = "control"
	GroupExperimental GroupName = "experimental"
)

// Experiment is one experiment file. NewExperiment and ParseExperiment
// return it with its defaults.
type Experiment struct {
	// Name identifies the experiment; a run's experiment id is the name
	// plus a run suffix (RunID). 1–200 letters, digits, '-' or '_'.
	Name string `json:"name"`
	// Cluster is the cluster the experiment is for (a cluster name as in
	// the configuration); the runner refuses to run it against another.
	Cluster     string `json:"cluster"`
	Description string `json:"description,omitempty"`
	// Groups are the two halves of the service: faults hit experimental,
	// control is left alone for comparison. They must not overlap.
	Groups ExperimentGroups `json:"groups"`
	// SteadyState lists the indicators of the hypothesis: each must stay
	// within its tolerance in the experimental group for the whole run.
	SteadyState []Indicator `json:"steady_state"`
	// Method lists the faults, each at its offset from the end of the
	// warmup.
	Method []MethodStep `json:"method"`
	// AbortWhen says what stops the run early, reverting every fault.
	AbortWhen AbortWhen `json:"abort_when"`
	// Hysteresis is how many failing evaluations of an indicator in a row
	// make a deviation, so one noisy sample does not abort (default 2).
	Hysteresis int `json:"hysteresis"`
	// Interval is how often every indicator is evaluated (default 10s).
	Interval Duration `json:"interval"`
	// Warmup is how long the steady state is watched before the first
	// fault: the method starts only if every indicator held (default
	// 3 × interval, at least one interval).
	Warmup Duration `json:"warmup"`
	// HeartbeatTimeout arms the injectors' dead-man switch for the run's
	// fault commands: their faults are reverted when the runner's heartbeat
	// stops for this long (default 15s).
	HeartbeatTimeout Duration `json:"heartbeat_timeout"`
}

// ExperimentGroups are the control and the experimental group.
type ExperimentGroups struct {
	Control      GroupSelector `json:"control"`
	Experimental GroupSelector `json:"experimental"`
}

// GroupSelector selects a group's pods: a namespace and a label selector
// (absent or {} selects every pod of the namespace).
type GroupSelector struct {
	Namespace string                `json:"namespace"`
	Selector  *metav1.LabelSelector `json:"selector,omitempty"`
}

// Indicator is one measurable output of the steady state, evaluated per
// group every interval, and the tolerance the experimental group must stay
// within. Exactly one source is set: PromQL, Metric, Events or Replicas.
type Indicator struct {
	// Name identifies the indicator in deviations and reports: 1–63
	// letters, digits, '-' or '_', starting with a letter or digit.
	Name string `json:"name"`
	// PromQL is an instant query template, run once per group with the
	// group's label matchers filled in ({{.Matchers}}, {{.Selector}},
	// {{.Namespace}}, {{.Group}}; see ExpandPromQL).
	PromQL string `json:"promql,omitempty"`
	// Metric reads scraped samples of the group's pods.
	Metric *MetricSource `json:"metric,omitempty"`
	// Events counts Kubernetes Events about the group's pods, per minute.
	Events *EventsSource `json:"events,omitempty"`
	// Replicas is the ready share of the group's workloads.
	Replicas *ReplicasSource `json:"replicas,omitempty"`
	// Tolerance is the bound, as an expression (ParseTolerance):
	// "< 0.01", "in [0.9, 1]", "<= control * 1.2", "mann-whitney-u p=0.05".
	Tolerance string `json:"tolerance"`
	// Window is the span of data one evaluation looks at: the samples of
	// the last Window (or, for events, the Events). Default: the interval;
	// 10 × interval for a statistical tolerance; for events the longer of
	// 1m and the interval.
	Window Duration `json:"window,omitempty"`

	// ParsedTolerance is Tolerance parsed; ParseExperiment and
	// ApplyDefaults set it when Tolerance is valid.
	ParsedTolerance Tolerance `json:"-"`
}

// Aggregation combines the series of a group's pods into one value.
type Aggregation string

// Aggregations of a metric source.
const (
	AggregateAvg Aggregation = "avg"
	AggregateSum Aggregation = "sum"
	AggregateMin Aggregation = "min"
	AggregateMax Aggregation = "max"
)

// MetricSource is a scraped metric: samples named Name whose labels include
// Labels, from pods of the group (their namespace and pod labels, which the
// metrics collector adds to pod scrapes, match the group's selector).
type MetricSource struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// Rate turns each counter series into its per-second increase between
	// consecutive samples before aggregating.
	Rate bool `json:"rate,omitempty"`
	// Aggregate combines the group's series at one time: avg (default),
	// sum, min or max.
	Aggregate Aggregation `json:"aggregate,omitempty"`
}

// EventsSource counts Kubernetes Events with one of Reasons about a pod of
// the group (regarding a pod in the group's namespace matching its
// selector), as occurrences per minute over the indicator's window (an
// Event's repeats count: count or series.count increments).
type EventsSource struct {
	Reasons []string `json:"reasons"`
}

// WorkloadKind is a kind of workload a replicas indicator reads.
type WorkloadKind string

// Workload kinds.
const (
	WorkloadDeployment  WorkloadKind = "Deployment"
	WorkloadStatefulSet WorkloadKind = "StatefulSet"
	WorkloadReplicaSet  WorkloadKind = "ReplicaSet"
)

// ReplicasSource is ready ÷ desired replicas, summed over the workloads of
// Kind in the group's namespace whose pod template labels match the group's
// selector. No such workload, or zero desired replicas, is no data.
type ReplicasSource struct {
	Kind WorkloadKind `json:"kind,omitempty"`
}

// MethodStep is one fault of the method, applied to the experimental group
// (narrowed by Selector, if set) from Start to Start + Duration.
type MethodStep struct {
	// Name identifies the step in reports (default "<index>-<fault>", e.g.
	// "0-pod-kill"): 1–63 letters, digits, '-' or '_'.
	Name  string    `json:"name,omitempty"`
	Fault FaultKind `json:"fault"`
	// Start is the step's offset from the end of the warmup (0 or more).
	Start Duration `json:"start"`
	// Duration is how long the fault lasts (more than 0).
	Duration Duration `json:"duration"`
	// Mode is how many of the targeted pods the fault takes (default one).
	Mode Mode `json:"mode"`
	// Selector narrows the target within the experimental group: it is
	// ANDed with the group's selector, so a step can never reach outside
	// the group.
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// The parameters of Fault, as in a fault command: exactly those of
	// Fault may be set (pod-kill's are optional).
	PodKill            *PodKillParams            `json:"pod_kill,omitempty"`
	NetworkPartition   *NetworkPartitionParams   `json:"network_partition,omitempty"`
	ResourceStarvation *ResourceStarvationParams `json:"resource_starvation,omitempty"`
}

// AbortWhen is the abort policy: what stops a run early. Every fault of the
// run is reverted on an abort.
type AbortWhen struct {
	// Deviation aborts when an indicator deviates (default true). When
	// false, a deviation is recorded and the run continues.
	Deviation bool `json:"deviation"`
	// Finding aborts on a security finding in the blast radius.
	Finding FindingAbort `json:"finding"`
	// TelemetryGap aborts when an indicator has no data for a while.
	TelemetryGap TelemetryGapAbort `json:"telemetry_gap"`
}

// FindingAbort aborts a run on a finding at or above MinSeverity whose
// namespace and pod fall inside the experimental group. It cannot be turned
// off: a chaos run must never mask a security incident.
type FindingAbort struct {
	// MinSeverity is low, medium, high (default) or critical; info is
	// refused (Faultline's own injector produces info findings).
	MinSeverity Severity `json:"min_severity"`
}

// TelemetryGapAbort aborts a run when an indicator has had no data for
// Intervals evaluations in a row: unknown is not healthy.
type TelemetryGapAbort struct {
	Intervals int `json:"intervals"`
}

// NewExperiment returns an experiment with every default set, the value
// ParseExperiment decodes a file over.
func NewExperiment() *Experiment {
	return &Experiment{
		AbortWhen: AbortWhen{
			Deviation:    true,
			Finding:      FindingAbort{MinSeverity: DefaultFindingMinSeverity},
			TelemetryGap: TelemetryGapAbort{Intervals: DefaultTelemetryGapIntervals},
		},
		Hysteresis:       DefaultExperimentHysteresis,
		Interval:         Duration(DefaultExperimentInterval),
		HeartbeatTimeout: Duration(DefaultExperimentHeartbeat),
	}
}

// ApplyDefaults fills the defaults of zero fields: hysteresis, interval,
// heartbeat timeout and telemetry-gap intervals take theirs; a zero warmup
// becomes 3 × interval; every indicator gets its default window and
// ParsedTolerance (when its tolerance parses), metric sources aggregate avg,
// replicas sources read Deployments; every step gets its name and mode one.
// It is idempotent. The booleans and the finding severity are not touched
// (their zero values are valid choices): build experiments with
// NewExperiment.
func (e *Experiment) ApplyDefaults() {
	e.applyStaticDefaults()
	e.applyDerivedDefaults()
}

// applyStaticDefaults fills zero fields that have a fixed default.
// ParseExperiment does not call it: it decodes over NewExperiment, so a
// field the file sets to 0 stays 0 and is refused.
func (e *Experiment) applyStaticDefaults() {
	if e.Hysteresis == 0 {
		e.Hysteresis = DefaultExperimentHysteresis
	}
	if e.Interval == 0 {
		e.Interval = Duration(DefaultExperimentInterval)
	}
	if e.HeartbeatTimeout == 0 {
		e.HeartbeatTimeout = Duration(DefaultExperimentHeartbeat)
	}
	if e.AbortWhen.TelemetryGap.Intervals == 0 {
		e.AbortWhen.TelemetryGap.Intervals = DefaultTelemetryGapIntervals
	}
}

// applyDerivedDefaults fills the defaults that depend on other fields and
// those of list items.
func (e *Experiment) applyDerivedDefaults() {
	if e.Warmup == 0 {
		e.Warmup = e.Interval * DefaultWarmupIntervals
	}
	for i := range e.SteadyState {
		ind := &e.SteadyState[i]
		tol, err := ParseTolerance(ind.Tolerance)
		if err == nil {
			ind.ParsedTolerance = tol
		}
		if ind.Window == 0 {
			ind.Window = defaultWindow(ind, err == nil && tol.Kind == ToleranceStatistical, e.Interval)
		}
		if ind.Metric != nil && ind.Metric.Aggregate == "" {
			ind.Metric.Aggregate = AggregateAvg
		}
		if ind.Replicas != nil && ind.Replicas.Kind == "" {
			ind.Replicas.Kind = WorkloadDeployment
		}
	}
	for i := range e.Method {
		st := &e.Method[i]
		if st.Name == "" && st.Fault != "" {
			st.Name = defaultStepName(i, st.Fault)
		}
		if st.Mode.Type == "" {
			st.Mode.Type = ModeOne
		}
	}
}

func defaultWindow(ind *Indicator, statistical bool, interval Duration) Duration {
	switch {
	case statistical:
		return interval * DefaultStatisticalWindowIntervals
	case ind.Events != nil:
		return max(Duration(DefaultEventsWindow), interval)
	}
	return interval
}

func defaultStepName(i int, f FaultKind) string {
	return strconv.Itoa(i) + "-" + string(f)
}

// Group returns the selector of the named group.
func (e *Experiment) Group(g GroupName) (GroupSelector, bool) {
	switch g {
	case GroupControl:
		return e.Groups.Control, true
	case GroupExperimental:
		return e.Groups.Experimental, true
	}
	return GroupSelector{}, false
}

// RunID is the experiment id of a run started at: the name, '-', and the
// UTC start time to the second, e.g. "checkout-pod-kill-20250603-110000".
// It is a keyToken (a subject token and KV key).
func (e *Experiment) RunID(at time.Time) string {
	return e.Name + "-" + at.UTC().Format("20060102-150405")
}

// MethodDuration is how long the method lasts: the latest end of a step.
func (e *Experiment) MethodDuration() time.Duration {
	var d time.Duration
	for _, st := range e.Method {
		d = max(d, (st.Start + st.Duration).Std())
	}
	return d
}
