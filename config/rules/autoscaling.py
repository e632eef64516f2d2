"""Rules of group autoscaling: bounds, and what KEDA needs to run the scalers."""

from __future__ import annotations

from config.errors import Problem
from config.models import PlatformConfig


def check_autoscaling(cfg: PlatformConfig) -> list[Problem]:
    out: list[Problem] = []
    for i, g in enumerate(cfg.inference_groups):
        scaling = g.autoscaling
        if scaling is None:
            continue
        loc: tuple[str | int, ...] = ("inferenceGroups", i, "autoscaling")
        if scaling.min_replicas > scaling.max_replicas:
            out.append(
                Problem(
                    (*loc, "minReplicas"),
                    f"minReplicas {scaling.min_replicas} is above maxReplicas {scaling.max_replicas}",
                )
            )
        if cfg.keda.mode == "absent":
            out.append(
                Problem(
                    loc,
                    "autoscaling needs KEDA: set sglang-platform:keda.mode to install (this stack installs it) "
                    "or present (the cluster already runs it)",
                )
            )
        if not cfg.monitoring.enabled and cfg.keda.prometheus_address is None:
            out.append(
                Problem(
                    loc,
                    "autoscaling reads SGLang's metrics from Prometheus: enable sglang-platform:monitoring or set "
                    "sglang-platform:keda.prometheusAddress to a Prometheus that scrapes the groups",
                )
            )
    return out
