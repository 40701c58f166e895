package roles

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/internal/app"
	"github.com/faultline/faultline/internal/config"
)

// TestEnabledAnalyzers builds every analyzer of the default configuration
// on an embedded bus, and refuses a bad rule directory at start.
func TestEnabledAnalyzers(t *testing.T) {
	cfg := config.Default()
	cfg.Bus.Embedded.DataDir = t.TempDir()
	cfg.HTTP.Listen = ""
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs strings.Builder
	rt, err := app.Start(ctx, cfg, "test", &logs)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Abort()
	comps, err := EnabledAnalyzers(rt, "test")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range comps {
		names = append(names, c.Name())
	}
	if got := strings.Join(names, ","); got != "analyzer/rules,analyzer/baseline,analyzer/steadystate" {
		t.Errorf("enabled analyzers %s", got)
	}

	dir := t.TempDir()
	rt.Config.Analyzers.Rules.Dirs = []string{dir}
	if err := writeFile(dir+"/bad.yaml", "rules:\n- {id: bad, name: b, severity: low, condition: 'verb == '}\n"); err != nil {
		t.Fatal(err)
	}
	_, err = NewAnalyzer(rt, Analyzers()[0])
	if err == nil || !strings.Contains(err.Error(), "bad.yaml: rule bad: condition: CEL") {
		t.Errorf("bad rule: %v", err)
	}
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o644) }
