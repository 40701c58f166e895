// Package bus is Faultline's connection to NATS JetStream: an embedded
// server for single-process use, connections to external clusters, the
// streams and KV buckets of the bus layout, a publisher with a bounded number
// of acknowledgements in flight, and durable pull consumers with bounded
// redelivery and dead letters.
//
// Delivery is at least once. A publish is finished when JetStream has
// acknowledged it; a consumed message is acknowledged only after its handler
// returned success; a message whose handler keeps failing ends on the
// dead-letter stream with the reason, never silently dropped.
package bus
