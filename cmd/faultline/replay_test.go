package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultline/faultline/schemas"
)

// TestReplay runs `faultline replay` as a user does: recorded events with a
// line that is not an audit event, gzipped, findings on stdout (each a
// valid finding document), the reject with file and line, the summary on
// stderr, and exit status 2.
func TestReplay(t *testing.T) {
	dir := t.TempDir()
	exec1, err := os.ReadFile("../../analyzers/rules/testdata/recorded/exec-suspicious-command.pos.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSpace(string(exec1)), "\n")
	in := lines[0] + `{"kind": 0}` + "\n" + strings.Join(lines[1:], "") + "\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(in))
	zw.Close()
	file := filepath.Join(dir, "audit.log.gz")
	if err := os.WriteFile(file, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "replay", "--audit", file, "--cluster", "prod-eu-1", "--quiet")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2\n%s", err, stderr.String())
	}
	for _, w := range []string{
		file + ":2: data not recognized as a Kubernetes audit event",
		"replay: 6 events read, 6 findings, 1 rejected lines",
		"exec-suspicious-command", "pod-exec",
	} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
		}
	}
	sc := bufio.NewScanner(&stdout)
	n := 0
	for sc.Scan() {
		n++
		if err := schemas.Validate(schemas.KindFinding, sc.Bytes()); err != nil {
			t.Errorf("finding %d: %v\n%s", n, err, sc.Text())
		}
		if !strings.Contains(sc.Text(), `"cluster":{"name":"prod-eu-1"}`) {
			t.Errorf("finding %d without the cluster: %s", n, sc.Text())
		}
	}
	if n != 6 {
		t.Errorf("%d findings on stdout, want 6", n)
	}

	// Clean input: exit 0, from standard input.
	cmd = exec.Command(binary, "replay", "--quiet")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clean replay: %v\n%s", err, out)
	}
}

// TestRulesTestCommand runs `faultline rules test` on a directory of one
// user rule and its test, and on a broken rule.
func TestRulesTestCommand(t *testing.T) {
	dir := t.TempDir()
	events, err := filepath.Abs("../../analyzers/rules/testdata/recorded/forbidden-burst.pos.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mine.yaml", `rules:
  - id: low-priv-denied
    name: Low-privilege user refused
    severity: low
    match: {decision: denied}
    condition: user.username == "faultline-user"
`)
	write("mine.test.yaml", "tests:\n  - {rule: low-priv-denied, events: "+events+", hits: 12}\n  - {rule: forbidden-burst, events: "+events+", hits: 1}\n")
	out, err := exec.Command(binary, "rules", "test", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2 passed, 0 failed") {
		t.Fatalf("rules test: %v\n%s", err, out)
	}
	write("broken.yaml", "rules:\n  - {id: broken, name: b, severity: low, condition: 'verb =='}\n")
	out, err = exec.Command(binary, "rules", "test", dir).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "broken.yaml: rule broken: condition: CEL:") {
		t.Fatalf("broken rule: %v\n%s", err, out)
	}
}
