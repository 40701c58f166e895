// Package kube builds the client-go configuration for the watched cluster.
package kube

import (
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/faultline/faultline/internal/config"
)

// RestConfig resolves the API server connection: an explicit kubeconfig, the
// in-cluster service account, or $KUBECONFIG / ~/.kube/config.
func RestConfig(c config.Kubernetes, userAgent string) (*rest.Config, error) {
	var (
		rc  *rest.Config
		err error
	)
	switch {
	case c.Kubeconfig == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		rc, err = rest.InClusterConfig()
	default:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if c.Kubeconfig != "" {
			rules.ExplicitPath = c.Kubeconfig
		}
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
			&clientcmd.ConfigOverrides{CurrentContext: c.Context}).ClientConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes: load client configuration: %w", err)
	}
	rc.QPS = float32(c.QPS)
	rc.Burst = c.Burst
	rc.UserAgent = userAgent
	return rc, nil
}
