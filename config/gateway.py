"""Stack keys of the gateway in front of the inference groups (``sglang-platform:gateway``).

SGLang's model gateway (PyPI ``sglang-router``, image ``lmsysorg/sgl-model-gateway``), one per served model:
it finds the groups' leader pods through the Kubernetes API and routes each request to one of them. The
defaults here are the pinned release's own (``sglang_router/router_args.py`` of 0.3.2) unless a comment
says why not; docs/gateway.md explains each knob.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Base, DnsLabel, Port, Quantity


class CacheAware(Base):
    """Knobs of the cache_aware policy: route to the group whose radix tree shares the longest prefix with
    the request, unless the load is unbalanced, then to the least loaded."""

    cache_threshold: float = Field(
        0.3, ge=0, le=1, description="Prefix match rate above which a request goes to the group holding it."
    )
    balance_abs_threshold: int = Field(
        64,
        ge=0,
        description="Load counts as unbalanced when the busiest group runs more requests than the idlest by this...",
    )
    balance_rel_threshold: float = Field(
        1.5, ge=1, description="...and by this factor; the idlest group then gets the request, whatever it caches."
    )
    eviction_interval_seconds: int = Field(
        60, ge=1, le=86_400, description="How often the gateway trims its approximate radix trees."
    )
    max_tree_size: int = Field(
        2**26, ge=1, le=2**34, description="Size bound of each tree (the gateway's memory grows with it)."
    )


class GatewayRetries(Base):
    enabled: bool = Field(
        True, description="Send a request again (the policy picks a group again) after a retryable answer (429, 503)."
    )
    max_retries: int = Field(5, ge=1, le=100, description="Attempts after the first.")
    initial_backoff_ms: int = Field(50, ge=1, le=600_000, description="Wait before the first retry.")
    max_backoff_ms: int = Field(30_000, ge=1, le=600_000, description="Longest wait between two attempts.")
    backoff_multiplier: float = Field(1.5, ge=1, le=10, description="Growth of the wait per attempt.")
    jitter_factor: float = Field(0.2, ge=0, le=1, description="Random share added to each wait.")


class GatewayCircuitBreaker(Base):
    enabled: bool = Field(True, description="Stop sending to a group that keeps failing, probe it again later.")
    failure_threshold: int = Field(10, ge=1, le=10_000, description="Consecutive failures that open the circuit.")
    success_threshold: int = Field(3, ge=1, le=10_000, description="Successes in half-open that close it again.")
    timeout_seconds: int = Field(60, ge=1, le=86_400, description="How long an open circuit waits before a probe.")
    window_seconds: int = Field(120, ge=1, le=86_400, description="Window the failures are counted over.")


class GatewayHealthCheck(Base):
    """The gateway's own probes of each group's leader (/ready where the release has it, else /health:
    render.gateway_args.health_endpoint), on top of the pod readiness it discovers."""

    enabled: bool = Field(True, description="Probe the leaders; an unhealthy one gets no requests.")
    # 0.3.2 probes every 60 s: a leader that died would keep getting requests for up to 3 minutes.
    interval_seconds: int = Field(15, ge=1, le=3600, description="Probe period.")
    timeout_seconds: int = Field(5, ge=1, le=300, description="Probe timeout.")
    failure_threshold: int = Field(3, ge=1, le=100, description="Failed probes before a leader is unhealthy.")
    success_threshold: int = Field(2, ge=1, le=100, description="Passed probes before it is healthy again.")


class GatewayResources(Base):
    cpu: Quantity = Field("1", description="CPU request.")
    cpu_limit: Quantity | None = Field("4", description="CPU limit; unset means none.")
    memory: Quantity = Field("1Gi", description="Memory request.")
    memory_limit: Quantity = Field(
        "4Gi", description="Memory limit (the cache-aware trees grow up to cacheAware.maxTreeSize per group)."
    )


class GatewayConfig(Base):
    enabled: bool = Field(False, description="Put the model gateway in front of the groups (docs/gateway.md).")
    groups: list[DnsLabel] = Field(
        default_factory=list,
        description="Inference groups behind the gateway (empty: every group); one gateway per served model.",
    )
    policy: Literal["cache_aware", "power_of_two", "round_robin", "random"] = Field(
        "cache_aware", description="How a request picks one of the groups serving its model."
    )
    cache_aware: CacheAware = Field(default_factory=CacheAware, description="Knobs of policy cache_aware.")
    dp_aware: bool = Field(
        False,
        description="Route to each data-parallel rank of a group (--dp-aware): for groups run with --dp-size > 1.",
    )
    retries: GatewayRetries = Field(default_factory=GatewayRetries, description="Retries with backoff.")
    circuit_breaker: GatewayCircuitBreaker = Field(
        default_factory=GatewayCircuitBreaker, description="Per-group circuit breaker."
    )
    health_check: GatewayHealthCheck = Field(
        default_factory=GatewayHealthCheck,
        description="The gateway's probes of each leader: /ready where the SGLang release has it (0.5.23), else "
        "/health (which generates one token from 0.5.1).",
    )
    request_timeout_seconds: int = Field(
        1800, ge=1, le=24 * 3600, description="How long one request may take (DeepSeek-R1 reasons for minutes)."
    )
    shutdown_grace_seconds: int = Field(
        180, ge=0, le=3600, description="How long a stopping gateway lets requests in flight finish."
    )
    replicas: int = Field(
        1, ge=1, le=16, description="Gateway pods per model; each keeps its own cache trees (docs/gateway.md)."
    )
    resources: GatewayResources = Field(default_factory=GatewayResources, description="Of each gateway pod.")
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        "ClusterIP", description="Type of the gateway's Service."
    )
    port: Port = Field(8000, description="The gateway's OpenAI-compatible API port (Service and container).")
    metrics_port: Port = Field(29000, description="Port of the gateway's Prometheus /metrics.")
    log_level: Literal["debug", "info", "warn", "error"] = Field("info", description="--log-level.")
    extra_args: list[str] = Field(
        default_factory=list, description="Further launch_router flags, checked against the pinned release."
    )
