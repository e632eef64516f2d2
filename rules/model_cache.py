"""Rules across the download, volume and capacity settings of every group, and the sizes they reason with:
the weights' size (measured, declared or known), the GPU memory SGLang keeps for them, the startup budget."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

from ..config.errors import Problem
from ..config.model_cache import HF_COMMIT
from ..config.stack import InferenceGroup, PlatformConfig
from ..facts.model_catalogue import KNOWN_MODELS
from ..facts.quantity import GIB, parse_quantity
from ..facts.quantization import SCHEMES
from .nodes import capacity_advice
from .quantization import Weights, model_key, resolve

# Weights of models people serve with this platform, in GiB, keyed by the repository's model name (lower
# case), so both `deepseek-ai/DeepSeek-R1` and a hand-staged `model.path: DeepSeek-R1` find it. One table:
# facts/model_catalogue.py's known models, with the source of each size.
KNOWN_WEIGHTS_GIB: Mapping[str, float] = {
    name: model.size_gib for name, model in KNOWN_MODELS.items() if model.size_gib is not None
}
# SGLang's --mem-fraction-static when unset, by tensor-parallel size (sglang 0.4.3.post2,
# srt/server_args.py __post_init__): the share of GPU memory kept for weights plus KV cache.
SGLANG_MEM_FRACTION_BY_TP = ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87), (1, 0.88))
# After the weights, SGLang sizes the KV cache from what is left of the static pool and stops at start with
# "Not enough memory" when that is (close to) nothing; a group that leaves under a tenth of the pool for KV
# cache serves a handful of requests at best.
KV_CACHE_MIN_SHARE = 0.10
# A PVC holds the weights plus this share: partial files of a resumed download, a changed revision's new
# shards next to the old ones, filesystem overhead.
PVC_HEADROOM = 0.10
# Startup probe budget: process start, NCCL init and CUDA graph capture, plus reading the weights from the
# volume at a rate network storage sustains (10 GiB/min is about 170 MB/s per pod).
STARTUP_BASE_MINUTES = 10
LOAD_GIB_PER_MINUTE = 10.0
MAX_NODES = 64
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


def default_mem_fraction(tp_size: int) -> float:
    return next(f for tp, f in SGLANG_MEM_FRACTION_BY_TP if tp_size >= tp)


def weights_gib(g: InferenceGroup, measured: Mapping[str, float]) -> tuple[float | None, str]:
    """The group's weight size and where the number comes from (for messages). ``measured`` is keyed by stack
    entry: a role of a disaggregated service serves its service's weights."""
    name = g.pd.service if g.pd is not None else g.name
    if name in measured:
        return measured[name], "measured in S3"
    if g.model.size_gib is not None:
        return g.model.size_gib, "model.sizeGiB"
    known = KNOWN_WEIGHTS_GIB.get(model_key(g))
    if known is not None:
        return known, f"known size of {model_key(g)}"
    return None, "unknown"


def startup_budget_minutes(g: InferenceGroup, size_gib: float | None) -> int:
    """The configured startup budget, raised to what loading ``size_gib`` from the volume takes."""
    if size_gib is None:
        return g.probes.startup_timeout_minutes
    estimate = math.ceil(STARTUP_BASE_MINUTES + size_gib / LOAD_GIB_PER_MINUTE)
    return max(g.probes.startup_timeout_minutes, estimate)


def _gib(value: float) -> str:
    return f"{value:.1f} GiB"


def _weights_room(g: InferenceGroup, tp: int) -> tuple[float, float, float]:
    """(mem fraction, static pool per GPU, room left for weights per GPU) at tensor-parallel size ``tp``."""
    fraction = g.mem_fraction_static if g.mem_fraction_static is not None else default_mem_fraction(tp)
    pool = g.gpu_memory * fraction
    return fraction, pool, pool * (1 - KV_CACHE_MIN_SHARE)


def check_capacity(g: InferenceGroup, size: float, origin: str, weights: Weights | None = None) -> list[Problem]:
    """Weights are sharded over every GPU of the group (tensor parallel); each shard plus a KV cache must
    fit the static memory pool SGLang reserves per GPU. The advice proposes only tensor-parallel sizes the
    model can be split to (``weights``: what the group serves, as far as known)."""
    per_gpu = size / g.total_gpus
    fraction, pool, room = _weights_room(g, g.total_gpus)
    if per_gpu <= room:
        return []
    weights = weights or resolve(g)
    advice = capacity_advice(
        weights.model,
        weights.quant or SCHEMES["none"],
        size,
        g.gpus_per_node,
        lambda tp: _weights_room(g, tp)[2],
        MAX_NODES,
    )
    fraction_origin = "" if g.mem_fraction_static is not None else f", SGLang's default at tp {g.total_gpus}"
    nodes = f"{g.nodes} node{'s' if g.nodes != 1 else ''}"
    message = (
        f"the weights of {g.model.path} ({_gib(size)}, {origin}) need {_gib(per_gpu)} per GPU on {nodes} x "
        f"{g.gpus_per_node} GPUs, but each GPU keeps {_gib(pool)} for weights and KV cache ({g.gpu_memory_origin} "
        f"x memFractionStatic {fraction:g}{fraction_origin}), of which at least "
        f"{KV_CACHE_MIN_SHARE:.0%} must stay for the KV cache, leaving {_gib(room)} for weights: {advice}"
    )
    return [Problem(("nodes",), message)]


def check_model_cache(
    cfg: PlatformConfig, measured: Mapping[str, float], weights: Mapping[str, Weights] | None = None
) -> list[Problem]:
    """Rules across the download, volume and capacity settings of every group (locations from the root).
    ``weights``: what each group serves, by name (rules.quantization.resolve), for the capacity advice."""
    problems: list[Problem] = []
    for i, g in enumerate(cfg.inference_groups):
        problems += [Problem(("inferenceGroups", i, *p.loc), p.message) for p in _check_group(g)]
    for unit in cfg.serving_units:
        g = unit.group
        size, origin = weights_gib(g, measured)
        if not cfg.preflight.capacity or size is None:
            continue
        served = (weights or {}).get(unit.service.name)
        found = check_capacity(g, size, origin, served)
        if not found and g.pd is not None:
            found = check_kv_capacity(g, size, served or resolve(g))
        for p in found:
            message = f"the {unit.role} role: {p.message}" if unit.role else p.message
            problems.append(Problem(unit.loc(p.loc), message))
    problems += _check_claims(cfg, measured)
    return problems


def kv_tokens(g: InferenceGroup, size: float, weights: Weights) -> tuple[int, int, float, int] | None:
    """The KV cache one group holds, as SGLang sizes it (the static pool less the weights, per GPU): (tokens
    in one DP-attention group, bytes per token per GPU, GiB per GPU, DP-attention groups); None when the
    model's KV width is not known."""
    model = weights.model
    if model is None:
        return None
    element = 1 if g.kv_cache_dtype in ("fp8_e4m3", "fp8_e5m2") else 2
    per_token = model.kv_bytes_per_token(g.attention_tp_size, element)
    if per_token is None:
        return None
    _, pool, _ = _weights_room(g, g.total_gpus)
    left = pool - size / g.total_gpus
    return int(left * GIB // per_token), per_token, left, g.dp_attention_size or 1


def check_kv_capacity(g: InferenceGroup, size: float, weights: Weights) -> list[Problem]:
    """A role of a disaggregated service: every role holds one prompt of contextLength in the KV cache of a
    DP-attention group (prefill until decode takes it, decode for the whole answer), and decode holds its
    running requests: maxRunningRequests of disaggregation.tokensPerRequest (unset: contextLength) each."""
    held = kv_tokens(g, size, weights)
    if held is None or g.pd is None:
        return []
    tokens, per_token, left, dp = held
    what = (
        f"{_gib(left)} per GPU after the weights, {per_token:,} bytes per token"
        f"{f', in each of {dp} DP-attention groups' if dp > 1 else ''}"
    )
    out: list[Problem] = []
    if g.context_length is not None and tokens < g.context_length:
        out.append(
            Problem(
                ("contextLength",),
                f"a prompt of contextLength {g.context_length:,} tokens does not fit its KV cache: it holds "
                f"{tokens:,} tokens ({what}): give it more GPUs or memory (memFractionStatic), or shorten "
                "contextLength",
            )
        )
    running = g.max_running_requests
    each = g.pd.settings.tokens_per_request or g.context_length
    if g.pd.role != "decode" or running is None or each is None or out:
        return out
    total = tokens * dp
    if running * each > total:
        origin = "disaggregation.tokensPerRequest" if g.pd.settings.tokens_per_request else "contextLength"
        out.append(
            Problem(
                ("maxRunningRequests",),
                f"{running:,} running requests of {each:,} tokens ({origin}) need {running * each:,} tokens of KV "
                f"cache, and decode holds {total:,} ({what}): lower maxRunningRequests to {total // each:,}, set "
                f"disaggregation.tokensPerRequest to the typical request ({total // running:,} fits), or give "
                "decode more GPUs or memory",
            )
        )
    return out


# endpoint is not here: every source that downloads has one (an S3-compatible store, a hub mirror).
S3_ONLY = (
    ("bucket", "bucket"),
    ("prefix", "prefix"),
    ("region", "region"),
    ("serviceAccountName", "service_account_name"),
)


def _check_group(g: InferenceGroup) -> list[Problem]:
    out: list[Problem] = []
    source, d, vol = g.model.source, g.model.download, g.model_volume
    if vol.pvc is not None and vol.type != "pvc":
        out.append(Problem(("modelVolume", "pvc"), "only allowed when type is pvc"))
    if vol.pvc is not None and vol.pvc.create and vol.pvc.size is None:
        out.append(Problem(("modelVolume", "pvc", "size"), "required when create is true (e.g. 800Gi)"))
    if d is None:
        return out
    loc = ("model", "download")
    if source == "local":
        out.append(
            Problem(
                loc,
                "not allowed with source local (weights staged by hand); set model.source to "
                "huggingface, modelscope or s3 to have the platform download them",
            )
        )
        return out
    if source == "s3":
        if not d.bucket:
            out.append(Problem((*loc, "bucket"), "required when model.source is s3"))
        if d.repo:
            out.append(Problem((*loc, "repo"), "only allowed with source huggingface or modelscope"))
        return out + _check_staging(g)
    if not d.repo:
        out.append(Problem((*loc, "repo"), f"required when model.source is {source} (e.g. deepseek-ai/DeepSeek-R1)"))
    if not d.revision:
        out.append(Problem((*loc, "revision"), f"required when model.source is {source}: pin the weights you serve"))
    elif source == "huggingface" and not HF_COMMIT.match(d.revision) and vol.type != "hostPath":
        out.append(
            Problem(
                (*loc, "revision"),
                f"{d.revision!r} is not a commit id: a Hugging Face branch or tag can move; pin the 40-character "
                "commit (the 'Files and versions' history of the repository)",
            )
        )
    elif vol.type == "hostPath" and not HF_COMMIT.match(d.revision):
        # Both hubs the same: per-node staging resolves a moving revision to its commit before and after each
        # fetch and records it, so a stack that has no commit to pin may accept the drift between nodes.
        if not d.staging.allow_moving_revision:
            out.append(
                Problem(
                    (*loc, "revision"),
                    f"{d.revision!r} is not a commit id, and a branch or tag can move: on a hostPath volume each "
                    "node fetches it when its stager starts (first deploy, a node added or replaced), so the nodes "
                    "of one tensor-parallel group can hold different weights; pin the 40-character commit, or set "
                    "model.download.staging.allowMovingRevision: true to accept that (each node's completion "
                    "marker then records the commit it got)",
                )
            )
    for key, attr in S3_ONLY:
        if getattr(d, attr):
            out.append(Problem((*loc, key), "only allowed with source s3"))
    return out + _check_staging(g)


def _check_staging(g: InferenceGroup) -> list[Problem]:
    d = g.model.download
    if d is None or "staging" not in d.model_fields_set or g.model_volume.type == "hostPath":
        return []
    return [
        Problem(
            ("model", "download", "staging"),
            "only applies to modelVolume.type hostPath (a copy on every node); a pvc is filled once by the "
            "download Job",
        )
    ]


def _check_claims(cfg: PlatformConfig, measured: Mapping[str, float]) -> list[Problem]:
    problems: list[Problem] = []
    by_claim: dict[str, list[int]] = defaultdict(list)
    by_dir: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    groups = cfg.inference_groups
    for i, g in enumerate(groups):
        vol = g.model_volume
        where = vol.claim_name if vol.type == "pvc" else vol.host_path
        if where:
            by_dir[(vol.type, where, g.model.path.strip("/"))].append(i)
        if vol.type == "pvc" and vol.claim_name:
            by_claim[vol.claim_name].append(i)

    for members in by_dir.values():
        downloads = {(groups[i].model.source, str(_identity(groups[i]))) for i in members}
        if len(downloads) > 1:
            names = ", ".join(groups[i].name for i in members)
            for i in members:
                problems.append(
                    Problem(
                        ("inferenceGroups", i, "model", "download"),
                        f"groups {names} share the directory {groups[i].model.path!r} on one volume but download "
                        "different weights into it; give each its own model.path or the same source and revision",
                    )
                )

    for claim, members in by_claim.items():
        creators = [i for i in members if (p := groups[i].model_volume.pvc) is not None and p.create]
        if len(creators) > 1:
            for i in creators:
                problems.append(
                    Problem(
                        ("inferenceGroups", i, "modelVolume", "pvc", "create"),
                        f"claim {claim!r} is created by {len(creators)} groups; let one create it and the others "
                        "only name it in claimName",
                    )
                )
        sized = [(i, p.size) for i in members if (p := groups[i].model_volume.pvc) is not None and p.size is not None]
        if not cfg.preflight.capacity or not sized:
            continue
        owner, owner_size = sized[0]
        try:
            capacity = float(parse_quantity(owner_size)) / GIB
        except ValueError as exc:
            problems.append(Problem(("inferenceGroups", owner, "modelVolume", "pvc", "size"), str(exc)))
            continue
        weights: dict[str, float] = {}
        for i in members:
            size, _ = weights_gib(groups[i], measured)
            if size is not None:
                weights[groups[i].model.path.strip("/")] = size
        total = sum(weights.values())
        needed = total * (1 + PVC_HEADROOM)
        if weights and capacity < needed:
            held = ", ".join(f"{path} {_gib(size)}" for path, size in sorted(weights.items()))
            problems.append(
                Problem(
                    ("inferenceGroups", owner, "modelVolume", "pvc", "size"),
                    f"claim {claim!r} of {owner_size} ({_gib(capacity)}) cannot hold the "
                    f"weights ({held}) plus {PVC_HEADROOM:.0%} headroom: it needs at least {_gib(needed)}",
                )
            )
    return problems


def _identity(g: InferenceGroup) -> dict[str, str] | None:
    d = g.model.download
    return d.identity(g.model.source) if d is not None else None
