// Package eval judges steady-state indicators: one evaluation of one
// indicator against its tolerance (Judge), the Mann–Whitney U test behind
// statistical tolerances (MannWhitneyU), and the per-indicator memory that
// turns failing evaluations into a deviation after the experiment's
// hysteresis and counts telemetry gaps (Tracker). It is pure: no bus, no
// clock, no Kubernetes; the steady-state analyzer feeds it samples.
//
// # What one evaluation looks at
//
// The analyzer passes, per group, the values of the indicator within the
// indicator's window (one value per group per interval for PromQL, metric
// and replicas indicators; the events indicator's rate). NaN values (a
// ratio over no traffic: 0/0) are dropped as missing; ±Inf values are kept.
// A group's value is the mean of what is left, and is what Deviation
// reports with the count as samples.
//
//   - absolute: mean(experimental) Op Value;
//   - range: Min ≤ mean(experimental) ≤ Max;
//   - relative: mean(experimental) Op mean(control) × Factor — both means
//     over the same window, so with the default window (one interval) it
//     compares the latest value of each group;
//   - statistical: a two-sided Mann–Whitney U test between the experimental
//     and the control values; failing when p < P (the groups differ, in
//     either direction).
//
// No experimental value is no data; for relative and statistical, no
// control value is no data too. A statistical test whose sample sizes
// cannot reach p < P at all (2 / C(n1+n2, n1) ≥ P, e.g. 3 and 3 values at
// p = 0.05) is no data as well: a test that can never fail proves nothing.
package eval

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/faultline/faultline/schemas"
)

// Result is one evaluation of one indicator.
type Result struct {
	// Verdict is ok, failing or no-data; never deviated, which takes the
	// hysteresis (Tracker).
	Verdict schemas.Verdict
	// Groups holds each group's mean and sample count, as a Deviation
	// carries them. Control is set when the tolerance needs it or control
	// values were passed (non-nil).
	Groups schemas.Groups
	// Bound is the value the experimental mean was compared with:
	// Value for absolute, mean(control) × Factor for relative; nil
	// otherwise.
	Bound *float64
	// PValue is the Mann–Whitney U test's two-sided p-value, for
	// statistical tolerances when the test ran.
	PValue *float64
	// Message explains the verdict for people, without the indicator's
	// name, e.g. "experimental 0.013 is not < 0.01".
	Message string
}

// Judge evaluates one indicator: the experimental and control values of
// the window against tol. It returns an error only for a tolerance that
// does not validate (schemas.Tolerance.Validate); missing data is a
// VerdictNoData result, not an error.
func Judge(tol schemas.Tolerance, experimental, control []float64) (Result, error) {
	if err := tol.Validate(); err != nil {
		return Result{}, fmt.Errorf("judge: %w", err)
	}
	ex, ct := withoutNaN(experimental), withoutNaN(control)
	exMean, ctMean := mean(ex), mean(ct)
	r := Result{Groups: schemas.Groups{Experimental: groupValue(ex, exMean)}}
	if control != nil || tol.NeedsControl() {
		g := groupValue(ct, ctMean)
		r.Groups.Control = &g
	}
	noData := func(format string, args ...any) (Result, error) {
		r.Verdict = schemas.VerdictNoData
		r.Message = fmt.Sprintf(format, args...)
		return r, nil
	}
	if len(ex) == 0 {
		return noData("no data from the experimental group")
	}
	if tol.NeedsControl() && len(ct) == 0 {
		return noData("no data from the control group")
	}
	verdict := func(ok bool, format string, args ...any) (Result, error) {
		r.Verdict = schemas.VerdictFailing
		if ok {
			r.Verdict = schemas.VerdictOK
		}
		r.Message = fmt.Sprintf(format, args...)
		return r, nil
	}
	switch tol.Kind {
	case schemas.ToleranceAbsolute:
		if math.IsNaN(exMean) {
			return noData("the experimental mean is undefined (both +Inf and -Inf samples)")
		}
		bound := *tol.Value
		r.Bound = &bound
		ok := compare(exMean, tol.Op, bound)
		return verdict(ok, "experimental %s %s %s %s", num(exMean), is(ok), tol.Op, num(bound))
	case schemas.ToleranceRange:
		if math.IsNaN(exMean) {
			return noData("the experimental mean is undefined (both +Inf and -Inf samples)")
		}
		ok := exMean >= *tol.Min && exMean <= *tol.Max
		where := "within"
		if !ok {
			where = "outside"
		}
		return verdict(ok, "experimental %s is %s [%s, %s]", num(exMean), where, num(*tol.Min), num(*tol.Max))
	case schemas.ToleranceRelative:
		bound := ctMean * *tol.Factor
		if math.IsNaN(exMean) || math.IsNaN(bound) {
			return noData("a group's mean is undefined (both +Inf and -Inf samples)")
		}
		r.Bound = &bound
		ok := compare(exMean, tol.Op, bound)
		return verdict(ok, "experimental %s %s %s control %s × %s = %s", num(exMean), is(ok), tol.Op, num(ctMean), num(*tol.Factor), num(bound))
	case schemas.ToleranceStatistical:
		p := *tol.P
		if min := MinPValue(len(ex), len(ct)); min >= p {
			return noData("too few samples for %s at p=%s: %d experimental and %d control values cannot reach p < %s (the smallest possible p is %s)",
				tol.Test, num(p), len(ex), len(ct), num(p), num(min))
		}
		mw, err := MannWhitneyU(ex, ct)
		if err != nil {
			return Result{}, fmt.Errorf("judge: %w", err)
		}
		r.PValue = &mw.P
		method := "normal approximation"
		if mw.Exact {
			method = "exact"
		}
		if mw.P < p {
			return verdict(false, "experimental and control differ: Mann–Whitney U=%s, p=%s < %s (%s; n=%d, %d; means %s, %s)",
				num(mw.U), num(mw.P), num(p), method, len(ex), len(ct), num(exMean), num(ctMean))
		}
		return verdict(true, "no difference between experimental and control: Mann–Whitney U=%s, p=%s ≥ %s (%s; n=%d, %d; means %s, %s)",
			num(mw.U), num(mw.P), num(p), method, len(ex), len(ct), num(exMean), num(ctMean))
	}
	return Result{}, errors.New("judge: unreachable tolerance kind " + string(tol.Kind))
}

func is(ok bool) string {
	if ok {
		return "is"
	}
	return "is not"
}

func compare(x float64, op string, bound float64) bool {
	switch op {
	case "<":
		return x < bound
	case "<=":
		return x <= bound
	case ">":
		return x > bound
	case ">=":
		return x >= bound
	}
	return false
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

func withoutNaN(vs []float64) []float64 {
	out := make([]float64, 0, len(vs))
	for _, v := range vs {
		if !math.IsNaN(v) {
			out = append(out, v)
		}
	}
	return out
}

func groupValue(vs []float64, m float64) schemas.GroupValue {
	g := schemas.GroupValue{Samples: len(vs)}
	if len(vs) > 0 {
		v := schemas.SampleValue(m)
		g.Value = &v
	}
	return g
}

// Mean is the mean of the values that are not NaN, and how many there
// were; NaN when there were none, or when both +Inf and -Inf occur.
func Mean(vs []float64) (float64, int) {
	vs = withoutNaN(vs)
	return mean(vs), len(vs)
}

// mean of values without NaN: infinities decide when present; finite values
// are summed with Neumaier's compensation (and divided first when the sum
// would overflow).
func mean(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	var posInf, negInf bool
	var sum, comp float64
	for _, v := range vs {
		switch {
		case math.IsInf(v, 1):
			posInf = true
			continue
		case math.IsInf(v, -1):
			negInf = true
			continue
		}
		t := sum + v
		if math.Abs(sum) >= math.Abs(v) {
			comp += (sum - t) + v
		} else {
			comp += (v - t) + sum
		}
		sum = t
	}
	switch {
	case posInf && negInf:
		return math.NaN()
	case posInf:
		return math.Inf(1)
	case negInf:
		return math.Inf(-1)
	}
	n := float64(len(vs))
	if m := (sum + comp) / n; !math.IsInf(m, 0) && !math.IsNaN(m) {
		return m
	}
	m := 0.0
	for _, v := range vs {
		m += v / n
	}
	return m
}
