package kibana

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	es "github.com/faultline/faultline/sinks/elasticsearch"
)

// These tests read faultline.ndjson as Kibana's import would: one saved
// object a line, each checked for the shape its type needs and for
// references that resolve within the file. There is no Kibana here; the
// formats are those of Kibana 8.8 and later (docs/kibana.md).

// maxVersion is the newest Kibana version any object may claim: an import
// into an older Kibana refuses it.
const maxVersion = "8.8.0"

type savedRef struct{ Name, Type, ID string }

type savedObj struct {
	Line                 int
	Type, ID             string
	Attributes           map[string]any
	References           []savedRef
	CoreMigrationVersion string
	TypeMigrationVersion string
}

// ref returns the object's reference of that name.
func (o savedObj) ref(name string) (savedRef, bool) {
	for _, r := range o.References {
		if r.Name == name {
			return r, true
		}
	}
	return savedRef{}, false
}

// searchSource decodes a search's or dashboard's searchSourceJSON.
func (o savedObj) searchSource() (map[string]any, error) {
	meta, _ := o.Attributes["kibanaSavedObjectMeta"].(map[string]any)
	s, ok := meta["searchSourceJSON"].(string)
	if !ok {
		return nil, fmt.Errorf("%s %s: no kibanaSavedObjectMeta.searchSourceJSON", o.Type, o.ID)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("%s %s: searchSourceJSON: %w", o.Type, o.ID, err)
	}
	return v, nil
}

// query returns the KQL of a saved search or a Lens visualization.
func (o savedObj) query() (string, bool) {
	var q map[string]any
	switch o.Type {
	case "search":
		src, err := o.searchSource()
		if err != nil {
			return "", false
		}
		q, _ = src["query"].(map[string]any)
	case "lens":
		state, _ := o.Attributes["state"].(map[string]any)
		q, _ = state["query"].(map[string]any)
	}
	if q == nil || q["language"] != "kuery" {
		return "", false
	}
	s, ok := q["query"].(string)
	return s, ok
}

// dataView returns the id of the data view a search or Lens layer uses.
func (o savedObj) dataView() string {
	switch o.Type {
	case "search":
		if r, ok := o.ref("kibanaSavedObjectMeta.searchSourceJSON.index"); ok {
			return r.ID
		}
	case "lens":
		for _, r := range o.References {
			if strings.HasPrefix(r.Name, "indexpattern-datasource-layer-") {
				return r.ID
			}
		}
	}
	return ""
}

func loadObjects(t testing.TB) []savedObj {
	t.Helper()
	data, err := os.ReadFile(ndjsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []savedObj
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 4<<20)
	for line := 1; sc.Scan(); line++ {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatalf("%s:%d: %v", ndjsonFile, line, err)
		}
		o := savedObj{Line: line}
		for name, dst := range map[string]any{
			"type": &o.Type, "id": &o.ID, "attributes": &o.Attributes, "references": &o.References,
			"coreMigrationVersion": &o.CoreMigrationVersion, "typeMigrationVersion": &o.TypeMigrationVersion,
		} {
			v, ok := raw[name]
			if !ok {
				t.Fatalf("%s:%d: no %s", ndjsonFile, line, name)
			}
			if err := json.Unmarshal(v, dst); err != nil {
				t.Fatalf("%s:%d: %s: %v", ndjsonFile, line, name, err)
			}
		}
		out = append(out, o)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func objectsOfType(objs []savedObj, typ string) []savedObj {
	var out []savedObj
	for _, o := range objs {
		if o.Type == typ {
			out = append(out, o)
		}
	}
	return out
}

func findObject(objs []savedObj, typ, id string) (savedObj, bool) {
	for _, o := range objs {
		if o.Type == typ && o.ID == id {
			return o, true
		}
	}
	return savedObj{}, false
}

// semver parses x.y.z.
func semver(v string) ([3]int, bool) {
	var out [3]int
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

// notAfter tells whether version v is a version no newer than max.
func notAfter(v, max string) bool {
	a, ok1 := semver(v)
	b, ok2 := semver(max)
	return ok1 && ok2 && slices.Compare(a[:], b[:]) <= 0
}

// Every line is a saved object with a type Faultline uses, an id unique
// for its type, attributes, migration versions an 8.8 Kibana accepts,
// and references that resolve to objects in the file.
func TestNDJSONObjects(t *testing.T) {
	objs := loadObjects(t)
	seen := map[string]bool{}
	for _, o := range objs {
		where := fmt.Sprintf("%s:%d (%s %s)", ndjsonFile, o.Line, o.Type, o.ID)
		if !slices.Contains([]string{"index-pattern", "search", "lens", "dashboard"}, o.Type) {
			t.Errorf("%s: unexpected type", where)
		}
		if o.ID == "" || len(o.Attributes) == 0 {
			t.Errorf("%s: no id or attributes", where)
		}
		if key := o.Type + "/" + o.ID; seen[key] {
			t.Errorf("%s: duplicate", where)
		} else {
			seen[key] = true
		}
		if title, _ := o.Attributes["title"].(string); title == "" {
			t.Errorf("%s: no title", where)
		}
		if !notAfter(o.CoreMigrationVersion, maxVersion) || !notAfter(o.TypeMigrationVersion, maxVersion) {
			t.Errorf("%s: migration versions %q/%q: want x.y.z no newer than %s", where, o.CoreMigrationVersion, o.TypeMigrationVersion, maxVersion)
		}
		names := map[string]bool{}
		for _, r := range o.References {
			if r.Name == "" || names[r.Name] {
				t.Errorf("%s: reference name %q empty or repeated", where, r.Name)
			}
			names[r.Name] = true
			if _, ok := findObject(objs, r.Type, r.ID); !ok {
				t.Errorf("%s: reference %s to %s %s, which is not in the file", where, r.Name, r.Type, r.ID)
			}
		}
	}
	if len(objs) == 0 {
		t.Fatal("no objects")
	}
}

// One data view per data stream the indexer writes, matching it in every
// namespace and no other data set's stream, with @timestamp as its time.
func TestDataViews(t *testing.T) {
	views := objectsOfType(loadObjects(t), "index-pattern")
	for _, ds := range es.Datasets() {
		var matching []string
		for _, v := range views {
			title, _ := v.Attributes["title"].(string)
			ok := true
			for _, ns := range []string{es.DefaultConfig().Namespace, "prod_eu_1"} {
				m, err := path.Match(title, es.DataStream(ds, ns))
				if err != nil {
					t.Fatalf("data view %s: title %q: %v", v.ID, title, err)
				}
				ok = ok && m
			}
			if ok {
				matching = append(matching, v.ID)
			}
		}
		if len(matching) != 1 {
			t.Errorf("data set %s: data views %v match its data stream, want exactly one", ds, matching)
		}
	}
	if len(views) != len(es.Datasets()) {
		t.Errorf("%d data views for %d data streams", len(views), len(es.Datasets()))
	}
	for _, v := range views {
		if v.Attributes["timeFieldName"] != "@timestamp" {
			t.Errorf("data view %s: timeFieldName %v", v.ID, v.Attributes["timeFieldName"])
		}
		if name, _ := v.Attributes["name"].(string); name == "" {
			t.Errorf("data view %s: no name", v.ID)
		}
	}
}

// Each saved search has a KQL query of the subset the tests run, a data
// view, columns and a sort.
func TestSavedSearchesWellFormed(t *testing.T) {
	objs := loadObjects(t)
	searches := objectsOfType(objs, "search")
	for _, id := range requiredSearches {
		if _, ok := findObject(objs, "search", id); !ok {
			t.Errorf("saved search %s is missing", id)
		}
	}
	for _, s := range searches {
		src, err := s.searchSource()
		if err != nil {
			t.Error(err)
			continue
		}
		q, ok := s.query()
		if !ok {
			t.Errorf("search %s: no KQL query (language kuery)", s.ID)
		} else if _, err := parseKQL(q); err != nil {
			t.Errorf("search %s: %q: %v", s.ID, q, err)
		}
		refName, _ := src["indexRefName"].(string)
		if r, ok := s.ref(refName); !ok || r.Type != "index-pattern" {
			t.Errorf("search %s: indexRefName %q names no data view reference", s.ID, refName)
		}
		if f, ok := src["filter"].([]any); !ok || len(f) != 0 {
			t.Errorf("search %s: filter %v: the tests run the query only, so filters must be empty", s.ID, src["filter"])
		}
		cols, _ := s.Attributes["columns"].([]any)
		if len(cols) == 0 {
			t.Errorf("search %s: no columns", s.ID)
		}
		for _, c := range cols {
			if c, _ := c.(string); c == "" {
				t.Errorf("search %s: column %v", s.ID, c)
			}
		}
		if got := fmt.Sprint(s.Attributes["sort"]); got != "[[@timestamp desc]]" {
			t.Errorf("search %s: sort %s", s.ID, got)
		}
	}
}

// lensLayers returns a Lens object's formBased layers: layer id →
// columns (id → column) and column order.
func lensLayers(o savedObj) (map[string]map[string]map[string]any, map[string][]string, error) {
	state, _ := o.Attributes["state"].(map[string]any)
	ds, _ := state["datasourceStates"].(map[string]any)
	if _, legacy := ds["indexpattern"]; legacy {
		return nil, nil, fmt.Errorf("lens %s: indexpattern datasource (before 8.6), want formBased", o.ID)
	}
	fb, _ := ds["formBased"].(map[string]any)
	layers, _ := fb["layers"].(map[string]any)
	if len(layers) == 0 {
		return nil, nil, fmt.Errorf("lens %s: no formBased layers", o.ID)
	}
	cols := map[string]map[string]map[string]any{}
	orders := map[string][]string{}
	for id, l := range layers {
		layer, _ := l.(map[string]any)
		cs, _ := layer["columns"].(map[string]any)
		cols[id] = map[string]map[string]any{}
		for cid, c := range cs {
			m, _ := c.(map[string]any)
			cols[id][cid] = m
		}
		for _, c := range layer["columnOrder"].([]any) {
			s, _ := c.(string)
			orders[id] = append(orders[id], s)
		}
	}
	return cols, orders, nil
}

// Each Lens visualization is an XY chart whose layers have a data view,
// whose columns are complete and ordered, and whose accessors name them.
func TestLensWellFormed(t *testing.T) {
	for _, o := range objectsOfType(loadObjects(t), "lens") {
		if o.Attributes["visualizationType"] != "lnsXY" {
			t.Errorf("lens %s: visualizationType %v", o.ID, o.Attributes["visualizationType"])
			continue
		}
		if q, ok := o.query(); !ok {
			t.Errorf("lens %s: no KQL query", o.ID)
		} else if _, err := parseKQL(q); err != nil {
			t.Errorf("lens %s: %q: %v", o.ID, q, err)
		}
		cols, orders, err := lensLayers(o)
		if err != nil {
			t.Error(err)
			continue
		}
		for layer, cs := range cols {
			if r, ok := o.ref("indexpattern-datasource-layer-" + layer); !ok || r.Type != "index-pattern" {
				t.Errorf("lens %s: layer %s has no data view reference", o.ID, layer)
			}
			keys := make([]string, 0, len(cs))
			for k := range cs {
				keys = append(keys, k)
			}
			order := slices.Clone(orders[layer])
			slices.Sort(keys)
			slices.Sort(order)
			if !slices.Equal(keys, order) {
				t.Errorf("lens %s: layer %s: columnOrder %v, columns %v", o.ID, layer, orders[layer], keys)
			}
			for cid, c := range cs {
				op, _ := c["operationType"].(string)
				bucketed, _ := c["isBucketed"].(bool)
				field, _ := c["sourceField"].(string)
				wantBucketed, known := map[string]bool{"date_histogram": true, "terms": true, "count": false}[op]
				if !known || bucketed != wantBucketed || field == "" {
					t.Errorf("lens %s: column %s: operation %q, isBucketed %v, sourceField %q", o.ID, cid, op, bucketed, field)
				}
				if op == "terms" {
					params, _ := c["params"].(map[string]any)
					by, _ := params["orderBy"].(map[string]any)
					if id, _ := by["columnId"].(string); cs[id] == nil {
						t.Errorf("lens %s: column %s is ordered by column %q, which is not in the layer", o.ID, cid, id)
					}
				}
			}
		}
		state, _ := o.Attributes["state"].(map[string]any)
		vis, _ := state["visualization"].(map[string]any)
		vlayers, _ := vis["layers"].([]any)
		if len(vlayers) != len(cols) {
			t.Errorf("lens %s: %d visualization layers for %d data layers", o.ID, len(vlayers), len(cols))
		}
		for _, vl := range vlayers {
			l, _ := vl.(map[string]any)
			id, _ := l["layerId"].(string)
			cs := cols[id]
			if cs == nil {
				t.Errorf("lens %s: visualization layer %q has no data layer", o.ID, id)
				continue
			}
			for _, name := range []string{"xAccessor", "splitAccessor"} {
				if a, _ := l[name].(string); cs[a] == nil || cs[a]["isBucketed"] != true {
					t.Errorf("lens %s: %s %q is not a bucket column of layer %s", o.ID, name, a, id)
				}
			}
			acc, _ := l["accessors"].([]any)
			if len(acc) == 0 {
				t.Errorf("lens %s: layer %s has no accessors", o.ID, id)
			}
			for _, a := range acc {
				if a, _ := a.(string); cs[a] == nil || cs[a]["isBucketed"] != false {
					t.Errorf("lens %s: accessor %q is not a metric column of layer %s", o.ID, a, id)
				}
			}
		}
	}
}

// The dashboard's panels reference saved objects in the file the way
// Kibana's dashboard references them (<panelIndex>:<panelRefName>), sit
// on the 48-column grid without overlapping, and show every Lens
// visualization.
func TestDashboardWellFormed(t *testing.T) {
	objs := loadObjects(t)
	dashboards := objectsOfType(objs, "dashboard")
	if len(dashboards) != 1 {
		t.Fatalf("%d dashboards", len(dashboards))
	}
	d := dashboards[0]
	src, err := d.searchSource()
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := src["query"].(map[string]any); q["language"] != "kuery" {
		t.Errorf("dashboard query %v", src["query"])
	}
	var opts map[string]any
	if err := json.Unmarshal([]byte(d.Attributes["optionsJSON"].(string)), &opts); err != nil {
		t.Errorf("optionsJSON: %v", err)
	}
	var panels []struct {
		Version, Type, PanelIndex, PanelRefName string
		GridData                                struct {
			X, Y, W, H int
			I          string
		}
	}
	if err := json.Unmarshal([]byte(d.Attributes["panelsJSON"].(string)), &panels); err != nil {
		t.Fatalf("panelsJSON: %v", err)
	}
	if len(panels) == 0 {
		t.Fatal("no panels")
	}
	shown := map[string]bool{}
	used := map[string]bool{}
	for i, p := range panels {
		if p.PanelIndex == "" || p.GridData.I != p.PanelIndex || p.Type == "" || p.PanelRefName == "" {
			t.Errorf("panel %d: %+v", i, p)
			continue
		}
		if !notAfter(p.Version, maxVersion) {
			t.Errorf("panel %s: version %q", p.PanelIndex, p.Version)
		}
		// Kibana gives a panel the references whose names start with
		// "<panelIndex>:" and looks its panelRefName up among them.
		prefix := p.PanelIndex + ":"
		var mine []savedRef
		for _, r := range d.References {
			if strings.HasPrefix(r.Name, prefix) {
				mine = append(mine, r)
			}
		}
		if len(mine) != 1 || mine[0].Name != prefix+p.PanelRefName || mine[0].Type != p.Type {
			t.Errorf("panel %s: references %v, want one named %s%s of type %s", p.PanelIndex, mine, prefix, p.PanelRefName, p.Type)
			continue
		}
		used[mine[0].Name] = true
		shown[p.Type+"/"+mine[0].ID] = true
		g := p.GridData
		if g.X < 0 || g.Y < 0 || g.W <= 0 || g.H <= 0 || g.X+g.W > 48 {
			t.Errorf("panel %s: grid %+v off the 48 columns", p.PanelIndex, g)
		}
		for _, q := range panels[:i] {
			h := q.GridData
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panels %s and %s overlap", p.PanelIndex, q.PanelIndex)
			}
		}
	}
	for _, r := range d.References {
		if !used[r.Name] {
			t.Errorf("dashboard reference %s is no panel's", r.Name)
		}
	}
	for _, l := range objectsOfType(objs, "lens") {
		if !shown["lens/"+l.ID] {
			t.Errorf("lens %s is on no panel", l.ID)
		}
	}
}

// requiredSearches are the saved searches issue 8 asks for: high and
// critical findings; exec into pods; secrets read; findings during
// experiments; experiments that deviated; anonymous and forbidden bursts.
var requiredSearches = []string{
	"faultline-high-critical-findings",
	"faultline-exec-into-pods",
	"faultline-secrets-read",
	"faultline-findings-during-experiments",
	"faultline-experiments-deviated",
	"faultline-anonymous-forbidden",
}
