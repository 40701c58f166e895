package eval

import (
	"encoding/binary"
	"math"
	"testing"
)

// samplesFrom splits fuzz input into two samples of small integers (many
// ties) or, with the first byte odd, arbitrary float64 bit patterns.
func samplesFrom(in []byte) (x, y []float64) {
	if len(in) < 2 {
		return nil, nil
	}
	split, floats := int(in[0]>>1), in[0]&1 == 1
	body := in[1:]
	var vals []float64
	if floats {
		for len(body) >= 8 {
			v := math.Float64frombits(binary.LittleEndian.Uint64(body))
			if !math.IsNaN(v) {
				vals = append(vals, v)
			}
			body = body[8:]
		}
	} else {
		for _, b := range body {
			vals = append(vals, float64(b%16))
		}
	}
	if len(vals) == 0 {
		return nil, nil
	}
	split %= len(vals) + 1
	return vals[:split], vals[split:]
}

// FuzzMannWhitneyU checks that the test never panics and that its results
// are coherent: p in [0, 1], U in [0, n1·n2], swapping the samples mirrors
// U and keeps p, and small exact cases agree with brute-force enumeration.
func FuzzMannWhitneyU(f *testing.F) {
	f.Add([]byte{10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte{6, 1, 1, 1, 2, 2, 2})
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0, 0x7f})
	f.Fuzz(func(t *testing.T, in []byte) {
		x, y := samplesFrom(in)
		r, err := MannWhitneyU(x, y)
		if len(x) == 0 || len(y) == 0 {
			if err == nil {
				t.Fatal("empty sample accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		n1, n2 := len(x), len(y)
		if !(r.P >= 0 && r.P <= 1) || r.U < 0 || r.U > float64(n1*n2) {
			t.Fatalf("x=%v y=%v: U=%v p=%v", x, y, r.U, r.P)
		}
		s, err := MannWhitneyU(y, x)
		if err != nil || s.U != float64(n1*n2)-r.U || !near(s.P, r.P, 1e-9) {
			t.Fatalf("x=%v y=%v: swapped U=%v p=%v, want U=%v p=%v", x, y, s.U, s.P, float64(n1*n2)-r.U, r.P)
		}
		if n1+n2 <= 14 {
			u, p := bruteForce(x, y)
			if !r.Exact || r.U != u || !near(r.P, p, 1e-12) {
				t.Fatalf("x=%v y=%v: U=%v p=%v, brute force U=%v p=%v", x, y, r.U, r.P, u, p)
			}
		}
	})
}
