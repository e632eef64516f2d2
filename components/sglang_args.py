"""The exact ``sglang.launch_server`` command line of a group's leader and workers (pure, no Pulumi)."""

from __future__ import annotations

from config.models import InferenceGroup

API_KEY_ENV = "SGLANG_API_KEY"
WORKER_INDEX_ENV = "LWS_WORKER_INDEX"
LAUNCH = ["python3", "-m", "sglang.launch_server"]


def launch_args(group: InferenceGroup, *, leader: bool, api_key: bool) -> list[str]:
    """Flags for one pod. Kubernetes expands ``$(VAR)`` from the container env, so no shell is needed
    and the API key never appears in the spec."""
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
    return args + list(group.extra_args)


def fabric_env(group: InferenceGroup) -> list[dict]:
    """NCCL/GLOO settings for the group's fabric, as container env entries."""
    net = group.network
    env = {
        "GLOO_SOCKET_IFNAME": net.socket_interface,
        "NCCL_SOCKET_IFNAME": net.socket_interface,
        "NCCL_DEBUG": net.nccl_debug,
    }
    if net.fabric == "infiniband":
        env |= {"NCCL_IB_DISABLE": "0", "NCCL_IB_HCA": ",".join(net.hcas), "NCCL_IB_CUDA_SUPPORT": "1"}
        if net.gid_index is not None:
            env["NCCL_IB_GID_INDEX"] = str(net.gid_index)
        if net.gdr_level is not None:
            env["NCCL_NET_GDR_LEVEL"] = str(net.gdr_level)
    else:
        env["NCCL_IB_DISABLE"] = "1"
    if net.p2p_level is not None:
        env["NCCL_P2P_LEVEL"] = net.p2p_level
    if group.model.source == "modelscope":
        env["SGLANG_USE_MODELSCOPE"] = "true"
    return [{"name": k, "value": v} for k, v in env.items()]
