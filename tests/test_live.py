"""Live cluster checks (config/live.py) against a fake cluster: missing StorageClasses, claims that exist with
another size or class, and an unreachable cluster. tests/e2e/test_live_cluster.py runs the same checks
against a real API server."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from conftest import REQUIRED_SECRETS, stack_values

from config import validate
from config.live import (
    WEBUI_CLAIM,
    ClaimInfo,
    ClusterAccess,
    ClusterUnavailableError,
    StorageClassInfo,
    connect,
    live_problems,
)


@dataclass
class FakeCluster:
    classes: dict[str, StorageClassInfo] = field(default_factory=dict)
    claims: dict[tuple[str, str], ClaimInfo] = field(default_factory=dict)
    fail: Exception | None = None
    forbid_classes: bool = False

    def storage_classes(self) -> dict[str, StorageClassInfo]:
        if self.fail:
            raise self.fail
        if self.forbid_classes:
            raise PermissionError("not allowed to list StorageClasses (Forbidden)")
        return self.classes

    def claim(self, namespace: str, name: str) -> ClaimInfo | None:
        return self.claims.get((namespace, name))


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
        "note: live cluster checks skipped (StorageClasses, existing claims): cannot reach the cluster (refused). "
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
    assert len(notes) == 1 and notes[0].startswith("live cluster checks skipped (StorageClasses, existing claims): ")
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
        "live cluster checks skipped (StorageClasses, existing claims): cannot reach the cluster to list "
        "StorageClasses (NewConnectionError: HTTPSConnection(host='127.0.0.1', port=1): Failed to establish a new "
        "connection: [Errno 111] Connection refused). They run at preview once the Kubernetes provider's cluster "
        "is reachable"
    ]


def test_the_ui_claim_name_is_the_one_the_component_creates(dev):
    assert dev.k8s_object("PersistentVolumeClaim", WEBUI_CLAIM)["spec"]["accessModes"] == ["ReadWriteOnce"]
