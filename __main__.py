"""sglang-platform: the components of the loaded stack, in order, each with what it waits for, and the exports.
How they are wired (dependencies, shared arguments, the UI's backends, the outputs' shapes) is
sglang_platform.components.wiring."""

import pulumi

from sglang_platform import config
from sglang_platform.components import (
    GpuOperator,
    InferenceAutoscaler,
    Keda,
    LwsController,
    ModelCache,
    MonitoringStack,
    OpenWebUI,
    OpenWebUIArgs,
    ServingBenchmark,
    ServingBenchmarkArgs,
    SglangDisaggregatedService,
    SglangDisaggregatedServiceArgs,
    SglangGateway,
    SglangGatewayArgs,
    SglangInferenceGroup,
    SglangInferenceGroupArgs,
    Volcano,
)
from sglang_platform.components import wiring as w
from sglang_platform.components.k8s import namespace as k8s_namespace
from sglang_platform.facts.gateways import gateway_of

try:
    loaded = config.load()
except config.ConfigError as error:
    # A clean message naming every bad key, and nothing registered.
    raise pulumi.RunError(str(error)) from None
platform, versions = loaded.platform, loaded.platform.versions
for note in loaded.notes:
    pulumi.log.warn(note)

security, retain = w.pod_security_level(platform), w.keeps_state(platform)
namespace = k8s_namespace("serving-namespace", platform.namespace, security, pulumi.ResourceOptions(), retain=retain)

# Cluster add-ons: installed here (mode install), trusted to exist (present) or unavailable (absent); Volcano's
# inference queue is created on a present Volcano too.
gpu_operator = (
    GpuOperator("gpu-operator", w.gpu_operator_args(platform)) if platform.gpu_operator.mode == "install" else None
)
volcano = None
if platform.volcano.mode == "install" or (platform.volcano.mode == "present" and platform.volcano.queue.create):
    volcano = Volcano("volcano", w.volcano_args(platform))
lws = LwsController("lws", w.lws_args(platform)) if platform.lws.mode == "install" else None

# The weights of each group that downloads or stages them.
caches = {
    group.name: ModelCache(f"{group.name}-model", w.model_cache_args(group, platform, loaded.secrets, [namespace]))
    for group in platform.inference_groups
    if group.needs_model_cache
}
creators = w.claim_creators(platform.inference_groups, caches)

# By the name of what runs: each colocated group, and each role of a disaggregated service (<name>-prefill,
# <name>-decode); the services by their own name.
groups: dict[str, SglangInferenceGroup] = {}
services: dict[str, SglangDisaggregatedService] = {}
for group in platform.inference_groups:
    shared = w.serving_args(
        group,
        platform,
        api_key=loaded.secrets.get("apiKey"),
        cache=caches.get(group.name),
        depends_on=[
            *w.group_dependencies(group, namespace, lws=lws, gpu_operator=gpu_operator, volcano=volcano),
            *w.cache_dependencies(group, caches, creators),
        ],
    )
    if group.disaggregation is not None:
        # Prefill and decode, each its own LeaderWorkerSet, one revision label on both (docs/disaggregation.md).
        roles = {r.name: loaded.startup_minutes[r.name] for r in group.roles.values()}
        service = SglangDisaggregatedService(
            group.name, SglangDisaggregatedServiceArgs(**shared, startup_timeout_minutes=roles)
        )
        services[group.name] = service
        groups[f"{group.name}-prefill"], groups[f"{group.name}-decode"] = service.prefill, service.decode
        continue
    groups[group.name] = SglangInferenceGroup(
        group.name, SglangInferenceGroupArgs(**shared, startup_timeout_minutes=loaded.startup_minutes[group.name])
    )

# One gateway per served model (config refuses two groups serving one name), in front of every replica of
# its group: it finds their leader pods by label, so replicas the autoscaler adds join it without a `pulumi up`.
# Which gateway the image runs: config's rules refuse a stack whose gateway they cannot tell.
product = found[0] if (found := gateway_of(versions)) else "sglang-router"
gateways: dict[str, SglangGateway] = {}
for model, fronted in platform.gateway_routes.items():
    pd_service = services.get(fronted.name)
    backend = pd_service or groups[fronted.name]
    gateways[model] = SglangGateway(
        w.gateway_name(fronted),
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
            sglang_release=str(release) if (release := versions.sglang_release) else None,
            product=product,
        ),
    )
fronted_model = {fronted.name: model for model, fronted in platform.gateway_routes.items()}

# Each group's benchmark, re-run on every new revision, through what clients call: the model's gateway when one
# fronts the group (always, for a disaggregated service, which has one benchmark on the service's revision),
# else the group's Service. Its result reaches the stack output after a refresh: `pulumi up --refresh`.
benchmarks = {}
for group in platform.inference_groups:
    if group.benchmark is None:
        continue
    cache = caches.get(group.name)
    served: SglangInferenceGroup | SglangDisaggregatedService = services.get(group.name) or groups[group.name]
    gateway = gateways.get(fronted_model.get(group.name, ""))
    target = gateway if gateway is not None else groups[group.name]
    bench = ServingBenchmark(
        f"{group.name}-benchmark",
        ServingBenchmarkArgs(
            config=group.benchmark,
            slo=platform.monitoring.slo,
            group=group,
            namespace=platform.namespace,
            image=versions.sglang_image,
            base_url=w.without_v1(target.base_url),
            served_model_name=served.served_model_name,
            revision=served.revision,
            api_key_secret_name=target.api_key_secret_name,
            weights_gate=cache.gate if cache else {},
            node_selector=cache.node_selector if cache else {},
            depends_on=[served, namespace, *([gateway] if gateway is not None else [])],
        ),
    )
    benchmarks[group.name] = w.benchmark_output(bench)
if benchmarks:
    pulumi.export("benchmarks", benchmarks)

if platform.open_webui.enabled:
    ui = OpenWebUI(
        "open-webui",
        OpenWebUIArgs(
            config=platform.open_webui,
            namespace=platform.namespace,
            image=versions.open_webui_image,
            secret_key=loaded.secrets["webuiSecretKey"],
            backends=w.ui_backends(platform, groups, gateways),
            depends_on=[namespace],
        ),
    )
    pulumi.export("openWebui", {"service": ui.service_name, "url": ui.url})

monitoring = None
if platform.monitoring.enabled:
    targets = w.scrape_targets(platform.serving_units, groups, loaded.startup_minutes)
    password = loaded.secrets["grafanaAdminPassword"]
    monitoring = MonitoringStack("monitoring", w.monitoring_args(platform, targets, password, [namespace]))
    outputs = {"namespace": monitoring.namespace, "prometheusUrl": monitoring.prometheus_url}
    pulumi.export("monitoring", outputs | {"grafanaService": monitoring.grafana_service})

keda = Keda("keda", w.keda_args(platform)) if platform.keda.mode == "install" else None
# Checked in config: every autoscaled group has one or the other.
prometheus_address = platform.keda.prometheus_address or (monitoring.prometheus_url if monitoring else "")
for unit in platform.serving_units:
    if unit.group.autoscaling is not None:
        autoscaled = [groups[unit.group.name], *([keda] if keda else [])]
        name = f"{unit.group.name}-autoscaler"
        InferenceAutoscaler(name, w.autoscaler_args(unit, platform, prometheus_address, autoscaled))

pulumi.export("namespace", platform.namespace)
pulumi.export("inferenceGroups", w.group_outputs(platform, groups, services))
if services:
    pulumi.export("disaggregated", w.service_outputs(services, groups))
if gateways:
    pulumi.export("gateway", w.gateway_outputs(platform, gateways))
pulumi.export(
    "addons",
    {
        "gpuOperator": w.addon_output(platform.gpu_operator.mode, gpu_operator),
        "volcano": w.addon_output(platform.volcano.mode, volcano)
        | ({"queue": volcano.queue_name} if volcano is not None else {}),
        "lws": w.addon_output(platform.lws.mode, lws) | {"gangScheduling": platform.lws.gang_scheduling},
        "keda": w.addon_output(platform.keda.mode, keda),
    },
)
