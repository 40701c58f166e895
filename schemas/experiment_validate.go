package schemas

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	experimentNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	shortNameRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)
	clusterNameRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$`)
	namespaceRE      = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	metricNameRE     = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE      = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// MinExperimentInterval is the shortest evaluation interval.
const MinExperimentInterval = time.Second

// MaxExperimentHysteresis bounds hysteresis.
const MaxExperimentHysteresis = 100

// MaxExperimentSpan bounds every duration of an experiment file (interval,
// warmup, heartbeat timeout, windows, a step's start and duration): far
// beyond any sensible experiment, and far from overflowing when added up.
// The injectors enforce their own, shorter, maximum fault duration.
const MaxExperimentSpan = 7 * 24 * time.Hour

// Validate checks the experiment (with its defaults applied) and returns an
// *ExperimentError listing every problem with its field path, or nil.
func (e *Experiment) Validate() error {
	v := &validator{}
	v.experiment(e)
	if len(v.problems) == 0 {
		return nil
	}
	return &ExperimentError{Problems: v.problems}
}

type validator struct{ problems []*FieldError }

func (v *validator) bad(path, format string, args ...any) {
	v.problems = append(v.problems, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) experiment(e *Experiment) {
	switch {
	case e.Name == "":
		v.bad("name", "is required")
	case len(e.Name) > MaxExperimentNameLength:
		v.bad("name", "is %d characters long, at most %d are allowed", len(e.Name), MaxExperimentNameLength)
	case !experimentNameRE.MatchString(e.Name):
		v.bad("name", "%q is not a valid experiment name (letters, digits, '-' and '_', starting with a letter or digit)", e.Name)
	}
	switch {
	case e.Cluster == "":
		v.bad("cluster", "is required: the cluster the experiment is for")
	case !clusterNameRE.MatchString(e.Cluster):
		v.bad("cluster", "%q is not a valid cluster name (1-63 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit)", e.Cluster)
	}
	v.groups(e)

	if e.Interval.Std() < MinExperimentInterval {
		v.bad("interval", "%s is shorter than the minimum %s", e.Interval, MinExperimentInterval)
	}
	if e.Hysteresis < 1 || e.Hysteresis > MaxExperimentHysteresis {
		v.bad("hysteresis", "must be between 1 and %d (got %d)", MaxExperimentHysteresis, e.Hysteresis)
	}
	if e.Warmup < e.Interval && e.Interval > 0 {
		v.bad("warmup", "%s is shorter than the interval %s: the steady state must be checked at least once before the first fault", e.Warmup, e.Interval)
	}
	if e.HeartbeatTimeout.Std() < time.Second {
		v.bad("heartbeat_timeout", "must be at least 1s (got %s)", e.HeartbeatTimeout)
	}
	v.span("interval", e.Interval)
	v.span("warmup", e.Warmup)
	v.span("heartbeat_timeout", e.HeartbeatTimeout)
	a := e.AbortWhen
	switch {
	case !a.Finding.MinSeverity.Valid():
		v.bad("abort_when.finding.min_severity", "is not a severity")
	case a.Finding.MinSeverity < SeverityLow:
		v.bad("abort_when.finding.min_severity", "must be low, medium, high or critical: info findings include the injector's own actions")
	}
	if a.TelemetryGap.Intervals < 1 {
		v.bad("abort_when.telemetry_gap.intervals", "must be at least 1 (got %d)", a.TelemetryGap.Intervals)
	}

	if len(e.SteadyState) == 0 {
		v.bad("steady_state", "needs at least one indicator: the hypothesis is what the experiment tries to disprove")
	}
	names := map[string]int{}
	for i := range e.SteadyState {
		v.indicator(e, i, names)
	}
	if len(e.Method) == 0 {
		v.bad("method", "needs at least one step: the faults to inject")
	}
	steps := map[string]int{}
	for i := range e.Method {
		v.step(e, i, steps)
	}
}

func (v *validator) groups(e *Experiment) {
	ok := true
	for _, g := range []struct {
		name GroupName
		sel  GroupSelector
	}{{GroupControl, e.Groups.Control}, {GroupExperimental, e.Groups.Experimental}} {
		path := "groups." + string(g.name)
		switch {
		case g.sel.Namespace == "":
			v.bad(path+".namespace", "is required")
			ok = false
		case len(g.sel.Namespace) > 63 || !namespaceRE.MatchString(g.sel.Namespace):
			v.bad(path+".namespace", "%q is not a valid namespace name", g.sel.Namespace)
			ok = false
		}
		if !v.selector(path+".selector", g.sel.Selector) {
			ok = false
			continue
		}
		if !selectorsIntersect(g.sel.Selector) {
			v.bad(path+".selector", "selects no pods: its requirements contradict each other")
			ok = false
		}
	}
	c, x := e.Groups.Control, e.Groups.Experimental
	if ok && c.Namespace == x.Namespace && selectorsIntersect(c.Selector, x.Selector) {
		v.bad("groups", "control and experimental may select the same pods in namespace %s: give the groups a label that tells them apart (e.g. matchLabels track: control and track: experimental)", c.Namespace)
	}
}

// span refuses a duration longer than MaxExperimentSpan.
func (v *validator) span(path string, d Duration) {
	if d.Std() > MaxExperimentSpan {
		v.bad(path, "%s is longer than the %s an experiment may last", d, MaxExperimentSpan)
	}
}

// selector reports whether sel (nil allowed) is a valid label selector.
func (v *validator) selector(path string, sel *metav1.LabelSelector) bool {
	if sel == nil {
		return true
	}
	if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
		v.bad(path, "%v", err)
		return false
	}
	return true
}

func (v *validator) indicator(e *Experiment, i int, names map[string]int) {
	ind := &e.SteadyState[i]
	path := "steady_state[" + strconv.Itoa(i) + "]"
	switch {
	case ind.Name == "":
		v.bad(path+".name", "is required")
	case !shortNameRE.MatchString(ind.Name):
		v.bad(path+".name", "%q is not a valid indicator name (1-63 letters, digits, '-' and '_', starting with a letter or digit)", ind.Name)
	default:
		if j, dup := names[ind.Name]; dup {
			v.bad(path+".name", "%q is also the name of steady_state[%d]", ind.Name, j)
		} else {
			names[ind.Name] = i
		}
	}
	var sources []string
	if ind.PromQL != "" {
		sources = append(sources, "promql")
	}
	if ind.Metric != nil {
		sources = append(sources, "metric")
	}
	if ind.Events != nil {
		sources = append(sources, "events")
	}
	if ind.Replicas != nil {
		sources = append(sources, "replicas")
	}
	switch len(sources) {
	case 0:
		v.bad(path, "needs a source: one of promql, metric, events, replicas")
	case 1:
	default:
		v.bad(path, "has %s: set exactly one source", strings.Join(sources, " and "))
	}
	if ind.PromQL != "" {
		v.promql(e, path+".promql", ind.PromQL)
	}
	if m := ind.Metric; m != nil {
		mp := path + ".metric"
		if !metricNameRE.MatchString(m.Name) {
			v.bad(mp+".name", "%q is not a metric name", m.Name)
		}
		for _, k := range sortedKeys(m.Labels) {
			switch {
			case !labelNameRE.MatchString(k) || k == "__name__":
				v.bad(mp+".labels", "%q is not a label name", k)
			case k == "namespace" || k == "pod":
				v.bad(mp+".labels", "%q comes from the group: leave it out", k)
			}
		}
		switch m.Aggregate {
		case AggregateAvg, AggregateSum, AggregateMin, AggregateMax:
		default:
			v.bad(mp+".aggregate", "%q is not one of avg, sum, min, max", m.Aggregate)
		}
	}
	if ev := ind.Events; ev != nil {
		if len(ev.Reasons) == 0 {
			v.bad(path+".events.reasons", "needs at least one reason, e.g. BackOff")
		}
		seen := map[string]bool{}
		for j, r := range ev.Reasons {
			rp := path + ".events.reasons[" + strconv.Itoa(j) + "]"
			switch {
			case r == "" || strings.IndexFunc(r, func(c rune) bool { return unicode.IsSpace(c) || !unicode.IsPrint(c) }) >= 0:
				v.bad(rp, "%q is not an Event reason (one word, e.g. BackOff)", r)
			case seen[r]:
				v.bad(rp, "%q is listed twice", r)
			}
			seen[r] = true
		}
	}
	if r := ind.Replicas; r != nil {
		switch r.Kind {
		case WorkloadDeployment, WorkloadStatefulSet, WorkloadReplicaSet:
		default:
			v.bad(path+".replicas.kind", "%q is not one of Deployment, StatefulSet, ReplicaSet", r.Kind)
		}
	}
	tol, err := ParseTolerance(ind.Tolerance)
	if err != nil {
		v.bad(path+".tolerance", "%v", err)
	}
	v.span(path+".window", ind.Window)
	switch {
	case ind.Window < 0:
		v.bad(path+".window", "must not be negative (got %s)", ind.Window)
	case ind.Window < e.Interval:
		v.bad(path+".window", "%s is shorter than the interval %s", ind.Window, e.Interval)
	case err == nil && tol.Kind == ToleranceStatistical && e.Interval > 0:
		n := MinMannWhitneySamples(*tol.P)
		if got := int64(ind.Window / e.Interval); got < int64(n) {
			v.bad(path+".window", "%s holds %d evaluations at interval %s, but %s can only find a difference at p=%s with at least %d samples per group: make the window at least %s",
				ind.Window, got, e.Interval, TestMannWhitneyU, fmtNum(*tol.P), n, e.Interval*Duration(n))
		}
	}
}

// MinMannWhitneySamples is the smallest n such that two samples of n values
// each can differ significantly at p in a two-sided Mann–Whitney U test:
// the smallest possible p-value with n and n values (no ties) is
// 2 / C(2n, n). It is 4 for p = 0.05 and 5 for p = 0.01.
func MinMannWhitneySamples(p float64) int {
	for n := 1; n < 1000; n++ {
		// C(2n, n) grows fast; compute 2/C(2n,n) in floating point.
		c := 1.0
		for k := 1; k <= n; k++ {
			c = c * float64(n+k) / float64(k)
		}
		if 2/c < p {
			return n
		}
	}
	return 1000
}

func (v *validator) promql(e *Experiment, path, tmpl string) {
	for _, g := range []GroupName{GroupExperimental, GroupControl} {
		sel, _ := e.Group(g)
		q, err := ExpandPromQL(tmpl, g, sel)
		if err != nil {
			v.bad(path, "%v", err)
			return
		}
		if err := checkPromQLShape(q); err != nil {
			v.bad(path, "%v (in the %s group's query %q)", err, g, clip(q, 200))
			return
		}
	}
	if !usesPromQLVars(tmpl) {
		v.bad(path, "the query does not use the group: put {{.Matchers}} (or {{.Selector}}, {{.Namespace}}, {{.Group}}) where the group's label matchers go")
	}
}

func (v *validator) step(e *Experiment, i int, names map[string]int) {
	st := &e.Method[i]
	path := "method[" + strconv.Itoa(i) + "]"
	switch {
	case st.Name == "":
		if st.Fault != "" { // otherwise the missing fault is the problem
			v.bad(path+".name", "is required")
		}
	case !shortNameRE.MatchString(st.Name):
		v.bad(path+".name", "%q is not a valid step name (1-63 letters, digits, '-' and '_', starting with a letter or digit)", st.Name)
	default:
		if j, dup := names[st.Name]; dup {
			v.bad(path+".name", "%q is also the name of method[%d]", st.Name, j)
		} else {
			names[st.Name] = i
		}
	}
	params := map[FaultKind]bool{
		FaultPodKill:            st.PodKill != nil,
		FaultNetworkPartition:   st.NetworkPartition != nil,
		FaultResourceStarvation: st.ResourceStarvation != nil,
	}
	paramName := map[FaultKind]string{
		FaultPodKill:            "pod_kill",
		FaultNetworkPartition:   "network_partition",
		FaultResourceStarvation: "resource_starvation",
	}
	switch st.Fault {
	case FaultPodKill, FaultNetworkPartition, FaultResourceStarvation:
		for _, k := range []FaultKind{FaultPodKill, FaultNetworkPartition, FaultResourceStarvation} {
			if k != st.Fault && params[k] {
				v.bad(path+"."+paramName[k], "is set but the fault is %s", st.Fault)
			}
		}
	case "":
		v.bad(path+".fault", "is required: one of pod-kill, network-partition, resource-starvation")
	default:
		v.bad(path+".fault", "%q is not one of pod-kill, network-partition, resource-starvation", st.Fault)
	}
	if st.Start < 0 {
		v.bad(path+".start", "must not be negative (got %s)", st.Start)
	}
	if st.Duration <= 0 {
		v.bad(path+".duration", "must be greater than 0 (got %s)", st.Duration)
	}
	v.span(path+".start", st.Start)
	v.span(path+".duration", st.Duration)
	switch st.Mode.Type {
	case ModeOne:
		if st.Mode.Value != 0 {
			v.bad(path+".mode.value", "must be absent for mode one")
		}
	case ModeCount:
		if st.Mode.Value < 1 {
			v.bad(path+".mode.value", "must be at least 1 for mode count (got %d)", st.Mode.Value)
		}
	case ModePercent:
		if st.Mode.Value < 1 || st.Mode.Value > 100 {
			v.bad(path+".mode.value", "must be between 1 and 100 for mode percent (got %d)", st.Mode.Value)
		}
	default:
		v.bad(path+".mode.type", "%q is not one of one, count, percent", st.Mode.Type)
	}
	if v.selector(path+".selector", st.Selector) && st.Selector != nil {
		merged, err := narrowSelector(e.Groups.Experimental.Selector, st.Selector)
		switch {
		case err != nil:
			v.bad(path+".selector", "%v", err)
		case !selectorsIntersect(merged):
			v.bad(path+".selector", "narrows the experimental group to no pods")
		}
	}
	switch st.Fault {
	case FaultPodKill:
		if pk := st.PodKill; pk != nil {
			if pk.GracePeriodSeconds != nil && *pk.GracePeriodSeconds < 0 {
				v.bad(path+".pod_kill.grace_period_seconds", "must not be negative (got %d)", *pk.GracePeriodSeconds)
			}
			if pk.Interval < 0 {
				v.bad(path+".pod_kill.interval", "must not be negative (got %s)", pk.Interval)
			}
		}
	case FaultNetworkPartition:
		np := st.NetworkPartition
		if np == nil {
			v.bad(path+".network_partition", "is required for network-partition: at least its direction")
			break
		}
		switch np.Direction {
		case DirectionIngress, DirectionEgress, DirectionBoth:
		default:
			v.bad(path+".network_partition.direction", "%q is not one of ingress, egress, both", np.Direction)
		}
		if p := np.Peer; p != nil {
			pp := path + ".network_partition.peer"
			if p.NamespaceSelector == nil && p.PodSelector == nil && len(p.CIDRs) == 0 {
				v.bad(pp, "needs namespace_selector, pod_selector or cidrs (leave peer out to cut the targets from everything)")
			}
			v.selector(pp+".namespace_selector", p.NamespaceSelector)
			v.selector(pp+".pod_selector", p.PodSelector)
			for j, c := range p.CIDRs {
				if _, _, err := net.ParseCIDR(c); err != nil {
					v.bad(pp+".cidrs["+strconv.Itoa(j)+"]", "%q is not a CIDR (e.g. 10.0.0.0/16)", c)
				}
			}
		}
	case FaultResourceStarvation:
		rs := st.ResourceStarvation
		if rs == nil {
			v.bad(path+".resource_starvation", "is required for resource-starvation: cpu_workers and/or memory_bytes")
			break
		}
		rp := path + ".resource_starvation"
		if rs.CPUWorkers < 0 {
			v.bad(rp+".cpu_workers", "must not be negative (got %d)", rs.CPUWorkers)
		}
		if rs.MemoryBytes < 0 {
			v.bad(rp+".memory_bytes", "must not be negative (got %d)", rs.MemoryBytes)
		}
		if rs.CPUWorkers <= 0 && rs.MemoryBytes <= 0 {
			v.bad(rp, "needs cpu_workers and/or memory_bytes")
		}
	}
	if len(v.problems) == 0 {
		// A last check against the contract the injectors enforce: the
		// command this step becomes must satisfy the fault-command schema.
		cmd, err := e.Command(i, "validate", e.RunID(time.Unix(0, 0)), time.Unix(0, 0))
		if err == nil {
			cmd.Issuer = "validate"
			var doc []byte
			if doc, err = json.Marshal(cmd); err == nil {
				err = Validate(KindFaultCommand, doc)
			}
		}
		if err != nil {
			v.bad(path, "does not make a valid fault command: %v", err)
		}
	}
}
