"""Cluster add-ons as Helm v3 releases: NVIDIA GPU Operator, Volcano (with the inference Queue) and the
LeaderWorkerSet controller (whose CRDs outlive it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.sglang_group import PART_OF
from config import bom
from config.addons import (
    GpuOperatorConfig,
    LwsConfig,
    VolcanoConfig,
    gpu_operator_values,
    lws_values,
    merge_values,
)
from config.charts import chart_source

# The lws CRD's conversion webhook names Service lws-webhook-service in lws-system, hard-coded upstream.
LWS_NAMESPACE = "lws-system"
QUEUE_ANNOTATION = "scheduling.volcano.sh/queue-name"


@dataclass
class GpuOperatorArgs:
    config: GpuOperatorConfig
    version: str
    repository: str = bom.GPU_OPERATOR_REPO
    # A chart mirror (config/charts.py) replacing the repository: https://, oci:// or a chart directory.
    mirror: str | None = None
    depends_on: Sequence[pulumi.Resource] = ()


@dataclass
class VolcanoArgs:
    config: VolcanoConfig
    version: str
    # False: the cluster already runs Volcano; only the Queue is created (when config.queue.create).
    install: bool = True
    repository: str = bom.VOLCANO_REPO
    mirror: str | None = None
    depends_on: Sequence[pulumi.Resource] = ()


@dataclass
class LwsControllerArgs:
    config: LwsConfig
    version: str
    # The chart is <repository>/lws (an OCI path).
    repository: str = bom.LWS_REPO
    mirror: str | None = None
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
        ns = _namespace(f"{name}-namespace", cfg.namespace, "privileged", self, args.depends_on)
        values = _values(self, "gpuOperator", cfg.values, gpu_operator_values(cfg))
        self.release = _release(
            f"{name}-release",
            self,
            release_name="gpu-operator",
            namespace=cfg.namespace,
            chart="gpu-operator",
            version=args.version,
            repository=args.repository,
            mirror=args.mirror,
            values=values,
            # The operator deployment only; driver builds happen later in its daemonsets.
            timeout=900,
            depends_on=[ns],
        )
        self.release_name, self.namespace, self.status = _release_outputs(self.release)
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
        queue_deps = list(args.depends_on)
        if args.install:
            # The chart's scheduler mounts a hostPath (/tmp/klog-socks, templates/scheduler.yaml): under "baseline"
            # pod security its pod is refused and the release never becomes ready (found by the engine test).
            ns = _namespace(f"{name}-namespace", cfg.namespace, "privileged", self, args.depends_on)
            self.release = _release(
                f"{name}-release",
                self,
                # Object names are release-prefixed (volcano-scheduler, volcano-admission, ...).
                release_name="volcano",
                namespace=cfg.namespace,
                chart="volcano",
                version=args.version,
                repository=args.repository,
                mirror=args.mirror,
                values=_values(self, "volcano", cfg.values, {}),
                timeout=600,
                depends_on=[ns],
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
                opts=pulumi.ResourceOptions(parent=self, depends_on=queue_deps),
            )
        self.release_name, self.namespace, self.status = _release_outputs(self.release)
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
    applies the new CRDs first, by hand, as lws#883 describes (README, "Cluster add-ons")."""

    release: k8s.helm.v3.Release
    release_name: pulumi.Output[str]
    namespace: pulumi.Output[str]
    status: pulumi.Output[str]

    def __init__(self, name: str, args: LwsControllerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sglang-platform:index:LwsController", name, None, opts)
        cfg = args.config
        ns = _namespace(f"{name}-namespace", LWS_NAMESPACE, "baseline", self, args.depends_on)
        self.release = _release(
            f"{name}-release",
            self,
            release_name="lws",
            namespace=LWS_NAMESPACE,
            chart="lws",
            version=args.version,
            repository=args.repository,
            mirror=args.mirror,
            values=_values(self, "lws", cfg.values, lws_values(cfg, args.version)),
            timeout=300,
            depends_on=[ns],
        )
        self.release_name, self.namespace, self.status = _release_outputs(self.release)
        self.register_outputs({"release_name": self.release_name, "namespace": self.namespace, "status": self.status})


def queue_spec(cfg: VolcanoConfig) -> dict[str, Any]:
    spec: dict[str, Any] = {"weight": cfg.queue.weight, "reclaimable": cfg.queue.reclaimable}
    if cfg.queue.capability:
        spec["capability"] = dict(cfg.queue.capability)
    return spec


def _namespace(
    resource_name: str, name: str, level: str, parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource]
) -> k8s.core.v1.Namespace:
    return k8s.core.v1.Namespace(
        resource_name,
        metadata={
            "name": name,
            "labels": {
                **PART_OF,
                "pod-security.kubernetes.io/enforce": level,
                "pod-security.kubernetes.io/warn": level,
            },
        },
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def _values(component: pulumi.Resource, key: str, raw: dict[str, Any], typed: dict[str, Any]) -> dict[str, Any]:
    values, conflicts = merge_values(raw, typed)
    for path in conflicts:
        pulumi.log.warn(
            f"sglang-platform:{key}.values.{path} is also set by a typed key; the typed value wins",
            resource=component,
        )
    return values


def _release(
    resource_name: str,
    parent: pulumi.Resource,
    *,
    release_name: str,
    namespace: str,
    chart: str,
    version: str,
    repository: str,
    mirror: str | None,
    values: dict[str, Any],
    timeout: int,
    depends_on: Sequence[pulumi.Resource],
) -> k8s.helm.v3.Release:
    """A pinned chart from its repository (https:// or an oci:// path) or from the stack's chart mirror."""
    source = chart_source(chart, version, repository, mirror)
    return k8s.helm.v3.Release(
        resource_name,
        name=release_name,
        namespace=namespace,
        chart=source.chart,
        version=source.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=source.repository) if source.repository else None,
        values=values,
        # A failed install or upgrade is rolled back instead of leaving half a release behind.
        cleanup_on_fail=True,
        timeout=timeout,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def _release_outputs(release: k8s.helm.v3.Release | None) -> tuple[pulumi.Output, pulumi.Output, pulumi.Output]:
    if release is None:
        none = pulumi.Output.from_input(None)
        return none, none, none
    status = release.status.apply(lambda s: s.status if s is not None else None)
    return release.name, release.namespace, status
