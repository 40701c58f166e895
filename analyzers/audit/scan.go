package audit

import (
	"slices"
	"strconv"

	"github.com/faultline/faultline/internal/jsonscan"
)

// The event is read with internal/jsonscan: values are found in place and
// only the fields analyzers read are decoded. Strings without escapes are
// views of the event's raw bytes, not copies (Parse's contract: the raw
// bytes are never changed while the event is in use).

// str decodes a JSON string token; ok is false when tok is not a string.
// Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func str(tok []byte) (string, bool) { return jsonscan.UnquoteView(tok) }

// strList decodes an array of strings; null is an empty list. The array
// was checked before. The list is allocated once, at its size.
func strList(b []byte) ([]string, bool) {
	if isNull(b) {
		return nil, true
	}
	if len(b) == 0 || b[0] != '[' {
		return nil, false
	}
	var buf [8]string
	out := buf[:0]
	i := jsonscan.SkipSpace(b, 1)
	if i < len(b) && b[i] == ']' {
		return nil, true
	}
	for i < len(b) {
		end := jsonscan.SkipValid(b, i)
		s, ok := str(b[i:end])
		if !ok {
			return nil, false
		}
		out = append(out, s)
		i = jsonscan.SkipSpace(b, end)
		if i < len(b) && b[i] == ']' {
			return slices.Clone(out), true
		}
		if i >= len(b) || b[i] != ',' {
			return nil, false
		}
		i = jsonscan.SkipSpace(b, i+1)
	}
	return nil, false
}

func isNull(b []byte) bool { return jsonscan.IsNull(b) }

func integer(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(jsonscan.View(b), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(jsonscan.View(b), 64)
		if ferr != nil || f != float64(int64(f)) {
			return 0, false
		}
		return int64(f), true
	}
	return n, true
}

// each calls fn with the name (a view when it has no escapes) and the raw
// value of every member of the object b, which was checked before.
func each(b []byte, fn func(name string, v []byte)) {
	_, _ = jsonscan.Members(b, 0, true, func(m jsonscan.Member) error {
		if name, ok := str(b[m.Key:m.KeyEnd]); ok {
			fn(name, b[m.Val:m.ValEnd])
		}
		return nil
	})
}
