"""Quantized weights against the GPU, the pinned SGLang release and the tensor-parallel size that must run
them; the facts (methods, schemes, their sources) are in ``facts.quantization``, the models in
``facts.model_catalogue``.

Which quantization a group serves, in order of trust: the checkpoint's own config.json (read at preview,
``live.config_json``), else ``model.quantization`` as declared, else the known-models table by repository
or directory name. A scheme SGLang selects only by flag (``w8a8-int8``: ``--quantization w8a8_int8``) must be
declared, because the flag is part of the rendered command and the render never reads the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from packaging.version import Version

from ..config.errors import Loc, Problem
from ..config.stack import InferenceGroup, PlatformConfig
from ..facts.gpus import GPUS, Gpu, gpu_named
from ..facts.model_catalogue import KnownModel, known_model
from ..facts.quantization import (
    FP8_DENSE_MARLIN,
    KV_FP8_E4M3_MIN_CAPABILITY,
    METHODS,
    MLA_TRITON_LAST_READ,
    SCHEMES,
    W8A8_INT8_MOE,
    Quantization,
    detect,
)


class Fetched(Protocol):
    """What ``resolve`` reads of a config.json read at preview (``live.config_json.Fetched``)."""

    @property
    def where(self) -> str: ...
    @property
    def config(self) -> dict[str, Any] | None: ...


# --- which model and quantization a group serves -------------------------------------------------------------


def model_key(g: InferenceGroup) -> str:
    """The name the known-models table is keyed by: the download repository's model name, else the
    directory's (``meituan/DeepSeek-R1-Block-INT8`` and ``model.path: DeepSeek-R1-Block-INT8`` both give
    ``deepseek-r1-block-int8``)."""
    download = g.model.download
    name = download.repo if download is not None and download.repo else g.model.path
    return name.rstrip("/").rsplit("/", 1)[-1].lower()


@dataclass(frozen=True)
class Weights:
    """What a group serves, as far as the rules can tell: the model's architecture facts (None: unknown), its
    quantization (None: unknown) and where that was read, for the messages."""

    model: KnownModel | None
    quant: Quantization | None
    where: str
    # config.json as read at preview, when it was.
    config: Mapping[str, object] | None = None


def model_from_config(name: str, config: Mapping[str, Any]) -> KnownModel | None:
    """Architecture facts read from a config.json (for models not in the table)."""
    try:
        heads = int(config["num_attention_heads"])
        widths = tuple(int(config[k]) for k in ("intermediate_size", "moe_intermediate_size") if k in config)
        kv = int(config.get("num_key_value_heads", heads))
        layers = int(config.get("num_hidden_layers", 0))
        hidden = int(config.get("hidden_size", 0))
    except (KeyError, TypeError, ValueError):
        return None
    mla = "kv_lora_rank" in config
    moe = any(k in config for k in ("n_routed_experts", "num_experts", "num_local_experts"))
    try:
        mla_width = int(config["kv_lora_rank"]) + int(config["qk_rope_head_dim"]) if mla else None
    except (KeyError, TypeError, ValueError):
        mla_width = None
    return KnownModel(
        name,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        num_hidden_layers=layers,
        hidden_size=hidden,
        sharded_widths=widths,
        quantization=detect(config).scheme,
        size_gib=None,
        moe=moe,
        kv_heads_shard=not mla,
        mla_kv_width=mla_width,
    )


def resolve(g: InferenceGroup, fetched: Fetched | None = None) -> Weights:
    known = known_model(model_key(g))
    config = fetched.config if fetched is not None else None
    model = known
    if model is None and config is not None:
        model = model_from_config(model_key(g), config)
    if config is not None and fetched is not None:
        return Weights(model, detect(config), fetched.where, config)
    declared = g.model.quantization
    if declared is not None:
        return Weights(model, SCHEMES[declared], "model.quantization")
    if known is not None:
        return Weights(model, SCHEMES[known.quantization], f"the known checkpoint {display_name(known)}")
    return Weights(model, None, "unknown")


# --- tensor parallel sizes -------------------------------------------------------------------------------------


def display_name(model: KnownModel | None) -> str:
    if model is None:
        return "the model"
    return model.repos[0] if model.repos else model.name


def tp_problem(model: KnownModel, quant: Quantization, tp: int) -> str | None:
    """Why SGLang cannot shard ``model`` over ``tp`` GPUs, or None."""
    heads = model.num_attention_heads
    if heads % tp:
        return (
            f"{display_name(model)} has {heads} attention heads, which {tp} does not divide "
            "(SGLang asserts num_heads % tp_size == 0)"
        )
    kv = model.num_key_value_heads
    if model.kv_heads_shard and (kv % tp if tp <= kv else tp % kv):
        return (
            f"{display_name(model)} has {kv} KV heads: tensor parallel sizes must divide them or be a multiple of them "
            "(SGLang's attention layers assert it)"
        )
    if quant.block is not None:
        block = quant.block[0]
        for width in model.sharded_widths:
            if width % tp or (width // tp) % block:
                share = width / tp
                return (
                    f"with {quant.scheme} weights each GPU's share of {display_name(model)}'s {width}-wide layers "
                    f"must be a multiple of {block} ({width} / {tp} = {share:g}; SGLang: 'is not divisible by "
                    "weight quantization block_n')"
                )
    return None


def valid_tp_sizes(model: KnownModel, quant: Quantization, limit: int = 256) -> list[int]:
    return [tp for tp in range(1, limit + 1) if tp_problem(model, quant, tp) is None]


def join_or(values: list[int] | list[str]) -> str:
    text = [str(v) for v in values]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " or " + text[-1]


def check_tp(model: KnownModel, quant: Quantization, tp: int, *, explicit: bool = True) -> list[Problem]:
    """``explicit``: tensorParallel is set (the problem names it); otherwise tp is nodes x gpusPerNode."""
    why = tp_problem(model, quant, tp)
    if why is None:
        return []
    choices = join_or(valid_tp_sizes(model, quant))
    if explicit:
        return [Problem(("tensorParallel",), f"tensorParallel {tp}: {why}; use {choices}")]
    return [
        Problem(
            ("gpusPerNode",),
            f"the group shards over nodes x gpusPerNode = {tp} GPUs: {why}; use a total of {choices}",
        )
    ]


# --- the rules -------------------------------------------------------------------------------------------------

FP8_GPUS = tuple(g.name for g in GPUS.values() if g.fp8)


def _fp8_runs(quant: Quantization, gpu: Gpu, release: Version, moe: bool) -> tuple[bool, str]:
    """Whether FP8 weights run on ``gpu`` under ``release``, and why not."""
    if gpu.fp8:
        return True, ""
    if moe:
        return False, (
            f"its experts run SGLang's FP8 MoE kernels, which need FP8 tensor cores in every release read "
            f"(Fp8MoEMethod has no Marlin path for FP8 experts); {gpu.name} (compute capability "
            f"{gpu.capability_text}) has none"
        )
    marlin = FP8_DENSE_MARLIN.status(release)
    if marlin == "yes":
        return True, ""
    if marlin == "unknown":
        return True, ""
    return False, (
        f"SGLang {release} runs FP8 layers only on FP8 tensor cores (its weight-only Marlin fallback for "
        f"compute capability 8.0-8.8 arrives in {FP8_DENSE_MARLIN.present_from}); {gpu.name} has compute "
        f"capability {gpu.capability_text}"
    )


def alternatives(model: KnownModel | None, gpu: Gpu, release: Version) -> list[str]:
    """Other checkpoints of the same model that ``gpu`` runs, each with what it needs."""
    if model is None or not model.variants:
        return []
    out = []
    for scheme, repo in model.variants.items():
        quant = SCHEMES[scheme]
        if scheme == model.quantization or (quant.fp8_compute and not gpu.fp8):
            continue
        needs = [quant.description]
        method = METHODS.get(quant.method or "")
        if method is not None and method.since.status(release) != "yes":
            needs.append(f"SGLang >= {method.since.present_from}")
        if scheme == "w8a8-int8" and model.moe and W8A8_INT8_MOE.status(release) != "yes":
            needs.append(f"SGLang >= {W8A8_INT8_MOE.present_from}")
        if quant.flag:
            needs.append(f"model.quantization {scheme}, which passes --quantization {quant.flag}")
        variant = known_model(repo)
        name = repo if "/" in repo else "BF16 weights converted with DeepSeek-V3's inference/fp8_cast_bf16.py"
        if variant is not None and variant.size_gib and model.size_gib and variant.size_gib > 1.2 * model.size_gib:
            ratio = round(variant.size_gib / model.size_gib)
            needs.append(f"{variant.size_gib:g} GiB, so about {ratio} x the GPUs")
        else:
            needs.append("on the same GPUs")
        out.append(f"{name} ({', '.join(dict.fromkeys(needs))})")
    return out


def check_quantization(
    quant: Quantization,
    gpu: Gpu | None,
    release: Version,
    *,
    model: KnownModel | None = None,
    where: str = "the weights",
) -> list[Problem]:
    """Can SGLang ``release`` run ``quant`` weights on ``gpu`` (None: not declared, only the release is
    checked)? Problems name ``gpu`` (the fix is usually other weights or another GPU) or
    ``versions.sglangImage`` when only the release is at fault. ``where`` says where the quantization was read
    (e.g. "config.json of meituan/DeepSeek-R1-Block-INT8")."""
    if not quant.quantized:
        return []
    out: list[Problem] = []
    name = display_name(model)
    moe = bool(model and model.moe)
    method = METHODS.get(quant.method or "")
    fix = " or ".join(alternatives(model, gpu, release)) if gpu is not None else ""
    if method is not None:
        status = method.since.status(release)
        if status == "no":
            out.append(
                Problem(
                    ("versions", "sglangImage"),
                    f"{name} is {quant.description} ({where}), quantization method {method.name}, which SGLang "
                    f"{release} does not have (first in {method.since.present_from}): pin an SGLang image of "
                    f"{method.since.present_from} or later",
                )
            )
        minimum = method.min_capability_in(release)
        if gpu is not None and gpu.capability < minimum:
            out.append(
                Problem(
                    ("gpu",),
                    f"{name} is {quant.description} ({where}); SGLang {release}'s {method.name} needs compute "
                    f"capability {minimum / 10:.1f} or newer ({method.source}) and {gpu.name} has "
                    f"{gpu.capability_text}" + (f": serve {fix}" if fix else ""),
                )
            )
            return out
    if quant.fp8_compute and gpu is not None:
        runs, why = _fp8_runs(quant, gpu, release, moe)
        if not runs:
            message = (
                f"{name} is {quant.description} ({where}), and {why}: SGLang stops at load with "
                '"type fp8e4nv not supported in this architecture" (DeepSeek-R1#588, sglang#4364)'
            )
            message += f". Serve {fix}, or" if fix else ". Use"
            message += f" a GPU with FP8 ({', '.join(FP8_GPUS)})"
            out.append(Problem(("gpu",), message))
    if quant.scheme == "w8a8-int8" and moe and W8A8_INT8_MOE.status(release) == "no":
        out.append(
            Problem(
                ("versions", "sglangImage"),
                f"{name} is {quant.description} ({where}), but SGLang {release} applies w8a8_int8 only to dense "
                f"layers (W8A8Int8Config has no MoE method before {W8A8_INT8_MOE.present_from}), so the INT8 "
                f"experts cannot load: pin an SGLang image of {W8A8_INT8_MOE.present_from} or later",
            )
        )
    return out


def check_kv_cache_dtype(
    kv_cache_dtype: str | None, gpu: Gpu, release: Version, model: KnownModel | None
) -> list[Problem]:
    mla = model is not None and not model.kv_heads_shard
    if (
        kv_cache_dtype == "fp8_e4m3"
        and gpu.capability < KV_FP8_E4M3_MIN_CAPABILITY
        and mla
        and release <= MLA_TRITON_LAST_READ
    ):
        return [
            Problem(
                ("kvCacheDtype",),
                f"fp8_e4m3 stores the KV cache as float8_e4m3fn, and SGLang {release} runs {display_name(model)}'s "
                f"MLA attention on Triton kernels, which cannot compile over it on {gpu.name} (compute capability "
                f"{gpu.capability_text}; Triton supports only fp8e5 there): use fp8_e5m2, or auto",
            )
        ]
    return []


def check_declared(declared: str, found: Quantization, where: str) -> list[Problem]:
    """``model.quantization`` set by hand, against what config.json says."""
    if declared == found.scheme:
        return []
    fix = (
        f"set it to {found.scheme} (SGLang needs --quantization {found.flag} for it)"
        if found.flag
        else f"remove model.quantization (it is read from config.json) or set it to {found.scheme}"
    )
    return [
        Problem(
            ("model", "quantization"),
            f"{declared!r} does not match {where}, which says {found.scheme} ({found.description}): {fix}",
        )
    ]


def check_group_weights(g: InferenceGroup, weights: Weights, release: Version | None) -> list[Problem]:
    """Every rule over what one group serves. Locations are relative to the group, except
    ``versions.sglangImage`` (absolute: the release is the whole stack's)."""
    out: list[Problem] = []
    quant, model = weights.quant, weights.model
    declared = g.model.quantization
    if quant is None:
        return out
    if weights.config is not None and declared is not None:
        out += check_declared(declared, quant, weights.where)
    elif quant.flag and declared != quant.scheme:
        out.append(
            Problem(
                ("model", "quantization"),
                f"{display_name(model)} is {quant.description} ({weights.where}), which SGLang runs with its own "
                f"kernels only under --quantization {quant.flag}: set model.quantization: {quant.scheme} (the "
                "platform then passes the flag)",
            )
        )
    if model is not None:
        out += check_tp(model, quant, g.tp_size, explicit=g.tensor_parallel is not None)
    gpu = gpu_named(g.gpu) if g.gpu else None
    if release is not None:
        out += check_quantization(quant, gpu, release, model=model, where=weights.where)
        if gpu is not None:
            out += check_kv_cache_dtype(g.kv_cache_dtype, gpu, release, model)
    return out


def check_weights(cfg: PlatformConfig, weights: Mapping[str, Weights]) -> list[Problem]:
    """``weights`` by stack entry name (``resolve``; the roles of a disaggregated service serve its weights,
    each on its own GPUs and tensor-parallel size); locations from the root."""
    out: list[Problem] = []
    for unit in cfg.serving_units:
        for p in check_group_weights(unit.group, weights[unit.service.name], cfg.versions.sglang_release):
            loc: Loc = p.loc if p.loc[:1] == ("versions",) else unit.loc(p.loc)
            out.append(Problem(loc, p.message))
    # The same release problem from several groups serving the same weights is one problem.
    return list(dict.fromkeys(out))
