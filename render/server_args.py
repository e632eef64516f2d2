"""The exact ``sglang.launch_server`` command line of a group's leader and workers, from its typed settings,
spelled for the pinned SGLang release.

Pure (no Pulumi): the inference group's pods run what ``launch_args`` returns, the flag rules
(``rules.flags``) check the same words against the pinned release's table, and the flags the platform
manages, with the key that sets each, are the flags ``typed_flags`` emits.

A typed setting that becomes a flag is one line of ``typed_flags``: the flag, the setting's value, and the
stack key (relative to the group) that sets it. A value of None or False emits nothing, True the bare flag,
a list one word per item, anything else one word.

Where releases spell a lever differently (``--attn-dp-size N`` or ``--enable-dp-attention --dp-size N``,
``--moe-a2a-backend deepep`` or ``--enable-deepep-moe``, ``--cuda-graph-max-bs-decode`` or
``--cuda-graph-max-bs``), the spelling is the first one the release's flag table has (``spelled``): nothing
here names a version. What a release does with a flag beyond its spelling comes from
``facts.sglang.releases`` (whether ``--enable-ep-moe`` is needed). A release that has none of the spellings
gets the one the nearest newer shipped release has, so the flag check refuses it on the setting's key with
"needs SGLang X or later".
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from packaging.version import Version

from ..config.stack import InferenceGroup
from ..facts.quantization import SCHEMES
from ..facts.sglang import Table, load_table, shipped_releases
from ..facts.sglang.releases import facts

API_KEY_ENV = "SGLANG_API_KEY"
WORKER_INDEX_ENV = "LWS_WORKER_INDEX"
LAUNCH = ("python3", "-m", "sglang.launch_server")
# The key of a flag set from a stack-level setting rather than one of the group's.
API_KEY = "sglang-platform:apiKey"


class TypedFlag(NamedTuple):
    flag: str
    values: tuple[str, ...]
    # The stack key that sets it: relative to the group (``tensorParallel``, ``model.path``), a full
    # ``sglang-platform:`` key, or None when the platform sets it itself (``--host``).
    key: str | None


def launch_args(group: InferenceGroup, *, leader: bool, api_key: bool, table: Table | None = None) -> list[str]:
    """Flags for one pod. Kubernetes expands ``$(VAR)`` from the container env, so no shell is needed
    and the API key never appears in the spec."""
    return typed_args(group, leader=leader, api_key=api_key, table=table) + list(group.extra_args)


def typed_args(group: InferenceGroup, *, leader: bool, api_key: bool, table: Table | None = None) -> list[str]:
    """The flags the platform derives from typed settings (everything but ``extraArgs``)."""
    items = typed_flags(group, leader=leader, api_key=api_key, table=table)
    return [word for item in items for word in (item.flag, *item.values)]


def typed_flags(group: InferenceGroup, *, leader: bool, api_key: bool, table: Table | None = None) -> list[TypedFlag]:
    """Each flag the platform sets for one pod, in command-line order, with its values and its key, spelled
    for ``table``'s release (None: the newest spelling of each lever)."""
    g = group
    multi_node = g.nodes > 1
    rank = "0" if leader else f"$({WORKER_INDEX_ENV})"
    spec = g.speculative
    draft = spec.draft_model_path if spec is not None else None
    return _emitted(
        [
            ("--model-path", g.model_path, "model.path"),
            ("--served-model-name", g.model.served_name, "model.servedName"),
            ("--tp-size", g.tp_size, "tensorParallel"),
            ("--dist-init-addr", multi_node and f"$(LWS_LEADER_ADDRESS):{g.ports.dist_init}", "ports.distInit"),
            ("--nnodes", multi_node and g.nodes, "nodes"),
            ("--node-rank", multi_node and rank, None),
            ("--trust-remote-code", g.model.trust_remote_code, "model.trustRemoteCode"),
            # Only schemes SGLang does not pick from config.json by itself (w8a8-int8 checkpoints say
            # compressed-tensors); the quantization rules require model.quantization for those.
            ("--quantization", g.model.quantization and SCHEMES[g.model.quantization].flag, "model.quantization"),
            ("--context-length", g.context_length, "contextLength"),
            ("--mem-fraction-static", g.mem_fraction_static, "memFractionStatic"),
            ("--kv-cache-dtype", g.kv_cache_dtype, "kvCacheDtype"),
            ("--page-size", g.page_size, "pageSize"),
            ("--dist-timeout", g.dist_timeout_seconds, "distTimeoutSeconds"),
            *_dp_attention(g, table),
            *_expert_parallel(g, table),
            *_disaggregation(g, table),
            ("--chunked-prefill-size", g.chunked_prefill_size, "chunkedPrefillSize"),
            ("--max-running-requests", g.max_running_requests, "maxRunningRequests"),
            (_one(table, "--cuda-graph-max-bs-decode", "--cuda-graph-max-bs"), g.cuda_graph_max_bs, "cudaGraphMaxBs"),
            (_one(table, "--cuda-graph-bs-decode", "--cuda-graph-bs"), g.cuda_graph_batch_sizes, "cudaGraphBatchSizes"),
            ("--enable-torch-compile", g.torch_compile_max_bs is not None, "torchCompileMaxBs"),
            ("--torch-compile-max-bs", g.torch_compile_max_bs, "torchCompileMaxBs"),
            ("--speculative-algorithm", spec and spec.algorithm, "speculative.algorithm"),
            ("--speculative-draft-model-path", draft and g.volume_path(draft), "speculative.draftModelPath"),
            ("--speculative-num-steps", spec and spec.num_steps, "speculative.numSteps"),
            ("--speculative-eagle-topk", spec and spec.eagle_topk, "speculative.eagleTopk"),
            ("--speculative-num-draft-tokens", spec and spec.num_draft_tokens, "speculative.numDraftTokens"),
            ("--reasoning-parser", g.reasoning_parser, "reasoningParser"),
            ("--tool-call-parser", g.tool_call_parser, "toolCallParser"),
            ("--enable-metrics", g.enable_metrics, "enableMetrics"),
            (
                "--enable-metrics-for-all-schedulers",
                g.enable_metrics and g.metrics_for_all_schedulers,
                "metricsForAllSchedulers",
            ),
            # Workers bind 0.0.0.0 too: once their weights are loaded they serve a stand-in /health there.
            ("--host", "0.0.0.0", None),
            ("--port", g.ports.http, "ports.http"),
            ("--api-key", api_key and f"$({API_KEY_ENV})", API_KEY),
        ]
    )


Setting = tuple[str, object, str | None]


def _dp_attention(g: InferenceGroup, table: Table | None) -> list[Setting]:
    """0.5.22 rewrote ``--enable-dp-attention --dp-size N`` to ``--attn-dp-size N`` (the old spelling is a
    deprecated alias, and ``--dp-size`` alone now means N replicas behind one server)."""
    size = g.dp_attention_size
    if size is None:
        return []
    key = "dpAttentionSize"
    if spelled(table, ("--attn-dp-size",), ("--enable-dp-attention",)) == ("--attn-dp-size",):
        return [("--attn-dp-size", size, key)]
    return [("--enable-dp-attention", True, key), ("--dp-size", size, key)]


def _expert_parallel(g: InferenceGroup, table: Table | None) -> list[Setting]:
    ep = g.expert_parallel
    if ep is None:
        return []
    out: list[Setting] = []
    if ep.a2a_backend == "deepep":
        # DeepEP sets --ep-size to --tp-size itself in every release: nothing to size.
        words = spelled(table, ("--moe-a2a-backend", "deepep"), ("--enable-deepep-moe",))
        out.append((words[0], words[1:] or True, "expertParallel.a2aBackend"))
    else:
        if ep.a2a_backend is not None:
            out.append(("--moe-a2a-backend", ep.a2a_backend, "expertParallel.a2aBackend"))
        # Up to 0.4.10 --enable-ep-moe selects the expert-parallel MoE layer; later --ep-size > 1 does.
        if table is not None and facts(table.release).ep_moe_flag is not None:
            out.append(("--enable-ep-moe", True, "expertParallel"))
        out.append(("--ep-size", ep.size or g.tp_size, "expertParallel.size"))
    out.append(("--deepep-mode", ep.deepep_mode, "expertParallel.deepepMode"))
    return out


def _disaggregation(g: InferenceGroup, table: Table | None) -> list[Setting]:
    """A role of a disaggregated service: its mode, and what both roles must agree on to hand the KV cache
    over (the transfer backend, the prefill leader's bootstrap port, which decode also falls back to when the
    gateway sends none in 0.5.x, and the RDMA devices). Every value is written, defaults included. Where the
    release has them (0.4.10 to 0.5.1), prefill is told decode's layout, which it otherwise takes to be its own
    (``ServerArgs.__post_init__``); 0.5.23 learns it from decode at bootstrap."""
    pd = g.pd
    if pd is None:
        return []
    s = pd.settings
    out: list[Setting] = [
        ("--disaggregation-mode", pd.role, "disaggregation"),
        ("--disaggregation-transfer-backend", s.transfer_backend, "disaggregation.transferBackend"),
        ("--disaggregation-bootstrap-port", s.bootstrap_port, "disaggregation.bootstrapPort"),
        ("--disaggregation-ib-device", ",".join(pd.ib_devices) or None, "disaggregation.ibDevices"),
    ]
    if pd.role == "prefill" and table is not None and table.option("--disaggregation-decode-tp") is not None:
        out += [
            ("--disaggregation-decode-tp", pd.decode_tp, "disaggregation.decode.tensorParallel"),
            ("--disaggregation-decode-dp", pd.decode_dp, "disaggregation.decode.dpAttentionSize"),
        ]
    return out


def _one(table: Table | None, *flags: str) -> str:
    """The spelling of a one-word flag (see ``spelled``)."""
    return spelled(table, *((f,) for f in flags))[0]


def spelled(table: Table | None, *spellings: tuple[str, ...]) -> tuple[str, ...]:
    """The words of the first spelling whose flag ``table``'s release has (exactly, not as a prefix). None of
    them: the one the nearest newer shipped release has, so the check names the release to pin; the first when
    no table is given (newest first)."""
    if table is None:
        return spellings[0]
    for words in spellings:
        if table.option(words[0]) is not None:
            return words
    # Newer releases oldest first, each table loaded only when reached: a render of a release that lacks every
    # spelling (0.4.4 and DeepEP, in managed_flags' every-lever group) loaded all nine tables to date them.
    pin = Version(table.release)
    for release in shipped_releases():
        later = load_table(release) if Version(release) > pin else None
        if later is None:
            continue
        for words in spellings:
            word = later.parse_word(words[0])
            if word.kind == "option" and word.option is not None:
                return words
    return spellings[0]


def _emitted(settings: list[Setting]) -> list[TypedFlag]:
    out = []
    for flag, value, key in settings:
        if value is None or value is False:
            continue
        if value is True:
            words: tuple[str, ...] = ()
        elif isinstance(value, list | tuple):
            words = tuple(str(v) for v in value)
        else:
            words = (str(value),)  # str() of a float is its repr: 0.85 stays 0.85
        out.append(TypedFlag(flag, words, key))
    return out


# The values a setting can write after its flag, where they are not the setting's own values (a scheme name is
# not a --quantization value): the flag-release table of docs/configuration.md reads this.
FLAG_VALUES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"model.quantization": tuple(dict.fromkeys(q.flag for q in SCHEMES.values() if q.flag))}
)


# Every typed setting that turns a flag on, set: the flags this group gets are all the flags the platform can
# emit. A new typed flag only needs a value here if its default emits nothing (tests/test_server_args.py checks
# that every InferenceGroup setting whose default is unset or false is set here, so one cannot be forgotten).
EVERY_TYPED_SETTING = {
    "name": "every-setting",
    "model": {"path": "m", "servedName": "m", "trustRemoteCode": True, "quantization": "w8a8-int8"},
    "modelVolume": {"type": "pvc", "claimName": "models"},
    "nodes": 2,
    "gpusPerNode": 1,
    "tensorParallel": 2,
    "contextLength": 1,
    "memFractionStatic": 0.5,
    "kvCacheDtype": "auto",
    "distTimeoutSeconds": 600,
    "dpAttentionSize": 2,
    # DeepEP and plain expert parallelism emit different flags: ALTERNATE_SPELLINGS covers the plain ones.
    "expertParallel": {"size": 2, "a2aBackend": "deepep", "deepepMode": "auto"},
    "speculative": {"numSteps": 1, "eagleTopk": 1, "numDraftTokens": 2, "draftModelPath": "d"},
    "chunkedPrefillSize": 1,
    "maxRunningRequests": 1,
    "cudaGraphMaxBs": 1,
    "cudaGraphBatchSizes": [1],
    "torchCompileMaxBs": 1,
    "reasoningParser": "deepseek-r1",
    "toolCallParser": "deepseekv3",
    "enableMetrics": True,
    "metricsForAllSchedulers": True,
    "resources": {"cpu": "1", "memory": "1Gi", "shmSize": "1Mi"},
    "pageSize": 64,
    # Its roles emit the PD flags (every_typed_group takes the prefill role's).
    "disaggregation": {"ibDevices": ["mlx5_0"]},
}


def every_typed_group() -> InferenceGroup:
    """The group of EVERY_TYPED_SETTING as it runs: its prefill role, which gets every flag a group can."""
    return InferenceGroup.model_validate(EVERY_TYPED_SETTING).roles["prefill"]


# Other spellings of a lever than the one a release gets, which extraArgs may not use either (where the
# release has them): the deprecated --enable-dp-attention of 0.5.22+, DeepEP's two switches, the plain
# expert-parallel flags EVERY_TYPED_SETTING's DeepEP does not emit, both CUDA-graph spellings. ``--dp-size``
# is not here: from 0.5.22 it means replicas behind one server, a setting of its own.
ALTERNATE_SPELLINGS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "dpAttentionSize": ("--enable-dp-attention",),
        "expertParallel.a2aBackend": ("--moe-a2a-backend", "--enable-deepep-moe"),
        "expertParallel": ("--enable-ep-moe",),
        "expertParallel.size": ("--ep-size",),
        "cudaGraphMaxBs": ("--cuda-graph-max-bs-decode", "--cuda-graph-max-bs"),
        "cudaGraphBatchSizes": ("--cuda-graph-bs-decode", "--cuda-graph-bs"),
    }
)


@functools.cache
def managed_flags(table: Table | None = None) -> Mapping[str, str | None]:
    """{flag: the key that sets it, or None when the platform sets it itself} for every flag the platform
    sets under ``table``'s release, derived from ``typed_flags`` itself, plus the other spellings of its
    levers that release has: extraArgs may not repeat them, nor spell them another way that argparse resolves
    to them. Without a table: every spelling of every release."""
    group = every_typed_group()
    items = typed_flags(group, leader=True, api_key=True, table=table)
    items += typed_flags(group, leader=False, api_key=True, table=table)
    out = {item.flag: item.key for item in items}
    for key, flags in ALTERNATE_SPELLINGS.items():
        for flag in flags:
            if table is None or table.option(flag) is not None:
                out.setdefault(flag, key)
    return MappingProxyType(out)


def every_managed_flag() -> Mapping[str, str | None]:
    """Every flag the platform sets in any shipped release, in command-line order, with its key."""
    out: dict[str, str | None] = {}
    for release in shipped_releases():
        table = load_table(release)
        if table is not None:
            for flag, key in managed_flags(table).items():
                out.setdefault(flag, key)
    for flag, key in managed_flags(None).items():
        out.setdefault(flag, key)
    return MappingProxyType(out)
