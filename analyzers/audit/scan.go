package audit

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/faultline/faultline/internal/jsonscan"
)

// The event is read with internal/jsonscan in one pass: each value's
// syntax is checked (unless the input is known to be valid) as the fields
// analyzers read are decoded, and the rest is only skipped. Strings
// without escapes are views of the event's raw bytes, not copies (Parse's
// contract: the raw bytes are never changed while the event is in use).

// scanner reads values of one event's bytes.
type scanner struct {
	b []byte
	// valid says the bytes are known to be valid JSON (ParseValid): values
	// are skipped without checking them.
	valid bool
	// ev, when set, lends its lists array to the string lists read.
	ev *Event
}

func (s scanner) space(i int) int {
	if i < len(s.b) && s.b[i] <= ' ' {
		return jsonscan.SkipSpace(s.b, i)
	}
	return i
}

// skip returns the end of the value at i; depth is how many containers
// enclose it.
func (s scanner) skip(i, depth int) (int, error) {
	if !s.valid {
		return jsonscan.Skip(s.b, i, depth)
	}
	end := jsonscan.SkipValid(s.b, i)
	if end <= i {
		return 0, jsonscan.Errorf(i, "expected a value")
	}
	return end, nil
}

func (s scanner) null(i int) bool { return i+4 <= len(s.b) && string(s.b[i:i+4]) == "null" }

// name is the object key whose token is b[i:end].
func (s scanner) name(i, end int, escaped bool) []byte {
	if !escaped {
		return s.b[i+1 : end-1]
	}
	n, _ := jsonscan.Unquote(s.b[i:end])
	return []byte(n)
}

// str decodes the string at i into dst; null leaves dst as it is.
func (s scanner) str(i int, field string, dst *string) (int, error) {
	if i < len(s.b) && s.b[i] == '"' {
		var v string
		var ok bool
		if s.valid {
			end := jsonscan.SkipValidString(s.b, i)
			v, ok = jsonscan.UnquoteView(s.b[i:end])
			i = end
		} else {
			end, escaped, err := jsonscan.String(s.b, i)
			if err != nil {
				return 0, err
			}
			v, ok = jsonscan.UnquoteViewOf(s.b[i:end], escaped)
			i = end
		}
		if !ok {
			return 0, fmt.Errorf("%s is not a valid string", field)
		}
		*dst = v
		return i, nil
	}
	end, err := s.skip(i, 1)
	if err != nil {
		return 0, err
	}
	if !isNull(s.b[i:end]) {
		return 0, fmt.Errorf("%s is %s, not a string", field, clip(s.b[i:end]))
	}
	return end, nil
}

// strList decodes an array of strings (null: none) into dst, allocated
// once at its size; depth is how many containers enclose the strings.
func (s scanner) strList(i, depth int, field string, dst *[]string) (int, error) {
	b := s.b
	if i >= len(b) || b[i] != '[' {
		end, err := s.skip(i, depth-1)
		if err != nil {
			return 0, err
		}
		if !isNull(b[i:end]) {
			return 0, fmt.Errorf("%s is not a list of strings", field)
		}
		return end, nil
	}
	var buf [8]string
	out := buf[:0]
	if i = s.space(i + 1); i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		var v string
		end, err := s.str(i, field, &v)
		if err != nil {
			return 0, err
		}
		if b[i] != '"' {
			return 0, fmt.Errorf("%s is not a list of strings", field)
		}
		out = append(out, v)
		switch i = s.space(end); {
		case i >= len(b):
			return 0, jsonscan.Errorf(i, "unexpected end of array")
		case b[i] == ']':
			if e := s.ev; e != nil && e.listsUsed+len(out) <= len(e.lists) {
				// The event's source IPs and groups fit in the event.
				n := copy(e.lists[e.listsUsed:], out)
				*dst = e.lists[e.listsUsed : e.listsUsed+n : e.listsUsed+n]
				e.listsUsed += n
			} else {
				*dst = slices.Clone(out)
			}
			return i + 1, nil
		case b[i] == ',':
			i = s.space(i + 1)
		default:
			return 0, jsonscan.Errorf(i, "expected ',' or ']' in array")
		}
	}
}

// object calls fn for each member of the object at i with its name and
// the start of its value; fn reads the value and returns its end. Values
// are at depth (the object's own depth + 1).
func (s scanner) object(i int, field string, fn func(name []byte, vs int) (int, error)) (int, error) {
	b := s.b
	if i >= len(b) || b[i] != '{' {
		return 0, fmt.Errorf("%s is not an object", field)
	}
	if i = s.space(i + 1); i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, jsonscan.Errorf(i, "expected object key")
		}
		kend, escaped, err := jsonscan.String(b, i)
		if err != nil {
			return 0, err
		}
		name := s.name(i, kend, escaped)
		j := s.space(kend)
		if j >= len(b) || b[j] != ':' {
			return 0, jsonscan.Errorf(j, "expected ':' after object key")
		}
		if j, err = fn(name, s.space(j+1)); err != nil {
			return 0, err
		}
		switch i = s.space(j); {
		case i >= len(b):
			return 0, jsonscan.Errorf(i, "unexpected end of object")
		case b[i] == '}':
			return i + 1, nil
		case b[i] == ',':
			i = s.space(i + 1)
		default:
			return 0, jsonscan.Errorf(i, "expected ',' or '}' in object")
		}
	}
}

// userFields are the names of a user's fields in errors, for user and
// impersonatedUser (built once, not per event).
type userFields struct{ name, username, uid, groups, extra string }

var (
	userField         = userFields{"user", "user.username", "user.uid", "user.groups", "user.extra"}
	impersonatedField = userFields{"impersonatedUser", "impersonatedUser.username", "impersonatedUser.uid", "impersonatedUser.groups", "impersonatedUser.extra"}
)

func (s scanner) user(i int, u *User, field *userFields) (int, error) {
	if s.null(i) {
		return s.skip(i, 1)
	}
	return s.object(i, field.name, func(name []byte, vs int) (int, error) {
		switch string(name) {
		case "username":
			return s.str(vs, field.username, &u.Username)
		case "uid":
			return s.str(vs, field.uid, &u.UID)
		case "groups":
			return s.strList(vs, 3, field.groups, &u.Groups)
		}
		end, err := s.skip(vs, 2)
		if err != nil {
			return 0, err
		}
		if string(name) == "extra" {
			v := s.b[vs:end]
			if !isNull(v) && v[0] != '{' {
				return 0, fmt.Errorf("%s is not an object", field.extra)
			}
			u.extra = nullable(v)
		}
		return end, nil
	})
}

func (s scanner) objectRef(i int, r *ObjectRef) (int, error) {
	return s.object(i, "objectRef", func(name []byte, vs int) (int, error) {
		switch string(name) {
		case "resource":
			return s.str(vs, "objectRef.resource", &r.Resource)
		case "namespace":
			return s.str(vs, "objectRef.namespace", &r.Namespace)
		case "name":
			return s.str(vs, "objectRef.name", &r.Name)
		case "uid":
			return s.str(vs, "objectRef.uid", &r.UID)
		case "apiGroup":
			return s.str(vs, "objectRef.apiGroup", &r.APIGroup)
		case "apiVersion":
			return s.str(vs, "objectRef.apiVersion", &r.APIVersion)
		case "subresource":
			return s.str(vs, "objectRef.subresource", &r.Subresource)
		}
		return s.skip(vs, 2)
	})
}

func (s scanner) status(i int, code *int) (int, error) {
	return s.object(i, "responseStatus", func(name []byte, vs int) (int, error) {
		end, err := s.skip(vs, 2)
		if err != nil || string(name) != "code" {
			return end, err
		}
		x := s.b[vs:end]
		if isNull(x) {
			return end, nil
		}
		n, ok := integer(x)
		if !ok || n < -1<<31 || n > 1<<31-1 {
			return 0, fmt.Errorf("responseStatus.code is %s, not an integer", clip(x))
		}
		*code = int(n)
		return end, nil
	})
}

// str decodes a JSON string token; ok is false when tok is not a string.
// Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func str(tok []byte) (string, bool) { return jsonscan.UnquoteView(tok) }

// strList decodes a checked array of strings; null is an empty list.
func strList(b []byte) ([]string, bool) {
	var out []string
	_, err := scanner{b: b, valid: true}.strList(0, 1, "list", &out)
	return out, err == nil
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
