package rules

import (
	"testing"
	"time"
)

// TestWindowStateAdd: what one window does with each matching event, as
// every store applies it.
func TestWindowStateAdd(t *testing.T) {
	type step struct {
		sec   int    // event time, seconds
		id    uint64 // event digest
		val   uint64 // distinct value digest
		fire  bool
		count int
	}
	tests := []struct {
		name     string
		count    int
		distinct bool
		steps    []step
	}{
		{"counts events and fires at the count, then afresh", 3, false, []step{
			{0, 1, 0, false, 1}, {1, 2, 0, false, 2}, {2, 3, 0, true, 3},
			{3, 4, 0, false, 1}, {4, 5, 0, false, 2}, {5, 6, 0, true, 3},
		}},
		{"events older than the window drop out", 3, false, []step{
			{0, 1, 0, false, 1}, {30, 2, 0, false, 2}, {61, 3, 0, false, 2}, {62, 4, 0, true, 3},
		}},
		{"a redelivered event counts once", 3, false, []step{
			{0, 1, 0, false, 1}, {1, 2, 0, false, 2}, {1, 2, 0, false, 2}, {0, 1, 0, false, 2}, {2, 3, 0, true, 3},
		}},
		{"the event that fired fires again when redelivered", 2, false, []step{
			{0, 1, 0, false, 1}, {1, 2, 0, true, 2}, {1, 2, 0, true, 2}, {2, 3, 0, false, 1},
		}},
		{"distinct values", 3, true, []step{
			{0, 1, 10, false, 1}, {1, 2, 10, false, 1}, {2, 3, 11, false, 2}, {3, 4, 11, false, 2}, {4, 5, 12, true, 3},
		}},
		{"a distinct value seen again stays in the window longer", 2, true, []step{
			{0, 1, 10, false, 1}, {50, 2, 10, false, 1}, {100, 3, 11, true, 2},
		}},
		{"events out of order, each counted on its own time", 3, false, []step{
			// 20, 30 and 75 are within a minute of each other.
			{30, 1, 0, false, 1}, {10, 2, 0, false, 2}, {75, 3, 0, false, 2}, {20, 4, 0, true, 3}, {76, 5, 0, false, 1},
		}},
	}
	base := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var st WindowState
			for i, s := range tc.steps {
				fire, n := st.add(time.Minute, tc.count, tc.distinct, s.id, s.val, base.Add(time.Duration(s.sec)*time.Second))
				if fire != s.fire || n != s.count {
					t.Fatalf("step %d %+v: fired %v with %d", i, s, fire, n)
				}
				if len(st.Entries) >= tc.count {
					t.Fatalf("step %d: %d entries kept, count %d", i, len(st.Entries), tc.count)
				}
			}
		})
	}
}
