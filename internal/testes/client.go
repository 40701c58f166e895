package testes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Client sends requests to a server with plain net/http: JSON in, the
// status and raw body out. It carries the superuser's credentials when the
// server has security on. A Client made by [Server.Client] is bound to a
// test: Do uses the test's context and fails the test when a request
// cannot be sent (a status of 4xx or 5xx is returned, not failed).
type Client struct {
	URL                string
	Username, Password string // basic authentication when Username is set
	HTTP               *http.Client

	t testing.TB
}

// Response is a complete answer.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode %d response %.200q: %w", r.StatusCode, r.Body, err)
	}
	return nil
}

// String is the status and body, for messages.
func (r *Response) String() string {
	return fmt.Sprintf("%d %s", r.StatusCode, bytes.TrimSpace(r.Body))
}

// Client returns a client for the test t, with the superuser's
// credentials when the server has security on.
func (s *Server) Client(t testing.TB) *Client {
	c := s.newClient()
	c.t = t
	return c
}

func (s *Server) newClient() *Client {
	return &Client{
		URL:      s.URL,
		Username: s.Username,
		Password: s.Password,
		HTTP:     &http.Client{Timeout: 60 * time.Second},
	}
}

// WithBasicAuth returns a copy that authenticates as user.
func (c *Client) WithBasicAuth(user, password string) *Client {
	cc := *c
	cc.Username, cc.Password = user, password
	return &cc
}

// WithoutAuth returns a copy that sends no credentials.
func (c *Client) WithoutAuth() *Client { return c.WithBasicAuth("", "") }

// Do sends a request and returns the response; it fails the test when the
// request cannot be sent or its answer read. body is nil, a string or
// []byte sent as is (NDJSON for _bulk), or a value encoded as JSON.
func (c *Client) Do(method, path string, body any) *Response {
	c.t.Helper()
	r, err := c.Request(c.t.Context(), method, path, body)
	if err != nil {
		c.t.Fatalf("elasticsearch: %v", err)
	}
	return r
}

// DoOK is Do that also fails the test unless the status is 2xx.
func (c *Client) DoOK(method, path string, body any) *Response {
	c.t.Helper()
	r := c.Do(method, path, body)
	if r.StatusCode < 200 || r.StatusCode > 299 {
		c.t.Fatalf("elasticsearch: %s %s: %s", method, path, r)
	}
	return r
}

// Request sends a request; a status of 4xx or 5xx is a Response, not an
// error.
func (c *Client) Request(ctx context.Context, method, path string, body any) (*Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Username != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: data}, nil
}
