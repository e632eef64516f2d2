"""Rules of the gateway: the groups it fronts exist, the settings that only make sense together, what its
release can run, and extraArgs that would silently override a typed setting."""

from __future__ import annotations

from collections import Counter

from config.errors import Problem
from config.gateway_args import managed_flags
from config.models import PlatformConfig


def check_gateway(cfg: PlatformConfig) -> list[Problem]:
    gw = cfg.gateway
    out: list[Problem] = []
    names = [g.name for g in cfg.inference_groups]
    counts = Counter(gw.groups)
    for i, name in enumerate(gw.groups):
        if name not in names:
            out.append(
                Problem(("gateway", "groups", i), f"{name!r} is not an inference group (have: {', '.join(names)})")
            )
        elif counts[name] > 1:
            out.append(Problem(("gateway", "groups", i), f"{name!r} is listed {counts[name]} times"))
    if not gw.enabled:
        return out

    if gw.policy != "cache_aware" and "cache_aware" in gw.model_fields_set:
        out.append(Problem(("gateway", "cacheAware"), f"only used with policy cache_aware (the policy is {gw.policy})"))
    if gw.port == gw.metrics_port:
        out.append(
            Problem(("gateway", "metricsPort"), f"port {gw.metrics_port} is also gateway.port; they must differ")
        )
    if gw.service_type != "ClusterIP" and not cfg.api_access.allowed_cidrs:
        out.append(
            Problem(
                ("gateway", "serviceType"),
                f"a {gw.service_type} Service is reached from outside the pod network, which the gateway's "
                "NetworkPolicy drops: list the client networks in sglang-platform:apiAccess.allowedCidrs "
                "(e.g. 10.0.0.0/8), or keep ClusterIP",
            )
        )
    if cfg.versions.gateway_release is None:
        out.append(
            Problem(
                ("versions", "gatewayVersion"),
                f"cannot tell the sglang-router release of {cfg.versions.gateway_image!r}: set "
                "versions.gatewayVersion (e.g. 0.3.2) so the gateway's flags can be checked against it",
            )
        )
    index = {g.name: i for i, g in enumerate(cfg.inference_groups)}
    for group in cfg.gateway_routes.values():
        gateway = f"{group.name}-gateway"
        if gateway in index:
            # LWS names the group's headless Service after the group: it would take the gateway's Service name.
            out.append(
                Problem(
                    ("inferenceGroups", index[gateway], "name"),
                    f"{gateway!r} is the name of the gateway of group {group.name!r} (its Deployment and Service); "
                    "rename one of the two groups",
                )
            )
    out += _check_extra_args(gw.extra_args)
    return out


def _check_extra_args(args: list[str]) -> list[Problem]:
    out = []
    for j, arg in enumerate(args):
        loc = ("gateway", "extraArgs", j)
        if not arg.startswith("--"):
            if j == 0 or not args[j - 1].startswith("--") or "=" in args[j - 1]:
                out.append(Problem(loc, f"{arg!r} is neither a --flag nor the value of the flag before it"))
            continue
        flag = arg.split("=", 1)[0]
        if len(flag) < 3:
            out.append(Problem(loc, f"{arg!r} is not a flag name"))
            continue
        # argparse accepts any unambiguous prefix: --pol would set --policy behind the typed key.
        clashes = sorted(m for m in managed_flags() if m.startswith(flag))
        if clashes:
            out.append(
                Problem(
                    loc,
                    f"{flag} would override {clashes[0]}, which the platform sets from typed settings or decides "
                    "itself (Kubernetes discovery, regular routing); use the typed key instead",
                )
            )
    return out
