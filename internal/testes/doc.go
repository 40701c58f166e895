// Package testes runs a real Elasticsearch for tests: Elastic's
// integration-test distribution (Maven Central's
// org.elasticsearch.distribution.integ-test-zip:elasticsearch, fetched and
// unpacked by scripts/es-fetch.sh), started as a single node on free
// loopback ports with its data, logs and configuration in a temporary
// directory.
//
// Nothing here is a mock. Without the distribution (or a JDK to run it)
// tests skip with a message, or fail when FAULTLINE_REQUIRE_ES=1
// (scripts/test.sh sets it).
//
//	srv := testes.Start(t, testes.Options{})        // one server for this test
//	c := srv.Client(t)
//	r := c.Do(http.MethodGet, "/_cluster/health", nil)
//
// Starting takes 10–40 s on two cores, so a package's tests share one
// server through [Shared], started on first use and stopped by TestMain.
//
// Elasticsearch refuses to run as root. When the tests run as root (CI
// does), the server runs as the unprivileged system user faultline-es
// ([DefaultUser], or $FAULTLINE_ES_USER), which is created with useradd the
// first time; its data, logs and configuration are owned by that user.
//
// The distribution holds the server, transport-netty4, x-pack-core,
// x-pack-security and apm, and no other module: no ingest processors
// (ingest-common), no painless, no match_only_text, constant_keyword or
// wildcard field types, no ILM, no data-stream REST API (_data_stream), no
// GET / and no native users or API keys (the .security index needs an
// analysis module it lacks). docs/testing.md lists what works and what does
// not.
package testes
