// Package guard holds the guard rails every fault command passes before an
// injector touches the cluster: a trusted signature and a fresh issue time,
// the namespace allow-list, the opt-in label, the blast radius per workload
// and the cap on concurrent faults. They live in one place so no fault type
// can skip one.
package guard

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/injectors/signing"
	"github.com/faultline/faultline/schemas"
)

// Reason codes of refusals: the reason_code of a refused status and the
// label of the refusal counter.
const (
	CodeInvalid          = "invalid"
	CodeUnsigned         = "unsigned"
	CodeUntrusted        = "untrusted-issuer"
	CodeForged           = "forged"
	CodeExpired          = "expired"
	CodeFuture           = "issued-in-future"
	CodeReplayed         = "replayed"
	CodeAborted          = "experiment-aborted"
	CodeTooLong          = "duration-too-long"
	CodeNamespace        = "namespace-not-allowed"
	CodeProtected        = "namespace-protected"
	CodeNotOptedIn       = "not-opted-in"
	CodeNoTargets        = "no-targets"
	CodeBlastRadius      = "blast-radius"
	CodeTooManyFaults    = "too-many-faults"
	CodeNoInjector       = "no-injector"
	CodeClusterUnreached = "cluster-unreachable"
)

// Refusal is a guard's no: a reason code for counting and a reason for
// people.
type Refusal struct {
	Code   string
	Reason string
}

func (r *Refusal) Error() string { return r.Code + ": " + r.Reason }

// Refuse builds a Refusal.
func Refuse(code, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// AsRefusal returns the Refusal in err's chain, if any.
func AsRefusal(err error) (*Refusal, bool) {
	var r *Refusal
	ok := errors.As(err, &r)
	return r, ok
}

// Guard checks commands against the configuration and the live cluster.
type Guard struct {
	cfg      Config
	own      string
	optKey   string
	optValue string
	trusted  *signing.Trusted
	kube     kubernetes.Interface
}

// New builds a Guard; kube may be nil for Authenticate-only use.
func New(cfg Config, kube kubernetes.Interface) (*Guard, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("guard: %w", errors.Join(errs...))
	}
	keys := slices.Clone(cfg.TrustedKeys)
	if cfg.TrustedKeysFile != "" {
		more, err := signing.ReadKeysFile(cfg.TrustedKeysFile)
		if err != nil {
			return nil, fmt.Errorf("guard: trusted_keys_file: %w", err)
		}
		keys = append(keys, more...)
	}
	trusted, err := signing.NewTrusted(keys)
	if err != nil {
		return nil, fmt.Errorf("guard: trusted keys: %w", err)
	}
	g := &Guard{cfg: cfg, own: cfg.ownNamespace(), trusted: trusted, kube: kube}
	g.optKey, g.optValue, _ = parseLabel(cfg.OptInLabel)
	return g, nil
}

// TrustedKeys is the number of keys whose commands are accepted.
func (g *Guard) TrustedKeys() int { return g.trusted.Len() }

// Config returns the guard's configuration.
func (g *Guard) Config() Config { return g.cfg }

// Authenticate checks that cmd is signed by a trusted key, is neither
// expired nor issued in the future, and asks for no more than the longest
// allowed duration. Replays are the runner's to detect: they need the
// shared record of command ids.
func (g *Guard) Authenticate(cmd *schemas.FaultCommand, now time.Time) error {
	if err := g.trusted.Verify(cmd); err != nil {
		switch {
		case errors.Is(err, signing.ErrUnsigned):
			return Refuse(CodeUnsigned, "the command carries no signature")
		case errors.Is(err, signing.ErrUntrusted):
			return Refuse(CodeUntrusted, "issuer %q is not among the injector's %d trusted keys", cmd.Issuer, g.trusted.Len())
		default:
			return Refuse(CodeForged, "the signature does not match the command: %v", err)
		}
	}
	if cmd.IssuedAt.After(now.Add(g.cfg.ClockSkew)) {
		return Refuse(CodeFuture, "issued_at %s is more than %v ahead of the injector's clock", cmd.IssuedAt.Format(time.RFC3339), g.cfg.ClockSkew)
	}
	expires := cmd.IssuedAt.Add(g.cfg.MaxCommandAge)
	if cmd.ExpiresAt != nil && cmd.ExpiresAt.Before(expires) {
		expires = *cmd.ExpiresAt
	}
	if !now.Before(expires) {
		return Refuse(CodeExpired, "the command expired at %s (issued %s, max age %v)", expires.UTC().Format(time.RFC3339), cmd.IssuedAt.UTC().Format(time.RFC3339), g.cfg.MaxCommandAge)
	}
	if d := cmd.Duration.Std(); d > g.cfg.MaxDuration {
		return Refuse(CodeTooLong, "duration %v exceeds max_duration %v", d, g.cfg.MaxDuration)
	}
	return nil
}

// CheckNamespace applies the allow-list and the protected namespaces.
func (g *Guard) CheckNamespace(ns string) error {
	exact := slices.Contains(g.cfg.AllowedNamespaces, ns)
	if ns == g.own || slices.Contains(g.cfg.ProtectedNamespaces, ns) {
		if ns == g.own && !exact {
			return Refuse(CodeProtected, "namespace %q is Faultline's own and is never a target unless allowed by its exact name", ns)
		}
		if !exact {
			return Refuse(CodeProtected, "namespace %q is protected; allow it by its exact name in allowed_namespaces to target it", ns)
		}
		return nil
	}
	if exact {
		return nil
	}
	for _, p := range g.cfg.AllowedNamespaces {
		if ok, _ := path.Match(p, ns); ok {
			return nil
		}
	}
	if len(g.cfg.AllowedNamespaces) == 0 {
		return Refuse(CodeNamespace, "namespace %q is not allowed: the injector's allowed_namespaces is empty", ns)
	}
	return Refuse(CodeNamespace, "namespace %q is not in allowed_namespaces %v", ns, g.cfg.AllowedNamespaces)
}

// Selection is the outcome of Select.
type Selection struct {
	// Pods are the chosen targets.
	Pods []corev1.Pod
	// Eligible is how many pods matched, were running and opted in.
	Eligible int
	// Workloads maps each affected workload to "chosen/ready".
	Workloads map[string]string
}

// Select resolves cmd's targets against the live pod list, applies the
// namespace allow-list, the opt-in label and the mode, and refuses what
// would exceed the blast radius or the concurrent-fault cap. active is the
// number of faults already active in the cluster. The choice among
// eligible pods is random but fixed by the command id, so a redelivered
// command picks the same pods.
func (g *Guard) Select(ctx context.Context, cmd *schemas.FaultCommand, active int) (*Selection, error) {
	if active >= g.cfg.MaxConcurrentFaults {
		return nil, Refuse(CodeTooManyFaults, "%d faults are active; max_concurrent_faults is %d", active, g.cfg.MaxConcurrentFaults)
	}
	ns := cmd.Target.Namespace
	if err := g.CheckNamespace(ns); err != nil {
		return nil, err
	}
	nsObj, err := g.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, Refuse(CodeNoTargets, "namespace %q does not exist", ns)
	}
	if err != nil {
		return nil, fmt.Errorf("guard: get namespace %s: %w", ns, err)
	}
	nsOptedIn := nsObj.Labels[g.optKey] == g.optValue

	all, err := g.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("guard: list pods in %s: %w", ns, err)
	}
	matches, err := matcher(cmd.Target)
	if err != nil {
		return nil, Refuse(CodeInvalid, "target: %v", err)
	}
	var candidates []corev1.Pod
	matched, notOptedIn := 0, 0
	for _, p := range all.Items {
		if !matches(&p) {
			continue
		}
		matched++
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		if !nsOptedIn && p.Labels[g.optKey] != g.optValue {
			notOptedIn++
			continue
		}
		candidates = append(candidates, p)
	}
	if len(candidates) == 0 {
		switch {
		case matched == 0:
			return nil, Refuse(CodeNoTargets, "no pod in namespace %q matches the target", ns)
		case notOptedIn > 0:
			return nil, Refuse(CodeNotOptedIn, "%d matching pods, but neither namespace %q nor the pods carry the opt-in label %s", matched, ns, g.cfg.OptInLabel)
		default:
			return nil, Refuse(CodeNoTargets, "%d pods match the target but none is running", matched)
		}
	}
	n, err := count(cmd.Mode, len(candidates))
	if err != nil {
		return nil, Refuse(CodeInvalid, "mode: %v", err)
	}
	if n > len(candidates) {
		return nil, Refuse(CodeNoTargets, "mode asks for %d pods but only %d are eligible (running and opted in)", n, len(candidates))
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].Name < candidates[j].Name })
	h := fnv.New64a()
	h.Write([]byte(cmd.ID))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0x6661756c746c696e))
	rng.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	chosen := candidates[:n]
	sort.Slice(chosen, func(i, j int) bool { return chosen[i].Name < chosen[j].Name })

	workloads, err := g.blastRadius(chosen, all.Items)
	if err != nil {
		return nil, err
	}
	return &Selection{Pods: chosen, Eligible: len(candidates), Workloads: workloads}, nil
}

// blastRadius refuses a choice that takes more than MaxShare of any
// workload's ready pods. A workload is the pods' controller (a ReplicaSet,
// StatefulSet, DaemonSet or Job); a pod without one is its own workload.
func (g *Guard) blastRadius(chosen, all []corev1.Pod) (map[string]string, error) {
	type workload struct {
		name          string
		chosen, ready int
	}
	byOwner := map[types.UID]*workload{}
	for _, p := range chosen {
		key, name := owner(&p)
		w := byOwner[key]
		if w == nil {
			w = &workload{name: name}
			byOwner[key] = w
		}
		w.chosen++
	}
	for _, p := range all {
		key, _ := owner(&p)
		if w := byOwner[key]; w != nil && ready(&p) {
			w.ready++
		}
	}
	out := make(map[string]string, len(byOwner))
	var over []string
	for _, w := range byOwner {
		out[w.name] = fmt.Sprintf("%d/%d", w.chosen, w.ready)
		if w.ready == 0 || float64(w.chosen)/float64(w.ready) > g.cfg.MaxShare {
			over = append(over, fmt.Sprintf("%s: %d of %d ready pods", w.name, w.chosen, w.ready))
		}
	}
	if len(over) > 0 {
		sort.Strings(over)
		return nil, Refuse(CodeBlastRadius, "the command would affect more than max_share %.0f%% of a workload's ready pods (%s)", g.cfg.MaxShare*100, strings.Join(over, "; "))
	}
	return out, nil
}

func owner(p *corev1.Pod) (types.UID, string) {
	if ref := metav1.GetControllerOf(p); ref != nil {
		return ref.UID, ref.Kind + "/" + ref.Name
	}
	return p.UID, "Pod/" + p.Name
}

func ready(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func matcher(t schemas.Target) (func(*corev1.Pod) bool, error) {
	if len(t.Names) > 0 {
		return func(p *corev1.Pod) bool { return slices.Contains(t.Names, p.Name) }, nil
	}
	if t.Selector == nil {
		return nil, errors.New("neither selector nor names")
	}
	sel, err := metav1.LabelSelectorAsSelector(t.Selector)
	if err != nil {
		return nil, err
	}
	if sel.Empty() {
		return nil, errors.New("an empty selector would match every pod of the namespace; name the pods or select by label")
	}
	return func(p *corev1.Pod) bool { return sel.Matches(labels.Set(p.Labels)) }, nil
}

// count turns a mode into a number of pods out of n eligible ones. Percent
// rounds down but takes at least one pod.
func count(m schemas.Mode, n int) (int, error) {
	switch m.Type {
	case schemas.ModeOne:
		return 1, nil
	case schemas.ModeCount:
		if m.Value < 1 {
			return 0, fmt.Errorf("count %d must be at least 1", m.Value)
		}
		return m.Value, nil
	case schemas.ModePercent:
		if m.Value < 1 || m.Value > 100 {
			return 0, fmt.Errorf("percent %d must be in 1–100", m.Value)
		}
		return max(1, n*m.Value/100), nil
	}
	return 0, fmt.Errorf("unknown mode %q", m.Type)
}
