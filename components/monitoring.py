"""MonitoringStack: kube-prometheus-stack plus what makes it watch SGLang and the GPUs.

The Helm release brings Prometheus, Alertmanager, Grafana, kube-state-metrics and the monitoring CRDs;
this component adds a PodMonitor per inference group (/metrics of the leader, with the group's API key where
the pinned SGLang release asks for one, and of the workers where the release serves it there), one for the
gateways' metrics ports, one for the weights staging DaemonSets, a ServiceMonitor for the GPU Operator's
dcgm-exporter, the SLO PrometheusRule and the dashboard ConfigMap Grafana's sidecar loads.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..config.monitoring import MonitoringConfig
from ..facts import bom
from ..facts.lws import LWS_NAME_LABEL, LWS_WORKER_INDEX_LABEL
from ..facts.sglang.releases import ReleaseFacts, facts
from ..render import alerts, dashboard
from ..render.k8s import COMPONENT_LABEL, INSTANCE_LABEL, NAME_LABEL, PART_OF, away_from_gpu_nodes, with_defaults
from ..render.sglang_pods import API_KEY_SECRET_KEY, GATEWAY_APP
from . import k8s as k8s_values
from .gateway import SERVED_MODEL_ANNOTATION
from .k8s import child_opts, helm_release, namespace
from .model_cache import STAGER_COMPONENT, STAGER_PORT_NAME

RELEASE = "kube-prometheus-stack"
CHART = "kube-prometheus-stack"
# Release name contains the chart name, so the chart's fullname is the release name (templates/_helpers.tpl).
PROMETHEUS_SERVICE = f"{RELEASE}-prometheus"
GRAFANA_SERVICE = f"{RELEASE}-grafana"
GRAFANA_SECRET = "grafana-admin"
DASHBOARD_LABEL = "grafana_dashboard"
DCGM_SERVICE_LABELS = {"app": "nvidia-dcgm-exporter"}  # gpu-operator assets/state-dcgm-exporter/0600_service.yaml
DCGM_PORT = "gpu-metrics"
# The PodMonitor of the weights staging DaemonSets (serving namespace).
WEIGHTS_MONITOR = "sglang-platform-weights"


# Keyword-only: several fields of one type in a row, easy to swap by position.
@dataclass(kw_only=True)
class ScrapeTarget:
    """An inference group as monitoring sees it."""

    name: str
    # Whether the group runs with --enable-metrics; without it there is nothing to scrape.
    metrics: bool = True
    # Secret (in the serving namespace) holding the group's API key, which /metrics requires up to 0.4.5.
    api_key_secret_name: pulumi.Input[str | None] = None
    # prefill or decode: a role of a disaggregated service; its series get the label pd_role.
    pd_role: str | None = None
    # The startup budget in minutes (the startup probe's); a start past it alerts. None: no such alert.
    startup_budget_minutes: int | None = None
    # Whether a weights staging DaemonSet (ModelCache, hostPath) serves metrics for the group (a
    # role's: its service's <service>-weights, one for both roles).
    stages_weights: bool = False


@dataclass
class MonitoringStackArgs:
    config: MonitoringConfig
    serving_namespace: str
    targets: Sequence[ScrapeTarget]
    grafana_admin_password: pulumi.Input[str]
    # The SGLang release the groups run (versions.sglangVersion or the image tag): which series names the
    # dashboard reads, whether /metrics wants the API key, whether workers serve /metrics. None: the
    # reference release's behaviour (leader only, with the key) and the newest release's names.
    sglang_release: str | None = None
    # Names of the gateways (SglangGateway) in the serving namespace: their metrics, panels and alerts.
    gateways: Sequence[str] = ()
    chart_version: str = bom.KUBE_PROMETHEUS_STACK_CHART
    # A chart mirror (render/charts.py) replacing the chart's repository: https://, oci:// or a chart directory.
    chart_mirror: str | None = None
    depends_on: Sequence[pulumi.Resource] = ()


class MonitoringStack(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    prometheus_url: pulumi.Output[str]
    grafana_service: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sglang-platform:index:MonitoringStack", name, None, opts)
        s = args.config
        ns = s.namespace
        labels = dict(PART_OF)
        child = child_opts(self, opts, *args.depends_on)
        staging = any(t.stages_weights for t in args.targets)

        # node-exporter needs the host's network, PID namespace and file systems. Deleting the namespace would
        # delete the claims in it (the metrics history, benchmark results and cold-start timelines among them).
        monitoring_ns = namespace(f"{name}-namespace", ns, "privileged", child, retain=s.retain_on_destroy)
        in_ns = child_opts(self, opts, monitoring_ns)
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
        release = helm_release(
            f"{name}-kube-prometheus-stack",
            release_name=RELEASE,
            namespace=ns,
            chart=CHART,
            version=args.chart_version,
            repository=bom.KUBE_PROMETHEUS_STACK_REPO,
            mirror=args.chart_mirror,
            values=k8s_values.chart_values(
                self, "monitoring", with_defaults(placement_values(), s.values), chart_values(s)
            ),
            timeout=900,
            opts=child_opts(self, opts, monitoring_ns, admin),
        )
        # The monitors and rules are custom resources whose CRDs the release installs.
        after_release = child_opts(self, opts, release, *args.depends_on)
        k8s.core.v1.ConfigMap(
            f"{name}-dashboard",
            metadata={
                "name": "sglang-platform-dashboard",
                "namespace": ns,
                "labels": {**labels, DASHBOARD_LABEL: "1"},
            },
            data={
                "sglang-platform.json": json.dumps(
                    dashboard.build(
                        args.serving_namespace,
                        s.dcgm.enabled,
                        staging,
                        gateway=bool(args.gateways),
                        sglang_release=args.sglang_release,
                        pd=any(t.pd_role for t in args.targets),
                    )
                )
            },
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
                    budgets={t.name: t.startup_budget_minutes for t in args.targets if t.startup_budget_minutes},
                    staging=staging,
                    gateways=args.gateways,
                    disaggregated=any(t.pd_role for t in args.targets),
                    sglang_release=args.sglang_release,
                    stagers={t.name: stager_of(t) for t in args.targets if t.pd_role},
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
                    functools.partial(
                        pod_monitor_spec,
                        target.name,
                        args.serving_namespace,
                        s=s,
                        release=facts(args.sglang_release or _bom_release()),
                        pd_role=target.pd_role,
                    )
                ),
                opts=after_release,
            )
        if staging:
            _operator_object(
                f"{name}-weights-podmonitor",
                "PodMonitor",
                metadata={"name": WEIGHTS_MONITOR, "namespace": args.serving_namespace, "labels": dict(labels)},
                spec=weights_pod_monitor_spec(args.serving_namespace, s),
                opts=after_release,
            )
        if args.gateways:
            _operator_object(
                f"{name}-gateway-podmonitor",
                "PodMonitor",
                metadata={
                    "name": alerts.GATEWAY_MONITOR,
                    "namespace": args.serving_namespace,
                    "labels": dict(labels),
                },
                spec=gateway_pod_monitor_spec(args.serving_namespace, s),
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


def _bom_release() -> str:
    from ..config.stack import release_of_tag

    return str(release_of_tag(bom.SGLANG_IMAGE))


def _operator_object(
    resource_name: str, kind: str, metadata: dict, spec: pulumi.Input[dict], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """A prometheus-operator custom resource (its CRDs come with the chart)."""
    return k8s.apiextensions.CustomResource(
        resource_name, api_version="monitoring.coreos.com/v1", kind=kind, metadata=metadata, spec=spec, opts=opts
    )


def placement_values() -> dict[tuple[str, ...], Any]:
    """Every long-running pod of the chart off the GPU nodes where it can (components/k8s.py), under the stack's
    raw values (``monitoring.values`` overrides or, with null, drops each). The keys are the chart's own
    (kube-prometheus-stack 88.3.0 values.yaml, and its grafana and kube-state-metrics subcharts'); the
    node-exporter DaemonSet belongs on every node and is left alone."""
    paths = [
        ("prometheus", "prometheusSpec", "affinity"),
        ("alertmanager", "alertmanagerSpec", "affinity"),
        ("prometheusOperator", "affinity"),
        ("grafana", "affinity"),
        ("kube-state-metrics", "affinity"),
    ]
    return {path: away_from_gpu_nodes() for path in paths}


def chart_values(s: MonitoringConfig) -> dict[str, Any]:
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
        if s.retain_on_destroy:
            # Grafana's claim is a chart template, which `helm uninstall` deletes; a later install of the same
            # release adopts it again. Prometheus' claim comes from its StatefulSet's volumeClaimTemplate, which
            # Kubernetes keeps when the StatefulSet goes (persistentVolumeClaimRetentionPolicy defaults to Retain).
            grafana["persistence"]["annotations"] = {"helm.sh/resource-policy": "keep"}
    return {
        "prometheus": {"prometheusSpec": prometheus_spec},
        "grafana": grafana,
        # The no-ready-leader alert joins readiness with the LWS pod labels.
        "kube-state-metrics": {"metricLabelsAllowlist": [alerts.KSM_POD_LABELS]},
    }


def stager_of(t: ScrapeTarget) -> str:
    """The weights DaemonSet a group's pods wait for: ``<group>-weights``; a role's (``<service>-<role>``) is
    its service's, one for both roles."""
    service = t.name.removesuffix(f"-{t.pd_role}") if t.pd_role else t.name
    return f"{service}-weights"


def weights_pod_monitor_spec(namespace: str, s: MonitoringConfig) -> dict:
    """Every weights stager of the serving namespace, each series labelled with the node it stages."""
    return {
        "namespaceSelector": {"matchNames": [namespace]},
        "selector": {"matchLabels": {COMPONENT_LABEL: STAGER_COMPONENT, **PART_OF}},
        "podMetricsEndpoints": [
            {
                "port": STAGER_PORT_NAME,
                "path": "/metrics",
                "interval": s.prometheus.scrape_interval,
                "relabelings": [
                    {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node", "action": "replace"}
                ],
            }
        ],
    }


def gateway_pod_monitor_spec(namespace: str, s: MonitoringConfig) -> dict:
    """Every gateway's metrics port (no key: it is not the API listener). Each series gets the gateway's name
    and the exact served model name (a pod annotation), so the dashboard's model filter covers them too."""
    return {
        "namespaceSelector": {"matchNames": [namespace]},
        "selector": {"matchLabels": {NAME_LABEL: GATEWAY_APP}},
        "podMetricsEndpoints": [
            {
                "port": "metrics",
                "path": "/metrics",
                "interval": s.prometheus.scrape_interval,
                "relabelings": [
                    {
                        "action": "replace",
                        "sourceLabels": [_pod_meta("label", INSTANCE_LABEL)],
                        "targetLabel": "gateway",
                    },
                    {
                        "action": "replace",
                        "sourceLabels": [_pod_meta("annotation", SERVED_MODEL_ANNOTATION)],
                        "targetLabel": "model_name",
                    },
                ],
            }
        ],
    }


def _pod_meta(kind: str, key: str) -> str:
    """Prometheus' discovery label of a pod label or annotation (every character not [a-zA-Z0-9_] -> _)."""
    return f"__meta_kubernetes_pod_{kind}_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def pod_monitor_spec(
    group: str,
    namespace: str,
    api_key_secret: str | None,
    s: MonitoringConfig,
    release: ReleaseFacts,
    pd_role: str | None = None,
) -> dict:
    endpoint: dict[str, Any] = {"port": "http", "path": "/metrics", "interval": s.prometheus.scrape_interval}
    if pd_role is not None:
        # The role of a disaggregated service on every series, whatever the release calls it (0.5.x's own
        # engine_type label is missing before): the dashboard, the alerts and the autoscalers split by it.
        endpoint["relabelings"] = [{"action": "replace", "targetLabel": alerts.PD_ROLE, "replacement": pd_role}]
    if api_key_secret and release.metrics_need_api_key:
        # Up to SGLang 0.4.5 --api-key guards every path but /health*, /metrics included; from 0.4.6 /metrics
        # is exempt, and the key stays out of Prometheus.
        endpoint["authorization"] = {
            "type": "Bearer",
            "credentials": {"name": api_key_secret, "key": API_KEY_SECRET_KEY},
        }
    selector = {LWS_NAME_LABEL: group}
    if not release.worker_metrics:
        # Workers answer only a stand-in /health there; from 0.4.10 their stand-in server also serves /metrics,
        # where the schedulers on their node (DP-attention groups) report: every pod of the group is scraped.
        selector[LWS_WORKER_INDEX_LABEL] = "0"
    return {
        "namespaceSelector": {"matchNames": [namespace]},
        "selector": {"matchLabels": selector},
        "podMetricsEndpoints": [endpoint],
    }
