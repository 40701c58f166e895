package jsonscan

// Member is one member of an object: b[Key:KeyEnd] is its name's token
// (quotes included), b[Val:ValEnd] its value.
type Member struct {
	Key, KeyEnd int
	Val, ValEnd int
	// Escaped tells that the name holds escapes.
	Escaped bool
}

// Name is the member's name: the bytes between the quotes, aliasing b,
// or, when the name holds escapes, the decoded name.
func (m Member) Name(b []byte) []byte {
	if !m.Escaped {
		return b[m.Key+1 : m.KeyEnd-1]
	}
	s, _ := Unquote(b[m.Key:m.KeyEnd])
	return []byte(s)
}

// Value is the member's value.
func (m Member) Value(b []byte) []byte { return b[m.Val:m.ValEnd] }

// Members calls fn for every member of the object at b[i:] (after optional
// white space; it must start with '{') in order, and returns the offset
// after the object. Keys are always checked; values are checked unless
// valid says the input is known to be valid JSON (then they are skipped
// with SkipValid). An error from fn stops the iteration and is returned.
func Members(b []byte, i int, valid bool, fn func(m Member) error) (int, error) {
	i = SkipSpace(b, i)
	if i >= len(b) || b[i] != '{' {
		return 0, Errorf(i, "expected an object")
	}
	end, _, err := MembersFrom(b, i+1, valid, nil, fn)
	return end, err
}

// MembersFrom goes on through an object's members from b[i:], just after
// its '{' or a ','. When stop, called with each member whose name has been
// read (its value not yet), says so, it returns at once with stoppedAt,
// the offset of that member's name, from which a later call resumes; end
// is then 0. Otherwise stoppedAt is -1 and end is the offset after the
// object.
func MembersFrom(b []byte, i int, valid bool, stop func(m Member) bool, fn func(m Member) error) (end, stoppedAt int, err error) {
	if i < len(b) && b[i] <= ' ' {
		i = SkipSpace(b, i)
	}
	if i < len(b) && b[i] == '}' {
		return i + 1, -1, nil
	}
	var m Member
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, -1, Errorf(i, "expected object key")
		}
		m.Key = i
		if m.KeyEnd, m.Escaped, err = String(b, i); err != nil {
			return 0, -1, err
		}
		if stop != nil && stop(m) {
			return 0, i, nil
		}
		i = m.KeyEnd
		if i < len(b) && b[i] <= ' ' {
			i = SkipSpace(b, i)
		}
		if i >= len(b) || b[i] != ':' {
			return 0, -1, Errorf(i, "expected ':' after object key")
		}
		i++
		if i < len(b) && b[i] <= ' ' {
			i = SkipSpace(b, i)
		}
		m.Val = i
		if valid {
			if m.ValEnd = SkipValid(b, i); m.ValEnd <= i {
				return 0, -1, Errorf(i, "expected a value")
			}
		} else if m.ValEnd, err = Skip(b, i, 1); err != nil {
			return 0, -1, err
		}
		if err := fn(m); err != nil {
			return 0, -1, err
		}
		i = m.ValEnd
		if i < len(b) && b[i] <= ' ' {
			i = SkipSpace(b, i)
		}
		if i >= len(b) {
			return 0, -1, Errorf(i, "unexpected end of object")
		}
		switch b[i] {
		case '}':
			return i + 1, -1, nil
		case ',':
			i++
			if i < len(b) && b[i] <= ' ' {
				i = SkipSpace(b, i)
			}
		default:
			return 0, -1, Errorf(i, "expected ',' or '}' in object")
		}
	}
}

// Elements calls fn with the extent of every element of the array at
// b[i:] (after optional white space; it must start with '[') and returns
// the offset after the array. Elements are checked unless valid says the
// input is known to be valid JSON.
func Elements(b []byte, i int, valid bool, fn func(vs, ve int) error) (int, error) {
	i = SkipSpace(b, i)
	if i >= len(b) || b[i] != '[' {
		return 0, Errorf(i, "expected an array")
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		i = SkipSpace(b, i)
		var end int
		var err error
		if valid {
			if end = SkipValid(b, i); end <= i {
				return 0, Errorf(i, "expected a value")
			}
		} else if end, err = Skip(b, i, 1); err != nil {
			return 0, err
		}
		if err := fn(i, end); err != nil {
			return 0, err
		}
		i = SkipSpace(b, end)
		if i >= len(b) {
			return 0, Errorf(i, "unexpected end of array")
		}
		switch b[i] {
		case ']':
			return i + 1, nil
		case ',':
			i++
		default:
			return 0, Errorf(i, "expected ',' or ']' in array")
		}
	}
}
