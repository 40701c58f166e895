package schemas

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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

// ErrSyntax is wrapped by every JSON syntax error this package's scanner
// reports.
var ErrSyntax = errors.New("invalid JSON")

func syntaxErr(off int, format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", ErrSyntax, off, fmt.Sprintf(format, args...))
}

// maxDepth matches encoding/json's nesting limit, so both refuse the same
// documents.
const maxDepth = 10000

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
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return trailing(b, i+1)
	}
	seen := 0
	for {
		if i >= len(b) || b[i] != '"' {
			return syntaxErr(i, "expected attribute name")
		}
		end, err := scanString(b, i)
		if err != nil {
			return err
		}
		name, err := rawName(b[i:end])
		if err != nil {
			return syntaxErr(i, "attribute name: %v", err)
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return syntaxErr(i, "expected ':' after attribute name")
		}
		i = skipSpace(b, i+1)
		if i, err = decodeAttribute(b, i, name, e, &seen); err != nil {
			return err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return syntaxErr(i, "unexpected end of envelope")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return trailing(b, i+1)
		default:
			return syntaxErr(i, "expected ',' or '}' after attribute value")
		}
	}
}

func trailing(b []byte, i int) error {
	if i = skipSpace(b, i); i != len(b) {
		return syntaxErr(i, "data after the envelope")
	}
	return nil
}

// decodeAttribute reads the value at b[i:] into the attribute name of e and
// returns the offset after it.
func decodeAttribute(b []byte, i int, name []byte, e *Envelope, seen *int) (int, error) {
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
		return i, invalid(string(name), "binary data is not supported: Faultline payloads are JSON in \"data\"")
	default:
		if !validExtensionName(name) {
			return i, invalid(string(name), "attribute names are lowercase ASCII letters and digits")
		}
		// An extension Faultline does not use: checked for syntax, ignored.
		return skipValue(b, i, 1)
	}
	if *seen&bit != 0 {
		return i, invalid(string(name), "appears more than once")
	}
	*seen |= bit
	end, err := skipValue(b, i, 1)
	if err != nil {
		return i, err
	}
	raw := b[i:end]
	switch {
	case dst != nil:
		if isNull(raw) {
			return end, nil
		}
		if raw[0] != '"' {
			return i, invalid(string(name), "must be a string")
		}
		s, err := internedValue(raw)
		if err != nil {
			return i, invalid(string(name), "%v", err)
		}
		*dst = s
	case bit == seenTime:
		// Time.UnmarshalJSON sees the raw token, as under encoding/json.
		if err := e.Time.UnmarshalJSON(raw); err != nil {
			return i, invalid(string(name), "%v", err)
		}
	default: // data
		e.Data = append(json.RawMessage(nil), raw...)
	}
	return end, nil
}

func isNull(raw []byte) bool { return len(raw) == 4 && string(raw) == "null" }

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

// stringValue returns the Go string of a scanned JSON string token. Plain
// ASCII without escapes, the usual case, is converted directly; the rest goes
// through encoding/json so escapes and invalid UTF-8 are treated exactly as
// there.
func stringValue(tok []byte) (string, error) {
	body := tok[1 : len(tok)-1]
	for _, c := range body {
		if c == '\\' || c >= 0x80 {
			var s string
			if err := json.Unmarshal(tok, &s); err != nil {
				return "", err
			}
			return s, nil
		}
	}
	return string(body), nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString returns the offset after the JSON string starting at b[i]
// (which is '"'), checking escapes and refusing control characters as the
// JSON grammar requires. Bytes >= 0x80 are accepted unchecked, like
// encoding/json does.
//
// Strings are most of an audit event, so plain runs are skipped eight bytes
// at a time.
func scanString(b []byte, i int) (int, error) {
	start := i
	i++
	for i < len(b) {
		for i+8 <= len(b) && !hasSpecial(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && plainStringByte[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(b) {
				return i, syntaxErr(i, "unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, syntaxErr(i, "unterminated string")
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return i, syntaxErr(i, "invalid \\u escape")
					}
				}
				i += 6
			default:
				return i, syntaxErr(i, "invalid escape %q", b[i+1])
			}
		default: // c < 0x20
			return i, syntaxErr(i, "control character in string")
		}
	}
	return start, syntaxErr(start, "unterminated string")
}

// plainStringByte[c] reports whether c may appear in a JSON string as is.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// hasSpecial reports whether any of the eight bytes in x is a quote, a
// backslash or below 0x20 (the usual "has zero byte" bit trick, which is
// exact about whether there is one).
func hasSpecial(x uint64) bool {
	hasZero := func(v uint64) uint64 { return (v - lsbs) & ^v & msbs }
	below20 := (x - lsbs*0x20) & ^x & msbs
	return below20|hasZero(x^(lsbs*'"'))|hasZero(x^(lsbs*'\\')) != 0
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// skipValue checks the syntax of the JSON value at b[i:] and returns the
// offset after it. depth is how many containers already enclose it. It is
// iterative so hostile nesting cannot exhaust the stack.
func skipValue(b []byte, i, depth int) (int, error) {
	var small [64]byte
	stack := small[:0] // open containers: '{' or '['
	for {
		// A value is expected at b[i].
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, syntaxErr(i, "unexpected end of input, expected a value")
		}
		var err error
		switch c := b[i]; c {
		case '{', '[':
			if depth+len(stack)+1 > maxDepth {
				return i, syntaxErr(i, "nested deeper than %d", maxDepth)
			}
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			j := skipSpace(b, i+1)
			if j < len(b) && b[j] == closer {
				i = j + 1
				break
			}
			stack = append(stack, c)
			i = j
			if c == '{' {
				if i, err = scanKey(b, i); err != nil {
					return i, err
				}
			}
			continue
		case '"':
			if i, err = scanString(b, i); err != nil {
				return i, err
			}
		case 't':
			if i, err = scanLiteral(b, i, "true"); err != nil {
				return i, err
			}
		case 'f':
			if i, err = scanLiteral(b, i, "false"); err != nil {
				return i, err
			}
		case 'n':
			if i, err = scanLiteral(b, i, "null"); err != nil {
				return i, err
			}
		default:
			if c != '-' && (c < '0' || c > '9') {
				return i, syntaxErr(i, "invalid character %q looking for a value", c)
			}
			if i, err = scanNumber(b, i); err != nil {
				return i, err
			}
		}
		// A value ended; close containers until one expects another value.
		for {
			if len(stack) == 0 {
				return i, nil
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return i, syntaxErr(i, "unexpected end of input in a container")
			}
			top := stack[len(stack)-1]
			c := b[i]
			if c == ',' {
				i++
				if top == '{' {
					if i, err = scanKey(b, skipSpace(b, i)); err != nil {
						return i, err
					}
				}
				break
			}
			if (top == '{' && c == '}') || (top == '[' && c == ']') {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			return i, syntaxErr(i, "invalid character %q after a value in a container", c)
		}
	}
}

// scanKey reads `"name" :` at b[i:] and returns the offset after the colon.
func scanKey(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return i, syntaxErr(i, "expected object key")
	}
	i, err := scanString(b, i)
	if err != nil {
		return i, err
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, syntaxErr(i, "expected ':' after object key")
	}
	return i + 1, nil
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, syntaxErr(i, "invalid literal, expected %s", lit)
	}
	return i + len(lit), nil
}

// scanNumber follows the JSON number grammar:
// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func scanNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return start, syntaxErr(i, "invalid number")
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return start, syntaxErr(i, "invalid number: no digits after '.'")
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return start, syntaxErr(i, "invalid number: no digits in exponent")
		}
		i = j
	}
	return i, nil
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
