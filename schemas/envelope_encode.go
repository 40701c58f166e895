package schemas

import (
	"fmt"
	"unicode/utf8"
)

// Encode returns the envelope as structured-mode CloudEvents JSON.
//
// This is the publish hot path, so the JSON is assembled by appending: Data
// is copied verbatim (encoding/json would re-scan and compact it), and the
// output is otherwise byte for byte what encoding/json.Marshal produces for
// the same struct, which the tests check. The envelope is validated first, so
// an envelope that would be refused on decode never reaches the wire.
func (e *Envelope) Encode() ([]byte, error) {
	return e.AppendEncode(make([]byte, 0, e.encodedSizeHint()))
}

// AppendEncode appends the JSON encoding of the envelope to dst, so a
// publisher can reuse one buffer; see Encode. On error dst is returned
// unchanged.
func (e *Envelope) AppendEncode(dst []byte) ([]byte, error) {
	if err := e.check(); err != nil {
		return dst, fmt.Errorf("encode envelope: %w", err)
	}
	start := len(dst)
	dst = append(dst, `{"specversion":`...)
	dst = appendJSONString(dst, e.SpecVersion)
	dst = append(dst, `,"id":`...)
	dst = appendJSONString(dst, e.ID)
	dst = append(dst, `,"source":`...)
	dst = appendJSONString(dst, e.Source)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, e.Type)
	if e.Subject != "" {
		dst = append(dst, `,"subject":`...)
		dst = appendJSONString(dst, e.Subject)
	}
	dst = append(dst, `,"time":"`...)
	var err error
	// AppendText is exactly what time.Time.MarshalJSON quotes: RFC 3339
	// with nanoseconds, trailing zeros dropped.
	if dst, err = e.Time.AppendText(dst); err != nil {
		return dst[:start], fmt.Errorf("encode envelope: %w", invalid("time", "%v", err))
	}
	dst = append(dst, `","datacontenttype":`...)
	dst = appendJSONString(dst, e.DataContentType)
	dst = append(dst, `,"cluster":`...)
	dst = appendJSONString(dst, e.Cluster)
	dst = append(dst, `,"data":`...)
	dst = append(dst, e.Data...)
	dst = append(dst, '}')
	return dst, nil
}

// encodedSizeHint is an upper bound for the common case (no escapes), so
// Encode allocates once.
func (e *Envelope) encodedSizeHint() int {
	const fixed = len(`{"specversion":"","id":"","source":"","type":"","subject":"","time":"","datacontenttype":"","cluster":"","data":}`)
	const timeLen = len("2006-01-02T15:04:05.999999999-07:00")
	return fixed + timeLen + len(e.SpecVersion) + len(e.ID) + len(e.Source) + len(e.Type) +
		len(e.Subject) + len(e.DataContentType) + len(e.Cluster) + len(e.Data) + 16
}

const hexDigits = "0123456789abcdef"

// plain8 tells whether none of the eight bytes of s needs escaping: no
// control character, quote, backslash, non-ASCII byte (checked one by one
// for invalid UTF-8 and U+2028/U+2029) or, with html, <, > or &.
func plain8(s string, html bool) bool {
	const lsbs, msbs = 0x0101010101010101, 0x8080808080808080
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	zero := func(v uint64) uint64 { return (v - lsbs) &^ v & msbs }
	m := x&msbs | (x-lsbs*0x20)&^x&msbs | zero(x^lsbs*'"') | zero(x^lsbs*'\\')
	if html {
		m |= zero(x^lsbs*'<') | zero(x^lsbs*'>') | zero(x^lsbs*'&')
	}
	return m == 0
}

// appendJSONString appends s as a JSON string escaped the way encoding/json
// does by default (HTML-safe: <, > and & as \u escapes; invalid UTF-8 as
// U+FFFD; U+2028 and U+2029 escaped), so both encoders agree byte for byte.
func appendJSONString(dst []byte, s string) []byte { return appendJSONStringHTML(dst, s, true) }

// appendJSONStringHTML is appendJSONString; without html, <, > and & are
// written as they are, as by a json.Encoder with SetEscapeHTML(false).
func appendJSONStringHTML(dst []byte, s string, html bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Runs of bytes written as they are, eight at a time.
		for i+8 <= len(s) && plain8(s[i:i+8], html) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!html || c != '<' && c != '>' && c != '&') {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
