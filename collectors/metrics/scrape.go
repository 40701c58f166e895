package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/faultline/faultline/schemas"
)

// scraper reads one Prometheus endpoint.
type scraper struct {
	client     *http.Client
	url        string
	accept     string
	maxBody    int64
	maxSamples int
	base       seriesBase
}

func (s *scraper) collect(ctx context.Context, at time.Time) ([]schemas.MetricSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: build request: %w", s.url, err)
	}
	req.Header.Set("Accept", s.accept)
	req.Header.Set("User-Agent", "faultline-metrics")
	if dl, ok := ctx.Deadline(); ok {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(time.Until(dl).Seconds(), 'f', 3, 64))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("scrape %s: HTTP %s", s.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: read body: %w", s.url, err)
	}
	if int64(len(body)) > s.maxBody {
		return nil, fmt.Errorf("scrape %s: %w (%d bytes)", s.url, ErrBodyLimit, s.maxBody)
	}
	fams, expo, err := decodeFamilies(body, resp.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.url, err)
	}
	samples, err := toSamples(fams, expo, at, s.maxSamples, s.base)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.url, err)
	}
	return samples, nil
}

// querier runs one PromQL query as an instant query.
type querier struct {
	api        v1.API
	name       string
	expr       string
	timeout    time.Duration
	maxSamples int
	base       seriesBase
	warn       func(msg string, args ...any)
}

// collect evaluates the query at at (the scheduled time, so a retried run
// of the same interval yields the same sample ids).
func (q *querier) collect(ctx context.Context, at time.Time) ([]schemas.MetricSample, error) {
	val, warnings, _, err := q.api.Query(ctx, q.expr, at, v1.WithTimeout(q.timeout), v1.WithLimit(uint64(q.maxSamples)+1))
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", q.name, err)
	}
	if len(warnings) > 0 && q.warn != nil {
		q.warn("metrics: PromQL warnings", "query", q.name, "warnings", []string(warnings))
	}
	var out []schemas.MetricSample
	add := func(m model.Metric, v model.SampleValue, ts model.Time) error {
		if len(out) >= q.maxSamples {
			return fmt.Errorf("query %s: %w: more than %d samples (collectors.metrics.max_samples); nothing of this run was published", q.name, ErrSampleLimit, q.maxSamples)
		}
		name := string(m[model.MetricNameLabel])
		if name == "" {
			name = q.name
		}
		out = append(out, schemas.MetricSample{
			Name:      name,
			Labels:    mergeLabels(m, q.base.Labels),
			Value:     schemas.SampleValue(v),
			Timestamp: ts.Time().UTC(),
			Source:    q.base.Source,
			Target:    q.base.Target,
			Kind:      schemas.MetricUntyped,
			Query:     q.name,
		})
		return nil
	}
	switch v := val.(type) {
	case model.Vector:
		for _, s := range v {
			if s.Histogram != nil {
				continue // native histograms have no single value
			}
			if err := add(s.Metric, s.Value, s.Timestamp); err != nil {
				return nil, err
			}
		}
	case *model.Scalar:
		if err := add(nil, v.Value, v.Timestamp); err != nil {
			return nil, err
		}
	case model.Matrix:
		for _, ss := range v {
			for _, p := range ss.Values {
				if err := add(ss.Metric, p.Value, p.Timestamp); err != nil {
					return nil, err
				}
			}
		}
	case nil:
		return nil, fmt.Errorf("query %s: empty response", q.name)
	default:
		return nil, fmt.Errorf("query %s: result of type %s has no numeric value", q.name, val.Type())
	}
	return out, nil
}
