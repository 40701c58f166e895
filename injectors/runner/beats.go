package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// beats tells whether heartbeats are still beating by watching their KV
// revisions change on this replica's own clock, so clocks that disagree
// between machines cannot make a live owner look dead or a dead one alive.
// A heartbeat is stale when its revision has not changed for the timeout
// since this replica first looked; a missing key counts as a revision that
// never changes.
type beats struct {
	kv   jetstream.KeyValue
	seen map[string]beat
}

type beat struct {
	rev   uint64
	since time.Time
}

func newBeats(kv jetstream.KeyValue) *beats {
	return &beats{kv: kv, seen: map[string]beat{}}
}

// stale reports whether key has not beaten for timeout. gone is true when
// the key does not exist (a replica that stopped cleanly deletes its own).
func (b *beats) stale(ctx context.Context, key string, timeout time.Duration, now time.Time) (stale, gone bool, err error) {
	var rev uint64
	e, err := b.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		gone = true
	case err != nil:
		return false, false, fmt.Errorf("read heartbeat %s: %w", key, err)
	default:
		rev = e.Revision()
	}
	s, ok := b.seen[key]
	if !ok || s.rev != rev {
		s = beat{rev: rev, since: now}
		b.seen[key] = s
	}
	return now.Sub(s.since) >= timeout, gone, nil
}

// forget drops keys not asked about in the last pass.
func (b *beats) retain(keep map[string]bool) {
	for k := range b.seen {
		if !keep[k] {
			delete(b.seen, k)
		}
	}
}
