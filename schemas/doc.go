// Package schemas holds Faultline's wire types: the CloudEvents 1.0 envelope
// every bus message travels in, the payloads it carries (audit event,
// Kubernetes Event, metric sample, finding, deviation, fault command, fault
// status, fault abort), their JSON Schemas and the deterministic ids that make
// redelivered messages idempotent.
//
// The JSON Schemas in jsonschema/ are the contract; the Go types are the
// convenient way to produce and consume it, and the tests check that the two
// agree. docs/schemas.md describes every type with its subject and an example.
package schemas
