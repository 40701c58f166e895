package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/faultline/faultline/schemas"
)

// Accept headers per configured format. auto prefers the Prometheus text
// format, which expfmt decodes completely; OpenMetrics is decoded by the
// same parser, which handles counters, gauges, histograms and summaries but
// refuses exemplars, float timestamps and the unknown/info/stateset types.
var acceptHeaders = map[string]string{
	FormatAuto:        `text/plain;version=0.0.4;q=0.9,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.8,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1`,
	FormatText:        `text/plain;version=0.0.4`,
	FormatProtobuf:    `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited`,
	FormatOpenMetrics: `application/openmetrics-text;version=1.0.0`,
}

func acceptHeader(format string) string {
	if h, ok := acceptHeaders[format]; ok {
		return h
	}
	return acceptHeaders[FormatAuto]
}

// Errors the exposition decoder wraps, for errors.Is and the result label.
var (
	ErrParse       = errors.New("malformed exposition")
	ErrSampleLimit = errors.New("sample limit exceeded")
)

// exposition names the decoded format for errors and logs.
type exposition string

const (
	expoText        exposition = "text"
	expoOpenMetrics exposition = "OpenMetrics"
	expoProtobuf    exposition = "protobuf"
)

// formatOf maps a response Content-Type to the expfmt format to decode it
// with. Unknown or missing types are read as the text format, as Prometheus
// does.
func formatOf(contentType string) (exposition, expfmt.Format, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return expoText, expfmt.NewFormat(expfmt.TypeTextPlain), nil
	}
	switch mt {
	case expfmt.ProtoType:
		if p := params["proto"]; p != "" && p != expfmt.ProtoProtocol {
			return "", "", fmt.Errorf("%w: protobuf message %q is not %s", ErrParse, p, expfmt.ProtoProtocol)
		}
		if e := params["encoding"]; e != "" && e != "delimited" {
			return "", "", fmt.Errorf("%w: protobuf encoding %q is not supported (want delimited)", ErrParse, e)
		}
		return expoProtobuf, expfmt.NewFormat(expfmt.TypeProtoDelim), nil
	case expfmt.OpenMetricsType:
		if v := params["version"]; v != "" && v != expfmt.OpenMetricsVersion_1_0_0 && v != expfmt.OpenMetricsVersion_0_0_1 {
			return "", "", fmt.Errorf("%w: OpenMetrics version %q is not supported (want 1.0.0)", ErrParse, v)
		}
		return expoOpenMetrics, expfmt.NewFormat(expfmt.TypeOpenMetrics), nil
	}
	return expoText, expfmt.NewFormat(expfmt.TypeTextPlain), nil
}

// decodeFamilies decodes a whole response body with expfmt. The families
// come back sorted by name, so the samples of a scrape have a stable order.
func decodeFamilies(body []byte, contentType string) ([]*dto.MetricFamily, exposition, error) {
	expo, format, err := formatOf(contentType)
	if err != nil {
		return nil, expo, err
	}
	if expo == expoProtobuf {
		if err := checkDelimitedFrames(body); err != nil {
			return nil, expo, fmt.Errorf("%w: %s: %w", ErrParse, expo, err)
		}
	}
	dec := expfmt.NewDecoder(bytes.NewReader(body), format)
	var fams []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, expo, fmt.Errorf("%w: %s: %w", ErrParse, expo, err)
		}
		fams = append(fams, mf)
	}
	slices.SortFunc(fams, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return fams, expo, nil
}

// checkDelimitedFrames checks that every length-delimited frame of a
// protobuf exposition fits in the bytes received. expfmt's protobuf decoder
// allocates the length a frame claims before reading it, so a few bytes
// claiming gigabytes would otherwise cost that much memory. Only the frame
// lengths are read here; the messages are decoded by expfmt.
func checkDelimitedFrames(b []byte) error {
	for off := 0; off < len(b); {
		size, n := protowire.ConsumeVarint(b[off:])
		if n < 0 {
			return fmt.Errorf("frame at byte %d: bad length: %w", off, protowire.ParseError(n))
		}
		off += n
		if size > uint64(len(b)-off) {
			return fmt.Errorf("frame at byte %d claims %d bytes, only %d follow", off-n, size, len(b)-off)
		}
		off += int(size)
	}
	return nil
}

// seriesBase is what every sample of one target shares.
type seriesBase struct {
	Source string
	Target string
	// Labels are the target's labels; they win over a series' own label of
	// the same name, which is kept as exported_<name>.
	Labels map[string]string
}

// toSamples turns decoded families into samples: histograms and summaries
// as their component series (expfmt.ExtractSamples), each with its kind,
// the target's labels, and its own timestamp or at. More than limit samples
// is an error wrapping ErrSampleLimit; nothing is returned then.
func toSamples(fams []*dto.MetricFamily, expo exposition, at time.Time, limit int, base seriesBase) ([]schemas.MetricSample, error) {
	total := 0
	for _, f := range fams {
		total += seriesCount(f)
	}
	if total > limit {
		return nil, fmt.Errorf("%w: %d samples, the limit is %d (collectors.metrics.max_samples); nothing of this scrape was published", ErrSampleLimit, total, limit)
	}
	byName := make(map[string]*dto.MetricFamily, len(fams))
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	opts := &expfmt.DecodeOptions{Timestamp: model.TimeFromUnixNano(at.UnixNano())}
	out := make([]schemas.MetricSample, 0, total)
	for _, f := range fams {
		if len(f.Metric) == 0 {
			continue
		}
		kind := kindOf(f.GetType())
		if expo == expoOpenMetrics && kind == schemas.MetricUntyped {
			kind = openMetricsKind(f.GetName(), byName)
		}
		vec, err := expfmt.ExtractSamples(opts, f)
		if err != nil {
			return nil, fmt.Errorf("%w: family %q: %w", ErrParse, f.GetName(), err)
		}
		for _, s := range vec {
			ms, err := sampleOf(s, kind, base)
			if err != nil {
				return nil, fmt.Errorf("%w: family %q: %w", ErrParse, f.GetName(), err)
			}
			out = append(out, ms)
		}
	}
	if len(out) > limit {
		return nil, fmt.Errorf("%w: %d samples, the limit is %d (collectors.metrics.max_samples); nothing of this scrape was published", ErrSampleLimit, len(out), limit)
	}
	return out, nil
}

// openMetricsKind is the kind of an untyped family of an OpenMetrics
// exposition. OpenMetrics names a counter's samples <name>_total and
// <name>_created while its TYPE line names <name>; expfmt's text parser
// then files those samples under untyped families of the suffixed names
// (and drops the empty <name> family). A _total family is a counter; a
// _created family belongs to the histogram or summary of its base name, else
// to a counter.
func openMetricsKind(name string, byName map[string]*dto.MetricFamily) schemas.MetricKind {
	if strings.HasSuffix(name, "_total") {
		return schemas.MetricCounter
	}
	if base, ok := strings.CutSuffix(name, "_created"); ok {
		if f := byName[base]; f != nil && f.GetType() != dto.MetricType_UNTYPED {
			return kindOf(f.GetType())
		}
		if byName[base+"_total"] != nil {
			return schemas.MetricCounter
		}
	}
	return schemas.MetricUntyped
}

// seriesCount is the number of samples expfmt.ExtractSamples makes of a
// family, computed before extracting them so an oversized scrape costs no
// more memory.
func seriesCount(f *dto.MetricFamily) int {
	n := 0
	for _, m := range f.Metric {
		switch {
		case m.Histogram != nil:
			n += len(m.Histogram.Bucket) + 2 // buckets, _sum, _count
			if !slices.ContainsFunc(m.Histogram.Bucket, func(b *dto.Bucket) bool { return math.IsInf(b.GetUpperBound(), 1) }) {
				n++ // the +Inf bucket expfmt adds
			}
		case m.Summary != nil:
			n += len(m.Summary.Quantile) + 2
		default:
			n++
		}
	}
	return n
}

func kindOf(t dto.MetricType) schemas.MetricKind {
	switch t {
	case dto.MetricType_COUNTER:
		return schemas.MetricCounter
	case dto.MetricType_GAUGE:
		return schemas.MetricGauge
	case dto.MetricType_HISTOGRAM:
		return schemas.MetricHistogram
	case dto.MetricType_GAUGE_HISTOGRAM:
		return schemas.MetricGaugeHistogram
	case dto.MetricType_SUMMARY:
		return schemas.MetricSummary
	}
	return schemas.MetricUntyped
}

// sampleOf converts one extracted sample, merging the target's labels.
func sampleOf(s *model.Sample, kind schemas.MetricKind, base seriesBase) (schemas.MetricSample, error) {
	name := string(s.Metric[model.MetricNameLabel])
	if name == "" {
		return schemas.MetricSample{}, errors.New("series without a name")
	}
	return schemas.MetricSample{
		Name:      name,
		Labels:    mergeLabels(s.Metric, base.Labels),
		Value:     schemas.SampleValue(s.Value),
		Timestamp: s.Timestamp.Time().UTC(),
		Source:    base.Source,
		Target:    base.Target,
		Kind:      kind,
	}, nil
}

// mergeLabels returns the series' labels (without __name__ and empty
// values, which Prometheus treats as absent) plus the target's, which win; a
// series label they displace is kept as exported_<name>.
func mergeLabels(series model.Metric, target map[string]string) map[string]string {
	out := make(map[string]string, len(series)+len(target))
	for k, v := range series {
		if k == model.MetricNameLabel || k == "" || v == "" {
			continue
		}
		out[string(k)] = string(v)
	}
	for k, v := range target {
		if old, ok := out[k]; ok && old != v {
			out["exported_"+k] = old
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
