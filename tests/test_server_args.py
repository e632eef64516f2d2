"""render/server_args.py: the flags the platform sets, each with the key that sets it, derived from the one
builder the pods use, so extraArgs and the flag rules can never disagree with the command that runs."""

from __future__ import annotations

from packaging.version import Version
from pydantic import BaseModel

from sglang_platform.config.errors import _unwrap
from sglang_platform.config.stack import InferenceGroup
from sglang_platform.facts.sglang import load_table, releases_with
from sglang_platform.render.server_args import (
    API_KEY,
    EVERY_TYPED_SETTING,
    managed_flags,
    spelled,
    typed_args,
    typed_flags,
)

# InferenceGroup settings that shape objects and pods, never a launch_server flag.
NOT_FLAGS = (
    "model.download",
    "model.sizeGiB",
    "modelVolume",
    "network",
    "rollout",
    "tolerations",
    "autoscaling",
    "preset",
    "deepGemm",
    # The benchmark Job's workload: bench_serving's arguments, not the server's.
    "benchmark",
    # The GPU and its node: checked against the weights and the pods, never passed to SGLang.
    "gpu",
    "gpuMemoryGiB",
    "nodeShape",
    # A disaggregated service's roles override group keys (whose flags are covered as the group's); the ratio
    # and the request size only feed the rules.
    "disaggregation.prefill",
    "disaggregation.decode",
    "disaggregation.decodePerPrefill",
    "disaggregation.tokensPerRequest",
)


def _unset_by_default(model: type[BaseModel], prefix: str = ""):
    """Keys whose default is unset or false: such a setting emits a flag only when a stack sets it."""
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        inner = _unwrap(field.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            yield from _unset_by_default(inner, key + ".")
        elif not field.is_required() and (field.default is None or field.default is False):
            yield key


def _value(settings: dict, key: str):
    for part in key.split("."):
        if not isinstance(settings, dict) or part not in settings:
            return None
        settings = settings[part]
    return settings


def test_every_setting_that_can_turn_a_flag_on_is_set_when_deriving_the_managed_flags():
    """A new optional setting (a DeepSeek flag, say) is either in EVERY_TYPED_SETTING, so the flag it emits
    is managed, or listed here as not being a flag."""
    forgotten = [
        key
        for key in _unset_by_default(InferenceGroup)
        if not key.startswith(NOT_FLAGS) and _value(EVERY_TYPED_SETTING, key) in (None, False)
    ]
    assert forgotten == [], f"set these in render/server_args.py EVERY_TYPED_SETTING: {forgotten}"


def test_every_flag_names_a_real_key():
    keys = {key for key in managed_flags().values() if key is not None}
    assert API_KEY in keys
    group = InferenceGroup.model_validate(EVERY_TYPED_SETTING)
    for key in keys - {API_KEY}:
        node: object = group
        for part in key.split("."):
            fields = {f.alias or n: n for n, f in type(node).model_fields.items()}  # type: ignore[attr-defined]
            assert part in fields, f"{key}: no key {part!r}"
            node = getattr(node, fields[part])


COMMON = {
    "--model-path": "model.path",
    "--served-model-name": "model.servedName",
    "--tp-size": "tensorParallel",
    "--dist-init-addr": "ports.distInit",
    "--nnodes": "nodes",
    "--node-rank": None,
    "--trust-remote-code": "model.trustRemoteCode",
    "--quantization": "model.quantization",
    "--context-length": "contextLength",
    "--mem-fraction-static": "memFractionStatic",
    "--kv-cache-dtype": "kvCacheDtype",
    "--page-size": "pageSize",
    "--dist-timeout": "distTimeoutSeconds",
}
LEVERS = {
    "--deepep-mode": "expertParallel.deepepMode",
    # A role of a disaggregated service (EVERY_TYPED_SETTING's prefill role).
    "--disaggregation-mode": "disaggregation",
    "--disaggregation-transfer-backend": "disaggregation.transferBackend",
    "--disaggregation-bootstrap-port": "disaggregation.bootstrapPort",
    "--disaggregation-ib-device": "disaggregation.ibDevices",
    "--chunked-prefill-size": "chunkedPrefillSize",
    "--max-running-requests": "maxRunningRequests",
}
TAIL = {
    "--enable-torch-compile": "torchCompileMaxBs",
    "--torch-compile-max-bs": "torchCompileMaxBs",
    "--speculative-algorithm": "speculative.algorithm",
    "--speculative-draft-model-path": "speculative.draftModelPath",
    "--speculative-num-steps": "speculative.numSteps",
    "--speculative-eagle-topk": "speculative.eagleTopk",
    "--speculative-num-draft-tokens": "speculative.numDraftTokens",
    "--reasoning-parser": "reasoningParser",
    "--tool-call-parser": "toolCallParser",
    "--enable-metrics": "enableMetrics",
    "--enable-metrics-for-all-schedulers": "metricsForAllSchedulers",
    "--host": None,
    "--port": "ports.http",
    "--api-key": API_KEY,
}


def test_the_managed_flags_are_what_the_builder_emits():
    # Without a release: the newest spelling of each lever, and every other spelling after.
    assert list(managed_flags().items()) == [
        *COMMON.items(),
        ("--attn-dp-size", "dpAttentionSize"),
        ("--moe-a2a-backend", "expertParallel.a2aBackend"),
        *LEVERS.items(),
        ("--cuda-graph-max-bs-decode", "cudaGraphMaxBs"),
        ("--cuda-graph-bs-decode", "cudaGraphBatchSizes"),
        *TAIL.items(),
        ("--enable-dp-attention", "dpAttentionSize"),
        ("--enable-deepep-moe", "expertParallel.a2aBackend"),
        ("--enable-ep-moe", "expertParallel"),
        ("--ep-size", "expertParallel.size"),
        ("--cuda-graph-max-bs", "cudaGraphMaxBs"),
        ("--cuda-graph-bs", "cudaGraphBatchSizes"),
    ]


def test_each_release_manages_the_spellings_it_has():
    old = dict(managed_flags(load_table("0.4.5")))
    assert old == {
        **COMMON,
        "--enable-dp-attention": "dpAttentionSize",
        "--dp-size": "dpAttentionSize",
        "--enable-deepep-moe": "expertParallel.a2aBackend",
        **LEVERS,
        "--cuda-graph-max-bs": "cudaGraphMaxBs",
        "--cuda-graph-bs": "cudaGraphBatchSizes",
        **TAIL,
        "--enable-ep-moe": "expertParallel",
        "--ep-size": "expertParallel.size",
    }
    new = dict(managed_flags(load_table("0.5.23")))
    # --dp-size is DP replicas there, a lever of its own; --enable-dp-attention its deprecated alias of
    # --attn-dp-size; --enable-deepep-moe and --enable-ep-moe are gone.
    assert new == {
        **COMMON,
        "--attn-dp-size": "dpAttentionSize",
        "--moe-a2a-backend": "expertParallel.a2aBackend",
        **LEVERS,
        "--cuda-graph-max-bs-decode": "cudaGraphMaxBs",
        "--cuda-graph-bs-decode": "cudaGraphBatchSizes",
        **TAIL,
        "--enable-dp-attention": "dpAttentionSize",
        "--ep-size": "expertParallel.size",
    }


def test_values_become_words():
    group = InferenceGroup.model_validate(
        {**EVERY_TYPED_SETTING, "nodes": 1, "tensorParallel": 1, "enableMetrics": False, "memFractionStatic": 0.85}
    )
    items = {item.flag: item.values for item in typed_flags(group, leader=True, api_key=False)}
    assert items["--trust-remote-code"] == ()  # true: the bare flag
    assert "--enable-metrics" not in items  # false: nothing
    assert "--nnodes" not in items and "--api-key" not in items
    assert items["--mem-fraction-static"] == ("0.85",)
    assert items["--context-length"] == ("1",)
    words = typed_args(group, leader=True, api_key=False)
    assert words == [w for item in typed_flags(group, leader=True, api_key=False) for w in (item.flag, *item.values)]


def test_a_lever_the_release_cannot_spell_takes_the_nearest_newer_releases_spelling():
    """0.4.4 has neither DeepEP spelling: the one of the oldest newer release that reads one (so the check names
    the release to pin), as every shipped table dates them."""
    spellings = (("--moe-a2a-backend", "deepep"), ("--enable-deepep-moe",))
    dated = [
        (min(Version(r) for r in releases_with(words[0]) if Version(r) > Version("0.4.4")), order, words)
        for order, words in enumerate(spellings)
    ]
    assert spelled(load_table("0.4.4"), *spellings) == min(dated)[2] == ("--enable-deepep-moe",)
    assert spelled(load_table("0.5.23"), *spellings) == ("--moe-a2a-backend", "deepep")
