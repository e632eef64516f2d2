"""Rules across the add-ons and the groups that rely on them: modes, versions, gang scheduling, the queue."""

from __future__ import annotations

from decimal import Decimal

from ..config.addons import LWS_CRDS_KEPT_SINCE, LWS_GANG_SINCE, VOLCANO_DEFAULT_QUEUE, chart_version
from ..config.errors import Problem
from ..config.stack import PlatformConfig
from ..facts.quantity import parse_quantity


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
    groups need room as well. Each role of a disaggregated service counts at its own maximum."""
    out = []
    groups = [u.group for u in cfg.serving_units if u.group.scheduler == "volcano"]
    for resource, text in sorted(cfg.volcano.queue.capability.items()):
        capability = parse_quantity(text)
        parts, total = [], Decimal(0)
        for g in groups:
            per_pod = g.pod_quantities.get(resource)
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
