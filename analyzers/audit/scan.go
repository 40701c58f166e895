package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON scanner over the raw event: it finds the extent of values
// without building them, so an event costs one pass over its bytes plus the
// few fields a reader asks for. It never panics on malformed input and
// bounds nesting.

const maxDepth = 256

var errSyntax = errors.New("invalid JSON")

func syntax(off int, what string) error {
	return fmt.Errorf("%w at byte %d: %s", errSyntax, off, what)
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

// scanString returns the end (one past the closing quote) of the string
// starting at b[i] == '"', and whether it holds escapes.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	i++
	for i < len(b) {
		// Eight plain bytes at a time.
		for i+8 <= len(b) && !hasSpecial(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return 0, false, syntax(i, "unterminated escape")
			}
			if b[i+1] == 'u' {
				if i+6 > len(b) {
					return 0, false, syntax(i, "short \\u escape")
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return 0, false, syntax(i, "bad \\u escape")
					}
				}
				i += 6
				continue
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			default:
				return 0, false, syntax(i, "bad escape")
			}
			i += 2
		case c < 0x20:
			return 0, false, syntax(i, "control character in string")
		default:
			i++
		}
	}
	return 0, false, syntax(i, "unterminated string")
}

const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// hasSpecial reports whether any of the eight bytes in x is a quote, a
// backslash or below 0x20.
func hasSpecial(x uint64) bool {
	hasZero := func(v uint64) uint64 { return (v - lsbs) & ^v & msbs }
	below20 := (x - lsbs*0x20) & ^x & msbs
	return below20|hasZero(x^(lsbs*'"'))|hasZero(x^(lsbs*'\\')) != 0
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// skipValue returns the end of the value starting at b[i].
func skipValue(b []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return 0, syntax(i, "nested too deeply")
	}
	i = skipSpace(b, i)
	if i >= len(b) {
		return 0, syntax(i, "unexpected end of input")
	}
	switch c := b[i]; c {
	case '"':
		end, _, err := scanString(b, i)
		return end, err
	case '{':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, syntax(i, "expected object key")
			}
			end, _, err := scanString(b, i)
			if err != nil {
				return 0, err
			}
			i = skipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, syntax(i, "expected ':'")
			}
			if i, err = skipValue(b, i+1, depth+1); err != nil {
				return 0, err
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, syntax(i, "unexpected end of object")
			}
			if b[i] == '}' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, syntax(i, "expected ',' or '}'")
			}
			i = skipSpace(b, i+1)
		}
	case '[':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = skipValue(b, i, depth+1); err != nil {
				return 0, err
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, syntax(i, "unexpected end of array")
			}
			if b[i] == ']' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, syntax(i, "expected ',' or ']'")
			}
			i++
		}
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			j := i
			if b[j] == '-' {
				j++
			}
			start := j
			for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
				j++
			}
			if j == start {
				return 0, syntax(i, "bad number")
			}
			return j, nil
		}
		return 0, syntax(i, "unexpected character")
	}
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, syntax(i, "bad literal")
	}
	return i + len(lit), nil
}

// eachMember calls fn for every member of the object b[i:] (b[i] must be
// '{'), with the raw key bytes (without quotes, escapes kept) and the value's
// extent, and returns the object's end.
func eachMember(b []byte, i int, fn func(key []byte, vs, ve int) error) (int, error) {
	return members(b, i, false, fn)
}

// members is eachMember; trusted input (known valid JSON) has its values
// skipped without checking them.
func members(b []byte, i int, trusted bool, fn func(key []byte, vs, ve int) error) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '{' {
		return 0, syntax(i, "expected object")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, syntax(i, "expected object key")
		}
		kend, _, err := scanString(b, i)
		if err != nil {
			return 0, err
		}
		key := b[i+1 : kend-1]
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return 0, syntax(i, "expected ':'")
		}
		vs := skipSpace(b, i+1)
		var ve int
		if trusted {
			if ve = skipTrusted(b, vs); ve <= vs {
				return 0, syntax(vs, "expected a value")
			}
		} else if ve, err = skipValue(b, vs, 1); err != nil {
			return 0, err
		}
		if err := fn(key, vs, ve); err != nil {
			return 0, err
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return 0, syntax(i, "unexpected end of object")
		}
		if b[i] == '}' {
			return i + 1, nil
		}
		if b[i] != ',' {
			return 0, syntax(i, "expected ',' or '}'")
		}
		i = skipSpace(b, i+1)
	}
}

// str decodes a JSON string token; ok is false when tok is not a string.
// Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func str(tok []byte) (string, bool) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return "", false
	}
	inner := tok[1 : len(tok)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		if utf8.Valid(inner) {
			return string(inner), true
		}
		return strings.ToValidUTF8(string(inner), "\uFFFD"), true
	}
	out := make([]byte, 0, len(inner))
	for i := 0; i < len(inner); {
		c := inner[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(inner) {
			return "", false
		}
		switch inner[i+1] {
		case '"', '\\', '/':
			out = append(out, inner[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(inner, i+2)
			if !ok {
				return "", false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(inner, i+2); ok && i+1 < len(inner) && inner[i] == '\\' && inner[i+1] == 'u' {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						i += 6
						out = utf8.AppendRune(out, d)
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return "", false
		}
		i += 2
	}
	if !utf8.Valid(out) {
		return strings.ToValidUTF8(string(out), "\uFFFD"), true
	}
	return string(out), true
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// strList decodes an array of strings; null is an empty list.
func strList(b []byte) ([]string, bool) {
	if isNull(b) {
		return nil, true
	}
	if len(b) == 0 || b[0] != '[' {
		return nil, false
	}
	var out []string
	i := skipSpace(b, 1)
	if i < len(b) && b[i] == ']' {
		return out, true
	}
	for i < len(b) {
		end, err := skipValue(b, i, 1)
		if err != nil {
			return nil, false
		}
		s, ok := str(b[i:end])
		if !ok {
			return nil, false
		}
		out = append(out, s)
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ']' {
			return out, true
		}
		if i >= len(b) || b[i] != ',' {
			return nil, false
		}
		i = skipSpace(b, i+1)
	}
	return nil, false
}

func isNull(b []byte) bool { return string(b) == "null" }

func integer(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil || f != float64(int64(f)) {
			return 0, false
		}
		return int64(f), true
	}
	return n, true
}

// decodeValue decodes the JSON value at b[i:] into the generic values
// encoding/json produces for `any` (map[string]any, []any, string, float64,
// bool, nil), in one pass, and returns the end.
func decodeValue(b []byte, i, depth int) (any, int, error) {
	if depth > maxDepth {
		return nil, 0, syntax(i, "nested too deeply")
	}
	i = skipSpace(b, i)
	if i >= len(b) {
		return nil, 0, syntax(i, "unexpected end of input")
	}
	switch c := b[i]; c {
	case '"':
		end, escaped, err := scanString(b, i)
		if err != nil {
			return nil, 0, err
		}
		if !escaped {
			return string(b[i+1 : end-1]), end, nil
		}
		s, ok := str(b[i:end])
		if !ok {
			return nil, 0, syntax(i, "bad string")
		}
		return s, end, nil
	case '{':
		m := make(map[string]any, 8)
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return m, i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return nil, 0, syntax(i, "expected object key")
			}
			kend, escaped, err := scanString(b, i)
			if err != nil {
				return nil, 0, err
			}
			var key string
			if escaped {
				var ok bool
				if key, ok = str(b[i:kend]); !ok {
					return nil, 0, syntax(i, "bad key")
				}
			} else {
				key = string(b[i+1 : kend-1])
			}
			i = skipSpace(b, kend)
			if i >= len(b) || b[i] != ':' {
				return nil, 0, syntax(i, "expected ':'")
			}
			v, end, err := decodeValue(b, i+1, depth+1)
			if err != nil {
				return nil, 0, err
			}
			m[key] = v
			i = skipSpace(b, end)
			if i >= len(b) {
				return nil, 0, syntax(i, "unexpected end of object")
			}
			if b[i] == '}' {
				return m, i + 1, nil
			}
			if b[i] != ',' {
				return nil, 0, syntax(i, "expected ',' or '}'")
			}
			i = skipSpace(b, i+1)
		}
	case '[':
		a := make([]any, 0, 4)
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return a, i + 1, nil
		}
		for {
			v, end, err := decodeValue(b, i, depth+1)
			if err != nil {
				return nil, 0, err
			}
			a = append(a, v)
			i = skipSpace(b, end)
			if i >= len(b) {
				return nil, 0, syntax(i, "unexpected end of array")
			}
			if b[i] == ']' {
				return a, i + 1, nil
			}
			if b[i] != ',' {
				return nil, 0, syntax(i, "expected ',' or ']'")
			}
			i++
		}
	case 't':
		end, err := literal(b, i, "true")
		return true, end, err
	case 'f':
		end, err := literal(b, i, "false")
		return false, end, err
	case 'n':
		end, err := literal(b, i, "null")
		return nil, end, err
	default:
		end, err := skipValue(b, i, depth)
		if err != nil {
			return nil, 0, err
		}
		f, err := strconv.ParseFloat(string(b[i:end]), 64)
		if err != nil {
			return nil, 0, syntax(i, "bad number")
		}
		return f, end, nil
	}
}

// skipTrusted returns the end of the value at b[i:] in input already known
// to be valid JSON (checked by the envelope decoder or SplitAuditEvents): it
// only matches brackets and skips strings eight bytes at a time. On invalid
// input it returns some position within b; it never reads out of bounds.
func skipTrusted(b []byte, i int) int {
	i = skipSpace(b, i)
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return skipStringTrusted(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipStringTrusted(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// skipStringTrusted returns the end of the string starting at b[i] == '"'.
func skipStringTrusted(b []byte, i int) int {
	i++
	for i < len(b) {
		for i+8 <= len(b) && !hasQuoteOrBackslash(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			break
		}
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i += 2
		default:
			i++
		}
	}
	return len(b)
}

func hasQuoteOrBackslash(x uint64) bool {
	hasZero := func(v uint64) uint64 { return (v - lsbs) & ^v & msbs }
	return hasZero(x^(lsbs*'"'))|hasZero(x^(lsbs*'\\')) != 0
}
