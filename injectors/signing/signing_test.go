package signing

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/faultline/faultline/schemas"
)

func command() *schemas.FaultCommand {
	return &schemas.FaultCommand{
		ID: "c1", ExperimentID: "e1", Fault: schemas.FaultPodKill,
		Target:   schemas.Target{Namespace: "shop", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}}},
		Mode:     schemas.Mode{Type: schemas.ModeOne},
		Duration: schemas.Duration(time.Minute),
		IssuedAt: time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC),
	}
}

func TestSignVerify(t *testing.T) {
	kp, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	trusted, err := NewTrusted([]string{pub})
	if err != nil {
		t.Fatal(err)
	}
	signed := func(mut func(c *schemas.FaultCommand)) *schemas.FaultCommand {
		c := command()
		if err := Sign(c, kp); err != nil {
			t.Fatal(err)
		}
		if mut != nil {
			mut(c)
		}
		// Every check runs on what the injector receives: the wire form.
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var got schemas.FaultCommand
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		return &got
	}
	cases := []struct {
		name string
		cmd  *schemas.FaultCommand
		want error
	}{
		{"signed", signed(nil), nil},
		{"unsigned", signed(func(c *schemas.FaultCommand) { c.Signature = "" }), ErrUnsigned},
		{"changed target", signed(func(c *schemas.FaultCommand) { c.Target.Namespace = "payments" }), ErrForged},
		{"longer duration", signed(func(c *schemas.FaultCommand) { c.Duration *= 10 }), ErrForged},
		{"garbage signature", signed(func(c *schemas.FaultCommand) { c.Signature = "!!" }), ErrForged},
		{"untrusted issuer", func() *schemas.FaultCommand {
			c := command()
			if err := Sign(c, other); err != nil {
				t.Fatal(err)
			}
			return c
		}(), ErrUntrusted},
		{"issuer swapped to trusted key", func() *schemas.FaultCommand {
			c := command()
			if err := Sign(c, other); err != nil {
				t.Fatal(err)
			}
			c.Issuer = pub
			return c
		}(), ErrForged},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := trusted.Verify(tc.cmd)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTrustedRejectsSeedsAndGarbage(t *testing.T) {
	kp, _ := NewKey()
	seed, _ := kp.Seed()
	for _, keys := range [][]string{{string(seed)}, {"not-a-key"}, {"UABC"}} {
		if _, err := NewTrusted(keys); err == nil {
			t.Errorf("NewTrusted(%q) accepted", keys)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	kp, _ := NewKey()
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	seedFile := filepath.Join(dir, "issuer.nk")
	if err := os.WriteFile(seedFile, append([]byte("# faultline signing key\n"), seed...), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := got.PublicKey(); p != pub {
		t.Fatalf("loaded key %s, want %s", p, pub)
	}
	keysFile := filepath.Join(dir, "trusted")
	if err := os.WriteFile(keysFile, []byte("# runners\n\n"+pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := ReadKeysFile(keysFile)
	if err != nil || len(keys) != 1 || keys[0] != pub {
		t.Fatalf("ReadKeysFile = %v, %v", keys, err)
	}
	if _, err := LoadSeed(keysFile); err == nil {
		t.Fatal("LoadSeed accepted a public key file")
	}
}
