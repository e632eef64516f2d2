"""How ``__main__.py`` wires the components of a stack: what each waits for, what a group and a disaggregated
service are given alike, which endpoints the chat front end and monitoring see, and the shape of the stack's
outputs. Each helper takes what it reads as arguments (tests/test_wiring.py calls them directly)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pulumi

from ..config.stack import InferenceGroup, PlatformConfig, ServingUnit
from ..render.charts import mirror_for
from .addons import QUEUE_ANNOTATION, GpuOperatorArgs, LwsControllerArgs, VolcanoArgs
from .autoscaling import InferenceAutoscalerArgs, KedaArgs
from .model_cache import ModelCacheArgs
from .monitoring import MonitoringStackArgs, ScrapeTarget
from .open_webui import Backend

if TYPE_CHECKING:
    # Only named in signatures: importing the components themselves would stack this module on top of all of them.
    from .addons import GpuOperator, LwsController, Volcano
    from .benchmark import ServingBenchmark
    from .disaggregated import SglangDisaggregatedService
    from .gateway import SglangGateway
    from .model_cache import ModelCache
    from .sglang_group import SglangInferenceGroup


def pod_security_level(cfg: PlatformConfig) -> str:
    """hostPath volumes and IPC_LOCK (RDMA) are outside the baseline Pod Security Standard."""
    needs_privileged = any(
        g.network.fabric == "infiniband"
        or g.model_volume.type == "hostPath"
        or (g.deep_gemm is not None and g.deep_gemm.cache.type == "hostPath")
        for g in (u.group for u in cfg.serving_units)
    )
    return "privileged" if needs_privileged else "baseline"


def keeps_state(cfg: PlatformConfig) -> bool:
    """Whether the serving namespace holds a claim the stack keeps on destroy (chat history, weights): deleting
    a namespace deletes every claim in it, so a retained claim survives `pulumi destroy` only if its namespace
    does too."""
    ui = cfg.open_webui.enabled and cfg.open_webui.persistence.retain_on_destroy
    weights = any(
        g.creates_claim and g.model_volume.pvc is not None and g.model_volume.pvc.retain for g in cfg.inference_groups
    )
    return ui or weights


# --- what each component is given -------------------------------------------------------------------------------


def gpu_operator_args(cfg: PlatformConfig) -> GpuOperatorArgs:
    return GpuOperatorArgs(
        config=cfg.gpu_operator,
        chart_version=cfg.versions.gpu_operator_chart,
        chart_mirror=mirror_for(cfg, "gpuOperator"),
    )


def volcano_args(cfg: PlatformConfig) -> VolcanoArgs:
    """Installed (mode install), or only its inference queue on a Volcano that is present."""
    return VolcanoArgs(
        config=cfg.volcano,
        chart_version=cfg.versions.volcano_chart,
        install=cfg.volcano.mode == "install",
        chart_mirror=mirror_for(cfg, "volcano"),
    )


def lws_args(cfg: PlatformConfig) -> LwsControllerArgs:
    return LwsControllerArgs(config=cfg.lws, chart_version=cfg.versions.lws_chart, chart_mirror=mirror_for(cfg, "lws"))


def keda_args(cfg: PlatformConfig) -> KedaArgs:
    return KedaArgs(
        namespace=cfg.keda.namespace,
        chart_version=cfg.versions.keda_chart,
        chart_mirror=mirror_for(cfg, "keda"),
        values=cfg.keda.values,
    )


def model_cache_args(
    group: InferenceGroup, cfg: PlatformConfig, secrets: Mapping[str, Any], depends_on: Sequence[pulumi.Resource]
) -> ModelCacheArgs:
    versions = cfg.versions
    return ModelCacheArgs(
        config=group,
        namespace=cfg.namespace,
        downloader_image=versions.model_downloader_image,
        gate_image=versions.sglang_image,
        requirement=hub_requirement(cfg, group),
        # The platform-wide hub of the group's source; the component lets the group's own endpoint win.
        hub_endpoint=cfg.model_hubs.endpoint(group.model.source, None)[0],
        secrets=secrets,
        metrics_namespaces=[cfg.monitoring.namespace] if cfg.monitoring.enabled else [],
        depends_on=list(depends_on),
    )


def monitoring_args(
    cfg: PlatformConfig,
    targets: Sequence[ScrapeTarget],
    grafana_admin_password: pulumi.Input[str],
    depends_on: Sequence[pulumi.Resource],
) -> MonitoringStackArgs:
    return MonitoringStackArgs(
        config=cfg.monitoring,
        serving_namespace=cfg.namespace,
        targets=list(targets),
        gateways=[gateway_name(fronted) for fronted in cfg.gateway_routes.values()],
        grafana_admin_password=grafana_admin_password,
        sglang_release=str(cfg.versions.sglang_release),
        chart_version=cfg.versions.kube_prometheus_stack,
        chart_mirror=mirror_for(cfg, "monitoring"),
        depends_on=list(depends_on),
    )


def autoscaler_args(
    unit: ServingUnit, cfg: PlatformConfig, prometheus_address: pulumi.Input[str], depends_on: Sequence[pulumi.Resource]
) -> InferenceAutoscalerArgs:
    """Each role of a disaggregated service on its own signals (docs/disaggregation.md)."""
    group = unit.group
    assert group.autoscaling is not None, group.name
    return InferenceAutoscalerArgs(
        lws_name=group.name,
        namespace=cfg.namespace,
        served_model_name=group.model.served_name,
        config=group.autoscaling,
        prometheus_address=prometheus_address,
        depends_on=list(depends_on),
        role=unit.role,
        sglang_release=str(cfg.versions.sglang_release),
    )


def client_namespaces(cfg: PlatformConfig) -> list[str]:
    """Namespaces whose pods may call the groups: the allowed ones, and Prometheus', which scrapes the leaders'
    /metrics on the API port."""
    return [*cfg.api_access.allowed_namespaces, *([cfg.monitoring.namespace] if cfg.monitoring.enabled else [])]


def hub_requirement(cfg: PlatformConfig, group: InferenceGroup) -> str:
    """The pinned client the download of the group's source installs (none for a local model)."""
    versions = cfg.versions
    pins = {
        "huggingface": versions.huggingface_hub,
        "modelscope": f"{versions.modelscope} {versions.modelscope_hub}",
        "s3": versions.boto3,
    }
    return pins.get(group.model.source, "")


def group_dependencies(
    group: InferenceGroup,
    namespace: pulumi.Resource,
    *,
    lws: LwsController | None,
    gpu_operator: GpuOperator | None,
    volcano: Volcano | None,
) -> list[pulumi.Resource]:
    """The LWS controller before any LeaderWorkerSet, Volcano and its queue before the groups placed in it,
    the GPU Operator before anything that asks for nvidia.com/gpu (every group does)."""
    deps: list[pulumi.Resource] = [namespace]
    if lws is not None and lws.release is not None:
        deps.append(lws.release)
    if gpu_operator is not None and gpu_operator.release is not None:
        deps.append(gpu_operator.release)
    if group.scheduler == "volcano" and volcano is not None:
        deps += [r for r in (volcano.release, volcano.queue) if r is not None]
    return deps


def queue_annotations(group: InferenceGroup, queue: str) -> dict[str, str]:
    """LWS's Volcano provider reads the queue from the LeaderWorkerSet (gang PodGroups); without gang scheduling
    Volcano reads it from each pod, so both carry it."""
    return {QUEUE_ANNOTATION: queue} if group.scheduler == "volcano" else {}


def claim_creators(groups: Sequence[InferenceGroup], caches: Mapping[str, ModelCache]) -> dict[str | None, ModelCache]:
    """The cache that creates each claim, by claim name: a group may mount a claim another group's cache
    creates."""
    return {g.model_volume.claim_name: caches[g.name] for g in groups if g.creates_claim}


def cache_dependencies(
    group: InferenceGroup, caches: Mapping[str, ModelCache], creators: Mapping[str | None, ModelCache]
) -> list[ModelCache]:
    """Its own cache and the one that creates the claim it mounts; not every cache, which would make each group
    wait on all downloads and the dependency graph grow with the square of the groups."""
    found = (caches.get(group.name), creators.get(group.model_volume.claim_name))
    return list({id(c): c for c in found if c is not None}.values())


def serving_args(
    group: InferenceGroup,
    cfg: PlatformConfig,
    *,
    api_key: pulumi.Input[str] | None,
    cache: ModelCache | None,
    depends_on: Sequence[pulumi.Resource],
) -> dict[str, Any]:
    """What a colocated group and a disaggregated service are given alike (components.sglang_group.ServingArgs):
    the stack's image and access rules, the Volcano queue, and the model cache's gate, volumes and nodes."""
    queue = cfg.volcano.queue.name
    return {
        "config": group,
        "namespace": cfg.namespace,
        "image": cfg.versions.sglang_image,
        "sglang_version": cfg.versions.sglang_version,
        "api_key": api_key,
        "client_namespaces": client_namespaces(cfg),
        "client_cidrs": cfg.api_access.allowed_cidrs,
        "annotations": queue_annotations(group, queue),
        "pod_annotations": queue_annotations(group, queue),
        "depends_on": list(depends_on),
        "init_containers": cache.init_containers if cache else (),
        "extra_volumes": cache.volumes if cache else (),
        "node_selector": cache.node_selector if cache else {},
        "group_gate_image": cfg.versions.model_downloader_image,
    }


def gateway_name(fronted: InferenceGroup) -> str:
    return f"{fronted.name}-gateway"


def ui_backends(
    cfg: PlatformConfig, groups: Mapping[str, SglangInferenceGroup], gateways: Mapping[str, SglangGateway]
) -> list[Backend]:
    """What Open WebUI talks to, in stack order: each model's gateway once, and the groups no gateway fronts."""
    fronted_model = {fronted.name: model for model, fronted in cfg.gateway_routes.items()}
    out: list[Backend] = []
    for group in cfg.inference_groups:
        model = fronted_model.get(group.name)
        if model is None:
            g = groups[group.name]
            out.append(Backend(name=group.name, base_url=g.base_url, api_key_secret_name=g.api_key_secret_name))
            continue
        name = gateway_name(cfg.gateway_routes[model])
        if name not in [b.name for b in out]:
            gw = gateways[model]
            out.append(Backend(name=name, base_url=gw.base_url, api_key_secret_name=gw.api_key_secret_name))
    return out


def scrape_targets(
    units: Sequence[ServingUnit], groups: Mapping[str, SglangInferenceGroup], startup_minutes: Mapping[str, int]
) -> list[ScrapeTarget]:
    """Each group and each role of a disaggregated service as monitoring sees it."""
    return [
        ScrapeTarget(
            name=u.group.name,
            metrics=u.group.enable_metrics,
            api_key_secret_name=groups[u.group.name].api_key_secret_name,
            pd_role=u.role,
            startup_budget_minutes=startup_minutes[u.group.name],
            # A role's pods wait for their service's DaemonSet (the weights are the service's).
            stages_weights=u.group.model_volume.type == "hostPath" and u.group.model.download is not None,
        )
        for u in units
    ]


def without_v1(url: pulumi.Output[str]) -> pulumi.Output[str]:
    return url.apply(lambda u: u.removesuffix("/v1"))


# --- the stack's outputs ------------------------------------------------------------------------------------------


def group_outputs(
    cfg: PlatformConfig, groups: Mapping[str, SglangInferenceGroup], services: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Client URLs of the colocated groups. A disaggregated role is not here: a completion sent to it past the
    gateway lacks the bootstrap fields that pair it with the other role, so it has no client URL."""
    return {
        g.name: {
            "baseUrl": groups[g.name].base_url,
            "servedModelName": groups[g.name].served_model_name,
            "service": groups[g.name].service_name,
        }
        for g in cfg.inference_groups
        if g.name not in services
    }


def role_service(g: SglangInferenceGroup) -> dict[str, Any]:
    root = without_v1(g.base_url)
    return {
        "service": g.service_name,
        "healthUrl": root.apply(lambda r: f"{r}/health"),
        "metricsUrl": root.apply(lambda r: f"{r}/metrics"),
    }


def service_outputs(
    services: Mapping[str, SglangDisaggregatedService], groups: Mapping[str, SglangInferenceGroup]
) -> dict[str, dict[str, Any]]:
    """Each disaggregated service's roles and the revision both carry (kubectl get pods -l
    sglang-platform.io/pd-revision=<revision>): the one its gateway pairs (docs/disaggregation.md). Only the
    gateway serves the model; a role's Service is for its health and metrics."""
    return {
        name: {
            "revision": s.revision,
            "roles": {g: role_service(groups[g]) for g in (f"{name}-prefill", f"{name}-decode")},
        }
        for name, s in services.items()
    }


def gateway_outputs(cfg: PlatformConfig, gateways: Mapping[str, SglangGateway]) -> dict[str, dict[str, Any]]:
    """The URL clients use (README, "How clients reach the service"), per served model."""
    return {
        model: {"baseUrl": gw.base_url, "service": gw.service_name, "group": cfg.gateway_routes[model].name}
        for model, gw in gateways.items()
    }


def benchmark_output(bench: ServingBenchmark) -> dict[str, Any]:
    return {
        "job": bench.job_name,
        "configMap": bench.config_map_name,
        "target": bench.base_url,
        "revision": bench.revision,
        "status": bench.status,
        "passed": bench.passed,
        "result": bench.result,
    }


def addon_output(mode: str, component: Any) -> dict[str, Any]:
    """An add-on's mode, and its release when the stack installs one."""
    if component is None or getattr(component, "release", None) is None:
        return {"mode": mode}
    return {
        "mode": mode,
        "release": component.release_name,
        "namespace": component.namespace,
        "status": component.status,
    }
