package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addSeeds adds every file matching the globs under testdata/ to the corpus.
func addSeeds(f *testing.F, globs ...string) {
	for _, g := range globs {
		files, err := filepath.Glob(filepath.Join("testdata", g))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// FuzzDecodeEnvelope checks that DecodeEnvelope never panics, that whatever
// it accepts encoding/json accepts with the same result, and that Encode and
// DecodeEnvelope round-trip it.
func FuzzDecodeEnvelope(f *testing.F) {
	addSeeds(f, "envelope/*.json")
	f.Add([]byte(`{"specversion":"1.0","id":"a","source":"/s","type":"t","time":"2025-01-01T00:00:00Z","datacontenttype":"application/json","cluster":"c","data":[{"\u00e9\n":-1.5e+3},true,null,"\ud800"]}`))
	f.Add([]byte(`{"specversion":"1.0","id":"a","source":"/s","type":"t","subject":"\u2028<&>\"","time":"2025-01-01T00:00:00.5+14:00","datacontenttype":"application/json; charset=utf-8","cluster":"c","x1":{},"data":0}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := DecodeEnvelope(in)
		if err != nil {
			var ae *AttributeError
			if !errors.Is(err, ErrSyntax) && !errors.As(err, &ae) {
				t.Fatalf("error of an unexpected kind: %v", err)
			}
			if e != nil {
				t.Fatal("envelope returned with an error")
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("accepted an invalid envelope: %v", err)
		}
		var std Envelope
		if err := json.Unmarshal(in, &std); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		if !sameEnvelope(e, &std) {
			t.Fatalf("disagrees with encoding/json\n got %+v\nwant %+v", e, std)
		}
		out, err := e.Encode()
		if err != nil {
			t.Fatalf("cannot encode a decoded envelope: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("Encode wrote invalid JSON: %s", out)
		}
		back, err := DecodeEnvelope(out)
		if err != nil {
			t.Fatalf("cannot decode what Encode wrote: %v\n%s", err, out)
		}
		if !sameEnvelope(back, e) {
			t.Fatalf("round trip changed the envelope\n got %+v\nwant %+v", back, e)
		}
	})
}

// FuzzParseAuditEvents checks that the audit parser never panics, refuses
// exactly the malformed JSON encoding/json refuses, accounts for every item,
// and returns only events that survive a trip through JSON.
func FuzzParseAuditEvents(f *testing.F) {
	addSeeds(f, "audit-docs/*.json", "audit-event/*.json")
	f.Add([]byte(`[{"kind":0},{},null,1,"x",[]]`))
	f.Add([]byte(`{"kind":"EventList","items":[{"auditID":"a","stage":"Panic","level":"None","verb":"get","requestURI":"/","requestReceivedTimestamp":"2025-01-01T00:00:00.000000Z","stageTimestamp":"2025-01-01T00:00:00.000000Z"}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		events, rejects, err := ParseAuditEvents(in)
		valid := json.Valid(in)
		if err != nil {
			if events != nil || rejects != nil {
				t.Fatal("results returned with an error")
			}
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrNotAuditEvent) {
				t.Fatalf("error of an unexpected kind: %v", err)
			}
			if errors.Is(err, ErrSyntax) == valid {
				t.Fatalf("syntax verdict %v disagrees with json.Valid %v", err, valid)
			}
			return
		}
		if !valid {
			t.Fatal("accepted malformed JSON")
		}
		items, err := SplitAuditEvents(in)
		if err != nil {
			t.Fatalf("split fails where parse succeeded: %v", err)
		}
		if len(events)+len(rejects) != len(items) {
			t.Fatalf("%d items, %d events + %d rejects", len(items), len(events), len(rejects))
		}
		last := -1
		for _, r := range rejects {
			if r.Index <= last || r.Index >= len(items) {
				t.Fatalf("reject index %d after %d of %d items", r.Index, last, len(items))
			}
			last = r.Index
			if !errors.Is(r, ErrNotAuditEvent) || !strings.Contains(r.Error(), "data not recognized as a Kubernetes audit event") {
				t.Fatalf("reject %v", r)
			}
		}
		for _, ev := range events {
			if ev.AuditID == "" || !knownStage(ev.Stage) || !knownLevel(ev.Level) || ev.APIVersion != AuditAPIVersion {
				t.Fatalf("accepted a non-event: %+v", ev)
			}
			b, err := json.Marshal(&ev)
			if err != nil {
				// runtime.Unknown refuses non-JSON content types, which
				// parsing never sets.
				t.Fatalf("cannot encode a parsed event: %v", err)
			}
			again, err := ParseAuditEvent(b)
			if err != nil {
				t.Fatalf("cannot parse an encoded event: %v\n%s", err, b)
			}
			b2, err := json.Marshal(&again)
			if err != nil || !bytes.Equal(b, b2) {
				t.Fatalf("encoding is not stable:\n%s\n%s", b, b2)
			}
		}
	})
}
