package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
		ve, err := skipValue(b, vs, 1)
		if err != nil {
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
func str(tok []byte) (string, bool) {
	if len(tok) < 2 || tok[0] != '"' {
		return "", false
	}
	inner := tok[1 : len(tok)-1]
	plain := true
	for _, c := range inner {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return "", false
	}
	return s, true
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
