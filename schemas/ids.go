package schemas

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Deterministic ids. The same source record always gets the same id, so a
// redelivered or re-published message is dropped by JetStream's Nats-Msg-Id
// deduplication and overwrites itself in Elasticsearch (_id).
//
// Every id is "<prefix>_<rest>" with bytes from [A-Za-z0-9_=-] only: valid
// as a Nats-Msg-Id header, an Elasticsearch _id (URL path segment without
// escaping), a JetStream KV key and a subject token. Two forms:
//
//   - readable: <prefix>_<a>_<b> when both parts are non-empty,
//     [A-Za-z0-9-] only, and the id stays within maxReadableID bytes
//     (UUIDs, resource versions and audit stages always are);
//   - hashed: <prefix>_=<32 hex digits>, the first 128 bits of SHA-256 over
//     the length-prefixed parts, for anything else (a client-chosen Audit-ID
//     may contain any character and be long).
//
// The forms cannot collide: readable parts contain no '_' and cannot start
// with '=', and the length prefixes make the hash input unambiguous.

// maxReadableID keeps readable ids well under Elasticsearch's 512-byte _id
// limit.
const maxReadableID = 160

// Id prefixes, one per kind of source record.
const (
	IDPrefixAudit     = "audit"
	IDPrefixKubeEvent = "kevent"
	IDPrefixFinding   = "finding"
	IDPrefixMetric    = "metric"
	IDPrefixDeviation = "deviation"
)

// AuditEventID is the id of an audit event: the API server gives every
// request an auditID and emits one event per stage, so the pair is unique
// per event and stable across redelivery by the webhook backend.
func AuditEventID(auditID, stage string) string {
	return pairID(IDPrefixAudit, auditID, stage)
}

// KubeEventID is the id of one occurrence of a Kubernetes Event. An Event
// object is updated in place when it recurs (count or series.count rises);
// every update has a new resourceVersion, so each occurrence gets its own id
// and a re-list after a restart yields the same ids again.
func KubeEventID(uid, resourceVersion string) string {
	return pairID(IDPrefixKubeEvent, uid, resourceVersion)
}

// FindingID is the id of the finding that rule ruleID raised for the source
// event sourceEventID (an envelope id), so re-analysing a redelivered event
// yields the same finding id. Always hashed: both inputs are unbounded and
// the source id may already be a hash.
func FindingID(ruleID, sourceEventID string) string {
	return DeriveID(IDPrefixFinding, ruleID, sourceEventID)
}

// DeriveID is the hashed id form for records without a natural key:
// prefix + "_" + 32 hex digits of SHA-256 over the length-prefixed parts.
// prefix should be a short [a-z] word.
func DeriveID(prefix string, parts ...string) string {
	return prefix + "_" + digest(parts...)
}

func pairID(prefix, a, b string) string {
	if idPartOK(a) && idPartOK(b) && len(prefix)+len(a)+len(b)+2 <= maxReadableID {
		return prefix + "_" + a + "_" + b
	}
	return prefix + "_=" + digest(a, b)
}

func idPartOK(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func digest(parts ...string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}
