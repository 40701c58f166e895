package roles

import (
	"fmt"

	"github.com/faultline/faultline/internal/app"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/sinks/elasticsearch"
	"github.com/faultline/faultline/sinks/fluent"
)

// SinkPlugin describes one registered sink: where results go.
type SinkPlugin struct {
	// Name is the sink's name; its component is sink/<Name>.
	Name    string
	Enabled func(c *config.Config) bool
	New     func(rt *app.Runtime) (app.Component, error)
}

// Sinks lists every sink.
func Sinks() []SinkPlugin {
	return []SinkPlugin{
		{
			Name:    elasticsearch.Name,
			Enabled: func(c *config.Config) bool { return c.Sinks.Elasticsearch.Enabled() },
			New: func(rt *app.Runtime) (app.Component, error) {
				return NewElasticsearchIndexer(rt)
			},
		},
		{
			Name:    fluent.Name,
			Enabled: func(c *config.Config) bool { return c.Sinks.Fluent.Enabled() },
			New: func(rt *app.Runtime) (app.Component, error) {
				return NewFluentForwarder(rt)
			},
		},
	}
}

// NewElasticsearchIndexer builds the indexer role: durable consumers
// index-<cluster>-<stream>, shared by every replica, feeding the
// Elasticsearch sink. Its readiness check passes once the templates are
// installed.
func NewElasticsearchIndexer(rt *app.Runtime) (*elasticsearch.Indexer, error) {
	cfg := rt.Config
	ix, err := elasticsearch.NewIndexer(cfg.Sinks.Elasticsearch, elasticsearch.Deps{
		Bus:           rt.Bus,
		Cluster:       cfg.Cluster,
		Log:           rt.Log.With("component", "sink/"+elasticsearch.Name),
		Metrics:       rt.Registry,
		MaxAckPending: cfg.Bus.Consumer.MaxAckPending,
	})
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", elasticsearch.Name, err)
	}
	if rt.Ops != nil {
		rt.Ops.AddCheck("elasticsearch", ix.Ready)
	}
	return ix, nil
}

// NewFluentForwarder builds the forward role: durable consumers
// fluent-<cluster>-<stream>, shared by every replica, feeding the Fluentd
// forward sink. It has no readiness check: a receiver outage is ridden out
// on the bus and shows in the faultline_fluent_* metrics, and must not make
// a whole `faultline run` unready.
func NewFluentForwarder(rt *app.Runtime) (*fluent.Forwarder, error) {
	cfg := rt.Config
	f, err := fluent.NewForwarder(cfg.Sinks.Fluent, fluent.Deps{
		Bus:           rt.Bus,
		Cluster:       cfg.Cluster,
		Log:           rt.Log.With("component", "sink/"+fluent.Name),
		Metrics:       rt.Registry,
		MaxAckPending: cfg.Bus.Consumer.MaxAckPending,
	})
	if err != nil {
		return nil, fmt.Errorf("sink %s: %w", fluent.Name, err)
	}
	return f, nil
}

// EnabledSinks builds every enabled sink.
func EnabledSinks(rt *app.Runtime) ([]app.Component, error) {
	var out []app.Component
	for _, p := range Sinks() {
		if !p.Enabled(&rt.Config) {
			continue
		}
		c, err := p.New(rt)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
