package auditfile

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/promutil"
)

// Reasons a line is not published.
const (
	reasonTooLong       = "too_long"
	reasonInvalid       = "invalid"
	reasonUnterminated  = "unterminated"
	reasonUnpublishable = "unpublishable"
)

type metrics struct {
	published       prometheus.Counter
	duplicates      prometheus.Counter
	truncated       prometheus.Counter
	redacted        prometheus.Counter
	rejected        *prometheus.CounterVec
	bytesRead       prometheus.Counter
	rotations       *prometheus.CounterVec
	retries         prometheus.Counter
	checkpointMiss  prometheus.Counter
	batchPending    prometheus.Gauge
	lagBytes        prometheus.Gauge
	checkpointSaves prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_auditfile_events_published_total",
			Help: "Audit events read from the file and acknowledged by JetStream as new.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_auditfile_events_duplicate_total",
			Help: "Audit events JetStream already held under the same id (a re-read after a crash before the checkpoint).",
		}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_auditfile_events_truncated_total",
			Help: "Audit events larger than max_event_size, published without their request and response objects (or as a bounded summary).",
		}),
		redacted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_auditfile_events_redacted_total",
			Help: "Audit events published with secret values replaced by [REDACTED].",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_auditfile_lines_rejected_total",
			Help: "Lines not published as audit events, by reason: too_long (skipped), invalid (not JSON or not an audit event) and unterminated (partial last line of a rotated file), both kept redacted on the dead-letter subject, unpublishable (refused by the bus).",
		}, []string{"reason"}),
		bytesRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_auditfile_read_bytes_total",
			Help: "Bytes of audit log consumed (complete lines).",
		}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_auditfile_rotations_total",
			Help: "Rotations of the audit log seen while following it, by kind: rename (rename and create) or truncate (copy and truncate).",
		}, []string{"kind"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_auditfile_publish_retries_total",
			Help: "Batches published again because JetStream did not acknowledge every event, or the checkpoint could not be saved.",
		}),
		checkpointMiss: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_auditfile_checkpoint_file_missing_total",
			Help: "Times the file of the checkpoint (or the copy of a truncated file) was not found: events written after the last read position may be lost.",
		}),
		batchPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_auditfile_batch_events",
			Help: "Events of the current batch held until JetStream acknowledges them.",
		}),
		lagBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_auditfile_lag_bytes",
			Help: "Bytes of the active audit log not read yet.",
		}),
		checkpointSaves: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_auditfile_checkpoints_saved_total",
			Help: "Checkpoints written to the faultline_checkpoints KV bucket.",
		}),
	}
	m.rejected.WithLabelValues(reasonTooLong)
	m.rejected.WithLabelValues(reasonInvalid)
	m.rejected.WithLabelValues(reasonUnterminated)
	m.rejected.WithLabelValues(reasonUnpublishable)
	m.rotations.WithLabelValues("rename")
	m.rotations.WithLabelValues("truncate")
	if reg != nil {
		m.published = promutil.Reuse(reg, m.published)
		m.duplicates = promutil.Reuse(reg, m.duplicates)
		m.truncated = promutil.Reuse(reg, m.truncated)
		m.redacted = promutil.Reuse(reg, m.redacted)
		m.rejected = promutil.Reuse(reg, m.rejected)
		m.bytesRead = promutil.Reuse(reg, m.bytesRead)
		m.rotations = promutil.Reuse(reg, m.rotations)
		m.retries = promutil.Reuse(reg, m.retries)
		m.checkpointMiss = promutil.Reuse(reg, m.checkpointMiss)
		m.batchPending = promutil.Reuse(reg, m.batchPending)
		m.lagBytes = promutil.Reuse(reg, m.lagBytes)
		m.checkpointSaves = promutil.Reuse(reg, m.checkpointSaves)
	}
	return m
}
