package schemas

import (
	"regexp"
	"strings"
	"testing"
)

var idCharset = regexp.MustCompile(`^[A-Za-z0-9_=-]+$`)

func TestDeterministicIDs(t *testing.T) {
	long := strings.Repeat("a", 200)
	tests := []struct {
		name string
		got  string
		want string // exact id, or
		hash string // prefix of a hashed id
	}{
		{"audit readable", AuditEventID("6b0b6a3e-4f3c-4f07-9a49-3d1b2a7f0c11", "ResponseComplete"), "audit_6b0b6a3e-4f3c-4f07-9a49-3d1b2a7f0c11_ResponseComplete", ""},
		{"audit id with underscore", AuditEventID("a_b", "Panic"), "", "audit_="},
		{"audit id with space", AuditEventID("a b", "Panic"), "", "audit_="},
		{"audit id starting with =", AuditEventID("=x", "Panic"), "", "audit_="},
		{"audit id non-ASCII", AuditEventID("é", "Panic"), "", "audit_="},
		{"audit id empty", AuditEventID("", "Panic"), "", "audit_="},
		{"audit id too long", AuditEventID(long, "Panic"), "", "audit_="},
		{"kube event readable", KubeEventID("c0ffee00-1234-4abc-8def-0123456789ab", "48213"), "kevent_c0ffee00-1234-4abc-8def-0123456789ab_48213", ""},
		{"kube event odd resource version", KubeEventID("c0ffee00", "48/213"), "", "kevent_="},
		{"finding", FindingID("pod-exec", "audit_x_Panic"), "", "finding_"},
		{"derived", DeriveID("metric", "a", "b"), "", "metric_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want != "" && tt.got != tt.want {
				t.Errorf("id %q, want %q", tt.got, tt.want)
			}
			if tt.hash != "" {
				hex := strings.TrimPrefix(tt.got, tt.hash)
				if hex == tt.got || len(hex) != 32 || strings.Trim(hex, "0123456789abcdef") != "" {
					t.Errorf("id %q is not %s + 32 hex digits", tt.got, tt.hash)
				}
			}
			if !idCharset.MatchString(tt.got) || len(tt.got) > maxReadableID {
				t.Errorf("id %q has bytes outside [A-Za-z0-9_=-] or is longer than %d", tt.got, maxReadableID)
			}
			// Every id is usable as an envelope id as is.
			if err := checkToken("id", tt.got, MaxIDLength); err != nil {
				t.Errorf("id %q refused as envelope id: %v", tt.got, err)
			}
		})
	}
}

// Different inputs must never share an id, including inputs built to look
// alike once joined.
func TestIDsDoNotCollide(t *testing.T) {
	pairs := [][2]string{
		{"a", "b"}, {"b", "a"}, {"a-b", "c"}, {"a", "b-c"}, {"a_b", "c"}, {"a", "b_c"},
		{"", "ab"}, {"a", "b\x00"}, {"a\x00", "b"}, {"ab", ""}, {"=", "x"}, {"h", "x"},
		{strings.Repeat("a", 200), "b"}, {strings.Repeat("a", 199), "ab"},
	}
	for _, mk := range []struct {
		name string
		f    func(a, b string) string
	}{{"audit", AuditEventID}, {"kevent", KubeEventID}, {"finding", FindingID}} {
		seen := map[string][2]string{}
		for _, p := range pairs {
			id := mk.f(p[0], p[1])
			if prev, dup := seen[id]; dup {
				t.Errorf("%s: %q and %q both give %q", mk.name, prev, p, id)
			}
			seen[id] = p
			if again := mk.f(p[0], p[1]); again != id {
				t.Errorf("%s: not deterministic: %q then %q", mk.name, id, again)
			}
		}
	}
	// A hashed id can never equal a readable one of the same prefix.
	if AuditEventID("x", "y") == AuditEventID("x y", "") {
		t.Error("readable and hashed forms collide")
	}
}
