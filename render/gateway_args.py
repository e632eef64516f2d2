"""The exact ``launch_router`` command line of a gateway (sglang-router's or smg's: both take the same flags for
everything the platform sets), from its typed settings.

Pure (no Pulumi), like ``render.server_args`` for the groups: the gateway's pods run what ``gateway_args``
returns, rules.gateway reads the same list with the pinned release's flag table (facts/gateways), the
tests parse it with the release's own argument parser, and the flags the platform manages (which ``extraArgs``
may not repeat) are the flags it emits."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from ..config.gateway import GatewayConfig
from ..facts.sglang.releases import facts

# sglang-router's; a stack's gateway runs its product's (facts.gateways.GatewayRelease.launch).
LAUNCH = ("python3", "-m", "sglang_router.launch_router")
# Env vars of the gateway container that Kubernetes expands into its arguments ($(VAR)): the key from the
# groups' Secret, and the pod's own namespace (downward API), where it watches the groups' pods.
API_KEY_ENV = "SGLANG_API_KEY"
NAMESPACE_ENV = "POD_NAMESPACE"


def health_endpoint(sglang_release: str | None) -> str:
    """What the gateway probes each leader on, by the SGLang release the groups run: ``/ready`` where the
    release has it (0.5.23: whether the server takes requests, no generation), else ``/health``, which up to
    0.4.10 is a plain 200 once the weights are loaded, and from 0.5.1 is ``/health_generate``: one token per
    probe while the server is idle (ignored while it is busy). None (release unknown): ``/health``, which every
    release serves."""
    if sglang_release is None:
        return "/health"
    return "/ready" if facts(sglang_release).ready_endpoint else "/health"


def _num(value: float) -> str:
    return format(value, "g")


PdSelectors = tuple[Mapping[str, str], Mapping[str, str]]


def gateway_args(
    cfg: GatewayConfig,
    *,
    worker_port: int,
    selector: Mapping[str, str],
    api_key: bool,
    pd: PdSelectors | None = None,
    sglang_release: str | None = None,
) -> list[str]:
    """Flags for the gateway of one model. ``selector``: the labels (all must match) of the leader pods it
    routes to; ``worker_port``: their API port; ``api_key``: whether $(SGLANG_API_KEY) holds the groups' key;
    ``pd``: the (prefill, decode) selectors of a disaggregated service, which put the gateway in PD mode
    (``selector`` is then unused: 0.3.2 ignores it there); ``sglang_release``: what the groups run, which
    chooses the health-check endpoint."""
    typed = typed_args(
        cfg, worker_port=worker_port, selector=selector, api_key=api_key, pd=pd, sglang_release=sglang_release
    )
    return typed + list(cfg.extra_args)


def _pairs(selector: Mapping[str, str]) -> list[str]:
    # nargs="+": one k=v per argument; every pair must match (equality only).
    if not selector:
        raise ValueError("the gateway needs a pod selector (an empty one matches no pod in 0.3.2)")
    return [f"{k}={v}" for k, v in sorted(selector.items())]


def typed_args(
    cfg: GatewayConfig,
    *,
    worker_port: int,
    selector: Mapping[str, str],
    api_key: bool,
    pd: PdSelectors | None = None,
    sglang_release: str | None = None,
) -> list[str]:
    """Everything but ``extraArgs``. Every value is rendered, defaults included, so what runs does not change
    when a later release changes a default."""
    if pd is None:
        discovered = ["--selector", *_pairs(selector)]
    else:
        # PD mode: each request goes to a prefill and a decode server, with the prefill pod's bootstrap port
        # (its annotation sglang.ai/bootstrap-port) for decode to fetch the KV cache from. One discovery port
        # for both roles.
        prefill, decode = pd
        discovered = ["--prefill-selector", *_pairs(prefill), "--decode-selector", *_pairs(decode)]
    args = [
        "--host",
        "0.0.0.0",
        "--port",
        str(cfg.port),
        *(["--pd-disaggregation"] if pd is not None else []),
        # Kubernetes discovery, limited to the pod's own namespace: a namespaced Role is enough (without
        # the flag 0.3.2 watches every namespace and needs a ClusterRole).
        "--service-discovery",
        "--service-discovery-namespace",
        f"$({NAMESPACE_ENV})",
        "--service-discovery-port",
        str(worker_port),
        *discovered,
        "--policy",
        cfg.policy,
    ]
    if cfg.policy == "cache_aware":
        c = cfg.cache_aware
        args += [
            "--cache-threshold",
            _num(c.cache_threshold),
            "--balance-abs-threshold",
            str(c.balance_abs_threshold),
            "--balance-rel-threshold",
            _num(c.balance_rel_threshold),
            "--eviction-interval-secs",
            str(c.eviction_interval_seconds),
            "--max-tree-size",
            str(c.max_tree_size),
        ]
    if cfg.dp_aware:
        args.append("--dp-aware")
    r = cfg.retries
    if r.enabled:
        args += [
            "--retry-max-retries",
            str(r.max_retries),
            "--retry-initial-backoff-ms",
            str(r.initial_backoff_ms),
            "--retry-max-backoff-ms",
            str(r.max_backoff_ms),
            "--retry-backoff-multiplier",
            _num(r.backoff_multiplier),
            "--retry-jitter-factor",
            _num(r.jitter_factor),
        ]
    else:
        args.append("--disable-retries")
    cb = cfg.circuit_breaker
    if cb.enabled:
        args += [
            "--cb-failure-threshold",
            str(cb.failure_threshold),
            "--cb-success-threshold",
            str(cb.success_threshold),
            "--cb-timeout-duration-secs",
            str(cb.timeout_seconds),
            "--cb-window-duration-secs",
            str(cb.window_seconds),
        ]
    else:
        args.append("--disable-circuit-breaker")
    h = cfg.health_check
    if h.enabled:
        args += [
            "--health-check-endpoint",
            health_endpoint(sglang_release),
            "--health-check-interval-secs",
            str(h.interval_seconds),
            "--health-check-timeout-secs",
            str(h.timeout_seconds),
            "--health-failure-threshold",
            str(h.failure_threshold),
            "--health-success-threshold",
            str(h.success_threshold),
        ]
    else:
        args.append("--disable-health-check")
    args += [
        "--request-timeout-secs",
        str(cfg.request_timeout_seconds),
        "--shutdown-grace-period-secs",
        str(cfg.shutdown_grace_seconds),
        "--prometheus-host",
        "0.0.0.0",
        "--prometheus-port",
        str(cfg.metrics_port),
        "--log-level",
        cfg.log_level,
    ]
    if api_key:
        # Checked on every client request, and sent to the groups (which must run with the same key).
        args += ["--api-key", f"$({API_KEY_ENV})"]
    return args


# The stack key each typed flag is written from; None: the platform decides it (discovery, the routing mode, the
# address it binds, the groups' port and key).
FLAG_KEYS: Mapping[str, str | None] = {
    "--host": None,
    "--port": "gateway.port",
    "--pd-disaggregation": None,
    "--service-discovery": None,
    "--service-discovery-namespace": None,
    "--service-discovery-port": None,
    "--selector": None,
    "--prefill-selector": None,
    "--decode-selector": None,
    "--policy": "gateway.policy",
    "--cache-threshold": "gateway.cacheAware.cacheThreshold",
    "--balance-abs-threshold": "gateway.cacheAware.balanceAbsThreshold",
    "--balance-rel-threshold": "gateway.cacheAware.balanceRelThreshold",
    "--eviction-interval-secs": "gateway.cacheAware.evictionIntervalSeconds",
    "--max-tree-size": "gateway.cacheAware.maxTreeSize",
    "--dp-aware": "gateway.dpAware",
    "--retry-max-retries": "gateway.retries.maxRetries",
    "--retry-initial-backoff-ms": "gateway.retries.initialBackoffMs",
    "--retry-max-backoff-ms": "gateway.retries.maxBackoffMs",
    "--retry-backoff-multiplier": "gateway.retries.backoffMultiplier",
    "--retry-jitter-factor": "gateway.retries.jitterFactor",
    "--disable-retries": "gateway.retries.enabled",
    "--cb-failure-threshold": "gateway.circuitBreaker.failureThreshold",
    "--cb-success-threshold": "gateway.circuitBreaker.successThreshold",
    "--cb-timeout-duration-secs": "gateway.circuitBreaker.timeoutSeconds",
    "--cb-window-duration-secs": "gateway.circuitBreaker.windowSeconds",
    "--disable-circuit-breaker": "gateway.circuitBreaker.enabled",
    "--health-check-endpoint": None,
    "--health-check-interval-secs": "gateway.healthCheck.intervalSeconds",
    "--health-check-timeout-secs": "gateway.healthCheck.timeoutSeconds",
    "--health-failure-threshold": "gateway.healthCheck.failureThreshold",
    "--health-success-threshold": "gateway.healthCheck.successThreshold",
    "--disable-health-check": "gateway.healthCheck.enabled",
    "--request-timeout-secs": "gateway.requestTimeoutSeconds",
    "--shutdown-grace-period-secs": "gateway.shutdownGraceSeconds",
    "--prometheus-host": None,
    "--prometheus-port": "gateway.metricsPort",
    "--log-level": "gateway.logLevel",
    "--api-key": None,
}
# Modes the platform decides, which no stack may switch: the worker list comes from discovery (another
# discovery provider, worker URLs, manual PD workers), one model per gateway (IGW, a model id taken from pod
# metadata instead of the served name the clients send), and the Python mini load balancer.
DECIDED = (
    "--worker-urls",
    "--prefill",
    "--decode",
    "--enable-igw",
    "--mini-lb",
    "--discovery-provider",
    "--discovery-file",
    "--model-id-from",
)


def managed_flag_keys() -> dict[str, str | None]:
    """Every flag the platform writes or decides, with the key that sets it (None: the platform itself)."""
    out: dict[str, str | None] = {flag: FLAG_KEYS[flag] for flag in sorted(managed_flags()) if flag in FLAG_KEYS}
    return out | dict.fromkeys(DECIDED)


@functools.cache
def managed_flags() -> frozenset[str]:
    """Every flag ``typed_args`` can emit (each switch both ways): ``extraArgs`` may not repeat them, nor
    spell them another way that argparse resolves to them."""
    words: list[str] = []
    on = GatewayConfig(dp_aware=True)
    off = GatewayConfig(
        policy="round_robin",
        retries={"enabled": False},
        circuit_breaker={"enabled": False},
        health_check={"enabled": False},
    )
    for cfg in (on, off):
        words += typed_args(cfg, worker_port=1, selector={"k": "v"}, api_key=True)
        words += typed_args(cfg, worker_port=1, selector={"k": "v"}, api_key=True, pd=({"k": "p"}, {"k": "d"}))
    words += DECIDED
    return frozenset(w for w in words if w.startswith("--"))
