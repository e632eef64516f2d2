//go:build tools

// Package tools pins the binary this module builds: `go build k8s.io/kubernetes/cmd/kube-proxy`.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
