"""Rules of the gateway: the groups it fronts exist, the settings that only make sense together, which gateway and
release the image runs and that a flag table ships for it, every flag it gets read by that release's parser
(facts/gateways): the platform's own, and extraArgs, which may not override a typed setting."""

from __future__ import annotations

from collections import Counter

from ..config.errors import Loc, Problem
from ..config.stack import PlatformConfig, Versions, release_of_tag
from ..facts.gateways import PRODUCTS, facts, load_gateway_table, missing_table_message, product_of_image, releases_with
from ..facts.sglang import Table, check_args
from ..render.gateway_args import managed_flag_keys, typed_args


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
    product, found = _product(cfg.versions)
    out += found
    release = cfg.versions.gateway_release
    if release is None:
        out.append(
            Problem(
                ("versions", "gatewayVersion"),
                f"cannot tell the {product or 'gateway'} release of {cfg.versions.gateway_image!r}: set "
                "versions.gatewayVersion (e.g. 0.3.2) so the gateway's flags can be checked against it",
            )
        )
    table = None
    if product is not None and release is not None:
        table = load_gateway_table(product, release)
        if table is None:
            out.append(Problem(_release_loc(cfg.versions), missing_table_message(product, release)))
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
    if table is not None and product is not None:
        out += _check_typed(cfg, table, product)
        out += _check_extra_args(gw.extra_args, table, product)
    else:
        # No parser to read them with (the release is refused above): still no typed setting may be overridden.
        out += _check_managed_prefixes(gw.extra_args)
    return out


def _check_managed_prefixes(args: list[str]) -> list[Problem]:
    """extraArgs without the release's table: a stray word, and any flag that is (argparse takes a unique prefix)
    a flag the platform sets or decides."""
    out = []
    managed = managed_flag_keys()
    for j, arg in enumerate(args):
        loc = ("gateway", "extraArgs", j)
        if not arg.startswith("--"):
            if j == 0 or not args[j - 1].startswith("--") or "=" in args[j - 1]:
                out.append(Problem(loc, f"{arg!r} is neither a --flag nor the value of the flag before it"))
            continue
        flag = arg.split("=", 1)[0]
        clashes = sorted(m for m in managed if len(flag) > 2 and m.startswith(flag))
        if clashes:
            key = managed[clashes[0]]
            how = f"from {key}: use that key" if key else "itself: remove it"
            out.append(Problem(loc, f"{flag} would override {clashes[0]}, which the platform sets {how}"))
    return out


def _release_loc(versions: Versions) -> Loc:
    """The key the gateway's release is read from: the image's tag when it names one, else gatewayVersion."""
    if versions.gateway_version and release_of_tag(versions.gateway_image) is None:
        return ("versions", "gatewayVersion")
    return ("versions", "gatewayImage")


def _product(versions: Versions) -> tuple[str | None, list[Problem]]:
    """Which gateway the image runs: its name's, or gatewayProduct for a name that says neither."""
    named = product_of_image(versions.gateway_image)
    declared = versions.gateway_product
    if declared is not None and named is not None and declared != named:
        return named, [
            Problem(
                ("versions", "gatewayProduct"),
                f"{declared} contradicts versions.gatewayImage {versions.gateway_image!r}, which is {named}'s: "
                "remove versions.gatewayProduct (it is only for images whose name says neither)",
            )
        ]
    if declared is None and named is None:
        return None, [
            Problem(
                ("versions", "gatewayProduct"),
                f"cannot tell which gateway {versions.gateway_image!r} runs: set versions.gatewayProduct to "
                f"{' or '.join(PRODUCTS)}, so its flags are checked against that gateway's parser",
            )
        ]
    return declared or named, []


def _check_typed(cfg: PlatformConfig, table: Table, product: str) -> list[Problem]:
    """The flags the platform writes, read by the pinned release's parser: one the release lacks or reads
    otherwise means this release cannot run the platform's gateway."""
    out: list[Problem] = []
    sglang = str(cfg.versions.sglang_release) if cfg.versions.sglang_release else None
    pd = ({"k": "p"}, {"k": "d"})
    for args in (
        typed_args(cfg.gateway, worker_port=8000, selector={"k": "v"}, api_key=True, sglang_release=sglang),
        typed_args(cfg.gateway, worker_port=8000, selector={"k": "v"}, api_key=True, pd=pd, sglang_release=sglang),
    ):
        for p in check_args(args, table, releases=lambda flag: releases_with(product, flag)):
            problem = Problem(
                _release_loc(cfg.versions),
                f"{p.message}, which the platform writes for its gateway: pin a {product} release that has it",
            )
            if problem not in out:
                out.append(problem)
    return out


def _check_extra_args(args: list[str], table: Table, product: str) -> list[Problem]:
    """extraArgs as the release's parser reads them: unknown flags, bad values, and any spelling (argparse takes
    a unique prefix) of a flag the platform sets or decides."""
    out = [
        Problem(("gateway", "extraArgs", p.index), p.message)
        for p in check_args(args, table, managed_flag_keys(), releases=lambda flag: releases_with(product, flag))
    ]
    if not facts(product, table.release).per_role_policies:
        for j, arg in enumerate(args):
            word = table.parse_word(arg)
            if word.kind == "option" and word.option is not None and word.option.name in PER_ROLE:
                out.append(
                    Problem(
                        ("gateway", "extraArgs", j),
                        f"{arg.split('=', 1)[0]} is ignored by {product} {table.release} with Kubernetes discovery "
                        "(its launcher turns on IGW mode, whose PD router takes gateway.policy for both roles): "
                        "remove it, or pin sglang-router 0.3.2 for a policy per role (docs/gateway.md)",
                    )
                )
    return sorted(out, key=lambda p: p.loc)


# A policy per role of a disaggregated service.
PER_ROLE = ("--prefill-policy", "--decode-policy")
