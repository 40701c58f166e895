package metrics

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/faultline/faultline/internal/units"
)

// Config configures the metrics collector: Prometheus endpoints it scrapes
// (listed, or found through pod annotations) and PromQL queries it runs
// against a Prometheus server. Lists of targets and queries are set in the
// YAML file only.
type Config struct {
	Enabled bool `yaml:"enabled" doc:"Scrape Prometheus endpoints and run PromQL queries."`

	Interval      time.Duration  `yaml:"interval" doc:"Default time between two scrapes of a target or two runs of a query; a target or query may set its own."`
	Timeout       time.Duration  `yaml:"timeout" doc:"Default bound on one scrape or query, at most its interval."`
	MaxSamples    int            `yaml:"max_samples" doc:"Cap on samples per scrape or query result. A scrape above it fails as a whole (nothing of it is published, the target-health sample says why) and counts in faultline_metrics_scrapes_total{result=\"sample_limit\"}."`
	MaxBodySize   units.ByteSize `yaml:"max_body_size" doc:"Cap on the bytes read from one scrape or query response; above it the scrape fails (result=\"body_limit\")."`
	MaxConcurrent int            `yaml:"max_concurrent" doc:"Scrapes and queries running at once. A target that finds no free slot before its next interval skips that scrape (result=\"skipped\", reported as down)."`

	Backoff Backoff `yaml:"backoff"`
	Scrape  Scrape  `yaml:"scrape"`
	PromQL  PromQL  `yaml:"promql"`
}

// Backoff is the retry schedule of a failing target: initial, doubled after
// each further failure, capped at max. A target-health sample is published
// every interval meanwhile.
type Backoff struct {
	Initial time.Duration `yaml:"initial" doc:"Delay before the first retry of a failed scrape or query."`
	Max     time.Duration `yaml:"max" doc:"Longest delay between retries; the delay doubles up to it."`
}

// Scrape configures the Prometheus endpoints read directly.
type Scrape struct {
	Source  string   `yaml:"source" doc:"Source name of scraped samples: the last token of their subject fl.metric.<cluster>.<source>."`
	Targets []Target `yaml:"targets" doc:"Static scrape targets."`
	Pods    Pods     `yaml:"kubernetes_pods"`
}

// Target is one static scrape target.
type Target struct {
	URL             string            `yaml:"url" doc:"http(s) URL of the metrics endpoint, e.g. http://10.0.1.17:8080/metrics."`
	Interval        time.Duration     `yaml:"interval,omitempty" doc:"Time between scrapes; 0: collectors.metrics.interval."`
	Timeout         time.Duration     `yaml:"timeout,omitempty" doc:"Bound on one scrape; 0: collectors.metrics.timeout."`
	Format          string            `yaml:"format,omitempty" doc:"Exposition format to ask for: auto (the text format, then protobuf, then OpenMetrics), text, protobuf or openmetrics."`
	CAFile          string            `yaml:"ca_file,omitempty" doc:"CA certificate (PEM) to verify an https target; empty: the system roots."`
	BearerTokenFile string            `yaml:"bearer_token_file,omitempty" doc:"File holding a bearer token sent with every scrape (read again on each scrape)."`
	Labels          map[string]string `yaml:"labels,omitempty" doc:"Labels added to every sample of the target; they win over the target's own (which are kept as exported_<name>)."`
}

// Pods configures scrape targets found from pod annotations.
type Pods struct {
	Enabled         bool          `yaml:"enabled" doc:"Scrape pods annotated prometheus.io/scrape: \"true\" (port from prometheus.io/port, else the first TCP container port; path from prometheus.io/path, default /metrics; scheme from prometheus.io/scheme, default http). Needs the kubernetes section."`
	Namespaces      []string      `yaml:"namespaces" doc:"Namespaces to watch; empty: all."`
	LabelSelector   string        `yaml:"label_selector" doc:"Only pods matching this label selector, e.g. app=shop,tier!=db."`
	Interval        time.Duration `yaml:"interval" doc:"Time between scrapes of a pod; 0: collectors.metrics.interval."`
	Timeout         time.Duration `yaml:"timeout" doc:"Bound on one scrape of a pod; 0: collectors.metrics.timeout."`
	Format          string        `yaml:"format" doc:"Exposition format to ask pods for: auto, protobuf, text or openmetrics."`
	CAFile          string        `yaml:"ca_file" doc:"CA certificate (PEM) to verify pods scraped over https."`
	BearerTokenFile string        `yaml:"bearer_token_file" doc:"File holding a bearer token sent to pods."`
	CopyPodLabels   bool          `yaml:"copy_pod_labels" doc:"Add the pod's labels to its samples (besides namespace, pod, node and instance), so analyzers can tell control from experimental groups."`
}

// PromQL configures the queries run against a Prometheus server.
type PromQL struct {
	Source          string  `yaml:"source" doc:"Source name of query results: the last token of their subject fl.metric.<cluster>.<source>."`
	URL             string  `yaml:"url" doc:"Base URL of the Prometheus server (http or https), e.g. http://prometheus.monitoring.svc:9090."`
	CAFile          string  `yaml:"ca_file" doc:"CA certificate (PEM) to verify an https Prometheus server."`
	BearerTokenFile string  `yaml:"bearer_token_file" doc:"File holding a bearer token for the Prometheus server."`
	Username        string  `yaml:"username" doc:"User name for HTTP basic authentication."`
	PasswordFile    string  `yaml:"password_file" doc:"File holding the password for username."`
	Queries         []Query `yaml:"queries" doc:"PromQL instant queries run on an interval."`
}

// Query is one PromQL query.
type Query struct {
	Name     string            `yaml:"name" doc:"Name of the query: the query field of its samples, and their name when a result series has none. A metric name, e.g. shop:error_ratio:rate1m."`
	Query    string            `yaml:"query" doc:"PromQL expression, evaluated as an instant query."`
	Interval time.Duration     `yaml:"interval,omitempty" doc:"Time between runs; 0: collectors.metrics.interval."`
	Timeout  time.Duration     `yaml:"timeout,omitempty" doc:"Bound on one run; 0: collectors.metrics.timeout."`
	Labels   map[string]string `yaml:"labels,omitempty" doc:"Labels added to every result sample."`
}

// Exposition formats a target can be asked for.
const (
	FormatAuto        = "auto"
	FormatProtobuf    = "protobuf"
	FormatText        = "text"
	FormatOpenMetrics = "openmetrics"
)

// DefaultConfig is the built-in default.
func DefaultConfig() Config {
	return Config{
		Interval:      15 * time.Second,
		Timeout:       10 * time.Second,
		MaxSamples:    10000,
		MaxBodySize:   16 << 20,
		MaxConcurrent: 16,
		Backoff:       Backoff{Initial: time.Second, Max: 2 * time.Minute},
		Scrape: Scrape{
			Source: "scrape",
			Pods:   Pods{Format: FormatAuto, CopyPodLabels: true},
		},
		PromQL: PromQL{Source: "prometheus"},
	}
}

var (
	sourceRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	namespaceRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// Validate returns one error per invalid field, each starting with the
// field's YAML name (the caller adds the section path).
func (c Config) Validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	positive(bad, "interval", c.Interval)
	positive(bad, "timeout", c.Timeout)
	if c.Timeout > c.Interval && c.Interval > 0 {
		bad("timeout", "%s is longer than interval %s", c.Timeout, c.Interval)
	}
	if c.MaxSamples < 1 {
		bad("max_samples", "must be at least 1 (got %d)", c.MaxSamples)
	}
	if c.MaxBodySize < 1024 {
		bad("max_body_size", "must be at least 1KiB (got %s)", c.MaxBodySize)
	}
	if c.MaxConcurrent < 1 || c.MaxConcurrent > 10000 {
		bad("max_concurrent", "must be between 1 and 10000 (got %d)", c.MaxConcurrent)
	}
	positive(bad, "backoff.initial", c.Backoff.Initial)
	if c.Backoff.Max < c.Backoff.Initial {
		bad("backoff.max", "%s is shorter than backoff.initial %s", c.Backoff.Max, c.Backoff.Initial)
	}

	s := c.Scrape
	if !sourceRE.MatchString(s.Source) {
		bad("scrape.source", "%q is not a valid source name (1-64 letters, digits, '-' or '_')", s.Source)
	}
	seen := map[string]int{}
	for i, t := range s.Targets {
		f := fmt.Sprintf("scrape.targets[%d]", i)
		if err := checkHTTPURL(t.URL); err != nil {
			bad(f+".url", "%v", err)
		} else if j, dup := seen[t.URL]; dup {
			bad(f+".url", "%q is already scrape.targets[%d]", t.URL, j)
		} else {
			seen[t.URL] = i
		}
		c.checkSchedule(bad, f, t.Interval, t.Timeout)
		checkFormat(bad, f+".format", t.Format)
		checkFiles(bad, map[string]string{f + ".ca_file": t.CAFile, f + ".bearer_token_file": t.BearerTokenFile})
		checkLabels(bad, f+".labels", t.Labels)
	}
	p := s.Pods
	for i, ns := range p.Namespaces {
		if !namespaceRE.MatchString(ns) {
			bad(fmt.Sprintf("scrape.kubernetes_pods.namespaces[%d]", i), "%q is not a namespace name", ns)
		}
	}
	if _, err := labels.Parse(p.LabelSelector); err != nil {
		bad("scrape.kubernetes_pods.label_selector", "%v", err)
	}
	c.checkSchedule(bad, "scrape.kubernetes_pods", p.Interval, p.Timeout)
	checkFormat(bad, "scrape.kubernetes_pods.format", p.Format)
	checkFiles(bad, map[string]string{"scrape.kubernetes_pods.ca_file": p.CAFile, "scrape.kubernetes_pods.bearer_token_file": p.BearerTokenFile})

	q := c.PromQL
	if !sourceRE.MatchString(q.Source) {
		bad("promql.source", "%q is not a valid source name (1-64 letters, digits, '-' or '_')", q.Source)
	} else if q.Source == s.Source {
		bad("promql.source", "%q is also scrape.source: give query results their own subject", q.Source)
	}
	if q.URL != "" {
		if err := checkHTTPURL(q.URL); err != nil {
			bad("promql.url", "%v", err)
		}
	} else if len(q.Queries) > 0 {
		bad("promql.url", "must be set when promql.queries lists queries")
	}
	if q.BearerTokenFile != "" && q.PasswordFile != "" {
		bad("promql", "bearer_token_file and password_file are both set: choose one authentication method")
	}
	if q.PasswordFile != "" && q.Username == "" {
		bad("promql.username", "password_file is set but username is empty")
	}
	if q.Username != "" && q.PasswordFile == "" {
		bad("promql.password_file", "username is set but password_file is empty")
	}
	checkFiles(bad, map[string]string{"promql.ca_file": q.CAFile, "promql.bearer_token_file": q.BearerTokenFile, "promql.password_file": q.PasswordFile})
	names := map[string]int{}
	for i, qq := range q.Queries {
		f := fmt.Sprintf("promql.queries[%d]", i)
		switch j, dup := names[qq.Name]; {
		case !metricNameRE.MatchString(qq.Name):
			bad(f+".name", "%q is not a metric name (letters, digits, '_' and ':', not starting with a digit)", qq.Name)
		case dup:
			bad(f+".name", "%q is already promql.queries[%d]", qq.Name, j)
		default:
			names[qq.Name] = i
		}
		if qq.Query == "" {
			bad(f+".query", "must not be empty")
		}
		c.checkSchedule(bad, f, qq.Interval, qq.Timeout)
		checkLabels(bad, f+".labels", qq.Labels)
	}

	if c.Enabled && len(s.Targets) == 0 && !p.Enabled && len(q.Queries) == 0 {
		bad("enabled", "the metrics collector is enabled but has nothing to do: list scrape.targets, enable scrape.kubernetes_pods or list promql.queries")
	}
	return errs
}

// checkSchedule checks a per-item interval and timeout (0 inherits the
// defaults) against each other.
func (c Config) checkSchedule(bad func(string, string, ...any), prefix string, interval, timeout time.Duration) {
	if interval < 0 {
		bad(prefix+".interval", "must not be negative (got %s)", interval)
	}
	if timeout < 0 {
		bad(prefix+".timeout", "must not be negative (got %s)", timeout)
	}
	iv, to := c.schedule(interval, timeout)
	if interval != 0 || timeout != 0 {
		if iv > 0 && to > iv {
			bad(prefix+".timeout", "%s is longer than the interval %s", to, iv)
		}
	}
}

// schedule resolves an item's interval and timeout against the defaults. A
// timeout left at 0 with a short interval is cut to the interval.
func (c Config) schedule(interval, timeout time.Duration) (time.Duration, time.Duration) {
	if interval == 0 {
		interval = c.Interval
	}
	if timeout == 0 {
		timeout = min(c.Timeout, interval)
	}
	return interval, timeout
}

func positive(bad func(string, string, ...any), field string, d time.Duration) {
	if d <= 0 {
		bad(field, "must be a positive duration (got %s)", d)
	}
}

func checkFormat(bad func(string, string, ...any), field, f string) {
	switch f {
	case "", FormatAuto, FormatProtobuf, FormatText, FormatOpenMetrics:
	default:
		bad(field, "%q is not one of auto, protobuf, text, openmetrics", f)
	}
}

func checkLabels(bad func(string, string, ...any), field string, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !labelNameRE.MatchString(k) || len(k) > 1 && k[:2] == "__" {
			bad(field, "%q is not a label name (letters, digits and '_', not starting with a digit or '__')", k)
		}
	}
}

func checkFiles(bad func(string, string, ...any), m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, field := range keys {
		path := m[field]
		if path == "" {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			bad(field, "cannot read: %v", err)
			continue
		}
		_ = f.Close()
	}
}

func checkHTTPURL(raw string) error {
	if raw == "" {
		return errors.New("must not be empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: want http or https", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	if u.User != nil {
		return errors.New("credentials in the URL are not allowed: use bearer_token_file or username and password_file")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not between 1 and 65535", p)
		}
	}
	return nil
}
