package jsonscan

import (
	"encoding/binary"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Unquote decodes the string token tok (with its quotes, as String found
// it) exactly as encoding/json does: escapes decoded, a lone surrogate and
// every byte of invalid UTF-8 replaced by U+FFFD. The result never aliases
// tok. ok is false when tok is not a well-formed string token.
func Unquote(tok []byte) (string, bool) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return "", false
	}
	body := tok[1 : len(tok)-1]
	if plain(body) {
		return string(body), true
	}
	out, ok := unquote(body)
	return string(out), ok
}

// UnquoteView is Unquote, but a string without escapes and of valid UTF-8
// (nearly every string) is returned as a view of tok's bytes instead of a
// copy: the caller must not change tok while the string is in use.
func UnquoteView(tok []byte) (string, bool) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return "", false
	}
	body := tok[1 : len(tok)-1]
	if plain(body) {
		return View(body), true
	}
	out, ok := unquote(body)
	if !ok {
		return "", false
	}
	return View(out), true
}

// UnquoteViewOf is UnquoteView for a token String checked, which said
// whether it holds escapes: a string without is only checked for UTF-8.
func UnquoteViewOf(tok []byte, escaped bool) (string, bool) {
	if escaped || len(tok) < 2 {
		return UnquoteView(tok)
	}
	body := tok[1 : len(tok)-1]
	i := 0
	for ; i+8 <= len(body); i += 8 {
		if binary.LittleEndian.Uint64(body[i:])&msbs != 0 {
			break
		}
	}
	for ; i < len(body); i++ {
		if body[i] >= utf8.RuneSelf {
			if utf8.Valid(body[i:]) {
				return View(body), true
			}
			return UnquoteView(tok)
		}
	}
	return View(body), true
}

// View is b as a string without copying.
func View(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// plain tells whether body needs no decoding: no backslash, valid UTF-8.
func plain(body []byte) bool {
	i := 0
	for ; i+8 <= len(body); i += 8 {
		x := binary.LittleEndian.Uint64(body[i:])
		s := x ^ (lsbs * '\\')
		if (x|((s-lsbs) & ^s))&msbs != 0 {
			break // a backslash or a byte above 0x7f
		}
	}
	for ; i < len(body); i++ {
		if c := body[i]; c == '\\' {
			return false
		} else if c >= utf8.RuneSelf {
			for _, c := range body[i:] {
				if c == '\\' {
					return false
				}
			}
			return utf8.Valid(body[i:])
		}
	}
	return true
}

// unquote decodes the body of a string token as encoding/json's unquote.
func unquote(body []byte) ([]byte, bool) {
	out := make([]byte, 0, len(body)+2*utf8.UTFMax)
	for r := 0; r < len(body); {
		switch c := body[r]; {
		case c == '\\':
			r++
			if r >= len(body) {
				return nil, false
			}
			switch body[r] {
			case '"', '\\', '/', '\'':
				out = append(out, body[r])
				r++
			case 'b':
				out = append(out, '\b')
				r++
			case 'f':
				out = append(out, '\f')
				r++
			case 'n':
				out = append(out, '\n')
				r++
			case 'r':
				out = append(out, '\r')
				r++
			case 't':
				out = append(out, '\t')
				r++
			case 'u':
				r--
				rr := getu4(body[r:])
				if rr < 0 {
					return nil, false
				}
				r += 6
				if utf16.IsSurrogate(rr) {
					rr1 := getu4(body[r:])
					if dec := utf16.DecodeRune(rr, rr1); dec != utf8.RuneError {
						r += 6
						out = utf8.AppendRune(out, dec)
						break
					}
					rr = utf8.RuneError
				}
				out = utf8.AppendRune(out, rr)
			default:
				return nil, false
			}
		case c == '"', c < ' ':
			return nil, false
		case c < utf8.RuneSelf:
			out = append(out, c)
			r++
		default:
			rr, size := utf8.DecodeRune(body[r:])
			r += size
			out = utf8.AppendRune(out, rr)
		}
	}
	return out, true
}

// getu4 decodes \uXXXX from the beginning of s, returning the hex value,
// or it returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c = c - '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// Value decodes the valid JSON value at b[i:] into the values encoding/json
// produces for `any` (map[string]any, []any, string, float64, bool, nil)
// and returns its end. With view, strings without escapes are views of b
// (see UnquoteView). It checks the syntax on the way.
func Value(b []byte, i int, view bool) (any, int, error) {
	return value(b, i, 0, view)
}

func value(b []byte, i, depth int, view bool) (any, int, error) {
	i = SkipSpace(b, i)
	if i >= len(b) {
		return nil, 0, Errorf(i, "unexpected end of input, expected a value")
	}
	if c := b[i]; (c == '{' || c == '[') && depth+1 > MaxDepth {
		return nil, 0, Errorf(i, "nested deeper than %d", MaxDepth)
	}
	switch c := b[i]; c {
	case '"':
		end, _, err := String(b, i)
		if err != nil {
			return nil, 0, err
		}
		s, _ := str(b[i:end], view)
		return s, end, nil
	case '{':
		m := make(map[string]any, 8)
		i = SkipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return m, i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return nil, 0, Errorf(i, "expected object key")
			}
			kend, _, err := String(b, i)
			if err != nil {
				return nil, 0, err
			}
			key, _ := str(b[i:kend], view)
			i = SkipSpace(b, kend)
			if i >= len(b) || b[i] != ':' {
				return nil, 0, Errorf(i, "expected ':' after object key")
			}
			v, end, err := value(b, i+1, depth+1, view)
			if err != nil {
				return nil, 0, err
			}
			m[key] = v
			i = SkipSpace(b, end)
			if i >= len(b) {
				return nil, 0, Errorf(i, "unexpected end of object")
			}
			if b[i] == '}' {
				return m, i + 1, nil
			}
			if b[i] != ',' {
				return nil, 0, Errorf(i, "expected ',' or '}' in object")
			}
			i = SkipSpace(b, i+1)
		}
	case '[':
		a := make([]any, 0, 4)
		i = SkipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return a, i + 1, nil
		}
		for {
			v, end, err := value(b, i, depth+1, view)
			if err != nil {
				return nil, 0, err
			}
			a = append(a, v)
			i = SkipSpace(b, end)
			if i >= len(b) {
				return nil, 0, Errorf(i, "unexpected end of array")
			}
			if b[i] == ']' {
				return a, i + 1, nil
			}
			if b[i] != ',' {
				return nil, 0, Errorf(i, "expected ',' or ']' in array")
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
		end, err := Number(b, i)
		if err != nil {
			return nil, 0, err
		}
		f, err := strconv.ParseFloat(View(b[i:end]), 64)
		if err != nil {
			// Out of range: encoding/json refuses it too.
			return nil, 0, Errorf(i, "number %s out of range", b[i:end])
		}
		return f, end, nil
	}
}

func str(tok []byte, view bool) (string, bool) {
	if view {
		return UnquoteView(tok)
	}
	return Unquote(tok)
}
