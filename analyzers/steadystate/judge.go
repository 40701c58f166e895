package steadystate

import (
	"errors"
	"fmt"

	"github.com/faultline/faultline/schemas"
)

// judge gives the verdict of one evaluation from the values of each group's
// window: no data when the experimental group (or, for a tolerance that
// compares, the control group) has none; otherwise the mean of each window
// against the bound.
func judge(tol schemas.Tolerance, experimental, control []float64) (schemas.Verdict, *float64, error) {
	if len(experimental) == 0 || tol.NeedsControl() && len(control) == 0 {
		return schemas.VerdictNoData, nil, nil
	}
	x := mean(experimental)
	var ok bool
	switch tol.Kind {
	case schemas.ToleranceAbsolute:
		ok = compare(x, tol.Op, *tol.Value)
	case schemas.ToleranceRange:
		ok = x >= *tol.Min && x <= *tol.Max
	case schemas.ToleranceRelative:
		ok = compare(x, tol.Op, mean(control)**tol.Factor)
	case schemas.ToleranceStatistical:
		return schemas.VerdictNoData, nil, errors.New("statistical tolerances are not evaluated by this version")
	default:
		return schemas.VerdictNoData, nil, fmt.Errorf("unknown tolerance kind %q", tol.Kind)
	}
	if ok {
		return schemas.VerdictOK, nil, nil
	}
	return schemas.VerdictFailing, nil, nil
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func compare(x float64, op string, bound float64) bool {
	switch op {
	case "<":
		return x < bound
	case "<=", "≤":
		return x <= bound
	case ">":
		return x > bound
	case ">=", "≥":
		return x >= bound
	}
	return false
}
