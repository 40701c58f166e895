package auditwebhook

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/schemas"
)

// TestBadInput sends each kind of bad request between good ones, checks
// its status code, and then that the stream holds exactly the events of the
// good requests, once each, and the dead-letter stream exactly the rejected
// items: nothing else lost, nothing else stored.
func TestBadInput(t *testing.T) {
	p := newPKI(t)
	b, _ := bustest.Start(t)
	cfg := p.testConfig()
	cfg.MaxRequestSize = 12 << 20
	r := startReceiver(t, b, cfg)
	client := p.client()
	defer client.CloseIdleConnections()
	url := r.URL()
	fixture := fixtureItems(t)

	n := 0
	fresh := func(k int) [][]byte { // k fixture events with new audit ids
		out := make([][]byte, k)
		for i := range out {
			n++
			out[i] = withAuditID(t, fixture[n%len(fixture)], fmt.Sprintf("00000000-0000-4000-8000-%012d", n))
		}
		return out
	}
	var wantIDs []string
	var wantDead int

	type tc struct {
		name      string
		req       func() *http.Request
		client    *http.Client
		want      int
		published [][]byte // events the request publishes
		dead      int      // items dead-lettered
		rejects   []int    // indexes reported as rejected
	}
	newReq := func(method, ct string, body []byte, hdr ...string) func() *http.Request {
		return func() *http.Request {
			req, err := http.NewRequest(method, url, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if ct != "" {
				req.Header.Set("Content-Type", ct)
			}
			req.Header.Set("Authorization", "Bearer "+p.token)
			for i := 0; i+1 < len(hdr); i += 2 {
				if hdr[i+1] == "" {
					req.Header.Del(hdr[i])
				} else {
					req.Header.Set(hdr[i], hdr[i+1])
				}
			}
			return req
		}
	}
	good := fresh(3)
	mixed := fresh(3)
	v1beta1 := fresh(2)
	array := fresh(2)
	single := fresh(1)
	byCert := fresh(2)
	valid := eventList(fresh(1)...)
	huge := append(append([]byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[`), bytes.Repeat([]byte(" "), 13<<20)...), []byte(`]}`)...)
	truncated := eventList(fresh(2)...)
	truncated = truncated[:len(truncated)/2]
	betaItems := make([][]byte, len(v1beta1))
	for i, it := range v1beta1 {
		betaItems[i] = bytes.Replace(it, []byte(`{`), []byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1",`), 1)
	}

	tests := []tc{
		{name: "valid EventList", req: newReq("POST", "application/json", eventList(good...)), want: 200, published: good},
		{name: "no token", req: newReq("POST", "application/json", valid, "Authorization", ""), want: 401},
		{name: "wrong token", req: newReq("POST", "application/json", valid, "Authorization", "Bearer nope"), want: 401},
		{name: "basic auth", req: newReq("POST", "application/json", valid, "Authorization", "Basic dTpw"), want: 401},
		{name: "client certificate of another CA", req: newReq("POST", "application/json", valid, "Authorization", ""),
			client: p.client(p.otherClientCert), want: 401},
		{name: "GET", req: newReq("GET", "", nil), want: 405},
		{name: "text/plain", req: newReq("POST", "text/plain", valid), want: 415},
		{name: "gzip", req: newReq("POST", "application/json", valid, "Content-Encoding", "gzip"), want: 415},
		{name: "latin-1 JSON", req: newReq("POST", "application/json; charset=iso-8859-1", valid), want: 415},
		{name: "13 MiB body", req: newReq("POST", "application/json", huge), want: 413},
		{name: "13 MiB body without length", req: func() *http.Request {
			req := newReq("POST", "application/json", nil)()
			req.Body = io.NopCloser(bytes.NewReader(huge))
			req.ContentLength = -1
			return req
		}, want: 413},
		{name: "wrong path", req: func() *http.Request {
			req := newReq("POST", "application/json", valid)()
			req.URL.Path = "/other"
			return req
		}, want: 404},
		{name: "truncated JSON", req: newReq("POST", "application/json", truncated), want: 400},
		{name: "empty body", req: newReq("POST", "application/json", nil), want: 400},
		{name: `{"kind": 0}`, req: newReq("POST", "application/json", []byte(`{"kind": 0}`)), want: 400, dead: 1, rejects: []int{0}},
		{name: "EventList with one malformed item", req: newReq("POST", "application/json",
			eventList(mixed[0], mixed[1], []byte(`{"kind":"Event","auditID":"x","stage":"Done"}`), mixed[2])),
			want: 200, published: mixed, dead: 1, rejects: []int{2}},
		{name: "EventList of another API", req: newReq("POST", "application/json", listOf("v1", good...)), want: 400},
		{name: "v1beta1 EventList", req: newReq("POST", "application/json; charset=utf-8", listOf("audit.k8s.io/v1beta1", betaItems...)), want: 200, published: v1beta1},
		{name: "JSON array", req: newReq("POST", "application/json", append(append([]byte("["), bytes.Join(array, []byte(","))...), ']')), want: 200, published: array},
		{name: "single event", req: newReq("POST", "application/json", single[0]), want: 200, published: single},
		{name: "empty EventList", req: newReq("POST", "application/json", eventList()), want: 200},
		{name: "client certificate, no token", req: newReq("POST", "application/json", eventList(byCert...), "Authorization", ""),
			client: p.client(p.clientCert), want: 200, published: byCert},
		{name: "same batch again", req: newReq("POST", "application/json", eventList(good...)), want: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := client
			if tc.client != nil {
				cl = tc.client
				defer cl.CloseIdleConnections()
			}
			code, body := do(t, cl, tc.req())
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
			if !json.Valid(body) {
				t.Errorf("response is not JSON: %s", body)
			}
			wantIDs = append(wantIDs, idsOf(t, tc.published...)...)
			wantDead += tc.dead
			if tc.rejects != nil {
				var resp Response
				if err := json.Unmarshal(body, &resp); err != nil {
					t.Fatal(err)
				}
				var got []int
				for _, rj := range resp.Rejected {
					got = append(got, rj.Index)
					if !strings.Contains(rj.Error, "not recognized as a Kubernetes audit event") {
						t.Errorf("reject reason %q", rj.Error)
					}
				}
				if !slices.Equal(got, tc.rejects) || resp.Published != len(tc.published) {
					t.Errorf("response %s, want rejects %v and %d published", body, tc.rejects, len(tc.published))
				}
			}
			if tc.name == "same batch again" {
				var resp Response
				_ = json.Unmarshal(body, &resp)
				if resp.Duplicates != len(good) {
					t.Errorf("retried batch: %d duplicates, want %d", resp.Duplicates, len(good))
				}
			}
		})
	}

	got := auditIDs(t, readStream(t, b, bus.StreamAudit, bus.AuditSubject(testCluster)))
	for _, id := range wantIDs {
		if got[id] != 1 {
			t.Errorf("event %s stored %d times, want once", id, got[id])
		}
		delete(got, id)
	}
	for id, k := range got {
		t.Errorf("unexpected event %s stored %d times", id, k)
	}
	dead := readStream(t, b, bus.StreamDeadLetter, bus.DeadLetterSubject(bus.StreamAudit, Name))
	if len(dead) != wantDead {
		t.Errorf("%d dead letters, want %d", len(dead), wantDead)
	}
	for _, d := range dead {
		if d.Header[bus.HeaderDLQReason] == nil || d.Header[bus.HeaderDLQSubject][0] != bus.AuditSubject(testCluster) {
			t.Errorf("dead letter headers %v", d.Header)
		}
	}

	// The metrics tell the same story.
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"faultline_audit_webhook_requests_total", []string{"code", "401"}, 4},
		{"faultline_audit_webhook_requests_total", []string{"code", "413"}, 2},
		{"faultline_audit_webhook_requests_total", []string{"code", "415"}, 3},
		{"faultline_audit_webhook_auth_failures_total", []string{"reason", authMissing}, 1},
		{"faultline_audit_webhook_auth_failures_total", []string{"reason", authBadToken}, 1},
		{"faultline_audit_webhook_auth_failures_total", []string{"reason", authBadCert}, 1},
		{"faultline_audit_webhook_auth_failures_total", []string{"reason", authUnsupported}, 1},
		{"faultline_audit_webhook_events_published_total", []string{"result", "stored"}, float64(len(wantIDs))},
		{"faultline_audit_webhook_events_published_total", []string{"result", "duplicate"}, 3},
		{"faultline_audit_webhook_events_rejected_total", []string{"reason", rejectInvalid}, 2},
		{"faultline_audit_webhook_events_rejected_total", []string{"reason", rejectUnacknowledged}, 0},
	} {
		if got := counter(t, r.reg, m.name, m.labels...); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
}

// TestRedactedOnTheBus posts events holding a Secret and a token and
// checks what reached the stream.
func TestRedactedOnTheBus(t *testing.T) {
	p := newPKI(t)
	b, _ := bustest.Start(t)
	r := startReceiver(t, b, p.testConfig())
	client := p.client()
	defer client.CloseIdleConnections()
	const marker = "FAULTLINE-MARKER-on-the-bus" // planted in testdata/secrets-eventlist.json
	body, err := os.ReadFile(filepath.Join("testdata", "secrets-eventlist.json"))
	must(t, err)
	if !bytes.Contains(body, []byte(marker)) {
		t.Fatal("the fixture lacks the marker")
	}
	if code, resp := post(t, client, r.URL(), p.token, body, nil); code != 200 {
		t.Fatalf("status %d: %s", code, resp)
	}
	msgs := readStream(t, b, bus.StreamAudit, "")
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	for _, m := range msgs {
		if bytes.Contains(m.Data, []byte(marker)) {
			t.Errorf("secret on the bus: %s", m.Data)
		}
		env, err := schemas.DecodeEnvelope(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if err := schemas.Validate(schemas.KindEnvelope, m.Data); err != nil {
			t.Errorf("envelope fails its schema: %v", err)
		}
		ev, err := schemas.ParseAuditEvent(env.Data)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Annotations[schemas.AuditAnnotationRedacted] != "true" {
			t.Errorf("event %s not flagged redacted", ev.AuditID)
		}
		if env.Source != Source || env.Type != schemas.TypeAudit || env.Cluster != testCluster || env.Subject == "" {
			t.Errorf("envelope attributes %+v", env)
		}
	}
	if got := counter(t, r.reg, "faultline_audit_webhook_events_redacted_total"); got != 2 {
		t.Errorf("redacted counter %v", got)
	}
}

// TestOversizeEventTruncated publishes an event over max_event_size as a
// truncated record instead of dropping it.
func TestOversizeEventTruncated(t *testing.T) {
	p := newPKI(t)
	b, _ := bustest.Start(t)
	cfg := p.testConfig()
	cfg.MaxEventSize = schemas.MinAuditEventLimit
	r := startReceiver(t, b, cfg)
	client := p.client()
	defer client.CloseIdleConnections()
	item := fixtureItems(t)[0]
	big := bytes.Replace(item, []byte(`"requestObject":{`), []byte(`"requestObject":{"pad":"`+strings.Repeat("p", 100<<10)+`",`), 1)
	code, body := post(t, client, r.URL(), p.token, eventList(big), nil)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	msgs := readStream(t, b, bus.StreamAudit, "")
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	env, err := schemas.DecodeEnvelope(msgs[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := schemas.ParseAuditEvent(env.Data)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Annotations[schemas.AuditAnnotationTruncated] != "true" || ev.RequestObject != nil || ev.Annotations[schemas.AuditAnnotationOriginalSize] != fmt.Sprint(len(big)) {
		t.Errorf("not truncated as documented: %v", ev.Annotations)
	}
	if counter(t, r.reg, "faultline_audit_webhook_events_truncated_total") != 1 {
		t.Error("truncated counter")
	}
}

// TestBusDown answers 503 within publish_timeout while NATS is down, and
// 200 again once it is back; events acknowledged before are stored once.
func TestBusDown(t *testing.T) {
	p := newPKI(t)
	srv := bustest.StartServer(t)
	b := bustest.Connect(t, srv, bus.Options{AckTimeout: 2 * time.Second})
	cfg := p.testConfig()
	cfg.PublishTimeout = time.Second
	r := startReceiver(t, b, cfg)
	client := p.client()
	defer client.CloseIdleConnections()
	fixture := fixtureItems(t)
	batch := func(prefix string) [][]byte {
		out := make([][]byte, 20)
		for i := range out {
			out[i] = withAuditID(t, fixture[i%len(fixture)], fmt.Sprintf("%s-0000-4000-8000-%012d", prefix, i))
		}
		return out
	}
	before, during := batch("aaaaaaaa"), batch("bbbbbbbb")
	if code, body := post(t, client, r.URL(), p.token, eventList(before...), nil); code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}

	dir, listen := srv.Dir, srv.Listen
	srv.Shutdown()
	start := time.Now()
	code, body := post(t, client, r.URL(), p.token, eventList(during...), nil)
	if code != 503 {
		t.Fatalf("bus down: status %d, want 503: %s", code, body)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("503 after %s, publish_timeout is 1s", took)
	}

	// The API server retries; once NATS is back the batch goes through.
	bustest.StartServerAt(t, dir, listen)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body = post(t, client, r.URL(), p.token, eventList(during...), nil)
		if code == 200 {
			break
		}
		if code != 503 || time.Now().After(deadline) {
			t.Fatalf("after restart: status %d: %s", code, body)
		}
		time.Sleep(100 * time.Millisecond) // the API server's backoff
	}
	got := auditIDs(t, readStream(t, b, bus.StreamAudit, ""))
	for _, id := range idsOf(t, append(before, during...)...) {
		if got[id] != 1 {
			t.Errorf("event %s stored %d times", id, got[id])
		}
	}
	if len(got) != 40 {
		t.Errorf("%d events stored, want 40", len(got))
	}
	if counter(t, r.reg, "faultline_audit_webhook_events_rejected_total", "reason", rejectUnacknowledged) < 20 {
		t.Error("unacknowledged events not counted")
	}
}

// TestSlowClients: headers or a body trickled too slowly are cut off by the
// server timeouts, and a request waiting for a processing slot gets 503
// after publish_timeout.
func TestSlowClients(t *testing.T) {
	p := newPKI(t)
	b, _ := bustest.Start(t)
	cfg := p.testConfig()
	cfg.ReadHeaderTimeout = 300 * time.Millisecond
	cfg.ReadTimeout = 2 * time.Second
	cfg.PublishTimeout = 500 * time.Millisecond
	cfg.MaxConcurrentRequests = 1
	r := startReceiver(t, b, cfg)
	addr := r.Addr().String()
	tlsCfg := &tls.Config{RootCAs: p.ca.CertPool(), MinVersion: tls.VersionTLS12}

	t.Run("slow headers", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, tlsCfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		if _, err := conn.Write([]byte("POST " + cfg.Path + " HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadAll(conn)
		if took := time.Since(start); err != nil || took > 5*time.Second {
			t.Errorf("connection with unfinished headers closed after %s (err %v)", took, err)
		}
	})

	t.Run("slow body holds the only slot; the next request gets 503", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, tlsCfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		head := "POST " + cfg.Path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer " + p.token + "\r\nContent-Length: 1000\r\n\r\n{"
		if _, err := conn.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
		bustest.WaitFor(t, 5*time.Second, "the slow request to hold the slot", func() bool {
			return counter(t, r.reg, "faultline_audit_webhook_requests_in_flight") == 1
		})
		client := p.client()
		defer client.CloseIdleConnections()
		code, body := post(t, client, r.URL(), p.token, eventList(fixtureItems(t)[0]), nil)
		if code != 503 {
			t.Errorf("status %d while the slot is taken, want 503: %s", code, body)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, _ := io.ReadAll(conn)
		if took := time.Since(start); took > 6*time.Second {
			t.Errorf("slow body cut off after %s, read_timeout is 2s", took)
		}
		// Told to retry: a body slower than read_timeout may as well be a
		// server too busy to read it.
		if !bytes.Contains(resp, []byte(" 503 ")) || !bytes.Contains(resp, []byte("Retry-After:")) || !bytes.Contains(resp, []byte("did not arrive within 2s")) {
			t.Errorf("slow body answered %q", resp)
		}
		bustest.WaitFor(t, 5*time.Second, "the slot to be free", func() bool {
			return counter(t, r.reg, "faultline_audit_webhook_requests_in_flight") == 0
		})
		if code, body := post(t, client, r.URL(), p.token, eventList(fixtureItems(t)[0]), nil); code != 200 {
			t.Errorf("after the slow client: status %d: %s", code, body)
		}
	})
}

// TestTokenRotation replaces the token file: the new token is accepted and
// the old one refused without a restart.
func TestTokenRotation(t *testing.T) {
	p := newPKI(t)
	b, _ := bustest.Start(t)
	cfg := p.testConfig()
	reg := startReceiverReloading(t, b, cfg, 50*time.Millisecond)
	client := p.client()
	defer client.CloseIdleConnections()
	body := eventList(fixtureItems(t)[0])
	if code, _ := post(t, client, reg.URL(), p.token, body, nil); code != 200 {
		t.Fatalf("status %d", code)
	}
	must(t, writeFileAtomic(p.tokenFile, []byte("rotated-token\n")))
	bustest.WaitFor(t, 10*time.Second, "the new token to be accepted", func() bool {
		code, _ := post(t, client, reg.URL(), "rotated-token", body, nil)
		return code == 200
	})
	if code, _ := post(t, client, reg.URL(), p.token, body, nil); code != 401 {
		t.Errorf("old token: status %d, want 401", code)
	}
	// A broken file keeps the tokens in use.
	must(t, writeFileAtomic(p.tokenFile, []byte("\n# nothing\n")))
	bustest.WaitFor(t, 10*time.Second, "the reload error to be counted", func() bool {
		return counter(t, reg.reg, "faultline_audit_webhook_reload_errors_total") >= 1
	})
	if code, _ := post(t, client, reg.URL(), "rotated-token", body, nil); code != 200 {
		t.Errorf("after a broken token file: status %d, want 200", code)
	}
}

// TestMixedFixture: the valid events of testdata/mixed-eventlist.json are
// published (redacted), its two malformed items reported and dead-lettered.
func TestMixedFixture(t *testing.T) {
	p := newPKI(t)
	b, _ := bustest.Start(t)
	r := startReceiver(t, b, p.testConfig())
	client := p.client()
	defer client.CloseIdleConnections()
	body, err := os.ReadFile(filepath.Join("testdata", "mixed-eventlist.json"))
	must(t, err)
	code, resp := post(t, client, r.URL(), p.token, body, nil)
	if code != 200 {
		t.Fatalf("status %d: %s", code, resp)
	}
	var got Response
	must(t, json.Unmarshal(resp, &got))
	if got.Received != 4 || got.Published != 2 || len(got.Rejected) != 2 || got.Rejected[0].Index != 1 || got.Rejected[1].Index != 2 {
		t.Errorf("response %s", resp)
	}
	msgs := readStream(t, b, bus.StreamAudit, "")
	if ids := auditIDs(t, msgs); len(ids) != 2 {
		t.Errorf("%d events stored: %v", len(ids), ids)
	}
	for _, m := range msgs {
		if bytes.Contains(m.Data, []byte("FAULTLINE-MARKER")) {
			t.Errorf("secret on the bus in %s", m.ID)
		}
	}
	if dead := readStream(t, b, bus.StreamDeadLetter, ""); len(dead) != 2 {
		t.Errorf("%d dead letters, want 2", len(dead))
	}
}
