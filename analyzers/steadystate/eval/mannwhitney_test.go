package eval

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func near(a, b, tol float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= tol*math.Max(math.Abs(a), math.Abs(b))
}

// Reference values: scipy.stats.mannwhitneyu's documentation (the males and
// females example: U=17, exact p 0.1111…, asymptotic p 0.111346…), and for
// the rest an independent reference (brute-force enumeration for exact
// p-values, the textbook tie-corrected normal formula for the asymptotic
// ones), which agrees with scipy on the documented example.
func TestMannWhitneyKnownValues(t *testing.T) {
	cases := []struct {
		name  string
		x, y  []float64
		u, p  float64
		exact bool
	}{
		{"scipy docs: males vs females", []float64{19, 22, 16, 29, 24}, []float64{20, 11, 17, 12}, 17, 0.1111111111111111, true},
		{"complete separation 5 v 5", []float64{1, 2, 3, 4, 5}, []float64{6, 7, 8, 9, 10}, 0, 2.0 / 252, true},
		{"reversed separation", []float64{6, 7, 8, 9, 10}, []float64{1, 2, 3, 4, 5}, 25, 2.0 / 252, true},
		{"ties, exact", []float64{1, 2, 2, 3, 3, 3}, []float64{3, 4, 4, 5, 5, 6, 6}, 1.5, 5.0 / 1716, true},
		{"identical samples", []float64{1, 2, 3}, []float64{1, 2, 3}, 4.5, 1, true},
		{"all tied, exact", []float64{7, 7, 7}, []float64{7, 7, 7, 7}, 6, 1, true},
		{"one against one", []float64{1}, []float64{2}, 0, 1, true},
		{"latency 12 v 12, normal", []float64{0.21, 0.22, 0.19, 0.25, 0.20, 0.23, 0.24, 0.18, 0.22, 0.21, 0.26, 0.20},
			[]float64{0.30, 0.28, 0.35, 0.22, 0.31, 0.29, 0.33, 0.27, 0.36, 0.30, 0.32, 0.34}, 5, 0.00012043686466532514, false},
		{"many ties 25 v 30, normal",
			[]float64{2, 1, 3, 0, 0, 0, 2, 0, 1, 0, 0, 3, 3, 0, 1, 0, 3, 0, 0, 1, 0, 3, 0, 1, 0},
			[]float64{2, 3, 4, 2, 1, 3, 2, 1, 2, 3, 1, 1, 1, 2, 4, 4, 3, 4, 4, 3, 3, 2, 2, 2, 1, 3, 4, 3, 4, 3},
			127.5, 1.9259048806682914e-05, false},
		{"infinities rank last", []float64{math.Inf(1), math.Inf(1), 9}, []float64{1, 2, 3}, 9, 0.1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := MannWhitneyU(tc.x, tc.y)
			if err != nil {
				t.Fatal(err)
			}
			if r.U != tc.u || r.Exact != tc.exact || !near(r.P, tc.p, 1e-9) {
				t.Errorf("U=%v p=%.17g exact=%v, want U=%v p=%.17g exact=%v", r.U, r.P, r.Exact, tc.u, tc.p, tc.exact)
			}
		})
	}

	// The documented asymptotic p-value of the scipy example.
	_, p := normalP(17, 5, 4, 0)
	if !near(p, 0.11134688653314041, 1e-12) {
		t.Errorf("asymptotic p of the scipy example: %.17g", p)
	}
	// All values tied, too many for the exact path: no evidence.
	r, err := MannWhitneyU(slices.Repeat([]float64{3}, 60), slices.Repeat([]float64{3}, 50))
	if err != nil || r.Exact || r.P != 1 {
		t.Errorf("all tied, normal: %+v %v", r, err)
	}
}

func TestMannWhitneyErrors(t *testing.T) {
	for _, tc := range []struct{ x, y []float64 }{
		{nil, []float64{1}},
		{[]float64{1}, nil},
		{[]float64{math.NaN()}, []float64{1}},
		{[]float64{1}, []float64{2, math.NaN()}},
	} {
		if _, err := MannWhitneyU(tc.x, tc.y); err == nil {
			t.Errorf("%v, %v: no error", tc.x, tc.y)
		}
	}
}

// bruteForce enumerates every way to pick len(x) of the pooled values as
// "x" and counts the splits whose average-rank sum is at least as far from
// its mean as the observed one; it also counts U pair by pair.
func bruteForce(x, y []float64) (u, p float64) {
	for _, a := range x {
		for _, b := range y {
			switch {
			case a > b:
				u++
			case a == b:
				u += 0.5
			}
		}
	}
	pool := append(slices.Clone(x), y...)
	n, n1 := len(pool), len(x)
	rank := make([]float64, n) // average ranks, by pool index
	for i, v := range pool {
		less, equal := 0, 0
		for _, w := range pool {
			switch {
			case w < v:
				less++
			case w == v:
				equal++
			}
		}
		rank[i] = float64(less) + float64(equal+1)/2
	}
	observed := 0.0
	for i := range n1 {
		observed += rank[i]
	}
	mean := float64(n1) * float64(n+1) / 2
	dev := math.Abs(observed - mean)
	var extreme, all int
	for mask := 0; mask < 1<<n; mask++ {
		if popcount(mask) != n1 {
			continue
		}
		sum := 0.0
		for i := range n {
			if mask&(1<<i) != 0 {
				sum += rank[i]
			}
		}
		all++
		if math.Abs(sum-mean) >= dev-1e-9 {
			extreme++
		}
	}
	return u, float64(extreme) / float64(all)
}

func popcount(m int) int {
	c := 0
	for ; m != 0; m &= m - 1 {
		c++
	}
	return c
}

// TestMannWhitneyExactAgainstBruteForce checks the exact p-value, with and
// without ties, against enumeration of every split, for small samples.
func TestMannWhitneyExactAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 400 {
		n1, n2 := 1+rng.IntN(7), 1+rng.IntN(7)
		levels := 3 + rng.IntN(20) // few levels: many ties
		if trial%4 == 0 {
			levels = 1 << 30 // practically no ties
		}
		x, y := make([]float64, n1), make([]float64, n2)
		for i := range x {
			x[i] = float64(rng.IntN(levels))
		}
		for i := range y {
			y[i] = float64(rng.IntN(levels)) + float64(trial%3) // shifted sometimes
		}
		r, err := MannWhitneyU(x, y)
		if err != nil {
			t.Fatal(err)
		}
		u, p := bruteForce(x, y)
		if !r.Exact || r.U != u || !near(r.P, p, 1e-12) {
			t.Fatalf("x=%v y=%v: U=%v p=%.17g exact=%v, brute force U=%v p=%.17g", x, y, r.U, r.P, r.Exact, u, p)
		}
		// Swapping the samples mirrors U and keeps p.
		s, _ := MannWhitneyU(y, x)
		if s.U != float64(n1*n2)-r.U || !near(s.P, r.P, 1e-12) {
			t.Fatalf("x=%v y=%v: swapped U=%v p=%v, want U=%v p=%v", x, y, s.U, s.P, float64(n1*n2)-r.U, r.P)
		}
	}
}

// Larger exact cases (the DP on the smaller side) against brute force where
// enumeration is still feasible (C(16, 4) … C(18, 9)).
func TestMannWhitneyExactLarger(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sz := range [][2]int{{4, 12}, {12, 4}, {9, 9}, {10, 8}, {2, 16}} {
		x, y := make([]float64, sz[0]), make([]float64, sz[1])
		for i := range x {
			x[i] = float64(rng.IntN(8))
		}
		for i := range y {
			y[i] = float64(rng.IntN(8) + 1)
		}
		r, _ := MannWhitneyU(x, y)
		u, p := bruteForce(x, y)
		if !r.Exact || r.U != u || !near(r.P, p, 1e-12) {
			t.Errorf("%v: U=%v p=%.17g, brute force U=%v p=%.17g", sz, r.U, r.P, u, p)
		}
	}
}

func TestMannWhitneyExactBounds(t *testing.T) {
	seq := func(from, n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = float64(from + i)
		}
		return out
	}
	for _, tc := range []struct {
		n1, n2 int
		exact  bool
	}{
		{10, 10, true}, {10, 90, true}, {90, 10, true}, {10, 91, false}, {11, 11, false}, {3, 97, true},
	} {
		r, err := MannWhitneyU(seq(0, tc.n1), seq(tc.n1/2, tc.n2))
		if err != nil {
			t.Fatal(err)
		}
		if r.Exact != tc.exact {
			t.Errorf("%d v %d: exact %v, want %v", tc.n1, tc.n2, r.Exact, tc.exact)
		}
		if r.P < 0 || r.P > 1 {
			t.Errorf("%d v %d: p %v", tc.n1, tc.n2, r.P)
		}
	}
	// Exact and normal agree closely at the border without ties.
	x, y := seq(0, 10), seq(4, 10)
	r, _ := MannWhitneyU(x, y)
	_, p := normalP(r.U, 10, 10, 0)
	if !r.Exact || math.Abs(r.P-p) > 0.01 {
		t.Errorf("10 v 10: exact %v, normal %v", r.P, p)
	}
	// Complete separation of 10 and 90: the smallest possible p.
	r, _ = MannWhitneyU(seq(100, 10), seq(0, 90))
	if want := MinPValue(10, 90); !near(r.P, want, 1e-12) || r.U != 900 {
		t.Errorf("10 v 90 separated: U=%v p=%v, want p=%v", r.U, r.P, want)
	}
}

func TestMinPValue(t *testing.T) {
	for _, tc := range []struct {
		n1, n2 int
		want   float64
	}{
		{3, 3, 0.1}, {4, 4, 2.0 / 70}, {5, 5, 2.0 / 252}, {1, 1, 1}, {1, 2, 2.0 / 3}, {2, 2, 1.0 / 3},
		{0, 5, 1}, {5, 0, 1}, {5, 4, 2.0 / 126}, {1000, 1000, 0},
	} {
		if got := MinPValue(tc.n1, tc.n2); !near(got, tc.want, 1e-12) && !(tc.want == 0 && got < 1e-290) {
			t.Errorf("MinPValue(%d, %d) = %v, want %v", tc.n1, tc.n2, got, tc.want)
		}
	}
}
