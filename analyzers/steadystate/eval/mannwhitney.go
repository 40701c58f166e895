package eval

import (
	"errors"
	"math"
	"slices"
)

// Bounds of the exact Mann–Whitney computation: the exact distribution is
// used when the smaller sample has at most ExactMaxSmaller values and both
// together at most ExactMaxTotal (the computation then takes at most a few
// million additions); otherwise the normal approximation.
const (
	ExactMaxSmaller = 10
	ExactMaxTotal   = 100
)

// MannWhitney is the outcome of a two-sided Mann–Whitney U test.
type MannWhitney struct {
	// U is the statistic of the first sample x: the number of pairs
	// (x_i, y_j) with x_i > y_j, ties counting one half. It ranges from 0
	// to len(x)·len(y), with len(x)·len(y)/2 expected when the samples come
	// from the same distribution.
	U float64
	// P is the two-sided p-value: the probability, were both samples from
	// one distribution, of a U at least as far from its mean as this one.
	P float64
	// Exact says P comes from the exact distribution; otherwise from the
	// normal approximation, with Z its statistic.
	Exact bool
	Z     float64
}

// MannWhitneyU runs a two-sided Mann–Whitney U (Wilcoxon rank-sum) test of
// x against y. Tied values get their average rank.
//
//   - Exact (min(len(x), len(y)) ≤ ExactMaxSmaller and len(x)+len(y) ≤
//     ExactMaxTotal): the permutation distribution of the rank sum given
//     the observed ranks, ties included, counted by dynamic programming
//     over all C(n1+n2, n1) ways to split the ranks; P = P(|W − E W| ≥
//     |w − E W|). Without ties this is the classical exact distribution
//     (scipy.stats.mannwhitneyu method="exact", R wilcox.test exact=TRUE);
//     with ties it is exact where those fall back to the normal
//     approximation.
//   - Otherwise the normal approximation with tie correction and continuity
//     correction: σ² = n1·n2/12 · ((n+1) − Σ(t³−t)/(n(n−1))), Z = (|U −
//     n1·n2/2| − 0.5)/σ, P = 2·(1 − Φ(Z)) capped at 1 (scipy
//     method="asymptotic", use_continuity=True; R correct=TRUE). All values
//     tied (σ = 0) gives P = 1.
//
// Both samples must be non-empty and free of NaN; ±Inf are ordinary
// values (ranked first and last).
func MannWhitneyU(x, y []float64) (MannWhitney, error) {
	n1, n2 := len(x), len(y)
	if n1 == 0 || n2 == 0 {
		return MannWhitney{}, errors.New("mann-whitney-u: a sample is empty")
	}
	type obs struct {
		v   float64
		inX bool
	}
	all := make([]obs, 0, n1+n2)
	for _, v := range x {
		if math.IsNaN(v) {
			return MannWhitney{}, errors.New("mann-whitney-u: NaN in the first sample")
		}
		all = append(all, obs{v, true})
	}
	for _, v := range y {
		if math.IsNaN(v) {
			return MannWhitney{}, errors.New("mann-whitney-u: NaN in the second sample")
		}
		all = append(all, obs{v, false})
	}
	slices.SortFunc(all, func(a, b obs) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	n := n1 + n2
	// Doubled average ranks are integers: a tie group at sorted positions
	// i..j (ranks i+1..j+1) has doubled rank i+j+2.
	ranks2 := make([]int, n)
	w2x := 0    // doubled rank sum of x
	ties := 0.0 // Σ (t³ − t) over tie groups
	for i := 0; i < n; {
		j := i
		for j+1 < n && all[j+1].v == all[i].v {
			j++
		}
		for k := i; k <= j; k++ {
			ranks2[k] = i + j + 2
			if all[k].inX {
				w2x += i + j + 2
			}
		}
		if t := float64(j - i + 1); t > 1 {
			ties += t*t*t - t
		}
		i = j + 1
	}
	u := float64(w2x)/2 - float64(n1*(n1+1))/2
	res := MannWhitney{U: u}
	if min(n1, n2) <= ExactMaxSmaller && n <= ExactMaxTotal {
		res.Exact = true
		res.P = exactP(ranks2, n1, w2x)
		return res, nil
	}
	res.Z, res.P = normalP(u, n1, n2, ties)
	return res, nil
}

// normalP is the normal approximation of the two-sided p-value of U for
// samples of n1 and n2 values with tie term ties = Σ(t³ − t), with tie and
// continuity correction, and its Z.
func normalP(u float64, n1, n2 int, ties float64) (z, p float64) {
	mu := float64(n1) * float64(n2) / 2
	nf := float64(n1 + n2)
	sigma2 := float64(n1) * float64(n2) / 12 * ((nf + 1) - ties/(nf*(nf-1)))
	if sigma2 <= 0 {
		return 0, 1 // every value tied: no evidence of a difference
	}
	z = (math.Abs(u-mu) - 0.5) / math.Sqrt(sigma2)
	return z, math.Min(1, math.Erfc(z/math.Sqrt2))
}

// exactP is the two-sided exact p-value of the doubled rank sum w2x of the
// n1 values of x among the doubled ranks ranks2 (all n values): the share of
// the C(n, n1) splits whose rank sum is at least as far from its mean.
// It counts splits of the smaller side, which is symmetric: W_y = total −
// W_x and E W_y = total − E W_x.
func exactP(ranks2 []int, n1, w2x int) float64 {
	n := len(ranks2)
	k, w := n1, w2x
	if n-n1 < n1 {
		total := n * (n + 1) // doubled sum of 1..n
		k, w = n-n1, total-w2x
	}
	mean2 := k * (n + 1) // doubled expected rank sum of k values
	dev := abs(w - mean2)
	sorted := slices.Clone(ranks2)
	slices.Sort(sorted)
	maxSum := 0
	for _, r := range sorted[n-k:] {
		maxSum += r
	}
	// counts[j][s]: ways to choose j of the ranks seen so far with doubled
	// sum s. C(100, 10) < 2^45, so uint64 never overflows within the
	// bounds.
	counts := make([][]uint64, k+1)
	for j := range counts {
		counts[j] = make([]uint64, maxSum+1)
	}
	counts[0][0] = 1
	for i, r := range ranks2 {
		for j := min(i+1, k); j >= 1; j-- {
			prev, cur := counts[j-1], counts[j]
			for s := maxSum - r; s >= 0; s-- {
				if prev[s] != 0 {
					cur[s+r] += prev[s]
				}
			}
		}
	}
	var extreme, all uint64
	for s, c := range counts[k] {
		all += c
		if abs(s-mean2) >= dev {
			extreme += c
		}
	}
	return float64(extreme) / float64(all)
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

// MinPValue is the smallest two-sided p-value a Mann–Whitney U test of
// samples of n1 and n2 values can give (no ties): 2 / C(n1+n2, n1), or 1
// for an empty sample. A test whose MinPValue is at least the significance
// can never find a difference.
func MinPValue(n1, n2 int) float64 {
	if n1 <= 0 || n2 <= 0 {
		return 1
	}
	k := min(n1, n2)
	c := 1.0 // C(n1+n2, k), built up while it matters
	for i := 1; i <= k; i++ {
		c = c * float64(n1+n2-k+i) / float64(i)
		if c > 1e300 {
			break
		}
	}
	return math.Min(1, 2/c)
}
