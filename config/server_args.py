"""The exact ``sglang.launch_server`` command line of a group's leader and workers, from its typed settings.

Pure (no Pulumi): the inference group's pods run what ``launch_args`` returns, the flag rules check the same
list against the pinned release's table, and the flags the platform manages are the flags it emits."""

from __future__ import annotations

import functools

from config.models import InferenceGroup
from config.quantization import SCHEMES

API_KEY_ENV = "SGLANG_API_KEY"
WORKER_INDEX_ENV = "LWS_WORKER_INDEX"
LAUNCH = ("python3", "-m", "sglang.launch_server")


def launch_args(group: InferenceGroup, *, leader: bool, api_key: bool) -> list[str]:
    """Flags for one pod. Kubernetes expands ``$(VAR)`` from the container env, so no shell is needed
    and the API key never appears in the spec."""
    return typed_args(group, leader=leader, api_key=api_key) + list(group.extra_args)


def typed_args(group: InferenceGroup, *, leader: bool, api_key: bool) -> list[str]:
    """The flags the platform derives from typed settings (everything but ``extraArgs``)."""
    args = [
        "--model-path",
        group.model_path,
        "--served-model-name",
        group.model.served_name,
        "--tp-size",
        str(group.tp_size),
    ]
    if group.nodes > 1:
        args += [
            "--dist-init-addr",
            f"$(LWS_LEADER_ADDRESS):{group.ports.dist_init}",
            "--nnodes",
            str(group.nodes),
            "--node-rank",
            "0" if leader else f"$({WORKER_INDEX_ENV})",
        ]
    if group.model.trust_remote_code:
        args.append("--trust-remote-code")
    # Only for schemes SGLang does not pick from config.json by itself (w8a8-int8 checkpoints say
    # compressed-tensors); the quantization rules require model.quantization for those.
    flag = SCHEMES[group.model.quantization].flag if group.model.quantization else None
    if flag:
        args += ["--quantization", flag]
    if group.context_length is not None:
        args += ["--context-length", str(group.context_length)]
    if group.mem_fraction_static is not None:
        args += ["--mem-fraction-static", repr(group.mem_fraction_static)]
    if group.kv_cache_dtype is not None:
        args += ["--kv-cache-dtype", group.kv_cache_dtype]
    if group.dist_timeout_seconds is not None:
        args += ["--dist-timeout", str(group.dist_timeout_seconds)]
    if group.enable_metrics:
        args.append("--enable-metrics")
    # Workers bind 0.0.0.0 too: once their weights are loaded they serve a stand-in /health there.
    args += ["--host", "0.0.0.0", "--port", str(group.ports.http)]
    if api_key:
        args += ["--api-key", f"$({API_KEY_ENV})"]
    return args


# Every typed setting that turns a flag on, set: the flags this group gets are all the flags the platform can
# emit. A new typed flag only needs a value here if its default emits nothing (a test checks every optional
# InferenceGroup field is set, so a new one cannot be forgotten).
_EVERY_TYPED_SETTING = {
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
def managed_flags() -> frozenset[str]:
    """The flags the platform sets from typed settings, derived from ``typed_args`` itself: extraArgs may not
    repeat them, nor spell them another way that argparse resolves to them."""
    group = InferenceGroup.model_validate(_EVERY_TYPED_SETTING)
    words = typed_args(group, leader=True, api_key=True) + typed_args(group, leader=False, api_key=True)
    return frozenset(w for w in words if w.startswith("--"))
