package auditfile

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/faultline/faultline/internal/units"
	"github.com/faultline/faultline/schemas"
)

// Start positions for a first start without a checkpoint.
const (
	StartBeginning = "beginning"
	StartEnd       = "end"
)

// maxMaxEventSize is the embedded server's max_payload.
const maxMaxEventSize = 8 << 20

// Config configures the audit log file reader.
type Config struct {
	Enabled bool `yaml:"enabled" doc:"Follow API-server audit log files (JSON lines)."`

	Path string `yaml:"path" doc:"The API server's --audit-log-path. Rotated files next to it (kube-apiserver's audit-2026-11-22T05-30-00.123.log, optionally .gz; logrotate's audit.log.1, audit.log-20261122) are found in the same directory."`

	ReadRotated bool `yaml:"read_rotated" doc:"On the first start (no checkpoint yet), read the rotated files next to path, oldest first, before path itself."`

	StartAt string `yaml:"start_at" doc:"Where the first start (no checkpoint yet) begins: beginning (everything present) or end (only what is written from now on; rotated files are skipped). After that the checkpoint decides."`

	PollInterval time.Duration `yaml:"poll_interval" doc:"How often the file is checked for new lines and rotation when there is nothing to read."`

	BatchSize int `yaml:"batch_size" doc:"Events published together; the checkpoint moves after every event of a batch is acknowledged by JetStream."`

	MaxBatchBytes units.ByteSize `yaml:"max_batch_bytes" doc:"Bound on the bytes of one batch (kept in memory until acknowledged, for retries)."`

	MaxLineSize units.ByteSize `yaml:"max_line_size" doc:"Longest line read. A longer line is skipped, reported with its file and line number, and counted."`

	MaxEventSize units.ByteSize `yaml:"max_event_size" doc:"Largest event published whole. A larger one is published without its requestObject and responseObject (and, if still too large, as a bounded summary), flagged faultline.io/truncated: never dropped. At least 64KiB and below the NATS max_payload."`

	CheckpointKey string `yaml:"checkpoint_key" doc:"Key of the resume position in the faultline_checkpoints KV bucket. Empty: derived from the cluster, the host name and path. Set it (e.g. to the node name) when the host name changes across restarts, as in a DaemonSet."`
}

// DefaultConfig is the built-in default.
func DefaultConfig() Config {
	return Config{
		Path:          "/var/log/kubernetes/audit/audit.log",
		ReadRotated:   true,
		StartAt:       StartBeginning,
		PollInterval:  250 * time.Millisecond,
		BatchSize:     500,
		MaxBatchBytes: 8 << 20,
		MaxLineSize:   4 << 20,
		MaxEventSize:  256 << 10,
	}
}

// Validate returns one error per invalid field, each starting with the
// field's YAML name (the caller adds the section path).
func (c Config) Validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch {
	case c.Path == "":
		bad("path", "must name the API server's audit log file")
	case strings.HasSuffix(c.Path, string(filepath.Separator)) || filepath.Base(c.Path) == ".":
		bad("path", "%q names a directory, want the audit log file", c.Path)
	}
	if c.StartAt != StartBeginning && c.StartAt != StartEnd {
		bad("start_at", "must be %q or %q (got %q)", StartBeginning, StartEnd, c.StartAt)
	}
	if c.PollInterval <= 0 {
		bad("poll_interval", "must be a positive duration (got %s)", c.PollInterval)
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		bad("batch_size", "must be between 1 and 100000 (got %d)", c.BatchSize)
	}
	if c.MaxLineSize < 1024 {
		bad("max_line_size", "must be at least 1KiB (got %s)", c.MaxLineSize)
	}
	if c.MaxEventSize < schemas.MinAuditEventLimit || c.MaxEventSize > maxMaxEventSize {
		bad("max_event_size", "must be between 64KiB and 8MiB (got %s)", c.MaxEventSize)
	}
	if c.MaxBatchBytes < c.MaxEventSize {
		bad("max_batch_bytes", "must be at least max_event_size %s (got %s)", c.MaxEventSize, c.MaxBatchBytes)
	}
	for i := 0; i < len(c.CheckpointKey); i++ {
		if !keyByteOK(c.CheckpointKey[i]) {
			bad("checkpoint_key", "%q: only letters, digits, '-', '_', '=' and '.' are allowed", c.CheckpointKey)
			break
		}
	}
	return errs
}

// keyByteOK tells whether c may appear in a JetStream KV key.
func keyByteOK(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '=' || c == '.'
}
