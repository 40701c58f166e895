// Package collectortest runs collectors in tests.
package collectortest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/faultline/faultline/collectors"
)

// Run starts c and returns a stop function that cancels it and returns
// Run's result (an error if it does not return within 30s). stop may be
// called more than once; it is also called at cleanup, failing the test on
// an error.
func Run(t testing.TB, c collectors.Collector) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("collector did not stop within 30s")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("collector: %v", err)
		}
	})
	return stop
}
