package auditwebhook

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/schemas"
)

// FuzzWebhookBody feeds request bodies to the receiver's body handling —
// splitting, checking, redacting, truncating and enveloping each item — and
// checks it against the reference parser: the same verdict on the document,
// every published item one ParseAuditEvents accepts (and every item it
// accepts published, apart from the preparer's documented strictness), each
// message a valid envelope whose id is its Nats-Msg-Id and whose data is an
// audit event, and every dead-letter copy valid JSON.
func FuzzWebhookBody(f *testing.F) {
	for _, glob := range []string{
		filepath.Join("..", "..", "test", "testdata", "kube", "audit-eventlist.json"),
		filepath.Join("testdata", "*.json"),
	} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(`{"kind": 0}`))
	f.Add([]byte(`[{"auditID":"a","stage":"Panic","level":"None","verb":"get","requestURI":"/","requestReceivedTimestamp":"2025-01-01T00:00:00.000000Z","stageTimestamp":"2025-01-01T00:00:00.000000Z","objectRef":{"resource":"secrets"},"requestObject":{"data":{"k":"v"}}},null,1]`))
	f.Add([]byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1beta1","items":null}`))

	c := &Collector{cluster: "fuzz", subject: bus.AuditSubject("fuzz")}
	prep := &schemas.AuditPreparer{MaxEventSize: schemas.MinAuditEventLimit, Validated: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := schemas.SplitAuditEvents(body)
		ref, refRejects, refErr := schemas.ParseAuditEvents(body)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("document verdicts differ: %v / %v", err, refErr)
		}
		if err != nil {
			return
		}
		refRejected := map[int]bool{}
		for _, r := range refRejects {
			refRejected[r.Index] = true
		}
		var scratch, arena []byte
		var sent, copies [][]byte
		published := 0
		for i, item := range items {
			var msg bus.Message
			var ev schemas.PreparedAuditEvent
			scratch, arena, msg, ev, err = c.encodeEvent(prep, scratch, arena, item)
			if err != nil {
				if !errors.Is(err, schemas.ErrNotAuditEvent) {
					t.Fatalf("item %d: error of an unexpected kind: %v", i, err)
				}
				if !refRejected[i] && !strings.Contains(err.Error(), "must be spelled") && !strings.Contains(err.Error(), "more than once") {
					t.Fatalf("item %d rejected (%v) but ParseAuditEvents accepts it", i, err)
				}
				if dl := schemas.RedactRejectedAuditItem(item); !json.Valid(dl) {
					t.Fatalf("item %d: dead letter is not JSON: %s", i, dl)
				}
				continue
			}
			if refRejected[i] {
				t.Fatalf("item %d published but ParseAuditEvents rejects it", i)
			}
			published++
			sent, copies = append(sent, msg.Data), append(copies, slices.Clone(msg.Data))
			env, err := schemas.DecodeEnvelope(msg.Data)
			if err != nil {
				t.Fatalf("item %d: invalid envelope: %v\n%s", i, err, msg.Data)
			}
			if env.ID != msg.ID || msg.ID != ev.ID || msg.Subject != "fl.audit.fuzz" || env.Type != schemas.TypeAudit {
				t.Fatalf("item %d: id %s, Nats-Msg-Id %s, subject %s", i, env.ID, msg.ID, msg.Subject)
			}
			got, err := schemas.ParseAuditEvent(env.Data)
			if err != nil {
				t.Fatalf("item %d: envelope data is not an audit event: %v", i, err)
			}
			if schemas.AuditEventIDOf(&got) != env.ID {
				t.Fatalf("item %d: envelope id %s for event %s", i, env.ID, schemas.AuditEventIDOf(&got))
			}
		}
		if published > len(ref) {
			t.Fatalf("%d published, ParseAuditEvents found %d events", published, len(ref))
		}
		// Messages handed out keep their bytes while arena grows.
		for k := range sent {
			if !slices.Equal(sent[k], copies[k]) {
				t.Fatalf("message %d changed after it was handed out", k)
			}
		}
	})
}
