"""Rules over a live cluster's objects (JSON as the API server returns them): GPU nodes and their GFD labels,
room for every group, add-on CRDs and controller config, the server version. Fixtures are built here and, in
tests/fixtures/live/, read back from a real kube-apiserver (see README there)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import yaml

from sglang_platform.facts.gpus import GPUS
from sglang_platform.rules.cluster import (
    KEDA_CRD,
    LWS_CRD,
    GroupDemand,
    check_crds,
    check_gpu_nodes,
    check_lws_gang,
    check_server_version,
    crd_needs,
    daemonset_usage,
    lws_floor,
    parse_node,
)
from tools import crds

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "live"
A800 = GPUS["A800-80GB"]


def node(
    name: str,
    *,
    gpus: int = 8,
    product: str | None = "NVIDIA-A800-SXM4-80GB",
    cpu: str = "128",
    memory: str = "2015Gi",
    rdma: int = 4,
    ready: bool = True,
    labels: dict | None = None,
    taints: list | None = None,
    unschedulable: bool = False,
) -> dict:
    all_labels = {"kubernetes.io/hostname": name, **(labels or {})}
    if product:
        all_labels |= {
            "nvidia.com/gpu.product": product,
            "nvidia.com/gpu.memory": "81920",
            "nvidia.com/gpu.count": str(gpus),
        }
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    if rdma:
        allocatable["rdma/ib"] = str(rdma)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": {"unschedulable": unschedulable, **({"taints": taints} if taints else {})},
        "status": {
            "allocatable": allocatable,
            "capacity": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def daemon_pod(node_name: str, cpu: str, memory: str = "100Mi", phase: str = "Running") -> dict:
    return {
        "metadata": {"name": f"ds-{node_name}-{cpu}", "ownerReferences": [{"kind": "DaemonSet", "name": "calico"}]},
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "50m"}}}],
        },
        "status": {"phase": phase},
    }


def r1(cpu: str = "120", replicas: int = 1, max_replicas: int | None = None, **kwargs) -> GroupDemand:
    return GroupDemand(
        index=0,
        name="deepseek-r1",
        gpu=kwargs.pop("gpu", A800),
        pods_per_replica=2,
        replicas=replicas,
        max_replicas=max_replicas,
        requests={"cpu": cpu, "memory": "1Ti", "nvidia.com/gpu": "8", "rdma/ib": "4"},
        **kwargs,
    )


REFERENCE = [node("gpu-node-1"), node("gpu-node-2"), node("cpu-node-1", gpus=0, product=None, rdma=0)]


def test_parse_node_reads_allocatable_labels_and_conditions():
    parsed = parse_node(node("n", ready=False, unschedulable=True))
    assert parsed.gpus == 8 and not parsed.ready and not parsed.schedulable
    assert parsed.product is not None and parsed.product.gpu is A800


def test_the_reference_cluster_takes_one_group():
    result = check_gpu_nodes([r1()], REFERENCE)
    assert result.problems == [] and result.warnings == []


def test_a_whole_node_request_does_not_fit_after_the_daemonsets():
    pods = [daemon_pod("gpu-node-1", "250m"), daemon_pod("gpu-node-2", "250m")]
    assert daemonset_usage(pods) == {
        "gpu-node-1": {"cpu": pytest.approx(0.25), "memory": 100 * 2**20},
        "gpu-node-2": {"cpu": pytest.approx(0.25), "memory": 100 * 2**20},
    }
    (problem,) = check_gpu_nodes([r1(cpu="128")], REFERENCE, pods).problems
    assert problem.loc == ("inferenceGroups", 0, "replicas")
    assert problem.message == (
        "deepseek-r1 needs 2 pods (1 x 2) on the GPU nodes it may use, and they have room for 0 (gpu-node-1 has "
        "127.75 cpu free, a pod asks 128; gpu-node-2 has 127.75 cpu free, a pod asks 128): add GPU nodes, lower "
        "replicas, or lower the pod's requests"
    )
    # Finished DaemonSet pods and other pods take nothing.
    assert daemonset_usage([daemon_pod("gpu-node-1", "1", phase="Succeeded")]) == {}


def test_replicas_and_max_replicas():
    (problem,) = check_gpu_nodes([r1(replicas=2)], REFERENCE).problems
    assert "needs 4 pods (2 x 2)" in problem.message and "room for 2" in problem.message
    result = check_gpu_nodes([r1(max_replicas=2)], REFERENCE)
    assert result.problems == []
    assert result.warnings == [
        "deepseek-r1: autoscaling.maxReplicas 2 needs 2 more pods of whole GPU nodes, and the cluster has room for 0: "
        "scale-ups beyond that wait for nodes"
    ]


def test_groups_share_the_nodes_in_order():
    second = GroupDemand(1, "second", A800, 1, 1, {"nvidia.com/gpu": "1"})
    (problem,) = check_gpu_nodes([r1(), second], REFERENCE).problems
    assert problem.loc == ("inferenceGroups", 1, "replicas")


def test_the_product_label_against_the_configured_gpu():
    h100 = [node(f"h{i}", product="NVIDIA-H100-80GB-HBM3") for i in (1, 2)]
    (problem,) = check_gpu_nodes([r1()], h100).problems
    assert problem.loc == ("inferenceGroups", 0, "gpu")
    assert problem.message == (
        "A800-80GB, but the GPU nodes deepseek-r1 may use are labelled nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3 "
        "(h1, h2): set gpu: H100-80GB"
    )
    unknown = [node("t", product="Tesla-T4")]
    (problem,) = check_gpu_nodes([r1()], unknown).problems
    assert "add Tesla-T4 to facts/gpus.py (known: A100-40GB," in problem.message


def test_mixed_gpus_warn_and_count_only_the_right_ones():
    mixed = [*REFERENCE, node("h1", product="NVIDIA-H100-80GB-HBM3")]
    result = check_gpu_nodes([r1()], mixed)
    assert result.problems == []
    assert result.warnings == [
        "deepseek-r1: h1 has other GPUs than A800-80GB; pin the group to its GPU with nodeSelector "
        "nvidia.com/gpu.product: NVIDIA-A800-SXM4-80GB"
    ]


def test_mig_slices_and_missing_gfd_labels():
    mig = [node("m1", product="NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", gpus=7)]
    (problem,) = check_gpu_nodes([r1()], mig).problems
    assert problem.loc == ("inferenceGroups", 0, "gpu")
    assert problem.message == (
        "the only GPU nodes deepseek-r1 may use are MIG-partitioned: m1 exposes MIG slices "
        "(nvidia.com/gpu.product=NVIDIA-A100-SXM4-40GB-MIG-1g.5gb), not whole GPUs, and SGLang shards over whole "
        "GPUs: set gpuOperator.migStrategy none on GPU nodes for serving"
    )
    beside = check_gpu_nodes([r1()], [*REFERENCE, *mig])
    assert beside.problems == []
    assert beside.warnings == [
        "deepseek-r1: m1 exposes MIG slices (nvidia.com/gpu.product=NVIDIA-A100-SXM4-40GB-MIG-1g.5gb); keep the "
        "group on whole GPUs with nodeSelector nvidia.com/gpu.product: NVIDIA-A800-SXM4-80GB"
    ]
    bare = [node("b1", product=None), node("b2", product=None)]
    result = check_gpu_nodes([r1()], bare)
    assert result.problems == []
    assert "b1, b2 carry no nvidia.com/gpu.product label" in result.warnings[0]


def test_no_gpu_node_at_all():
    (problem,) = check_gpu_nodes([r1()], [REFERENCE[2]]).problems
    assert problem.loc == ("gpuOperator", "mode")
    assert problem.message.startswith("none of the cluster's 1 node has allocatable nvidia.com/gpu")


def test_selector_taints_readiness_and_rdma():
    tainted = [node("t1", taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}]), node("t2", ready=False)]
    (problem,) = check_gpu_nodes([r1()], tainted).problems
    assert problem.loc == ("inferenceGroups", 0, "nodeSelector")
    assert problem.message == (
        "no GPU node can take deepseek-r1's pods (t1: taint gpu=true:NoSchedule not tolerated; t2: not Ready): fix "
        "nodeSelector or tolerations, or the nodes"
    )
    tolerated = r1(tolerations=[{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}])
    assert "room for 1" in check_gpu_nodes([tolerated], tainted).problems[0].message
    selected = r1(node_selector={"pool": "a800"})
    (problem,) = check_gpu_nodes([selected], REFERENCE).problems
    assert "gpu-node-1: labels pool=<unset> do not match nodeSelector" in problem.message
    no_rdma = [node(f"n{i}", rdma=0) for i in (1, 2)]
    (problem,) = check_gpu_nodes([r1()], no_rdma).problems
    assert "has 0 rdma/ib free, a pod asks 4" in problem.message


@functools.cache
def bom_crds() -> dict[str, str]:
    """CRD name -> its YAML text, of the releases the BOM pins (parsed on demand: the prometheus-operator CRDs
    are large)."""
    out: dict[str, str] = {}
    for project, version in crds.pinned(None).items():
        for path in crds.files_for(project, version):
            text = path.read_text()
            for chunk in text.split("\n---"):
                for line in chunk.splitlines():
                    if line.startswith("  name: ") and "kind: CustomResourceDefinition" in chunk:
                        out.setdefault(line.split(":", 1)[1].strip(), chunk)
                        break
    return out


LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def crd(name: str) -> dict:
    return yaml.load(bom_crds()[name], Loader=LOADER)


def lws_crd(version: str) -> dict:
    (doc,) = crds.documents(crds.files_for("lws", version)[0])
    return doc


def test_lws_release_from_its_crd():
    assert [lws_floor(lws_crd(v)) for v in ("0.5.1", "0.7.0", "0.10.0")] == [None, "0.7.0", "0.9.0"]


def test_crd_needs_against_the_upstream_crds():
    needs = crd_needs(
        lws_present=True,
        restart_policies=["RecreateGroupAfterStart"],
        keda_present_with_autoscaling=True,
        volcano_present_with_groups=True,
        monitors_without_install=True,
    )
    assert [n.crd for n in needs][:2] == [LWS_CRD, KEDA_CRD]
    current = [lws_crd("0.10.0"), crd(KEDA_CRD), *(crd(n.crd) for n in needs[2:])]
    assert check_crds(current, needs) == []
    old = [lws_crd("0.7.0"), *current[1:]]
    (problem,) = check_crds(old, needs)
    assert problem.loc == ("lws", "mode")
    assert "does not allow spec.leaderWorkerTemplate.restartPolicy: RecreateGroupAfterStart" in problem.message
    (missing,) = check_crds([*current[2:], current[0]], needs[:2])
    assert missing.message.startswith(f"the cluster has no CRD {KEDA_CRD}, which autoscaling")


def test_keda_before_2_17_lacks_fallback_behavior():
    needs = crd_needs(lws_present=False, keda_present_with_autoscaling=True)
    # 2.17.2 (prod's pin, the first line with it) has the field, as the BOM's 2.20.2 does
    (keda_2_17,) = crds.documents(crds.files_for("keda", "2.17.2")[0])
    assert check_crds([keda_2_17], needs) == []
    keda = crd(KEDA_CRD)
    assert check_crds([keda], needs) == []
    # a release before 2.17 (v2.16.1's CRD has no spec.fallback.behavior): the field removed from the current one
    fallback = keda["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["fallback"]
    del fallback["properties"]["behavior"]
    (problem,) = check_crds([keda], needs)
    assert "has no field spec.fallback.behavior" in problem.message and "KEDA 2.17 or later" in problem.message


def test_crd_version_not_served():
    keda = crd(KEDA_CRD)
    keda["spec"]["versions"][0]["served"] = False
    (problem,) = check_crds([keda], crd_needs(lws_present=False, keda_present_with_autoscaling=True))
    assert "does not serve v1alpha1 (served: none)" in problem.message


def config_map(gang: bool) -> dict:
    body: dict[str, object] = {"apiVersion": "config.lws.x-k8s.io/v1alpha1", "kind": "Configuration"}
    if gang:
        body["gangSchedulingManagement"] = {"schedulerProvider": "volcano"}
    return {"data": {"controller_manager_config.yaml": yaml.safe_dump(body)}}


def test_lws_gang_scheduling_declared_against_the_controller():
    where = "lws-system/lws-manager-config"
    assert check_lws_gang(True, config_map(True), where).problems == []
    (off,) = check_lws_gang(True, config_map(False), where).problems
    assert off.loc == ("lws", "gangScheduling") and "scheduled pod by pod" in off.message
    (on,) = check_lws_gang(False, config_map(True), where).problems
    assert "lws#630" in on.message
    assert check_lws_gang(True, None, where).warnings


def test_server_version():
    assert check_server_version("1.30.6", {"gitVersion": "v1.30.9"}) == []
    (problem,) = check_server_version("1.30.6", {"gitVersion": "v1.36.3"})
    assert problem.loc == ("versions", "kubernetes")
    assert problem.message == (
        "is 1.30.6, but the cluster runs Kubernetes 1.36.3 (kube-apiserver /version): the schemas and add-on "
        "versions were checked for 1.30.6, not for the cluster; set versions.kubernetes to 1.36.3 (and pin add-ons "
        "that support it)"
    )


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_objects_read_back_from_a_real_api_server():
    """Nodes with GPU-feature-discovery labels, a DaemonSet pod and the CRDs cluster.sh applies, registered on a
    real kube-apiserver (v1.36.3) and read back with the kubernetes client (tests/fixtures/live/README.md)."""
    nodes, pods = fixture("nodes.json")["items"], fixture("pods.json")["items"]
    parsed = {n["metadata"]["name"]: parse_node(n) for n in nodes}
    assert sorted(parsed) == ["cpu-node-1", "gpu-node-1", "gpu-node-2", "h100-node-1", "mig-node-1"]
    assert [n for n, p in parsed.items() if p.product is not None and p.product.gpu is A800] == [
        "gpu-node-1",
        "gpu-node-2",
    ]
    assert parsed["gpu-node-1"].allocatable["memory"] == 2113289828 * 1024
    # The init container's 1 CPU outweighs the container's 250m; memory is the container's.
    assert daemonset_usage(pods) == {"gpu-node-1": {"cpu": 1, "memory": 64 * 2**20}}
    fits = check_gpu_nodes([r1()], nodes, pods)
    assert fits.problems == []
    assert [w.split(":")[1].split()[0] for w in fits.warnings] == ["mig-node-1", "h100-node-1"]
    (whole,) = check_gpu_nodes([r1(cpu="128")], nodes, pods).problems
    assert "room for 1 (gpu-node-1 has 127 cpu free, a pod asks 128)" in whole.message
    crds = fixture("crds.json")["items"]
    assert lws_floor(next(c for c in crds if c["metadata"]["name"] == LWS_CRD)) == "0.9.0"
    needs = crd_needs(
        lws_present=True,
        restart_policies=["RecreateGroupOnPodRestart"],
        keda_present_with_autoscaling=True,
        volcano_present_with_groups=True,
    )
    assert check_crds(crds, needs) == []
    version = fixture("version.json")
    assert check_server_version("1.36.3", version) == []
    assert check_server_version("1.30.6", version)[0].message.startswith(
        "is 1.30.6, but the cluster runs Kubernetes 1.36.3"
    )
