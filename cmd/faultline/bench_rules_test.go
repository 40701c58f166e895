package main

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestBenchRules runs `faultline bench rules` briefly, as a user does, on
// the recorded corpora and on an --audit file, and checks the shape of its
// output: a line per round, corpus and path, then a table with each rate
// and its ratio to the decode rate; and the same as JSON.
func TestBenchRules(t *testing.T) {
	const corpusDir = "../../analyzers/rules/testdata/recorded"
	tests := []struct {
		name    string
		args    []string
		corpora []string
	}{
		{"recorded corpora", []string{"--corpus-dir", corpusDir}, []string{"recorded", "benign-only"}},
		{"an audit file", []string{"--corpus-dir", "", "--audit", corpusDir + "/forbidden-burst.pos.jsonl"}, []string{"forbidden-burst.pos.jsonl"}},
	}
	round := regexp.MustCompile(`^round 1  (\S+) +(decode|bus|runner|replay) +\d+ events/s  +\d+ events/CPU-s$`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"bench", "rules", "--passes", "1", "--rounds", "1"}, tc.args...)
			out, err := exec.Command(binary, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			rounds := 0
			for _, l := range lines {
				if round.MatchString(l) {
					rounds++
				}
			}
			if want := 4 * len(tc.corpora); rounds != want {
				t.Errorf("%d round lines, want %d:\n%s", rounds, want, out)
			}
			if !strings.Contains(string(out), "per core: GOMAXPROCS=1 for the run") {
				t.Errorf("output does not say how it is per core:\n%s", out)
			}
			// A row per corpus (events per second), then one of events
			// per CPU second.
			row := regexp.MustCompile(`^ *(\S+) +\d+ +\d+ +\d+ +events/s +\d+ +\d+ \(\d+\.\d\dx\) +\d+ \(\d+\.\d\dx\) +\d+ \(\d+\.\d\dx\)$`)
			cpuRow := regexp.MustCompile(`^ +events/CPU-s +\d+ +\d+ \(\d+\.\d\dx\) +\d+ \(\d+\.\d\dx\) +\d+ \(\d+\.\d\dx\)$`)
			var got []string
			for i, l := range lines {
				if m := row.FindStringSubmatch(l); m != nil {
					got = append(got, m[1])
					if i+1 >= len(lines) || !cpuRow.MatchString(lines[i+1]) {
						t.Errorf("no CPU row after %q", l)
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.corpora, ",") {
				t.Errorf("table rows for %v, want %v:\n%s", got, tc.corpora, out)
			}
		})
	}

	out, err := exec.Command(binary, "bench", "rules", "--passes", "1", "--rounds", "1", "--json",
		"--corpus-dir", "", "--audit", corpusDir+"/secret-rapid-access.pos.jsonl").Output()
	if err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	var rep struct {
		GOMAXPROCS int `json:"gomaxprocs"`
		Corpora    []struct {
			Events   int `json:"events"`
			Findings int `json:"findings_per_pass"`
			Paths    []struct {
				Path     string  `json:"path"`
				Rate     float64 `json:"events_per_s"`
				Ratio    float64 `json:"ratio_to_decode"`
				CPURate  float64 `json:"events_per_cpu_s"`
				CPURatio float64 `json:"cpu_ratio_to_decode"`
			} `json:"paths"`
		} `json:"corpora"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if rep.GOMAXPROCS != 1 || len(rep.Corpora) != 1 || rep.Corpora[0].Events == 0 || rep.Corpora[0].Findings == 0 || len(rep.Corpora[0].Paths) != 4 {
		t.Fatalf("report %+v", rep)
	}
	for _, p := range rep.Corpora[0].Paths {
		if p.Rate <= 0 || p.Ratio <= 0 || p.CPURate <= 0 || p.CPURatio <= 0 {
			t.Errorf("path %+v", p)
		}
	}

	// No events at all is a usage error, not an empty report.
	if out, err := exec.Command(binary, "bench", "rules", "--corpus-dir", "").CombinedOutput(); err == nil || !strings.Contains(string(out), "no events") {
		t.Errorf("no corpus: %v\n%s", err, out)
	}
}
