"""Rules of a disaggregated service (``inferenceGroups[].disaggregation``): what its roles need from the
release, the fabric and the gateway, and the ratio of decode to prefill groups. The rules every group passes
(flags, levers, capacity, node fit, queue) run on each role by itself (``PlatformConfig.serving_units``)."""

from __future__ import annotations

import math

from ..config.errors import Problem
from ..config.stack import InferenceGroup, PlatformConfig, Versions
from ..facts.sglang import first_release_with, load_table
from .flags import release_key
from .nodes import plural

TRANSFER_FLAG = "--disaggregation-transfer-backend"


def _release_lacks(versions: Versions, backend: str) -> bool:
    release = versions.sglang_release
    table = load_table(release) if release is not None else None
    if table is None:
        return False  # unknown release, or no table: refused on its own key
    option = table.option(TRANSFER_FLAG)
    return option is None or (option.choices is not None and backend not in option.choices)


def pd_unsupported(versions: Versions) -> bool:
    """The pinned release cannot move a KV cache with the default backend (the check on each service names
    the backend it uses)."""
    return _release_lacks(versions, "mooncake")


def check_disaggregation(cfg: PlatformConfig) -> list[Problem]:
    out: list[Problem] = []
    for i, service in enumerate(cfg.inference_groups):
        pd = service.disaggregation
        if pd is None:
            continue
        base = ("inferenceGroups", i)
        out += [Problem((*base, *p.loc), p.message) for p in service.role_problems]
        out += _release(cfg, i, service)
        out += _gateway(cfg, i, service)
        out += _fabric(i, service)
        out += _ratio(i, service)
        out += _layouts(cfg, i, service)
    return out


def _layouts(cfg: PlatformConfig, i: int, service: InferenceGroup) -> list[Problem]:
    """0.4.10 to 0.5.1 (the releases with --disaggregation-decode-tp) move a KV cache between different
    tensor-parallel sizes only when one is a multiple of the other (``ServerArgs.validate_disagg_tp_size``, an
    assertion at start); 0.5.23 negotiates the layouts at bootstrap instead."""
    release = cfg.versions.sglang_release
    table = load_table(release) if release is not None else None
    roles = service.roles
    if table is None or table.option("--disaggregation-decode-tp") is None or len(roles) != 2:
        return []
    prefill, decode = roles["prefill"].tp_size, roles["decode"].tp_size
    if max(prefill, decode) % min(prefill, decode) == 0:
        return []
    return [
        Problem(
            ("inferenceGroups", i, *service.role_key("decode", ("tensorParallel",))),
            f"prefill runs tp {prefill} and decode tp {decode}: SGLang {release} moves the KV cache between "
            "different tensor-parallel sizes only when one is a multiple of the other",
        )
    ]


def _release(cfg: PlatformConfig, i: int, service: InferenceGroup) -> list[Problem]:
    pd = service.disaggregation
    assert pd is not None
    backend = pd.transfer_backend
    if not _release_lacks(cfg.versions, backend):
        return []
    first = first_release_with(TRANSFER_FLAG, backend)
    # 0.4.5 has --disaggregation-mode and --disaggregation-bootstrap-port but its only KV transport is a stand-in
    # that moves nothing (disaggregation/conn.py: "Assume transfer completed instantly"); Mooncake arrives in
    # 0.4.5.post1 with --disaggregation-transfer-backend, of which 0.4.6 is the first shipped table.
    return [
        Problem(
            ("inferenceGroups", i, "disaggregation"),
            f"prefill/decode disaggregation with {backend} needs SGLang {first} or later (the first shipped "
            f"release whose {TRANSFER_FLAG} offers {backend}); the pinned release is "
            f"{cfg.versions.sglang_release} ({release_key(cfg.versions)})",
        )
    ]


def _gateway(cfg: PlatformConfig, i: int, service: InferenceGroup) -> list[Problem]:
    gw = cfg.gateway
    why = (
        "a disaggregated service is served only through the model gateway in PD mode, which sends each "
        "request to a prefill and a decode server and tells decode where to fetch the KV cache"
    )
    if not gw.enabled:
        return [Problem(("inferenceGroups", i, "disaggregation"), f"{why}: set sglang-platform:gateway.enabled true")]
    if gw.groups and service.name not in gw.groups:
        return [
            Problem(
                ("inferenceGroups", i, "disaggregation"),
                f"{why}: list {service.name!r} in sglang-platform:gateway.groups",
            )
        ]
    return []


def _fabric(i: int, service: InferenceGroup) -> list[Problem]:
    """Mooncake moves the KV cache with RDMA verbs only (its TCP fallback is the separate mooncake_tcp backend of
    0.5.x): it needs the InfiniBand fabric and the devices to use."""
    pd = service.disaggregation
    assert pd is not None
    if pd.transfer_backend != "mooncake":
        return []
    net = service.network
    base = ("inferenceGroups", i)
    if net.fabric != "infiniband":
        return [
            Problem(
                (*base, "network", "fabric"),
                "mooncake moves the KV cache from prefill to decode over RDMA: set fabric infiniband (with "
                "network.hcas and network.rdmaDevicesPerNode), or disaggregation.transferBackend nixl",
            )
        ]
    roles = list(service.roles.values())
    if net.hcas and roles and not roles[0].pd.ib_devices:  # type: ignore[union-attr]
        return [
            Problem(
                (*base, "disaggregation", "ibDevices"),
                f"mooncake needs the RDMA devices to move the KV cache over, and network.hcas "
                f"({','.join(net.hcas)}) names them only by exclusion: list them here (e.g. [mlx5_0, mlx5_1])",
            )
        ]
    return []


def _range(g: InferenceGroup) -> tuple[int, int, str, str]:
    """(fewest, most) groups a role may run, and the keys that set each."""
    if g.autoscaling is not None:
        return (
            g.autoscaling.min_replicas,
            g.autoscaling.max_replicas,
            "autoscaling.minReplicas",
            "autoscaling.maxReplicas",
        )
    return g.replicas, g.replicas, "replicas", "replicas"


def _ratio(i: int, service: InferenceGroup) -> list[Problem]:
    """The autoscalers of the two roles are independent, so the bounds hold only if every pair of sizes the two
    ranges allow keeps the ratio: decode's fewest against prefill's most, decode's most against prefill's
    fewest."""
    pd = service.disaggregation
    assert pd is not None
    bounds = pd.decode_per_prefill
    roles = service.roles
    if bounds is None or len(roles) != len(("prefill", "decode")):
        return []
    base = ("inferenceGroups", i)
    if bounds.min > bounds.max:
        return [
            Problem(
                (*base, "disaggregation", "decodePerPrefill", "min"),
                f"{bounds.min:g} is above decodePerPrefill.max {bounds.max:g}",
            )
        ]
    p_min, p_max, _, _ = _range(roles["prefill"])
    d_min, d_max, d_min_key, d_max_key = _range(roles["decode"])
    out = []
    if d_min < p_max * bounds.min:
        need = math.ceil(p_max * bounds.min)
        loc = (*base, *service.role_key("decode", tuple(d_min_key.split("."))))
        out.append(
            Problem(
                loc,
                f"decode may run {plural(d_min, 'group')} while prefill runs {p_max}: {d_min / p_max:g} decode "
                f"per prefill, below decodePerPrefill.min {bounds.min:g}: let decode run at least {need}, or "
                f"prefill at most {math.floor(d_min / bounds.min)}",
            )
        )
    if d_max > p_min * bounds.max:
        most = math.floor(p_min * bounds.max)
        loc = (*base, *service.role_key("decode", tuple(d_max_key.split("."))))
        out.append(
            Problem(
                loc,
                f"decode may run {plural(d_max, 'group')} while prefill runs {p_min}: {d_max / p_min:g} decode "
                f"per prefill, above decodePerPrefill.max {bounds.max:g}: let decode run at most {most}, or "
                f"prefill at least {math.ceil(d_max / bounds.max)}",
            )
        )
    return out
