"""MonitoringStack: kube-prometheus-stack plus what makes it watch SGLang and the GPUs.

The Helm release brings Prometheus, Alertmanager, Grafana, kube-state-metrics and the monitoring CRDs;
this component adds a PodMonitor per inference group (leader /metrics, with the group's API key), a
ServiceMonitor for the GPU Operator's dcgm-exporter, the SLO PrometheusRule and the dashboard ConfigMap
Grafana's sidecar loads.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import alerts, dashboard
from components.addons import _values
from components.sglang_group import API_KEY_SECRET_KEY, LWS_NAME_LABEL, LWS_WORKER_INDEX_LABEL, PART_OF
from config import bom
from config.charts import chart_source
from config.monitoring import Monitoring

RELEASE = "kube-prometheus-stack"
CHART = "kube-prometheus-stack"
# Release name contains the chart name, so the chart's fullname is the release name (templates/_helpers.tpl).
PROMETHEUS_SERVICE = f"{RELEASE}-prometheus"
GRAFANA_SERVICE = f"{RELEASE}-grafana"
GRAFANA_SECRET = "grafana-admin"
DASHBOARD_LABEL = "grafana_dashboard"
DCGM_SERVICE_LABELS = {"app": "nvidia-dcgm-exporter"}  # gpu-operator assets/state-dcgm-exporter/0600_service.yaml
DCGM_PORT = "gpu-metrics"


@dataclass
class ScrapeTarget:
    """An inference group as monitoring sees it."""

    name: str
    # Whether the group runs with --enable-metrics; without it there is nothing to scrape.
    metrics: bool = True
    # Secret (in the serving namespace) holding the group's API key, which /metrics requires in 0.4.3.post2.
    api_key_secret_name: pulumi.Input[str | None] = None


@dataclass
class MonitoringStackArgs:
    settings: Monitoring
    serving_namespace: str
    targets: Sequence[ScrapeTarget]
    grafana_admin_password: pulumi.Input[str]
    chart_version: str = bom.KUBE_PROMETHEUS_STACK_CHART
    # A chart mirror (config/charts.py) replacing the chart's repository: https://, oci:// or a chart directory.
    chart_mirror: str | None = None
    depends_on: Sequence[pulumi.Resource] = ()


class MonitoringStack(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    prometheus_url: pulumi.Output[str]
    grafana_service: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sglang-platform:index:MonitoringStack", name, None, opts)
        s = args.settings
        ns = s.namespace
        labels = dict(PART_OF)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": ns,
                # node-exporter needs the host's network, PID namespace and file systems.
                "labels": {
                    **labels,
                    "pod-security.kubernetes.io/enforce": "privileged",
                    "pod-security.kubernetes.io/warn": "privileged",
                },
            },
            opts=child,
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_SECRET, "namespace": ns, "labels": dict(labels)},
            type="Opaque",
            string_data={
                "admin-user": s.grafana.admin_user,
                "admin-password": pulumi.Output.secret(args.grafana_admin_password),
            },
            opts=in_ns,
        )
        source = chart_source(CHART, args.chart_version, bom.KUBE_PROMETHEUS_STACK_REPO, args.chart_mirror)
        release = k8s.helm.v3.Release(
            f"{name}-kube-prometheus-stack",
            name=RELEASE,
            namespace=ns,
            chart=source.chart,
            version=source.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=source.repository) if source.repository else None,
            values=_values(self, "monitoring", s.values, chart_values(s)),
            cleanup_on_fail=True,
            atomic=False,
            timeout=900,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace, admin]),
        )
        # The monitors and rules are custom resources whose CRDs the release installs.
        after_release = pulumi.ResourceOptions(parent=self, depends_on=[release, *args.depends_on])
        k8s.core.v1.ConfigMap(
            f"{name}-dashboard",
            metadata={
                "name": "sglang-platform-dashboard",
                "namespace": ns,
                "labels": {**labels, DASHBOARD_LABEL: "1"},
            },
            data={"sglang-platform.json": json.dumps(dashboard.build(args.serving_namespace, s.dcgm.enabled))},
            opts=in_ns,
        )
        _operator_object(
            f"{name}-rules",
            "PrometheusRule",
            metadata={"name": "sglang-platform", "namespace": ns, "labels": dict(labels)},
            spec={
                "groups": alerts.rule_groups(
                    args.serving_namespace,
                    [t.name for t in args.targets],
                    s.slo,
                    gpu=s.dcgm.enabled,
                    scraped=[t.name for t in args.targets if t.metrics],
                )
            },
            opts=after_release,
        )
        for target in args.targets:
            if not target.metrics:
                continue
            _operator_object(
                f"{name}-{target.name}-podmonitor",
                "PodMonitor",
                metadata={
                    "name": alerts.metrics_monitor_name(target.name),
                    "namespace": args.serving_namespace,
                    "labels": dict(labels),
                },
                spec=pulumi.Output.from_input(target.api_key_secret_name).apply(
                    functools.partial(pod_monitor_spec, target.name, args.serving_namespace, s=s)
                ),
                opts=after_release,
            )
        if s.dcgm.enabled:
            _operator_object(
                f"{name}-dcgm-exporter",
                "ServiceMonitor",
                metadata={"name": "dcgm-exporter", "namespace": ns, "labels": dict(labels)},
                spec={
                    "namespaceSelector": {"matchNames": [s.dcgm.namespace]},
                    "selector": {"matchLabels": dict(DCGM_SERVICE_LABELS)},
                    "endpoints": [{"port": DCGM_PORT, "path": "/metrics", "interval": s.prometheus.scrape_interval}],
                },
                opts=after_release,
            )

        self.namespace = pulumi.Output.from_input(ns)
        self.prometheus_url = pulumi.Output.from_input(f"http://{PROMETHEUS_SERVICE}.{ns}.svc:9090")
        self.grafana_service = pulumi.Output.from_input(GRAFANA_SERVICE)
        self.register_outputs(
            {
                "namespace": self.namespace,
                "prometheus_url": self.prometheus_url,
                "grafana_service": self.grafana_service,
            }
        )


def _operator_object(
    resource_name: str, kind: str, metadata: dict, spec: pulumi.Input[dict], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """A prometheus-operator custom resource (its CRDs come with the chart)."""
    return k8s.apiextensions.CustomResource(
        resource_name, api_version="monitoring.coreos.com/v1", kind=kind, metadata=metadata, spec=spec, opts=opts
    )


def chart_values(s: Monitoring) -> dict[str, Any]:
    nil = {
        # With the chart default (true) Prometheus selects only objects labelled release=<release>, and would
        # silently ignore the platform's PodMonitors, ServiceMonitors and rules.
        f"{kind}SelectorNilUsesHelmValues": False
        for kind in ("podMonitor", "serviceMonitor", "rule", "probe", "scrapeConfig")
    }
    storage: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": s.prometheus.storage_size}},
    }
    if s.prometheus.storage_class:
        storage["storageClassName"] = s.prometheus.storage_class
    prometheus_spec: dict[str, Any] = {
        **nil,
        "retention": s.prometheus.retention,
        "storageSpec": {"volumeClaimTemplate": {"spec": storage}},
    }
    if s.prometheus.retention_size:
        prometheus_spec["retentionSize"] = s.prometheus.retention_size
    grafana: dict[str, Any] = {
        "enabled": True,
        "admin": {"existingSecret": GRAFANA_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
        "sidecar": {
            "dashboards": {
                "enabled": True,
                "label": DASHBOARD_LABEL,
                "labelValue": "1",
                "searchNamespace": "ALL",
            }
        },
    }
    if s.grafana.storage_size:
        grafana["persistence"] = {"enabled": True, "size": s.grafana.storage_size}
    return {
        "prometheus": {"prometheusSpec": prometheus_spec},
        "grafana": grafana,
        # The no-ready-leader alert joins readiness with the LWS pod labels.
        "kube-state-metrics": {"metricLabelsAllowlist": [alerts.KSM_POD_LABELS]},
    }


def pod_monitor_spec(group: str, namespace: str, api_key_secret: str | None, s: Monitoring) -> dict:
    endpoint: dict[str, Any] = {"port": "http", "path": "/metrics", "interval": s.prometheus.scrape_interval}
    if api_key_secret:
        # SGLang's --api-key guards every path but /health*, /metrics included.
        endpoint["authorization"] = {
            "type": "Bearer",
            "credentials": {"name": api_key_secret, "key": API_KEY_SECRET_KEY},
        }
    return {
        "namespaceSelector": {"matchNames": [namespace]},
        # Only the leader serves HTTP and metrics; workers answer a stand-in /health.
        "selector": {"matchLabels": {LWS_NAME_LABEL: group, LWS_WORKER_INDEX_LABEL: "0"}},
        "podMetricsEndpoints": [endpoint],
    }
