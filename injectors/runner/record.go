package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/schemas"
)

// State is where a recorded fault is in its life.
type State string

// States of a fault record. A record exists from before the cluster is
// touched until the revert is confirmed, so every fault that may be in the
// cluster has one.
const (
	// StateApplying: the intent is recorded and Apply may be running; a
	// replica that takes over an applying record reverts it at once, since
	// it cannot know how far Apply got.
	StateApplying State = "applying"
	StateApplied  State = "applied"
	// StateReverting: a replica is reverting it now.
	StateReverting    State = "reverting"
	StateRevertFailed State = "revert-failed"
)

// Record is a fault's intent record in the faults KV bucket.
type Record struct {
	Command  schemas.FaultCommand `json:"command"`
	State    State                `json:"state"`
	Owner    string               `json:"owner"`
	Deadline time.Time            `json:"deadline"`
	Created  time.Time            `json:"created"`
	Applied  *time.Time           `json:"applied,omitempty"`
	Targets  []schemas.ObjectRef  `json:"targets,omitempty"`
	Affected []schemas.ObjectRef  `json:"affected,omitempty"`
	Revert   injectors.Revert     `json:"revert"`
	// Reason is why the fault is being reverted.
	Reason    string    `json:"reason,omitempty"`
	Attempts  int       `json:"attempts,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	Updated   time.Time `json:"updated"`
}

// FaultKey is the key of a command's record: <cluster>.<command id>.
func FaultKey(cluster, commandID string) string {
	return bus.Token(cluster) + "." + commandID
}

func replayKey(cluster, commandID string) string {
	return "cmd." + bus.Token(cluster) + "." + commandID
}

// allExperiments stands for "every experiment" in abort keys, so it is
// reserved: a command with this experiment id is refused.
const allExperiments = "_all"

func abortKey(cluster, experiment string) string {
	return "abort." + bus.Token(cluster) + "." + experiment
}

func heartbeatKey(cluster, injector string) string {
	return "injector." + bus.Token(cluster) + "." + injector
}

// ExperimentHeartbeatKey is the state-bucket key an experiment's controller
// refreshes while it runs; faults whose command sets heartbeat_timeout are
// reverted when it goes stale (the dead-man switch).
func ExperimentHeartbeatKey(cluster, experiment string) string {
	return "experiment." + bus.Token(cluster) + "." + experiment
}

// Store is the KV side of the lifecycle, shared by the injector and by the
// commands people run.
type Store struct {
	Cluster  string
	Faults   jetstream.KeyValue
	State    jetstream.KeyValue
	Commands jetstream.KeyValue
}

// OpenStore opens the buckets (they are created at start by the runtime).
func OpenStore(ctx context.Context, b *bus.Bus, cluster string) (*Store, error) {
	s := &Store{Cluster: cluster}
	var err error
	if s.Faults, err = b.KV(ctx, bus.BucketFaults); err != nil {
		return nil, err
	}
	if s.State, err = b.KV(ctx, bus.BucketState); err != nil {
		return nil, err
	}
	if s.Commands, err = b.KV(ctx, bus.BucketFaultCommands); err != nil {
		return nil, err
	}
	return s, nil
}

// Entry is a record with its KV revision, for compare-and-set updates.
type Entry struct {
	Key      string
	Revision uint64
	Record   Record
}

// Get reads one record; (nil, nil) when there is none.
func (s *Store) Get(ctx context.Context, key string) (*Entry, error) {
	e, err := s.Faults.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fault record %s: %w", key, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("fault record %s: %w", key, err)
	}
	return &Entry{Key: key, Revision: e.Revision(), Record: r}, nil
}

// List reads every record of the cluster, oldest first, in one pass over
// the bucket.
func (s *Store) List(ctx context.Context) ([]*Entry, error) {
	var out []*Entry
	err := scan(ctx, s.Faults, bus.Token(s.Cluster)+".*", func(e jetstream.KeyValueEntry) error {
		var r Record
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return fmt.Errorf("fault record %s: %w", e.Key(), err)
		}
		out = append(out, &Entry{Key: e.Key(), Revision: e.Revision(), Record: r})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list fault records: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Record.Created.Before(out[j].Record.Created) })
	return out, nil
}

// scan calls fn with the current value of every key matching filter.
func scan(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(jetstream.KeyValueEntry) error) error {
	w, err := kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-w.Updates():
			if e == nil {
				return nil // the initial values are all delivered
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}

// create writes a new record; it fails if the key exists.
func (s *Store) create(ctx context.Context, key string, r *Record) (uint64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("fault record %s: %w", key, err)
	}
	rev, err := s.Faults.Create(ctx, key, b)
	if err != nil {
		return 0, fmt.Errorf("fault record %s: create: %w", key, err)
	}
	return rev, nil
}

// update writes r if the record is still at rev.
func (s *Store) update(ctx context.Context, key string, r *Record, rev uint64) (uint64, error) {
	r.Updated = time.Now().UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("fault record %s: %w", key, err)
	}
	n, err := s.Faults.Update(ctx, key, b, rev)
	if err != nil {
		return 0, fmt.Errorf("fault record %s: update: %w", key, err)
	}
	return n, nil
}

// remove deletes the record if it is still at rev.
func (s *Store) remove(ctx context.Context, key string, rev uint64) error {
	if err := s.Faults.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("fault record %s: delete: %w", key, err)
	}
	return nil
}

// Forget removes a record whatever its state, for a person who has
// reverted a fault by hand after revert-failed.
func (s *Store) Forget(ctx context.Context, commandID string) error {
	key := FaultKey(s.Cluster, commandID)
	if e, err := s.Get(ctx, key); err != nil {
		return err
	} else if e == nil {
		return fmt.Errorf("forget fault %s: no such record", commandID)
	}
	if err := s.Faults.Delete(ctx, key); err != nil {
		return fmt.Errorf("forget fault %s: %w", commandID, err)
	}
	return nil
}

// markCommand records a command id; false when it was already seen.
func (s *Store) markCommand(ctx context.Context, cmd *schemas.FaultCommand, injector string) (bool, error) {
	_, err := s.Commands.Create(ctx, replayKey(s.Cluster, cmd.ID), []byte(injector))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record command id %s: %w", cmd.ID, err)
	}
	return true, nil
}

// RecordAbort remembers an abort so every replica honours it, including one
// that was disconnected when the abort was published.
func (s *Store) RecordAbort(ctx context.Context, a *schemas.FaultAbort) error {
	exp := a.ExperimentID
	if a.All {
		exp = allExperiments
	}
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("record abort: %w", err)
	}
	if _, err := s.Commands.Put(ctx, abortKey(s.Cluster, exp), b); err != nil {
		return fmt.Errorf("record abort: %w", err)
	}
	return nil
}

// aborts reads the recorded aborts: by experiment id, "_all" for all.
func (s *Store) aborts(ctx context.Context) (map[string]*schemas.FaultAbort, error) {
	out := map[string]*schemas.FaultAbort{}
	err := scan(ctx, s.Commands, "abort."+bus.Token(s.Cluster)+".*", func(e jetstream.KeyValueEntry) error {
		var a schemas.FaultAbort
		if err := json.Unmarshal(e.Value(), &a); err != nil {
			return fmt.Errorf("read abort %s: %w", e.Key(), err)
		}
		out[e.Key()[strings.LastIndexByte(e.Key(), '.')+1:]] = &a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list aborts: %w", err)
	}
	return out, nil
}

// abortedBy returns the abort that covers a command, if any: an abort of its
// experiment or of all experiments issued after the command.
func abortedBy(aborts map[string]*schemas.FaultAbort, cmd *schemas.FaultCommand) *schemas.FaultAbort {
	for _, a := range []*schemas.FaultAbort{aborts[cmd.ExperimentID], aborts[allExperiments]} {
		if a != nil && !a.IssuedAt.Before(cmd.IssuedAt) {
			return a
		}
	}
	return nil
}

// Heartbeat records that owner (an injector replica or an experiment) is
// alive now.
func Heartbeat(ctx context.Context, kv jetstream.KeyValue, key string, now time.Time) error {
	if _, err := kv.Put(ctx, key, []byte(now.UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("heartbeat %s: %w", key, err)
	}
	return nil
}
