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
	"unsafe"
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
// starting at b[i] == '"', and whether it holds escapes. It checks the
// string's syntax.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	return stringEnd(b, i, true)
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

// skipValue returns the end of the value starting at b[i], checking its
// syntax.
func skipValue(b []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return 0, syntax(i, "nested too deeply")
	}
	return validate(b, i)
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
	end, _, err := membersFrom(b, i+1, trusted, nil, fn)
	return end, err
}

// membersFrom goes on through an object's members from b[i:] (just after
// '{' or ','). When stop says so for a key, it returns at once with
// stoppedAt, the position of that key, from which a later call resumes.
func membersFrom(b []byte, i int, trusted bool, stop func(key []byte) bool, fn func(key []byte, vs, ve int) error) (end, stoppedAt int, err error) {
	i = skipSpace(b, i)
	if i < len(b) && b[i] == '}' {
		return i + 1, -1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, -1, syntax(i, "expected object key")
		}
		kend, _, err := scanString(b, i)
		if err != nil {
			return 0, -1, err
		}
		key := b[i+1 : kend-1]
		if stop != nil && stop(key) {
			return 0, i, nil
		}
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return 0, -1, syntax(i, "expected ':'")
		}
		vs := skipSpace(b, i+1)
		var ve int
		if trusted {
			if ve = skipTrusted(b, vs); ve <= vs {
				return 0, -1, syntax(vs, "expected a value")
			}
		} else if ve, err = validate(b, vs); err != nil {
			return 0, -1, err
		}
		if err := fn(key, vs, ve); err != nil {
			return 0, -1, err
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return 0, -1, syntax(i, "unexpected end of object")
		}
		if b[i] == '}' {
			return i + 1, -1, nil
		}
		if b[i] != ',' {
			return 0, -1, syntax(i, "expected ',' or '}'")
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
			return view(inner), true
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
		if !escaped && utf8.Valid(b[i+1:end-1]) {
			return view(b[i+1 : end-1]), end, nil
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
			} else if key = view(b[i+1 : kend-1]); !utf8.ValidString(key) {
				key = strings.ToValidUTF8(key, "\uFFFD")
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

// skipStringTrusted returns the end of the string starting at b[i] == '"':
// the next quote not escaped by an odd run of backslashes.
func skipStringTrusted(b []byte, i int) int {
	j := i + 1
	for j < len(b) {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			break
		}
		q += j
		n := 0
		for k := q - 1; k > i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
	return len(b)
}

// view is the bytes as a string without copying. The event's raw bytes are
// never changed while the event is in use (Parse's contract), so strings
// that alias them stay valid.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// stringEnd returns the end of the string starting at b[i] == '"' using the
// vectorised byte search; when check is set it also validates the escapes
// and refuses control characters, as JSON requires.
func stringEnd(b []byte, i int, check bool) (int, bool, error) {
	start := i + 1
	j := start
	escaped := false
	// Short strings (most keys and values): eight bytes at a time.
	for n := 0; n < 4 && j+8 <= len(b); n++ {
		x := binary.LittleEndian.Uint64(b[j:])
		if !hasSpecial(x) {
			j += 8
			continue
		}
		for k := j; k < j+8; k++ {
			switch c := b[k]; {
			case c == '"':
				return k + 1, false, nil
			case c == '\\' || c < 0x20:
				if c < 0x20 && check {
					return 0, false, syntax(k, "control character in string")
				}
				j = k
				goto slow
			}
		}
	}
slow:
	for {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return 0, false, syntax(i, "unterminated string")
		}
		q += j
		bs := bytes.IndexByte(b[j:q], '\\')
		if bs < 0 {
			if check && hasControl(b[j:q]) {
				return 0, false, syntax(j, "control character in string")
			}
			return q + 1, escaped, nil
		}
		// An escape before the next quote: go through it byte by byte.
		escaped = true
		k := j + bs
		if check && hasControl(b[j:k]) {
			return 0, false, syntax(j, "control character in string")
		}
		if k+1 >= len(b) {
			return 0, false, syntax(k, "unterminated escape")
		}
		switch b[k+1] {
		case 'u':
			if k+6 > len(b) {
				return 0, false, syntax(k, "short \\u escape")
			}
			if check {
				for _, h := range b[k+2 : k+6] {
					if !isHex(h) {
						return 0, false, syntax(k, "bad \\u escape")
					}
				}
			}
			j = k + 6
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			j = k + 2
		default:
			if check {
				return 0, false, syntax(k, "bad escape")
			}
			j = k + 2
		}
		if j > len(b) {
			return 0, false, syntax(k, "unterminated escape")
		}
	}
}

// hasControl reports whether s has a byte below 0x20, eight at a time.
func hasControl(s []byte) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		if (x-lsbs*0x20)&^x&msbs != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if s[i] < 0x20 {
			return true
		}
	}
	return false
}

// validate checks the syntax of the value at b[i:] without recursion and
// returns its end. Strings go through the vectorised search.
func validate(b []byte, i int) (int, error) {
	var stackBuf [32]byte
	stack := stackBuf[:0]
	for {
		// A value.
		i = skipSpace(b, i)
		if i >= len(b) {
			return 0, syntax(i, "unexpected end of input")
		}
		switch c := b[i]; c {
		case '"':
			end, _, err := stringEnd(b, i, true)
			if err != nil {
				return 0, err
			}
			i = end
		case '{', '[':
			if len(stack) >= maxDepth {
				return 0, syntax(i, "nested too deeply")
			}
			stack = append(stack, c)
			i = skipSpace(b, i+1)
			if i < len(b) && (b[i] == '}' && c == '{' || b[i] == ']' && c == '[') {
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				var err error
				if i, err = objectKey(b, i); err != nil {
					return 0, err
				}
			}
			continue
		case 't':
			end, err := literal(b, i, "true")
			if err != nil {
				return 0, err
			}
			i = end
		case 'f':
			end, err := literal(b, i, "false")
			if err != nil {
				return 0, err
			}
			i = end
		case 'n':
			end, err := literal(b, i, "null")
			if err != nil {
				return 0, err
			}
			i = end
		default:
			end, err := number(b, i)
			if err != nil {
				return 0, err
			}
			i = end
		}
		// After a value: close containers, or go on to the next member.
		for {
			if len(stack) == 0 {
				return i, nil
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, syntax(i, "unexpected end of input")
			}
			top := stack[len(stack)-1]
			switch {
			case b[i] == ',':
				i++
				if top == '{' {
					var err error
					if i, err = objectKey(b, skipSpace(b, i)); err != nil {
						return 0, err
					}
				}
			case b[i] == '}' && top == '{', b[i] == ']' && top == '[':
				stack = stack[:len(stack)-1]
				i++
				continue
			default:
				return 0, syntax(i, "expected ',' or the end of the container")
			}
			break
		}
	}
}

// objectKey checks `"key" :` at b[i:] and returns the position after ':'.
func objectKey(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, syntax(i, "expected object key")
	}
	end, _, err := stringEnd(b, i, true)
	if err != nil {
		return 0, err
	}
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return 0, syntax(i, "expected ':'")
	}
	return i + 1, nil
}

// number checks a JSON number at b[i:] and returns its end.
func number(b []byte, i int) (int, error) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0, syntax(start, "unexpected character")
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, syntax(start, "bad number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, syntax(start, "bad number")
		}
	}
	return i, nil
}
