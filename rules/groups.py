"""Rules within one inference group: tensor parallelism, ports, memory, volume, fabric, flags."""

from __future__ import annotations

from collections.abc import Sequence

from packaging.version import Version

from ..config.errors import Problem, key_path
from ..config.stack import InferenceGroup
from ..facts.quantity import parse_quantity
from ..facts.sglang import load_table
from ..facts.sglang.releases import facts
from .flags import check_group_flags
from .levers import check_levers

PIN_KEY = key_path(("versions", "sglangImage"))


def check_group(
    g: InferenceGroup,
    *,
    allowed_cidrs: Sequence[str],
    sglang_release: Version | None,
    release_key: str = PIN_KEY,
) -> list[Problem]:
    """``allowed_cidrs``: sglang-platform:apiAccess.allowedCidrs; ``sglang_release``: the pinned release
    (None when it is not known, e.g. an image passed as an Output: then the flags are not checked);
    ``release_key``: the setting that pins it, for "needs a newer release" messages."""
    out: list[Problem] = []
    if g.tensor_parallel is not None and g.tensor_parallel != g.total_gpus:
        out.append(
            Problem(
                ("tensorParallel",),
                f"tensorParallel {g.tensor_parallel} must equal nodes x gpusPerNode = {g.nodes} x {g.gpus_per_node} "
                f"= {g.total_gpus} (SGLang shards the model over every GPU of the group)",
            )
        )
    if g.service.type != "ClusterIP" and not allowed_cidrs:
        out.append(
            Problem(
                ("service", "type"),
                f"a {g.service.type} Service is reached from outside the pod network, which the group's "
                "NetworkPolicy drops: list the client networks in sglang-platform:apiAccess.allowedCidrs "
                "(e.g. 10.0.0.0/8), or keep ClusterIP",
            )
        )
    if g.ports.http == g.ports.dist_init:
        out.append(Problem(("ports", "distInit"), f"port {g.ports.dist_init} is also ports.http; the two must differ"))

    shm, memory = parse_quantity(g.resources.shm_size), parse_quantity(g.resources.memory)
    if shm >= memory:
        out.append(
            Problem(
                ("resources", "shmSize"),
                f"{g.resources.shm_size} must be below resources.memory ({g.resources.memory}): "
                "a memory-backed /dev/shm counts against the pod's memory limit",
            )
        )

    vol = g.model_volume
    if vol.type == "hostPath" and not vol.host_path:
        out.append(Problem(("modelVolume", "hostPath"), "required when type is hostPath"))
    if vol.type == "pvc" and not vol.claim_name:
        out.append(Problem(("modelVolume", "claimName"), "required when type is pvc"))
    if vol.type == "hostPath" and vol.claim_name:
        out.append(Problem(("modelVolume", "claimName"), "only allowed when type is pvc"))
    if vol.type == "pvc" and vol.host_path:
        out.append(Problem(("modelVolume", "hostPath"), "only allowed when type is hostPath"))

    net = g.network
    if net.fabric == "infiniband":
        if not net.hcas:
            out.append(Problem(("network", "hcas"), "fabric infiniband needs the HCAs NCCL may use (e.g. [mlx5_0])"))
        if net.rdma_devices_per_node < 1:
            out.append(
                Problem(
                    ("network", "rdmaDevicesPerNode"),
                    "fabric infiniband needs at least 1 (without an RDMA device NCCL silently falls back to TCP)",
                )
            )
    else:
        for key, value in (
            ("hcas", net.hcas),
            ("gidIndex", net.gid_index),
            ("gdrLevel", net.gdr_level),
            ("rdmaDevicesPerNode", net.rdma_devices_per_node),
        ):
            if value:
                out.append(Problem(("network", key), "only allowed with fabric infiniband"))

    # Without a table for the release nothing is checked here: check_release_table refuses it once.
    table = load_table(sglang_release) if sglang_release is not None else None
    if table is not None:
        out += check_group_flags(g, table, release_key=release_key)
    out += check_levers(g, facts(table.release) if table is not None else None)
    return out
