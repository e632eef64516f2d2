"""sglang-platform: composes the components from the validated stack configuration."""

import pulumi
import pulumi_kubernetes as k8s

import config
from components import (
    InferenceAutoscaler,
    InferenceAutoscalerArgs,
    Keda,
    KedaArgs,
    Backend,
    MonitoringStack,
    MonitoringStackArgs,
    OpenWebUI,
    OpenWebUIArgs,
    ScrapeTarget,
    SglangInferenceGroup,
    SglangInferenceGroupArgs,
)

try:
    loaded = config.load()
except config.ConfigError as error:
    # A clean message naming every bad key, and nothing registered.
    raise pulumi.RunError(str(error)) from None

platform = loaded.platform


def pod_security_level(cfg: config.PlatformConfig) -> str:
    """hostPath volumes and IPC_LOCK (RDMA) are outside the baseline Pod Security Standard."""
    needs_privileged = any(
        g.network.fabric == "infiniband" or g.model_volume.type == "hostPath" for g in cfg.inference_groups
    )
    return "privileged" if needs_privileged else "baseline"


level = pod_security_level(platform)
namespace = k8s.core.v1.Namespace(
    "serving-namespace",
    metadata={
        "name": platform.namespace,
        "labels": {
            "app.kubernetes.io/part-of": "sglang-platform",
            "pod-security.kubernetes.io/enforce": level,
            "pod-security.kubernetes.io/warn": level,
        },
    },
)

# Prometheus scrapes the leaders' /metrics on the API port from its own namespace.
client_namespaces = list(platform.api_access.allowed_namespaces)
if platform.monitoring.enabled:
    client_namespaces.append(platform.monitoring.namespace)

groups = {}
for group in platform.inference_groups:
    groups[group.name] = SglangInferenceGroup(
        group.name,
        SglangInferenceGroupArgs(
            group=group,
            namespace=platform.namespace,
            image=platform.versions.sglang_image,
            api_key=loaded.secrets.get("apiKey"),
            client_namespaces=client_namespaces,
            depends_on=[namespace],
        ),
    )

if platform.open_webui.enabled:
    ui = OpenWebUI(
        "open-webui",
        OpenWebUIArgs(
            settings=platform.open_webui,
            namespace=platform.namespace,
            image=platform.versions.open_webui_image,
            secret_key=loaded.secrets["webuiSecretKey"],
            backends=[Backend(name, g.base_url, g.api_key_secret_name) for name, g in groups.items()],
            depends_on=[namespace],
        ),
    )
    pulumi.export("openWebui", {"service": ui.service_name, "url": ui.url})

monitoring = None
if platform.monitoring.enabled:
    monitoring = MonitoringStack(
        "monitoring",
        MonitoringStackArgs(
            settings=platform.monitoring,
            serving_namespace=platform.namespace,
            targets=[
                ScrapeTarget(g.name, g.enable_metrics, groups[g.name].api_key_secret_name)
                for g in platform.inference_groups
            ],
            grafana_admin_password=loaded.secrets["grafanaAdminPassword"],
            chart_version=platform.versions.kube_prometheus_stack,
            depends_on=[namespace],
        ),
    )
    pulumi.export(
        "monitoring",
        {
            "namespace": monitoring.namespace,
            "prometheusUrl": monitoring.prometheus_url,
            "grafanaService": monitoring.grafana_service,
        },
    )

# Checked in config: every autoscaled group has one or the other.
prometheus_address = platform.keda.prometheus_address or (monitoring.prometheus_url if monitoring else "")
keda = (
    Keda("keda", KedaArgs(namespace=platform.keda.namespace, chart_version=platform.versions.keda_chart))
    if platform.keda.mode == "install"
    else None
)
for group in platform.inference_groups:
    if group.autoscaling is None:
        continue
    InferenceAutoscaler(
        f"{group.name}-autoscaler",
        InferenceAutoscalerArgs(
            lws_name=group.name,
            namespace=platform.namespace,
            served_model_name=group.model.served_name,
            scaling=group.autoscaling,
            prometheus_address=prometheus_address,
            depends_on=[groups[group.name], *([keda] if keda else [])],
        ),
    )

pulumi.export("namespace", platform.namespace)
pulumi.export(
    "inferenceGroups",
    {
        name: {"baseUrl": g.base_url, "servedModelName": g.served_model_name, "service": g.service_name}
        for name, g in groups.items()
    },
)
