// Package baseline is the statistical analyzer: it learns what each
// identity does and reports, once an identity has been watched for the
// learning period, what it has never done before — a new verb on a
// resource in a namespace, a new client (user agent), a new source network —
// and minutes in which it makes far more requests than its own moving
// average. Profiles live in the JetStream KV bucket faultline_state, shared
// by the replicas and kept across restarts.
package baseline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/promutil"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/schemas"
)

// Name is the analyzer's name: fl.finding.<cluster>.baseline.
const Name = "baseline"

// Rule ids of the baseline's findings.
const (
	RuleNewActivity  = "baseline-new-activity"
	RuleNewUserAgent = "baseline-new-user-agent"
	RuleNewSourceIP  = "baseline-new-source-ip"
	RuleRateSpike    = "baseline-rate-spike"
)

// Ruleset is rule.ruleset of the baseline's findings.
const Ruleset = "faultline-baseline"

var ruleInfo = map[string]struct {
	rule     schemas.Rule
	severity schemas.Severity
	mitre    []string
	names    []string
}{
	RuleNewActivity: {schemas.Rule{ID: RuleNewActivity, Name: "Identity did something new",
		Description: "The identity used a verb on a resource in a namespace it had never used during its learning period."},
		schemas.SeverityLow, []string{"T1078"}, []string{"Valid Accounts"}},
	RuleNewUserAgent: {schemas.Rule{ID: RuleNewUserAgent, Name: "Identity used a new client",
		Description: "The identity's requests came from a client (user agent product) it had never used: its credentials may be used by someone else."},
		schemas.SeverityLow, []string{"T1078", "T1550.001"}, []string{"Valid Accounts", "Use Alternate Authentication Material: Application Access Token"}},
	RuleNewSourceIP: {schemas.Rule{ID: RuleNewSourceIP, Name: "Identity used from a new network",
		Description: "The identity's requests came from a source network (/24 for IPv4, /64 for IPv6) it had never come from."},
		schemas.SeverityMedium, []string{"T1078", "T1550.001"}, []string{"Valid Accounts", "Use Alternate Authentication Material: Application Access Token"}},
	RuleRateSpike: {schemas.Rule{ID: RuleRateSpike, Name: "Request rate spike",
		Description: "The identity made far more requests in a minute than its own moving average: enumeration, scraping or a runaway client."},
		schemas.SeverityMedium, []string{"T1613"}, []string{"Container and Resource Discovery"}},
}

// Analyzer is the baseline analyzer.
type Analyzer struct {
	cfg     Config
	store   Store
	cluster string
	log     *slog.Logger

	mu    sync.Mutex
	cache map[string]*entry

	dropped, conflicts prometheus.Counter
}

type entry struct {
	mu    sync.Mutex
	p     *Profile
	rev   uint64
	dirty bool
	seen  time.Time
}

// New builds the analyzer over a store (KVStore in production).
func New(cfg Config, store Store, cluster string, log *slog.Logger, reg prometheus.Registerer) (*Analyzer, error) {
	if log == nil {
		log = slog.Default()
	}
	a := &Analyzer{cfg: cfg, store: store, cluster: cluster, log: log, cache: map[string]*entry{},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "faultline_baseline_terms_dropped_total",
			Help: "New activities, user agents or networks not learned because the identity's profile is full (max_terms)."}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "faultline_baseline_kv_conflicts_total",
			Help: "Profile writes that met another replica's write and were merged and retried."}),
	}
	if err := promutil.RegisterAll(reg, a.dropped, a.conflicts); err != nil {
		return nil, fmt.Errorf("baseline: register metrics: %w", err)
	}
	return a, nil
}

// Name is "baseline".
func (a *Analyzer) Name() string { return Name }

func (a *Analyzer) ignored(user string) bool {
	for _, p := range a.cfg.IgnoreUsers {
		if analyzers.Glob(p, user) {
			return true
		}
	}
	return false
}

// key is the KV key of an identity's profile.
func (a *Analyzer) key(user string) string {
	sum := sha256.Sum256([]byte(user))
	return "baseline." + safeToken(a.cluster) + "." + hex.EncodeToString(sum[:12])
}

func safeToken(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

func (a *Analyzer) entry(ctx context.Context, user string) (*entry, error) {
	a.mu.Lock()
	e, ok := a.cache[user]
	if !ok {
		e = &entry{}
		a.cache[strings.Clone(user)] = e // user is a view of the event's bytes
	}
	a.mu.Unlock()
	e.mu.Lock()
	if e.p == nil {
		p, rev, err := a.store.Load(ctx, a.key(user))
		if err != nil {
			e.mu.Unlock()
			return nil, err
		}
		if p == nil {
			p = &Profile{}
		}
		if p.Terms == nil {
			p.Terms = map[string]string{}
		}
		e.p, e.rev = p, rev
	}
	return e, nil // locked
}

// Analyze learns from one event and reports what is new for its identity.
func (a *Analyzer) Analyze(ctx context.Context, in *analyzers.Input) ([]*schemas.Finding, error) {
	ev := in.Event
	user := ev.User.Username
	if user == "" || ev.Stage == "RequestReceived" || a.ignored(user) {
		return nil, nil
	}
	e, err := a.entry(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	defer e.mu.Unlock()
	at := ev.Time()
	p := e.p
	e.seen = time.Now()
	if p.FirstSeen.IsZero() || at.Before(p.FirstSeen) {
		p.FirstSeen = at
		e.dirty = true
	}
	learned := !at.Before(p.FirstSeen.Add(a.cfg.LearningPeriod)) && a.cfg.LearningPeriod >= 0
	src := in.SourceID
	if src == "" {
		src = ev.ID()
	}
	digest := shortDigest(src)
	var out []*schemas.Finding
	check := func(rule, term, what string) {
		if term == "" {
			return
		}
		if first, ok := p.Terms[term]; ok {
			// A redelivered event that introduced the term raises its
			// finding again (same id, dropped by JetStream's dedupe).
			if first == digest && learned {
				out = append(out, a.finding(rule, in, what))
			}
			return
		}
		if len(p.Terms) >= a.cfg.MaxTerms {
			a.dropped.Inc()
			return
		}
		p.Terms[term] = digest
		e.dirty = true
		if learned {
			out = append(out, a.finding(rule, in, what))
		}
	}
	activity := ev.Verb + " " + ev.Resource()
	if ev.HasObjectRef && ev.ObjectRef.APIGroup != "" {
		activity = ev.Verb + " " + ev.ObjectRef.APIGroup + "/" + ev.Resource()
	}
	if !ev.HasObjectRef {
		activity = ev.Verb + " " + nonResourcePath(ev.RequestURI)
	}
	ns := ev.ObjectRef.Namespace
	where := ""
	if ns != "" {
		where = " in namespace " + ns
	}
	check(RuleNewActivity, "a:"+activity+"|"+ns, fmt.Sprintf("%s did %s%s for the first time", user, activity, where))
	if ua := product(ev.UserAgent); ua != "" {
		check(RuleNewUserAgent, "u:"+ua, fmt.Sprintf("%s used client %q for the first time (%s)", user, ua, ev.UserAgent))
	}
	if len(ev.SourceIPs) > 0 {
		if n := network(ev.SourceIPs[0]); n != "" {
			check(RuleNewSourceIP, "s:"+n, fmt.Sprintf("%s made a request from %s (network %s) for the first time", user, ev.SourceIPs[0], n))
		}
	}
	if f := a.rate(p, at, learned, in); f != nil {
		out = append(out, f)
	}
	e.dirty = true // the rate changes with every event
	return out, nil
}

// rate folds the event into the per-minute counts; a minute far above the
// moving average is a spike, reported once per minute.
func (a *Analyzer) rate(p *Profile, at time.Time, learned bool, in *analyzers.Input) *schemas.Finding {
	const alpha = 0.2
	minute := at.Unix() / 60
	switch {
	case minute == p.RateMinute:
		p.RateCount++
	case minute > p.RateMinute:
		if p.RateMinute != 0 {
			p.RateAvg = alpha*float64(p.RateCount) + (1-alpha)*p.RateAvg
			if gap := minute - p.RateMinute - 1; gap > 0 {
				p.RateAvg *= math.Pow(1-alpha, float64(min(gap, 1000)))
			}
		}
		p.RateMinute, p.RateCount, p.Spiked = minute, 1, false
	default:
		return nil // a late event of a minute already folded
	}
	if !learned || p.Spiked || p.RateCount < a.cfg.RateMinCount || float64(p.RateCount) <= a.cfg.RateFactor*p.RateAvg {
		return nil
	}
	p.Spiked = true
	return a.finding(RuleRateSpike, in, fmt.Sprintf("%s made %d requests this minute, %.0f× its average of %.1f",
		in.Event.User.Username, p.RateCount, float64(p.RateCount)/math.Max(p.RateAvg, 0.1), p.RateAvg))
}

func (a *Analyzer) finding(rule string, in *analyzers.Input, msg string) *schemas.Finding {
	info := ruleInfo[rule]
	r := info.rule
	r.Ruleset = Ruleset
	src := in.SourceID
	if src == "" {
		src = in.Event.ID()
	}
	f := schemas.NewFinding(Name, r, info.severity, src, in.Event.Time())
	f.Threat = schemas.NewMITREThreat(info.mitre, info.names)
	f.SetAuditContext(in.Event.Upstream())
	f.Orchestrator.Cluster.Name = in.Cluster
	f.Message = msg
	return f
}

// Background writes learned changes to the store every flush interval and
// once more when ctx ends. The runner owns it.
func (a *Analyzer) Background(ctx context.Context) error {
	t := time.NewTicker(a.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			return a.Flush(fctx)
		case <-t.C:
			if err := a.Flush(ctx); err != nil {
				a.log.Warn("baseline: flush", "err", err)
			}
		}
	}
}

// Flush writes every changed profile, merging with what other replicas
// wrote, and drops the least recently seen profiles beyond max_identities.
func (a *Analyzer) Flush(ctx context.Context) error {
	a.mu.Lock()
	users := make([]string, 0, len(a.cache))
	for u := range a.cache {
		users = append(users, u)
	}
	a.mu.Unlock()
	var errs []error
	for _, u := range users {
		a.mu.Lock()
		e := a.cache[u]
		a.mu.Unlock()
		if e == nil {
			continue
		}
		e.mu.Lock()
		if e.dirty && e.p != nil {
			if err := a.save(ctx, u, e); err != nil {
				errs = append(errs, err)
			}
		}
		e.mu.Unlock()
	}
	a.trim()
	return errors.Join(errs...)
}

func (a *Analyzer) save(ctx context.Context, user string, e *entry) error {
	key := a.key(user)
	for range 5 {
		err := a.store.Save(ctx, key, e.p, e.rev)
		if err == nil {
			e.rev++
			// The store's revision is authoritative: reload it.
			if _, rev, lerr := a.store.Load(ctx, key); lerr == nil {
				e.rev = rev
			}
			e.dirty = false
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
		a.conflicts.Inc()
		other, rev, err := a.store.Load(ctx, key)
		if err != nil {
			return err
		}
		if other != nil {
			e.p.merge(other, a.cfg.MaxTerms)
		}
		e.rev = rev
	}
	return fmt.Errorf("baseline: save %s: %w after retries", key, ErrConflict)
}

// trim drops clean profiles beyond max_identities, least recently seen
// first.
func (a *Analyzer) trim() {
	a.mu.Lock()
	defer a.mu.Unlock()
	over := len(a.cache) - a.cfg.MaxIdentities
	if over <= 0 {
		return
	}
	type us struct {
		u string
		t time.Time
	}
	var clean []us
	for u, e := range a.cache {
		if e.mu.TryLock() {
			if !e.dirty {
				clean = append(clean, us{u, e.seen})
			}
			e.mu.Unlock()
		}
	}
	for i := 0; i < len(clean) && over > 0; i++ {
		oldest := i
		for j := i + 1; j < len(clean); j++ {
			if clean[j].t.Before(clean[oldest].t) {
				oldest = j
			}
		}
		clean[i], clean[oldest] = clean[oldest], clean[i]
		delete(a.cache, clean[i].u)
		over--
	}
}

func shortDigest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// product is a user agent's first product name: "kubectl" for
// "kubectl/v1.33.1 (linux/amd64) kubernetes/8adc0f0", so upgrades are not
// new clients.
func product(ua string) string {
	ua = strings.TrimSpace(ua)
	if i := strings.IndexAny(ua, "/ ("); i >= 0 {
		ua = ua[:i]
	}
	if len(ua) > 64 {
		ua = ua[:64]
	}
	return ua
}

// network is the /24 (IPv4) or /64 (IPv6) of an address, so pods that
// restart with a new address in the same network are not new sources.
func network(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	bits := 24
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p.String()
}

// nonResourcePath keeps the first two segments of a non-resource URL.
func nonResourcePath(uri string) string {
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	parts := strings.SplitN(strings.TrimPrefix(uri, "/"), "/", 3)
	if len(parts) > 2 {
		parts = parts[:2]
	}
	return "/" + strings.Join(parts, "/")
}
