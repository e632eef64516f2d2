//go:build tools

// Package tools pins the binary this module builds: `go build github.com/coredns/coredns` (CoreDNS's main
// package, with its default plugin set of plugin.cfg, `kubernetes` among them). The module requires only
// CoreDNS, so the build list is CoreDNS's own go.mod: the same build as `go install
// github.com/coredns/coredns@<version>`.
package tools

import (
	_ "github.com/coredns/coredns"
)
