package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/faultline/faultline/internal/jsonscan"
)

// DecodeEnvelope parses a structured-mode CloudEvents JSON envelope and
// validates it (see Envelope.Validate). Data is copied out of b, so b may be
// reused afterwards.
//
// Every consumer decodes every message, so this is a single pass over b that
// only checks the syntax of data instead of building it; encoding/json would
// scan b twice. Anything it accepts, encoding/json accepts with the same
// result (the fuzz test checks this); it is stricter in three ways:
// attribute names must be lowercase letters and digits as CloudEvents
// requires (encoding/json would match "ID" to "id"), a known attribute may
// not appear twice, and binary data (data_base64) is refused.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	var e Envelope
	if err := decodeEnvelope(b, &e); err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	return &e, nil
}

// ErrSyntax is wrapped by every JSON syntax error this package reports
// (internal/jsonscan's).
var ErrSyntax = jsonscan.ErrSyntax

func syntaxErr(off int, format string, args ...any) error {
	return jsonscan.Errorf(off, format, args...)
}

// maxDepth matches encoding/json's nesting limit, so both refuse the same
// documents.
const maxDepth = jsonscan.MaxDepth

const (
	seenSpecVersion = 1 << iota
	seenID
	seenSource
	seenType
	seenSubject
	seenTime
	seenContentType
	seenCluster
	seenData
)

func decodeEnvelope(b []byte, e *Envelope) error {
	i := skipSpace(b, 0)
	if i >= len(b) {
		return syntaxErr(i, "empty input")
	}
	if b[i] != '{' {
		return syntaxErr(i, "envelope is not a JSON object")
	}
	seen := 0
	end, err := jsonscan.Members(b, i, false, func(m jsonscan.Member) error {
		return decodeAttribute(m.Name(b), b[m.Val:m.ValEnd], e, &seen)
	})
	if err != nil {
		return err
	}
	return trailing(b, end)
}

func trailing(b []byte, i int) error {
	if i = skipSpace(b, i); i != len(b) {
		return syntaxErr(i, "data after the envelope")
	}
	return nil
}

// decodeAttribute reads raw, an attribute's value (its syntax checked),
// into the attribute name of e.
func decodeAttribute(name, raw []byte, e *Envelope, seen *int) error {
	var dst *string
	var bit int
	switch string(name) { // no allocation: the compiler compares in place
	case "specversion":
		dst, bit = &e.SpecVersion, seenSpecVersion
	case "id":
		dst, bit = &e.ID, seenID
	case "source":
		dst, bit = &e.Source, seenSource
	case "type":
		dst, bit = &e.Type, seenType
	case "subject":
		dst, bit = &e.Subject, seenSubject
	case "datacontenttype":
		dst, bit = &e.DataContentType, seenContentType
	case "cluster":
		dst, bit = &e.Cluster, seenCluster
	case "time":
		bit = seenTime
	case "data":
		bit = seenData
	case "data_base64":
		return invalid(string(name), "binary data is not supported: Faultline payloads are JSON in \"data\"")
	default:
		if !validExtensionName(name) {
			return invalid(string(name), "attribute names are lowercase ASCII letters and digits")
		}
		// An extension Faultline does not use: checked for syntax, ignored.
		return nil
	}
	if *seen&bit != 0 {
		return invalid(string(name), "appears more than once")
	}
	*seen |= bit
	switch {
	case dst != nil:
		if isNull(raw) {
			return nil
		}
		if raw[0] != '"' {
			return invalid(string(name), "must be a string")
		}
		s, err := internedValue(raw)
		if err != nil {
			return invalid(string(name), "%v", err)
		}
		*dst = s
	case bit == seenTime:
		// Time.UnmarshalJSON sees the raw token, as under encoding/json.
		if err := e.Time.UnmarshalJSON(raw); err != nil {
			return invalid(string(name), "%v", err)
		}
	default: // data
		e.Data = append(json.RawMessage(nil), raw...)
	}
	return nil
}

func isNull(raw []byte) bool { return jsonscan.IsNull(raw) }

func validExtensionName(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// rawName returns an attribute name without allocating when it has no
// escapes (always, in practice); the caller must not keep it.
func rawName(tok []byte) ([]byte, error) {
	body := tok[1 : len(tok)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return body, nil
	}
	s, err := stringValue(tok)
	return []byte(s), err
}

// internedValue is stringValue that returns the constants most envelopes
// carry (spec version, content type, Faultline's types) without allocating.
func internedValue(tok []byte) (string, error) {
	switch body := tok[1 : len(tok)-1]; string(body) {
	case SpecVersion:
		return SpecVersion, nil
	case ContentTypeJSON:
		return ContentTypeJSON, nil
	case TypeAudit:
		return TypeAudit, nil
	case TypeKubeEvent:
		return TypeKubeEvent, nil
	case TypeMetric:
		return TypeMetric, nil
	case TypeFinding:
		return TypeFinding, nil
	case TypeDeviation:
		return TypeDeviation, nil
	case TypeFaultCommand:
		return TypeFaultCommand, nil
	case TypeFaultStatus:
		return TypeFaultStatus, nil
	case TypeFaultAbort:
		return TypeFaultAbort, nil
	}
	return stringValue(tok)
}

// stringValue returns the Go string of a scanned JSON string token, decoded
// exactly as encoding/json decodes it; it never aliases tok.
func stringValue(tok []byte) (string, error) {
	s, ok := jsonscan.Unquote(tok)
	if !ok {
		return "", syntaxErr(0, "malformed string %.40q", tok)
	}
	return s, nil
}

// The scanner is internal/jsonscan's; these name it as this package's
// code uses it.

func skipSpace(b []byte, i int) int { return jsonscan.SkipSpace(b, i) }

// scanString returns the offset after the JSON string starting at b[i]
// (which is '"'), checking it.
func scanString(b []byte, i int) (int, error) {
	end, _, err := jsonscan.String(b, i)
	return end, err
}

// skipValue checks the syntax of the JSON value at b[i:] and returns the
// offset after it. depth is how many containers already enclose it.
func skipValue(b []byte, i, depth int) (int, error) { return jsonscan.Skip(b, i, depth) }
