package promutil

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func counter() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: "faultline_test_total", Help: "t"})
}

func TestReuseSharesTheRegisteredCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := Reuse(reg, counter())
	b := Reuse(reg, counter())
	b.Inc()
	if got := testutil.ToFloat64(a); got != 1 {
		t.Errorf("first collector = %v, want the increment made through the second", got)
	}
}

func TestRegisterAll(t *testing.T) {
	if err := RegisterAll(nil, counter()); err != nil {
		t.Errorf("nil registry: %v", err)
	}
	reg := prometheus.NewRegistry()
	if err := RegisterAll(reg, counter()); err != nil {
		t.Fatal(err)
	}
	if err := RegisterAll(reg, counter()); err == nil {
		t.Error("registering the same name twice succeeded")
	}
}
