package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metric reads one sample of an operations endpoint's /metrics: the sum of
// the series of name whose labels include every one of labels.
func metric(t testing.TB, addr, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", addr, err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// badInput sends what a confused or hostile client would to every
// listening endpoint while the load runs. Each must get its own clear
// answer, be counted, and disturb nothing else (the main test's counts).
func (p *pipeline) badInput(t testing.TB) {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(p.certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	// Trusts the webhook but has no client certificate.
	anonymous := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	ops := p.opsAddr["collector"]
	event := p.corpusEvent()

	type tc struct {
		name     string
		client   *http.Client
		method   string
		url      string
		ctype    string
		token    string
		body     []byte
		code     int
		say      string // in the answer
		counted  []string
		countedM string
	}
	list := func(items ...[]byte) []byte {
		return []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[` + string(bytes.Join(items, []byte(","))) + `]}`)
	}
	cases := []tc{
		{name: "malformed JSON", client: p.client, method: "POST", url: p.webhookURL, ctype: "application/json", token: p.token,
			body: []byte(`{"kind":"EventList","items":[{"auditID":`), code: 400, countedM: "faultline_audit_webhook_requests_total", counted: []string{`code="400"`}},
		{name: "oversize body", client: p.client, method: "POST", url: p.webhookURL, ctype: "application/json", token: p.token,
			body: append(list(event), bytes.Repeat([]byte(" "), 13<<20)...), code: 413, say: "limit",
			countedM: "faultline_audit_webhook_requests_total", counted: []string{`code="413"`}},
		{name: "wrong method", client: p.client, method: "GET", url: p.webhookURL, token: p.token, code: 405, say: "POST",
			countedM: "faultline_audit_webhook_requests_total", counted: []string{`code="405"`}},
		{name: "wrong content type", client: p.client, method: "POST", url: p.webhookURL, ctype: "text/plain", token: p.token, body: list(event), code: 415, say: "application/json",
			countedM: "faultline_audit_webhook_requests_total", counted: []string{`code="415"`}},
		{name: "no credentials", client: anonymous, method: "POST", url: p.webhookURL, ctype: "application/json", body: list(event), code: 401, say: "unauthorized",
			countedM: "faultline_audit_webhook_auth_failures_total", counted: []string{`reason="missing"`}},
		{name: "wrong token", client: anonymous, method: "POST", url: p.webhookURL, ctype: "application/json", token: "not-the-token", body: list(event), code: 401, say: "unauthorized",
			countedM: "faultline_audit_webhook_auth_failures_total", counted: []string{`reason="invalid_token"`}},
	}
	for _, c := range cases {
		before := metric(t, ops, c.countedM, c.counted...)
		req, err := http.NewRequest(c.method, c.url, bytes.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := c.client.Do(req)
		if err != nil {
			t.Errorf("bad input %q: %v", c.name, err)
			continue
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(msg), c.say) || !bytes.Contains(msg, []byte(`"error"`)) {
			t.Errorf("bad input %q: %d %s, want %d with an error saying %q", c.name, resp.StatusCode, bytes.TrimSpace(msg), c.code, c.say)
		}
		if after := metric(t, ops, c.countedM, c.counted...); after < before+1 {
			t.Errorf("bad input %q: %s%v went from %v to %v", c.name, c.countedM, c.counted, before, after)
		}
	}

	// A slow client: headers never finished, and a body trickled a byte a
	// second. The server's timeouts (2 s for headers, 5 s for the request)
	// close both; the connection must not be held open.
	for _, slow := range []struct {
		name string
		send func(c *tls.Conn) error
	}{
		{"slow headers", func(c *tls.Conn) error {
			_, err := io.WriteString(c, "POST /audit/webhook HTTP/1.1\r\nHost: x\r\n")
			return err
		}},
		{"slow body", func(c *tls.Conn) error {
			_, err := fmt.Fprintf(c, "POST /audit/webhook HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", p.token)
			return err
		}},
	} {
		conn, err := tls.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(p.webhookURL, "https://"), "/audit/webhook"), &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("%s: %v", slow.name, err)
		}
		start := time.Now()
		if err := slow.send(conn); err != nil {
			t.Fatalf("%s: %v", slow.name, err)
		}
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			for {
				if _, err := conn.Write([]byte("a")); err != nil {
					return
				}
				_ = conn.SetReadDeadline(time.Now().Add(time.Second))
				var b [512]byte
				if _, err := conn.Read(b[:]); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						continue
					}
					return
				}
			}
		}()
		select {
		case <-closed:
			t.Logf("bad input %q: connection closed by the server after %v", slow.name, time.Since(start).Round(100*time.Millisecond))
		case <-time.After(30 * time.Second):
			t.Errorf("bad input %q: the server still holds the connection after 30 s", slow.name)
		}
		conn.Close()
	}

	// Every operations endpoint: wrong method and unknown path.
	for name, addr := range p.opsAddr {
		for _, c := range []struct {
			method, path string
			code         int
		}{{"POST", "/readyz", 405}, {"DELETE", "/metrics", 405}, {"GET", "/nope", 404}} {
			req, _ := http.NewRequestWithContext(context.Background(), c.method, "http://"+addr+c.path, strings.NewReader("{"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("%s ops %s %s: %v", name, c.method, c.path, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != c.code {
				t.Errorf("%s ops %s %s: %d, want %d", name, c.method, c.path, resp.StatusCode, c.code)
			}
		}
	}
	t.Logf("bad input: %d webhook cases, 2 slow clients and 3 cases on each of %d operations endpoints answered as expected", len(cases), len(p.opsAddr))
}

// corpusEvent is one recorded audit event (not part of the run's count:
// bad input is refused whole).
func (p *pipeline) corpusEvent() []byte {
	b, err := os.ReadFile(filepath.Join(recorded, "exec-suspicious-command.pos.jsonl"))
	if err != nil {
		p.t.Fatal(err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return line
}
