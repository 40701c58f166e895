package elasticsearch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Init checks that the cluster answers and runs a supported version
// (8.x or 9.x), then installs the templates (idempotently: only a missing,
// changed or older template is written) and creates the data streams it
// will write to where the cluster has the data stream API. It waits up to
// start_timeout for a cluster that does not answer yet; a refused
// credential or an unsupported version fails at once.
func (s *Sink) Init(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	v, err := s.waitVersion(ctx)
	if err != nil {
		return err
	}
	major, minor, err := supportedVersion(v)
	if err != nil {
		return fmt.Errorf("elasticsearch at %s: %w", s.where(), err)
	}
	s.version = v
	s.features = features{
		flattened:                true,
		ignoreDynamicBeyondLimit: major > 8 || minor >= 13,
	}
	if err := s.installTemplates(ctx); err != nil {
		return err
	}
	s.createDataStreams(ctx)
	s.ready.Store(true)
	s.log.Info("elasticsearch: ready", "version", v, "urls", s.cfg.URLs, "namespace", s.cfg.Namespace,
		"data_streams", s.dataStreams(), "flattened", s.features.flattened)
	return nil
}

func (s *Sink) where() string { return strings.Join(s.cfg.URLs, ",") }

// waitVersion asks the cluster's version until it answers or ctx ends.
func (s *Sink) waitVersion(ctx context.Context) (string, error) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	logged := false
	for {
		v, err := s.clusterVersion(ctx)
		if err == nil {
			return v, nil
		}
		switch st := statusOf(err); st {
		case http.StatusUnauthorized:
			return "", fmt.Errorf("elasticsearch at %s refused the credentials (check username and password_file, or api_key_file): %w", s.where(), err)
		case http.StatusForbidden:
			return "", fmt.Errorf("elasticsearch at %s: the indexer's user lacks the monitor cluster privilege (docs/elasticsearch.md lists the privileges): %w", s.where(), err)
		}
		if !logged {
			s.log.Warn("elasticsearch: not answering yet; waiting", "urls", s.cfg.URLs, "timeout", s.cfg.StartTimeout, "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("elasticsearch at %s is unreachable (waited %s): %w", s.where(), s.cfg.StartTimeout, err)
		case <-tick.C:
		}
	}
}

// clusterVersion reads the version from GET /, or, from a cluster without
// it (the integration-test distribution has no rest-root module), the
// lowest version of its nodes.
func (s *Sink) clusterVersion(ctx context.Context) (string, error) {
	var info struct {
		Version struct {
			Number string `json:"number"`
		} `json:"version"`
	}
	err := request(ctx, s.es, http.MethodGet, "/", nil, &info)
	if err == nil && info.Version.Number != "" {
		return info.Version.Number, nil
	}
	if st := statusOf(err); err != nil && st != http.StatusMethodNotAllowed && st != http.StatusNotFound && st != http.StatusBadRequest {
		return "", err
	}
	var nodes struct {
		Nodes map[string]struct {
			Version string `json:"version"`
		} `json:"nodes"`
	}
	if err := request(ctx, s.es, http.MethodGet, "/_nodes?filter_path=nodes.*.version", nil, &nodes); err != nil {
		return "", err
	}
	lowest := ""
	for _, n := range nodes.Nodes {
		if lowest == "" || versionLess(n.Version, lowest) {
			lowest = n.Version
		}
	}
	if lowest == "" {
		return "", errors.New("no node reported its version")
	}
	return lowest, nil
}

// supportedVersion checks a cluster's version: Faultline supports 8.x
// and 9.x.
func supportedVersion(v string) (major, minor int, err error) {
	major, minor, ok := parseVersion(v)
	switch {
	case !ok:
		return 0, 0, fmt.Errorf("cannot read its version %q", v)
	case major != 8 && major != 9:
		return 0, 0, fmt.Errorf("it runs Elasticsearch %s, which Faultline does not support: it needs 8.x or 9.x", v)
	}
	return major, minor, nil
}

// parseVersion reads major and minor of "8.19.21" or "9.0.0-SNAPSHOT".
func parseVersion(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	var err1, err2 error
	major, err1 = strconv.Atoi(parts[0])
	minor, err2 = strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return major, minor, err1 == nil && err2 == nil
}

func versionLess(a, b string) bool {
	am, an, _ := parseVersion(a)
	bm, bn, _ := parseVersion(b)
	if am != bm {
		return am < bm
	}
	return an < bn
}

// dataSets are the data sets of the configured document kinds.
func (s *Sink) dataSets() []string {
	var out []string
	for _, k := range s.cfg.Documents {
		if ds := DatasetOf(k); !slices.Contains(out, ds) {
			out = append(out, ds)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Sink) dataStreams() []string {
	var out []string
	for _, ds := range s.dataSets() {
		out = append(out, DataStream(ds, s.cfg.Namespace))
	}
	return out
}

// installTemplates puts the component templates, then the index templates
// of the configured data sets. A cluster without the flattened type gets
// templates that keep those fields in _source only, and says so.
func (s *Sink) installTemplates(ctx context.Context) error {
	for _, t := range componentTemplates(s.features) {
		_, err := s.ensureTemplate(ctx, "_component_template", t)
		if err != nil && s.features.flattened && mentionsFlattened(err) {
			s.features.flattened = false
			s.log.Warn("elasticsearch: this cluster has no flattened field type; kubernetes.audit.user.extra, kubernetes.event.metadata.labels/annotations and faultline.experiment_report.indicators are kept in _source but not searchable", "version", s.version)
			return s.installTemplates(ctx)
		}
		if err != nil {
			return err
		}
	}
	for _, ds := range s.dataSets() {
		t := indexTemplate(s.cfg, s.features, ds)
		replaced, err := s.ensureTemplate(ctx, "_index_template", t)
		if err != nil {
			return err
		}
		if replaced {
			s.rollover(ctx, DataStream(ds, s.cfg.Namespace))
		}
	}
	return nil
}

func mentionsFlattened(err error) bool {
	var e *esError
	return errors.As(err, &e) && e.Status == http.StatusBadRequest &&
		strings.Contains(e.Reason+" "+e.CauseReason, "[flattened]")
}

// ensureTemplate writes t unless the installed template has the same hash
// or a higher version. replaced says an older or different template was
// overwritten (so existing backing indices have the old mappings).
func (s *Sink) ensureTemplate(ctx context.Context, api string, t componentTemplate) (replaced bool, err error) {
	var got struct {
		Component []struct {
			Template installed `json:"component_template"`
		} `json:"component_templates"`
		Index []struct {
			Template installed `json:"index_template"`
		} `json:"index_templates"`
	}
	err = request(ctx, s.es, http.MethodGet, "/"+api+"/"+t.Name, nil, &got)
	if err != nil && statusOf(err) != http.StatusNotFound {
		return false, fmt.Errorf("elasticsearch: read template %s: %w", t.Name, err)
	}
	var cur *installed
	switch {
	case len(got.Component) > 0:
		cur = &got.Component[0].Template
	case len(got.Index) > 0:
		cur = &got.Index[0].Template
	}
	want := t.Body["_meta"].(obj)["hash"].(string)
	if cur != nil {
		switch {
		case cur.Meta.Hash == want:
			s.log.Debug("elasticsearch: template up to date", "template", t.Name, "version", cur.Version)
			return false, nil
		case cur.Version > TemplateVersion:
			s.log.Warn("elasticsearch: template installed by a newer Faultline; left as it is", "template", t.Name,
				"installed_version", cur.Version, "version", TemplateVersion)
			return false, nil
		}
	}
	if err := request(ctx, s.es, http.MethodPut, "/"+api+"/"+t.Name, t.Body, nil); err != nil {
		return false, fmt.Errorf("elasticsearch: install template %s: %w", t.Name, err)
	}
	if cur != nil {
		s.log.Info("elasticsearch: template updated", "template", t.Name, "from_version", cur.Version, "version", TemplateVersion)
	} else {
		s.log.Info("elasticsearch: template installed", "template", t.Name, "version", TemplateVersion)
	}
	return cur != nil, nil
}

type installed struct {
	Version int `json:"version"`
	Meta    struct {
		Hash string `json:"hash"`
	} `json:"_meta"`
}

// rollover makes a data stream's next document go to a new backing index,
// which has the new template's mappings. (A lazy rollover would save an
// empty index, but clusters without the data-streams module mark it and
// never do it.)
func (s *Sink) rollover(ctx context.Context, name string) {
	err := request(ctx, s.es, http.MethodPost, "/"+name+"/_rollover", nil, nil)
	switch st := statusOf(err); {
	case err == nil:
		s.log.Info("elasticsearch: data stream rolled over to the new mappings", "data_stream", name)
	case st == http.StatusNotFound || st == http.StatusBadRequest:
		// No such data stream yet: its first index will have the new mappings.
	default:
		s.log.Warn("elasticsearch: rollover after a template change failed; new mappings apply from the next rollover", "data_stream", name, "err", err)
	}
}

// createDataStreams creates the data streams up front, so that Kibana sees
// them before their first document. Indexing creates them anyway: every
// failure here is only logged.
func (s *Sink) createDataStreams(ctx context.Context) {
	for _, name := range s.dataStreams() {
		err := request(ctx, s.es, http.MethodPut, "/_data_stream/"+name, nil, nil)
		var e *esError
		switch {
		case err == nil:
			s.log.Info("elasticsearch: data stream created", "data_stream", name)
		case errors.As(err, &e) && e.Type == "resource_already_exists_exception":
		case e != nil && (e.Status == http.StatusMethodNotAllowed || e.Status == http.StatusNotFound):
			s.log.Debug("elasticsearch: no data stream API; the data stream is created by its first document", "data_stream", name)
		case e != nil && e.Status == http.StatusForbidden:
			// The indexer's least privileges (auto_configure, not
			// create_index) let indexing create it.
			s.log.Info("elasticsearch: not allowed to create the data stream up front; its first document creates it", "data_stream", name)
		default:
			s.log.Warn("elasticsearch: create data stream failed; its first document creates it", "data_stream", name, "err", err)
		}
	}
}
