package signing

import (
	"encoding/json"
	"testing"

	"github.com/faultline/faultline/schemas"
)

// Whatever arrives as a command, Verify never panics and never accepts
// anything but the one signed command (or exactly its JSON).
func FuzzVerify(f *testing.F) {
	kp, err := NewKey()
	if err != nil {
		f.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	trusted, err := NewTrusted([]string{pub})
	if err != nil {
		f.Fatal(err)
	}
	signed := command()
	if err := Sign(signed, kp); err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(signed)
	want, _ := signed.SigningPayload()
	f.Add(good)
	f.Add([]byte(`{"id":"c1","issuer":"` + pub + `","signature":"AAAA"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c schemas.FaultCommand
		if json.Unmarshal(data, &c) != nil {
			return
		}
		if trusted.Verify(&c) != nil {
			return
		}
		got, err := c.SigningPayload()
		if err != nil || string(got) != string(want) {
			t.Fatalf("accepted a command that is not the signed one:\n%s", data)
		}
	})
}
