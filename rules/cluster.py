"""Rules over what a live cluster says, for ``pulumi preview`` with a reachable cluster: GPU nodes, their labels
and free room, the CRDs of add-ons the stack trusts the cluster to run, the server's version.

Pure: every function takes the objects as the API server returns them in JSON (camelCase keys, as
``kubectl get -o json`` prints them, or the Python client's ``ApiClient().sanitize_for_serialization(obj)``),
and returns Problems (refuse, at a stack key) and warnings (for the run's notes). Reading the cluster is
``live.cluster``'s job; these rules are tested with fixtures and with objects read back from a real
kube-apiserver (tests/fixtures/live/).

Facts relied on:
- GPU feature discovery labels (k8s-device-plugin v0.17.0 internal/lm, the GFD of gpu-operator v24.9.x):
  ``nvidia.com/gpu.product`` (facts.gpus.parse_product), ``nvidia.com/gpu.memory`` in MiB,
  ``nvidia.com/gpu.compute.major/minor``. ``nvidia.com/gpu.family`` is not used: v0.17.0 calls Ada ``ampere``
  and Blackwell ``undefined``.
- GFD's driver labels (``nvidia.com/cuda.driver-version.full``, or its ``.major``/``.minor``/``.revision`` parts,
  or the older ``nvidia.com/cuda.driver.*``; facts.cuda) against the driver the SGLang image's CUDA build needs.
- The device plugin advertises ``nvidia.com/gpu`` in ``status.allocatable``; the RDMA device plugin its own
  resource (``rdma/ib`` in the reference).
- The scheduler places a pod where allocatable minus the requests of the pods already there covers its requests;
  at preview the only pods that will certainly be there are the DaemonSets' (a pod's effective request is the
  larger of its containers' sum and its largest init container).
- LWS CRD fingerprints by release (facts.compat.FEATURES; verified on the CRDs in third_party/crds and the lws tags):
  ``subGroupPolicyType`` 0.6.0, ``rollingUpdateConfiguration.partition`` 0.7.0, ``volumeClaimTemplates`` 0.8.0,
  ``restartPolicy`` enum value ``RecreateGroupAfterStart`` 0.9.0. Gang scheduling (0.7.0) leaves no trace in the
  CRD: it is the controller's config (ConfigMap ``<release>-manager-config``, key
  ``controller_manager_config.yaml``, ``gangSchedulingManagement.schedulerProvider: volcano``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml
from packaging.version import Version

from ..config.errors import Loc, Problem
from ..facts.compat import kube_minor
from ..facts.cuda import CUDA_NOTES, GFD_DRIVER_FULL, advice, node_driver
from ..facts.gpus import GFD_MEMORY, GFD_PRODUCT, GPU_RESOURCE, Gpu, ProductLabel, gpu_choices, parse_product
from ..facts.quantity import parse_quantity
from .nodes import plural

# GFD's memory label against the table: ECC on/off and driver versions move it a little.
MEMORY_TOLERANCE = 0.10
SHOWN = 3


@dataclass
class LiveResult:
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def extend(self, other: LiveResult) -> None:
        self.problems += other.problems
        self.warnings += other.warnings


def _verb(items: Sequence[object], one: str, many: str) -> str:
    return one if len(items) == 1 else many


def names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


# --- nodes -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    name: str
    labels: Mapping[str, str]
    allocatable: Mapping[str, Decimal]
    ready: bool
    schedulable: bool
    taints: tuple[Mapping[str, Any], ...] = ()

    @property
    def gpus(self) -> Decimal:
        return self.allocatable.get(GPU_RESOURCE, Decimal(0))

    @property
    def product(self) -> ProductLabel | None:
        value = self.labels.get(GFD_PRODUCT)
        return parse_product(value) if value else None


def parse_node(obj: Mapping[str, Any]) -> Node:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    allocatable = {}
    for resource, text in (status.get("allocatable") or {}).items():
        try:
            allocatable[resource] = parse_quantity(str(text))
        except ValueError:
            continue
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return Node(
        name=meta.get("name", "?"),
        labels=dict(meta.get("labels") or {}),
        allocatable=allocatable,
        ready=ready,
        schedulable=not spec.get("unschedulable", False),
        taints=tuple(spec.get("taints") or ()),
    )


def _pod_requests(pod: Mapping[str, Any]) -> dict[str, Decimal]:
    """The scheduler's view of a pod's requests: containers summed, then raised to any init container's."""
    spec = pod.get("spec") or {}

    def of(container: Mapping[str, Any]) -> dict[str, Decimal]:
        requests = ((container.get("resources") or {}).get("requests")) or {}
        return {k: parse_quantity(str(v)) for k, v in requests.items()}

    total: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        for k, v in of(c).items():
            total[k] = total.get(k, Decimal(0)) + v
    for c in spec.get("initContainers") or []:
        for k, v in of(c).items():
            total[k] = max(total.get(k, Decimal(0)), v)
    return total


def daemonset_usage(pods: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Decimal]]:
    """Requests of the DaemonSet pods on each node (by node name), terminated pods excluded."""
    usage: dict[str, dict[str, Decimal]] = {}
    for pod in pods:
        owners = (pod.get("metadata") or {}).get("ownerReferences") or []
        node = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if not node or phase in ("Succeeded", "Failed") or not any(o.get("kind") == "DaemonSet" for o in owners):
            continue
        on_node = usage.setdefault(node, {})
        for k, v in _pod_requests(pod).items():
            on_node[k] = on_node.get(k, Decimal(0)) + v
    return usage


def _tolerates(taint: Mapping[str, Any], tolerations: Sequence[Mapping[str, Any]]) -> bool:
    if taint.get("effect") == "PreferNoSchedule":
        return True
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


@dataclass(frozen=True)
class GroupDemand:
    """What one inference group asks of the cluster, in plain values (built from the group's config)."""

    index: int
    name: str
    gpu: Gpu | None
    pods_per_replica: int
    replicas: int
    requests: Mapping[str, str]
    max_replicas: int | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    # The driver the group's SGLang image needs (its CUDA build), when the nodes' driver is theirs to check.
    driver: DriverNeed | None = None

    def loc(self, *parts: str | int) -> Loc:
        return ("inferenceGroups", self.index, *parts)


@dataclass(frozen=True)
class DriverNeed:
    """The SGLang image a group runs, its CUDA build and the driver that build needs (facts.cuda)."""

    image: str
    cuda: str
    min_driver: str
    loc: Loc  # the key that pins the image (versions.sglangImage, or sglangVersion for a digest)
    refuse: bool = True  # false: preflight.compatibility is off, a too-old driver is a warning


def _fits(free: Mapping[str, Decimal], requests: Mapping[str, Decimal]) -> tuple[int, str]:
    """How many such pods fit in ``free``, and the resource that limits it."""
    best, limit = None, ""
    for resource, wanted in requests.items():
        if wanted <= 0:
            continue
        count = int(free.get(resource, Decimal(0)) // wanted)
        if best is None or count < best:
            best, limit = count, resource
    return (best if best is not None else 0), limit


def _describe(resource: str, value: Decimal) -> str:
    if resource == "memory":
        return f"{value / Decimal(2**30):.0f}Gi"
    return format(value.normalize(), "f")


def check_gpu_nodes(
    groups: Sequence[GroupDemand], node_objects: Sequence[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]] = ()
) -> LiveResult:
    """GPU nodes against every group: matching product, whole GPUs, room for the pods at replicas (refused)
    and at maxReplicas (warned). Groups take room in their order, as one preview will create them."""
    result = LiveResult()
    nodes = [parse_node(n) for n in node_objects]
    gpu_nodes = [n for n in nodes if n.gpus > 0]
    if not gpu_nodes:
        result.problems.append(
            Problem(
                ("gpuOperator", "mode"),
                f"none of the cluster's {plural(len(nodes), 'node')} has allocatable {GPU_RESOURCE}: the GPU "
                "Operator's device plugin advertises GPUs; is it running, and are the GPU nodes joined?",
            )
        )
        return result
    usage = daemonset_usage(pods)
    free = {
        n.name: {k: v - usage.get(n.name, {}).get(k, Decimal(0)) for k, v in n.allocatable.items()} for n in gpu_nodes
    }
    for group in groups:
        result.extend(_check_group(group, gpu_nodes, free))
    return result


def _excluded(node: Node, group: GroupDemand) -> str | None:
    """Why the scheduler would not place the group's pods on ``node`` at all, or None."""
    if not node.ready:
        return "not Ready"
    if not node.schedulable:
        return "cordoned (spec.unschedulable)"
    wrong = [f"{k}={node.labels.get(k, '<unset>')}" for k, v in group.node_selector.items() if node.labels.get(k) != v]
    if wrong:
        return f"labels {', '.join(wrong)} do not match nodeSelector"
    for taint in node.taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(taint, group.tolerations):
            value = f"={taint['value']}" if taint.get("value") else ""
            return f"taint {taint.get('key')}{value}:{taint.get('effect')} not tolerated"
    return None


def _check_group(group: GroupDemand, gpu_nodes: list[Node], free: dict[str, dict[str, Decimal]]) -> LiveResult:
    result = LiveResult()
    reasons = {n.name: _excluded(n, group) for n in gpu_nodes}
    usable = [n for n in gpu_nodes if reasons[n.name] is None]
    if not usable:
        why = "; ".join(f"{name}: {reason}" for name, reason in list(reasons.items())[:SHOWN])
        more = f"; and {len(reasons) - SHOWN} more" if len(reasons) > SHOWN else ""
        result.problems.append(
            Problem(
                group.loc("nodeSelector"),
                f"no GPU node can take {group.name}'s pods ({why}{more}): fix nodeSelector or tolerations, or the "
                "nodes",
            )
        )
        return result
    usable = _check_products(group, usable, result)
    if not usable:
        return result
    if group.driver is not None:
        usable = _check_drivers(group, group.driver, usable, result)
        if not usable:
            return result
    requests = {k: parse_quantity(v) for k, v in group.requests.items()}
    need = group.pods_per_replica * group.replicas
    placed, short = 0, list[str]()
    for node in usable:
        count, limit = _fits(free[node.name], requests)
        take = min(count, need - placed)
        for resource, wanted in requests.items():
            free[node.name][resource] = free[node.name].get(resource, Decimal(0)) - wanted * take
        placed += take
        if count == 0:
            have = free[node.name].get(limit, Decimal(0))
            short.append(
                f"{node.name} has {_describe(limit, have)} {limit} free, a pod asks {_describe(limit, requests[limit])}"
            )
    if placed < need:
        pods = plural(need, "pod")
        result.problems.append(
            Problem(
                group.loc("autoscaling", "minReplicas") if group.max_replicas is not None else group.loc("replicas"),
                f"{group.name} needs {pods} ({group.replicas} x {group.pods_per_replica}) on the GPU nodes it may use, "
                f"and they have room for {placed}"
                + (f" ({'; '.join(short[:SHOWN])})" if short else "")
                + ": add GPU nodes, lower replicas, or lower the pod's requests",
            )
        )
        return result
    if group.max_replicas is not None and group.max_replicas > group.replicas:
        extra = group.pods_per_replica * (group.max_replicas - group.replicas)
        spare = sum(_fits(free[n.name], requests)[0] for n in usable)
        if spare < extra:
            result.warnings.append(
                f"{group.name}: autoscaling.maxReplicas {group.max_replicas} needs {plural(extra, 'more pod')} of "
                f"whole GPU nodes, and the cluster has room for {spare}: scale-ups beyond that wait for nodes"
            )
    return result


def _check_products(group: GroupDemand, usable: list[Node], result: LiveResult) -> list[Node]:
    """The nodes whose GFD product is the group's GPU (all of them when the group names none)."""
    mig = [n for n in usable if n.product is not None and n.product.mig_profile]
    if mig:
        product = mig[0].product
        assert product is not None
        slices = (
            f"{names([n.name for n in mig])} {_verb(mig, 'exposes', 'expose')} MIG slices ({GFD_PRODUCT}={product.raw})"
        )
        usable = [n for n in usable if n not in mig]
        if not usable:
            result.problems.append(
                Problem(
                    group.loc("gpu"),
                    f"the only GPU nodes {group.name} may use are MIG-partitioned: {slices}, not whole GPUs, and "
                    "SGLang shards over whole GPUs: set gpuOperator.migStrategy none on GPU nodes for serving",
                )
            )
            return []
        result.warnings.append(
            f"{group.name}: {slices}; keep the group on whole GPUs with nodeSelector {GFD_PRODUCT}: "
            f"{(usable[0].product.raw if usable[0].product else '<product>')}"
        )
    unlabelled = [n.name for n in usable if n.product is None]
    if unlabelled and group.gpu is not None:
        result.warnings.append(
            f"{group.name}: {names(unlabelled)} carry no {GFD_PRODUCT} label (GPU feature discovery not running): "
            f"their GPU was not checked against gpu {group.gpu.name}"
        )
    if group.gpu is None:
        return usable
    matching = [n for n in usable if n.product is not None and n.product.gpu is group.gpu]
    others = [n for n in usable if n.product is not None and n.product.gpu is not group.gpu]
    for node in matching:
        memory = node.labels.get(GFD_MEMORY)
        if (
            memory
            and memory.isdigit()
            and abs(int(memory) - group.gpu.memory_mib) > MEMORY_TOLERANCE * group.gpu.memory_mib
        ):
            result.warnings.append(
                f"{group.name}: {node.name} reports {GFD_MEMORY}={memory} MiB, facts/gpus.py has "
                f"{group.gpu.memory_mib} MiB for {group.gpu.name}: check the GPU table"
            )
    if others and not matching and not unlabelled:
        product = others[0].product
        assert product is not None
        known = product.gpu
        fix = (
            f"set gpu: {known.name}"
            if known is not None
            else f"add {product.base} to facts/gpus.py (known: {gpu_choices()})"
        )
        result.problems.append(
            Problem(
                group.loc("gpu"),
                f"{group.gpu.name}, but the GPU nodes {group.name} may use are labelled {GFD_PRODUCT}="
                f"{product.raw} ({names([n.name for n in others])}): {fix}",
            )
        )
        return []
    if others and matching:
        product = matching[0].product
        assert product is not None
        result.warnings.append(
            f"{group.name}: {names([n.name for n in others])} {_verb(others, 'has', 'have')} other GPUs than "
            f"{group.gpu.name}; pin the group "
            f"to its GPU with nodeSelector {GFD_PRODUCT}: {product.raw}"
        )
    return matching + [n for n in usable if n.product is None]


def _check_drivers(group: GroupDemand, need: DriverNeed, usable: list[Node], result: LiveResult) -> list[Node]:
    """The nodes whose GFD driver label runs the group's image (and those without the label, with a warning):
    refused when none does, warned when only some do."""
    needed = Version(need.min_driver)
    drivers = {n.name: node_driver(dict(n.labels)) for n in usable}
    unlabelled = [n.name for n in usable if drivers[n.name] is None]
    old = [n for n in usable if (d := drivers[n.name]) is not None and d < needed]
    fine = [n for n in usable if n.name not in unlabelled and n not in old]
    if unlabelled:
        result.warnings.append(
            f"{group.name}: {names(unlabelled)} {_verb(unlabelled, 'carries', 'carry')} no {GFD_DRIVER_FULL} label "
            f"(GPU feature discovery not running): {_verb(unlabelled, 'its', 'their')} NVIDIA driver was not checked "
            f"against {need.image} (needs {need.min_driver})"
        )
    if not old:
        return usable
    listed = ", ".join(f"{n.name} {n.labels.get(GFD_DRIVER_FULL) or drivers[n.name]}" for n in old[:SHOWN])
    more = f" and {len(old) - SHOWN} more" if len(old) > SHOWN else ""
    driver = drivers[old[0].name]
    assert driver is not None
    if not fine and not unlabelled:
        problem = Problem(
            need.loc,
            f"{need.image} is a CUDA {need.cuda} build, which needs NVIDIA driver {need.min_driver} or newer "
            f"({CUDA_NOTES}), and the GPU nodes {group.name} may use run older ones ({GFD_DRIVER_FULL}: "
            f"{listed}{more}): {advice(driver)}; or upgrade their driver to {need.min_driver} or newer",
        )
        if need.refuse:
            result.problems.append(problem)
            return []
        result.warnings.append(f"{problem.key}: {problem.message} (not refused: preflight.compatibility is false)")
        return usable
    result.warnings.append(
        f"{group.name}: {listed}{more} {_verb(old, 'runs', 'run')} an NVIDIA driver older than {need.min_driver}, "
        f"which {need.image} (CUDA {need.cuda}) needs: its pods fail there; keep the group off "
        f"{_verb(old, 'it', 'them')} (nodeSelector on {GFD_DRIVER_FULL.rsplit('.', 1)[0]}.major, or a taint)"
    )
    return [n for n in usable if n not in old]


# --- CRDs ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrdNeed:
    """A CRD the stack relies on, at an API version, with schema paths that must exist (``properties`` walked
    from ``spec``) and enum values that must be allowed."""

    crd: str
    version: str
    loc: Loc
    why: str
    paths: tuple[tuple[str, ...], ...] = ()
    enums: tuple[tuple[tuple[str, ...], str], ...] = ()
    fix: str = ""


def _schema(crd: Mapping[str, Any], version: str) -> Mapping[str, Any] | None:
    for v in (crd.get("spec") or {}).get("versions") or []:
        if v.get("name") == version and v.get("served"):
            return ((v.get("schema") or {}).get("openAPIV3Schema")) or {}
    return None


def _at(schema: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any] | None:
    node: Mapping[str, Any] | None = (schema.get("properties") or {}).get("spec")
    for part in path:
        if node is None:
            return None
        if node.get("type") == "array":
            node = node.get("items") or {}
        node = (node.get("properties") or {}).get(part)
    return node


def check_crds(crds: Iterable[Mapping[str, Any]], needs: Sequence[CrdNeed]) -> list[Problem]:
    by_name = {(c.get("metadata") or {}).get("name"): c for c in crds}
    out: list[Problem] = []
    for need in needs:
        crd = by_name.get(need.crd)
        fix = f": {need.fix}" if need.fix else ""
        if crd is None:
            out.append(Problem(need.loc, f"the cluster has no CRD {need.crd}, which {need.why} needs{fix}"))
            continue
        schema = _schema(crd, need.version)
        if schema is None:
            served = [v.get("name") for v in (crd.get("spec") or {}).get("versions") or [] if v.get("served")]
            out.append(
                Problem(
                    need.loc,
                    f"CRD {need.crd} does not serve {need.version} (served: {', '.join(served) or 'none'}), which "
                    f"{need.why} needs{fix}",
                )
            )
            continue
        for path in need.paths:
            if _at(schema, path) is None:
                out.append(
                    Problem(
                        need.loc,
                        f"CRD {need.crd} {need.version} has no field spec.{'.'.join(path)}, which {need.why} uses: "
                        f"the installed release is older than the stack expects{fix}",
                    )
                )
        for path, value in need.enums:
            node = _at(schema, path)
            allowed = (node or {}).get("enum")
            if allowed is not None and value not in allowed:
                out.append(
                    Problem(
                        need.loc,
                        f"CRD {need.crd} {need.version} does not allow spec.{'.'.join(path)}: {value} (allowed: "
                        f"{', '.join(map(str, allowed))}), which {need.why} sets{fix}",
                    )
                )
    return out


LWS_CRD = "leaderworkersets.leaderworkerset.x-k8s.io"
KEDA_CRD = "scaledobjects.keda.sh"
VOLCANO_CRDS = ("podgroups.scheduling.volcano.sh", "queues.scheduling.volcano.sh")
PROM_CRDS = (
    "podmonitors.monitoring.coreos.com",
    "servicemonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
)
LWS_FINGERPRINTS = (
    ("0.9.0", None, (("leaderWorkerTemplate", "restartPolicy"), "RecreateGroupAfterStart")),
    ("0.8.0", ("leaderWorkerTemplate", "volumeClaimTemplates"), None),
    ("0.7.0", ("rolloutStrategy", "rollingUpdateConfiguration", "partition"), None),
    ("0.6.0", ("leaderWorkerTemplate", "subGroupPolicy", "subGroupPolicyType"), None),
)


def lws_floor(crd: Mapping[str, Any]) -> str | None:
    """The oldest LWS release whose CRD the cluster's could be ("at least"), None when older than 0.6.0."""
    schema = _schema(crd, "v1")
    if schema is None:
        return None
    for release, path, enum in LWS_FINGERPRINTS:
        if path is not None and _at(schema, path) is not None:
            return release
        if enum is not None and enum[1] in ((_at(schema, enum[0]) or {}).get("enum") or ()):
            return release
    return None


def crd_needs(
    *,
    lws_present: bool,
    restart_policies: Iterable[str] = (),
    keda_present_with_autoscaling: bool = False,
    volcano_present_with_groups: bool = False,
    monitors_without_install: bool = False,
) -> list[CrdNeed]:
    """The CRDs (and their fields) the stack's objects need when it trusts the cluster to run the add-on."""
    needs = []
    if lws_present:
        enums = tuple((("leaderWorkerTemplate", "restartPolicy"), p) for p in sorted(set(restart_policies)) if p)
        needs.append(
            CrdNeed(
                LWS_CRD,
                "v1",
                ("lws", "mode"),
                "every inference group (a LeaderWorkerSet)",
                paths=(("startupPolicy",), ("rolloutStrategy", "rollingUpdateConfiguration", "maxSurge")),
                enums=enums,
                fix="install LWS 0.10.0 (lws.mode install) or upgrade the cluster's",
            )
        )
    if keda_present_with_autoscaling:
        needs.append(
            CrdNeed(
                KEDA_CRD,
                "v1alpha1",
                ("keda", "mode"),
                "autoscaling (a ScaledObject per group)",
                paths=(("fallback", "behavior"), ("advanced", "horizontalPodAutoscalerConfig", "behavior")),
                fix="KEDA 2.17 or later (fallback.behavior), or keda.mode install",
            )
        )
    if volcano_present_with_groups:
        needs += [
            CrdNeed(name, "v1beta1", ("volcano", "mode"), "scheduler volcano and the inference Queue")
            for name in VOLCANO_CRDS
        ]
    if monitors_without_install:
        needs += [
            CrdNeed(name, "v1", ("monitoring", "enabled"), "the SGLang monitors and alerts") for name in PROM_CRDS
        ]
    return needs


def lws_gang_scheduling(config_map: Mapping[str, Any] | None) -> bool | None:
    """Whether the LWS controller's config turns on Volcano gang scheduling; None when unreadable."""
    if not config_map:
        return None
    text = (config_map.get("data") or {}).get("controller_manager_config.yaml")
    if not text:
        return None
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return None
    provider = ((config.get("gangSchedulingManagement") or {}) if isinstance(config, dict) else {}).get(
        "schedulerProvider"
    )
    return provider == "volcano"


def check_lws_gang(declared: bool, config_map: Mapping[str, Any] | None, where: str) -> LiveResult:
    result = LiveResult()
    actual = lws_gang_scheduling(config_map)
    if actual is None:
        if declared:
            result.warnings.append(
                f"could not read the LWS controller's config ({where}): gang scheduling not verified"
            )
        return result
    if declared and not actual:
        result.problems.append(
            Problem(
                ("lws", "gangScheduling"),
                f"true, but the cluster's LWS controller runs without gangSchedulingManagement.schedulerProvider: "
                f"volcano ({where}), so groups would be scheduled pod by pod: configure the controller, or set "
                "lws.gangScheduling to false",
            )
        )
    if actual and not declared:
        result.problems.append(
            Problem(
                ("lws", "gangScheduling"),
                f"false, but the cluster's LWS controller gang-schedules through Volcano ({where}): every "
                "LeaderWorkerSet gets a PodGroup and a group the default scheduler places never starts (lws#630): "
                "set lws.gangScheduling to true and scheduler volcano",
            )
        )
    return result


def check_server_version(configured: str, version: Mapping[str, Any]) -> list[Problem]:
    """``versions.kubernetes`` against the API server's ``/version`` (``gitVersion`` e.g. ``v1.36.3``): another
    minor means every rule that reads the version (schemas, add-on windows) judged the wrong cluster."""
    actual = str(version.get("gitVersion") or "")
    if not actual or kube_minor(actual) is None or kube_minor(actual) == kube_minor(configured):
        return []
    running = actual.removeprefix("v").split("+")[0]
    return [
        Problem(
            ("versions", "kubernetes"),
            f"is {configured}, but the cluster runs Kubernetes {running} (kube-apiserver /version): the schemas and "
            f"add-on versions were checked for {configured}, not for the cluster; set versions.kubernetes to "
            f"{running} (and pin add-ons that support it)",
        )
    ]
