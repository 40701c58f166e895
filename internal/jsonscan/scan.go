// Package jsonscan is Faultline's one JSON scanner: it finds the extent of
// JSON values in place, checking their syntax or not, without building
// them, and decodes the few values its callers read. The envelope decoder,
// the audit preparer and redactor (schemas) and the analyzers' lazy audit
// event (analyzers/audit) are built on it.
//
// What it accepts as valid is exactly what encoding/json accepts
// (json.Valid), including its nesting limit; strings it decodes are the
// strings encoding/json decodes. It never panics on malformed input and its
// syntax check is iterative, so hostile nesting cannot exhaust the stack.
//
// Strings are most of the bytes of an audit event, so they are scanned
// eight bytes at a time.
package jsonscan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// ErrSyntax is wrapped by every syntax error the package reports.
var ErrSyntax = errors.New("invalid JSON")

// Errorf returns a syntax error at offset off, wrapping ErrSyntax.
func Errorf(off int, format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", ErrSyntax, off, fmt.Sprintf(format, args...))
}

// MaxDepth is encoding/json's nesting limit: a value nested deeper is
// refused by both.
const MaxDepth = 10000

// SkipSpace returns the offset of the first byte at or after i that is not
// JSON white space.
func SkipSpace(b []byte, i int) int {
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

const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// special has the high bit of each of the eight bytes of x that is a quote,
// a backslash or below 0x20, and of no byte before the first such one (the
// bits after it may be wrong: only the lowest set bit counts).
func special(x uint64) uint64 {
	q := x ^ (lsbs * '"')
	s := x ^ (lsbs * '\\')
	return ((q-lsbs) & ^q | (s-lsbs) & ^s | (x-lsbs*0x20) & ^x) & msbs
}

// quoteOrBackslash is special without control characters, for input known
// to be valid.
func quoteOrBackslash(x uint64) uint64 {
	q := x ^ (lsbs * '"')
	s := x ^ (lsbs * '\\')
	return ((q-lsbs) & ^q | (s-lsbs) & ^s) & msbs
}

// String returns the end (one past the closing quote) of the string at
// b[i] == '"', checking it as the JSON grammar requires: escapes valid, no
// control characters. Bytes of 0x80 and above are accepted unchecked, as
// encoding/json does. escaped tells whether the string holds escapes.
func String(b []byte, i int) (end int, escaped bool, err error) {
	j := i + 1
	for {
		for j+8 <= len(b) {
			if m := special(binary.LittleEndian.Uint64(b[j:])); m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				goto found
			}
			j += 8
		}
		for j < len(b) && b[j] != '"' && b[j] != '\\' && b[j] >= 0x20 {
			j++
		}
		if j >= len(b) {
			return 0, false, Errorf(i, "unterminated string")
		}
	found:
		switch c := b[j]; {
		case c == '"':
			return j + 1, escaped, nil
		case c == '\\':
			escaped = true
			if j+1 >= len(b) {
				return 0, false, Errorf(i, "unterminated string")
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) {
					return 0, false, Errorf(i, "unterminated string")
				}
				for _, h := range b[j+2 : j+6] {
					if !isHex(h) {
						return 0, false, Errorf(j, "invalid \\u escape")
					}
				}
				j += 6
			default:
				return 0, false, Errorf(j, "invalid escape %q", b[j+1])
			}
		default:
			return 0, false, Errorf(j, "control character in string")
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// Skip checks the syntax of the JSON value at b[i:] (after optional white
// space) and returns the offset after it. depth is how many containers
// already enclose the value, for the nesting limit.
func Skip(b []byte, i, depth int) (int, error) {
	var small [64]byte
	stack := small[:0] // the open containers: '{' or '['
	var err error
value: // a value is expected at b[i]
	if i < len(b) && b[i] <= ' ' {
		i = SkipSpace(b, i)
	}
	if i >= len(b) {
		return 0, Errorf(i, "unexpected end of input, expected a value")
	}
	switch c := b[i]; c {
	case '"':
		if i, _, err = String(b, i); err != nil {
			return 0, err
		}
	case '{', '[':
		if depth+len(stack)+1 > MaxDepth {
			return 0, Errorf(i, "nested deeper than %d", MaxDepth)
		}
		i++
		if i < len(b) && b[i] <= ' ' {
			i = SkipSpace(b, i)
		}
		if c == '{' {
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			stack = append(stack, c)
			goto key
		}
		if i < len(b) && b[i] == ']' {
			i++
			break
		}
		stack = append(stack, c)
		goto value
	case 't':
		if i, err = literal(b, i, "true"); err != nil {
			return 0, err
		}
	case 'f':
		if i, err = literal(b, i, "false"); err != nil {
			return 0, err
		}
	case 'n':
		if i, err = literal(b, i, "null"); err != nil {
			return 0, err
		}
	default:
		if i, err = Number(b, i); err != nil {
			return 0, err
		}
	}
	// A value ended: close containers until one expects another value.
	for {
		if len(stack) == 0 {
			return i, nil
		}
		if i < len(b) && b[i] <= ' ' {
			i = SkipSpace(b, i)
		}
		if i >= len(b) {
			return 0, Errorf(i, "unexpected end of input in a container")
		}
		top := stack[len(stack)-1]
		switch c := b[i]; {
		case c == ',':
			i++
			if top == '{' {
				if i < len(b) && b[i] <= ' ' {
					i = SkipSpace(b, i)
				}
				goto key
			}
			goto value
		case c == '}' && top == '{', c == ']' && top == '[':
			stack = stack[:len(stack)-1]
			i++
		default:
			return 0, Errorf(i, "invalid character %q after a value in a container", c)
		}
	}
key: // an object key is expected at b[i]
	if i >= len(b) || b[i] != '"' {
		return 0, Errorf(i, "expected object key")
	}
	if i, _, err = String(b, i); err != nil {
		return 0, err
	}
	if i < len(b) && b[i] <= ' ' {
		i = SkipSpace(b, i)
	}
	if i >= len(b) || b[i] != ':' {
		return 0, Errorf(i, "expected ':' after object key")
	}
	i++
	goto value
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, Errorf(i, "invalid literal, expected %s", lit)
	}
	return i + len(lit), nil
}

// Number checks the JSON number at b[i:] and returns its end:
// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func Number(b []byte, i int) (int, error) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		if i < len(b) {
			return 0, Errorf(i, "invalid character %q looking for a value", b[i])
		}
		return 0, Errorf(start, "invalid number")
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return 0, Errorf(i, "invalid number: no digits after '.'")
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
			return 0, Errorf(i, "invalid number: no digits in exponent")
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

// SkipValid returns the end of the value at b[i:] (after optional white
// space) in input already known to be valid JSON: it only matches
// brackets and finds the ends of strings, eight bytes at a time. On
// invalid input it returns some offset in [i, len(b)]; it never reads out
// of bounds.
func SkipValid(b []byte, i int) int {
	if i < len(b) && b[i] <= ' ' {
		i = SkipSpace(b, i)
	}
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return SkipValidString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = SkipValidString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// SkipValidString returns the end of the valid JSON string at b[i] == '"'.
func SkipValidString(b []byte, i int) int {
	j := i + 1
	for {
		for j+8 <= len(b) {
			if m := quoteOrBackslash(binary.LittleEndian.Uint64(b[j:])); m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				goto found
			}
			j += 8
		}
		for j < len(b) && b[j] != '"' && b[j] != '\\' {
			j++
		}
		if j >= len(b) {
			return len(b)
		}
	found:
		if b[j] == '"' {
			return j + 1
		}
		j += 2 // an escape: what follows the backslash is never the end
	}
}

// Trailing checks that only white space follows offset i.
func Trailing(b []byte, i int) error {
	if i = SkipSpace(b, i); i != len(b) {
		return Errorf(i, "data after the value")
	}
	return nil
}

// IsNull tells whether the value is null.
func IsNull(v []byte) bool { return len(v) == 4 && string(v) == "null" }

// Kind names the JSON type of the value starting with c.
func Kind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}
