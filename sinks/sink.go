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

	"github.com/faultline/faultline/schemas"
)

// Sink writes documents to an external system.
type Sink interface {
	Name() string
	// Write stores docs and returns one Result per document, in order.
	Write(ctx context.Context, docs []Document) []Result
}

// Document is one bus message to store.
type Document struct {
	// ID is the envelope id: writing the same document again overwrites it.
	ID   string
	Kind schemas.Kind
	Body json.RawMessage
}

// Result is the outcome of one document.
type Result struct {
	// Err is nil when the document is stored.
	Err error
	// Retryable tells that the same write may succeed later (overload,
	// unavailability); otherwise the document goes to the dead letters.
	Retryable bool
}
