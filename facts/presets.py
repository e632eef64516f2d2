"""Named serving profiles: a group says ``preset: deepseek-r1-h200`` and gets the model, the topology and the
serving levers a published deployment of that model on that hardware uses; any key the group sets itself
wins (nested keys one by one, lists whole; an explicit null removes a preset's setting).

Every preset reproduces a published command (``source_command``, quoted from ``sources``) as far as the
platform's typed settings reach; docs/deepseek.md lists them with the command each renders for the pinned
release, and the tests render every preset on every shipped release it runs on. Presets are data: the
settings are stack keys (camelCase), merged before validation, so an error names the key it is about whether
the value came from the preset or the stack.

GPU classes are those of the GPU table (``facts/gpus.py``); a preset sets ``gpu`` to the first it names (a
group on another of them overrides it), and ``model.quantization`` to its weights' scheme, so the GPU and
quantization rules check it like any group; which release it needs follows from its flags, its weights
(``facts/quantization.py``) and the release facts (``facts/sglang/releases.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic.alias_generators import to_snake

from .model_catalogue import DEEPSEEK_FP8_GIB

SGLANG_DOCS = "https://github.com/sgl-project/sglang/blob/main/docs/basic_usage/deepseek_v3.md"
SGLANG_BENCHMARK = "https://github.com/sgl-project/sglang/blob/main/benchmark/deepseek_v3/README.md"
SGLANG_REASONING = "https://github.com/sgl-project/sglang/blob/main/docs/advanced_features/separate_reasoning.ipynb"
# Every preset for Hopper FP8 keeps DeepGEMM's JIT kernels on the node (config/stack.py DeepGemm): the first
# start compiles them once (python3 -m sglang.compile_deep_gemm), later starts reuse them.
NODE_DEEP_GEMM_CACHE = "/var/cache/sglang-platform/deep-gemm"
# Hugging Face revisions (commit ids) of the published checkpoints, as pinned elsewhere: DeepSeek-R1's by the
# MLPerf inference DeepSeek-R1 reference (mlcommons/inference language/deepseek-r1) and NVIDIA's TensorRT-LLM
# harnesses; DeepSeek-V3-0324's as the Hub API lists it. Meituan's INT8 checkpoint has none here: the group
# pins one (model.download.revision), or the stack is refused with the key to set.
REVISIONS = {
    "deepseek-ai/DeepSeek-R1": "56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad",
    "deepseek-ai/DeepSeek-V3-0324": "e9b33add76883f293d6bf61f6bd89b497e80e335",
}


# DeepSeek-V3-0324: FP8 in blocks like R1, and no size the platform knows by its name: R1's FP8 size (the model
# catalogue's, the one table of weight sizes).
V3_0324: Mapping[str, Any] = MappingProxyType({"quantization": "fp8-block", "sizeGiB": DEEPSEEK_FP8_GIB})


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    gpus: tuple[str, ...]  # GPU classes of the GPU table it is written for
    weights: str
    # (what it takes from there, URL): the recipe and anything the preset adds from elsewhere.
    sources: tuple[tuple[str, str], ...]
    # The sources' commands as published (node 0 of a multi-node one; flags a page adds on their own line).
    source_commands: tuple[str, ...]
    settings: Mapping[str, Any]
    # Its GPUs run DeepGEMM (FP8 GEMMs on Hopper, sm90, and newer; SGLang turns it off below).
    deep_gemm: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def nodes(self) -> int:
        return int(self.settings.get("nodes", 1))

    @property
    def gpus_per_node(self) -> int:
        return int(self.settings["gpusPerNode"])


def _model(repo: str, served: str, **extra: Any) -> dict[str, Any]:
    download = {"repo": repo} | ({"revision": REVISIONS[repo]} if repo in REVISIONS else {})
    return {
        "path": repo.rsplit("/", 1)[-1],
        "servedName": served,
        "source": "huggingface",
        "trustRemoteCode": True,
        "download": download,
        **extra,
    }


_PRESETS = (
    Preset(
        name="deepseek-r1-a800",
        summary="DeepSeek-R1 in block-wise INT8 on 2 x 8 A800/A100 80 GB, tensor parallel 16",
        gpus=("A800-80GB", "A100-80GB"),
        weights="INT8, block-wise (meituan/DeepSeek-R1-Block-INT8): Ampere has no FP8 (sglang#4364)",
        sources=(
            ("16 x A100/A800 with INT8 quantization", SGLANG_BENCHMARK),
            ("--reasoning-parser deepseek-r1", SGLANG_REASONING),
        ),
        source_commands=(
            "python3 -m sglang.launch_server --model meituan/DeepSeek-R1-Block-INT8 --tp 16 --dist-init-addr "
            "MASTER_IP:5000 --nnodes 2 --node-rank 0 --trust-remote-code --enable-torch-compile "
            "--torch-compile-max-bs 8",
            "--reasoning-parser deepseek-r1",
        ),
        settings={
            "model": _model("meituan/DeepSeek-R1-Block-INT8", "deepseek-r1", quantization="int8-block"),
            "nodes": 2,
            "gpusPerNode": 8,
            "gpu": "A800-80GB",
            "tensorParallel": 16,
            "torchCompileMaxBs": 8,
            "reasoningParser": "deepseek-r1",
        },
    ),
    Preset(
        name="deepseek-r1-h100",
        summary="DeepSeek-R1 in FP8 on 2 x 8 H100 80 GB, tensor parallel 16 with 2 DP-attention groups",
        gpus=("H100-80GB", "H800-80GB"),
        weights="FP8, block-wise (deepseek-ai/DeepSeek-R1, as published)",
        sources=(
            ('Serving with two H20*8 nodes ("If you have two H100 nodes, the usage is similar")', SGLANG_BENCHMARK),
            ("Data Parallelism Attention: --enable-dp-attention --tp 16 --dp 2 on 2 nodes of 8 H100", SGLANG_DOCS),
            ("--reasoning-parser deepseek-r1", SGLANG_REASONING),
        ),
        source_commands=(
            "python3 -m sglang.launch_server --model-path deepseek-ai/DeepSeek-V3 --tp 16 --dist-init-addr "
            "10.0.0.1:5000 --nnodes 2 --node-rank 0 --trust-remote-code",
            "--enable-dp-attention --tp 16 --dp 2",
            "--reasoning-parser deepseek-r1",
        ),
        deep_gemm=True,
        settings={
            "model": _model("deepseek-ai/DeepSeek-R1", "deepseek-r1", quantization="fp8-block"),
            "nodes": 2,
            "gpusPerNode": 8,
            "gpu": "H100-80GB",
            "tensorParallel": 16,
            "dpAttentionSize": 2,
            "reasoningParser": "deepseek-r1",
        },
        notes=(
            "DeepGEMM: add deepGemm with a shared claim (cache.type pvc, ReadWriteMany): a node-local cache "
            "cannot be precompiled for a group that spans nodes.",
        ),
    ),
    Preset(
        name="deepseek-r1-h200",
        summary="DeepSeek-R1 in FP8 on one node of 8 H200 141 GB, DP attention over the 8 GPUs",
        gpus=("H200-141GB",),
        weights="FP8, block-wise (deepseek-ai/DeepSeek-R1, as published)",
        sources=(
            ("Using Docker (8 x H200): --tp 8 --trust-remote-code, --shm-size 32g", SGLANG_BENCHMARK),
            ("Data Parallelism Attention: --enable-dp-attention --tp 8 --dp 8 on 8 H200", SGLANG_DOCS),
            ("Block-wise FP8: precompile the DeepGEMM kernels", SGLANG_DOCS),
            ("--reasoning-parser deepseek-r1", SGLANG_REASONING),
        ),
        source_commands=(
            "python3 -m sglang.launch_server --model deepseek-ai/DeepSeek-V3 --tp 8 --trust-remote-code --port 30000",
            "--enable-dp-attention --tp 8 --dp 8",
            "--reasoning-parser deepseek-r1",
            "python3 -m sglang.compile_deep_gemm --model deepseek-ai/DeepSeek-V3 --tp 8 --trust-remote-code",
        ),
        deep_gemm=True,
        settings={
            "model": _model("deepseek-ai/DeepSeek-R1", "deepseek-r1", quantization="fp8-block"),
            "nodes": 1,
            "gpusPerNode": 8,
            "gpu": "H200-141GB",
            "tensorParallel": 8,
            "dpAttentionSize": 8,
            "reasoningParser": "deepseek-r1",
            "resources": {"shmSize": "32Gi"},
            "deepGemm": {"cache": {"type": "hostPath", "hostPath": NODE_DEEP_GEMM_CACHE}},
        },
    ),
    Preset(
        name="deepseek-v3-h200-mtp",
        summary="DeepSeek-V3-0324 in FP8 on one node of 8 H200 141 GB with multi-token prediction",
        gpus=("H200-141GB",),
        weights="FP8, block-wise (deepseek-ai/DeepSeek-V3-0324, as published)",
        sources=(
            ("Multi-token Prediction: --speculative-algorithm EAGLE, the DeepSeek default 3/1/4, 48", SGLANG_DOCS),
            ("Block-wise FP8: precompile the DeepGEMM kernels", SGLANG_DOCS),
        ),
        source_commands=(
            "python3 -m sglang.launch_server --model-path deepseek-ai/DeepSeek-V3-0324 --speculative-algorithm EAGLE "
            "--trust-remote-code --tp 8",
            "--speculative-num-steps 3 --speculative-eagle-topk 1 --speculative-num-draft-tokens 4",
            "python3 -m sglang.compile_deep_gemm --model deepseek-ai/DeepSeek-V3 --tp 8 --trust-remote-code",
        ),
        deep_gemm=True,
        settings={
            "model": _model(
                "deepseek-ai/DeepSeek-V3-0324", "deepseek-v3", quantization="fp8-block", sizeGiB=DEEPSEEK_FP8_GIB
            ),
            "nodes": 1,
            "gpusPerNode": 8,
            "gpu": "H200-141GB",
            "tensorParallel": 8,
            # "The default configuration for DeepSeek models is --speculative-num-steps 3
            # --speculative-eagle-topk 1 --speculative-num-draft-tokens 4": written out, because releases before
            # 0.4.5 default to other values.
            "speculative": {"algorithm": "EAGLE", "numSteps": 3, "eagleTopk": 1, "numDraftTokens": 4},
            # "The default value is 48 for MTP": raise it (with cudaGraphMaxBs) for larger batches.
            "maxRunningRequests": 48,
            "resources": {"shmSize": "32Gi"},
            "deepGemm": {"cache": {"type": "hostPath", "hostPath": NODE_DEEP_GEMM_CACHE}},
        },
    ),
    Preset(
        name="deepseek-v3-h20",
        summary="DeepSeek-V3-0324 in FP8 on one node of 8 H20 96 GB, with function calling",
        gpus=("H20-96GB",),
        weights="FP8, block-wise (deepseek-ai/DeepSeek-V3-0324, as published)",
        sources=(
            ("Function calling for DeepSeek Models (1 x H20 node)", SGLANG_DOCS),
            ("Block-wise FP8: precompile the DeepGEMM kernels", SGLANG_DOCS),
        ),
        source_commands=(
            "python3 -m sglang.launch_server --model deepseek-ai/DeepSeek-V3-0324 --tp 8 --port 30000 --host 0.0.0.0 "
            "--mem-fraction-static 0.9 --tool-call-parser deepseekv3 "
            "--chat-template ./examples/chat_template/tool_chat_template_deepseekv3.jinja",
            "python3 -m sglang.compile_deep_gemm --model deepseek-ai/DeepSeek-V3 --tp 8 --trust-remote-code",
        ),
        deep_gemm=True,
        settings={
            "model": _model(
                "deepseek-ai/DeepSeek-V3-0324", "deepseek-v3", quantization="fp8-block", sizeGiB=DEEPSEEK_FP8_GIB
            ),
            "nodes": 1,
            "gpusPerNode": 8,
            "gpu": "H20-96GB",
            "tensorParallel": 8,
            "memFractionStatic": 0.9,
            "toolCallParser": "deepseekv3",
            "deepGemm": {"cache": {"type": "hostPath", "hostPath": NODE_DEEP_GEMM_CACHE}},
        },
        notes=(
            "--chat-template names a file of the SGLang repository, not of the model: the docs recommend it; add "
            "it with extraArgs where the image holds the repository.",
        ),
    ),
    Preset(
        name="qwen2.5-1.5b-dev",
        summary="Qwen2.5-1.5B-Instruct on one GPU of 24 GB or more: the dev stack's model",
        gpus=(),
        weights="BF16 (Qwen/Qwen2.5-1.5B-Instruct at a pinned revision)",
        sources=(
            (
                "Quick start: launch_server --model-path qwen/qwen2.5-0.5b-instruct",
                "https://github.com/sgl-project/sglang/blob/main/docs/basic_usage/send_request.ipynb",
            ),
        ),
        source_commands=("python3 -m sglang.launch_server --model-path qwen/qwen2.5-0.5b-instruct --host 0.0.0.0",),
        settings={
            "model": {
                "path": "Qwen2.5-1.5B-Instruct",
                "servedName": "qwen2.5-1.5b-instruct",
                "source": "huggingface",
                "trustRemoteCode": False,
                "quantization": "none",
                "download": {
                    "repo": "Qwen/Qwen2.5-1.5B-Instruct",
                    "revision": "989aa7980e4cf806f80c7fef2b1adb7bc71aa306",
                },
            },
            "gpusPerNode": 1,
            "contextLength": 32768,
            "memFractionStatic": 0.85,
        },
    ),
)
PRESETS: Mapping[str, Preset] = MappingProxyType({p.name: p for p in _PRESETS})


def preset_names() -> str:
    return ", ".join(PRESETS)


def apply_preset(data: Any) -> Any:
    """A group's raw keys with its preset's settings under them; anything that is not a group naming a known
    preset is returned as it is (field validation reports an unknown name on ``preset``)."""
    if not isinstance(data, Mapping):
        return data
    name = data.get("preset")
    if not isinstance(name, str) or name not in PRESETS:
        return data
    return merge(PRESETS[name].settings, data)


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, anything else (lists, null) replaces, and a
    mapping of another ``type`` (a cache on a claim instead of a host path) replaces the preset's whole. A key
    of ``over`` in snake_case (a Python caller) overrides the camelCase key of ``base`` it names."""
    out: dict[str, Any] = {k: v for k, v in over.items()}
    for key, value in base.items():
        mine = next((k for k in (key, to_snake(key)) if k in over), None)
        if mine is None:
            out[key] = value
        elif isinstance(value, Mapping) and isinstance(over[mine], Mapping):
            other_type = "type" in over[mine] and over[mine]["type"] != value.get("type")
            out[mine] = dict(over[mine]) if other_type else merge(value, over[mine])
    return out
