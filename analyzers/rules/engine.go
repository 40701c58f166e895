package rules

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/audit"
	"github.com/faultline/faultline/schemas"
)

// Options say which rules an Engine runs.
type Options struct {
	// Sources are read in order; later files extend earlier ones. Empty:
	// the embedded default ruleset only.
	Sources []Source
	// Disabled rule ids are not run.
	Disabled []string
	// ReplaceLists replace, and AppendLists extend, the rule files' lists
	// (configuration overrides).
	ReplaceLists map[string][]string
	AppendLists  map[string][]string
	// WindowMaxKeys bounds the keys each windowed rule tracks (default
	// 10000); beyond it the least recently seen keys are forgotten.
	WindowMaxKeys int
	// Windows keeps the windows' state (nil: in memory, bounded by
	// WindowMaxKeys). The analyzer of `faultline analyze` and `run` keeps
	// it in JetStream KV (KVWindowStore), shared by its replicas.
	Windows WindowStore
	// DedupeSize bounds the audit ids remembered between a request's
	// ResponseStarted and ResponseComplete events (default 65536).
	DedupeSize int
}

// Rule is a compiled rule.
type Rule struct {
	ID          string
	Name        string
	Description string
	Ruleset     string
	Severity    schemas.Severity
	MITRE       []string
	File        string

	decision   string          // allowed, denied or any
	users      []string        // globs; nil: any
	verbs      map[string]bool // nil: any
	resources  []resPattern    // nil: any
	cond       cel.Program
	gate       gate // what cond requires of the event, checked first
	exceptions []exception
	window     *window
	output     []outputPart
}

// Windowed tells whether the rule counts events in a window.
func (r *Rule) Windowed() bool { return r.window != nil }

type resPattern struct {
	res, sub string
	slash    bool
}

func (p resPattern) match(res, sub string) bool {
	if p.res != "*" && p.res != res {
		return false
	}
	if !p.slash {
		return p.res == "*" || sub == ""
	}
	return p.sub == "*" || p.sub == sub
}

type exception struct {
	name   string
	field  cel.Program
	values []string
}

type outputPart struct {
	lit  string
	prog cel.Program
}

// Hit is a rule that fired on an event.
type Hit struct {
	Rule    *Rule
	Message string
	// Count is the window's count when a windowed rule fired.
	Count int
}

// Engine evaluates a compiled ruleset. It is safe for concurrent use.
type Engine struct {
	rules []*Rule
	lists map[string][]string
	index *ruleIndex

	dedupe  *idSet
	windows WindowStore
	sys     []string // lists.system_identities

	evalErrors  atomic.Uint64
	evictions   atomic.Uint64 // of the in-memory window store
	actPool     sync.Pool
	windowLimit int
	dedupeSize  int
}

// ruleIndex maps a (verb, resource, subresource) to the rules whose match
// admits it, filled as events come. It depends on the rules only, so the
// fresh engines of one compiled ruleset share it.
type ruleIndex struct {
	mu sync.RWMutex
	m  map[idxKey][]*Rule
}

type idxKey struct{ verb, res, sub string }

const maxIndexEntries = 4096

// Compile reads, checks and compiles the rules. Every problem is reported,
// each naming its file and rule id (see RuleError).
func Compile(opts Options) (*Engine, error) {
	srcs := opts.Sources
	if len(srcs) == 0 {
		srcs = []Source{DefaultSource()}
	}
	files, names, err := readSources(srcs)
	if err != nil {
		return nil, err
	}
	m, err := merge(files, names, opts)
	if err != nil {
		return nil, err
	}
	env, err := newEnv(m.lists)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		lists:       m.lists,
		index:       &ruleIndex{m: map[idxKey][]*Rule{}},
		dedupe:      newIDSet(opts.DedupeSize),
		windowLimit: opts.WindowMaxKeys,
		dedupeSize:  opts.DedupeSize,
		windows:     opts.Windows,
	}
	if e.windowLimit <= 0 {
		e.windowLimit = 10000
	}
	if e.windows == nil {
		e.windows = NewMemoryWindowStore(e.windowLimit, &e.evictions)
	}
	e.sys = e.lists["system_identities"]
	e.actPool.New = func() any { return &activation{} }
	var errs []error
	for _, spec := range m.rules {
		r, err := e.compileRule(env, spec, m.rulesets[spec.ID])
		if err != nil {
			errs = append(errs, &RuleError{File: spec.file, Rule: spec.ID, Err: err})
			continue
		}
		e.rules = append(e.rules, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return e, nil
}

func (e *Engine) compileRule(env *cel.Env, s *RuleSpec, ruleset string) (*Rule, error) {
	sev, _ := schemas.ParseSeverity(s.Severity)
	r := &Rule{
		ID: s.ID, Name: s.Name, Description: strings.TrimSpace(s.Description), Ruleset: ruleset,
		Severity: sev, MITRE: s.MITRE, File: s.file,
	}
	r.users = s.Match.Users
	r.decision = s.Match.Decision
	if r.decision == "" {
		r.decision = "allowed"
	}
	if len(s.Match.Verbs) > 0 {
		r.verbs = map[string]bool{}
		for _, v := range s.Match.Verbs {
			r.verbs[v] = true
		}
	}
	for _, res := range s.Match.Resources {
		p := resPattern{}
		p.res, p.sub, p.slash = strings.Cut(res, "/")
		r.resources = append(r.resources, p)
	}
	var errs []error
	var err error
	var cond *cel.Ast
	if r.cond, cond, err = compileChecked(env, s.Condition, cel.BoolType); err != nil {
		errs = append(errs, fmt.Errorf("condition: %w", err))
	} else {
		r.gate = gateOf(cond)
	}
	for _, x := range s.Exceptions {
		p, err := compileExpr(env, x.Field, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("exception %s: field: %w", x.Name, err))
			continue
		}
		r.exceptions = append(r.exceptions, exception{name: x.Name, field: p, values: x.Values})
	}
	if w := s.Window; w != nil {
		d, _ := time.ParseDuration(w.Duration)
		win := &window{dur: d, count: w.Count}
		if win.key, err = compileExpr(env, w.Key, nil); err != nil {
			errs = append(errs, fmt.Errorf("window.key: %w", err))
		}
		if w.Distinct != "" {
			if win.distinct, err = compileExpr(env, w.Distinct, nil); err != nil {
				errs = append(errs, fmt.Errorf("window.distinct: %w", err))
			}
		}
		r.window = win
	}
	if r.output, err = compileOutput(env, s.Output); err != nil {
		errs = append(errs, fmt.Errorf("output: %w", err))
	}
	return r, errors.Join(errs...)
}

func compileExpr(env *cel.Env, expr string, want *cel.Type) (cel.Program, error) {
	p, _, err := compileChecked(env, expr, want)
	return p, err
}

// compileChecked is compileExpr that also returns the checked expression.
func compileChecked(env *cel.Env, expr string, want *cel.Type) (cel.Program, *cel.Ast, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, nil, fmt.Errorf("CEL: %s", strings.TrimSpace(iss.Err().Error()))
	}
	if want != nil && !ast.OutputType().IsExactType(want) && !ast.OutputType().IsExactType(cel.DynType) {
		return nil, nil, fmt.Errorf("CEL: the expression is a %s, want %s", ast.OutputType(), want)
	}
	p, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, nil, fmt.Errorf("CEL program: %w", err)
	}
	return p, ast, nil
}

// compileOutput splits "text ${expr} text" into parts.
func compileOutput(env *cel.Env, s string) ([]outputPart, error) {
	var parts []outputPart
	for s != "" {
		i := strings.Index(s, "${")
		if i < 0 {
			parts = append(parts, outputPart{lit: s})
			break
		}
		if i > 0 {
			parts = append(parts, outputPart{lit: s[:i]})
		}
		depth, j := 0, i+2
		for ; j < len(s); j++ {
			if s[j] == '{' {
				depth++
			} else if s[j] == '}' {
				if depth == 0 {
					break
				}
				depth--
			}
		}
		if j >= len(s) {
			return nil, fmt.Errorf("unterminated ${ at byte %d", i)
		}
		p, err := compileExpr(env, s[i+2:j], nil)
		if err != nil {
			return nil, fmt.Errorf("${%s}: %w", s[i+2:j], err)
		}
		parts = append(parts, outputPart{prog: p})
		s = s[j+1:]
	}
	return parts, nil
}

// Rules returns the compiled rules, in ruleset order.
func (e *Engine) Rules() []*Rule { return e.rules }

// Rule returns the rule with id, or nil.
func (e *Engine) Rule(id string) *Rule {
	for _, r := range e.rules {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// Lists returns the merged lists.
func (e *Engine) Lists() map[string][]string { return e.lists }

// EvalErrors counts rule evaluations that failed at run time (treated as
// no match).
func (e *Engine) EvalErrors() uint64 { return e.evalErrors.Load() }

// WindowEvictions counts the window keys forgotten at the bound.
func (e *Engine) WindowEvictions() uint64 {
	if kv, ok := e.windows.(*KVWindowStore); ok {
		return kv.Evictions()
	}
	return e.evictions.Load()
}

// Windows is the engine's window store.
func (e *Engine) Windows() WindowStore { return e.windows }

// MaxWindow is the longest window of the rules (0: none is windowed).
func (e *Engine) MaxWindow() time.Duration {
	var d time.Duration
	for _, r := range e.rules {
		if r.window != nil {
			d = max(d, r.window.dur)
		}
	}
	return d
}

// candidates returns the rules whose match admits the event.
func (e *Engine) candidates(ev *audit.Event) []*Rule {
	k := idxKey{ev.Verb, ev.ObjectRef.Resource, ev.ObjectRef.Subresource}
	idx := e.index
	idx.mu.RLock()
	rs, ok := idx.m[k]
	idx.mu.RUnlock()
	if ok {
		return rs
	}
	for _, r := range e.rules {
		if r.verbs != nil && !r.verbs[k.verb] {
			continue
		}
		if r.resources != nil {
			found := false
			for _, p := range r.resources {
				if p.match(k.res, k.sub) {
					found = true
					break
				}
			}
			if !found {
				continue
			}
		}
		rs = append(rs, r)
	}
	idx.mu.Lock()
	if len(idx.m) < maxIndexEntries {
		// The key's strings are views of the event: copies are kept.
		idx.m[idxKey{strings.Clone(k.verb), strings.Clone(k.res), strings.Clone(k.sub)}] = rs
	}
	idx.mu.Unlock()
	return rs
}

// Evaluate runs the rules over one event and returns those that fire.
//
// A request is evaluated once: RequestReceived events are skipped, and the
// ResponseComplete event of a request whose ResponseStarted event was
// evaluated (watches, exec, port-forward) is skipped too.
//
// An error comes only from the window store (a shared store that cannot be
// reached): the event must be evaluated again later. Windows count each
// event once, however often it is evaluated.
func (e *Engine) Evaluate(ctx context.Context, ev *audit.Event) ([]Hit, error) {
	switch ev.Stage {
	case "RequestReceived":
		return nil, nil
	case "ResponseStarted":
		e.dedupe.add(ev.AuditID)
	default:
		if e.dedupe.take(ev.AuditID) {
			return nil, nil
		}
	}
	rs := e.candidates(ev)
	if len(rs) == 0 {
		return nil, nil
	}
	act := e.actPool.Get().(*activation)
	act.reset(ev, e.sys)
	defer func() {
		act.reset(nil, nil)
		e.actPool.Put(act)
	}()
	var hits []Hit
	denied := ev.Code == 403
	for _, r := range rs {
		if (r.decision == "allowed" && denied) || (r.decision == "denied" && !denied) {
			continue
		}
		if r.users != nil && !globAny(r.users, ev.User.Username) {
			continue
		}
		if r.gate != 0 && !act.admits(r.gate) {
			continue
		}
		out, _, err := r.cond.Eval(act)
		if err != nil {
			e.evalErrors.Add(1)
			continue
		}
		if out != types.True {
			continue
		}
		if e.excepted(r, act) {
			continue
		}
		h := Hit{Rule: r}
		if r.window != nil {
			fired, n, err := e.windowAdd(ctx, r, act, ev)
			if err != nil {
				return nil, err
			}
			if !fired {
				continue
			}
			h.Count = n
		}
		h.Message = e.message(r, act, ev)
		hits = append(hits, h)
	}
	return hits, nil
}

func (e *Engine) excepted(r *Rule, act *activation) bool {
	for _, x := range r.exceptions {
		if len(x.values) == 0 {
			continue
		}
		v, _, err := x.field.Eval(act)
		if err != nil {
			continue
		}
		for _, s := range stringsOf(v) {
			for _, p := range x.values {
				if analyzers.Glob(p, s) {
					return true
				}
			}
		}
	}
	return false
}

func stringsOf(v ref.Val) []string {
	if s, ok := v.(types.String); ok {
		return []string{string(s)}
	}
	if l, ok := v.Value().([]string); ok {
		return l
	}
	if s := valueString(v); s != "" {
		return strings.Split(s, ",")
	}
	return nil
}

// windowAdd counts a matching event in the rule's window for its key.
func (e *Engine) windowAdd(ctx context.Context, r *Rule, act *activation, ev *audit.Event) (bool, int, error) {
	w := r.window
	kv, _, err := w.key.Eval(act)
	if err != nil {
		e.evalErrors.Add(1)
		return false, 0, nil
	}
	var val uint64
	if w.distinct != nil {
		dv, _, err := w.distinct.Eval(act)
		if err != nil {
			e.evalErrors.Add(1)
			return false, 0, nil
		}
		val = digest(valueString(dv))
	}
	id, at := digest(ev.AuditID+"\x00"+ev.Stage), ev.Time()
	var fired bool
	var n int
	err = e.windows.Update(ctx, WindowRef{Rule: r.ID, Duration: w.dur, Key: windowKey(valueString(kv))}, func(st *WindowState) {
		fired, n = st.add(w.dur, w.count, w.distinct != nil, id, val, at)
	})
	if err != nil {
		return false, 0, err
	}
	return fired, n, nil
}

func (e *Engine) message(r *Rule, act *activation, ev *audit.Event) string {
	if len(r.output) == 0 {
		return defaultMessage(r, ev)
	}
	var b strings.Builder
	for _, p := range r.output {
		if p.prog == nil {
			b.WriteString(p.lit)
			continue
		}
		v, _, err := p.prog.Eval(act)
		if err != nil {
			b.WriteString("?")
			continue
		}
		b.WriteString(valueString(v))
	}
	return b.String()
}

func defaultMessage(r *Rule, ev *audit.Event) string {
	var b strings.Builder
	b.WriteString(r.Name)
	b.WriteString(": ")
	if ev.User.Username != "" {
		b.WriteString(ev.User.Username)
	} else {
		b.WriteString("unknown user")
	}
	b.WriteString(" ")
	b.WriteString(ev.Verb)
	if res := ev.Resource(); res != "" {
		b.WriteString(" ")
		b.WriteString(res)
		if ev.ObjectRef.Namespace != "" || ev.ObjectRef.Name != "" {
			b.WriteString(" ")
			if ev.ObjectRef.Namespace != "" {
				b.WriteString(ev.ObjectRef.Namespace)
				b.WriteString("/")
			}
			b.WriteString(ev.ObjectRef.Name)
		}
	} else {
		b.WriteString(" ")
		b.WriteString(ev.RequestURI)
	}
	return b.String()
}

// idSet is a bounded set of audit ids; the oldest are forgotten first.
type idSet struct {
	mu   sync.Mutex
	m    map[string]struct{}
	ring []string // grows to size, then wraps
	size int
	next int
}

func newIDSet(n int) *idSet {
	if n <= 0 {
		n = 65536
	}
	return &idSet{m: make(map[string]struct{}, 64), size: n}
}

func (s *idSet) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; ok {
		return
	}
	id = strings.Clone(id) // a view of the event: keep a copy
	if len(s.ring) < s.size {
		s.ring = append(s.ring, id)
	} else {
		delete(s.m, s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % s.size
	}
	s.m[id] = struct{}{}
}

// take reports whether id was in the set. It stays there: a redelivered
// ResponseComplete event must be skipped again.
func (s *idSet) take(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[id]
	return ok
}

// fresh returns an engine with the same compiled rules and empty state
// (windows in memory, stage dedupe): rule tests and replays start from
// nothing.
func (e *Engine) fresh() *Engine {
	n := &Engine{
		rules:       e.rules,
		lists:       e.lists,
		index:       e.index,
		dedupe:      newIDSet(e.dedupeSize),
		windowLimit: e.windowLimit,
		dedupeSize:  e.dedupeSize,
		sys:         e.sys,
	}
	n.windows = NewMemoryWindowStore(n.windowLimit, &n.evictions)
	n.actPool.New = func() any { return &activation{} }
	return n
}

// Fresh is fresh for other packages: the same rules with empty state.
func (e *Engine) Fresh() *Engine { return e.fresh() }

func globAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if analyzers.Glob(p, s) {
			return true
		}
	}
	return false
}
