package kibana

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	es "github.com/faultline/faultline/sinks/elasticsearch"
)

// This file defines the saved objects and writes faultline.ndjson from
// them; the other tests read the file itself.

const ndjsonFile = "faultline.ndjson"

// Versions the objects are written in: Kibana 8.8 brought
// typeMigrationVersion, and an import refuses objects of a version newer
// than the Kibana's own, so nothing here is above 8.8.0. Each type's
// version is that of the format its attributes have (lens: formBased
// datasource, 8.6; dashboard: panel references named
// <panelIndex>:panel_<panelIndex>, as 8.7 writes them); Kibana migrates
// older-versioned objects forward on import.
const (
	coreMigrationVersion = "8.8.0"
	panelVersion         = "8.8.0"
)

var typeMigrationVersion = map[string]string{
	"index-pattern": "8.0.0",
	"search":        "8.0.0",
	"lens":          "8.6.0",
	"dashboard":     "8.7.0",
}

type dataViewDef struct{ ID, Dataset, Name string }

// Data views: one per data stream, any namespace.
var dataViewDefs = []dataViewDef{
	{"faultline-audit", es.DatasetAudit, "Kubernetes audit events (Faultline)"},
	{"faultline-findings", es.DatasetFindings, "Faultline findings"},
	{"faultline-experiments", es.DatasetExperiments, "Faultline experiments"},
	{"faultline-kevents", es.DatasetKubeEvents, "Faultline Kubernetes Events"},
}

type searchDef struct {
	ID, Title, Description, DataView, Query string
	Columns                                 []string
}

// Queries shared by a saved search and a dashboard panel.
const (
	qAnonymousForbidden = `user.name: "system:anonymous" or kubernetes.audit.responseStatus.code: (401 or 403)`
	qReports            = `faultline.type: "io.faultline.experiment.report.v1"`
)

// The saved searches. Each query's meaning is pinned by es_test.go.
var searchDefs = []searchDef{
	{
		ID: "faultline-high-critical-findings", Title: "Faultline: high and critical findings", DataView: "faultline-findings",
		Description: "Findings of severity high or critical (event.severity 3 and 4), newest first.",
		Query:       `faultline.severity: ("high" or "critical")`,
		Columns:     []string{"faultline.severity", "rule.name", "user.name", "orchestrator.namespace", "orchestrator.resource.name", "message"},
	},
	{
		ID: "faultline-exec-into-pods", Title: "Faultline: exec into pods", DataView: "faultline-audit",
		Description: "Audit events of kubectl exec (pods/exec), allowed or not; the command is in requestURI. A long-running exec has a ResponseStarted and a ResponseComplete event.",
		Query:       `kubernetes.audit.objectRef.resource: "pods" and kubernetes.audit.objectRef.subresource: "exec"`,
		Columns:     []string{"user.name", "orchestrator.namespace", "orchestrator.resource.name", "kubernetes.audit.requestURI", "kubernetes.audit.stage", "event.outcome", "source.ip"},
	},
	{
		ID: "faultline-secrets-read", Title: "Faultline: secrets read", DataView: "faultline-audit",
		Description: "Secrets read (get, list, watch) with success by anyone but the nodes and the control plane (the secret-read rule's lists.secret_readers).",
		Query: `kubernetes.audit.objectRef.resource: "secrets" and kubernetes.audit.verb: ("get" or "list" or "watch") and event.outcome: "success"` +
			` and not user.name: ("system:apiserver" or "system:kube-controller-manager" or "system:kube-scheduler" or system\:node\:* or system\:serviceaccount\:kube-system\:*)` +
			` and not kubernetes.audit.user.groups: "system:nodes"`,
		Columns: []string{"user.name", "kubernetes.audit.verb", "orchestrator.namespace", "orchestrator.resource.name", "source.ip", "user_agent.original"},
	},
	{
		ID: "faultline-findings-during-experiments", Title: "Faultline: findings during experiments", DataView: "faultline-findings",
		Description: "Findings in a chaos experiment's blast radius or caused by Faultline's injector (labels.experiment_id set; labels.chaos is injector for the latter).",
		Query:       `labels.experiment_id: *`,
		Columns:     []string{"labels.experiment_id", "labels.chaos", "faultline.severity", "rule.name", "user.name", "message"},
	},
	{
		ID: "faultline-experiments-deviated", Title: "Faultline: experiments that deviated", DataView: "faultline-experiments",
		Description: "Deviations established during a run and the reports of runs whose verdict is deviated.",
		Query:       `faultline.experiment_report.verdict: "deviated" or faultline.deviation.verdict: "deviated"`,
		Columns:     []string{"labels.experiment_id", "faultline.type", "faultline.experiment_report.experiment", "faultline.deviation.indicator", "message"},
	},
	{
		ID: "faultline-anonymous-forbidden", Title: "Faultline: anonymous and forbidden requests", DataView: "faultline-audit",
		Description: "Requests by system:anonymous, and requests refused as unauthenticated (401) or forbidden (403, by RBAC or admission). A burst from one identity or address is enumeration.",
		Query:       qAnonymousForbidden,
		Columns:     []string{"user.name", "source.ip", "kubernetes.audit.verb", "kubernetes.audit.requestURI", "kubernetes.audit.responseStatus.code", "user_agent.original"},
	},
	{
		ID: "faultline-experiment-reports", Title: "Faultline: experiment reports", DataView: "faultline-experiments",
		Description: "Every experiment run's report with its verdict (passed, deviated, aborted, failed) and reason.",
		Query:       qReports,
		Columns:     []string{"faultline.experiment_report.experiment", "labels.experiment_id", "faultline.experiment_report.verdict", "faultline.experiment_report.reason", "faultline.experiment_report.started", "faultline.experiment_report.ended"},
	},
}

// lensColumn is one column of a Lens layer.
type lensColumn struct {
	Op, Field, Label string // Op: date_histogram, terms, count
	Size             int
	Missing          bool // terms: a bucket for documents without the field
}

type lensDef struct {
	ID, Title, Description, DataView, Query string
	Series                                  string // bar_stacked, bar_horizontal_stacked
	X, Split                                lensColumn
}

var lensDefs = []lensDef{
	{
		ID: "faultline-lens-findings-by-severity", Title: "Findings over time by severity", DataView: "faultline-findings",
		Series: "bar_stacked",
		X:      lensColumn{Op: "date_histogram", Field: "@timestamp"},
		Split:  lensColumn{Op: "terms", Field: "faultline.severity", Label: "Severity", Size: 5},
	},
	{
		ID: "faultline-lens-findings-by-rule", Title: "Findings over time by rule", DataView: "faultline-findings",
		Series: "bar_stacked",
		X:      lensColumn{Op: "date_histogram", Field: "@timestamp"},
		Split:  lensColumn{Op: "terms", Field: "rule.name", Label: "Rule", Size: 10},
	},
	{
		ID: "faultline-lens-top-identities", Title: "Top identities in findings", DataView: "faultline-findings",
		Description: "The identities (user.name) with the most findings, by severity.",
		Series:      "bar_horizontal_stacked",
		X:           lensColumn{Op: "terms", Field: "user.name", Label: "Identity", Size: 10},
		Split:       lensColumn{Op: "terms", Field: "faultline.severity", Label: "Severity", Size: 5},
	},
	{
		ID: "faultline-lens-anonymous-forbidden", Title: "Anonymous and forbidden requests over time", DataView: "faultline-audit",
		Description: "The query of the saved search of the same name, by identity: a burst is a column.",
		Query:       qAnonymousForbidden,
		Series:      "bar_stacked",
		X:           lensColumn{Op: "date_histogram", Field: "@timestamp"},
		Split:       lensColumn{Op: "terms", Field: "user.name", Label: "Identity", Size: 10, Missing: true},
	},
	{
		ID: "faultline-lens-experiment-verdicts", Title: "Experiment runs by verdict", DataView: "faultline-experiments",
		Description: "Runs of each experiment (their reports) by verdict.",
		Query:       qReports,
		Series:      "bar_horizontal_stacked",
		X:           lensColumn{Op: "terms", Field: "faultline.experiment_report.experiment", Label: "Experiment", Size: 20},
		Split:       lensColumn{Op: "terms", Field: "faultline.experiment_report.verdict", Label: "Verdict", Size: 5},
	},
}

type panelDef struct {
	Index, Type, Ref string
	X, Y, W, H       int
}

const dashboardID = "faultline-overview"

// The dashboard's panels on Kibana's 48-column grid.
var panelDefs = []panelDef{
	{"findings-by-severity", "lens", "faultline-lens-findings-by-severity", 0, 0, 24, 14},
	{"findings-by-rule", "lens", "faultline-lens-findings-by-rule", 24, 0, 24, 14},
	{"top-identities", "lens", "faultline-lens-top-identities", 0, 14, 24, 14},
	{"anonymous-forbidden", "lens", "faultline-lens-anonymous-forbidden", 24, 14, 24, 14},
	{"experiment-verdicts", "lens", "faultline-lens-experiment-verdicts", 0, 28, 18, 16},
	{"experiment-reports", "search", "faultline-experiment-reports", 18, 28, 30, 16},
	{"high-critical-findings", "search", "faultline-high-critical-findings", 0, 44, 48, 18},
}

type obj = map[string]any

// mustJSON encodes v with object keys sorted, and <, > and & as they are
// (queries hold >=).
func mustJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

func savedObject(typ, id string, attrs obj, refs []obj) obj {
	if refs == nil {
		refs = []obj{}
	}
	return obj{
		"type": typ, "id": id, "attributes": attrs, "references": refs,
		"coreMigrationVersion": coreMigrationVersion, "typeMigrationVersion": typeMigrationVersion[typ],
	}
}

func dataViewRef(name, id string) obj { return obj{"name": name, "type": "index-pattern", "id": id} }

func kuery(q string) obj { return obj{"query": q, "language": "kuery"} }

// lensColumnJSON is a column in Lens' formBased format; orderBy is the
// id of the metric column terms are ordered by.
func lensColumnJSON(c lensColumn, orderBy string) obj {
	switch c.Op {
	case "date_histogram":
		return obj{
			"label": c.Field, "dataType": "date", "operationType": "date_histogram", "sourceField": c.Field,
			"isBucketed": true, "scale": "interval",
			"params": obj{"interval": "auto", "includeEmptyRows": true, "dropPartials": false},
		}
	case "terms":
		return obj{
			"label": c.Label, "customLabel": true, "dataType": "string", "operationType": "terms", "sourceField": c.Field,
			"isBucketed": true, "scale": "ordinal",
			"params": obj{
				"size": c.Size, "orderBy": obj{"type": "column", "columnId": orderBy}, "orderDirection": "desc",
				"otherBucket": true, "missingBucket": c.Missing, "parentFormat": obj{"id": "terms"},
				"include": []any{}, "exclude": []any{}, "includeIsRegex": false, "excludeIsRegex": false,
			},
		}
	case "count":
		return obj{
			"label": "Count of records", "dataType": "number", "operationType": "count", "sourceField": "___records___",
			"isBucketed": false, "scale": "ratio", "params": obj{"emptyAsNull": true},
		}
	}
	panic("lens column " + c.Op)
}

func lensObject(d lensDef) obj {
	layer := d.ID + "-layer"
	const x, split, count = "x", "split", "count"
	// Lens computes bucket columns in columnOrder: the breakdown's top
	// values over the whole range first when the x axis is time, else
	// the x axis' top values first.
	order := []string{x, split, count}
	if d.X.Op == "date_histogram" {
		order = []string{split, x, count}
	}
	state := obj{
		"datasourceStates": obj{"formBased": obj{"layers": obj{layer: obj{
			"columns": obj{
				x:     lensColumnJSON(d.X, count),
				split: lensColumnJSON(d.Split, count),
				count: lensColumnJSON(lensColumn{Op: "count"}, ""),
			},
			"columnOrder":       order,
			"incompleteColumns": obj{},
		}}}},
		"visualization": obj{
			"legend":                       obj{"isVisible": true, "position": "right"},
			"valueLabels":                  "hide",
			"fittingFunction":              "None",
			"preferredSeriesType":          d.Series,
			"axisTitlesVisibilitySettings": obj{"x": true, "yLeft": true, "yRight": true},
			"tickLabelsVisibilitySettings": obj{"x": true, "yLeft": true, "yRight": true},
			"gridlinesVisibilitySettings":  obj{"x": true, "yLeft": true, "yRight": true},
			"labelsOrientation":            obj{"x": 0, "yLeft": 0, "yRight": 0},
			"layers": []obj{{
				"layerId": layer, "layerType": "data", "seriesType": d.Series,
				"xAccessor": x, "splitAccessor": split, "accessors": []string{count},
				"position": "top", "showGridlines": false,
			}},
		},
		"query":              kuery(d.Query),
		"filters":            []any{},
		"internalReferences": []any{},
		"adHocDataViews":     obj{},
	}
	return savedObject("lens", d.ID, obj{
		"title": d.Title, "description": d.Description, "visualizationType": "lnsXY", "state": state,
	}, []obj{dataViewRef("indexpattern-datasource-layer-"+layer, d.DataView)})
}

// buildNDJSON returns faultline.ndjson: data views, saved searches, Lens
// visualizations, the dashboard, one object a line.
func buildNDJSON() []byte {
	var objects []obj
	for _, d := range dataViewDefs {
		objects = append(objects, savedObject("index-pattern", d.ID, obj{
			"title": es.DataStream(d.Dataset, "*"), "name": d.Name, "timeFieldName": "@timestamp",
			"fields": "[]", "fieldFormatMap": "{}", "fieldAttrs": "{}", "runtimeFieldMap": "{}",
			"sourceFilters": "[]", "typeMeta": "{}", "allowNoIndex": true,
		}, nil))
	}
	for _, s := range searchDefs {
		objects = append(objects, savedObject("search", s.ID, obj{
			"title": s.Title, "description": s.Description, "columns": s.Columns,
			"sort": [][]string{{"@timestamp", "desc"}}, "grid": obj{}, "hideChart": false,
			"kibanaSavedObjectMeta": obj{"searchSourceJSON": mustJSON(obj{
				"query": kuery(s.Query), "filter": []any{}, "highlightAll": true, "version": true,
				"indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index",
			})},
		}, []obj{dataViewRef("kibanaSavedObjectMeta.searchSourceJSON.index", s.DataView)}))
	}
	for _, l := range lensDefs {
		objects = append(objects, lensObject(l))
	}
	var panels, refs []obj
	for _, p := range panelDefs {
		ref := "panel_" + p.Index
		panels = append(panels, obj{
			"version": panelVersion, "type": p.Type, "panelIndex": p.Index, "panelRefName": ref,
			"gridData":         obj{"x": p.X, "y": p.Y, "w": p.W, "h": p.H, "i": p.Index},
			"embeddableConfig": obj{"enhancements": obj{}},
		})
		refs = append(refs, obj{"name": p.Index + ":" + ref, "type": p.Type, "id": p.Ref})
	}
	objects = append(objects, savedObject("dashboard", dashboardID, obj{
		"title":       "Faultline: findings and experiments",
		"description": "Faultline's security findings, the identities behind them, anonymous and forbidden requests, and chaos experiments with their verdicts.",
		"panelsJSON":  mustJSON(panels),
		"optionsJSON": mustJSON(obj{"useMargins": true, "syncColors": false, "syncCursor": true, "syncTooltips": false, "hidePanelTitles": false}),
		"timeRestore": true, "timeFrom": "now-7d", "timeTo": "now",
		"refreshInterval": obj{"pause": true, "value": 60000},
		"version":         1,
		"kibanaSavedObjectMeta": obj{"searchSourceJSON": mustJSON(obj{
			"query": kuery(""), "filter": []any{},
		})},
	}, refs))

	var b bytes.Buffer
	for _, o := range objects {
		b.WriteString(mustJSON(o))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// faultline.ndjson is what the definitions above make.
//
//	FAULTLINE_UPDATE_DOCS=1 go test ./deploy/kibana -run TestNDJSONCurrent
//
// rewrites it.
func TestNDJSONCurrent(t *testing.T) {
	want := buildNDJSON()
	if os.Getenv("FAULTLINE_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(ndjsonFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(ndjsonFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run FAULTLINE_UPDATE_DOCS=1 go test ./deploy/kibana -run TestNDJSONCurrent", ndjsonFile)
	}
}
