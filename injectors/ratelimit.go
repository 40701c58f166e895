package injectors

import (
	"context"

	"k8s.io/client-go/util/flowcontrol"
)

type revertKey struct{}

// WithRevert marks ctx as reverting a fault. Requests made with it skip the
// injector's client-side rate limit: a revert must never queue behind the
// applies that just drained the token bucket (an abort of 20 faults is ~40
// requests; at the default 20 QPS that alone would take two seconds). The
// API server's priority and fairness still protects it, and reverts are
// bounded by the faults recorded (max_concurrent_faults).
func WithRevert(ctx context.Context) context.Context {
	return context.WithValue(ctx, revertKey{}, true)
}

func reverting(ctx context.Context) bool {
	v, _ := ctx.Value(revertKey{}).(bool)
	return v
}

// NewRateLimiter is the injector client's rate limiter: a token bucket of
// qps and burst for everything but reverts (see WithRevert).
func NewRateLimiter(qps float32, burst int) flowcontrol.RateLimiter {
	return revertFirst{flowcontrol.NewTokenBucketRateLimiter(qps, burst)}
}

type revertFirst struct {
	flowcontrol.RateLimiter
}

func (r revertFirst) Wait(ctx context.Context) error {
	if reverting(ctx) {
		return nil
	}
	return r.RateLimiter.Wait(ctx)
}
