"""Cluster add-ons the platform can install, or trust the cluster to run: NVIDIA GPU Operator, Volcano and
the LeaderWorkerSet controller (stack keys ``sglang-platform:gpuOperator``, ``:volcano``, ``:lws``).

``mode`` says who runs an add-on: ``install`` (this stack installs it and the groups depend on it),
``present`` (the cluster already runs it; nothing is installed, the groups may rely on it) or ``absent``
(nothing may rely on it).
"""

from __future__ import annotations

from typing import Any, Literal

from packaging.version import Version
from pydantic import Field

from ..facts.compat import FEATURES
from .base import DNS_LABEL, Base, ChartMirror, DnsLabel, Quantity, mirror_field, values_field

Mode = Literal["install", "present", "absent"]
MODE_HELP = "install: this stack installs it; present: the cluster already runs it; absent: not available."

# gangSchedulingManagement (the volcano PodGroup provider), and the chart keeping its CRDs in crds/ (which Helm
# installs once and never deletes; before, an upgrade or uninstall deleted them): the releases and evidence are
# in facts/compat.py's feature table.
LWS_GANG_SINCE = FEATURES["gangScheduling"].version
LWS_CRDS_KEPT_SINCE = FEATURES["crdsKeptOnUpgrade"].version
# Volcano creates this queue itself; a stack-managed queue of that name would fight the controller.
VOLCANO_DEFAULT_QUEUE = "default"


def chart_version(text: str) -> Version:
    return Version(text.removeprefix("v"))


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
    values: dict[str, Any] = values_field()
    chart_mirror: ChartMirror = mirror_field()


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
    values: dict[str, Any] = values_field()
    chart_mirror: ChartMirror = mirror_field()


class LwsConfig(Base):
    mode: Mode = Field("present", description="LeaderWorkerSet controller. " + MODE_HELP)
    gang_scheduling: bool = Field(
        False,
        description="Volcano gang scheduling (gangSchedulingManagement.schedulerProvider: volcano): a group's pods "
        "are admitted together or not at all. With mode present, declares the cluster's controller runs it.",
    )
    values: dict[str, Any] = values_field()
    chart_mirror: ChartMirror = mirror_field()
