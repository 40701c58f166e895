package schemas

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testCommand() *FaultCommand {
	grace := int64(0)
	expires := time.Date(2025, 6, 3, 11, 1, 0, 0, time.FixedZone("CEST", 2*3600))
	return &FaultCommand{
		ID:           "cmd-1",
		ExperimentID: "checkout-pod-kill",
		Fault:        FaultPodKill,
		Target: Target{
			Namespace: "shop",
			Selector:  &metav1.LabelSelector{MatchLabels: map[string]string{"b": "2", "a": "1"}},
		},
		Mode:             Mode{Type: ModePercent, Value: 50},
		Duration:         Duration(5 * time.Minute),
		PodKill:          &PodKillParams{GracePeriodSeconds: &grace, Interval: Duration(30 * time.Second)},
		IssuedAt:         time.Date(2025, 6, 3, 11, 0, 0, 123456789, time.UTC),
		ExpiresAt:        &expires,
		HeartbeatTimeout: Duration(15 * time.Second),
		Issuer:           "runner",
	}
}

// A command signed by the issuer verifies at the injector after a trip
// through JSON, and any change to it breaks the signature.
func TestFaultCommandSigning(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := testCommand()
	payload, err := cmd.SigningPayload()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(payload, []byte(SigningDomain)) || bytes.Contains(payload, []byte("signature")) {
		t.Fatalf("payload %s", payload)
	}
	cmd.Signature = base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, payload))
	wire, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(KindFaultCommand, wire); err != nil {
		t.Fatalf("signed command: %v\n%s", err, wire)
	}
	verify := func(wire []byte) bool {
		var got FaultCommand
		if err := json.Unmarshal(wire, &got); err != nil {
			t.Fatal(err)
		}
		sig, err := base64.RawURLEncoding.DecodeString(got.Signature)
		if err != nil {
			t.Fatal(err)
		}
		p, err := got.SigningPayload()
		if err != nil {
			t.Fatal(err)
		}
		return ed25519.Verify(pub, p, sig)
	}
	if !verify(wire) {
		t.Fatal("signature does not verify after a JSON round trip")
	}
	// Re-indented and with keys in another order it is the same command.
	var generic map[string]any
	_ = json.Unmarshal(wire, &generic)
	reordered, _ := json.MarshalIndent(generic, "", "  ")
	if !verify(reordered) {
		t.Error("signature depends on the wire formatting")
	}
	for _, tamper := range []struct{ old, new string }{
		{`"dry_run":false`, `"dry_run":true`},
		{`"value":50`, `"value":100`},
		{`"namespace":"shop"`, `"namespace":"payments"`},
		{`"duration":"5m0s"`, `"duration":"50m0s"`},
	} {
		forged := strings.Replace(string(wire), tamper.old, tamper.new, 1)
		if forged == string(wire) {
			t.Fatalf("%s not in %s", tamper.old, wire)
		}
		if verify([]byte(forged)) {
			t.Errorf("tampered command (%s) verifies", tamper.new)
		}
	}
}

func TestNewFaultStatus(t *testing.T) {
	cmd := testCommand()
	at := time.Date(2025, 6, 3, 11, 0, 1, 0, time.UTC)
	deadline := at.Add(cmd.Duration.Std())
	tests := []struct {
		phase FaultPhase
		edit  func(*FaultStatus)
	}{
		{PhaseAccepted, func(*FaultStatus) {}},
		{PhaseRefused, func(s *FaultStatus) { s.Reason, s.ReasonCode = "signature does not verify", "forged" }},
		{PhaseApplied, func(s *FaultStatus) {
			s.Affected = []ObjectRef{{APIVersion: "v1", Kind: "Pod", Namespace: "shop", Name: "web-1", UID: "u1"}}
			s.RevertRef, s.Deadline = "faults.dev.cmd-1", &deadline
		}},
		{PhaseReverted, func(*FaultStatus) {}},
		{PhaseExpired, func(s *FaultStatus) { s.Reason = "not applied before expires_at" }},
	}
	ids := map[string]bool{}
	for _, tt := range tests {
		s := NewFaultStatus(cmd, tt.phase, at)
		tt.edit(s)
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(KindFaultStatus, b); err != nil {
			t.Errorf("%s: %v\n%s", tt.phase, err, b)
		}
		if ids[s.ID] {
			t.Errorf("%s: id %s reused", tt.phase, s.ID)
		}
		ids[s.ID] = true
		if again := NewFaultStatus(cmd, tt.phase, at); again.ID != s.ID {
			t.Errorf("%s: id not deterministic", tt.phase)
		}
	}
	dry := *cmd
	dry.DryRun = true
	s := NewFaultStatus(&dry, PhasePlanned, at)
	s.RevertSteps = []string{"nothing to revert"}
	b, _ := json.Marshal(s)
	if err := Validate(KindFaultStatus, b); err != nil {
		t.Errorf("planned: %v", err)
	}
}

func TestFaultAbortMatches(t *testing.T) {
	one := FaultAbort{ExperimentID: "a"}
	all := FaultAbort{All: true}
	none := FaultAbort{}
	if !one.Matches("a") || one.Matches("b") || one.Matches("") {
		t.Error("experiment abort")
	}
	if !all.Matches("a") || !all.Matches("") {
		t.Error("abort all")
	}
	if none.Matches("") || none.Matches("a") {
		t.Error("empty abort matches")
	}
}

func TestDuration(t *testing.T) {
	var d Duration
	if err := json.Unmarshal([]byte(`"1m30s"`), &d); err != nil || d.Std() != 90*time.Second || d.String() != "1m30s" {
		t.Errorf("1m30s = %v, %v", d, err)
	}
	for _, bad := range []string{`"5 minutes"`, `300`, `""`} {
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
