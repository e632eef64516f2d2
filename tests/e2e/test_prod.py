"""The prod stack (the reference topology: DeepSeek-R1 on 2 x 8 GPUs, all add-ons installed) on the real engine."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT, stack_values

from tools.engine import Project
from tools.sim_stacks import NFS_CLIENT, SECRETS, SIM, describe, merged, overrides

from .scenario import (
    changed_paths,
    deployment_ready,
    diff_kinds,
    not_a_server_error,
    render,
    render_and_reality,
    rendered_spec,
    running_on_distinct_nodes,
    type_and_name,
)

STACK = "prod"
NS = "deepseek"
GROUP = "deepseek-r1"
# One group is two whole 8-GPU nodes (128 CPU, 1Ti, 4 rdma/ib per pod); a third node for the rest. The class-less
# pool serves Grafana's claim; NFS_CLIENT adds StorageClass nfs-client and two volumes of it for the UI's claim.
SIM_OPTIONS = SIM["prod"]


@pytest.fixture(scope="module")
def project(cluster, workdir) -> Project:
    return Project.copy(cluster, ROOT, workdir / "project", STACK)


def test_preview_refuses_a_storage_class_the_cluster_lacks(project, engine, steps):
    project.init({"chartMirror": str(engine.charts)}, SECRETS[STACK])
    preview = project.preview(check=False)
    assert preview.result.returncode != 0
    assert (
        "sglang-platform:openWebui.persistence.storageClass: StorageClass 'nfs-client' does not exist in the "
        "cluster (it has: none)" in preview.error_text
    )
    not_a_server_error(preview.error_text)
    steps.done.add("init")


def test_preview_of_the_committed_stack_resolves_the_real_charts(project, cluster, engine, steps):
    steps.need("init")
    cluster.apply(NFS_CLIENT)
    preview = project.preview()
    assert {s["op"] for s in preview.steps} == {"create"}
    planned = {type_and_name(s["urn"]) for s in preview.steps}
    assert planned - {(r.type, r.name) for r in render(project).resources} == {
        ("pulumi:pulumi:Stack", f"sglang-platform-{STACK}"),
    }
    charts = {
        s["urn"].rsplit("::", 1)[1]: s["newState"]["inputs"]["chart"]
        for s in preview.steps
        if s["urn"].split("::")[2].endswith("helm.sh/v3:Release")
    }
    assert charts == {
        "gpu-operator-release": str(engine.charts / "gpu-operator-v24.9.1"),
        "volcano-release": str(engine.charts / "volcano-1.9.0"),
        "lws-release": str(engine.charts / "lws-0.10.0"),
        "keda-release": str(engine.charts / "keda-2.20.2"),
        "monitoring-kube-prometheus-stack": str(engine.charts / "kube-prometheus-stack-88.3.0"),
    }
    steps.done.add("preview")


def test_up_on_simulated_gpu_nodes(project, engine, steps):
    steps.need("preview")
    print("e2e overrides of the committed prod stack:", *describe(STACK), sep="\n  ")
    project.write_values(merged(stack_values(STACK), overrides(STACK, engine.charts)))
    project.pulumi("up", "--yes", "--skip-preview")
    steps.done.add("up")


def test_render_and_reality_agree(project, cluster, steps):
    steps.need("up")
    count, problems = render_and_reality(project, cluster)
    assert problems == []
    assert count >= 20


def test_the_group_spans_two_nodes_and_the_ui_is_ready(project, cluster, steps):
    steps.need("up")
    placement = running_on_distinct_nodes(cluster, NS, GROUP, size=2)
    assert list(placement) == ["0"]
    cluster.wait_for("Open WebUI ready", lambda: deployment_ready(cluster, NS, "open-webui"))
    claim = cluster.get("pvc", "open-webui-data", "-n", NS)
    assert (claim["spec"]["storageClassName"], claim["status"]["phase"]) == ("nfs-client", "Bound")


def test_outputs_are_what_the_readme_says(project, steps):
    steps.need("up")
    deployed = {"status": "deployed"}
    assert project.outputs() == {
        "namespace": NS,
        "inferenceGroups": {
            GROUP: {
                "baseUrl": f"http://{GROUP}-api.{NS}.svc.cluster.local:8000/v1",
                "servedModelName": "deepseek-r1",
                "service": f"{GROUP}-api",
            }
        },
        "openWebui": {"service": "open-webui", "url": f"http://open-webui.{NS}.svc.cluster.local:3000"},
        "monitoring": {
            "namespace": "monitoring",
            "prometheusUrl": "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
            "grafanaService": "kube-prometheus-stack-grafana",
        },
        "addons": {
            "gpuOperator": {"mode": "install", "release": "gpu-operator", "namespace": "gpu-operator"} | deployed,
            "volcano": {"mode": "install", "release": "volcano", "namespace": "volcano-system", "queue": "inference"}
            | deployed,
            "lws": {"mode": "present", "gangScheduling": True},
            "keda": {"mode": "install", "release": "keda", "namespace": "keda"} | deployed,
        },
    }


def test_a_second_preview_changes_nothing(project, steps):
    steps.need("up")
    assert project.preview().changed() == {}
    steps.done.add("steady")


def test_max_replicas_the_queue_cannot_hold_is_refused_and_a_smaller_one_is_a_diff(project, steps):
    steps.need("steady")
    project.set_path("inferenceGroups[0].autoscaling.maxReplicas", 3)
    try:
        refused = project.preview(check=False)
        project.set_path("inferenceGroups[0].autoscaling.maxReplicas", 1)
        changed = project.preview().changed()
    finally:
        project.set_path("inferenceGroups[0].autoscaling.maxReplicas", 2)
    assert refused.result.returncode != 0
    assert (
        "sglang-platform:volcano.queue.capability: nvidia.com/gpu 32 is less than the groups in the queue need: "
        "deepseek-r1 (3 autoscaling.maxReplicas + 0 surge) x 2 pods x 8; in all 48." in refused.error_text
    )
    not_a_server_error(refused.error_text)
    assert list(changed) == [f"{GROUP}-autoscaler-scaledobject"]
    assert diff_kinds(changed[f"{GROUP}-autoscaler-scaledobject"]) == {"spec.maxReplicaCount": "update"}


def test_a_new_sglang_image_changes_only_the_group_pods_images(project, steps):
    steps.need("steady")
    image = "lmsysorg/sglang:v0.4.3.post2-cu125"
    before = rendered_spec(project, "LeaderWorkerSet", GROUP, {})
    after = rendered_spec(project, "LeaderWorkerSet", GROUP, {"versions": {"sglangImage": image}})
    project.set_path("versions.sglangImage", image)
    try:
        changed = project.preview().changed()
    finally:
        project.pulumi("config", "rm", "sglang-platform:versions")
    assert list(changed) == [f"{GROUP}-lws"]
    diff = set(diff_kinds(changed[f"{GROUP}-lws"]))
    assert diff == changed_paths(before, after)
    assert diff and all(path.endswith(".image") for path in diff)
    assert {p.split(".")[2] for p in diff} == {"leaderTemplate", "workerTemplate"}


def test_a_claim_grows_in_place_on_a_class_that_expands(project, steps):
    steps.need("steady")
    before = yaml.safe_load(project.stack_file.read_text())
    project.set_path("openWebui.persistence.size", "120Gi")
    try:
        changed = project.preview().changed()
        project.set_path("openWebui.persistence.size", "80Gi")
        shrink = project.preview(check=False)
    finally:
        project.stack_file.write_text(yaml.safe_dump(before, sort_keys=False))
    assert list(changed) == ["open-webui-data"]
    assert changed["open-webui-data"]["op"] == "update"
    assert diff_kinds(changed["open-webui-data"]) == {"spec.resources.requests.storage": "update"}
    assert shrink.result.returncode != 0
    assert (
        "sglang-platform:openWebui.persistence.size: claim deepseek/open-webui-data exists with 100Gi, and "
        "Kubernetes never shrinks a claim: set 100Gi back" in shrink.error_text
    )
    not_a_server_error(shrink.error_text)


def test_refresh_finds_no_drift(project, steps):
    steps.need("steady")
    changes, drifted = project.refresh()
    assert drifted == {}
    assert set(changes) == {"same"}
    assert project.preview().changed() == {}


def test_destroy_then_up_adopts_the_kept_namespace_and_claim(project, cluster, steps):
    steps.need("steady")
    project.pulumi("destroy", "--yes", "--skip-preview")
    assert cluster.get("namespace", NS)["status"]["phase"] == "Active"
    claims = cluster.get("pvc", "-n", NS)["items"]
    assert [(c["metadata"]["name"], c["status"]["phase"]) for c in claims] == [("open-webui-data", "Bound")]
    project.pulumi("up", "--yes", "--skip-preview")
    running_on_distinct_nodes(cluster, NS, GROUP, size=2)
    _, problems = render_and_reality(project, cluster)
    assert problems == []
    assert project.preview().changed() == {}
