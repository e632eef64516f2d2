"""sglang-platform: composes the components from the validated stack configuration."""

from typing import Any

import pulumi

from sglang_platform import config
from sglang_platform.components import (
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
    ServingBenchmark,
    ServingBenchmarkArgs,
    SglangDisaggregatedService,
    SglangDisaggregatedServiceArgs,
    SglangGateway,
    SglangGatewayArgs,
    SglangInferenceGroup,
    SglangInferenceGroupArgs,
    Volcano,
    VolcanoArgs,
)
from sglang_platform.components.addons import QUEUE_ANNOTATION
from sglang_platform.components.k8s import namespace as k8s_namespace
from sglang_platform.facts.gateways import gateway_of
from sglang_platform.render.charts import mirror_for

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
        g.network.fabric == "infiniband"
        or g.model_volume.type == "hostPath"
        or (g.deep_gemm is not None and g.deep_gemm.cache.type == "hostPath")
        for g in (u.group for u in cfg.serving_units)
    )
    return "privileged" if needs_privileged else "baseline"


def keeps_state(cfg: config.PlatformConfig) -> bool:
    """Whether the serving namespace holds a claim the stack keeps on destroy (chat history, weights)."""
    ui = cfg.open_webui.enabled and cfg.open_webui.persistence.retain_on_destroy
    weights = any(
        g.creates_claim and g.model_volume.pvc is not None and g.model_volume.pvc.retain for g in cfg.inference_groups
    )
    return ui or weights


# Deleting a namespace deletes every claim in it: a retained claim survives `pulumi destroy` only if its
# namespace does too.
namespace = k8s_namespace(
    "serving-namespace",
    platform.namespace,
    pod_security_level(platform),
    pulumi.ResourceOptions(),
    retain=keeps_state(platform),
)

# Cluster add-ons: installed here (mode install), trusted to exist (present) or unavailable (absent).
versions = platform.versions
gpu_operator = None
if platform.gpu_operator.mode == "install":
    gpu_operator = GpuOperator(
        "gpu-operator",
        GpuOperatorArgs(
            config=platform.gpu_operator,
            chart_version=versions.gpu_operator_chart,
            chart_mirror=mirror_for(platform, "gpuOperator"),
        ),
    )
volcano = None
if platform.volcano.mode == "install" or (platform.volcano.mode == "present" and platform.volcano.queue.create):
    volcano = Volcano(
        "volcano",
        VolcanoArgs(
            config=platform.volcano,
            chart_version=versions.volcano_chart,
            install=platform.volcano.mode == "install",
            chart_mirror=mirror_for(platform, "volcano"),
        ),
    )
lws_controller = None
if platform.lws.mode == "install":
    lws_controller = LwsController(
        "lws",
        LwsControllerArgs(
            config=platform.lws, chart_version=versions.lws_chart, chart_mirror=mirror_for(platform, "lws")
        ),
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
    if group.needs_model_cache:
        caches[group.name] = ModelCache(
            f"{group.name}-model",
            ModelCacheArgs(
                config=group,
                namespace=platform.namespace,
                downloader_image=versions.model_downloader_image,
                gate_image=versions.sglang_image,
                requirement=requirements.get(group.model.source, ""),
                # The platform-wide hub of the group's source; the component lets the group's own endpoint win.
                hub_endpoint=platform.model_hubs.endpoint(group.model.source, None)[0],
                secrets=loaded.secrets,
                metrics_namespaces=[platform.monitoring.namespace] if platform.monitoring.enabled else [],
                depends_on=[namespace],
            ),
        )


# The cache that creates each claim: a group may mount a claim another group's cache creates.
claim_creators = {g.model_volume.claim_name: caches[g.name] for g in platform.inference_groups if g.creates_claim}


def cache_dependencies(group: config.InferenceGroup) -> list[pulumi.Resource]:
    """Its own cache and the one that creates the claim it mounts; not every cache, which would make each
    group wait on all downloads and the dependency graph grow with the square of the groups."""
    deps = {id(c): c for c in (caches.get(group.name), claim_creators.get(group.model_volume.claim_name)) if c}
    return list(deps.values())


# By the name of what runs: each colocated group, and each role of a disaggregated service (<name>-prefill,
# <name>-decode); the services by their own name.
groups: dict[str, SglangInferenceGroup] = {}
services: dict[str, SglangDisaggregatedService] = {}


def serving_args(group: config.InferenceGroup) -> dict[str, Any]:
    """What a colocated group and a disaggregated service are given alike."""
    cache = caches.get(group.name)
    return {
        "config": group,
        "namespace": platform.namespace,
        "image": versions.sglang_image,
        "sglang_version": versions.sglang_version,
        "api_key": loaded.secrets.get("apiKey"),
        "client_namespaces": client_namespaces,
        "client_cidrs": platform.api_access.allowed_cidrs,
        "annotations": queue_annotations(group),
        "pod_annotations": queue_annotations(group),
        "depends_on": [*group_dependencies(group), *cache_dependencies(group)],
        "init_containers": cache.init_containers if cache else (),
        "extra_volumes": cache.volumes if cache else (),
        "node_selector": cache.node_selector if cache else {},
        "group_gate_image": versions.model_downloader_image,
    }


for group in platform.inference_groups:
    if group.disaggregation is not None:
        # Prefill and decode, each its own LeaderWorkerSet, one revision label on both (docs/disaggregation.md).
        service = SglangDisaggregatedService(
            group.name,
            SglangDisaggregatedServiceArgs(
                **serving_args(group),
                startup_timeout_minutes={r.name: loaded.startup_minutes[r.name] for r in group.roles.values()},
            ),
        )
        services[group.name] = service
        groups[f"{group.name}-prefill"] = service.prefill
        groups[f"{group.name}-decode"] = service.decode
        continue
    groups[group.name] = SglangInferenceGroup(
        group.name,
        SglangInferenceGroupArgs(**serving_args(group), startup_timeout_minutes=loaded.startup_minutes[group.name]),
    )

# One gateway per served model (config refuses two groups serving one name), in front of every replica of
# its group: it finds their leader pods by label, so replicas the autoscaler adds join it without a `pulumi up`.
# A colocated group's own Service stays for direct access; a disaggregated role's answers health and metrics
# only.
gateways: dict[str, SglangGateway] = {}
gateway_names: dict[str, str] = {}
# Which gateway the image runs (rules refuses a stack whose gateway it cannot tell).
GATEWAY_PRODUCT = found[0] if (found := gateway_of(platform.versions)) else "sglang-router"
for model, fronted in platform.gateway_routes.items():
    gateway_names[model] = f"{fronted.name}-gateway"
    pd_service = services.get(fronted.name)
    backend = pd_service or groups[fronted.name]
    gateways[model] = SglangGateway(
        gateway_names[model],
        SglangGatewayArgs(
            config=platform.gateway,
            namespace=platform.namespace,
            image=versions.gateway_image,
            served_model_name=model,
            worker_port=fronted.ports.http,
            # The group's key (one stack secret): clients send it to the gateway, which passes it on.
            api_key_secret_name=backend.api_key_secret_name,
            client_namespaces=platform.api_access.allowed_namespaces,
            client_cidrs=platform.api_access.allowed_cidrs,
            monitoring_namespace=platform.monitoring.namespace if platform.monitoring.enabled else None,
            depends_on=[namespace, backend],
            pd_service=fronted.name if pd_service else None,
            pd_revision=pd_service.revision if pd_service else None,
            sglang_release=str(sglang_release) if (sglang_release := platform.versions.sglang_release) else None,
            product=GATEWAY_PRODUCT,
        ),
    )
fronted_model = {fronted.name: model for model, fronted in platform.gateway_routes.items()}


def ui_backends() -> list[Backend]:
    """What Open WebUI talks to, in stack order: each model's gateway once, and the groups no gateway fronts."""
    out: list[Backend] = []
    for group in platform.inference_groups:
        model = fronted_model.get(group.name)
        if model is None:
            g = groups[group.name]
            out.append(Backend(name=group.name, base_url=g.base_url, api_key_secret_name=g.api_key_secret_name))
        elif gateway_names[model] not in [b.name for b in out]:
            gw = gateways[model]
            out.append(
                Backend(name=gateway_names[model], base_url=gw.base_url, api_key_secret_name=gw.api_key_secret_name)
            )
    return out


# The benchmark of each group that asks for one, re-run whenever the group serves a new revision. It calls
# what clients call: the model's gateway when one fronts the group (the documented client URL), else the
# group's Service. A disaggregated service has one benchmark, through its gateway (which PD needs), re-run on
# the service's revision once both roles serve it. Its result (a ConfigMap the Job writes) reaches the stack
# output after a refresh: `pulumi up --refresh`.
benchmarks = {}
for group in platform.inference_groups:
    if group.benchmark is None:
        continue
    cache = caches.get(group.name)
    served: SglangInferenceGroup | SglangDisaggregatedService = services.get(group.name) or groups[group.name]
    gateway = gateways.get(fronted_model.get(group.name, ""))
    # A disaggregated service always has its gateway (config refuses it without one).
    target = gateway if gateway is not None else groups[group.name]
    bench = ServingBenchmark(
        f"{group.name}-benchmark",
        ServingBenchmarkArgs(
            config=group.benchmark,
            slo=platform.monitoring.slo,
            group=group,
            namespace=platform.namespace,
            image=versions.sglang_image,
            base_url=target.base_url.apply(lambda url: url.removesuffix("/v1")),
            served_model_name=served.served_model_name,
            revision=served.revision,
            api_key_secret_name=target.api_key_secret_name,
            weights_gate=cache.gate if cache else {},
            node_selector=cache.node_selector if cache else {},
            depends_on=[served, namespace, *([gateway] if gateway is not None else [])],
        ),
    )
    benchmarks[group.name] = {
        "job": bench.job_name,
        "configMap": bench.config_map_name,
        "target": bench.base_url,
        "revision": bench.revision,
        "status": bench.status,
        "passed": bench.passed,
        "result": bench.result,
    }
if benchmarks:
    pulumi.export("benchmarks", benchmarks)

if platform.open_webui.enabled:
    ui = OpenWebUI(
        "open-webui",
        OpenWebUIArgs(
            config=platform.open_webui,
            namespace=platform.namespace,
            image=platform.versions.open_webui_image,
            secret_key=loaded.secrets["webuiSecretKey"],
            backends=ui_backends(),
            depends_on=[namespace],
        ),
    )
    pulumi.export("openWebui", {"service": ui.service_name, "url": ui.url})

monitoring = None
if platform.monitoring.enabled:
    monitoring = MonitoringStack(
        "monitoring",
        MonitoringStackArgs(
            config=platform.monitoring,
            serving_namespace=platform.namespace,
            targets=[
                ScrapeTarget(
                    name=u.group.name,
                    metrics=u.group.enable_metrics,
                    api_key_secret_name=groups[u.group.name].api_key_secret_name,
                    pd_role=u.role,
                    startup_budget_minutes=loaded.startup_minutes[u.group.name],
                    # A role's pods wait for their service's DaemonSet (the weights are the service's).
                    stages_weights=u.group.model_volume.type == "hostPath" and u.group.model.download is not None,
                )
                for u in platform.serving_units
            ],
            gateways=list(gateway_names.values()),
            grafana_admin_password=loaded.secrets["grafanaAdminPassword"],
            sglang_release=str(platform.versions.sglang_release),
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
            chart_mirror=mirror_for(platform, "keda"),
            values=platform.keda.values,
        ),
    )
    if platform.keda.mode == "install"
    else None
)
for unit in platform.serving_units:
    group = unit.group
    if group.autoscaling is None:
        continue
    # Each role of a disaggregated service on its own signals (docs/disaggregation.md).
    InferenceAutoscaler(
        f"{group.name}-autoscaler",
        InferenceAutoscalerArgs(
            lws_name=group.name,
            namespace=platform.namespace,
            served_model_name=group.model.served_name,
            config=group.autoscaling,
            prometheus_address=prometheus_address,
            depends_on=[groups[group.name], *([keda] if keda else [])],
            role=unit.role,
            sglang_release=str(platform.versions.sglang_release),
        ),
    )

pulumi.export("namespace", platform.namespace)
# Client URLs of the colocated groups. A disaggregated role is not here: a completion sent to it past the
# gateway lacks the bootstrap fields that pair it with the other role, so it has no client URL.
pulumi.export(
    "inferenceGroups",
    {
        group.name: {
            "baseUrl": groups[group.name].base_url,
            "servedModelName": groups[group.name].served_model_name,
            "service": groups[group.name].service_name,
        }
        for group in platform.inference_groups
        if group.name not in services
    },
)


def role_service(g: SglangInferenceGroup) -> dict:
    root = g.base_url.apply(lambda url: url.removesuffix("/v1"))
    return {
        "service": g.service_name,
        "healthUrl": root.apply(lambda r: f"{r}/health"),
        "metricsUrl": root.apply(lambda r: f"{r}/metrics"),
    }


if services:
    # Each disaggregated service's roles and the revision both carry (kubectl get pods -l
    # sglang-platform.io/pd-revision=<revision>): the one its gateway pairs (docs/disaggregation.md). Only the
    # gateway serves the model; a role's Service is for its health and metrics.
    pulumi.export(
        "disaggregated",
        {
            name: {
                "revision": s.revision,
                "roles": {g: role_service(groups[g]) for g in (f"{name}-prefill", f"{name}-decode")},
            }
            for name, s in services.items()
        },
    )

if gateways:
    # The URL clients use (README, "How clients reach the service"), per served model.
    pulumi.export(
        "gateway",
        {
            model: {
                "baseUrl": gw.base_url,
                "service": gw.service_name,
                "group": platform.gateway_routes[model].name,
            }
            for model, gw in gateways.items()
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
