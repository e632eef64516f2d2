"""The GPU node a group's pods land on, and whether a pod fits it.

A node's *allocatable* CPU and memory (what ``kubectl get node -o jsonpath='{.status.allocatable}'`` shows:
capacity minus kube-reserved, system-reserved and the eviction threshold) is not all a pod may request: the
DaemonSets every GPU node runs (the GPU Operator's driver, toolkit, device plugin, GPU feature discovery,
DCGM exporter and validator; the NFD worker; the CNI agent; kube-proxy; the node exporter) take their share
first, and the scheduler counts their requests. A pod that asks for a whole node (the reference's
``cpu: "128"`` on 128-core hosts) stays Pending forever. The charts pinned here request little by default
(gpu-operator v24.9.1 values.yaml: operands without requests; NFD worker 5m/64Mi) but use more (the driver
container, DCGM), and CNIs request their own (e.g. calico-node 250m), so ``reserved`` defaults to 1 CPU and
4 GiB; measure yours with ``kubectl describe node`` ("Non-terminated Pods").

Pure: the model, and rules over quantities. Capacity advice proposes only tensor-parallel sizes the model
can be sharded to (config.quantization.tp_problem).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import ROUND_FLOOR, Decimal

from pydantic import Field

from config.base import Base, Quantity
from config.errors import Loc, Problem
from config.gpus import GPU_RESOURCE
from config.quantity import parse_quantity
from config.quantization import KnownModel, Quantization, display_name, join_or, tp_problem, valid_tp_sizes

GI = Decimal(2**30)
MI = Decimal(2**20)


class Reserved(Base):
    cpu: Quantity = Field("1", description="CPU the GPU node's DaemonSets need (GPU Operator, CNI, node exporter).")
    memory: Quantity = Field("4Gi", description="Memory the GPU node's DaemonSets need.")


class NodeShape(Base):
    """One GPU node as Kubernetes allocates it."""

    cpu: Quantity = Field(description="Allocatable CPU of a GPU node (status.allocatable.cpu).")
    memory: Quantity = Field(description="Allocatable memory of a GPU node (status.allocatable.memory).")
    gpus: int = Field(ge=1, le=16, description="Allocatable nvidia.com/gpu of a GPU node.")
    rdma: dict[str, int] = Field(
        default_factory=dict, description='Allocatable RDMA devices by resource name, e.g. {"rdma/ib": 4}.'
    )
    reserved: Reserved = Field(
        default_factory=Reserved, description="Room kept for the DaemonSets every GPU node runs; pods get the rest."
    )


def plural(count: int | Decimal, noun: str) -> str:
    """``1 GPU``, ``2 GPUs``, ``0.5 CPU`` (the messages count whole things and fractions of one)."""
    text = format(Decimal(count).normalize(), "f") if isinstance(count, Decimal) else str(count)
    return f"{text} {noun}" if 0 < Decimal(count) <= 1 else f"{text} {noun}s"


def cpu_text(value: Decimal) -> str:
    """A CPU quantity as a stack file would spell it: ``126``, ``125500m``."""
    millis = (value * 1000).to_integral_value(rounding=ROUND_FLOOR)
    return str(int(millis // 1000)) if millis % 1000 == 0 else f"{int(millis)}m"


def memory_text(value: Decimal) -> str:
    """The largest whole Gi (or Mi below 1 Gi) not above ``value``."""
    if value >= GI:
        return f"{int((value / GI).to_integral_value(rounding=ROUND_FLOOR))}Gi"
    return f"{int((value / MI).to_integral_value(rounding=ROUND_FLOOR))}Mi"


def room(shape: NodeShape) -> dict[str, Decimal]:
    """What one pod may request on the node: allocatable minus the DaemonSets' room, by resource."""
    out = {
        "cpu": parse_quantity(shape.cpu) - parse_quantity(shape.reserved.cpu),
        "memory": parse_quantity(shape.memory) - parse_quantity(shape.reserved.memory),
        GPU_RESOURCE: Decimal(shape.gpus),
    }
    out |= {name: Decimal(count) for name, count in shape.rdma.items()}
    return out


def check_pod_fits(requests: Mapping[str, str], shape: NodeShape, locs: Mapping[str, Loc]) -> list[Problem]:
    """Each resource a pod requests against one node's room. ``requests`` maps resource names to quantities
    (the group's pod requests); ``locs`` the stack key each resource comes from (relative to the group)."""
    out: list[Problem] = []
    free = room(shape)
    for resource, text in requests.items():
        wanted = parse_quantity(text)
        loc = locs.get(resource, ("resources",))
        if resource in ("cpu", "memory"):
            alloc = parse_quantity(shape.cpu if resource == "cpu" else shape.memory)
            reserved_text = shape.reserved.cpu if resource == "cpu" else shape.reserved.memory
            left = free[resource]
            if wanted <= left:
                continue
            if left <= 0:
                out.append(
                    Problem(
                        ("nodeShape", "reserved", resource),
                        f"{reserved_text} leaves no {resource} of the node's {text} allocatable for the pods",
                    )
                )
                continue
            if resource == "cpu":
                have, fits = f"{plural(alloc, 'CPU')}", cpu_text(left)
            else:
                have, fits = memory_text(alloc), memory_text(left)
            out.append(
                Problem(
                    loc,
                    f"{text!r} does not fit a GPU node: it allocates {have} (nodeShape.{resource}) and the "
                    "DaemonSets every GPU node runs (GPU Operator, CNI, node exporter) keep "
                    f"{reserved_text} (nodeShape.reserved.{resource}): request at most {fits!r}",
                )
            )
        elif resource == GPU_RESOURCE:
            if wanted > free[resource]:
                out.append(
                    Problem(
                        loc,
                        f"{plural(wanted, 'GPU')} per pod, but a GPU node has {plural(shape.gpus, 'GPU')} "
                        f"(nodeShape.gpus): a pod runs on one node, so use at most {shape.gpus} and more nodes",
                    )
                )
        else:
            devices = free.get(resource, Decimal(0))
            if wanted > devices:
                out.append(
                    Problem(
                        loc,
                        f"{plural(wanted, 'device')} of {resource} per pod, but a GPU node has "
                        f"{plural(devices, 'device')} of it (nodeShape.rdma)",
                    )
                )
    return out


def capacity_advice(
    model: KnownModel | None,
    quant: Quantization,
    size_gib: float,
    gpus_per_node: int,
    room_per_gpu: Callable[[int], float],
    max_nodes: int = 64,
) -> str:
    """What to set when the weights do not fit: the fewest nodes whose tensor-parallel size the model can be
    sharded to and whose share of the weights fits ``room_per_gpu(tp)`` GiB per GPU."""
    skipped: list[int] = []
    for nodes in range(1, max_nodes + 1):
        tp = nodes * gpus_per_node
        if size_gib / tp > room_per_gpu(tp):
            continue
        if model is not None and tp_problem(model, quant, tp) is not None:
            skipped.append(tp)
            continue
        why = ""
        if skipped:
            why = (
                f" ({join_or(skipped[:3])} would hold the weights but {display_name(model)} cannot be split "
                f"{'that way' if len(skipped) > 1 else 'so'}: tensor-parallel sizes must be one of "
                f"{join_or(valid_tp_sizes(model, quant, tp))})"
                if model is not None
                else ""
            )
        gpus = plural(gpus_per_node, "GPU")
        return f"set nodes: {nodes} and tensorParallel: {tp}, {plural(nodes, 'node')} of {gpus}{why}"
    choices = join_or(valid_tp_sizes(model, quant)) if model is not None else ""
    return (
        f"no group of up to {max_nodes} nodes of {plural(gpus_per_node, 'GPU')} holds it"
        + (f" with a tensor-parallel size {display_name(model)} can use ({choices})" if model is not None else "")
        + ": use GPUs with more memory or a smaller quantization"
    )
