package injectors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// ForEach runs f for every item, at most parallelism at once, and returns
// the errors joined in a stable order (nil when all succeeded). Once ctx
// ends, items not yet started fail with ctx's error instead of being tried.
func ForEach[T any](ctx context.Context, items []T, parallelism int, f func(context.Context, T) error) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, max(parallelism, 1))
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for _, o := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			fail(fmt.Errorf("%v: not started: %w", o, ctx.Err()))
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(ctx, o); err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}
