//go:build tools

// Package tools pins the binaries this module builds: KEDA v2.20.2's operator (cmd/operator, the image
// ghcr.io/kedacore/keda) and metrics API server (cmd/adapter, ghcr.io/kedacore/keda-metrics-apiserver), as its
// Makefile builds them (bin/keda, bin/keda-adapter).
package tools

import (
	_ "github.com/kedacore/keda/v2/cmd/adapter"
	_ "github.com/kedacore/keda/v2/cmd/operator"
)
