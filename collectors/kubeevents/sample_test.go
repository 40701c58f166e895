package kubeevents_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/collectors/kubeevents"
	"github.com/faultline/faultline/internal/config"
)

// sample.yaml is a valid configuration holding every default.
func TestSampleConfig(t *testing.T) {
	c, err := config.LoadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := c.Collectors.KubeEvents
	want := kubeevents.DefaultConfig()
	want.Enabled = true
	want.Namespaces = []string{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sample.yaml differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *kubeevents.Config)
		want string // start of the single error, "" for none
	}{
		{"defaults", func(*kubeevents.Config) {}, ""},
		{"namespaces", func(c *kubeevents.Config) { c.Namespaces = []string{"shop", "kube-system"} }, ""},
		{"bad namespace", func(c *kubeevents.Config) { c.Namespaces = []string{"Shop"} }, "namespaces[0]: "},
		{"namespace twice", func(c *kubeevents.Config) { c.Namespaces = []string{"shop", "shop"} }, "namespaces[1]: "},
		{"unknown api", func(c *kubeevents.Config) { c.API = "events.k8s.io/v1beta1" }, "api: "},
		{"core api", func(c *kubeevents.Config) { c.API = kubeevents.APICore }, ""},
		{"short ttl", func(c *kubeevents.Config) { c.EventTTL = time.Second }, "event_ttl: "},
		{"no queue", func(c *kubeevents.Config) { c.QueueSize = 0 }, "queue_size: "},
		{"no batch", func(c *kubeevents.Config) { c.BatchSize = 0 }, "batch_size: "},
		{"bad lease name", func(c *kubeevents.Config) { c.LeaderElection.LeaseName = "Faultline" }, "leader_election.lease_name: "},
		{"bad lease namespace", func(c *kubeevents.Config) { c.LeaderElection.LeaseNamespace = "a.b" }, "leader_election.lease_namespace: "},
		{"renew not below lease", func(c *kubeevents.Config) { c.LeaderElection.RenewDeadline = 15 * time.Second }, "leader_election.lease_duration: "},
		{"retry too close to renew", func(c *kubeevents.Config) { c.LeaderElection.RetryPeriod = 9 * time.Second }, "leader_election.renew_deadline: "},
		{"no retry", func(c *kubeevents.Config) { c.LeaderElection.RetryPeriod = 0 }, "leader_election.retry_period: "},
		{"election off ignores its settings", func(c *kubeevents.Config) {
			c.LeaderElection.Enabled = false
			c.LeaderElection.RetryPeriod = 0
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := kubeevents.DefaultConfig()
			tc.edit(&c)
			errs := c.Validate()
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Errorf("unexpected errors: %v", errs)
			case tc.want != "" && (len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tc.want)):
				t.Errorf("errors %v, want one starting with %q", errs, tc.want)
			}
		})
	}
}
