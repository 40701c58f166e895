package testkube

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// DefaultAuditPolicy is the audit policy a cluster gets when Options leaves
// it empty. It records every request once it has completed, without the
// RequestReceived stage:
//
//   - secrets, configmaps, token requests and token reviews at Metadata, so
//     that their values never leave the API server;
//   - health, readiness and OpenAPI probes not at all;
//   - writes (create, update, patch, delete, deletecollection) at Request, so
//     the object sent is in the event;
//   - everything else (reads, watches, exec, attach, port-forward, proxy) at
//     Metadata.
const DefaultAuditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
  - RequestReceived
rules:
  - level: None
    nonResourceURLs:
      - /healthz*
      - /livez*
      - /readyz*
      - /openapi/*
      - /version
  - level: Metadata
    resources:
      - group: ""
        resources: ["secrets", "configmaps", "serviceaccounts/token"]
      - group: authentication.k8s.io
        resources: ["tokenreviews"]
  - level: Request
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  - level: Metadata
`

// AuditWebhook is where the API server sends its audit events, in batch
// mode: it sends an audit.k8s.io/v1 EventList at least every BatchMaxWait,
// retries with backoff when the receiver fails, and never blocks a request
// on it.
type AuditWebhook struct {
	// URL of the receiver, for example https://127.0.0.1:9443/audit/webhook.
	URL string
	// CAPEM verifies the receiver's certificate; empty uses the system roots.
	CAPEM []byte
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// ClientCertPEM and ClientKeyPEM, when set, authenticate the API server
	// with a client certificate.
	ClientCertPEM, ClientKeyPEM []byte
	// BatchMaxWait is the longest an event waits in a batch; default 200ms.
	BatchMaxWait time.Duration
	// InitialBackoff is the first retry's delay; default 500ms.
	InitialBackoff time.Duration
}

// auditPolicyFile returns the path of the policy: policy itself when it names
// a file, else a file in dir holding policy (or DefaultAuditPolicy when empty).
func auditPolicyFile(dir, policy string) (string, error) {
	if policy != "" && !strings.Contains(policy, "\n") {
		if _, err := os.Stat(policy); err != nil {
			return "", fmt.Errorf("audit policy: %w", err)
		}
		return policy, nil
	}
	if policy == "" {
		policy = DefaultAuditPolicy
	}
	path := dir + "/audit-policy.yaml"
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		return "", fmt.Errorf("audit policy: %w", err)
	}
	return path, nil
}
