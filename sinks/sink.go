// Package sinks defines the seam every result target implements
// (elasticsearch, fluent, stdout), each in its own package and registered in
// internal/roles. A sink says per document whether a failure is worth a
// retry, so the runner acknowledges, retries or dead-letters each bus
// message accordingly: a call that succeeded with failed items is not
// success.
package sinks

import (
	"context"
	"encoding/json"
	"time"

	"github.com/faultline/faultline/schemas"
)

// Sink writes documents to an external system.
type Sink interface {
	Name() string
	// Write stores docs and returns one Result per document, in order.
	Write(ctx context.Context, docs []Document) []Result
}

// Document is one bus message to store: its envelope's attributes and its
// data.
type Document struct {
	// ID is the envelope id: a sink stores a document once per id, so a
	// redelivered message never makes a second one.
	ID string
	// Type is the envelope's CloudEvents type, e.g. io.faultline.finding.v1.
	Type    string
	Subject string
	Cluster string
	Time    time.Time
	Body    json.RawMessage
}

// DocumentOf makes the document of an envelope.
func DocumentOf(env *schemas.Envelope) Document {
	return Document{ID: env.ID, Type: env.Type, Subject: env.Subject, Cluster: env.Cluster, Time: env.Time, Body: env.Data}
}

// Result is the outcome of one document.
type Result struct {
	// Err is nil when the document is stored.
	Err error
	// Retryable tells that the same write may succeed later (overload,
	// unavailability); otherwise the document goes to the dead letters.
	Retryable bool
}
