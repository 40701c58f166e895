package guard

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/faultline/faultline/injectors/signing"
	"github.com/faultline/faultline/schemas"
)

var now = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

func newGuard(t *testing.T, mut func(*Config)) (*Guard, nkeys.KeyPair) {
	t.Helper()
	kp, err := signing.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	cfg := DefaultConfig()
	cfg.TrustedKeys = []string{pub}
	cfg.AllowedNamespaces = []string{"shop", "team-*", "kube-system"}
	cfg.OwnNamespace = "faultline"
	if mut != nil {
		mut(&cfg)
	}
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g, kp
}

func cmd(mut func(*schemas.FaultCommand)) *schemas.FaultCommand {
	c := &schemas.FaultCommand{
		ID: "c1", ExperimentID: "e1", Fault: schemas.FaultPodKill,
		Target:   schemas.Target{Namespace: "shop", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}}},
		Mode:     schemas.Mode{Type: schemas.ModeOne},
		Duration: schemas.Duration(time.Minute),
		IssuedAt: now.Add(-10 * time.Second),
	}
	if mut != nil {
		mut(c)
	}
	return c
}

func TestAuthenticate(t *testing.T) {
	g, kp := newGuard(t, nil)
	stranger, _ := signing.NewKey()
	sign := func(c *schemas.FaultCommand, k nkeys.KeyPair) *schemas.FaultCommand {
		if err := signing.Sign(c, k); err != nil {
			t.Fatal(err)
		}
		return c
	}
	soon := now.Add(-time.Second)
	cases := []struct {
		name string
		cmd  *schemas.FaultCommand
		code string
	}{
		{"fresh and signed", sign(cmd(nil), kp), ""},
		{"unsigned", cmd(nil), CodeUnsigned},
		{"stranger's key", sign(cmd(nil), stranger), CodeUntrusted},
		{"tampered after signing", func() *schemas.FaultCommand {
			c := sign(cmd(nil), kp)
			c.Target.Namespace = "payments"
			return c
		}(), CodeForged},
		{"older than max age", sign(cmd(func(c *schemas.FaultCommand) { c.IssuedAt = now.Add(-3 * time.Minute) }), kp), CodeExpired},
		{"past its own expiry", sign(cmd(func(c *schemas.FaultCommand) { c.ExpiresAt = &soon }), kp), CodeExpired},
		{"from the future", sign(cmd(func(c *schemas.FaultCommand) { c.IssuedAt = now.Add(time.Minute) }), kp), CodeFuture},
		{"within clock skew", sign(cmd(func(c *schemas.FaultCommand) { c.IssuedAt = now.Add(20 * time.Second) }), kp), ""},
		{"too long", sign(cmd(func(c *schemas.FaultCommand) { c.Duration = schemas.Duration(2 * time.Hour) }), kp), CodeTooLong},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := g.Authenticate(tc.cmd, now)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			r, ok := AsRefusal(err)
			if !ok || r.Code != tc.code {
				t.Fatalf("got %v, want refusal %s", err, tc.code)
			}
			if r.Reason == "" {
				t.Fatal("refusal without a reason")
			}
		})
	}
}

func TestCheckNamespace(t *testing.T) {
	g, _ := newGuard(t, func(c *Config) { c.AllowedNamespaces = []string{"shop", "team-*", "kube-system", "*"} })
	cases := []struct {
		ns, code string
	}{
		{"shop", ""},
		{"team-a", ""},
		{"anything", ""},               // through "*"
		{"kube-system", ""},            // listed by its exact name
		{"kube-public", CodeProtected}, // "*" does not unlock protected namespaces
		{"faultline", CodeProtected},   // own namespace
	}
	for _, tc := range cases {
		err := g.CheckNamespace(tc.ns)
		if r, _ := AsRefusal(err); (tc.code == "" && err != nil) || (tc.code != "" && (r == nil || r.Code != tc.code)) {
			t.Errorf("CheckNamespace(%q) = %v, want %q", tc.ns, err, tc.code)
		}
	}
	strict, _ := newGuard(t, func(c *Config) { c.AllowedNamespaces = nil })
	if r, _ := AsRefusal(strict.CheckNamespace("shop")); r == nil || r.Code != CodeNamespace || !strings.Contains(r.Reason, "empty") {
		t.Errorf("empty allow-list: %v", r)
	}
}

func TestCount(t *testing.T) {
	cases := []struct {
		mode schemas.Mode
		n    int
		want int
		bad  bool
	}{
		{schemas.Mode{Type: schemas.ModeOne}, 5, 1, false},
		{schemas.Mode{Type: schemas.ModeCount, Value: 3}, 5, 3, false},
		{schemas.Mode{Type: schemas.ModeCount, Value: 0}, 5, 0, true},
		{schemas.Mode{Type: schemas.ModePercent, Value: 50}, 5, 2, false},
		{schemas.Mode{Type: schemas.ModePercent, Value: 10}, 3, 1, false}, // at least one
		{schemas.Mode{Type: schemas.ModePercent, Value: 100}, 4, 4, false},
		{schemas.Mode{Type: schemas.ModePercent, Value: 101}, 4, 0, true},
		{schemas.Mode{Type: "most"}, 4, 0, true},
	}
	for _, tc := range cases {
		got, err := count(tc.mode, tc.n)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("count(%+v, %d) = %d, %v", tc.mode, tc.n, got, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if errs := DefaultConfig().Validate(); len(errs) > 0 {
		t.Fatalf("defaults invalid: %v", errs)
	}
	bad := DefaultConfig()
	bad.AllowedNamespaces = []string{"[", ""}
	bad.OptInLabel = "no-value"
	bad.MaxShare = 1.5
	bad.MaxConcurrentFaults = 0
	bad.MaxCommandAge = 48 * time.Hour
	if errs := bad.Validate(); len(errs) != 6 {
		t.Fatalf("want 6 errors, got %d: %v", len(errs), errs)
	}
	seed := DefaultConfig()
	kp, _ := signing.NewKey()
	s, _ := kp.Seed()
	seed.TrustedKeys = []string{string(s)}
	if _, err := New(seed, nil); err == nil || !strings.Contains(err.Error(), "seed") {
		t.Fatalf("a seed as trusted key: %v", err)
	}
}
