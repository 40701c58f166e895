// Package promutil holds the Prometheus registration helpers the roles
// share.
package promutil

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterAll registers every collector with reg and stops at the first
// error. A nil reg registers nothing (tests and tools).
func RegisterAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Reuse registers c, or returns the collector already registered under its
// name, so a component built twice in one process shares its series. A
// conflicting definition keeps c unregistered, so counting still works.
func Reuse[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
