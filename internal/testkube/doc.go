// Package testkube runs a real Kubernetes control plane — etcd,
// kube-apiserver and, optionally, kube-controller-manager and kube-scheduler —
// as local processes for tests and for `faultline dev cluster`.
//
// The binaries come from the nested module test/kube, built once by
// scripts/kube-build.sh into a cache directory outside the clone. They are
// found through FAULTLINE_KUBE_BIN or, failing that, the newest build in the
// default cache directory (see [FindBinDir]).
//
// A cluster listens on random free loopback ports, keeps its state, logs,
// certificates and kubeconfigs in one directory, and has two identities: an
// admin in system:masters and a low-privilege user with no RBAC bindings.
// Every API request is audited to a log file and, when asked, to an audit
// webhook in batch mode.
//
// [Start] and [Cluster.Stop] work anywhere; [StartT] ties a cluster to a test
// and [Shared] lets the tests of a package share one cluster from TestMain.
// docs/testing.md describes the harness.
package testkube
