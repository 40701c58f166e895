package fluent

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/faultline/faultline/internal/jsonscan"
	"github.com/faultline/faultline/sinks"
)

// ErrNoKind is wrapped when a document's type is none of the kinds (a
// permanent failure).
var ErrNoKind = errors.New("no record kind for this type")

// maxDepth bounds the nesting of a record: deeper is refused rather than
// sent to receivers whose decoders may not cope.
const maxDepth = 200

// rawRecord is a record already encoded as a msgpack map: the client
// appends it to its message as is.
type rawRecord []byte

// MarshalMsg implements msgp.Marshaler.
func (r rawRecord) MarshalMsg(b []byte) ([]byte, error) { return append(b, r...), nil }

// encoder turns documents into forward-protocol records.
type encoder struct {
	tags        map[string]string
	envelopeKey string
}

func newEncoder(c Config) *encoder {
	e := &encoder{tags: map[string]string{}, envelopeKey: c.EnvelopeKey}
	for _, k := range sinks.Kinds() {
		e.tags[k] = Tag(c.TagPrefix, k)
	}
	return e
}

// Tag is the tag of a kind's records.
func Tag(prefix, kind string) string {
	if prefix == "" {
		return kind
	}
	return prefix + "." + kind
}

// encoded is one document as a record.
type encoded struct {
	kind string
	tag  string
	time time.Time
	rec  rawRecord
}

// encode makes the record of d: the members of its JSON object in order,
// each value in its msgpack form (objects as maps, integers as integers,
// other numbers as float64), plus the envelope under envelopeKey (a member
// of the document with that name is dropped). Its time is the document's
// @timestamp, else the envelope's time. An error is permanent: the same
// document can never be encoded.
func (e *encoder) encode(dst []byte, d *sinks.Document) (encoded, error) {
	kind, ok := sinks.KindOf(d.Type)
	if !ok {
		return encoded{}, fmt.Errorf("type %q: %w", d.Type, ErrNoKind)
	}
	body := bytes.TrimSpace(d.Body)
	if len(body) == 0 || body[0] != '{' {
		return encoded{}, fmt.Errorf("%s document: data is not a JSON object", kind)
	}
	n := 0
	var at []byte
	end, err := jsonscan.Members(body, 0, false, func(m jsonscan.Member) error {
		name := m.Name(body)
		switch {
		case e.envelopeKey != "" && string(name) == e.envelopeKey:
			return nil
		case string(name) == "@timestamp":
			at = m.Value(body)
		}
		n++
		return nil
	})
	if err == nil {
		err = jsonscan.Trailing(body, end)
	}
	if err != nil {
		return encoded{}, fmt.Errorf("%s document: %w", kind, err)
	}
	tm, err := eventTime(at, d)
	if err != nil {
		return encoded{}, fmt.Errorf("%s document: %w", kind, err)
	}
	start := len(dst)
	if e.envelopeKey != "" {
		n++
	}
	dst = msgp.AppendMapHeader(dst, uint32(n))
	_, err = jsonscan.Members(body, 0, true, func(m jsonscan.Member) error {
		name := m.Name(body)
		if e.envelopeKey != "" && string(name) == e.envelopeKey {
			return nil
		}
		dst = msgp.AppendStringFromBytes(dst, name)
		var err error
		dst, err = appendValue(dst, m.Value(body), 1)
		return err
	})
	if err != nil {
		return encoded{}, fmt.Errorf("%s document: %w", kind, err)
	}
	if e.envelopeKey != "" {
		dst = msgp.AppendString(dst, e.envelopeKey)
		dst = appendEnvelope(dst, d)
	}
	return encoded{kind: kind, tag: e.tags[kind], time: tm, rec: rawRecord(dst[start:])}, nil
}

// eventTime is the @timestamp value when it is an RFC 3339 date, else the
// envelope's time.
func eventTime(at []byte, d *sinks.Document) (time.Time, error) {
	if len(at) > 2 && at[0] == '"' {
		if s, ok := jsonscan.Unquote(at); ok {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t, nil
			}
		}
	}
	if d.Time.IsZero() {
		return time.Time{}, errors.New("no @timestamp and no envelope time")
	}
	return d.Time, nil
}

func appendEnvelope(dst []byte, d *sinks.Document) []byte {
	dst = msgp.AppendMapHeader(dst, 5)
	dst = msgp.AppendString(dst, "id")
	dst = msgp.AppendString(dst, d.ID)
	dst = msgp.AppendString(dst, "type")
	dst = msgp.AppendString(dst, d.Type)
	dst = msgp.AppendString(dst, "subject")
	dst = msgp.AppendString(dst, d.Subject)
	dst = msgp.AppendString(dst, "cluster")
	dst = msgp.AppendString(dst, d.Cluster)
	dst = msgp.AppendString(dst, "time")
	return msgp.AppendString(dst, d.Time.UTC().Format(time.RFC3339Nano))
}

// appendValue appends the msgpack form of the valid JSON value v.
func appendValue(dst, v []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	switch v[0] {
	case '{':
		n := 0
		if _, err := jsonscan.Members(v, 0, true, func(jsonscan.Member) error { n++; return nil }); err != nil {
			return dst, err
		}
		dst = msgp.AppendMapHeader(dst, uint32(n))
		var err error
		_, err = jsonscan.Members(v, 0, true, func(m jsonscan.Member) error {
			dst = msgp.AppendStringFromBytes(dst, m.Name(v))
			dst, err = appendValue(dst, m.Value(v), depth+1)
			return err
		})
		return dst, err
	case '[':
		n := 0
		if _, err := jsonscan.Elements(v, 0, true, func(int, int) error { n++; return nil }); err != nil {
			return dst, err
		}
		dst = msgp.AppendArrayHeader(dst, uint32(n))
		var err error
		_, err = jsonscan.Elements(v, 0, true, func(vs, ve int) error {
			dst, err = appendValue(dst, v[vs:ve], depth+1)
			return err
		})
		return dst, err
	case '"':
		s, ok := jsonscan.UnquoteView(v)
		if !ok {
			return dst, fmt.Errorf("malformed string %.40q", v)
		}
		return msgp.AppendString(dst, s), nil
	case 't':
		return msgp.AppendBool(dst, true), nil
	case 'f':
		return msgp.AppendBool(dst, false), nil
	case 'n':
		return msgp.AppendNil(dst), nil
	}
	return appendNumber(dst, v)
}

// appendNumber keeps integers integers (int64, or uint64 above its range)
// and sends every other number as float64.
func appendNumber(dst, v []byte) ([]byte, error) {
	s := jsonscan.View(v)
	if !bytes.ContainsAny(v, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return msgp.AppendInt64(dst, i), nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return msgp.AppendUint64(dst, u), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return dst, fmt.Errorf("number %.40q: %w", v, err)
	}
	return msgp.AppendFloat64(dst, f), nil
}
