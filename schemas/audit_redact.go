package schemas

import (
	"slices"
	"strings"
)

// lastAppliedKey is the annotation kubectl apply stores the applied object
// in, as JSON in a string: for a Secret, its values.
const lastAppliedKey = "kubectl.kubernetes.io/last-applied-configuration"

const redactedToken = `"` + RedactedValue + `"`

// redactCtx tells the walker what a value is known to be from outside it.
type redactCtx uint8

const (
	ctxNone              redactCtx = iota
	ctxSecret                      // a Secret (or a merge or strategic patch of one); an array: a JSON patch of one
	ctxSecretPatch                 // one operation of a JSON patch of a Secret
	ctxSecretMeta                  // the metadata of a Secret
	ctxSecretAnnotations           // the annotations of a Secret: its last-applied annotation holds the Secret
	ctxTokenRequest                // a TokenRequest (serviceaccounts/token)
	ctxTokenReview                 // a TokenReview
	ctxTokenHolder                 // the status of a TokenRequest or spec of a TokenReview: its token member is secret
	ctxParanoid                    // a rejected item: every data, stringData and token member, every last-applied annotation
)

// maxRedactDepth bounds the walker's recursion. Kubernetes objects nest
// far less; a value nested deeper is redacted whole when it is in a secret
// context or may hold one (mayHoldSecret).
const maxRedactDepth = 128

// edit replaces src[start:end] by repl when the output is assembled.
type edit struct {
	start, end int
	repl       string
	redaction  bool
	dead       bool
}

// redactor collects the edits of one event without copying it.
//
// It visits every value once, in one pass: the members whose treatment
// depends on the object's kind (data, stringData, items, metadata, status,
// spec, value, token) are skipped on the way and visited after the object's
// last member, with what the kind says about them. Redacted values are never
// visited, so edits never nest.
type redactor struct {
	src   []byte
	edits []edit
	live  []edit // apply's scratch
}

func (r *redactor) reset(src []byte) {
	r.src = src
	r.edits = r.edits[:0]
}

func (r *redactor) add(start, end int, repl string) {
	r.edits = append(r.edits, edit{start: start, end: end, repl: repl})
}

// redact replaces the value at [start, end) by RedactedValue.
func (r *redactor) redact(start, end int) {
	r.edits = append(r.edits, edit{start: start, end: end, repl: redactedToken, redaction: true})
}

// drop cancels the edits inside [start, end).
func (r *redactor) drop(start, end int) {
	for i := range r.edits {
		if e := &r.edits[i]; e.start >= start && e.end <= end && !(e.start == e.end && e.start == end) {
			e.dead = true
		}
	}
}

func (r *redactor) redactions() int {
	n := 0
	for _, e := range r.edits {
		if !e.dead && e.redaction {
			n++
		}
	}
	return n
}

func (r *redactor) outputSize() int {
	n := len(r.src)
	for _, e := range r.edits {
		if !e.dead {
			n += len(e.repl) - (e.end - e.start)
		}
	}
	return n
}

// apply appends src with the live edits to dst.
func (r *redactor) apply(dst []byte) []byte {
	live := r.live[:0]
	for _, e := range r.edits {
		if !e.dead {
			live = append(live, e)
		}
	}
	r.live = live
	if len(live) == 0 {
		return append(dst, r.src...)
	}
	slices.SortStableFunc(live, func(a, b edit) int { return a.start - b.start })
	prev := 0
	for _, e := range live {
		if e.start < prev {
			// Inside a span already replaced: the outer edit decided.
			continue
		}
		dst = append(dst, r.src[prev:e.start]...)
		dst = append(dst, e.repl...)
		prev = e.end
	}
	return append(dst, r.src[prev:]...)
}

// walk visits the value at src[i:] and returns the offset after it.
func (r *redactor) walk(i, depth int, ctx redactCtx) (int, error) {
	b := r.src
	i = skipSpace(b, i)
	if i >= len(b) {
		return i, syntaxErr(i, "unexpected end of input, expected a value")
	}
	if depth > maxRedactDepth {
		end, err := skipValue(b, i, depth)
		if err != nil {
			return end, err
		}
		// Too deep to look inside: redacted whole if it may hold a secret.
		if ctx != ctxNone || mayHoldSecret(b[i:end]) {
			r.redact(i, end)
		}
		return end, nil
	}
	switch b[i] {
	case '{':
		return r.object(i, depth, ctx)
	case '[':
		elem := ctxNone
		switch ctx {
		case ctxSecret:
			elem = ctxSecretPatch
		case ctxParanoid:
			elem = ctxParanoid
		}
		return r.array(i, depth, elem)
	}
	return skipValue(b, i, depth)
}

func (r *redactor) array(i, depth int, elem redactCtx) (int, error) {
	b := r.src
	j := skipSpace(b, i+1)
	if j < len(b) && b[j] == ']' {
		return j + 1, nil
	}
	for {
		end, err := r.walk(j, depth+1, elem)
		if err != nil {
			return end, err
		}
		j = skipSpace(b, end)
		if j >= len(b) {
			return j, syntaxErr(j, "unexpected end of array")
		}
		switch b[j] {
		case ',':
			j++
		case ']':
			return j + 1, nil
		default:
			return j, syntaxErr(j, "expected ',' or ']' in array")
		}
	}
}

type span struct {
	start, end int
	ok         bool
}

func (r *redactor) object(i, depth int, ctx redactCtx) (int, error) {
	b := r.src
	var kind, path []byte
	// Members visited after the object's last member.
	var data, stringData, items, status, spec, metadata, value, token span
	child := ctxNone
	if ctx == ctxParanoid {
		child = ctxParanoid
	}
	j := skipSpace(b, i+1)
	end := 0
	if j < len(b) && b[j] == '}' {
		end = j + 1
	}
	for end == 0 {
		if j >= len(b) || b[j] != '"' {
			return j, syntaxErr(j, "expected object key")
		}
		keyEnd, err := scanString(b, j)
		if err != nil {
			return j, err
		}
		key, err := rawName(b[j:keyEnd])
		if err != nil {
			return j, syntaxErr(j, "%v", err)
		}
		j = skipSpace(b, keyEnd)
		if j >= len(b) || b[j] != ':' {
			return j, syntaxErr(j, "expected ':' after object key")
		}
		vs := skipSpace(b, j+1)
		var ve int
		var later *span
		switch string(key) {
		case "kind":
			ve, err = skipValue(b, vs, depth+1)
			kind = b[vs:ve]
		case "path":
			ve, err = skipValue(b, vs, depth+1)
			path = b[vs:ve]
		case "data":
			later = &data
		case "stringData":
			later = &stringData
		case "items":
			later = &items
		case "status":
			later = &status
		case "spec":
			later = &spec
		case "metadata":
			later = &metadata
		case "value":
			later = &value
		case "token":
			later = &token
		case lastAppliedKey:
			if vs < len(b) && b[vs] == '"' {
				if ve, err = skipValue(b, vs, depth+1); err == nil {
					la := child
					if ctx == ctxSecretAnnotations {
						la = ctxSecret
					}
					r.lastApplied(vs, ve, depth+1, la)
				}
				break
			}
			ve, err = r.walk(vs, depth+1, child)
		case "annotations":
			cc := child
			if ctx == ctxSecretMeta {
				cc = ctxSecretAnnotations
			}
			ve, err = r.walk(vs, depth+1, cc)
		default:
			ve, err = r.walk(vs, depth+1, child)
		}
		if later != nil {
			ve, err = skipValue(b, vs, depth+1)
			*later = span{vs, ve, true}
		}
		if err != nil {
			return ve, err
		}
		j = skipSpace(b, ve)
		if j >= len(b) {
			return j, syntaxErr(j, "unexpected end of object")
		}
		switch b[j] {
		case ',':
			j = skipSpace(b, j+1)
		case '}':
			end = j + 1
		default:
			return j, syntaxErr(j, "expected ',' or '}' in object")
		}
	}

	if ctx == ctxParanoid {
		for _, s := range []span{data, stringData, token} {
			if s.ok && !isNull(b[s.start:s.end]) {
				r.redact(s.start, s.end)
			}
		}
		return end, r.visit(depth, ctxParanoid, items, status, spec, metadata, value)
	}
	k := ""
	if len(kind) > 1 && kind[0] == '"' {
		k, _ = internedKind(kind)
	}
	secret := ctx == ctxSecret || k == "Secret"
	if secret {
		r.redactValues(data)
		r.redactValues(stringData)
		if err := r.visit(depth, ctxSecretMeta, metadata); err != nil {
			return end, err
		}
	} else if err := r.visit(depth, ctxNone, data, stringData, metadata); err != nil {
		return end, err
	}
	itemCtx := ctxNone
	if ctx == ctxSecret || k == "SecretList" {
		itemCtx = ctxSecret
	}
	if items.ok && b[items.start] == '[' {
		if _, err := r.array(items.start, depth+1, itemCtx); err != nil {
			return end, err
		}
	} else if err := r.visit(depth, ctxNone, items); err != nil {
		return end, err
	}
	statusCtx, specCtx := ctxNone, ctxNone
	if ctx == ctxTokenRequest || k == "TokenRequest" {
		statusCtx = ctxTokenHolder
	}
	if ctx == ctxTokenReview || k == "TokenReview" {
		specCtx = ctxTokenHolder
	}
	if err := r.visit(depth, statusCtx, status); err != nil {
		return end, err
	}
	if err := r.visit(depth, specCtx, spec); err != nil {
		return end, err
	}
	if ctx == ctxTokenHolder && token.ok {
		if !isNull(b[token.start:token.end]) {
			r.redact(token.start, token.end)
		}
	} else if err := r.visit(depth, ctxNone, token); err != nil {
		return end, err
	}
	if ctx == ctxSecretPatch && value.ok && len(path) > 1 && path[0] == '"' {
		r.patchOperation(path, value, depth)
	} else if err := r.visit(depth, ctxNone, value); err != nil {
		return end, err
	}
	return end, nil
}

// visit walks the members skipped by object, each once, with ctx.
func (r *redactor) visit(depth int, ctx redactCtx, spans ...span) error {
	for _, s := range spans {
		if s.ok {
			if _, err := r.walk(s.start, depth+1, ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// internedKind decodes the kinds the walker acts on without allocating.
func internedKind(tok []byte) (string, error) {
	switch string(tok[1 : len(tok)-1]) {
	case "Secret":
		return "Secret", nil
	case "SecretList":
		return "SecretList", nil
	case "TokenRequest":
		return "TokenRequest", nil
	case "TokenReview":
		return "TokenReview", nil
	}
	return stringValue(tok)
}

// redactValues replaces every value of the object at s (a Secret's data or
// stringData); a value that is not an object (a malformed patch) is
// replaced whole.
func (r *redactor) redactValues(s span) {
	if !s.ok {
		return
	}
	raw := r.src[s.start:s.end]
	if isNull(raw) {
		return
	}
	if raw[0] != '{' {
		r.redact(s.start, s.end)
		return
	}
	mark := len(r.edits)
	err := eachMemberAt(r.src[:s.end], s.start, func(_ []byte, vs, ve int) error {
		if !isNull(r.src[vs:ve]) {
			r.redact(vs, ve)
		}
		return nil
	})
	if err != nil {
		r.edits = r.edits[:mark]
		r.redact(s.start, s.end)
	}
}

// patchOperation handles one operation of a JSON patch of a Secret: a value
// at a path that reaches the Secret's values is redacted, a value that
// replaces the whole Secret or its metadata is walked as such.
func (r *redactor) patchOperation(pathTok []byte, value span, depth int) {
	p, err := stringValue(pathTok)
	if err != nil {
		r.redact(value.start, value.end)
		return
	}
	const la = "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration"
	ctx := ctxNone
	switch {
	case strings.HasPrefix(p, "/data") || strings.HasPrefix(p, "/stringData") || strings.HasPrefix(p, la):
		if !isNull(r.src[value.start:value.end]) {
			r.redact(value.start, value.end)
		}
		return
	case p == "" || p == "/":
		ctx = ctxSecret
	case p == "/metadata":
		ctx = ctxSecretMeta
	case p == "/metadata/annotations":
		ctx = ctxSecretAnnotations
	}
	mark := len(r.edits)
	if _, err := r.walk(value.start, depth+1, ctx); err != nil {
		r.edits = r.edits[:mark]
		r.redact(value.start, value.end)
	}
}

// lastApplied handles a last-applied-configuration annotation: the JSON
// string at [vs, ve) holds an object as JSON. It is redacted like any
// object (ctx says whether it is known to be a Secret); if it must be but
// cannot be read, it is replaced whole.
func (r *redactor) lastApplied(vs, ve, depth int, ctx redactCtx) {
	tok := r.src[vs:ve]
	if ctx == ctxParanoid {
		r.redact(vs, ve)
		return
	}
	if ctx == ctxNone && !mayHoldSecret(tok) {
		return
	}
	s, err := stringValue(tok)
	if err != nil {
		if ctx != ctxNone {
			r.redact(vs, ve)
		}
		return
	}
	inner := []byte(s)
	sub := redactor{src: inner}
	end, err := skipValue(inner, 0, depth)
	if err == nil {
		err = trailing(inner, end)
	}
	if err == nil {
		_, err = sub.walk(0, depth, ctx)
	}
	if err != nil {
		// Not JSON: for a Secret, whatever it holds goes.
		if ctx != ctxNone {
			r.redact(vs, ve)
		}
		return
	}
	if sub.redactions() == 0 {
		return
	}
	enc := appendJSONString(nil, string(sub.apply(nil)))
	r.edits = append(r.edits, edit{start: vs, end: ve, repl: string(enc), redaction: true})
}

// RedactRejectedAuditItem returns a copy of an item that is not a valid
// audit event (see AuditPreparer) for a dead-letter record, redacted
// without knowing what it is: every data, stringData and token member at
// any depth and every last-applied-configuration annotation is replaced.
// An item that is not JSON is replaced whole.
func RedactRejectedAuditItem(item []byte) []byte {
	var r redactor
	r.reset(item)
	end, err := skipValue(item, 0, 0)
	if err == nil {
		err = trailing(item, end)
	}
	if err == nil {
		_, err = r.walk(0, 0, ctxParanoid)
	}
	if err != nil {
		return []byte(redactedToken)
	}
	return r.apply(make([]byte, 0, r.outputSize()))
}
