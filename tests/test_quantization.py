"""The GPU table and the rules for quantized weights against the GPU and the pinned SGLang release."""

from __future__ import annotations

import pytest
from packaging.version import Version

from sglang_platform.facts import model_catalogue as catalogue
from sglang_platform.facts import quantization as q
from sglang_platform.facts.gpus import GPUS, gpu_by_product, parse_product
from sglang_platform.rules import quantization as r

A800, H100, L40S = GPUS["A800-80GB"], GPUS["H100-80GB"], GPUS["L40S"]
R1 = catalogue.KNOWN_MODELS["deepseek-r1"]
QWEN = catalogue.KNOWN_MODELS["qwen2.5-1.5b-instruct"]

# config.json of deepseek-ai/DeepSeek-R1, the fields that matter here.
DEEPSEEK_CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "num_hidden_layers": 61,
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "n_routed_experts": 256,
    "kv_lora_rank": 512,
    "quantization_config": {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": [128, 128],
    },
}
BLOCK_INT8 = {"activation_scheme": "dynamic", "quant_method": "blockwise_int8", "weight_block_size": [128, 128]}
# A compressed-tensors W8A8 INT8 config as llm-compressor writes it (the layout meituan's Channel-INT8 uses).
CHANNEL_INT8 = {
    "quant_method": "compressed-tensors",
    "format": "int-quantized",
    "config_groups": {
        "group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 8, "type": "int", "strategy": "channel", "symmetric": True, "dynamic": False},
            "input_activations": {"num_bits": 8, "type": "int", "strategy": "token", "dynamic": True},
        }
    },
    "ignore": ["lm_head"],
}


def release(text: str) -> Version:
    return Version(text)


def messages(problems) -> str:
    return "\n".join(f"{p.loc}: {p.message}" for p in problems)


# --- GPUs -------------------------------------------------------------------------------------------------------


def test_gpu_memory_and_fp8_follow_from_the_table():
    assert A800.memory_gib == 80 and A800.capability == 80 and not A800.fp8
    assert L40S.fp8 and H100.fp8 and GPUS["B200"].capability == 100
    assert [g.name for g in GPUS.values() if not g.fp8] == ["A100-40GB", "A100-80GB", "A800-80GB"]


@pytest.mark.parametrize(
    ("label", "base", "mig", "shared", "gpu"),
    [
        ("NVIDIA-A800-SXM4-80GB", "NVIDIA-A800-SXM4-80GB", None, False, "A800-80GB"),
        ("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "NVIDIA-A100-SXM4-40GB", "1g.5gb", False, "A100-40GB"),
        ("NVIDIA-H100-80GB-HBM3-SHARED", "NVIDIA-H100-80GB-HBM3", None, True, "H100-80GB"),
        ("NVIDIA-A100-PCIe-40GB", "NVIDIA-A100-PCIe-40GB", None, False, "A100-40GB"),
        ("Tesla-T4", "Tesla-T4", None, False, None),
    ],
)
def test_gfd_product_labels(label, base, mig, shared, gpu):
    parsed = parse_product(label)
    assert (parsed.base, parsed.mig_profile, parsed.shared) == (base, mig, shared)
    assert (parsed.gpu.name if parsed.gpu else None) == gpu
    assert gpu_by_product(base) is parsed.gpu


# --- config.json ------------------------------------------------------------------------------------------------


def test_detects_deepseek_fp8_blocks():
    found = q.detect(DEEPSEEK_CONFIG)
    assert (found.scheme, found.method, found.block, found.fp8_compute) == ("fp8-block", "fp8", (128, 128), True)


@pytest.mark.parametrize(
    ("block", "scheme", "method", "flag"),
    [
        (BLOCK_INT8, "int8-block", "blockwise_int8", None),
        (CHANNEL_INT8, "w8a8-int8", "w8a8_int8", "w8a8_int8"),
        ({"quant_method": "fp8", "activation_scheme": "dynamic"}, "fp8", "fp8", None),
        ({"quant_method": "awq", "bits": 4}, "awq", "awq", None),
        ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "modelopt-fp4", "modelopt_fp4", None),
        ({"quant_method": "made_up"}, "other", "made_up", None),
    ],
)
def test_detects_quantization_config(block, scheme, method, flag):
    found = q.detect({"quantization_config": block})
    assert (found.scheme, found.method, found.flag) == (scheme, method, flag)


def test_compressed_tensors_fp8_and_old_compression_config():
    ct_fp8 = {
        "quant_method": "compressed-tensors",
        "config_groups": {"g": {"weights": {"num_bits": 8, "type": "float"}}},
    }
    found = q.detect({"compression_config": ct_fp8})
    assert (found.scheme, found.method, found.fp8_compute) == ("fp8", "compressed-tensors", True)
    assert q.detect({"torch_dtype": "bfloat16"}).scheme == "none"


def test_architecture_from_config_json():
    model = r.model_from_config("DeepSeek-R1", DEEPSEEK_CONFIG)
    assert model is not None
    assert (model.moe, model.kv_heads_shard, model.sharded_widths, model.quantization) == (
        True,
        False,
        (18432, 2048),
        "fp8-block",
    )
    assert r.model_from_config("x", {"hidden_size": 1}) is None


# --- architecture against weights -------------------------------------------------------------------------------


@pytest.mark.parametrize("sglang", [str(r) for r in q.RELEASES_READ])
def test_deepseek_fp8_refused_on_a800_in_every_release(sglang):
    problems = r.check_quantization(q.SCHEMES["fp8-block"], A800, release(sglang), model=R1, where="config.json")
    assert [p.loc for p in problems] == [("gpu",)], messages(problems)
    text = problems[0].message
    assert "deepseek-ai/DeepSeek-R1 is FP8 (e4m3) in 128 x 128 blocks (config.json)" in text
    assert "type fp8e4nv not supported in this architecture" in text and "DeepSeek-R1#588" in text
    assert "meituan/DeepSeek-R1-Block-INT8" in text and "meituan/DeepSeek-R1-Channel-INT8" in text
    assert "about 2 x the GPUs" in text and "H100-80GB" in text


def test_fp8_runs_on_gpus_with_fp8():
    for gpu in (H100, L40S, GPUS["H20-96GB"], GPUS["B200"]):
        assert r.check_quantization(q.SCHEMES["fp8-block"], gpu, release("0.4.3.post2"), model=R1) == []


def test_block_int8_needs_0_4_3_post3():
    model = catalogue.known_model("meituan/DeepSeek-R1-Block-INT8")
    old = r.check_quantization(q.SCHEMES["int8-block"], A800, release("0.4.3.post2"), model=model)
    assert [p.loc for p in old] == [("versions", "sglangImage")]
    assert "blockwise_int8, which SGLang 0.4.3.post2 does not have (first in 0.4.3.post3)" in old[0].message
    assert r.check_quantization(q.SCHEMES["int8-block"], A800, release("0.4.3.post3"), model=model) == []


def test_channel_int8_moe_needs_0_4_4():
    model = catalogue.known_model("DeepSeek-R1-Channel-INT8")
    old = r.check_quantization(q.SCHEMES["w8a8-int8"], A800, release("0.4.3.post4"), model=model)
    assert [p.loc for p in old] == [("versions", "sglangImage")]
    assert "only to dense layers" in old[0].message and "0.4.4 or later" in old[0].message
    assert r.check_quantization(q.SCHEMES["w8a8-int8"], A800, release("0.4.4"), model=model) == []
    # A dense model is fine with the linear-only method.
    assert r.check_quantization(q.SCHEMES["w8a8-int8"], A800, release("0.4.3.post2"), model=QWEN) == []


def test_dense_fp8_on_ampere_needs_the_marlin_fallback():
    old = r.check_quantization(q.SCHEMES["fp8"], A800, release("0.4.10.post2"), model=QWEN)
    assert [p.loc for p in old] == [("gpu",)] and "arrives in 0.5.1" in old[0].message
    assert r.check_quantization(q.SCHEMES["fp8"], A800, release("0.5.1"), model=QWEN) == []


def test_capability_below_sglangs_minimum():
    problems = r.check_quantization(q.SCHEMES["w8a8-fp8"], A800, release("0.4.4"), model=QWEN)
    assert [p.loc for p in problems] == [("gpu",)]
    assert "SGLang 0.4.4's w8a8_fp8 needs compute capability 8.9 or newer (layers/quantization/w8a8_fp8.py" in (
        problems[0].message
    )


def test_a_minimum_that_changed_between_releases():
    nvfp4 = q.SCHEMES["modelopt-fp4"]
    assert [p.loc for p in r.check_quantization(nvfp4, H100, release("0.5.5"))] == [("gpu",)]
    assert r.check_quantization(nvfp4, H100, release("0.5.23")) == []
    # 0.5.10 was not read: the lower minimum applies.
    assert r.check_quantization(nvfp4, H100, release("0.5.10")) == []


def test_releases_between_the_wheels_read_are_not_refused():
    # modelopt_fp4 is absent in 0.4.4 and present in 0.4.10; 0.4.6 was not read.
    unread = r.check_quantization(q.SCHEMES["modelopt-fp4"], GPUS["B200"], release("0.4.6"))
    assert unread == []
    assert r.check_quantization(q.SCHEMES["modelopt-fp4"], GPUS["B200"], release("0.4.4"))


def test_unquantized_and_unknown_methods_pass():
    assert r.check_quantization(q.SCHEMES["none"], A800, release("0.4.3.post2")) == []
    assert r.check_quantization(q.detect({"quantization_config": {"quant_method": "x"}}), A800, release("0.5.23")) == []


def test_fp8_e4m3_kv_cache_of_mla_models_needs_fp8_gpus():
    old = release("0.4.3.post2")
    (problem,) = r.check_kv_cache_dtype("fp8_e4m3", A800, old, R1)
    assert problem.loc == ("kvCacheDtype",) and "use fp8_e5m2, or auto" in problem.message
    assert r.check_kv_cache_dtype("fp8_e5m2", A800, old, R1) == []
    assert r.check_kv_cache_dtype("fp8_e4m3", H100, old, R1) == []
    # Not MLA (FlashInfer's own FP8 KV path), or a release that no longer forces Triton for MLA.
    assert r.check_kv_cache_dtype("fp8_e4m3", A800, old, QWEN) == []
    assert r.check_kv_cache_dtype("fp8_e4m3", A800, release("0.5.23"), R1) == []


def test_declared_quantization_against_config_json():
    assert r.check_declared("int8-block", q.detect({"quantization_config": BLOCK_INT8}), "config.json") == []
    (problem,) = r.check_declared("none", q.detect(DEEPSEEK_CONFIG), "config.json of deepseek-ai/DeepSeek-R1")
    assert problem.loc == ("model", "quantization")
    assert "'none' does not match config.json of deepseek-ai/DeepSeek-R1, which says fp8-block" in problem.message


# --- tensor parallel sizes ----------------------------------------------------------------------------------------


def test_tensor_parallel_sizes_divide_the_heads_and_the_blocks():
    assert r.valid_tp_sizes(R1, q.SCHEMES["fp8-block"]) == [1, 2, 4, 8, 16]
    assert r.valid_tp_sizes(R1, q.SCHEMES["none"]) == [1, 2, 4, 8, 16, 32, 64, 128]
    # 12 heads, 2 KV heads: 3 divides the heads but not the KV heads.
    assert r.valid_tp_sizes(QWEN, q.SCHEMES["none"]) == [1, 2, 4, 6, 12]


def test_tensor_parallel_messages_list_what_works():
    (eleven,) = r.check_tp(R1, q.SCHEMES["none"], 11)
    assert eleven.loc == ("tensorParallel",)
    assert eleven.message == (
        "tensorParallel 11: deepseek-ai/DeepSeek-R1 has 128 attention heads, which 11 does not divide "
        "(SGLang asserts num_heads % tp_size == 0); use 1, 2, 4, 8, 16, 32, 64 or 128"
    )
    (blocks,) = r.check_tp(R1, q.SCHEMES["fp8-block"], 32)
    assert "18432 / 32 = 576" in blocks.message and blocks.message.endswith("use 1, 2, 4, 8 or 16")
    assert r.check_tp(R1, q.SCHEMES["fp8-block"], 16) == []


def test_model_quantization_accepts_exactly_the_schemes():
    from typing import get_args

    assert list(get_args(q.Scheme)) == list(q.SCHEMES)
