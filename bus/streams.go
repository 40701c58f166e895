package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names of the bus layout.
const (
	StreamAudit      = "FL_AUDIT"
	StreamKubeEvent  = "FL_KEVENT"
	StreamMetric     = "FL_METRIC"
	StreamFinding    = "FL_FINDING"
	StreamDeviation  = "FL_DEVIATION"
	StreamFault      = "FL_FAULT"
	StreamDeadLetter = "FL_DLQ"
)

// StreamSpec is the part of a stream's configuration Faultline manages.
type StreamSpec struct {
	Name     string
	Subjects []string
	// MaxAge drops messages older than this (0: keep forever).
	MaxAge time.Duration
	// MaxBytes caps the stream's size; the oldest messages are dropped when
	// it is reached (0: unlimited).
	MaxBytes int64
	Replicas int
	// DuplicateWindow is how long a Nats-Msg-Id is remembered.
	DuplicateWindow time.Duration
	// Memory keeps the stream in memory instead of files (tests only).
	Memory bool
}

// Layout returns the streams of the bus layout with the given limits; the
// caller overrides per-stream ages and sizes from configuration.
func Layout() []StreamSpec {
	day := 24 * time.Hour
	return []StreamSpec{
		{Name: StreamAudit, Subjects: []string{PrefixAudit + ".>"}, MaxAge: 7 * day},
		{Name: StreamKubeEvent, Subjects: []string{PrefixKubeEvent + ".>"}, MaxAge: 7 * day},
		{Name: StreamMetric, Subjects: []string{PrefixMetric + ".>"}, MaxAge: day},
		{Name: StreamFinding, Subjects: []string{PrefixFinding + ".>"}, MaxAge: 30 * day},
		{Name: StreamDeviation, Subjects: []string{PrefixDeviation + ".>"}, MaxAge: 30 * day},
		{Name: StreamFault, Subjects: []string{"fl.fault.>"}, MaxAge: 30 * day},
		{Name: StreamDeadLetter, Subjects: []string{PrefixDeadLetter + ".>"}, MaxAge: 30 * day},
	}
}

func (s StreamSpec) config() jetstream.StreamConfig {
	replicas := s.Replicas
	if replicas <= 0 {
		replicas = 1
	}
	dup := s.DuplicateWindow
	if dup <= 0 {
		dup = 2 * time.Minute
	}
	maxBytes := s.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	storage := jetstream.FileStorage
	if s.Memory {
		storage = jetstream.MemoryStorage
	}
	return jetstream.StreamConfig{
		Name:       s.Name,
		Subjects:   s.Subjects,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxAge:     s.MaxAge,
		MaxBytes:   maxBytes,
		MaxMsgs:    -1,
		Replicas:   replicas,
		Duplicates: dup,
		Storage:    storage,
	}
}

// Validate checks the limits of a spec.
func (s StreamSpec) Validate() error {
	switch {
	case s.Name == "":
		return errors.New("stream name is empty")
	case len(s.Subjects) == 0:
		return fmt.Errorf("stream %s: no subjects", s.Name)
	case s.MaxAge < 0:
		return fmt.Errorf("stream %s: max age must not be negative (got %s)", s.Name, s.MaxAge)
	case s.MaxBytes < 0:
		return fmt.Errorf("stream %s: max bytes must not be negative (got %d)", s.Name, s.MaxBytes)
	case s.Replicas < 0 || s.Replicas > 5:
		return fmt.Errorf("stream %s: replicas must be between 1 and 5 (got %d)", s.Name, s.Replicas)
	case s.DuplicateWindow < 0:
		return fmt.Errorf("stream %s: duplicate window must not be negative", s.Name)
	case s.MaxAge > 0 && s.DuplicateWindow > s.MaxAge:
		return fmt.Errorf("stream %s: duplicate window %s is longer than max age %s", s.Name, s.DuplicateWindow, s.MaxAge)
	}
	return nil
}

// EnsureStreams creates each stream or updates it to the spec. It is
// idempotent, so every replica of every role runs it at start.
func (b *Bus) EnsureStreams(ctx context.Context, specs []StreamSpec) error {
	names := make([]string, 0, len(specs))
	for _, s := range specs {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("bus: ensure streams: %w", err)
		}
		if _, err := b.js.CreateOrUpdateStream(ctx, s.config()); err != nil {
			return fmt.Errorf("bus: ensure stream %s: %w", s.Name, err)
		}
		names = append(names, s.Name)
	}
	b.mu.Lock()
	b.streams = names
	b.mu.Unlock()
	b.log.Info("bus: streams ready", "streams", names)
	return nil
}

// KVSpec describes a key-value bucket.
type KVSpec struct {
	Bucket      string
	Description string
	// TTL expires keys after this long (0: never).
	TTL      time.Duration
	History  uint8
	MaxBytes int64
	Replicas int
	Memory   bool
}

// KV buckets of the bus layout.
const (
	// BucketCheckpoints holds collectors' resume positions.
	BucketCheckpoints = "faultline_checkpoints"
	// BucketFaults holds, for every active fault, its deadline and how to
	// revert it, written before the fault is applied.
	BucketFaults = "faultline_faults"
	// BucketState holds analyzers' state shared between replicas, and the
	// heartbeats of injector replicas and experiments.
	BucketState = "faultline_state"
	// BucketFaultCommands remembers every fault command id and abort for a
	// day, so a replayed command is refused and an aborted experiment
	// stays aborted for every replica, even one that missed the abort.
	BucketFaultCommands = "faultline_fault_commands"
	// BucketExperiments holds the experiment runs in progress, written by
	// their runner and read by the steady-state analyzer.
	BucketExperiments = "faultline_experiments"
)

// FaultCommandMemory is how long BucketFaultCommands remembers.
const FaultCommandMemory = 24 * time.Hour

// KVLayout returns the buckets every deployment has.
func KVLayout() []KVSpec {
	return []KVSpec{
		{Bucket: BucketCheckpoints, Description: "collector resume positions", History: 1},
		{Bucket: BucketFaults, Description: "active faults with their deadline and revert record", History: 5},
		{Bucket: BucketState, Description: "analyzer state shared by replicas; heartbeats", History: 1},
		{Bucket: BucketFaultCommands, Description: "fault command ids and aborts, for replay detection", History: 1, TTL: FaultCommandMemory},
		{Bucket: BucketExperiments, Description: "experiment runs in progress and their steady-state evaluation", History: 1},
	}
}

// EnsureKV creates or updates the buckets.
func (b *Bus) EnsureKV(ctx context.Context, specs []KVSpec) error {
	for _, s := range specs {
		replicas := s.Replicas
		if replicas <= 0 {
			replicas = 1
		}
		maxBytes := s.MaxBytes
		if maxBytes == 0 {
			maxBytes = -1
		}
		storage := jetstream.FileStorage
		if s.Memory {
			storage = jetstream.MemoryStorage
		}
		cfg := jetstream.KeyValueConfig{
			Bucket:      s.Bucket,
			Description: s.Description,
			TTL:         s.TTL,
			History:     max(s.History, 1),
			MaxBytes:    maxBytes,
			Replicas:    replicas,
			Storage:     storage,
		}
		if _, err := b.js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("bus: ensure KV bucket %s: %w", s.Bucket, err)
		}
	}
	return nil
}

// KV opens an existing bucket.
func (b *Bus) KV(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	kv, err := b.js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("bus: open KV bucket %s: %w", bucket, err)
	}
	return kv, nil
}
