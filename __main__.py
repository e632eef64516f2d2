"""sglang-platform: composes the components from the validated stack configuration."""

import pulumi
import pulumi_kubernetes as k8s

import config
from components import (
    Backend,
    GpuOperator,
    GpuOperatorArgs,
    InferenceAutoscaler,
    InferenceAutoscalerArgs,
    Keda,
    KedaArgs,
    LwsController,
    LwsControllerArgs,
    ModelCache,
    ModelCacheArgs,
    MonitoringStack,
    MonitoringStackArgs,
    OpenWebUI,
    OpenWebUIArgs,
    ScrapeTarget,
    SglangInferenceGroup,
    SglangInferenceGroupArgs,
    Volcano,
    VolcanoArgs,
)
from components.addons import QUEUE_ANNOTATION
from config.charts import mirror_for
from config.model_cache import startup_budget_minutes

try:
    loaded = config.load()
except config.ConfigError as error:
    # A clean message naming every bad key, and nothing registered.
    raise pulumi.RunError(str(error)) from None

platform = loaded.platform
for note in loaded.notes:
    pulumi.log.warn(note)


def pod_security_level(cfg: config.PlatformConfig) -> str:
    """hostPath volumes and IPC_LOCK (RDMA) are outside the baseline Pod Security Standard."""
    needs_privileged = any(
        g.network.fabric == "infiniband" or g.model_volume.type == "hostPath" for g in cfg.inference_groups
    )
    return "privileged" if needs_privileged else "baseline"


def keeps_state(cfg: config.PlatformConfig) -> bool:
    """Whether the serving namespace holds a claim the stack keeps on destroy (chat history, weights)."""
    ui = cfg.open_webui.enabled and cfg.open_webui.persistence.retain_on_destroy
    weights = any(
        g.model_volume.type == "pvc"
        and g.model_volume.pvc is not None
        and g.model_volume.pvc.create
        and g.model_volume.pvc.retain
        for g in cfg.inference_groups
    )
    return ui or weights


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
    # Deleting a namespace deletes every claim in it: a retained claim survives `pulumi destroy` only if
    # its namespace does too.
    opts=pulumi.ResourceOptions(retain_on_delete=keeps_state(platform)),
)

# Cluster add-ons: installed here (mode install), trusted to exist (present) or unavailable (absent).
versions = platform.versions
gpu_operator = None
if platform.gpu_operator.mode == "install":
    gpu_operator = GpuOperator(
        "gpu-operator",
        GpuOperatorArgs(
            config=platform.gpu_operator,
            version=versions.gpu_operator_chart,
            mirror=mirror_for(platform, "gpuOperator"),
        ),
    )
volcano = None
if platform.volcano.mode == "install" or (platform.volcano.mode == "present" and platform.volcano.queue.create):
    volcano = Volcano(
        "volcano",
        VolcanoArgs(
            config=platform.volcano,
            version=versions.volcano_chart,
            install=platform.volcano.mode == "install",
            mirror=mirror_for(platform, "volcano"),
        ),
    )
lws_controller = None
if platform.lws.mode == "install":
    lws_controller = LwsController(
        "lws",
        LwsControllerArgs(config=platform.lws, version=versions.lws_chart, mirror=mirror_for(platform, "lws")),
    )


def group_dependencies(group: config.InferenceGroup) -> list[pulumi.Resource]:
    """The LWS controller before any LeaderWorkerSet, Volcano and its queue before the groups placed in it,
    the GPU Operator before anything that asks for nvidia.com/gpu (every group does)."""
    deps: list[pulumi.Resource] = [namespace]
    if lws_controller is not None:
        deps.append(lws_controller.release)
    if gpu_operator is not None:
        deps.append(gpu_operator.release)
    if group.scheduler == "volcano" and volcano is not None:
        deps += [r for r in (volcano.release, volcano.queue) if r is not None]
    return deps


def queue_annotations(group: config.InferenceGroup) -> dict[str, str]:
    # LWS's Volcano provider reads the queue from the LeaderWorkerSet (gang PodGroups); without gang
    # scheduling Volcano reads it from each pod, so both carry it.
    if group.scheduler != "volcano":
        return {}
    return {QUEUE_ANNOTATION: platform.volcano.queue.name}


# Prometheus scrapes the leaders' /metrics on the API port from its own namespace.
client_namespaces = list(platform.api_access.allowed_namespaces)
if platform.monitoring.enabled:
    client_namespaces.append(platform.monitoring.namespace)

requirements = {"huggingface": versions.huggingface_hub, "modelscope": versions.modelscope, "s3": versions.boto3}
caches = {}
for group in platform.inference_groups:
    pvc = group.model_volume.pvc
    if group.model.download is not None or (group.model_volume.type == "pvc" and pvc is not None and pvc.create):
        caches[group.name] = ModelCache(
            f"{group.name}-model",
            ModelCacheArgs(
                group=group,
                namespace=platform.namespace,
                downloader_image=versions.model_downloader_image,
                gate_image=versions.sglang_image,
                requirement=requirements.get(group.model.source, ""),
                secrets=loaded.secrets,
                depends_on=[namespace],
            ),
        )


# The cache that creates each claim: a group may mount a claim another group's cache creates.
claim_creators = {
    g.model_volume.claim_name: caches[g.name]
    for g in platform.inference_groups
    if g.name in caches and g.model_volume.pvc is not None and g.model_volume.pvc.create
}


def cache_dependencies(group: config.InferenceGroup) -> list[pulumi.Resource]:
    """Its own cache and the one that creates the claim it mounts; not every cache, which would make each
    group wait on all downloads and the dependency graph grow with the square of the groups."""
    deps = {id(c): c for c in (caches.get(group.name), claim_creators.get(group.model_volume.claim_name)) if c}
    return list(deps.values())


groups = {}
for group in platform.inference_groups:
    cache = caches.get(group.name)
    groups[group.name] = SglangInferenceGroup(
        group.name,
        SglangInferenceGroupArgs(
            group=group,
            namespace=platform.namespace,
            image=versions.sglang_image,
            api_key=loaded.secrets.get("apiKey"),
            client_namespaces=client_namespaces,
            client_cidrs=platform.api_access.allowed_cidrs,
            annotations=queue_annotations(group),
            pod_annotations=queue_annotations(group),
            depends_on=[*group_dependencies(group), *cache_dependencies(group)],
            init_containers=cache.init_containers if cache else (),
            extra_volumes=cache.volumes if cache else (),
            startup_timeout_minutes=startup_budget_minutes(group, loaded.weights_gib.get(group.name)),
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
            chart_mirror=mirror_for(platform, "monitoring"),
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
    Keda(
        "keda",
        KedaArgs(
            namespace=platform.keda.namespace,
            chart_version=platform.versions.keda_chart,
            mirror=mirror_for(platform, "keda"),
            values=platform.keda.values,
        ),
    )
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


def addon_output(mode: str, component) -> dict:
    if component is None or getattr(component, "release", None) is None:
        return {"mode": mode}
    return {
        "mode": mode,
        "release": component.release_name,
        "namespace": component.namespace,
        "status": component.status,
    }


pulumi.export(
    "addons",
    {
        "gpuOperator": addon_output(platform.gpu_operator.mode, gpu_operator),
        "volcano": addon_output(platform.volcano.mode, volcano)
        | ({"queue": volcano.queue_name} if volcano is not None else {}),
        "lws": addon_output(platform.lws.mode, lws_controller) | {"gangScheduling": platform.lws.gang_scheduling},
        "keda": addon_output(platform.keda.mode, keda),
    },
)
