"""Quantized weights and the SGLang releases that run them: the facts the quantization rules
(``rules.quantization``) reason with, each with its source.

A checkpoint's quantization is what its ``config.json`` says (``quantization_config``, or
``compression_config`` for older compressed-tensors exports); SGLang reads the same field at start
(``srt/configs/model_config.py`` ModelConfig._parse_quant_hf_config / _verify_quantization) and then refuses
GPUs below the method's ``get_min_capability()`` (``srt/model_loader/loader.py`` _get_quantization_config).
That check is not the whole story: SGLang's own minimum for ``fp8`` is 8.0, yet its FP8 kernels need FP8
tensor cores (8.9+) except where a Marlin weight-only fallback exists. The tables here hold both, verified
in the wheels on PyPI (``pip download --no-deps sglang==X``) of the releases in ``RELEASES_READ``
(tests/test_quantization_wheels.py re-reads them).

A leaf: plain data, nothing here touches the network (see ``live.config_json`` for reading a repository's
config.json at preview).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from packaging.version import Version

from .gpus import FP8_MIN_CAPABILITY

V = Version
# The SGLang wheels whose source the facts below were read from.
RELEASES_READ = tuple(
    V(v) for v in ("0.4.3.post2", "0.4.3.post3", "0.4.3.post4", "0.4.4", "0.4.10.post2", "0.5.1", "0.5.5", "0.5.23")
)
Status = Literal["yes", "no", "unknown"]


@dataclass(frozen=True)
class Since:
    """A feature first seen in ``present_from`` among the wheels read; ``absent_in`` is the newest wheel read
    without it (None: present in every wheel read). Releases strictly between the two were not read."""

    present_from: Version
    absent_in: Version | None = None

    def status(self, release: Version) -> Status:
        if release >= self.present_from:
            return "yes"
        if self.absent_in is None or release <= self.absent_in:
            return "no"
        return "unknown"


@dataclass(frozen=True)
class Method:
    """A key of SGLang's QUANTIZATION_METHODS (srt/layers/quantization/__init__.py)."""

    name: str
    since: Since
    # get_min_capability() of its config class in the wheels read that have the method ...
    min_capability: int
    source: str
    # ... unless a later release changed it: (new minimum, from when).
    changed: tuple[int, Since] | None = None

    def min_capability_in(self, release: Version) -> int:
        """Between two wheels read the lower value wins: a rule may miss a refusal, never refuse wrongly."""
        if self.changed is not None and self.changed[1].status(release) != "no":
            return min(self.changed[0], self.min_capability)
        return self.min_capability


OLDEST = RELEASES_READ[0]
METHODS: Mapping[str, Method] = {
    m.name: m
    for m in (
        Method("fp8", Since(OLDEST), 80, "layers/quantization/fp8.py Fp8Config.get_min_capability"),
        Method(
            "blockwise_int8",
            Since(V("0.4.3.post3"), V("0.4.3.post2")),
            80,
            "layers/quantization/blockwise_int8.py BlockInt8Config (sglang#3730)",
        ),
        Method("w8a8_int8", Since(OLDEST), 75, "layers/quantization/w8a8_int8.py W8A8Int8Config"),
        Method("w8a8_fp8", Since(V("0.4.4"), V("0.4.3.post4")), 89, "layers/quantization/w8a8_fp8.py W8A8Fp8Config"),
        Method("modelopt", Since(OLDEST), 89, "layers/quantization/modelopt_quant.py ModelOptFp8Config"),
        # NVFP4 needs Blackwell (10.0) until a Marlin fallback lowers SGLang's minimum to 8.0 (0.5.23).
        Method(
            "modelopt_fp4",
            Since(V("0.4.10"), V("0.4.4")),
            100,
            "layers/quantization/modelopt_quant.py ModelOptFp4Config",
            changed=(80, Since(V("0.5.23"), V("0.5.5"))),
        ),
        # 0.4.x imports these three config classes from vLLM; 0.5.x ports them with the same minimums.
        Method("awq", Since(OLDEST), 75, "layers/quantization/awq/awq.py AWQConfig (vLLM's in 0.4.x)"),
        Method("gptq", Since(OLDEST), 60, "layers/quantization/gptq/gptq.py GPTQConfig (vLLM's in 0.4.x)"),
        Method(
            "compressed-tensors",
            Since(OLDEST),
            70,
            "layers/quantization/compressed_tensors/compressed_tensors.py CompressedTensorsConfig (vLLM's in 0.4.x)",
        ),
        Method("mxfp4", Since(V("0.5.1"), V("0.4.10.post2")), 80, "layers/quantization/mxfp4.py Mxfp4Config"),
    )
}

# FP8 linear layers fall back to weight-only Marlin kernels on compute capability 8.0-8.8 from this release
# (layers/quantization/fp8_utils.py can_auto_enable_marlin_fp8, used by Fp8LinearMethod; absent in
# 0.4.10.post2). 0.4.x disables Marlin for block-quantized weights outright ("Marlin doesn't support
# block-wise fp8", Fp8LinearMethod.__init__ in 0.4.3.post2).
FP8_DENSE_MARLIN = Since(V("0.5.1"), V("0.4.10.post2"))
# Fp8MoEMethod has no Marlin path for FP8 experts in any wheel read (0.5.23 uses Marlin only for FP4 experts):
# the experts of an FP8 MoE model always need FP8 tensor cores.
# W8A8Int8Config quantizes only LinearBase layers before this release; W8A8Int8MoEMethod arrives with the
# channel-wise INT8 MoE kernels (sglang#3888).
W8A8_INT8_MOE = Since(V("0.4.4"), V("0.4.3.post4"))
# --kv-cache-dtype fp8_e4m3 stores float8_e4m3fn (srt/model_executor/model_runner.py init_memory_pool) and
# hands that view of the buffer to the attention kernels. Triton compiles no kernel over fp8e4nv below 8.9
# ("The supported fp8 dtypes are ('fp8e4b15', 'fp8e5')"); fp8_e5m2 is fp8e5 and runs on 8.0. MLA models
# (DeepSeek) run on the Triton backend in these releases ("MLA optimization is turned on. Use triton backend.",
# model_runner.py in 0.4.3.post2 .. 0.4.4; gone by 0.4.10.post2, where the backend choice moved). Other
# models use FlashInfer by default, which has its own FP8 KV path: not refused.
KV_FP8_E4M3_MIN_CAPABILITY = FP8_MIN_CAPABILITY
MLA_TRITON_LAST_READ = V("0.4.4")
MLA_TRITON_GONE = V("0.4.10.post2")


@dataclass(frozen=True)
class Quantization:
    """What a checkpoint is, as far as running it goes."""

    scheme: str
    # The SGLang method that loads it (None: unquantized); ``flag`` is the --quantization value the platform
    # must pass because config.json alone does not select it (Channel-INT8 says compressed-tensors).
    method: str | None
    flag: str | None = None
    # The kernels compute in FP8, so the GPU needs FP8 tensor cores (unless a Marlin fallback applies).
    fp8_compute: bool = False
    block: tuple[int, int] | None = None
    description: str = ""

    @property
    def quantized(self) -> bool:
        return self.method is not None


# The values of model.quantization: the keys of SCHEMES (a test keeps the two equal).
Scheme = Literal[
    "none",
    "fp8-block",
    "fp8",
    "int8-block",
    "w8a8-int8",
    "w8a8-fp8",
    "awq",
    "gptq",
    "compressed-tensors",
    "modelopt-fp8",
    "modelopt-fp4",
    "mxfp4",
]

SCHEMES: Mapping[str, Quantization] = {
    q.scheme: q
    for q in (
        Quantization("none", None, description="unquantized BF16/FP16"),
        Quantization(
            "fp8-block",
            "fp8",
            fp8_compute=True,
            block=(128, 128),
            description="FP8 (e4m3) in 128 x 128 blocks",
        ),
        Quantization("fp8", "fp8", fp8_compute=True, description="FP8 (e4m3)"),
        Quantization("int8-block", "blockwise_int8", block=(128, 128), description="W8A8 INT8 in 128 x 128 blocks"),
        Quantization(
            "w8a8-int8",
            "w8a8_int8",
            flag="w8a8_int8",
            description="W8A8 INT8, per channel",
        ),
        Quantization("w8a8-fp8", "w8a8_fp8", flag="w8a8_fp8", fp8_compute=True, description="W8A8 FP8, per channel"),
        Quantization("awq", "awq", description="AWQ 4-bit"),
        Quantization("gptq", "gptq", description="GPTQ"),
        Quantization("compressed-tensors", "compressed-tensors", description="compressed-tensors"),
        Quantization("modelopt-fp8", "modelopt", fp8_compute=True, description="ModelOpt FP8"),
        Quantization("modelopt-fp4", "modelopt_fp4", description="ModelOpt NVFP4"),
        Quantization("mxfp4", "mxfp4", description="MXFP4"),
    )
}


def scheme_choices() -> str:
    return ", ".join(SCHEMES)


# --- what config.json says ------------------------------------------------------------------------------------


def quantization_config(config: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The quantization block of a config.json, where SGLang looks for it (quantization_config, else the
    compression_config of older compressed-tensors exports)."""
    block = config.get("quantization_config")
    if block is None:
        block = config.get("compression_config")
    return block if isinstance(block, Mapping) else None


def _compressed_tensors(qc: Mapping[str, Any]) -> Quantization:
    """compressed-tensors names its scheme per config group: weights and input activations, each with a type
    (int/float), bits and strategy. W8A8 INT8 is what meituan/DeepSeek-R1-Channel-INT8 ships, which SGLang runs
    with its own kernels only under ``--quantization w8a8_int8`` (compatible_quantization_methods)."""
    groups = qc.get("config_groups") or {}
    values = list(groups.values()) if isinstance(groups, Mapping) else []
    first: Mapping[str, Any] = values[0] if values and isinstance(values[0], Mapping) else {}
    weights = first.get("weights") or {}
    acts = first.get("input_activations") or {}
    wtype, wbits = weights.get("type"), weights.get("num_bits")
    atype, abits = acts.get("type"), acts.get("num_bits")
    if wtype == "int" and wbits == 8 and atype == "int" and abits == 8:
        return SCHEMES["w8a8-int8"]
    if wtype == "float" and wbits == 8:
        return replace(SCHEMES["fp8"], method="compressed-tensors", description="FP8 (compressed-tensors)")
    return SCHEMES["compressed-tensors"]


def detect(config: Mapping[str, Any]) -> Quantization:
    """The quantization of a checkpoint from its config.json. Unknown methods come back as scheme
    ``other`` with SGLang's method name, so the release and capability rules can still apply."""
    qc = quantization_config(config)
    if qc is None:
        return SCHEMES["none"]
    method = str(qc.get("quant_method", "")).lower()
    block = qc.get("weight_block_size")
    block_tuple = (
        (int(block[0]), int(block[1]))
        if isinstance(block, list | tuple) and len(block) == 2 and all(isinstance(b, int) for b in block)
        else None
    )
    if method in ("fp8", "fbgemm_fp8"):
        if block_tuple is not None:
            return replace(SCHEMES["fp8-block"], block=block_tuple)
        return SCHEMES["fp8"]
    if method == "blockwise_int8":
        return replace(SCHEMES["int8-block"], block=block_tuple or (128, 128))
    if method in ("w8a8_int8", "w8a8_fp8"):
        return SCHEMES[method.replace("_", "-")]
    if method in ("compressed-tensors", "compressed_tensors"):
        return _compressed_tensors(qc)
    if method == "modelopt":
        algo = str(qc.get("quant_algo", "FP8")).upper()
        return SCHEMES["modelopt-fp4" if "FP4" in algo else "modelopt-fp8"]
    if method in ("awq", "gptq", "mxfp4"):
        return SCHEMES[method]
    return Quantization("other", method or None, description=f"quant_method {method!r}")
