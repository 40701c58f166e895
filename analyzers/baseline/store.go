package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Profile is what the analyzer knows of one identity.
type Profile struct {
	FirstSeen time.Time `json:"first_seen"`
	// Terms maps each activity, user agent and source network seen (with
	// a kind prefix) to a digest of the event that introduced it, so a
	// redelivered event raises its finding again.
	Terms map[string]string `json:"terms"`
	// Rate: the moving average of requests per minute, the current minute
	// (Unix minutes) and its count, and whether it already spiked.
	RateAvg    float64 `json:"rate_avg"`
	RateMinute int64   `json:"rate_minute"`
	RateCount  int     `json:"rate_count"`
	Spiked     bool    `json:"spiked,omitempty"`
}

func (p *Profile) merge(o *Profile, maxTerms int) {
	if p.FirstSeen.IsZero() || (!o.FirstSeen.IsZero() && o.FirstSeen.Before(p.FirstSeen)) {
		p.FirstSeen = o.FirstSeen
	}
	if p.Terms == nil {
		p.Terms = map[string]string{}
	}
	for k, v := range o.Terms {
		if _, ok := p.Terms[k]; !ok && len(p.Terms) < maxTerms {
			p.Terms[k] = v
		}
	}
	if o.RateMinute > p.RateMinute {
		p.RateMinute, p.RateCount, p.Spiked = o.RateMinute, o.RateCount, o.Spiked
	}
	p.RateAvg = max(p.RateAvg, o.RateAvg)
}

func (p *Profile) clone() *Profile {
	cp := *p
	cp.Terms = maps.Clone(p.Terms)
	return &cp
}

// Store keeps profiles. Save is a compare-and-set on the revision Load
// returned (0: the key must not exist); ErrConflict means another replica
// wrote first.
type Store interface {
	Load(ctx context.Context, key string) (*Profile, uint64, error)
	Save(ctx context.Context, key string, p *Profile, rev uint64) error
}

// ErrConflict is returned by Save when the revision moved.
var ErrConflict = errors.New("baseline: profile changed concurrently")

// KVStore keeps profiles in a JetStream KV bucket, shared by replicas and
// kept across restarts.
type KVStore struct{ KV jetstream.KeyValue }

// Load returns the profile (nil, 0 when there is none).
func (s KVStore) Load(ctx context.Context, key string) (*Profile, uint64, error) {
	e, err := s.KV.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("baseline: load %s: %w", key, err)
	}
	var p Profile
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		// A damaged profile is relearned rather than blocking the identity.
		return nil, e.Revision(), nil
	}
	return &p, e.Revision(), nil
}

// Save writes p if the key is still at rev.
func (s KVStore) Save(ctx context.Context, key string, p *Profile, rev uint64) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("baseline: save %s: %w", key, err)
	}
	if rev == 0 {
		_, err = s.KV.Create(ctx, key, b)
	} else {
		_, err = s.KV.Update(ctx, key, b, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return ErrConflict
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("baseline: save %s: %w", key, err)
	}
	return nil
}

// MemoryStore keeps profiles in memory (replay, tests).
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]memEntry
}

type memEntry struct {
	p   *Profile
	rev uint64
}

// Load returns a copy of the profile.
func (s *MemoryStore) Load(_ context.Context, key string) (*Profile, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok {
		return nil, 0, nil
	}
	return e.p.clone(), e.rev, nil
}

// Save stores a copy if the revision matches.
func (s *MemoryStore) Save(_ context.Context, key string, p *Profile, rev uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]memEntry{}
	}
	if s.m[key].rev != rev {
		return ErrConflict
	}
	s.m[key] = memEntry{p: p.clone(), rev: rev + 1}
	return nil
}
