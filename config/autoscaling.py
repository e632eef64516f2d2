"""Elastic scaling of inference groups on SGLang's own load signals (KEDA ScaledObjects)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import Base, ChartMirror, mirror_field, values_field


class GroupAutoscaling(Base):
    """Scale whole groups (the LeaderWorkerSet's scale subresource) on queue depth and KV-cache usage.

    A new DeepSeek-R1 group is 16 GPUs and a long weight load, so the defaults add at most one group per
    10 minutes and remove at most one per 15 minutes, after 30 minutes of low load."""

    min_replicas: int = Field(1, ge=1, le=1000, description="Fewest groups (a cold start costs a full weight load).")
    max_replicas: int = Field(ge=1, le=1000, description="Most groups; must fit the Volcano queue's GPUs.")
    queue_depth_per_group: float = Field(
        8, gt=0, le=100_000, description="Target queued requests per group (sglang:num_queue_reqs)."
    )
    kv_cache_usage: float = Field(
        0.85, gt=0, le=1, description="Target average KV-cache usage per group (sglang:token_usage, 0-1)."
    )
    ttft_seconds: float | None = Field(
        None,
        gt=0,
        le=600,
        description="Prefill of a disaggregated service: target p90 time to first token (its "
        "sglang:time_to_first_token_seconds); groups are added while it is slower.",
    )
    inter_token_latency_seconds: float | None = Field(
        None,
        gt=0,
        le=60,
        description="Decode of a disaggregated service: target p90 inter-token latency (the release's "
        "inter-token histogram); groups are added while it is slower.",
    )
    polling_interval_seconds: int = Field(30, ge=5, le=3600, description="How often KEDA queries Prometheus.")
    scale_up_stabilization_seconds: int = Field(
        120, ge=0, le=3600, description="Load must stay high this long before a group is added."
    )
    scale_up_period_seconds: int = Field(600, ge=15, le=7200, description="At most one group added per period.")
    scale_down_stabilization_seconds: int = Field(
        1800, ge=0, le=3600, description="Load must stay low this long before a group is removed."
    )
    scale_down_period_seconds: int = Field(900, ge=15, le=7200, description="At most one group removed per period.")


# The load signals a group can scale on (each a KEDA trigger); which a group uses depends on its role
# (rules/autoscaling.py ROLE_SIGNALS).
SIGNALS = ("queue_depth_per_group", "kv_cache_usage", "ttft_seconds", "inter_token_latency_seconds")


class KedaConfig(Base):
    mode: Literal["install", "present", "absent"] = Field(
        "absent", description="install: this stack installs KEDA; present: the cluster runs it; absent: no KEDA."
    )
    namespace: str = Field("keda", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="KEDA's namespace.")
    prometheus_address: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(:\d+)?(/\S*)?$",
        description="Prometheus KEDA queries; defaults to the monitoring stack's in-cluster Prometheus.",
    )
    values: dict[str, Any] = values_field()
    chart_mirror: ChartMirror = mirror_field()
