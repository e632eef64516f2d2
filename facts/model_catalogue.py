"""The model catalogue: the models the platform knows (architecture facts from their config.json, weight sizes,
the other checkpoints of the same model). Plain data; the schemes it names are ``facts.quantization``'s, and
``rules.quantization.model_from_config`` reads the same facts from a config.json for a model not in it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class KnownModel:
    """Architecture facts from a model's config.json, and where to get the same model in other forms."""

    name: str
    num_attention_heads: int
    num_key_value_heads: int
    num_hidden_layers: int
    hidden_size: int
    # Widths that tensor parallelism splits; with block-quantized weights each GPU's share must be a whole
    # number of blocks (fp8.py / blockwise_int8.py create_weights: "... is not divisible by ... block_n").
    sharded_widths: tuple[int, ...]
    quantization: str
    size_gib: float | None
    # MoE: its experts run through the MoE method of the quantization (see W8A8_INT8_MOE).
    moe: bool = False
    # SGLang's attention asserts num_heads % tp == 0; GQA models (qwen2.py) also need the KV heads to divide
    # tp or tp to divide them; MLA (DeepSeek) shards only the query heads.
    kv_heads_shard: bool = True
    repos: tuple[str, ...] = ()
    # Other checkpoints of the same model: scheme -> repository.
    variants: Mapping[str, str] = field(default_factory=dict)
    # MLA: the latent KV cache of one token in one layer, kv_lora_rank + qk_rope_head_dim elements (DeepSeek-V3:
    # 512 + 64); every GPU of an attention group holds it whole (SGLang's MLA token pool).
    mla_kv_width: int | None = None

    def kv_bytes_per_token(self, attention_tp: int, element_bytes: int) -> int | None:
        """Bytes of KV cache one token takes on each GPU of an attention group of ``attention_tp`` GPUs: MLA's
        latent vector whole on every GPU; otherwise K and V of the KV heads that GPU holds (at least one, heads
        replicated when there are fewer than GPUs). None when the width is not known."""
        layers = self.num_hidden_layers
        if self.mla_kv_width is not None:
            return self.mla_kv_width * layers * element_bytes
        if not self.kv_heads_shard or not self.num_attention_heads or not layers:
            return None
        head_dim = self.hidden_size // self.num_attention_heads
        heads = max(self.num_key_value_heads // max(attention_tp, 1), 1)
        return 2 * heads * head_dim * layers * element_bytes


def _deepseek(name: str, quantization: str, size_gib: float, repo: str, variants: Mapping[str, str]) -> KnownModel:
    """config.json of deepseek-ai/DeepSeek-V3 / DeepSeek-R1 (DeepSeek-V3's README_WEIGHTS.md documents its
    quantization_config: fp8, e4m3, weight_block_size [128, 128]); the INT8 and BF16 conversions keep it."""
    return KnownModel(
        name,
        num_attention_heads=128,
        num_key_value_heads=128,
        num_hidden_layers=61,
        hidden_size=7168,
        sharded_widths=(18432, 2048),  # intermediate_size, moe_intermediate_size
        quantization=quantization,
        size_gib=size_gib,
        moe=True,
        kv_heads_shard=False,
        repos=(repo,),
        variants=variants,
        mla_kv_width=512 + 64,  # kv_lora_rank + qk_rope_head_dim
    )


_R1_VARIANTS = {
    "fp8-block": "deepseek-ai/DeepSeek-R1",
    # SGLang benchmark/deepseek_v3/README.md "Serving with 16 A100/A800 with int8 Quantization";
    # docs/basic_usage/deepseek_v3.md lists INT8 for 16 x A100/800 and BF16 for 4 x 8 A100/A800.
    "int8-block": "meituan/DeepSeek-R1-Block-INT8",
    "w8a8-int8": "meituan/DeepSeek-R1-Channel-INT8",
    # BF16: DeepSeek-V3's inference/fp8_cast_bf16.py converts the FP8 release (benchmark README, 4 x A100*8).
    "none": "deepseek-r1-bf16",
}
# Weights in GiB, the one table the capacity rules and the startup budget read (rules.model_cache).
# FP8: the reference measured 642G (du -h) for the ModelScope download of deepseek-ai/DeepSeek-R1; the Hugging
# Face repository lists 688 GB (decimal), the same 641 GiB.
# INT8 (not measured here): Meituan converted the FP8 release to BF16 and then to INT8 in 128 x 128 blocks
# (their write-up); the public block-INT8 conversion scripts quantize exactly the tensors the FP8 index scales
# (those with a "_scale_inv"), one byte each with a float32 scale per block, the rest BF16 as in the FP8
# release. So the Block-INT8 checkpoint is at least the FP8 release's size, and listings of it give "690 GB+"
# (642.6 GiB and up). 650 GiB rounds that up for the capacity rule, the startup budget and the disk to keep
# free; Channel-INT8's per-row scales are of the same order. Set model.sizeGiB to what `du -s` measures.
# BF16 doubles the bytes: SGLang's README says "over 1.3 TB" (671e9 x 2 bytes = 1250 GiB).
DEEPSEEK_FP8_GIB = 642.0
DEEPSEEK_INT8_GIB = 650.0
DEEPSEEK_BF16_GIB = 1250.0

KNOWN_MODELS: Mapping[str, KnownModel] = {
    m.name: m
    for m in (
        _deepseek("deepseek-r1", "fp8-block", DEEPSEEK_FP8_GIB, "deepseek-ai/DeepSeek-R1", _R1_VARIANTS),
        _deepseek("deepseek-v3", "fp8-block", DEEPSEEK_FP8_GIB, "deepseek-ai/DeepSeek-V3", {}),
        _deepseek("deepseek-r1-block-int8", "int8-block", DEEPSEEK_INT8_GIB, _R1_VARIANTS["int8-block"], _R1_VARIANTS),
        _deepseek("deepseek-r1-channel-int8", "w8a8-int8", DEEPSEEK_INT8_GIB, _R1_VARIANTS["w8a8-int8"], _R1_VARIANTS),
        _deepseek("deepseek-r1-bf16", "none", DEEPSEEK_BF16_GIB, "deepseek-r1-bf16", _R1_VARIANTS),
        # Qwen/Qwen2.5-1.5B-Instruct config.json: 12 heads, 2 KV heads, 28 layers, hidden 1536, intermediate 8960;
        # one model.safetensors of 3.09 GB (bf16).
        KnownModel(
            "qwen2.5-1.5b-instruct",
            num_attention_heads=12,
            num_key_value_heads=2,
            num_hidden_layers=28,
            hidden_size=1536,
            sharded_widths=(8960,),
            quantization="none",
            size_gib=2.9,
            repos=("Qwen/Qwen2.5-1.5B-Instruct",),
        ),
        # deepseek-ai/DeepSeek-R1-Distill-Qwen-7B: Qwen2 architecture, 28 heads, 4 KV heads, 28 layers, hidden
        # 3584, intermediate 18944; two safetensors shards, 15.2 GB (bf16).
        KnownModel(
            "deepseek-r1-distill-qwen-7b",
            num_attention_heads=28,
            num_key_value_heads=4,
            num_hidden_layers=28,
            hidden_size=3584,
            sharded_widths=(18944,),
            quantization="none",
            size_gib=14.2,
            repos=("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",),
        ),
    )
}


def known_model(name: str) -> KnownModel | None:
    """By repository name without the owner, case-insensitive (``meituan/DeepSeek-R1-Block-INT8`` and a
    hand-staged ``model.path: DeepSeek-R1-Block-INT8`` both find it)."""
    return KNOWN_MODELS.get(name.rstrip("/").rsplit("/", 1)[-1].lower())
