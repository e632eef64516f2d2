"""Presets (facts/presets.py): what each renders on every shipped SGLang release, where each stops, how a
group's own keys win, and that docs/deepseek.md shows each with its sources and rendered command."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conftest import ALL_SECRETS_FOR_PRESETS, preset_gallery, run_with

from sglang_platform.config import ConfigError, InferenceGroup, validate
from sglang_platform.facts.gpus import GPUS
from sglang_platform.facts.presets import PRESETS, merge
from sglang_platform.facts.sglang import load_table, shipped_releases
from sglang_platform.render.server_args import typed_args
from tools import harness

# The oldest shipped release each preset runs on, and why the one before refuses it.
OLDEST = {
    "deepseek-r1-a800": "0.4.3.post3",  # blockwise_int8 (facts/quantization.py) and --reasoning-parser
    "deepseek-r1-h100": "0.4.5",  # 2 DP-attention groups: up to 0.4.4 DP attention means dp = tp
    "deepseek-r1-h200": "0.4.6",  # the DeepGEMM cache (SGL_DG_CACHE_DIR, compile_deep_gemm)
    "deepseek-v3-h200-mtp": "0.4.7",  # DeepSeek MTP reads its draft layer from the model
    "deepseek-v3-h20": "0.4.6",  # --tool-call-parser deepseekv3, and the DeepGEMM cache
    "qwen2.5-1.5b-dev": "0.4.3.post2",
}
# Each preset's leader command on 0.5.23 (the gallery names each group and model after its preset).
ON_0_5_23 = {
    "deepseek-r1-a800": "--model-path /models/DeepSeek-R1-Block-INT8 --served-model-name deepseek-r1-a800 "
    "--tp-size 16 --dist-init-addr $(LWS_LEADER_ADDRESS):20000 --nnodes 2 --node-rank 0 --trust-remote-code "
    "--enable-torch-compile --torch-compile-max-bs 8 --reasoning-parser deepseek-r1",
    "deepseek-r1-h100": "--model-path /models/DeepSeek-R1 --served-model-name deepseek-r1-h100 --tp-size 16 "
    "--dist-init-addr $(LWS_LEADER_ADDRESS):20000 --nnodes 2 --node-rank 0 --trust-remote-code --attn-dp-size 2 "
    "--reasoning-parser deepseek-r1",
    "deepseek-r1-h200": "--model-path /models/DeepSeek-R1 --served-model-name deepseek-r1-h200 --tp-size 8 "
    "--trust-remote-code --attn-dp-size 8 --reasoning-parser deepseek-r1",
    "deepseek-v3-h200-mtp": "--model-path /models/DeepSeek-V3-0324 --served-model-name deepseek-v3-h200-mtp "
    "--tp-size 8 --trust-remote-code --max-running-requests 48 --speculative-algorithm EAGLE "
    "--speculative-num-steps 3 --speculative-eagle-topk 1 --speculative-num-draft-tokens 4",
    "deepseek-v3-h20": "--model-path /models/DeepSeek-V3-0324 --served-model-name deepseek-v3-h20 --tp-size 8 "
    "--trust-remote-code --mem-fraction-static 0.9 --tool-call-parser deepseekv3",
    "qwen2.5-1.5b-dev": "--model-path /models/Qwen2.5-1.5B-Instruct --served-model-name qwen2.5-1.5b-dev "
    "--tp-size 1 --context-length 32768 --mem-fraction-static 0.85",
}
TAIL = " --enable-metrics --host 0.0.0.0 --port 8000"


def gallery_groups(release: str) -> dict[str, InferenceGroup]:
    cfg = validate(preset_gallery(f"lmsysorg/sglang:v{release}-cu124"), ALL_SECRETS_FOR_PRESETS)
    return {g.preset or "": g for g in cfg.inference_groups}


def only(name: str, release: str) -> dict:
    values = preset_gallery(f"lmsysorg/sglang:v{release}-cu124")
    values["inferenceGroups"] = [g for g in values["inferenceGroups"] if g["preset"] == name]
    return values


def test_every_preset_is_covered():
    assert set(OLDEST) == set(PRESETS) == set(ON_0_5_23)


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_runs_from_its_oldest_release_and_is_refused_before(name):
    releases = shipped_releases()
    oldest = releases.index(OLDEST[name])
    for release in releases[oldest:]:
        validate(only(name, release), ALL_SECRETS_FOR_PRESETS)  # flags, rules and capacity pass
    if oldest:
        with pytest.raises(ConfigError):
            validate(only(name, releases[oldest - 1]), ALL_SECRETS_FOR_PRESETS)


def test_each_preset_renders_its_command_on_0_5_23():
    table = load_table("0.5.23")
    for name, group in gallery_groups("0.5.23").items():
        assert " ".join(typed_args(group, leader=True, api_key=False, table=table)) == ON_0_5_23[name] + TAIL


def test_the_same_presets_on_an_older_release_get_its_spellings():
    table = load_table("0.5.1")
    groups = gallery_groups("0.5.1")
    assert " ".join(typed_args(groups["deepseek-r1-h200"], leader=True, api_key=False, table=table)) == (
        "--model-path /models/DeepSeek-R1 --served-model-name deepseek-r1-h200 --tp-size 8 --trust-remote-code "
        "--enable-dp-attention --dp-size 8 --reasoning-parser deepseek-r1" + TAIL
    )


def test_preset_refusals_name_the_key_and_the_release():
    with pytest.raises(ConfigError) as info:
        validate(only("deepseek-r1-a800", "0.4.3.post2"), ALL_SECRETS_FOR_PRESETS)
    assert [f"{p.key}: {p.message}" for p in info.value.problems] == [
        "sglang-platform:inferenceGroups[0].reasoningParser: --reasoning-parser needs SGLang 0.4.3.post3 or later; "
        "the pinned release is 0.4.3.post2 (sglang-platform:versions.sglangImage)",
        "sglang-platform:versions.sglangImage: meituan/DeepSeek-R1-Block-INT8 is W8A8 INT8 in 128 x 128 blocks "
        "(model.quantization), quantization method blockwise_int8, which SGLang 0.4.3.post2 does not have (first in "
        "0.4.3.post3): pin an SGLang image of 0.4.3.post3 or later",
    ]


def test_an_unknown_preset_lists_the_presets():
    def typo(values):
        values["inferenceGroups"][0]["preset"] = "deepseek-r1-h300"

    result = run_with("dev", typo)
    assert result.error is not None
    assert result.error.splitlines()[1:] == [
        "  - sglang-platform:inferenceGroups[0].preset: unknown preset 'deepseek-r1-h300'; the presets are: "
        "deepseek-r1-a800, deepseek-r1-h100, deepseek-r1-h200, deepseek-v3-h200-mtp, deepseek-v3-h20, "
        "qwen2.5-1.5b-dev (docs/deepseek.md)"
    ]


BASE: dict[str, Any] = {
    "name": "r1",
    "preset": "deepseek-r1-h200",
    "modelVolume": {"type": "pvc", "claimName": "models"},
    "resources": {"cpu": "96", "memory": "1600Gi"},
}


def test_the_groups_own_keys_win_key_by_key():
    group = InferenceGroup.model_validate(
        {
            **BASE,
            "model": {"servedName": "r1-fast"},  # the rest of model comes from the preset
            "resources": {**BASE["resources"], "shmSize": "64Gi"},
            "dpAttentionSize": None,  # an explicit null drops the preset's DP attention
            # another type of cache replaces the preset's whole (its hostPath does not carry over)
            "deepGemm": {"cache": {"type": "pvc", "claimName": "kernels"}},
        }
    )
    assert (group.model.served_name, group.model.path, group.model.download and group.model.download.repo) == (
        "r1-fast",
        "DeepSeek-R1",
        "deepseek-ai/DeepSeek-R1",
    )
    assert group.resources.shm_size == "64Gi" and group.dp_attention_size is None
    assert group.deep_gemm is not None
    assert (group.deep_gemm.cache.type, group.deep_gemm.cache.claim_name, group.deep_gemm.cache.host_path) == (
        "pvc",
        "kernels",
        None,
    )
    assert group.deep_gemm.precompile  # the rest of deepGemm merges key by key


def test_a_preset_value_mistake_points_at_the_key_it_came_from():
    raw = {"inferenceGroups": [{**BASE, "gpusPerNode": 4}]}
    with pytest.raises(ConfigError) as info:
        validate(raw)
    # tensorParallel came from the preset, gpusPerNode from the group: the problem names the preset's key.
    assert (
        "  - sglang-platform:inferenceGroups[0].tensorParallel: tensorParallel 8 must equal nodes x gpusPerNode = "
        "1 x 4 = 4 (SGLang shards the model over every GPU of the group)" in str(info.value).splitlines()
    )


def test_snake_case_keys_of_a_python_caller_override_too():
    assert merge({"gpusPerNode": 8, "resources": {"shmSize": "32Gi"}}, {"gpus_per_node": 4, "resources": {}}) == {
        "gpus_per_node": 4,
        "resources": {"shmSize": "32Gi"},
    }
    group = InferenceGroup.model_validate({**BASE, "gpus_per_node": 8, "tensor_parallel": 8})
    assert group.gpus_per_node == 8


def test_the_preset_does_not_leak_into_other_groups():
    first = copy.deepcopy(PRESETS["deepseek-r1-h200"].settings)
    InferenceGroup.model_validate({**BASE, "model": {"servedName": "x"}})
    assert PRESETS["deepseek-r1-h200"].settings == first


def test_capacity_of_each_preset():
    values = preset_gallery()
    values["preflight"] = {"capacity": True}
    with pytest.raises(ConfigError) as info:
        validate(values, ALL_SECRETS_FOR_PRESETS)
    # SGLang's docs run DeepSeek-V3 on one node of 8 H20 at memFractionStatic 0.9: per GPU 80.2 GiB of 86.0 GiB,
    # under the 10% the capacity check keeps for the KV cache. Every other preset fits.
    assert [f"{p.key}: {p.message}" for p in info.value.problems] == [
        "sglang-platform:inferenceGroups[4].nodes: the weights of DeepSeek-V3-0324 (642.0 GiB, model.sizeGiB) need "
        "80.2 GiB per GPU on 1 node x 8 GPUs, but each GPU keeps 86.0 GiB for weights and KV cache (gpu H20-96GB: "
        "95.5771 GiB x memFractionStatic 0.9), of which at least 10% must stay for the KV cache, leaving 77.4 GiB for "
        "weights: set nodes: 2 and tensorParallel: 16, 2 nodes of 8 GPUs"
    ]


def test_presets_name_gpu_classes_of_the_gpu_table():
    for preset in PRESETS.values():
        assert set(preset.gpus) <= set(GPUS), preset.name
        # It sets gpu to the first (a group on another overrides it); the dev preset runs on any.
        assert preset.settings.get("gpu") == (preset.gpus[0] if preset.gpus else None), preset.name
        assert preset.sources and preset.source_commands, preset.name


def test_the_example_stack_renders_the_h200_preset_twice():
    result, _ = harness.run_stack(
        "deepseek-h200", secrets={"apiKey": "k", "webuiSecretKey": "w", "grafanaAdminPassword": "g"}
    )
    assert result.error is None, result.error
    lws = result.k8s_object("LeaderWorkerSet", "deepseek-r1")["spec"]
    assert lws["replicas"] == 2
    (server,) = lws["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"]
    assert server["image"] == "lmsysorg/sglang:v0.5.23-cu130"
    assert " ".join(server["args"]) == (
        "--model-path /models/DeepSeek-R1 --served-model-name deepseek-r1 --tp-size 8 --trust-remote-code "
        "--attn-dp-size 8 --reasoning-parser deepseek-r1 --enable-metrics --host 0.0.0.0 --port 8000 "
        "--api-key $(SGLANG_API_KEY)"
    )


def test_the_dev_preset_is_the_dev_stacks_model():
    # Pulumi.dev.yaml spells its group out (tests and other stacks edit its keys); the preset renders the same.
    def use_preset(values):
        g = values["inferenceGroups"][0]
        for key in ("model", "gpusPerNode", "contextLength", "memFractionStatic"):
            del g[key]
        g["preset"] = "qwen2.5-1.5b-dev"

    spelled, preset = run_with("dev", lambda v: None), run_with("dev", use_preset)
    assert preset.error is None, preset.error
    assert harness.kubernetes_objects(preset) == harness.kubernetes_objects(spelled)


def test_docs_show_every_preset_its_sources_and_the_rendered_commands():
    from tools import preset_reference

    doc = preset_reference.DOC.read_text()
    block = doc[doc.index(preset_reference.BEGIN) : doc.index(preset_reference.END) + len(preset_reference.END)]
    assert block == preset_reference.reference(), "run: python tools/preset_reference.py --write"
    example = doc[
        doc.index(preset_reference.EXAMPLE_BEGIN) : doc.index(preset_reference.EXAMPLE_END)
        + len(preset_reference.EXAMPLE_END)
    ]
    assert example == preset_reference.example(), "run: python tools/preset_reference.py --write"
    for preset in PRESETS.values():
        assert f"| `{preset.name}` |" in block
        for _, url in preset.sources:
            assert url in block
    # The table's oldest release is the one the tests pin (OLDEST).
    for name, oldest in OLDEST.items():
        assert preset_reference.oldest_release(PRESETS[name]) == oldest
