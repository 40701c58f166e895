package rules

import (
	"fmt"
	"math/bits"
	"net/netip"
	"path"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/decls"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/audit"
)

// The variables a rule's CEL expressions see. Dotted names are variables of
// their own (user.username is one string), so reading one field of the
// event never builds the others.
var variables = []struct {
	name string
	typ  *cel.Type
	doc  string
}{
	{"verb", cel.StringType, "the request verb: get, list, watch, create, update, patch, delete, deletecollection"},
	{"stage", cel.StringType, "the audit stage: ResponseStarted, ResponseComplete, Panic"},
	{"level", cel.StringType, "the audit level: Metadata, Request, RequestResponse"},
	{"auditID", cel.StringType, "the request's audit id"},
	{"requestURI", cel.StringType, "the request URI with its query"},
	{"userAgent", cel.StringType, "the client's User-Agent"},
	{"user.username", cel.StringType, "who authenticated"},
	{"user.uid", cel.StringType, "their uid"},
	{"user.groups", cel.ListType(cel.StringType), "their groups"},
	{"user.system", cel.BoolType, "whether user.username is one of lists.system_identities: the control plane itself"},
	{"user.extra", cel.MapType(cel.StringType, cel.ListType(cel.StringType)), "their extra attributes"},
	{"impersonated", cel.BoolType, "whether the request impersonated someone"},
	{"impersonatedUser.username", cel.StringType, "whom the request impersonated (\"\" if nobody)"},
	{"impersonatedUser.groups", cel.ListType(cel.StringType), "the impersonated groups"},
	{"sourceIPs", cel.ListType(cel.StringType), "the client's addresses, the first being the connection's peer or X-Forwarded-For's first"},
	{"sourceIP", cel.StringType, "the first of sourceIPs (\"\" if none)"},
	{"objectRef.resource", cel.StringType, "the resource, e.g. pods (\"\" for non-resource URLs)"},
	{"objectRef.subresource", cel.StringType, "the subresource, e.g. exec"},
	{"objectRef.namespace", cel.StringType, "the namespace (\"\" for cluster-scoped objects)"},
	{"objectRef.name", cel.StringType, "the object's name (\"\" for list and create without a name)"},
	{"objectRef.apiGroup", cel.StringType, "the API group (\"\" for the core group)"},
	{"objectRef.apiVersion", cel.StringType, "the API version"},
	{"responseStatus.code", cel.IntType, "the HTTP status (0 if none)"},
	{"annotations", cel.MapType(cel.StringType, cel.StringType), "the event's annotations"},
	{"authzDecision", cel.StringType, "annotations[\"authorization.k8s.io/decision\"]: allow or forbid (\"\" if absent)"},
	{"requestObject", cel.DynType, "the request body as sent (null below level Request)"},
	{"responseObject", cel.DynType, "the response body (null below level RequestResponse)"},
	{"podSpec", cel.DynType, "the pod spec in requestObject: of a Pod, of a workload's template (Deployment, DaemonSet, StatefulSet, ReplicaSet, Job, CronJob, ReplicationController); {} if none"},
	{"containers", cel.ListType(cel.DynType), "every container of podSpec: containers, initContainers and ephemeralContainers"},
	{"images", cel.ListType(cel.StringType), "the images of containers"},
	{"hostPaths", cel.ListType(cel.StringType), "the hostPath volume paths of podSpec"},
	{"capabilitiesAdded", cel.ListType(cel.StringType), "capabilities added by any container, upper case without CAP_"},
	{"controllerOwned", cel.BoolType, "whether requestObject has ownerReferences or is a node's mirror pod (made by a controller or a kubelet, not by hand)"},
	{"execCommand", cel.StringType, "for exec, the command and arguments from the request URI joined by spaces"},
}

const maxVariables = 48 // at most 64: activation.set is a bit mask

// variableIndex is the index of a variable in variables, -1 for another
// name. CEL asks for variables by name on every evaluation: a switch is
// quicker than a map (TestVariableIndex keeps it in step with variables).
func variableIndex(name string) int {
	switch name {
	case "verb":
		return 0
	case "stage":
		return 1
	case "level":
		return 2
	case "auditID":
		return 3
	case "requestURI":
		return 4
	case "userAgent":
		return 5
	case "user.username":
		return 6
	case "user.uid":
		return 7
	case "user.groups":
		return 8
	case "user.system":
		return 9
	case "user.extra":
		return 10
	case "impersonated":
		return 11
	case "impersonatedUser.username":
		return 12
	case "impersonatedUser.groups":
		return 13
	case "sourceIPs":
		return 14
	case "sourceIP":
		return 15
	case "objectRef.resource":
		return 16
	case "objectRef.subresource":
		return 17
	case "objectRef.namespace":
		return 18
	case "objectRef.name":
		return 19
	case "objectRef.apiGroup":
		return 20
	case "objectRef.apiVersion":
		return 21
	case "responseStatus.code":
		return 22
	case "annotations":
		return 23
	case "authzDecision":
		return 24
	case "requestObject":
		return 25
	case "responseObject":
		return 26
	case "podSpec":
		return 27
	case "containers":
		return 28
	case "images":
		return 29
	case "hostPaths":
		return 30
	case "capabilitiesAdded":
		return 31
	case "controllerOwned":
		return 32
	case "execCommand":
		return 33
	}
	return -1
}

// newEnv builds the CEL environment of a rule set: the event variables, the
// lists as constants (folded into the programs at compile time) and
// Faultline's functions.
func newEnv(lists map[string][]string) (*cel.Env, error) {
	// The functions check their arguments' types themselves (a wrong type
	// is CEL's no-such-overload error, as with CEL's own guards), so CEL's
	// generated type guards, which look at every item of a list argument
	// on every call, are off.
	noGuards := decls.DisableTypeGuards(true)
	opts := []cel.EnvOption{
		cel.OptionalTypes(),
		cel.Function("matchesAny",
			cel.MemberOverload("string_matches_any", []*cel.Type{cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
				cel.BinaryBinding(func(s, l ref.Val) ref.Val { return anyOf(s, l, analyzers.Glob) })), noGuards),
		cel.Function("startsWithAny",
			cel.MemberOverload("string_starts_with_any", []*cel.Type{cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
				cel.BinaryBinding(func(s, l ref.Val) ref.Val {
					return anyOf(s, l, func(p, s string) bool { return strings.HasPrefix(s, p) })
				})), noGuards),
		cel.Function("containsAny",
			cel.MemberOverload("string_contains_any", []*cel.Type{cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
				cel.BinaryBinding(func(s, l ref.Val) ref.Val {
					return anyOf(s, l, func(p, s string) bool { return strings.Contains(s, p) })
				})), noGuards),
		cel.Function("inCIDRs",
			cel.MemberOverload("string_in_cidrs", []*cel.Type{cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
				cel.BinaryBinding(func(s, l ref.Val) ref.Val { return anyOf(s, l, inCIDR) })), noGuards),
		cel.Function("normalizeImage",
			cel.MemberOverload("string_normalize_image", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(func(s ref.Val) ref.Val {
					str, ok := s.(types.String)
					if !ok {
						return types.MaybeNoSuchOverloadErr(s)
					}
					return types.String(NormalizeImage(string(str)))
				})), noGuards),
	}
	for _, v := range variables {
		opts = append(opts, cel.Variable(v.name, v.typ))
	}
	for name, items := range lists {
		opts = append(opts, cel.Constant("lists."+name, cel.ListType(cel.StringType), types.NewStringList(types.DefaultTypeAdapter, items)))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("rules: CEL environment: %w", err)
	}
	return env, nil
}

// anyOf tells whether match(item, s) holds for any item of the list l: a
// CEL bool, or no-such-overload when s is not a string or l not a list of
// strings.
func anyOf(sv, lv ref.Val, match func(item, s string) bool) ref.Val {
	s, ok := sv.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(sv)
	}
	if items, ok := lv.Value().([]string); ok {
		for _, it := range items {
			if match(it, string(s)) {
				return types.True
			}
		}
		return types.False
	}
	l, ok := lv.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(lv)
	}
	found := false
	for i, n := types.Int(0), l.Size().(types.Int); i < n; i++ {
		p, ok := l.Get(i).(types.String)
		if !ok {
			return types.MaybeNoSuchOverloadErr(l.Get(i))
		}
		if !found && match(string(p), string(s)) {
			found = true // the rest is still checked for its type
		}
	}
	return types.Bool(found)
}

// cidrCache keeps parsed CIDRs (lists are constants, so few); it stops
// growing at maxCachedCIDRs, past which CIDRs are parsed on every call.
var (
	cidrCache  sync.Map // string -> netip.Prefix (invalid prefix: never matches)
	cidrCached atomic.Int64
)

const maxCachedCIDRs = 4096

func parseCIDR(cidr string) netip.Prefix {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		if a, aerr := netip.ParseAddr(cidr); aerr == nil {
			p = netip.PrefixFrom(a, a.BitLen())
		}
	}
	return p.Masked()
}

func inCIDR(cidr, ip string) bool {
	var p netip.Prefix
	if v, ok := cidrCache.Load(cidr); ok {
		p = v.(netip.Prefix)
	} else {
		p = parseCIDR(cidr)
		if cidrCached.Load() < maxCachedCIDRs {
			if _, loaded := cidrCache.LoadOrStore(cidr, p); !loaded {
				cidrCached.Add(1)
			}
		}
	}
	if !p.IsValid() {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	return p.Contains(a.Unmap())
}

// NormalizeImage spells an image reference out in full: registry, path and
// tag, e.g. "nginx" becomes "docker.io/library/nginx:latest", so allowed
// registries can be compared by prefix.
func NormalizeImage(image string) string {
	name, digest, _ := strings.Cut(image, "@")
	registry, rest := "docker.io", name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		first := name[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" {
			registry, rest = first, name[i+1:]
		}
	}
	if registry == "docker.io" || registry == "index.docker.io" {
		registry = "docker.io"
		if !strings.Contains(rest, "/") {
			rest = "library/" + rest
		}
	}
	last := rest[strings.LastIndexByte(rest, '/')+1:]
	if !strings.Contains(last, ":") && digest == "" {
		rest += ":latest"
	}
	out := registry + "/" + rest
	if digest != "" {
		out += "@" + digest
	}
	return out
}

// activation resolves the variables for one event, decoding lazily and
// keeping what it decoded for the other rules of the same event.
type activation struct {
	ev   *audit.Event
	sys  []string              // lists.system_identities
	vals [maxVariables]ref.Val // by variable index; nil until resolved
	set  uint64                // bit i: vals[i] is set
	spec map[string]any
	done bool // spec computed
}

var _ interpreter.Activation = (*activation)(nil)

var (
	emptyStrings = types.NewStringList(types.DefaultTypeAdapter, nil)
	emptyDyn     = types.NewDynamicList(types.DefaultTypeAdapter, []any{})
	emptyMap     = types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{})
)

func (a *activation) Parent() interpreter.Activation { return nil }

func (a *activation) ResolveName(name string) (any, bool) {
	i := variableIndex(name)
	if i < 0 {
		return nil, false
	}
	if v := a.vals[i]; v != nil {
		return v, true
	}
	v := a.resolve(name)
	a.vals[i] = v
	a.set |= 1 << i
	return v, true
}

// reset makes the activation ready for another event, clearing only the
// variables resolved (most events resolve two or three of them).
func (a *activation) reset(ev *audit.Event, sys []string) {
	for set := a.set; set != 0; set &= set - 1 {
		a.vals[bits.TrailingZeros64(set)] = nil
	}
	a.set = 0
	a.ev, a.sys, a.spec, a.done = ev, sys, nil, false
}

func strList(s []string) ref.Val {
	if len(s) == 0 {
		return emptyStrings
	}
	return types.NewStringList(types.DefaultTypeAdapter, s)
}

func (a *activation) resolve(name string) ref.Val {
	ev := a.ev
	switch name {
	case "verb":
		return types.String(ev.Verb)
	case "stage":
		return types.String(ev.Stage)
	case "level":
		return types.String(ev.Level)
	case "auditID":
		return types.String(ev.AuditID)
	case "requestURI":
		return types.String(ev.RequestURI)
	case "userAgent":
		return types.String(ev.UserAgent)
	case "user.username":
		return types.String(ev.User.Username)
	case "user.uid":
		return types.String(ev.User.UID)
	case "user.groups":
		return strList(ev.User.Groups)
	case "user.system":
		for _, p := range a.sys {
			if analyzers.Glob(p, ev.User.Username) {
				return types.True
			}
		}
		return types.False
	case "user.extra":
		return types.DefaultTypeAdapter.NativeToValue(nonNilExtra(ev.User.Extra()))
	case "impersonated":
		return types.Bool(ev.Impersonated != nil)
	case "impersonatedUser.username":
		if ev.Impersonated == nil {
			return types.String("")
		}
		return types.String(ev.Impersonated.Username)
	case "impersonatedUser.groups":
		if ev.Impersonated == nil {
			return emptyStrings
		}
		return strList(ev.Impersonated.Groups)
	case "sourceIPs":
		return strList(ev.SourceIPs)
	case "sourceIP":
		if len(ev.SourceIPs) == 0 {
			return types.String("")
		}
		return types.String(ev.SourceIPs[0])
	case "objectRef.resource":
		return types.String(ev.ObjectRef.Resource)
	case "objectRef.subresource":
		return types.String(ev.ObjectRef.Subresource)
	case "objectRef.namespace":
		return types.String(ev.ObjectRef.Namespace)
	case "objectRef.name":
		return types.String(ev.ObjectRef.Name)
	case "objectRef.apiGroup":
		return types.String(ev.ObjectRef.APIGroup)
	case "objectRef.apiVersion":
		return types.String(ev.ObjectRef.APIVersion)
	case "responseStatus.code":
		return types.Int(ev.Code)
	case "annotations":
		return types.NewStringStringMap(types.DefaultTypeAdapter, ev.Annotations())
	case "authzDecision":
		return types.String(ev.Annotations()["authorization.k8s.io/decision"])
	case "requestObject":
		v, err := ev.RequestObject()
		if err != nil {
			return types.NewErr("%v", err)
		}
		return types.DefaultTypeAdapter.NativeToValue(v)
	case "responseObject":
		v, err := ev.ResponseObject()
		if err != nil {
			return types.NewErr("%v", err)
		}
		return types.DefaultTypeAdapter.NativeToValue(v)
	case "podSpec":
		if s := a.podSpec(); s != nil {
			return types.NewStringInterfaceMap(types.DefaultTypeAdapter, s)
		}
		return emptyMap
	case "containers":
		cs := containersOf(a.podSpec())
		if len(cs) == 0 {
			return emptyDyn
		}
		return types.NewDynamicList(types.DefaultTypeAdapter, cs)
	case "images":
		var out []string
		for _, c := range containersOf(a.podSpec()) {
			if img, ok := c["image"].(string); ok {
				out = append(out, img)
			}
		}
		return strList(out)
	case "hostPaths":
		var out []string
		vols, _ := a.podSpec()["volumes"].([]any)
		for _, v := range vols {
			if m, ok := v.(map[string]any); ok {
				if hp, ok := m["hostPath"].(map[string]any); ok {
					if p, ok := hp["path"].(string); ok {
						out = append(out, cleanPath(p))
					}
				}
			}
		}
		return strList(out)
	case "capabilitiesAdded":
		var out []string
		for _, c := range containersOf(a.podSpec()) {
			sc, _ := c["securityContext"].(map[string]any)
			caps, _ := sc["capabilities"].(map[string]any)
			add, _ := caps["add"].([]any)
			for _, x := range add {
				if s, ok := x.(string); ok {
					out = append(out, strings.TrimPrefix(strings.ToUpper(s), "CAP_"))
				}
			}
		}
		return strList(out)
	case "controllerOwned":
		obj, _ := a.ev.RequestObject()
		m, _ := obj.(map[string]any)
		md, _ := m["metadata"].(map[string]any)
		owners, _ := md["ownerReferences"].([]any)
		ann, _ := md["annotations"].(map[string]any)
		_, mirror := ann["kubernetes.io/config.mirror"]
		return types.Bool(len(owners) > 0 || mirror)
	case "execCommand":
		return types.String(strings.Join(ev.Query()["command"], " "))
	}
	return types.NewErr("no such variable %q", name)
}

func cleanPath(p string) string {
	if p == "" {
		return p
	}
	return path.Clean(p)
}

func nonNilExtra(m map[string][]string) map[string][]string {
	if m == nil {
		return map[string][]string{}
	}
	return m
}

// podSpec finds the pod spec in the request body, for pods and for the
// workloads that hold a pod template.
func (a *activation) podSpec() map[string]any {
	if a.done {
		return a.spec
	}
	a.done = true
	obj, err := a.ev.RequestObject()
	if err != nil {
		return nil
	}
	m, _ := obj.(map[string]any)
	spec, _ := m["spec"].(map[string]any)
	if spec == nil {
		return nil
	}
	switch a.ev.ObjectRef.Resource {
	case "pods":
		a.spec = spec
	case "cronjobs":
		jt, _ := spec["jobTemplate"].(map[string]any)
		js, _ := jt["spec"].(map[string]any)
		a.spec = templateSpec(js)
	default:
		a.spec = templateSpec(spec)
	}
	return a.spec
}

func templateSpec(spec map[string]any) map[string]any {
	t, _ := spec["template"].(map[string]any)
	s, _ := t["spec"].(map[string]any)
	return s
}

func containersOf(spec map[string]any) []map[string]any {
	if spec == nil {
		return nil
	}
	var out []map[string]any
	for _, k := range [...]string{"containers", "initContainers", "ephemeralContainers"} {
		list, _ := spec[k].([]any)
		for _, c := range list {
			if m, ok := c.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// valueString formats a CEL value for messages and window keys.
func valueString(v ref.Val) string {
	switch x := v.(type) {
	case types.String:
		return string(x)
	case traits.Lister:
		var parts []string
		it := x.Iterator()
		for it.HasNext() == types.True {
			parts = append(parts, valueString(it.Next()))
		}
		return strings.Join(parts, ",")
	case types.Null:
		return ""
	}
	if v == nil {
		return ""
	}
	if n, err := v.ConvertToNative(reflect.TypeOf("")); err == nil {
		return n.(string)
	}
	return fmt.Sprint(v.Value())
}
