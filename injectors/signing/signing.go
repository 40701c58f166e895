// Package signing signs fault commands and verifies them at the injector.
// Keys are NATS NKeys (ed25519): the issuer's public key is the command's
// issuer field, and injectors trust a configured list of public keys.
package signing

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/faultline/faultline/schemas"
)

// Errors Verify returns, for telling refusals apart.
var (
	ErrUnsigned  = errors.New("command is not signed")
	ErrUntrusted = errors.New("issuer is not a trusted key")
	ErrForged    = errors.New("signature does not verify")
)

// Sign sets the command's issuer to kp's public key and signs it.
func Sign(cmd *schemas.FaultCommand, kp nkeys.KeyPair) error {
	pub, err := kp.PublicKey()
	if err != nil {
		return fmt.Errorf("sign fault command: %w", err)
	}
	cmd.Issuer = pub
	cmd.Signature = ""
	payload, err := cmd.SigningPayload()
	if err != nil {
		return fmt.Errorf("sign fault command: %w", err)
	}
	sig, err := kp.Sign(payload)
	if err != nil {
		return fmt.Errorf("sign fault command: %w", err)
	}
	cmd.Signature = base64.RawURLEncoding.EncodeToString(sig)
	return nil
}

// Trusted is the set of public keys whose commands an injector accepts.
type Trusted struct {
	keys map[string]nkeys.KeyPair
}

// NewTrusted parses public NKeys (user, account or operator keys: any
// ed25519 NKey). Seeds are refused so a private key is never configured
// where only a public one belongs.
func NewTrusted(keys []string) (*Trusted, error) {
	t := &Trusted{keys: make(map[string]nkeys.KeyPair, len(keys))}
	var errs []error
	for i, k := range keys {
		k = strings.TrimSpace(k)
		if strings.HasPrefix(k, "S") {
			errs = append(errs, fmt.Errorf("trusted key %d: is a seed (private key); configure its public key", i))
			continue
		}
		kp, err := nkeys.FromPublicKey(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("trusted key %d (%q): %w", i, k, err))
			continue
		}
		t.keys[k] = kp
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// ReadKeysFile reads public keys from a file: one per line, blank lines and
// lines starting with '#' ignored.
func ReadKeysFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read trusted keys: %w", err)
	}
	var keys []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, line)
	}
	return keys, nil
}

// Len is the number of trusted keys.
func (t *Trusted) Len() int { return len(t.keys) }

// Verify checks that cmd is signed by a trusted key. The error wraps
// ErrUnsigned, ErrUntrusted or ErrForged.
func (t *Trusted) Verify(cmd *schemas.FaultCommand) error {
	if cmd.Signature == "" {
		return ErrUnsigned
	}
	kp, ok := t.keys[cmd.Issuer]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUntrusted, cmd.Issuer)
	}
	sig, err := base64.RawURLEncoding.DecodeString(cmd.Signature)
	if err != nil {
		return fmt.Errorf("%w: signature is not unpadded base64url: %v", ErrForged, err)
	}
	payload, err := cmd.SigningPayload()
	if err != nil {
		return err
	}
	if err := kp.Verify(payload, sig); err != nil {
		return fmt.Errorf("%w: %v", ErrForged, err)
	}
	return nil
}

// LoadSeed reads an NKey seed (as written by `faultline fault keygen` or
// `nk -gen user`) from a file. The seed is never logged.
func LoadSeed(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load signing key: %w", err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		kp, err := nkeys.FromSeed(line)
		if err != nil {
			return nil, fmt.Errorf("load signing key %s: not an NKey seed: %w", path, err)
		}
		return kp, nil
	}
	return nil, fmt.Errorf("load signing key %s: no seed in file", path)
}

// NewKey creates a user NKey pair for signing commands.
func NewKey() (nkeys.KeyPair, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("new signing key: %w", err)
	}
	return kp, nil
}
