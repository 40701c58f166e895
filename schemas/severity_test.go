package schemas

import (
	"encoding/json"
	"testing"
)

func TestSeverity(t *testing.T) {
	tests := []struct {
		in    string
		want  Severity
		score float64
	}{
		{"info", SeverityInfo, 0},
		{"low", SeverityLow, 21},
		{"Medium", SeverityMedium, 47},
		{" HIGH ", SeverityHigh, 73},
		{"critical", SeverityCritical, 99},
	}
	for _, tt := range tests {
		s, err := ParseSeverity(tt.in)
		if err != nil || s != tt.want {
			t.Errorf("ParseSeverity(%q) = %v, %v", tt.in, s, err)
		}
		if s.RiskScore() != tt.score {
			t.Errorf("%v.RiskScore() = %v, want %v", s, s.RiskScore(), tt.score)
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back Severity
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("JSON round trip of %v: %s -> %v, %v", s, b, back, err)
		}
	}
	for _, bad := range []string{"", "severe", "4", "informational"} {
		if _, err := ParseSeverity(bad); err == nil {
			t.Errorf("ParseSeverity(%q) succeeded", bad)
		}
	}
	if err := json.Unmarshal([]byte(`"nope"`), new(Severity)); err == nil {
		t.Error("unmarshal of an unknown severity succeeded")
	}
	if _, err := json.Marshal(Severity(9)); err == nil {
		t.Error("marshal of an undefined severity succeeded")
	}
	if Severity(9).Valid() || Severity(-1).Valid() || Severity(9).RiskScore() != 0 || Severity(9).String() != "Severity(9)" {
		t.Error("undefined severity handled wrongly")
	}
	order := []Severity{SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}
	for i, a := range order {
		for j, b := range order {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", a, b, got, want)
			}
			if a.AtLeast(b) != (i >= j) {
				t.Errorf("%v.AtLeast(%v) wrong", a, b)
			}
		}
	}
}
