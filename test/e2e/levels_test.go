package e2e

import (
	"context"
	"flag"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	flagRates = flag.String("e2e.rates", "1000,5000,20000,0", "load levels of TestLoadLevels, events per second (0: as fast as the webhook answers)")
	flagLevel = flag.Duration("e2e.level-duration", 60*time.Second, "how long each load level of TestLoadLevels runs")
)

// TestLoadLevels drives the webhook at each rate of -e2e.rates, one after
// the other on one pipeline, and reports what each role did: throughput,
// latency to a finding on the bus and to a searchable document, CPU and
// memory. It is part of the long suite only (-e2e.long).
func TestLoadLevels(t *testing.T) {
	if !*flagLong {
		t.Skip("load levels run with -e2e.long (docs/e2e.md)")
	}
	var rates []int
	for _, r := range strings.Split(*flagRates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil {
			t.Fatalf("-e2e.rates: %v", err)
		}
		rates = append(rates, n)
	}
	p := startPipeline(t, pipelineOptions{})
	watch := p.watchFindings(t)
	for _, rate := range rates {
		c := loadCorpus(t)
		d := newDriver(p, c, rate)
		cpu := map[string]time.Duration{}
		for _, pr := range p.roles() {
			cpu[pr.name] = pr.cpuTotal()
		}
		ctx, cancel := context.WithTimeout(context.Background(), *flagLevel)
		start := time.Now()
		probe := p.probeES(ctx, d)
		rss := p.sampleRSS(ctx)
		d.run(ctx, time.Minute)
		cancel()
		elapsed := time.Since(start)
		accepted := d.acceptedIDs()
		drain := waitFor(t, 10*time.Minute, "level indexed", func() (bool, error) {
			counts, err := p.auditCounts(context.Background(), c.run)
			return err == nil && len(counts) >= len(accepted), err
		})
		lat := watch.latencies(accepted)
		es := probe.samples()
		name := strconv.Itoa(rate) + "/s"
		if rate == 0 {
			name = "max"
		}
		t.Logf("level %s: %d events accepted in %.0fs = %.0f/s; %d retried posts (%s); all indexed %.1fs after the load",
			name, len(accepted), elapsed.Seconds(), float64(len(accepted))/elapsed.Seconds(), d.retries.Load(), d.failureSummary(), drain.Seconds())
		t.Logf("level %s: webhook → finding on the bus p50 %v p99 %v (%d); → searchable p50 %v p99 %v (%d probes)", name,
			percentile(lat, .5).Round(time.Millisecond), percentile(lat, .99).Round(time.Millisecond), len(lat),
			percentile(es, .5).Round(time.Millisecond), percentile(es, .99).Round(time.Millisecond), len(es))
		for _, pr := range p.roles() {
			t.Logf("level %s: %-10s CPU %3.0f%% of one core, peak RSS %d MiB", name, pr.name,
				100*(pr.cpuTotal()-cpu[pr.name]).Seconds()/elapsed.Seconds(), rss.get(pr.name)>>20)
		}
	}
}
