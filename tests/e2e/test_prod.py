"""The prod stack (the reference topology: DeepSeek-R1 on 2 x 8 GPUs, all add-ons installed) on the real engine."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT, stack_values

from tools.engine import Project
from tools.sim_stacks import NFS_CLIENT, SECRETS, SIM, describe, merged, overrides

from .scenario import (
    can_i,
    changed_paths,
    daemon_set_on_gpu_nodes,
    deployment_ready,
    diff_kinds,
    gateway_discovery,
    group_pods,
    not_a_server_error,
    planned_charts,
    plans_exactly_the_render,
    render_and_reality,
    rendered_spec,
    running_on_distinct_nodes,
)

STACK = "prod"
NS = "deepseek"
GROUP = "deepseek-r1"
GATEWAY = f"{GROUP}-gateway"
# One group is two whole 8-GPU nodes (128 CPU, 1Ti, 4 rdma/ib per pod); a third node for the rest. The class-less
# pool serves Grafana's claim; NFS_CLIENT adds StorageClass nfs-client and two volumes of it for the UI's claim.
SIM_OPTIONS = SIM["prod"]


@pytest.fixture(scope="module")
def project(cluster, workdir) -> Project:
    return Project.copy(cluster, ROOT, workdir / "project", STACK)


def test_preview_refuses_a_storage_class_the_cluster_lacks(project, engine, steps):
    project.init(merged(stack_values(STACK), overrides(STACK, engine.charts, preview_only=True)), SECRETS[STACK])
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
    plans_exactly_the_render(project, preview)
    assert planned_charts(preview) == {
        "gpu-operator-release": str(engine.charts / "gpu-operator-v24.9.1"),
        "volcano-release": str(engine.charts / "volcano-1.10.2"),
        "lws-release": str(engine.charts / "lws-0.10.0"),
        "keda-release": str(engine.charts / "keda-2.17.2"),
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


def test_the_weights_are_staged_on_every_gpu_node(project, cluster, steps):
    """prod's weights live on each node's disk (hostPath): the staging DaemonSet runs on every node the GPU
    Operator labels nvidia.com/gpu.present=true (all three simulated nodes), and the group's pods select those."""
    steps.need("up")
    assert daemon_set_on_gpu_nodes(cluster, NS, f"{GROUP}-weights") == ["gpu-node-0", "gpu-node-1", "gpu-node-2"]
    for pods in group_pods(cluster, NS, GROUP).values():
        for pod in pods:
            assert pod["spec"]["nodeSelector"]["nvidia.com/gpu.present"] == "true"
            assert "wait-for-weights" in [c["name"] for c in pod["spec"].get("initContainers") or []]


def test_the_gateway_finds_the_leader_through_the_real_api_server(project, cluster, steps):
    steps.need("up")
    running_on_distinct_nodes(cluster, NS, GROUP, size=2)
    assert gateway_discovery(cluster, NS, GATEWAY) == {"--selector": [f"{GROUP}-0"]}


def test_the_group_gate_has_exactly_its_rights(project, cluster, steps):
    """kwok runs no containers, so the gate itself is not run here (tests/test_group_gate_script.py runs it against
    a fake API). What is checked: the group's pods run as the gate's ServiceAccount, and the API server lets it
    read the pods of its namespace and nothing else."""
    steps.need("up")
    pods = [p for group in group_pods(cluster, NS, GROUP).values() for p in group]
    assert len(pods) == 2 and {p["spec"]["serviceAccountName"] for p in pods} == {f"{GROUP}-group-gate"}
    account = f"{GROUP}-group-gate"
    for verb in ("get", "list", "watch"):
        assert can_i(cluster, account, NS, verb, "pods"), verb
    # A pod's log is a subresource (`pods/log` would name a pod called "log"); exec likewise.
    for request in (
        ("delete", "pods"),
        ("get", "secrets"),
        ("list", "configmaps"),
        ("get", "pods", "--subresource=log"),
        ("create", "pods", "--subresource=exec"),
    ):
        assert not can_i(cluster, account, NS, *request), request
    assert not can_i(cluster, account, "default", "list", "pods")


def test_the_benchmark_job_is_created_with_exactly_its_rights(project, cluster, steps):
    """kwok runs no containers: the Job's pod is marked Succeeded at once, so its result is not checked (the
    ConfigMap stays without data). What is checked: `up` created the Job as rendered without waiting for it (render
    and reality above), on a node that holds the weights (it reads the tokenizer there), and the API server grants
    its ServiceAccount the reads and the write its script makes, and nothing else."""
    steps.need("up")
    (job,) = [j for j in cluster.get("jobs", "-n", NS)["items"] if j["metadata"]["name"].startswith(f"{GROUP}-bench")]
    account = job["spec"]["template"]["spec"]["serviceAccountName"]
    assert can_i(cluster, account, NS, "get", f"leaderworkersets.leaderworkerset.x-k8s.io/{GROUP}")
    assert can_i(cluster, account, NS, "patch", f"configmaps/{GROUP}-benchmark")
    for request in (
        ("get", "leaderworkersets.leaderworkerset.x-k8s.io/other"),
        ("patch", "configmaps/other"),
        ("list", "pods"),
        ("get", "secrets"),
    ):
        assert not can_i(cluster, account, NS, *request), request
    pods = cluster.get("pods", "-n", NS, "-l", f"job-name={job['metadata']['name']}")["items"]
    assert pods and all(p["spec"]["nodeSelector"]["nvidia.com/gpu.present"] == "true" for p in pods)
    assert "data" not in cluster.get("configmap", f"{GROUP}-benchmark", "-n", NS)


def test_outputs_are_what_the_docs_say(project, cluster, steps):
    steps.need("up")
    deployed = {"status": "deployed"}
    outputs = project.outputs()
    # The benchmark's verdict reaches the outputs after a refresh (docs/benchmark-slo.md); under kwok the Job
    # never ran, so there is none.
    bench = outputs.pop("benchmarks")[GROUP]
    (job,) = [
        j["metadata"]["name"] for j in cluster.get("jobs", "-n", NS)["items"] if "-bench-" in j["metadata"]["name"]
    ]
    assert (bench["job"], bench["configMap"], bench["passed"], bench["result"]) == (
        job,
        f"{GROUP}-benchmark",
        None,
        None,
    )
    assert bench["target"] == f"http://{GATEWAY}.{NS}.svc.cluster.local:8000", bench
    assert outputs == {
        "namespace": NS,
        "gateway": {
            "deepseek-r1": {
                "baseUrl": f"http://{GATEWAY}.{NS}.svc.cluster.local:8000/v1",
                "group": GROUP,
                "service": GATEWAY,
            }
        },
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
    # The same release (0.4.4) built for another CUDA: the flag tables and weights rules still hold.
    image = "lmsysorg/sglang:v0.4.4-cu125"
    before = rendered_spec(project, "LeaderWorkerSet", GROUP, {})
    after = rendered_spec(project, "LeaderWorkerSet", GROUP, {"versions": {"sglangImage": image}})
    saved = yaml.safe_load(project.stack_file.read_text())
    project.set_path("versions.sglangImage", image)
    try:
        changed = project.preview().changed()
    finally:
        project.stack_file.write_text(yaml.safe_dump(saved, sort_keys=False))
    # The benchmark runs in the group's image and its Job is named by what it measures: a new image is a new Job
    # (docs/benchmark-slo.md), replaced, not patched (a Job's template is immutable).
    assert sorted(changed) == [f"{GROUP}-benchmark-job", f"{GROUP}-lws"]
    assert changed[f"{GROUP}-benchmark-job"]["op"] == "replace", changed[f"{GROUP}-benchmark-job"]["op"]
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
