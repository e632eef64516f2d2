"""Cluster add-ons the platform can install, or trust the cluster to run: NVIDIA GPU Operator, Volcano and
the LeaderWorkerSet controller (stack keys ``sglang-platform:gpuOperator``, ``:volcano``, ``:lws``).

``mode`` says who runs an add-on: ``install`` (this stack installs it and the groups depend on it),
``present`` (the cluster already runs it; nothing is installed, the groups may rely on it) or ``absent``
(nothing may rely on it).
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from packaging.version import Version
from pydantic import AfterValidator, Field

from config.base import DNS_LABEL, Base, DnsLabel, Quantity
from config.charts import validate_mirror
from config.errors import Problem
from config.quantity import parse_quantity

if TYPE_CHECKING:
    from config.models import InferenceGroup, PlatformConfig

Mode = Literal["install", "present", "absent"]
MODE_HELP = "install: this stack installs it; present: the cluster already runs it; absent: not available."

# gangSchedulingManagement (the volcano PodGroup provider) first shipped in lws v0.7.0 (lws#498).
LWS_GANG_SINCE = Version("0.7.0")
# From 0.8.0 the chart keeps its CRDs in crds/, which Helm installs once and never deletes (lws#718); up to
# 0.7.0 it renders the CRD as part of the release, so an upgrade or uninstall deletes it (lws#880).
LWS_CRDS_KEPT_SINCE = Version("0.8.0")
# Volcano creates this queue itself; a stack-managed queue of that name would fight the controller.
VOLCANO_DEFAULT_QUEUE = "default"


def chart_version(text: str) -> Version:
    return Version(text.removeprefix("v"))


def _raw_values() -> Any:
    return Field(default_factory=dict, description="Raw chart values under the typed keys (which win conflicts).")


def _chart_mirror() -> Any:
    return Field(
        "",
        description="Where this chart comes from instead of sglang-platform:chartMirror: a Helm repository "
        "(https://...), an OCI path (oci://...) or a directory of unpacked <chart>-<version>/ charts.",
    )


ChartMirror = Annotated[str, AfterValidator(validate_mirror)]


class DriverConfig(Base):
    managed: bool = Field(
        True,
        description="The operator installs the driver (and, on NVSwitch systems, Fabric Manager inside the driver "
        "container); false when the hosts have it preinstalled.",
    )
    version: str | None = Field(
        None, pattern=r"^\d+\.\d+(\.\d+)?$", description="Driver version when managed (chart default otherwise)."
    )
    open_kernel_modules: bool = Field(False, description="driver.useOpenKernelModules.")
    rdma: bool = Field(False, description="GPUDirect RDMA: the driver container loads nvidia-peermem (driver.rdma).")
    use_host_mofed: bool = Field(
        False, description="MOFED/DOCA is installed on the hosts, not by the Network Operator (driver.rdma)."
    )


class DcgmExporterConfig(Base):
    enabled: bool = Field(True, description="GPU metrics exporter (:9400, port gpu-metrics).")
    service_monitor: bool = Field(
        False, description="The operator creates a ServiceMonitor for it (needs the prometheus-operator CRDs)."
    )
    service_monitor_interval: str = Field("15s", pattern=r"^\d+(ms|s|m)$", description="Scrape interval.")
    service_monitor_labels: dict[str, str] = Field(
        default_factory=dict, description="Extra ServiceMonitor labels (e.g. release: <kube-prometheus-stack>)."
    )


class GpuOperatorConfig(Base):
    mode: Mode = Field("present", description="NVIDIA GPU Operator. " + MODE_HELP)
    namespace: DnsLabel = Field("gpu-operator", description="Namespace of the release (pod-security privileged).")
    driver: DriverConfig = Field(default_factory=DriverConfig)
    toolkit: bool = Field(True, description="NVIDIA container toolkit (toolkit.enabled).")
    device_plugin: bool = Field(True, description="Device plugin advertising nvidia.com/gpu (devicePlugin.enabled).")
    mig_strategy: Literal["none", "single", "mixed"] = Field("single", description="mig.strategy.")
    node_feature_discovery: bool = Field(
        True, description="Bundled node-feature-discovery (nfd.enabled); false when NFD already runs."
    )
    dcgm_exporter: DcgmExporterConfig = Field(default_factory=DcgmExporterConfig)
    values: dict[str, Any] = _raw_values()
    chart_mirror: ChartMirror = _chart_mirror()


class QueueConfig(Base):
    name: str = Field(
        "inference", pattern=DNS_LABEL, max_length=63, description="Volcano Queue the inference groups run in."
    )
    create: bool = Field(True, description="The stack creates the Queue; false to use an existing one by name.")
    weight: int = Field(1, ge=1, le=65535, description="Share of the cluster against other queues.")
    reclaimable: bool = Field(False, description="Other queues may reclaim its idle resources.")
    capability: dict[str, Quantity] = Field(
        default_factory=dict, description='Upper bound of what the queue may use, e.g. {"nvidia.com/gpu": "16"}.'
    )


class VolcanoConfig(Base):
    mode: Mode = Field("present", description="Volcano batch scheduler. " + MODE_HELP)
    namespace: DnsLabel = Field("volcano-system", description="Namespace of the release.")
    queue: QueueConfig = Field(default_factory=QueueConfig)
    values: dict[str, Any] = _raw_values()
    chart_mirror: ChartMirror = _chart_mirror()


class LwsConfig(Base):
    mode: Mode = Field("present", description="LeaderWorkerSet controller. " + MODE_HELP)
    gang_scheduling: bool = Field(
        False,
        description="Volcano gang scheduling (gangSchedulingManagement.schedulerProvider: volcano): a group's pods "
        "are admitted together or not at all. With mode present, declares the cluster's controller runs it.",
    )
    values: dict[str, Any] = _raw_values()
    chart_mirror: ChartMirror = _chart_mirror()


def merge_values(raw: dict[str, Any], typed: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Raw chart values with the typed ones on top, and the dotted keys where the typed value replaced a
    different raw one (so the caller can say so)."""
    merged = copy.deepcopy(raw)
    conflicts: list[str] = []

    def walk(into: dict[str, Any], over: dict[str, Any], path: str) -> None:
        for key, value in over.items():
            here = f"{path}.{key}" if path else key
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                walk(into[key], value, here)
                continue
            if key in into and into[key] != value:
                conflicts.append(here)
            into[key] = copy.deepcopy(value)

    walk(merged, typed, "")
    return merged, conflicts


def gpu_operator_values(cfg: GpuOperatorConfig) -> dict[str, Any]:
    """The typed subset as gpu-operator v24.9.x chart values (deployments/gpu-operator/values.yaml)."""
    driver: dict[str, Any] = {
        "enabled": cfg.driver.managed,
        "useOpenKernelModules": cfg.driver.open_kernel_modules,
        "rdma": {"enabled": cfg.driver.rdma, "useHostMofed": cfg.driver.use_host_mofed},
    }
    if cfg.driver.version is not None:
        driver["version"] = cfg.driver.version
    exporter = cfg.dcgm_exporter
    return {
        "driver": driver,
        "toolkit": {"enabled": cfg.toolkit},
        "devicePlugin": {"enabled": cfg.device_plugin},
        "mig": {"strategy": cfg.mig_strategy},
        "nfd": {"enabled": cfg.node_feature_discovery},
        "dcgmExporter": {
            "enabled": exporter.enabled,
            "serviceMonitor": {
                "enabled": exporter.service_monitor,
                "interval": exporter.service_monitor_interval,
                "additionalLabels": dict(exporter.service_monitor_labels),
            },
        },
    }


def lws_values(cfg: LwsConfig, version: str) -> dict[str, Any]:
    """lws chart values: the controller image pinned to the chart's release (OCI chart 0.6.2 shipped
    image tag main, lws#596) and gang scheduling through Volcano when asked."""
    values: dict[str, Any] = {
        "image": {"manager": {"tag": "v" + version.removeprefix("v"), "pullPolicy": "IfNotPresent"}},
        "gangSchedulingManagement": {"schedulerProvider": "volcano"} if cfg.gang_scheduling else {},
    }
    return values


def pod_requests(group: InferenceGroup) -> dict[str, str]:
    """What each pod of a group requests (and limits), by resource name."""
    quantities = {
        "cpu": group.resources.cpu,
        "memory": group.resources.memory,
        "nvidia.com/gpu": str(group.gpus_per_node),
    }
    if group.network.fabric == "infiniband":
        quantities[group.network.rdma_resource] = str(group.network.rdma_devices_per_node)
    return quantities


def check_addons(cfg: PlatformConfig) -> list[Problem]:
    """Rules across the add-ons and the groups that rely on them."""
    out: list[Problem] = []
    lws, volcano, gpu = cfg.lws, cfg.volcano, cfg.gpu_operator
    lws_version = chart_version(cfg.versions.lws_chart)

    if lws.mode == "absent":
        out.append(
            Problem(
                ("lws", "mode"),
                "every inference group is a LeaderWorkerSet, so the LWS controller cannot be absent: "
                "set install (this stack installs it) or present (the cluster runs it)",
            )
        )
    if lws.mode == "install" and lws_version < LWS_CRDS_KEPT_SINCE:
        out.append(
            Problem(
                ("versions", "lwsChart"),
                f"lws chart {cfg.versions.lws_chart} renders the LeaderWorkerSet CRD as part of the release, so an "
                f"upgrade or removal deletes it and every group with it (lws#880): install {LWS_CRDS_KEPT_SINCE} "
                "or later",
            )
        )
    if lws.gang_scheduling:
        if volcano.mode == "absent":
            out.append(
                Problem(
                    ("lws", "gangScheduling"),
                    "gang scheduling runs through Volcano, but sglang-platform:volcano.mode is absent: set it to "
                    "install or present, or turn gangScheduling off",
                )
            )
        if lws_version < LWS_GANG_SINCE:
            out.append(
                Problem(
                    ("versions", "lwsChart"),
                    f"gang scheduling (lws.gangScheduling) needs LeaderWorkerSet {LWS_GANG_SINCE} or later "
                    f"(gangSchedulingManagement, lws#498); the version is {cfg.versions.lws_chart}",
                )
            )

    for i, group in enumerate(cfg.inference_groups):
        loc = ("inferenceGroups", i, "scheduler")
        if group.scheduler == "volcano" and volcano.mode == "absent":
            out.append(
                Problem(
                    loc,
                    "scheduler volcano, but sglang-platform:volcano.mode is absent: set it to install (this stack "
                    "installs Volcano) or present (the cluster runs it), or use scheduler default",
                )
            )
        if group.scheduler != "volcano" and lws.gang_scheduling:
            out.append(
                Problem(
                    loc,
                    "lws.gangScheduling is on, so the controller gives every LeaderWorkerSet a Volcano PodGroup and a "
                    "group the default scheduler places never starts (lws#630): use scheduler volcano",
                )
            )

    queue = volcano.queue
    if volcano.mode != "absent" and queue.create:
        if queue.name == VOLCANO_DEFAULT_QUEUE:
            out.append(
                Problem(
                    ("volcano", "queue", "name"),
                    "'default' is the queue Volcano creates itself: choose another name, or set queue.create to false "
                    "to place the groups in it as it is",
                )
            )
        out += _check_queue_capability(cfg)

    if gpu.driver.rdma and not gpu.driver.managed:
        out.append(
            Problem(
                ("gpuOperator", "driver", "rdma"),
                "GPUDirect RDMA is set up by the operator's driver container (nvidia-peermem); with a preinstalled "
                "driver (driver.managed false) load nvidia-peermem on the hosts and leave this false",
            )
        )
    if gpu.driver.version is not None and not gpu.driver.managed:
        out.append(Problem(("gpuOperator", "driver", "version"), "only used when driver.managed is true"))
    if gpu.driver.use_host_mofed and not gpu.driver.rdma:
        out.append(Problem(("gpuOperator", "driver", "useHostMofed"), "only used when driver.rdma is true"))
    for key, addon in (("gpuOperator", gpu), ("volcano", volcano), ("lws", lws), ("keda", cfg.keda)):
        if addon.values and addon.mode != "install":
            out.append(Problem((key, "values"), f"chart values only apply when mode is install (it is {addon.mode})"))
        if addon.chart_mirror and addon.mode != "install":
            out.append(Problem((key, "chartMirror"), f"only used when mode is install (it is {addon.mode})"))
    return out


def _check_queue_capability(cfg: PlatformConfig) -> list[Problem]:
    """Gang-scheduled groups beyond the queue's capability are never admitted; a rolling update's surge
    groups need room as well."""
    out = []
    groups = [g for g in cfg.inference_groups if g.scheduler == "volcano"]
    for resource, text in sorted(cfg.volcano.queue.capability.items()):
        capability = parse_quantity(text)
        parts, total = [], Decimal(0)
        for g in groups:
            per_pod = pod_requests(g).get(resource)
            if per_pod is None:
                continue
            # An autoscaled group may grow to maxReplicas: a scale-up the queue cannot admit waits forever
            # behind the gang scheduler while the autoscaler believes it has added capacity.
            replicas, label = (
                (g.autoscaling.max_replicas, "autoscaling.maxReplicas")
                if g.autoscaling is not None
                else (g.replicas, "replicas")
            )
            count = replicas + g.rollout.max_surge
            need = count * g.nodes * parse_quantity(per_pod)
            total += need
            parts.append(f"{g.name} ({replicas} {label} + {g.rollout.max_surge} surge) x {g.nodes} pods x {per_pod}")
        if total > capability:
            out.append(
                Problem(
                    ("volcano", "queue", "capability"),
                    f"{resource} {text} is less than the groups in the queue need: {'; '.join(parts)}; "
                    f"in all {_plain(total)}. Groups beyond the capability are never admitted: raise it, or lower "
                    "replicas, autoscaling.maxReplicas or rollout.maxSurge",
                )
            )
    return out


def _plain(value: Decimal) -> str:
    """A total in the largest binary unit that divides it (6Ti rather than 6597069766656)."""
    for suffix, power in (("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20)):
        unit = Decimal(2**power)
        if value >= unit and value % unit == 0:
            return f"{value // unit}{suffix}"
    return format(value.normalize(), "f")
