"""Whether a group's pods fit its GPU node (``gpuNodes``, or the group's own ``nodeShape``), and what to set
when its weights do not fit its GPUs. Capacity advice proposes only tensor-parallel sizes the model can be
sharded to (``rules.quantization.tp_problem``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal

from ..config.benchmark import BENCH_RESOURCES
from ..config.errors import Loc, Problem
from ..config.model_cache import STAGER_REQUESTS
from ..config.nodes import SHAPE_KEYS, NodeShape
from ..config.stack import PlatformConfig, ServingUnit
from ..facts.gpus import GPU_RESOURCE
from ..facts.model_catalogue import KnownModel
from ..facts.quantity import parse_quantity
from ..facts.quantization import Quantization
from .quantization import display_name, join_or, tp_problem, valid_tp_sizes

GI = Decimal(2**30)
MI = Decimal(2**20)


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


def _allocatable(shape: NodeShape, resource: str) -> Decimal:
    text = shape.cpu if resource == "cpu" else shape.memory
    assert text is not None, "only complete shapes are checked"
    return parse_quantity(text)


# A pod of the platform's own that runs on a group's GPU nodes: what it is, with the stack key that puts it
# there (for the messages), and its requests by resource.
PlatformPod = tuple[str, Mapping[str, str]]


def _exact(value: Decimal, resource: str) -> str:
    """A request as a stack file spells it, not rounded: ``250m``, ``2``, ``512Mi``, ``4608Mi``."""
    if resource == "cpu":
        return cpu_text(value)
    return memory_text(value) if value % GI == 0 else f"{int(value / MI)}Mi"


def platform_pods(unit: ServingUnit) -> list[PlatformPod]:
    """The platform's own pods that take room on the nodes of a group's pods, beside them. On a hostPath
    volume with model.download the staging DaemonSet runs on every node the group uses, for good (it serves
    its metrics after the fetch); and the benchmark Job reads the tokenizer from that node-local copy, so it
    runs on one of those nodes (a disaggregated service's: the decode role's, components.benchmark.placement)
    while the group serves, which is its whole point. On a pvc neither is placed by the weights (the download
    Job finishes before the group starts; the benchmark goes where the group's nodeSelector admits)."""
    entry = unit.service
    if entry.model_volume.type != "hostPath" or entry.model.download is None:
        return []
    out: list[PlatformPod] = [
        ("the weights stager that model.download runs on a hostPath modelVolume", STAGER_REQUESTS),
    ]
    if entry.benchmark is not None and unit.role in (None, "decode"):
        out.append(("the benchmark Job that benchmark runs", BENCH_RESOURCES))
    return out


def room(shape: NodeShape) -> dict[str, Decimal]:
    """What one pod may request on the node: allocatable minus the DaemonSets' room, by resource."""
    out = {
        "cpu": _allocatable(shape, "cpu") - parse_quantity(shape.reserved.cpu),
        "memory": _allocatable(shape, "memory") - parse_quantity(shape.reserved.memory),
        GPU_RESOURCE: Decimal(shape.gpus or 0),
    }
    out |= {name: Decimal(count) for name, count in shape.rdma.items()}
    return out


def check_pod_fits(
    requests: Mapping[str, str],
    shape: NodeShape,
    locs: Mapping[str, Loc],
    shape_loc: Loc = ("nodeShape",),
    beside: Sequence[PlatformPod] = (),
) -> list[Problem]:
    """Each resource a pod requests against one node's room. ``requests`` maps resource names to quantities
    (the group's pod requests); ``locs`` the stack key each resource comes from; ``shape_loc`` where the shape
    is set (``gpuNodes``, or a group's ``nodeShape``), for the messages and the reserved-room problems;
    ``beside`` the platform's own pods that share the node with it (``platform_pods``)."""
    out: list[Problem] = []
    free = room(shape)
    key = ".".join(str(p) for p in shape_loc if isinstance(p, str) and p != "inferenceGroups")
    for resource, text in requests.items():
        wanted = parse_quantity(text)
        loc = locs.get(resource, ("resources",))
        if resource in ("cpu", "memory"):
            alloc = _allocatable(shape, resource)
            reserved_text = shape.reserved.cpu if resource == "cpu" else shape.reserved.memory
            theirs = [(what, parse_quantity(q[resource])) for what, q in beside if resource in q]
            left = free[resource] - sum((q for _, q in theirs), Decimal(0))
            if wanted <= left:
                continue
            if free[resource] <= 0:
                out.append(
                    Problem(
                        (*shape_loc, "reserved", resource),
                        f"{reserved_text} leaves no {resource} of the node's {getattr(shape, resource)} "
                        "allocatable for the pods",
                    )
                )
                continue
            show = cpu_text if resource == "cpu" else memory_text
            have = f"{plural(alloc, 'CPU')}" if resource == "cpu" else memory_text(alloc)
            daemons = (
                "the DaemonSets every GPU node runs (GPU Operator, CNI, node exporter) keep "
                f"{reserved_text} ({key}.reserved.{resource})"
            )
            if not theirs:
                why = f"it allocates {have} ({key}.{resource}) and {daemons}"
            else:
                ours = "; ".join(f"{_exact(q, resource)} for {what}" for what, q in theirs)
                total = _exact(sum((q for _, q in theirs), Decimal(0)), resource)
                why = (
                    f"it allocates {have} ({key}.{resource}), {daemons}, and the platform's own pods on the "
                    f"group's nodes request {total} ({ours})"
                )
            advice = (
                f"request at most {show(left)!r}"
                if left > 0
                else "they leave nothing for the group's pod: use larger nodes or drop what runs beside it"
            )
            out.append(Problem(loc, f"{text!r} does not fit a GPU node: {why}: {advice}"))
        elif resource == GPU_RESOURCE:
            if wanted > free[resource]:
                out.append(
                    Problem(
                        loc,
                        f"{plural(wanted, 'GPU')} per pod, but a GPU node has {plural(shape.gpus or 0, 'GPU')} "
                        f"({key}.gpus): a pod runs on one node, so use at most {shape.gpus} and more nodes",
                    )
                )
        else:
            devices = free.get(resource, Decimal(0))
            if wanted > devices:
                out.append(
                    Problem(
                        loc,
                        f"{plural(wanted, 'device')} of {resource} per pod, but a GPU node has "
                        f"{plural(devices, 'device')} of it ({key}.rdma)",
                    )
                )
    return out


def group_locs(unit: ServingUnit) -> dict[str, Loc]:
    """The stack key each of a group's pod requests comes from (a role's own, where it sets it)."""
    return {
        "cpu": unit.loc(("resources", "cpu")),
        "memory": unit.loc(("resources", "memory")),
        GPU_RESOURCE: unit.loc(("gpusPerNode",)),
        unit.group.network.rdma_resource: unit.loc(("network", "rdmaDevicesPerNode")),
    }


def shape_of(cfg: PlatformConfig, unit: ServingUnit) -> tuple[Loc, NodeShape]:
    """The node shape a group runs on and where it is set: its own ``nodeShape`` when it says anything, else
    the top-level ``gpuNodes``."""
    own = unit.group.node_shape
    if own is not None and own.declared:
        return unit.loc(("nodeShape",)), own
    return ("gpuNodes",), cfg.gpu_nodes


def check_node_shapes(cfg: PlatformConfig) -> list[Problem]:
    """Every group's pod against its node: the group's ``nodeShape`` when set, else ``gpuNodes``; a shape that
    says only part of what a node has is refused (nothing can be checked against half a node)."""
    out: list[Problem] = []
    shapes: list[tuple[Loc, NodeShape]] = [(("gpuNodes",), cfg.gpu_nodes)]
    for unit in cfg.serving_units:
        if unit.group.node_shape is not None and (unit.loc(("nodeShape",)), unit.group.node_shape) not in shapes:
            shapes.append((unit.loc(("nodeShape",)), unit.group.node_shape))
    for loc, shape in shapes:
        if shape.declared and not shape.complete:
            given = ", ".join(k for k in SHAPE_KEYS if getattr(shape, k) is not None) or "rdma"
            for k in SHAPE_KEYS:
                if getattr(shape, k) is None:
                    out.append(
                        Problem(
                            (*loc, k),
                            f"required: {given} {'is' if ',' not in given else 'are'} set, and a node shape is its "
                            "allocatable cpu, memory and gpus together (kubectl get node <gpu node> -o "
                            "jsonpath='{.status.allocatable}')",
                        )
                    )
    for unit in cfg.serving_units:
        loc, shape = shape_of(cfg, unit)
        if shape.complete:
            # The roles of a service may share the key a problem is on: one line for it.
            found = check_pod_fits(unit.group.pod_quantities, shape, group_locs(unit), loc, platform_pods(unit))
            out += [p for p in found if p not in out]
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
