package metrics

import (
	"context"
	"errors"
	"fmt"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/schemas"
)

// EventSourcePrefix is the CloudEvents source of metric envelopes; the
// sample's source is appended.
const EventSourcePrefix = "/faultline/collectors/metrics/"

// publisher puts samples on the bus, one message per sample, one batch per
// scrape.
type publisher struct {
	bus     *bus.Bus
	cluster string
	metrics *collectorMetrics
}

// publish sends samples on fl.metric.<cluster>.<source> with their
// deterministic ids and waits until JetStream acknowledged each. It runs to
// completion (bounded by publishTimeout) even when ctx ends, so what was
// read is not lost at shutdown. An error means some samples are not stored;
// re-publishing the same samples is safe (same ids).
func (p *publisher) publish(ctx context.Context, source string, samples []schemas.MetricSample) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	subject := bus.MetricSubject(p.cluster, source)
	batch := p.bus.NewBatch()
	var health, series int
	var encodeErrs []error
	for i := range samples {
		s := &samples[i]
		id := s.ID()
		data, err := encode(p.cluster, id, s)
		if err != nil {
			encodeErrs = append(encodeErrs, err)
			continue
		}
		if err := batch.Add(ctx, bus.Message{Subject: subject, ID: id, Data: data}); err != nil {
			// Recorded in the batch result as well.
			break
		}
		if s.Kind == schemas.MetricTargetHealth {
			health++
		} else {
			series++
		}
	}
	res, err := batch.Wait(ctx)
	failed := len(res.Failed) + len(encodeErrs)
	if failed > 0 {
		p.metrics.publishFailed.WithLabelValues(source).Add(float64(failed))
	}
	if err != nil || len(encodeErrs) > 0 {
		// Counts of what was acknowledged are not split by kind on failure.
		p.metrics.published.WithLabelValues(source, "series").Add(float64(max(res.Acked, 0)))
		return fmt.Errorf("publish %d samples on %s: %w", len(samples), subject, errors.Join(append([]error{err}, encodeErrs...)...))
	}
	p.metrics.published.WithLabelValues(source, "series").Add(float64(series))
	p.metrics.published.WithLabelValues(source, "health").Add(float64(health))
	return nil
}

// encode wraps one sample in its CloudEvents envelope.
func encode(cluster, id string, s *schemas.MetricSample) ([]byte, error) {
	env, err := schemas.NewEnvelope(schemas.Attributes{
		ID:      id,
		Source:  EventSourcePrefix + s.Source,
		Type:    schemas.TypeMetric,
		Subject: s.Name,
		Cluster: cluster,
		Time:    s.Timestamp,
	}, s)
	if err != nil {
		return nil, fmt.Errorf("encode sample %s: %w", s.Name, err)
	}
	data, err := env.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode sample %s: %w", s.Name, err)
	}
	return data, nil
}
