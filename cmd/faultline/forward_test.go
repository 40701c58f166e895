package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/internal/testfluent"
	"github.com/faultline/faultline/schemas"
)

// 'faultline forward', and 'faultline run' with sinks.fluent.address set,
// send the findings on the bus to a real Fluent Forward receiver and stop
// cleanly; 'forward' without an address refuses to start.
func TestForwardAndRunSendFindings(t *testing.T) {
	recv := testfluent.Start(t, testfluent.Options{})
	srv := bustest.StartServer(t)
	b := bustest.Connect(t, srv, bus.Options{})
	publish := func(i int) string {
		at := time.Date(2026, 11, 22, 10, 0, i, 500, time.UTC)
		f := schemas.NewFinding("rules", schemas.Rule{ID: "cli-test", Name: "CLI test"}, schemas.SeverityLow, "audit_cli_"+string(rune('a'+i)), at)
		f.Orchestrator.Cluster.Name = "default"
		f.Message = "from the CLI test"
		body, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		env, err := schemas.NewEnvelopeRaw(schemas.Attributes{ID: f.Event.ID, Source: "/test", Type: schemas.TypeFinding, Subject: "rules", Cluster: "default", Time: at}, body)
		if err != nil {
			t.Fatal(err)
		}
		data, err := env.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Publish(context.Background(), bus.Message{Subject: bus.FindingSubject("default", "rules"), ID: f.Event.ID, Data: data}); err != nil {
			t.Fatal(err)
		}
		return f.Event.ID
	}

	out, err := runCLI(t, "forward", "--bus.urls", srv.ClientURL())
	if err == nil || !strings.Contains(out, "sinks.fluent.address is not set") {
		t.Errorf("forward without an address: %v\n%s", err, out)
	}

	for i, args := range [][]string{
		{"forward", "--bus.urls", srv.ClientURL(), "--sinks.fluent.address", recv.Listen, "--http-listen", "127.0.0.1:0"},
		{"run", "--bus.urls", srv.ClientURL(), "--sinks.fluent.address", recv.Listen, "--http-listen", "127.0.0.1:0", "--data-dir", t.TempDir()},
	} {
		id := publish(i)
		p, addr := startProcess(t, 30*time.Second, "fluent: forwarding", "address", append(args, "--log-format", "json")...)
		if addr != recv.Listen {
			t.Errorf("%s: forwarding to %q", args[0], addr)
		}
		recv.WaitFor(30*time.Second, args[0]+": finding "+id, func(rs []testfluent.Record) bool {
			return testfluent.CountByID(rs, "envelope.id")[id] > 0
		})
		p.stop(t, 20*time.Second)
	}
	for _, r := range recv.Records() {
		if r.Tag != "faultline.finding" || r.Body != "from the CLI test" {
			t.Errorf("record %+v", r)
		}
	}
}

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
	return string(out), err
}
