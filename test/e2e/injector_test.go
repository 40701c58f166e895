package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/injectors/guard"
	"github.com/faultline/faultline/injectors/injectortest"
	"github.com/faultline/faultline/injectors/runner"
	"github.com/faultline/faultline/injectors/signing"
	"github.com/faultline/faultline/schemas"
)

// chaos is what the injector part of the suite works on: an opted-in
// namespace with a workload, the issuer's signing key, and the statuses
// the injector published.
type chaos struct {
	kube kubernetes.Interface
	ns   string
	work *injectortest.Workload
	key  nkeys.KeyPair
	pub  string
	bus  *bus.Bus

	mu       sync.Mutex
	statuses map[string][]schemas.FaultStatus // command id → statuses in order
}

// prepareChaos makes the namespace, the nodes and the pods before the
// injector starts (its configuration names them).
func (p *pipeline) prepareChaos(t testing.TB) *chaos {
	t.Helper()
	k, err := kubernetes.NewForConfig(p.kube.Admin.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	c := &chaos{kube: k, statuses: map[string][]schemas.FaultStatus{}}
	c.ns = injectortest.Namespace(t, k, injectortest.NamespaceOptions{OptIn: true, Prefix: "e2e-chaos-"})
	nodes := injectortest.Nodes(t, k, "e2e-node-"+randHex(3))
	c.work = injectortest.NewWorkload(t, k, c.ns, injectortest.WorkloadOptions{Name: "shop", Replicas: 8, Nodes: nodes})
	if c.key, err = signing.NewKey(); err != nil {
		t.Fatal(err)
	}
	if c.pub, err = c.key.PublicKey(); err != nil {
		t.Fatal(err)
	}
	return c
}

// injectorConfig is the configuration the injector adds to the shared file.
func (c *chaos) injectorConfig(kubeconfig string) string {
	return fmt.Sprintf(`kubernetes:
  kubeconfig: %s
injectors:
  guard:
    allowed_namespaces: [%s]
    trusted_keys: [%s]
  lifecycle:
    heartbeat_interval: 500ms
    heartbeat_timeout: 3s
    reconcile_interval: 500ms
`, kubeconfig, c.ns, c.pub)
}

// connect opens the issuer's bus connection and records the statuses.
func (c *chaos) connect(t testing.TB, p *pipeline) {
	t.Helper()
	b, err := bus.Connect(context.Background(), bus.Options{Name: "e2e-issuer", URLs: []string{p.natsURL}, Token: p.natsToken, ConnectTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	c.bus = b
	_, err = b.Conn().Subscribe(bus.PrefixFaultStatus+"."+cluster+".>", func(m *nats.Msg) {
		env, err := schemas.DecodeEnvelope(m.Data)
		if err != nil {
			return
		}
		var st schemas.FaultStatus
		if json.Unmarshal(env.Data, &st) != nil {
			return
		}
		c.mu.Lock()
		c.statuses[st.CommandID] = append(c.statuses[st.CommandID], st)
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// partition is a signed network partition of one pod.
func (c *chaos) partition(t testing.TB, pod int, d time.Duration, sign nkeys.KeyPair) *schemas.FaultCommand {
	t.Helper()
	cmd := injectortest.Command(schemas.FaultNetworkPartition, c.ns, c.work.Pods[pod:pod+1], d)
	cmd.NetworkPartition = &schemas.NetworkPartitionParams{Direction: schemas.DirectionBoth}
	if sign != nil {
		if err := signing.Sign(cmd, sign); err != nil {
			t.Fatal(err)
		}
	}
	return cmd
}

func (c *chaos) publish(t testing.TB, cmd *schemas.FaultCommand) {
	t.Helper()
	if err := runner.PublishCommand(context.Background(), c.bus, cluster, cmd); err != nil {
		t.Fatal(err)
	}
}

// last is the latest status of a command with phase, or nil.
func (c *chaos) status(id string, phase schemas.FaultPhase) *schemas.FaultStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.statuses[id] {
		if c.statuses[id][i].Phase == phase {
			st := c.statuses[id][i]
			return &st
		}
	}
	return nil
}

// policies counts the NetworkPolicies Faultline made for a command.
func (c *chaos) policies(ctx context.Context, id string) (int, error) {
	l, err := c.kube.NetworkingV1().NetworkPolicies(c.ns).List(ctx, metav1.ListOptions{LabelSelector: injectors.LabelCommand + "=" + injectors.LabelValue(id)})
	if err != nil {
		return 0, err
	}
	return len(l.Items), nil
}

// activeFaults applies partitions and waits until the API server has their
// NetworkPolicies.
func (c *chaos) activeFaults(t testing.TB, n int, d time.Duration) []*schemas.FaultCommand {
	t.Helper()
	var cmds []*schemas.FaultCommand
	for i := range n {
		cmd := c.partition(t, i, d, c.key)
		c.publish(t, cmd)
		cmds = append(cmds, cmd)
	}
	waitFor(t, time.Minute, "the partitions applied", func() (bool, error) {
		for _, cmd := range cmds {
			if c.status(cmd.ID, schemas.PhaseApplied) == nil {
				return false, nil
			}
			if n, err := c.policies(context.Background(), cmd.ID); err != nil || n == 0 {
				return false, err
			}
		}
		return true, nil
	})
	return cmds
}

// forged publishes commands an attacker could: unsigned, signed by a key
// the injector does not trust, and altered after signing. Each must be
// refused with its reason and change nothing.
func (c *chaos) forged(t testing.TB, ops string) {
	t.Helper()
	refusals := func(code string) float64 {
		return metric(t, ops, "faultline_injector_refusals_total", `reason="`+code+`"`)
	}
	before := map[string]float64{}
	for _, code := range []string{guard.CodeUnsigned, guard.CodeUntrusted, guard.CodeForged} {
		before[code] = refusals(code)
	}
	stranger, err := signing.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	unsigned := c.partition(t, 5, time.Minute, nil)
	untrusted := c.partition(t, 6, time.Minute, stranger)
	altered := c.partition(t, 7, time.Minute, c.key)
	altered.Target.Names = c.work.Names()[4:8] // widened after signing
	want := map[string]string{unsigned.ID: guard.CodeUnsigned, untrusted.ID: guard.CodeUntrusted, altered.ID: guard.CodeForged}
	for _, cmd := range []*schemas.FaultCommand{unsigned, untrusted, altered} {
		c.publish(t, cmd)
	}
	waitFor(t, time.Minute, "the forged commands refused", func() (bool, error) {
		for id := range want {
			if c.status(id, schemas.PhaseRefused) == nil {
				return false, nil
			}
		}
		return true, nil
	})
	for id, code := range want {
		st := c.status(id, schemas.PhaseRefused)
		if st.ReasonCode != code {
			t.Errorf("forged command %s refused with %q (%s), want %q", id, st.ReasonCode, st.Reason, code)
		}
		if n, err := c.policies(context.Background(), id); err != nil || n != 0 {
			t.Errorf("forged command %s left %d NetworkPolicies (%v)", id, n, err)
		}
		if c.status(id, schemas.PhaseApplied) != nil {
			t.Errorf("forged command %s was applied", id)
		}
		if got := refusals(code); got < before[code]+1 {
			t.Errorf("faultline_injector_refusals_total{reason=%q} went from %v to %v", code, before[code], got)
		}
	}
}

// allReverted waits until every command's NetworkPolicies are gone, its
// record removed and its reverted status published.
func (c *chaos) allReverted(t testing.TB, cmds []*schemas.FaultCommand, within time.Duration) {
	t.Helper()
	store, err := runner.OpenStore(context.Background(), c.bus, cluster)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, within, "every fault reverted", func() (bool, error) {
		for _, cmd := range cmds {
			if n, err := c.policies(context.Background(), cmd.ID); err != nil || n != 0 {
				return false, err
			}
			if e, err := store.Get(context.Background(), runner.FaultKey(cluster, cmd.ID)); err != nil || e != nil {
				return false, err
			}
			if c.status(cmd.ID, schemas.PhaseReverted) == nil {
				return false, nil
			}
		}
		return true, nil
	})
	var reasons []string
	for _, cmd := range cmds {
		reasons = append(reasons, c.status(cmd.ID, schemas.PhaseReverted).Reason)
	}
	t.Logf("injector: %d faults reverted after the SIGKILL of their injector (%s)", len(cmds), strings.Join(reasons, "; "))
}
