"""Rules of group autoscaling: bounds, and what KEDA needs to run the scalers."""

from __future__ import annotations

from ..config.autoscaling import SIGNALS, GroupAutoscaling
from ..config.errors import Problem
from ..config.stack import PlatformConfig

# The signals each role of a disaggregated service scales on (docs/disaggregation.md): prefill on the requests
# waiting for it and how long their first token takes, decode on its KV cache and the pace of its tokens.
# Prefill's KV cache holds a prompt only until decode takes it over, and decode's queue and first tokens wait
# on prefill: neither says the role itself is short.
ROLE_SIGNALS = {
    "prefill": ("queue_depth_per_group", "ttft_seconds"),
    "decode": ("kv_cache_usage", "inter_token_latency_seconds"),
    None: ("queue_depth_per_group", "kv_cache_usage"),
}
_WHY = {
    "prefill": "prefill scales on its queue and the time to first token (its KV cache holds a prompt only "
    "until decode takes it over)",
    "decode": "decode scales on its KV-cache usage and the inter-token latency (its queue and first tokens wait "
    "on prefill)",
    None: "a colocated group scales on queue depth and KV-cache usage; the latency targets are for the roles of "
    "a disaggregated service",
}


def check_autoscaling(cfg: PlatformConfig) -> list[Problem]:
    out: list[Problem] = []
    for unit in cfg.serving_units:
        g = unit.group
        scaling = g.autoscaling
        if scaling is None:
            continue
        loc = unit.loc(("autoscaling",))
        found: list[Problem] = []
        if scaling.min_replicas > scaling.max_replicas:
            found.append(
                Problem(
                    (*loc, "minReplicas"),
                    f"minReplicas {scaling.min_replicas} is above maxReplicas {scaling.max_replicas}",
                )
            )
        for name in sorted(scaling.model_fields_set - set(ROLE_SIGNALS[unit.role])):
            if name not in SIGNALS:
                continue
            key = GroupAutoscaling.model_fields[name].alias or name
            found.append(Problem((*loc, key), f"not a signal of this group: {_WHY[unit.role]}"))
        if cfg.keda.mode == "absent":
            found.append(
                Problem(
                    loc,
                    "autoscaling needs KEDA: set sglang-platform:keda.mode to install (this stack installs it) "
                    "or present (the cluster already runs it)",
                )
            )
        if not cfg.monitoring.enabled and cfg.keda.prometheus_address is None:
            found.append(
                Problem(
                    loc,
                    "autoscaling reads SGLang's metrics from Prometheus: enable sglang-platform:monitoring or set "
                    "sglang-platform:keda.prometheusAddress to a Prometheus that scrapes the groups",
                )
            )
        out += [p for p in found if p not in out]
    return out
