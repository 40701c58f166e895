package schemas

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// exampleRE finds the experiment examples of docs/experiments.md: a marker
// comment naming the testdata file, then a fenced yaml block.
var exampleRE = regexp.MustCompile("(?s)<!-- experiment-example: (\\S+) -->\n```yaml\n(.*?)```\n")

// TestExperimentDocs checks that every example marked in
// docs/experiments.md is byte for byte its testdata file, so the examples
// people copy are the ones the tests parse, and that the two examples the
// docs promise are there.
func TestExperimentDocs(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "experiments.md"))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, m := range exampleRE.FindAllSubmatch(doc, -1) {
		name, block := string(m[1]), m[2]
		found[name] = true
		t.Run(filepath.Base(name), func(t *testing.T) {
			if _, err := ParseExperiment(block); err != nil {
				t.Fatalf("the example in docs/experiments.md does not parse: %v", err)
			}
			file, err := os.ReadFile(filepath.FromSlash(name))
			if err != nil {
				t.Fatal(err)
			}
			if string(file) != string(block) {
				t.Errorf("docs/experiments.md and %s differ: keep them the same", name)
			}
		})
	}
	for _, want := range []string{
		"testdata/experiments/pod-kill-error-rate.good.yaml",
		"testdata/experiments/partition-latency.good.yaml",
	} {
		if !found[want] {
			t.Errorf("docs/experiments.md has no example marked %q", want)
		}
	}
	// Every yaml block that is a whole experiment file (top-level name,
	// steady_state and method) is a marked example; snippets of one section
	// need no mark.
	top := func(key string) *regexp.Regexp { return regexp.MustCompile(`(?m)^` + key + `:`) }
	whole := 0
	for _, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1) {
		if top("name").Match(b[1]) && top("steady_state").Match(b[1]) && top("method").Match(b[1]) {
			whole++
		}
	}
	if marked := len(exampleRE.FindAll(doc, -1)); whole != marked {
		t.Errorf("%d yaml blocks of docs/experiments.md are whole experiment files, %d are marked examples", whole, marked)
	}
}
