"""The exact ``sglang.launch_server`` command line of a group's leader and workers, from its typed settings.

Pure (no Pulumi): the inference group's pods run what ``launch_args`` returns, the flag rules
(``config.rules.flags``) check the same words against the pinned release's table, and the flags the platform
manages, with the key that sets each, are the flags ``typed_flags`` emits.

A typed setting that becomes a flag is one line of ``typed_flags``: the flag, the setting's value, and the
stack key (relative to the group) that sets it. A value of None or False emits nothing, True the bare flag,
a list one word per item, anything else one word.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from config.models import InferenceGroup
from config.quantization import SCHEMES

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


def launch_args(group: InferenceGroup, *, leader: bool, api_key: bool) -> list[str]:
    """Flags for one pod. Kubernetes expands ``$(VAR)`` from the container env, so no shell is needed
    and the API key never appears in the spec."""
    return typed_args(group, leader=leader, api_key=api_key) + list(group.extra_args)


def typed_args(group: InferenceGroup, *, leader: bool, api_key: bool) -> list[str]:
    """The flags the platform derives from typed settings (everything but ``extraArgs``)."""
    return [word for item in typed_flags(group, leader=leader, api_key=api_key) for word in (item.flag, *item.values)]


def typed_flags(group: InferenceGroup, *, leader: bool, api_key: bool) -> list[TypedFlag]:
    """Each flag the platform sets for one pod, in command-line order, with its values and its key."""
    g = group
    multi_node = g.nodes > 1
    rank = "0" if leader else f"$({WORKER_INDEX_ENV})"
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
            ("--dist-timeout", g.dist_timeout_seconds, "distTimeoutSeconds"),
            ("--enable-metrics", g.enable_metrics, "enableMetrics"),
            # Workers bind 0.0.0.0 too: once their weights are loaded they serve a stand-in /health there.
            ("--host", "0.0.0.0", None),
            ("--port", g.ports.http, "ports.http"),
            ("--api-key", api_key and f"$({API_KEY_ENV})", API_KEY),
        ]
    )


def _emitted(settings: list[tuple[str, object, str | None]]) -> list[TypedFlag]:
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
    "enableMetrics": True,
    "resources": {"cpu": "1", "memory": "1Gi", "shmSize": "1Mi"},
}


@functools.cache
def managed_flags() -> Mapping[str, str | None]:
    """{flag: the key that sets it, or None when the platform sets it itself} for every flag the platform
    sets, derived from ``typed_flags`` itself: extraArgs may not repeat them, nor spell them another way that
    argparse resolves to them."""
    group = InferenceGroup.model_validate(EVERY_TYPED_SETTING)
    items = typed_flags(group, leader=True, api_key=True) + typed_flags(group, leader=False, api_key=True)
    return MappingProxyType({item.flag: item.key for item in items})
