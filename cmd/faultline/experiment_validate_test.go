package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// experiment validate accepts the documented examples and lists every
// problem of a bad file with its field, exiting 2.
func TestExperimentValidate(t *testing.T) {
	out, err := exec.Command(binary, "experiment", "validate", "../../schemas/testdata/experiments/pod-kill-error-rate.good.yaml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "is valid") {
		t.Fatalf("good file: %v\n%s", err, out)
	}
	out, err = exec.Command(binary, "experiment", "validate", "../../schemas/testdata/experiments/every-problem.bad.yaml").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("bad file: exit %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "\n  - "); n < 2 || !strings.Contains(string(out), "method[0].fault") {
		t.Errorf("bad file: want every problem with its field, got:\n%s", out)
	}
	out, err = exec.Command(binary, "experiment", "run", "../../schemas/testdata/experiments/minimal.good.yaml", "--bus.urls", "nats://127.0.0.1:1").CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--key") {
		t.Errorf("run without a key: %v\n%s", err, out)
	}
}
