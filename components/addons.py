"""Cluster add-ons as Helm v3 releases: NVIDIA GPU Operator, Volcano (with the inference Queue) and the
LeaderWorkerSet controller (whose CRDs outlive it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..config.addons import GpuOperatorConfig, LwsConfig, VolcanoConfig
from ..facts import bom
from ..render.k8s import PART_OF, away_from_gpu_nodes, with_defaults
from .k8s import chart_values, child_opts, helm_release, namespace, release_outputs

# The lws CRD's conversion webhook names Service lws-webhook-service in lws-system, hard-coded upstream.
LWS_NAMESPACE = "lws-system"
QUEUE_ANNOTATION = "scheduling.volcano.sh/queue-name"


@dataclass
class GpuOperatorArgs:
    config: GpuOperatorConfig
    chart_version: str
    repository: str = bom.GPU_OPERATOR_REPO
    # A chart mirror (render/charts.py) replacing the repository: https://, oci:// or a chart directory.
    chart_mirror: str | None = None
    depends_on: Sequence[pulumi.Resource] = ()


@dataclass
class VolcanoArgs:
    config: VolcanoConfig
    chart_version: str
    # False: the cluster already runs Volcano; only the Queue is created (when config.queue.create).
    install: bool = True
    repository: str = bom.VOLCANO_REPO
    chart_mirror: str | None = None
    depends_on: Sequence[pulumi.Resource] = ()


@dataclass
class LwsControllerArgs:
    config: LwsConfig
    chart_version: str
    # The chart is <repository>/lws (an OCI path).
    repository: str = bom.LWS_REPO
    chart_mirror: str | None = None
    depends_on: Sequence[pulumi.Resource] = ()


class GpuOperator(pulumi.ComponentResource):
    """NVIDIA's gpu-operator chart in its own namespace, which pod security must let run privileged
    (driver, toolkit and device-plugin daemonsets use host paths and privileged containers)."""

    release: k8s.helm.v3.Release
    release_name: pulumi.Output[str]
    namespace: pulumi.Output[str]
    status: pulumi.Output[str]

    def __init__(self, name: str, args: GpuOperatorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sglang-platform:index:GpuOperator", name, None, opts)
        cfg = args.config
        ns = namespace(f"{name}-namespace", cfg.namespace, "privileged", child_opts(self, opts, *args.depends_on))
        values = chart_values(self, "gpuOperator", cfg.values, gpu_operator_values(cfg))
        self.release = helm_release(
            f"{name}-release",
            release_name="gpu-operator",
            namespace=cfg.namespace,
            chart="gpu-operator",
            version=args.chart_version,
            repository=args.repository,
            mirror=args.chart_mirror,
            values=values,
            # The operator deployment only; driver builds happen later in its daemonsets.
            timeout=900,
            opts=child_opts(self, opts, ns),
        )
        self.release_name, self.namespace, self.status = release_outputs(self.release)
        self.register_outputs({"release_name": self.release_name, "namespace": self.namespace, "status": self.status})


class Volcano(pulumi.ComponentResource):
    """The Volcano chart (when installed here) and the Queue the inference groups are placed in."""

    release: k8s.helm.v3.Release | None
    queue: k8s.apiextensions.CustomResource | None
    release_name: pulumi.Output[str | None]
    namespace: pulumi.Output[str | None]
    status: pulumi.Output[str | None]
    queue_name: pulumi.Output[str]

    def __init__(self, name: str, args: VolcanoArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sglang-platform:index:Volcano", name, None, opts)
        cfg = args.config
        self.release = None
        queue_deps: list[pulumi.Resource] = list(args.depends_on)
        if args.install:
            # The chart's scheduler mounts a hostPath (/tmp/klog-socks, templates/scheduler.yaml): under "baseline"
            # pod security its pod is refused and the release never becomes ready (found by the engine test).
            ns = namespace(f"{name}-namespace", cfg.namespace, "privileged", child_opts(self, opts, *args.depends_on))
            self.release = helm_release(
                f"{name}-release",
                # Object names are release-prefixed (volcano-scheduler, volcano-admission, ...).
                release_name="volcano",
                namespace=cfg.namespace,
                chart="volcano",
                version=args.chart_version,
                repository=args.repository,
                mirror=args.chart_mirror,
                # custom.default_affinity is that of the scheduler, controllers and admission unless one has its
                # own (volcano 1.9.0 values.yaml): off the GPU nodes where they can (components/k8s.py).
                values=chart_values(
                    self,
                    "volcano",
                    with_defaults({("custom", "default_affinity"): away_from_gpu_nodes()}, cfg.values),
                    {},
                ),
                timeout=600,
                opts=child_opts(self, opts, ns),
            )
            queue_deps = [self.release]
        self.queue = None
        if cfg.queue.create:
            self.queue = k8s.apiextensions.CustomResource(
                f"{name}-queue",
                api_version="scheduling.volcano.sh/v1beta1",
                kind="Queue",
                metadata={"name": cfg.queue.name, "labels": dict(PART_OF)},
                spec=queue_spec(cfg),
                opts=child_opts(self, opts, *queue_deps),
            )
        self.release_name, self.namespace, self.status = release_outputs(self.release)
        self.queue_name = pulumi.Output.from_input(cfg.queue.name)
        self.register_outputs(
            {
                "release_name": self.release_name,
                "namespace": self.namespace,
                "status": self.status,
                "queue_name": self.queue_name,
            }
        )


class LwsController(pulumi.ComponentResource):
    """The LeaderWorkerSet controller from its OCI chart. From chart 0.8.0 (the oldest config accepts) the CRDs
    live in the chart's crds/ directory, which Helm installs on first install and never upgrades or deletes:
    removing or upgrading the controller cannot take every LeaderWorkerSet with it (lws#880). A version bump
    applies the new CRDs first, by hand, as lws#883 describes (docs/add-ons.md)."""

    release: k8s.helm.v3.Release
    release_name: pulumi.Output[str]
    namespace: pulumi.Output[str]
    status: pulumi.Output[str]

    def __init__(self, name: str, args: LwsControllerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sglang-platform:index:LwsController", name, None, opts)
        cfg = args.config
        ns = namespace(f"{name}-namespace", LWS_NAMESPACE, "baseline", child_opts(self, opts, *args.depends_on))
        self.release = helm_release(
            f"{name}-release",
            release_name="lws",
            namespace=LWS_NAMESPACE,
            chart="lws",
            version=args.chart_version,
            repository=args.repository,
            mirror=args.chart_mirror,
            values=chart_values(self, "lws", cfg.values, lws_values(cfg, args.chart_version)),
            timeout=300,
            opts=child_opts(self, opts, ns),
        )
        self.release_name, self.namespace, self.status = release_outputs(self.release)
        self.register_outputs({"release_name": self.release_name, "namespace": self.namespace, "status": self.status})


def queue_spec(cfg: VolcanoConfig) -> dict[str, Any]:
    spec: dict[str, Any] = {"weight": cfg.queue.weight, "reclaimable": cfg.queue.reclaimable}
    if cfg.queue.capability:
        spec["capability"] = dict(cfg.queue.capability)
    return spec


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
