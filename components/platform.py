"""Platform: the whole stack as one component. ``compose`` creates the components of a validated stack, in
order, each with what it waits for, and returns the stack's outputs; ``__main__.py`` calls it at the root of
the stack (so the URNs of existing stacks stay as they were), ``Platform`` under itself (for a program that
deploys the platform beside its own resources, in any Pulumi language through the component package,
provider/). How the components are wired is ``wiring``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from ..config.stack import PlatformConfig
from ..facts.gateways import gateway_of
from ..rules.model_cache import startup_budget_minutes, weights_gib
from . import wiring as w
from .addons import GpuOperator, LwsController, Volcano
from .autoscaling import InferenceAutoscaler, Keda
from .benchmark import ServingBenchmark, ServingBenchmarkArgs
from .disaggregated import SglangDisaggregatedService, SglangDisaggregatedServiceArgs
from .gateway import SglangGateway, SglangGatewayArgs
from .k8s import child_opts
from .k8s import namespace as k8s_namespace
from .model_cache import ModelCache
from .monitoring import MonitoringStack
from .open_webui import OpenWebUI, OpenWebUIArgs
from .sglang_group import SglangInferenceGroup, SglangInferenceGroupArgs


@dataclass
class PlatformArgs:
    """A stack validated as ``config.load`` or ``config.validate`` does it (the component checks nothing
    again): the settings, the secrets by stack key (``apiKey``, ``webuiSecretKey``, ...) and each serving
    group's startup budget in minutes (``LoadedConfig.startup_minutes``)."""

    config: PlatformConfig
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    startup_minutes: Mapping[str, int] = field(default_factory=dict)


def compose(args: PlatformArgs, opts: pulumi.ResourceOptions | None = None) -> dict[str, Any]:
    """The stack's components, created with ``opts`` (a parent, a provider), and its outputs by export name."""
    platform, versions, secrets = args.config, args.config.versions, args.secrets
    opts = opts or pulumi.ResourceOptions()
    # Each serving group's startup budget: the loader's (which knows sizes measured in S3), else the group's own
    # raised to what its declared or known weights take to load.
    startup = {
        u.group.name: args.startup_minutes.get(u.group.name)
        or startup_budget_minutes(u.group, weights_gib(u.group, {})[0])
        for u in platform.serving_units
    }

    security, retain = w.pod_security_level(platform), w.keeps_state(platform)
    namespace = k8s_namespace("serving-namespace", platform.namespace, security, opts, retain=retain)

    # Cluster add-ons: installed here (mode install), trusted to exist (present) or unavailable (absent);
    # Volcano's inference queue is created on a present Volcano too.
    gpu_operator = None
    if platform.gpu_operator.mode == "install":
        gpu_operator = GpuOperator("gpu-operator", w.gpu_operator_args(platform), opts=opts)
    volcano = None
    if platform.volcano.mode == "install" or (platform.volcano.mode == "present" and platform.volcano.queue.create):
        volcano = Volcano("volcano", w.volcano_args(platform), opts=opts)
    lws = LwsController("lws", w.lws_args(platform), opts=opts) if platform.lws.mode == "install" else None

    # The weights of each group that downloads or stages them.
    caches = {
        group.name: ModelCache(
            f"{group.name}-model", w.model_cache_args(group, platform, dict(secrets), [namespace]), opts=opts
        )
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
            api_key=secrets.get("apiKey"),
            cache=caches.get(group.name),
            depends_on=[
                *w.group_dependencies(group, namespace, lws=lws, gpu_operator=gpu_operator, volcano=volcano),
                *w.cache_dependencies(group, caches, creators),
            ],
        )
        if group.disaggregation is not None:
            # Prefill and decode, each its own LeaderWorkerSet, one revision label on both (docs/disaggregation.md).
            roles = {r.name: startup[r.name] for r in group.roles.values()}
            service = SglangDisaggregatedService(
                group.name, SglangDisaggregatedServiceArgs(**shared, startup_timeout_minutes=roles), opts=opts
            )
            services[group.name] = service
            groups[f"{group.name}-prefill"], groups[f"{group.name}-decode"] = service.prefill, service.decode
            continue
        groups[group.name] = SglangInferenceGroup(
            group.name, SglangInferenceGroupArgs(**shared, startup_timeout_minutes=startup[group.name]), opts=opts
        )

    # One gateway per served model (config refuses two groups serving one name), in front of every replica of
    # its group: it finds their leader pods by label, so replicas the autoscaler adds join it without a
    # `pulumi up`. Which gateway the image runs: config's rules refuse a stack whose gateway they cannot tell.
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
            opts=opts,
        )
    fronted_model = {fronted.name: model for model, fronted in platform.gateway_routes.items()}
    outputs: dict[str, Any] = {}

    # Each group's benchmark, re-run on every new revision, through what clients call: the model's gateway when
    # one fronts the group (always, for a disaggregated service, which has one benchmark on the service's
    # revision), else the group's Service. Its result reaches the outputs after a refresh: `pulumi up --refresh`.
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
            opts=opts,
        )
        benchmarks[group.name] = w.benchmark_output(bench)
    if benchmarks:
        outputs["benchmarks"] = benchmarks

    if platform.open_webui.enabled:
        ui = OpenWebUI(
            "open-webui",
            OpenWebUIArgs(
                config=platform.open_webui,
                namespace=platform.namespace,
                image=versions.open_webui_image,
                secret_key=secrets["webuiSecretKey"],
                backends=w.ui_backends(platform, groups, gateways),
                depends_on=[namespace],
            ),
            opts=opts,
        )
        outputs["openWebui"] = {"service": ui.service_name, "url": ui.url}

    monitoring = None
    if platform.monitoring.enabled:
        targets = w.scrape_targets(platform.serving_units, groups, startup)
        password = secrets["grafanaAdminPassword"]
        monitoring = MonitoringStack(
            "monitoring", w.monitoring_args(platform, targets, password, [namespace]), opts=opts
        )
        outputs["monitoring"] = {
            "namespace": monitoring.namespace,
            "prometheusUrl": monitoring.prometheus_url,
            "grafanaService": monitoring.grafana_service,
        }

    keda = Keda("keda", w.keda_args(platform), opts=opts) if platform.keda.mode == "install" else None
    # Checked in config: every autoscaled group has one or the other.
    prometheus_address = platform.keda.prometheus_address or (monitoring.prometheus_url if monitoring else "")
    for unit in platform.serving_units:
        if unit.group.autoscaling is not None:
            autoscaled = [groups[unit.group.name], *([keda] if keda else [])]
            name = f"{unit.group.name}-autoscaler"
            InferenceAutoscaler(name, w.autoscaler_args(unit, platform, prometheus_address, autoscaled), opts=opts)

    outputs["namespace"] = platform.namespace
    outputs["inferenceGroups"] = w.group_outputs(platform, groups, services)
    if services:
        outputs["disaggregated"] = w.service_outputs(services, groups)
    if gateways:
        outputs["gateway"] = w.gateway_outputs(platform, gateways)
    outputs["addons"] = {
        "gpuOperator": w.addon_output(platform.gpu_operator.mode, gpu_operator),
        "volcano": w.addon_output(platform.volcano.mode, volcano)
        | ({"queue": volcano.queue_name} if volcano is not None else {}),
        "lws": w.addon_output(platform.lws.mode, lws) | {"gangScheduling": platform.lws.gang_scheduling},
        "keda": w.addon_output(platform.keda.mode, keda),
    }
    return outputs


class Platform(pulumi.ComponentResource):
    """The whole stack under one component: what ``__main__.py`` deploys from a stack's configuration."""

    # The stack's exports under the same names (camelCase in every language); None where the stack has no such
    # export (no gateway, monitoring off, ...).
    namespace: pulumi.Output[str]
    inference_groups: pulumi.Output[Any]
    gateway: pulumi.Output[Any] | None
    disaggregated: pulumi.Output[Any] | None
    benchmarks: pulumi.Output[Any] | None
    open_webui: pulumi.Output[Any] | None
    monitoring: pulumi.Output[Any] | None
    addons: pulumi.Output[Any]

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sglang-platform:index:Platform", name, None, opts)
        out = compose(args, child_opts(self, opts))

        def output(key: str) -> pulumi.Output[Any] | None:
            return pulumi.Output.from_input(out[key]) if key in out else None

        self.namespace = pulumi.Output.from_input(out["namespace"])
        self.inference_groups = pulumi.Output.from_input(out["inferenceGroups"])
        self.gateway = output("gateway")
        self.disaggregated = output("disaggregated")
        self.benchmarks = output("benchmarks")
        self.open_webui = output("openWebui")
        self.monitoring = output("monitoring")
        self.addons = pulumi.Output.from_input(out["addons"])
        self.register_outputs({key: out[key] for key in OUTPUTS if key in out})


# The stack's exports, by the name each has in `pulumi stack output` and in the Platform's outputs.
OUTPUTS = (
    "namespace",
    "inferenceGroups",
    "gateway",
    "disaggregated",
    "benchmarks",
    "openWebui",
    "monitoring",
    "addons",
)
