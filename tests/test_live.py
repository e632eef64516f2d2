"""Live cluster checks (live/cluster.py) against a fake cluster: missing StorageClasses, claims that exist with
another size or class, and an unreachable cluster. tests/e2e/test_live_cluster.py runs the same checks
against a real API server."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import REQUIRED_SECRETS, stack_values

from sglang_platform.config import validate
from sglang_platform.config.webui import CLAIM_NAME as WEBUI_CLAIM
from sglang_platform.live.cluster import (
    ClaimInfo,
    ClusterAccess,
    ClusterUnavailableError,
    StorageClassInfo,
    connect,
    live_problems,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "live"
# What GPU feature discovery puts on an 8 x A800 node (tests/fixtures/live/nodes.json has it as read back), with
# the driver labels of its version labeler (NVIDIA/k8s-device-plugin internal/lm): an R580 driver, which runs the
# CUDA 13 builds dev's SGLang 0.5.23 needs and prod's CUDA 12.4 one alike.
A800_LABELS = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-A800-SXM4-80GB",
    "nvidia.com/gpu.memory": "81920",
    **{
        "nvidia.com/cuda.driver-version.full": "580.95.05",
        "nvidia.com/cuda.driver-version.major": "580",
        "nvidia.com/cuda.driver-version.minor": "95",
        "nvidia.com/cuda.driver-version.revision": "05",
        "nvidia.com/cuda.driver.major": "580",
        "nvidia.com/cuda.driver.minor": "95",
        "nvidia.com/cuda.driver.rev": "05",
        "nvidia.com/cuda.runtime-version.full": "13.0",
    },
}
# The reference hosts' driver as GFD labels it (shared/reference: 550.127.05, CUDA 12.4).
R550_LABELS = {
    **A800_LABELS,
    "nvidia.com/cuda.driver-version.full": "550.127.05",
    "nvidia.com/cuda.driver-version.major": "550",
    "nvidia.com/cuda.driver-version.minor": "127",
    "nvidia.com/cuda.driver-version.revision": "05",
    "nvidia.com/cuda.driver.major": "550",
    "nvidia.com/cuda.driver.minor": "127",
    "nvidia.com/cuda.driver.rev": "05",
    "nvidia.com/cuda.runtime-version.full": "12.4",
}


def gpu_node(name: str, labels=A800_LABELS, cpu="128", memory="2000Gi", gpus="8", rdma="4", **spec) -> dict:
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        allocatable |= {"nvidia.com/gpu": gpus, "rdma/ib": rdma}
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
        "spec": spec,
        "status": {"allocatable": allocatable, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def fixture_crds() -> dict[str, dict]:
    items = json.loads((FIXTURES / "crds.json").read_text())["items"]
    return {c["metadata"]["name"]: c for c in items}


@dataclass
class FakeCluster:
    """A cluster where prod fits: four 8 x A800 nodes as prod's gpuNodes declares them, the LWS v0.10.0, KEDA
    and Volcano CRDs as a real API server returned them, no server version (not compared)."""

    classes: dict[str, StorageClassInfo] = field(default_factory=dict)
    claims: dict[tuple[str, str], ClaimInfo] = field(default_factory=dict)
    fail: Exception | None = None
    forbid_classes: bool = False
    node_objects: list[dict] = field(default_factory=lambda: [gpu_node(f"gpu-node-{i}") for i in range(1, 5)])
    pods: list[dict] = field(default_factory=list)
    crds: dict[str, dict] = field(default_factory=fixture_crds)
    config_maps: dict[tuple[str, str], dict] = field(default_factory=dict)
    server: dict = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)
    # Helm's release Secrets by (namespace, release name); Deployments by (namespace, name).
    helm_secrets: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    deployments: dict[tuple[str, str], dict] = field(default_factory=dict)

    def _read(self, what: str):
        if self.fail:
            raise self.fail
        if what in self.forbidden:
            raise PermissionError(f"not allowed to {what} (Forbidden)")

    def version(self) -> dict:
        self._read("read the server version")
        return self.server

    def storage_classes(self) -> dict[str, StorageClassInfo]:
        self._read("list StorageClasses")
        if self.forbid_classes:
            raise PermissionError("not allowed to list StorageClasses (Forbidden)")
        return self.classes

    def claim(self, namespace: str, name: str) -> ClaimInfo | None:
        return self.claims.get((namespace, name))

    def nodes(self) -> list[dict]:
        self._read("list Nodes")
        return self.node_objects

    def running_pods(self) -> list[dict]:
        self._read("list Pods")
        return self.pods

    def crd(self, name: str) -> dict | None:
        self._read(f"read CustomResourceDefinition {name}")
        return self.crds.get(name)

    def config_map(self, namespace: str, name: str) -> dict | None:
        self._read(f"read ConfigMap {namespace}/{name}")
        return self.config_maps.get((namespace, name))

    def helm_release_secrets(self, namespace: str, name: str) -> list[dict]:
        self._read(f"list the Secrets of Helm release {namespace}/{name}")
        return self.helm_secrets.get((namespace, name), [])

    def deployment(self, namespace: str, name: str) -> dict | None:
        self._read(f"read Deployment {namespace}/{name}")
        return self.deployments.get((namespace, name))


def sc(name: str, expand: bool = False) -> StorageClassInfo:
    return StorageClassInfo(name, "example.com/nfs", expand)


def pvc(ns: str, name: str, size: str, phase: str = "Bound", cls: str | None = None, modes=("ReadWriteOnce",)):
    return {(ns, name): ClaimInfo(ns, name, size, phase, cls, tuple(modes))}


def cfg(name: str, mutate=None):
    raw = copy.deepcopy(stack_values(name))
    if mutate:
        mutate(raw)
    return validate(raw, REQUIRED_SECRETS)


def messages(result) -> list[str]:
    problems, notes = result
    return sorted(f"{p.key}: {p.message}" for p in problems) + [f"note: {n}" for n in notes]


def test_a_missing_storage_class_names_the_key_and_what_the_cluster_has():
    prod = cfg("prod")
    cluster = FakeCluster({"standard": sc("standard"), "local-path": sc("local-path")})
    assert messages(live_problems(prod, cluster)) == [
        "sglang-platform:openWebui.persistence.storageClass: StorageClass 'nfs-client' does not exist in the "
        "cluster (it has: local-path, standard)"
    ]
    assert messages(live_problems(prod, FakeCluster({"nfs-client": sc("nfs-client")}))) == []


def test_every_class_a_claim_names_is_checked():
    def mutate(raw):
        raw["inferenceGroups"][0]["modelVolume"]["pvc"]["storageClass"] = "fast-rwx"
        raw["monitoring"]["prometheus"]["storageClass"] = "ssd"

    assert messages(live_problems(cfg("dev", mutate), FakeCluster())) == [
        "sglang-platform:inferenceGroups[0].modelVolume.pvc.storageClass: StorageClass 'fast-rwx' does not exist "
        "in the cluster (it has: none)",
        "sglang-platform:monitoring.prometheus.storageClass: StorageClass 'ssd' does not exist in the cluster "
        "(it has: none)",
    ]


def test_an_unchanged_claim_passes():
    claims = pvc("sglang-dev", "models", "20Gi", modes=("ReadWriteMany",)) | pvc("sglang-dev", WEBUI_CLAIM, "5Gi")
    assert messages(live_problems(cfg("dev"), FakeCluster(claims=claims))) == []


def test_a_claim_never_shrinks():
    claims = pvc("sglang-dev", "models", "30Gi", modes=("ReadWriteMany",))
    assert messages(live_problems(cfg("dev"), FakeCluster(claims=claims))) == [
        "sglang-platform:inferenceGroups[0].modelVolume.pvc.size: claim sglang-dev/models exists with 30Gi, and "
        "Kubernetes never shrinks a claim: set 30Gi back, or move the data to a new claim (another name) or "
        "delete this one with its data"
    ]


def test_a_claim_grows_only_bound_and_on_a_class_that_expands():
    def grow(raw):
        raw["openWebui"]["persistence"]["size"] = "8Gi"

    dev = cfg("dev", grow)
    pending = pvc("sglang-dev", WEBUI_CLAIM, "5Gi", phase="Pending")
    assert messages(live_problems(dev, FakeCluster(claims=pending))) == [
        "sglang-platform:openWebui.persistence.size: claim sglang-dev/open-webui-data exists with 5Gi; it is "
        "Pending, and the API server lets only a bound claim change its size (spec is immutable otherwise): keep "
        "5Gi until it is Bound"
    ]
    classless = pvc("sglang-dev", WEBUI_CLAIM, "5Gi")
    assert messages(live_problems(dev, FakeCluster(claims=classless))) == [
        "sglang-platform:openWebui.persistence.size: claim sglang-dev/open-webui-data exists with 5Gi and no "
        "StorageClass; only a claim of a StorageClass with allowVolumeExpansion can grow: keep 5Gi, or move the "
        "data to a new claim (another name) or delete this one with its data"
    ]
    fixed = pvc("sglang-dev", WEBUI_CLAIM, "5Gi", cls="standard")
    assert messages(live_problems(dev, FakeCluster({"standard": sc("standard")}, fixed))) == [
        "sglang-platform:openWebui.persistence.size: claim sglang-dev/open-webui-data exists with 5Gi; its "
        "StorageClass 'standard' does not allow volume expansion (allowVolumeExpansion is not true): keep 5Gi, or "
        "have the cluster's admins set allowVolumeExpansion: true on it (its volume driver must support resizing)"
    ]
    # Bound, on a class that expands: an in-place update of the claim, no problem.
    assert messages(live_problems(dev, FakeCluster({"standard": sc("standard", expand=True)}, fixed))) == []


def test_a_claim_keeps_its_class_and_access_modes():
    def mutate(raw):
        raw["inferenceGroups"][0]["modelVolume"]["pvc"] |= {"storageClass": "fast", "accessMode": "ReadWriteOnce"}

    claims = pvc("sglang-dev", "models", "20Gi", cls="standard", modes=("ReadWriteMany",))
    cluster = FakeCluster({"fast": sc("fast"), "standard": sc("standard")}, claims)
    assert messages(live_problems(cfg("dev", mutate), cluster)) == [
        "sglang-platform:inferenceGroups[0].modelVolume.pvc.accessMode: claim sglang-dev/models exists with access "
        "modes ReadWriteMany; they cannot change: keep ReadWriteMany, or move the data to a new claim (another "
        "name) or delete this one with its data",
        "sglang-platform:inferenceGroups[0].modelVolume.pvc.storageClass: claim sglang-dev/models exists with "
        "StorageClass 'standard'; the StorageClass of a claim cannot change: set 'standard' back, or move the data "
        "to a new claim (another name) or delete this one with its data",
    ]


def test_an_unreachable_cluster_is_a_note_not_an_error():
    cluster = FakeCluster(fail=ClusterUnavailableError("cannot reach the cluster (refused)"))
    assert messages(live_problems(cfg("prod"), cluster)) == [
        "note: live cluster checks skipped (server version, StorageClasses, existing claims, GPU nodes, add-on "
        "CRDs, Helm releases): cannot reach the cluster (refused). "
        "They run at preview once the Kubernetes provider's cluster is reachable"
    ]
    forbidden = FakeCluster(forbid_classes=True)
    assert messages(live_problems(cfg("prod"), forbidden)) == [
        "note: live check of StorageClasses skipped: not allowed to list StorageClasses (Forbidden)"
    ]


def test_the_real_client_without_a_kubeconfig_or_a_server(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    _, notes = live_problems(cfg("dev"))
    assert len(notes) == 1 and notes[0].startswith(
        "live cluster checks skipped (server version, StorageClasses, existing claims, GPU nodes, add-on CRDs, "
        "Helm releases): no usable kubeconfig"
    )
    try:
        connect()
    except ClusterUnavailableError as exc:
        assert str(exc).startswith("no usable kubeconfig")
    # A server that refuses connections (loopback port 1): a note, at once.
    kubeconfig = (
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n"
        "users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
        "current-context: x\n"
    )
    _, notes = live_problems(cfg("dev"), access=ClusterAccess(kubeconfig=kubeconfig))
    assert notes == [
        "live cluster checks skipped (server version, StorageClasses, existing claims, GPU nodes, add-on CRDs, "
        "Helm releases): cannot reach the cluster to read the server version (NewConnectionError: "
        "HTTPSConnection(host='127.0.0.1', port=1): Failed to establish a new connection: [Errno 111] Connection "
        "refused). They run at preview once the Kubernetes provider's cluster is reachable"
    ]


def test_the_ui_claim_name_is_the_one_the_component_creates(dev):
    assert dev.k8s_object("PersistentVolumeClaim", WEBUI_CLAIM)["spec"]["accessModes"] == ["ReadWriteOnce"]


# --- the rules of rules/cluster.py, wired: what each stack gets from a cluster ---------------------------

H200_LABELS = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-H200",
    "nvidia.com/gpu.memory": "143771",
    "nvidia.com/cuda.driver-version.full": "580.95.05",
}
NFS = {"nfs-client": StorageClassInfo("nfs-client", "example.com/nfs", True)}


def test_a_cluster_where_everything_fits_passes_every_stack():
    assert messages(live_problems(cfg("prod"), FakeCluster(NFS))) == []
    assert messages(live_problems(cfg("dev"), FakeCluster())) == []
    h200 = [gpu_node(f"h200-{i}", H200_LABELS, cpu="112", memory="1800Gi") for i in (1, 2)]
    assert messages(live_problems(cfg("pd-h200"), FakeCluster(node_objects=h200))) == []


def test_another_kubernetes_minor_than_versions_kubernetes_is_an_error():
    assert messages(live_problems(cfg("prod"), FakeCluster(NFS, server={"gitVersion": "v1.36.3"}))) == [
        "sglang-platform:versions.kubernetes: is 1.30.6, but the cluster runs Kubernetes 1.36.3 (kube-apiserver "
        "/version): the schemas and add-on versions were checked for 1.30.6, not for the cluster; set "
        "versions.kubernetes to 1.36.3 (and pin add-ons that support it)"
    ]
    # Another patch release of the same minor is the same cluster for every rule.
    assert messages(live_problems(cfg("prod"), FakeCluster(NFS, server={"gitVersion": "v1.30.14"}))) == []


def test_room_is_refused_at_replicas_and_a_note_at_max_replicas():
    two = [gpu_node("gpu-node-1"), gpu_node("gpu-node-2")]
    # The reference's two nodes: prod's group pods leave room for the benchmark Job beside one of them.
    assert messages(live_problems(cfg("prod"), FakeCluster(NFS, node_objects=two))) == [
        "note: deepseek-r1: autoscaling.maxReplicas 2 needs 2 more pods of whole GPU nodes, and the cluster has room "
        "for 0: scale-ups beyond that wait for nodes",
    ]

    def daemon(node: str, cpu: str) -> dict[str, Any]:
        return {
            "metadata": {"ownerReferences": [{"kind": "DaemonSet", "name": "calico-node"}]},
            "spec": {"nodeName": node, "containers": [{"resources": {"requests": {"cpu": cpu}}}]},
            "status": {"phase": "Running"},
        }

    # DaemonSet pods already on the nodes take room first (a CNI's, 3 CPUs here): the group still fits, and the
    # benchmark Job, which must run where the weights are, does not.
    three = [daemon("gpu-node-1", "3"), daemon("gpu-node-2", "3")]
    assert messages(live_problems(cfg("prod"), FakeCluster(NFS, node_objects=two, pods=three))) == [
        "note: deepseek-r1: autoscaling.maxReplicas 2 needs 2 more pods of whole GPU nodes, and the cluster has room "
        "for 0: scale-ups beyond that wait for nodes",
        "note: deepseek-r1: its benchmark Job asks 2 cpu and 4Gi on a node that holds the weights, and with the "
        "groups at replicas they have room for 0 (gpu-node-1 has 1 cpu free, a pod asks 2; gpu-node-2 has 1 cpu "
        "free, a pod asks 2): it stays Pending (and the SLO unmeasured) until a node has room; leave it room "
        "(gpuNodes.reserved, the groups' resources) or a node without a group",
    ]
    # One that leaves less than a group pod asks on one node: the group cannot run at minReplicas.
    assert messages(
        live_problems(cfg("prod"), FakeCluster(NFS, node_objects=two, pods=[daemon("gpu-node-1", "5")]))
    ) == [
        "sglang-platform:inferenceGroups[0].autoscaling.minReplicas: deepseek-r1 needs 2 pods (1 x 2) on the GPU "
        "nodes it may use, and they have room for 1 (gpu-node-1 has 123 cpu free, a pod asks 124): add GPU nodes, "
        "lower replicas, or lower the pod's requests"
    ]


def test_prod_pods_need_the_labels_the_weights_staging_selects():
    """prod stages its weights per node: its pods select nvidia.com/gpu.present=true, as the DaemonSet does."""
    unlabelled = [gpu_node(f"gpu-node-{i}", {"nvidia.com/gpu.product": "NVIDIA-A800-SXM4-80GB"}) for i in (1, 2)]
    assert messages(live_problems(cfg("prod"), FakeCluster(NFS, node_objects=unlabelled))) == [
        "sglang-platform:inferenceGroups[0].nodeSelector: no GPU node can take deepseek-r1's pods (gpu-node-1: labels "
        "nvidia.com/gpu.present=<unset> do not match nodeSelector; gpu-node-2: labels nvidia.com/gpu.present=<unset> "
        "do not match nodeSelector): fix nodeSelector or tolerations, or the nodes"
    ]


def test_each_role_of_a_disaggregated_service_is_checked_on_its_own():
    pd = cfg("pd-h200")
    one = [gpu_node("h200-1", H200_LABELS, cpu="112", memory="1800Gi")]
    # The roles take room in stack order: prefill gets the node, decode finds none left.
    assert messages(live_problems(pd, FakeCluster(node_objects=one))) == [
        "sglang-platform:inferenceGroups[0].replicas: deepseek-r1-decode needs 1 pod (1 x 1) on the GPU nodes it may "
        "use, and they have room for 0 (h200-1 has 16 cpu free, a pod asks 96): add GPU nodes, lower replicas, or "
        "lower the pod's requests"
    ]
    a800 = [gpu_node("a800-1"), gpu_node("a800-2")]
    assert messages(live_problems(pd, FakeCluster(node_objects=a800))) == [
        f"sglang-platform:inferenceGroups[0].nodeSelector: no GPU node can take deepseek-r1-{role}'s pods (a800-1: "
        "labels nvidia.com/gpu.product=NVIDIA-A800-SXM4-80GB do not match nodeSelector; a800-2: labels "
        "nvidia.com/gpu.product=NVIDIA-A800-SXM4-80GB do not match nodeSelector): fix nodeSelector or tolerations, "
        "or the nodes"
        for role in ("decode", "prefill")
    ]


def test_no_gpus_yet_is_a_note_when_the_stack_installs_the_gpu_operator():
    cpu_only = [gpu_node(f"node-{i}", {}, gpus="") for i in (1, 2)]
    assert messages(live_problems(cfg("prod"), FakeCluster(NFS, node_objects=cpu_only))) == [
        "note: live check of the GPU nodes skipped: no node advertises nvidia.com/gpu yet, and this stack installs "
        "the GPU Operator, whose device plugin advertises them; the check runs at the next preview"
    ]
    present = cfg("prod", lambda raw: raw["gpuOperator"].update(mode="present"))
    assert messages(live_problems(present, FakeCluster(NFS, node_objects=cpu_only))) == [
        "sglang-platform:gpuOperator.mode: none of the cluster's 2 nodes has allocatable nvidia.com/gpu: the GPU "
        "Operator's device plugin advertises GPUs; is it running, and are the GPU nodes joined?"
    ]


def trusting_the_cluster(raw):
    raw["lws"] = {"mode": "present", "gangScheduling": True}
    raw["keda"]["mode"] = "present"
    raw["volcano"]["mode"] = "present"


LWS_CONFIG = ("lws-system", "lws-manager-config")


def lws_config(gang: bool) -> dict:
    text = "apiVersion: config.lws.x-k8s.io/v1alpha1\nkind: Configuration\n"
    if gang:
        text += "gangSchedulingManagement:\n  schedulerProvider: volcano\n"
    return {"data": {"controller_manager_config.yaml": text}}


def test_add_ons_the_cluster_runs_are_checked_by_their_crds_and_config():
    prod = cfg("prod", trusting_the_cluster)
    gang = {LWS_CONFIG: lws_config(gang=True)}
    assert messages(live_problems(prod, FakeCluster(NFS, config_maps=gang))) == []
    assert messages(live_problems(prod, FakeCluster(NFS, crds={}, config_maps=gang))) == [
        "sglang-platform:keda.mode: the cluster has no CRD scaledobjects.keda.sh, which autoscaling (a ScaledObject "
        "per group) needs: KEDA 2.17 or later (fallback.behavior), or keda.mode install",
        "sglang-platform:lws.mode: the cluster has no CRD leaderworkersets.leaderworkerset.x-k8s.io, which every "
        "inference group (a LeaderWorkerSet) needs: install LWS 0.10.0 (lws.mode install) or upgrade the cluster's",
        "sglang-platform:volcano.mode: the cluster has no CRD podgroups.scheduling.volcano.sh, which scheduler "
        "volcano and the inference Queue needs",
        "sglang-platform:volcano.mode: the cluster has no CRD queues.scheduling.volcano.sh, which scheduler volcano "
        "and the inference Queue needs",
    ]
    assert messages(live_problems(prod, FakeCluster(NFS, config_maps={LWS_CONFIG: lws_config(gang=False)}))) == [
        "sglang-platform:lws.gangScheduling: true, but the cluster's LWS controller runs without "
        "gangSchedulingManagement.schedulerProvider: volcano (ConfigMap lws-system/lws-manager-config), so groups "
        "would be scheduled pod by pod: configure the controller, or set lws.gangScheduling to false"
    ]
    assert messages(live_problems(prod, FakeCluster(NFS))) == [
        "note: could not read the LWS controller's config (ConfigMap lws-system/lws-manager-config): gang "
        "scheduling not verified"
    ]


def test_an_lws_crd_older_than_gang_scheduling_is_refused():
    crds = fixture_crds()
    spec = crds["leaderworkersets.leaderworkerset.x-k8s.io"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = spec["properties"]["spec"]["properties"]
    # What LWS 0.6.x serves: no partition (0.7.0), no volumeClaimTemplates (0.8.0), no RecreateGroupAfterStart.
    del spec["rolloutStrategy"]["properties"]["rollingUpdateConfiguration"]["properties"]["partition"]
    del spec["leaderWorkerTemplate"]["properties"]["volumeClaimTemplates"]
    spec["leaderWorkerTemplate"]["properties"]["restartPolicy"]["enum"] = ["Default", "RecreateGroupOnPodRestart"]
    cluster = FakeCluster(NFS, crds=crds, config_maps={LWS_CONFIG: lws_config(gang=True)})
    assert messages(live_problems(cfg("prod", trusting_the_cluster), cluster)) == [
        "sglang-platform:lws.gangScheduling: true, but the cluster's LeaderWorkerSet CRD is of a release older than "
        "0.7.0 (at least 0.6.0), which has no gang scheduling: upgrade LWS to 0.7.0 or later, or set "
        "lws.gangScheduling to false"
    ]


def test_a_scaled_object_crd_without_the_fields_the_autoscaler_sets_is_refused():
    crds = fixture_crds()
    schema = crds["scaledobjects.keda.sh"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    del schema["properties"]["spec"]["properties"]["fallback"]["properties"]["behavior"]
    cluster = FakeCluster(NFS, crds=crds, config_maps={LWS_CONFIG: lws_config(gang=True)})
    assert messages(live_problems(cfg("prod", trusting_the_cluster), cluster)) == [
        "sglang-platform:keda.mode: CRD scaledobjects.keda.sh v1alpha1 has no field spec.fallback.behavior, which "
        "autoscaling (a ScaledObject per group) uses: the installed release is older than the stack expects: KEDA "
        "2.17 or later (fallback.behavior), or keda.mode install"
    ]


def test_a_read_the_credentials_may_not_make_skips_that_check_only():
    cluster = FakeCluster(NFS, forbidden={"list Pods", "read ConfigMap lws-system/lws-manager-config"})
    assert messages(live_problems(cfg("prod", trusting_the_cluster), cluster)) == [
        "note: live check of the DaemonSet pods on the GPU nodes (their room is taken as free) skipped: not "
        "allowed to list Pods (Forbidden)",
        "note: live check of the LWS controller's ConfigMap lws-system/lws-manager-config skipped: not allowed to "
        "read ConfigMap lws-system/lws-manager-config (Forbidden)",
    ]
    nodes = FakeCluster(NFS, forbidden={"list Nodes"})
    assert messages(live_problems(cfg("prod"), nodes)) == [
        "note: live check of Nodes skipped: not allowed to list Nodes (Forbidden)"
    ]


def test_the_client_is_loaded_without_its_api_and_model_classes(tmp_path):
    """live.cluster reads through the client's kubeconfig loader and REST client only: the generated API and
    model classes (0.3 s to import) stay unloaded, in the program's process."""
    import subprocess
    import sys

    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n"
        "users:\n- name: u\n  user: {token: secret-token}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
        "current-context: x\n"
    )
    code = (
        "import sys\n"
        "from sglang_platform.live.cluster import ClusterAccess, connect\n"
        f"cluster = connect(ClusterAccess(kubeconfig={str(kubeconfig)!r}))\n"
        "conf = cluster._configuration\n"
        "assert conf.host == 'https://127.0.0.1:1', conf.host\n"
        "assert conf.auth_settings()['BearerToken']['value'] == 'Bearer secret-token'\n"
        "loaded = [m for m in sys.modules if m.startswith(('kubernetes.client.models', 'kubernetes.client.api'))]\n"
        "assert loaded == [], loaded\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_without_the_kubernetes_client_the_checks_are_a_note():
    """kubernetes is an optional dependency of the package ([live]): another team's program without it previews
    with a note."""
    import subprocess
    import sys

    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'kubernetes' else real(name, *a)\n"
        "from sglang_platform.live.cluster import live_problems\n"
        "from tests.test_live import cfg\n"
        "print(live_problems(cfg('dev'))[1])\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {"PYTHONPATH": f"{root}:{root / 'tests'}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60, env=env)
    assert "the kubernetes client is not installed" in proc.stdout, proc.stderr


# --- the NVIDIA driver of the GPU nodes against the image's CUDA build ------------------------------------------------

CUDA13 = "lmsysorg/sglang:v0.5.23-cu130 is a CUDA 13.0 build, which needs NVIDIA driver 580.65.06 or newer"


def test_nodes_whose_driver_is_too_old_for_the_image_are_refused():
    """dev runs the current set's 0.5.23 (CUDA 13) with the GPU Operator already on the cluster: on nodes GFD labels
    with the reference's 550 driver its pods could not start; preview says so, with what the driver can run."""
    old = [gpu_node(f"gpu-node-{i}", R550_LABELS) for i in (1, 2)]
    assert messages(live_problems(cfg("dev"), FakeCluster(node_objects=old))) == [
        f"sglang-platform:versions.sglangImage: {CUDA13} (NVIDIA CUDA Toolkit release notes, 'CUDA Toolkit and "
        "Corresponding Driver Versions'), and the GPU nodes qwen-small may use run older ones "
        "(nvidia.com/cuda.driver-version.full: gpu-node-1 550.127.05, gpu-node-2 550.127.05): with driver 550 (CUDA "
        "12.4 at most) pin a -cu124 image: lmsysorg/sglang:v0.4.7-cu124 (the newest SGLang release seen with a CUDA "
        "12.4 build); or upgrade their driver to 580.65.06 or newer"
    ]
    # Such nodes run prod's CUDA 12.4 build.
    reference = [gpu_node(f"gpu-node-{i}", R550_LABELS) for i in range(1, 5)]
    assert messages(live_problems(cfg("prod"), FakeCluster(NFS, node_objects=reference))) == []


def test_only_the_driver_label_parts_are_enough_and_older_spellings_count():
    parts = {k: v for k, v in R550_LABELS.items() if k != "nvidia.com/cuda.driver-version.full"}
    legacy = {k: v for k, v in parts.items() if not k.startswith("nvidia.com/cuda.driver-version.")}
    for labels in (parts, legacy):
        problems, _ = live_problems(cfg("dev"), FakeCluster(node_objects=[gpu_node("gpu-node-1", labels)]))
        assert [p.key for p in problems] == ["sglang-platform:versions.sglangImage"], labels


def test_some_nodes_too_old_is_a_warning_and_the_group_goes_to_the_others():
    mixed = [gpu_node("gpu-node-1", R550_LABELS), gpu_node("gpu-node-2")]
    assert messages(live_problems(cfg("dev"), FakeCluster(node_objects=mixed))) == [
        "note: qwen-small: gpu-node-1 550.127.05 runs an NVIDIA driver older than 580.65.06, which "
        "lmsysorg/sglang:v0.5.23-cu130 (CUDA 13.0) needs: its pods fail there; keep the group off it (nodeSelector on "
        "nvidia.com/cuda.driver-version.major, or a taint)"
    ]


def test_nodes_without_the_driver_label_are_a_warning():
    bare = {k: v for k, v in A800_LABELS.items() if not k.startswith("nvidia.com/cuda.")}
    assert messages(live_problems(cfg("dev"), FakeCluster(node_objects=[gpu_node("gpu-node-1", bare)]))) == [
        "note: qwen-small: gpu-node-1 carries no nvidia.com/cuda.driver-version.full label (GPU feature discovery not "
        "running): its NVIDIA driver was not checked against lmsysorg/sglang:v0.5.23-cu130 (needs 580.65.06)"
    ]


def test_an_old_driver_is_a_warning_when_compatibility_refusals_are_off():
    old = [gpu_node("gpu-node-1", R550_LABELS)]
    problems, notes = live_problems(
        cfg("dev", lambda v: v.update(preflight={"compatibility": False})), FakeCluster(node_objects=old)
    )
    assert problems == []
    assert [n for n in notes if CUDA13 in n and n.endswith("(not refused: preflight.compatibility is false)")]


def test_a_driver_the_stack_installs_is_not_the_nodes_to_check():
    """With the GPU Operator managing the driver, the nodes' current labels say nothing of the driver it installs
    (rules.drivers checks that one offline)."""

    def managed(values):
        values["gpuOperator"] = {"mode": "install"}

    old = [gpu_node("gpu-node-1", R550_LABELS)]
    problems, _ = live_problems(cfg("dev", managed), FakeCluster(node_objects=old))
    assert problems == []
