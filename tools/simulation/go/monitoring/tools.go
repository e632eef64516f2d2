//go:build tools

// Package tools pins the binaries this module builds, the releases kube-prometheus-stack 88.5.3 runs:
// Prometheus v3.14.0 (module v0.314.0), Alertmanager v0.34.0, the Prometheus Operator and its config reloader
// v0.93.1, kube-state-metrics v2.20.0. One module, so the packages they share (client-go and the rest of
// k8s.io at v0.36.3, the same as the simulation's Kubernetes; prometheus/common; OpenTelemetry; gRPC) compile
// once.
package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/cmd/operator"
	_ "github.com/prometheus-operator/prometheus-operator/cmd/prometheus-config-reloader"
	_ "github.com/prometheus/alertmanager/cmd/alertmanager"
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "k8s.io/kube-state-metrics/v2"
)
