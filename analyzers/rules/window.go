package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/nats-io/nats.go/jetstream"
)

// window is a rule's window: it fires when one key reaches count matching
// events (or distinct values) within dur, on the events' own timestamps.
type window struct {
	dur           time.Duration
	count         int
	key, distinct cel.Program
}

// WindowState is the state of one window of one rule for one key: the
// matching events within the duration. It is kept in a WindowStore.
//
// Events and values are kept as 64-bit digests: a window only needs to tell
// them apart, and the state shared in JetStream KV holds no names.
type WindowState struct {
	Entries []WindowEntry `json:"e,omitempty"`
	// FiredBy is the digest of the event that last made the window fire,
	// and FiredN the count it reached: that event, redelivered (its
	// finding not yet published when the first attempt failed), fires
	// again with the same finding id.
	FiredBy uint64 `json:"f,omitempty"`
	FiredN  int    `json:"n,omitempty"`
	// Last is the latest event time seen (Unix nanoseconds).
	Last int64 `json:"l,omitempty"`
}

// WindowEntry is one counted event.
type WindowEntry struct {
	At  int64  `json:"t"`           // the event's time, Unix nanoseconds
	ID  uint64 `json:"i"`           // digest of the event's id: an event counts once however often it is delivered
	Val uint64 `json:"v,omitempty"` // distinct windows: digest of the value
}

// add counts one matching event and tells whether the window fired, with
// the count reached. A window that fires starts counting afresh. It only
// changes s, so a shared store may run it again on a newer state.
func (s *WindowState) add(dur time.Duration, count int, distinct bool, id, val uint64, t time.Time) (bool, int) {
	if s.FiredBy == id && s.FiredN > 0 {
		return true, s.FiredN
	}
	at := t.UnixNano()
	s.Last = max(s.Last, at)
	cut := at - int64(dur)
	keep := s.Entries[:0]
	for _, e := range s.Entries {
		if e.At >= cut {
			keep = append(keep, e)
		}
	}
	s.Entries = keep
	for i := range s.Entries {
		if e := &s.Entries[i]; e.ID == id || (distinct && e.Val == val) {
			e.At = max(e.At, at)
			return false, len(s.Entries)
		}
	}
	s.Entries = append(s.Entries, WindowEntry{At: at, ID: id, Val: val})
	n := len(s.Entries)
	if n >= count {
		s.Entries, s.FiredBy, s.FiredN = nil, id, n
		return true, n
	}
	return false, n
}

// WindowRef names one window: a rule (with its duration) and a key.
type WindowRef struct {
	Rule     string
	Duration time.Duration
	// Key is the digest of the window key's value (windowKey): no name
	// is kept.
	Key string
}

// WindowStore keeps the windows' state.
type WindowStore interface {
	// Update applies fn to the window's state and keeps the result. fn may
	// run more than once (a shared store runs it again on a newer state
	// when another replica wrote first), so it must only change its
	// argument. An error is transient: the event is analysed again later.
	Update(ctx context.Context, w WindowRef, fn func(st *WindowState)) error
}

// digest is FNV-1a (64 bits) of s.
func digest(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	if h == 0 {
		h = 1 // 0 means none in WindowState
	}
	return h
}

// windowKey is the digest of a window key's value, as it appears in KV
// keys.
func windowKey(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:12])
}

// MemoryWindowStore keeps windows in the process: for replay and rule
// tests, which need no NATS. It keeps at most Limit keys per rule (default
// 10000); beyond it, keys idle for longer than their window go first, then
// the least recently seen eighth.
type MemoryWindowStore struct {
	Limit     int
	evictions *atomic.Uint64

	mu    sync.Mutex
	rules map[string]map[string]*WindowState
}

// NewMemoryWindowStore returns an empty store with the key limit (0: the
// default) and a counter of the keys it forgets at the limit (nil: none).
func NewMemoryWindowStore(limit int, evictions *atomic.Uint64) *MemoryWindowStore {
	if evictions == nil {
		evictions = new(atomic.Uint64)
	}
	return &MemoryWindowStore{Limit: limit, evictions: evictions, rules: map[string]map[string]*WindowState{}}
}

// Update applies fn under the store's lock.
func (s *MemoryWindowStore) Update(_ context.Context, w WindowRef, fn func(st *WindowState)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := s.rules[w.Rule]
	if keys == nil {
		keys = map[string]*WindowState{}
		s.rules[w.Rule] = keys
	}
	st := keys[w.Key]
	if st == nil {
		limit := s.Limit
		if limit <= 0 {
			limit = 10000
		}
		if len(keys) >= limit {
			s.evict(keys, w.Duration, limit)
		}
		st = &WindowState{}
		keys[w.Key] = st
	}
	fn(st)
	return nil
}

// Keys counts the keys kept for a rule.
func (s *MemoryWindowStore) Keys(rule string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rules[rule])
}

// evict forgets keys idle for longer than the window (against the latest
// key), then, if still at the limit, the least recently seen eighth.
func (s *MemoryWindowStore) evict(keys map[string]*WindowState, dur time.Duration, limit int) {
	var latest int64
	for _, st := range keys {
		latest = max(latest, st.Last)
	}
	for k, st := range keys {
		if st.Last < latest-int64(dur) {
			delete(keys, k)
		}
	}
	if len(keys) < limit {
		return
	}
	type kl struct {
		k    string
		last int64
	}
	all := make([]kl, 0, len(keys))
	for k, st := range keys {
		all = append(all, kl{k, st.Last})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].last < all[j].last })
	n := max(len(all)/8, 1)
	for _, x := range all[:n] {
		delete(keys, x.k)
	}
	s.evictions.Add(uint64(n))
}

// KVWindowStore keeps windows in a JetStream KV bucket (faultline_state),
// so that the replicas of the rules analyzer count together and a restart
// forgets nothing. Only events that match a windowed rule's condition touch
// it: a read and a compare-and-set write each. Keys are
// "rules.window.<cluster>.<rule>.<digest of the key>".
type KVWindowStore struct {
	kv      jetstream.KeyValue
	js      jetstream.JetStream
	cluster string

	// Attempts bounds the compare-and-set retries of one update (default
	// 16); past it the update fails and the event is analysed again later.
	Attempts int

	conflicts, evictions atomic.Uint64
}

// NewKVWindowStore keeps windows in kv, the bucket of js, for cluster.
func NewKVWindowStore(js jetstream.JetStream, kv jetstream.KeyValue, cluster string) *KVWindowStore {
	return &KVWindowStore{kv: kv, js: js, cluster: safeToken(cluster)}
}

func (s *KVWindowStore) prefix() string { return "rules.window." + s.cluster + "." }

func (s *KVWindowStore) key(w WindowRef) string { return s.prefix() + w.Rule + "." + w.Key }

// Update reads the state, applies fn and writes it back if no other writer
// came in between (the revision is unchanged), else tries again on the
// newer state.
func (s *KVWindowStore) Update(ctx context.Context, w WindowRef, fn func(st *WindowState)) error {
	key := s.key(w)
	attempts := s.Attempts
	if attempts <= 0 {
		attempts = 16
	}
	for attempt := 0; ; attempt++ {
		var st WindowState
		var rev uint64
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("rules: window %s: %w", key, err)
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &st); err != nil {
				st = WindowState{} // damaged: counted afresh rather than blocking the key
			}
		}
		fn(&st)
		b, err := json.Marshal(&st)
		if err != nil {
			return fmt.Errorf("rules: window %s: %w", key, err)
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, b)
		} else {
			_, err = s.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("rules: window %s: %w", key, err)
		}
		s.conflicts.Add(1)
		if attempt+1 >= attempts {
			return fmt.Errorf("rules: window %s: still changing after %d attempts: %w", key, attempts, err)
		}
		// Another replica wrote first: read its state and apply again,
		// after a short random pause once the first retries failed.
		if attempt >= 2 {
			pause := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt-2, 6)))
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// Conflicts counts writes that met another writer's and were retried.
func (s *KVWindowStore) Conflicts() uint64 { return s.conflicts.Load() }

// Evictions counts keys Sweep forgot because their rule had too many.
func (s *KVWindowStore) Evictions() uint64 { return s.evictions.Load() }

// Sweep forgets the windows of this cluster not written for longer than
// idle (wall-clock time), and, for a rule with more than limit keys (0: no
// limit), the least recently written ones beyond it. A window written
// meanwhile is kept: the purge removes only the revision it saw. Purging
// the key's subject leaves no delete marker behind.
func (s *KVWindowStore) Sweep(ctx context.Context, idle time.Duration, limit int) error {
	w, err := s.kv.WatchFiltered(ctx, []string{s.prefix() + ">"}, jetstream.IgnoreDeletes(), jetstream.MetaOnly())
	if err != nil {
		return fmt.Errorf("rules: sweep windows: %w", err)
	}
	defer func() { _ = w.Stop() }()
	type entry struct {
		key  string
		rev  uint64
		when time.Time
	}
	byRule := map[string][]entry{}
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return ctx.Err()
		}
		if e == nil {
			break // the current values are all listed
		}
		rule, _, _ := strings.Cut(strings.TrimPrefix(e.Key(), s.prefix()), ".")
		byRule[rule] = append(byRule[rule], entry{e.Key(), e.Revision(), e.Created()})
	}
	stream, err := s.js.Stream(ctx, "KV_"+s.kv.Bucket())
	if err != nil {
		return fmt.Errorf("rules: sweep windows: %w", err)
	}
	purge := func(e entry) error {
		// Every revision of the key up to the one seen; a newer one stays.
		err := stream.Purge(ctx, jetstream.WithPurgeSubject("$KV."+s.kv.Bucket()+"."+e.key), jetstream.WithPurgeSequence(e.rev+1))
		if err != nil {
			return fmt.Errorf("rules: sweep window %s: %w", e.key, err)
		}
		return nil
	}
	cut := time.Now().Add(-idle)
	for _, entries := range byRule {
		var live []entry
		for _, e := range entries {
			if e.when.Before(cut) {
				if err := purge(e); err != nil {
					return err
				}
				continue
			}
			live = append(live, e)
		}
		if limit <= 0 || len(live) <= limit {
			continue
		}
		sort.Slice(live, func(i, j int) bool { return live[i].when.Before(live[j].when) })
		for _, e := range live[:len(live)-limit] {
			if err := purge(e); err != nil {
				return err
			}
			s.evictions.Add(1)
		}
	}
	return nil
}

// safeToken makes s usable as one token of a KV key.
func safeToken(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}
