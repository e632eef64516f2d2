"""The GPU node a group's pods land on (stack keys ``sglang-platform:gpuNodes`` and, per group,
``inferenceGroups[].nodeShape``). The rules over it live in ``rules.nodes``.

A node's *allocatable* CPU and memory (what ``kubectl get node -o jsonpath='{.status.allocatable}'`` shows:
capacity minus kube-reserved, system-reserved and the eviction threshold) is not all a pod may request: the
DaemonSets every GPU node runs (the GPU Operator's driver, toolkit, device plugin, GPU feature discovery,
DCGM exporter and validator; the NFD worker; the CNI agent; kube-proxy; the node exporter) take their share
first, and the scheduler counts their requests. A pod that asks for a whole node (the reference's
``cpu: "128"`` on 128-core hosts) stays Pending forever. The charts pinned here request little by default
(gpu-operator v24.9.1 values.yaml: operands without requests; NFD worker 5m/64Mi) but use more (the driver
container, DCGM), and CNIs request their own (e.g. calico-node 250m), so ``reserved`` defaults to 1 CPU and
4 GiB; measure yours with ``kubectl describe node`` ("Non-terminated Pods").
"""

from __future__ import annotations

from pydantic import Field

from .base import Base, Quantity

# What the shape must say for the pod-fit rules to run; a shape that names none of them is not declared.
SHAPE_KEYS = ("cpu", "memory", "gpus")


class Reserved(Base):
    cpu: Quantity = Field("1", description="CPU the GPU node's DaemonSets need (GPU Operator, CNI, node exporter).")
    memory: Quantity = Field("4Gi", description="Memory the GPU node's DaemonSets need.")


class NodeShape(Base):
    """One GPU node as Kubernetes allocates it. Unset (the default) skips the pod-fit rules; set, it needs
    ``cpu``, ``memory`` and ``gpus`` together."""

    cpu: Quantity | None = Field(None, description="Allocatable CPU of a GPU node (status.allocatable.cpu).")
    memory: Quantity | None = Field(None, description="Allocatable memory of a GPU node (status.allocatable.memory).")
    gpus: int | None = Field(None, ge=1, le=16, description="Allocatable nvidia.com/gpu of a GPU node.")
    rdma: dict[str, int] = Field(
        default_factory=dict, description='Allocatable RDMA devices by resource name, e.g. {"rdma/ib": 4}.'
    )
    reserved: Reserved = Field(
        default_factory=Reserved, description="Room kept for the DaemonSets every GPU node runs; pods get the rest."
    )
    driver_version: str | None = Field(
        None,
        pattern=r"^\d+\.\d+(\.\d+)?$",
        description="NVIDIA driver the GPU nodes run when it is installed on the hosts (nvidia-smi's Driver Version, "
        "or the node label nvidia.com/cuda.driver-version.full), e.g. 550.127.05: the SGLang image's CUDA build must "
        "not need a newer one (facts/cuda.py). Unset: not checked offline.",
    )

    @property
    def declared(self) -> bool:
        return any(getattr(self, key) is not None for key in SHAPE_KEYS) or bool(self.rdma)

    @property
    def complete(self) -> bool:
        return all(getattr(self, key) is not None for key in SHAPE_KEYS)
