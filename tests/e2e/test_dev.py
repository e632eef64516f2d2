"""The dev stack on the real engine: preview as committed, up on simulated GPU nodes, render and reality agree,
changes show exactly their diff or a clear refusal, refresh finds no drift, destroy then up works."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT, stack_values

from tools.engine import Project
from tools.sim_stacks import SECRETS, SIM, describe, merged, overrides

from .scenario import (
    deployment_ready,
    diff_kinds,
    gateway_discovery,
    group_pods,
    job_complete,
    nodes_of,
    not_a_server_error,
    planned_charts,
    plans_exactly_the_render,
    render_and_reality,
    running_on_distinct_nodes,
)

STACK = "dev"
NS = "sglang-dev"
GROUP = "qwen-small"
# The model gateway of the group's served model (one per model).
GATEWAY = f"{GROUP}-gateway"
# Three 8-GPU nodes; the pool of class-less PersistentVolumes the dev claims bind to.
SIM_OPTIONS = SIM["dev"]


@pytest.fixture(scope="module")
def project(cluster, workdir) -> Project:
    return Project.copy(cluster, ROOT, workdir / "project", STACK)


def test_preview_of_the_committed_stack_resolves_the_real_charts(project, engine, steps):
    """As committed, with only the chart mirror: the provider resolves and templates every chart at preview."""
    project.init(merged(stack_values(STACK), overrides(STACK, engine.charts, preview_only=True)), SECRETS[STACK])
    preview = project.preview()
    plans_exactly_the_render(project, preview)
    assert planned_charts(preview) == {
        "keda-release": str(engine.charts / "keda-2.20.2"),
        "lws-release": str(engine.charts / "lws-0.10.0"),
        "monitoring-kube-prometheus-stack": str(engine.charts / "kube-prometheus-stack-88.5.3"),
    }
    steps.done.add("preview")


def test_up_on_simulated_gpu_nodes(project, engine, steps):
    steps.need("preview")
    changes = overrides(STACK, engine.charts)
    print("e2e overrides of the committed dev stack:", *describe(STACK), sep="\n  ")
    project.write_values(merged(stack_values(STACK), changes))
    project.pulumi("up", "--yes", "--skip-preview")
    steps.done.add("up")


def test_render_and_reality_agree(project, cluster, steps):
    steps.need("up")
    count, problems = render_and_reality(project, cluster)
    assert problems == []
    assert count >= 20


def test_the_group_is_ready_and_the_model_downloaded(project, cluster, steps):
    steps.need("up")
    placement = running_on_distinct_nodes(cluster, NS, GROUP, size=1)
    assert list(placement) == ["0"]
    cluster.wait_for("model download Job complete", lambda: job_complete(cluster, NS, f"{GROUP}-model-download"))
    cluster.wait_for("Open WebUI ready", lambda: deployment_ready(cluster, NS, "open-webui"))


def test_the_gateway_finds_the_leader_through_the_real_api_server(project, cluster, steps):
    """The gateway Deployment is Ready; as its ServiceAccount, the API server lets it list and watch pods in the
    namespace and nothing else, and its selector finds the group's leader."""
    steps.need("up")
    running_on_distinct_nodes(cluster, NS, GROUP, size=1)
    assert gateway_discovery(cluster, NS, GATEWAY) == {"--selector": [f"{GROUP}-0"]}


def test_outputs_are_what_the_docs_say(project, cluster, steps):
    steps.need("up")
    outputs = project.outputs()
    assert outputs == {
        "namespace": NS,
        "inferenceGroups": {
            GROUP: {
                "baseUrl": f"http://{GROUP}-api.{NS}.svc.cluster.local:8000/v1",
                "servedModelName": "qwen2.5-1.5b-instruct",
                "service": f"{GROUP}-api",
            }
        },
        "gateway": {
            "qwen2.5-1.5b-instruct": {
                "baseUrl": f"http://{GATEWAY}.{NS}.svc.cluster.local:8000/v1",
                "group": GROUP,
                "service": GATEWAY,
            }
        },
        "openWebui": {"service": "open-webui", "url": f"http://open-webui.{NS}.svc.cluster.local:3000"},
        "monitoring": {
            "namespace": "monitoring",
            "prometheusUrl": "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
            "grafanaService": "kube-prometheus-stack-grafana",
        },
        "addons": {
            "gpuOperator": {"mode": "present"},
            "volcano": {"mode": "absent"},
            "lws": {"mode": "present", "gangScheduling": False},
            "keda": {"mode": "install", "release": "keda", "namespace": "keda", "status": "deployed"},
        },
    }
    # Each Service an output names exists (the UI's and the group's in the serving namespace, Grafana's and
    # Prometheus' from the chart).
    cluster.get("service", f"{GROUP}-api", GATEWAY, "open-webui", "-n", NS)
    cluster.get("service", "kube-prometheus-stack-grafana", "kube-prometheus-stack-prometheus", "-n", "monitoring")


def test_a_second_preview_changes_nothing(project, steps):
    steps.need("up")
    preview = project.preview()
    assert preview.changed() == {}
    steps.done.add("steady")


def test_max_replicas_changes_only_the_scaled_object(project, steps):
    steps.need("steady")
    project.set_path("inferenceGroups[0].autoscaling.maxReplicas", 3)
    try:
        changed = project.preview().changed()
    finally:
        project.set_path("inferenceGroups[0].autoscaling.maxReplicas", 2)
    assert list(changed) == [f"{GROUP}-autoscaler-scaledobject"]
    step = changed[f"{GROUP}-autoscaler-scaledobject"]
    assert step["op"] == "update"
    assert diff_kinds(step) == {"spec.maxReplicaCount": "update"}


def test_a_new_sglang_image_changes_only_the_group_pods_images(project, steps):
    steps.need("steady")
    image = "lmsysorg/sglang:v0.5.23-cu130-runtime"  # the same release as the default, another build
    before = yaml.safe_load(project.stack_file.read_text())
    project.set_path("versions.sglangImage", image)
    try:
        changed = project.preview().changed()
    finally:
        project.stack_file.write_text(yaml.safe_dump(before, sort_keys=False))
    assert list(changed) == [f"{GROUP}-lws"]
    step = changed[f"{GROUP}-lws"]
    assert step["op"] == "update"
    # The SGLang container and the weight gate (same image) of the group's only template.
    assert set(diff_kinds(step)) == {
        "spec.leaderWorkerTemplate.workerTemplate.spec.containers[0].image",
        "spec.leaderWorkerTemplate.workerTemplate.spec.initContainers[0].image",
    }


@pytest.mark.parametrize(
    ("path", "size", "message"),
    [
        (
            "inferenceGroups[0].modelVolume.pvc.size",
            "30Gi",
            "sglang-platform:inferenceGroups[0].modelVolume.pvc.size: claim sglang-dev/models exists with 20Gi and "
            "no StorageClass; only a claim of a StorageClass with allowVolumeExpansion can grow: keep 20Gi, or move "
            "the data to a new claim (another name) or delete this one with its data",
        ),
        (
            "openWebui.persistence.size",
            "4Gi",
            "sglang-platform:openWebui.persistence.size: claim sglang-dev/open-webui-data exists with 5Gi, and "
            "Kubernetes never shrinks a claim: set 5Gi back, or move the data to a new claim (another name) or "
            "delete this one with its data",
        ),
    ],
)
def test_a_claim_size_change_the_cluster_cannot_make_is_refused_clearly(project, steps, path, size, message):
    steps.need("steady")
    before = yaml.safe_load(project.stack_file.read_text())
    project.set_path(path, size)
    try:
        preview = project.preview(check=False)
    finally:
        project.stack_file.write_text(yaml.safe_dump(before, sort_keys=False))
    assert preview.result.returncode != 0
    assert message in preview.error_text
    assert "invalid stack configuration (1 problem)" in preview.error_text
    not_a_server_error(preview.error_text)


def test_refresh_finds_no_drift(project, steps):
    steps.need("steady")
    changes, drifted = project.refresh()
    assert drifted == {}
    assert set(changes) == {"same"}
    assert project.preview().changed() == {}


def test_a_two_node_group_puts_its_pods_on_distinct_nodes(project, cluster, steps):
    """nodes: 2 with only one schedulable node leaves the worker Pending on the anti-affinity (the scheduler
    would otherwise pack both onto that node); once a second node is schedulable it runs there."""
    steps.need("steady")
    nodes = [n["metadata"]["name"] for n in cluster.get("nodes")["items"]]
    cluster.kubectl("cordon", *nodes[1:])
    try:
        project.set_path("inferenceGroups[0].nodes", 2)
        project.pulumi("up", "--yes", "--skip-preview")

        def worker_pending():
            pods = [p for group in group_pods(cluster, NS, GROUP).values() for p in group]
            workers = [p for p in pods if p["metadata"]["labels"].get("role") == "worker"]
            if len(pods) != 2 or not workers or workers[0]["status"].get("phase") != "Pending":
                return None
            conditions = workers[0]["status"].get("conditions") or []
            return next((c["message"] for c in conditions if c.get("reason") == "Unschedulable"), None)

        message = cluster.wait_for("worker Pending on the anti-affinity", worker_pending)
        assert "didn't match pod anti-affinity rules" in message, message
    finally:
        cluster.kubectl("uncordon", *nodes[1:])
    placement = running_on_distinct_nodes(cluster, NS, GROUP, size=2)
    assert len(placement["0"]) == 2
    (pods,) = group_pods(cluster, NS, GROUP).values()
    for pod in pods:
        terms = pod["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms == [
            {
                "labelSelector": {"matchLabels": {"leaderworkerset.sigs.k8s.io/name": GROUP}},
                "topologyKey": "kubernetes.io/hostname",
            }
        ]
    assert len(set(nodes_of(pods))) == 2
    project.set_path("inferenceGroups[0].nodes", 1)
    project.pulumi("up", "--yes", "--skip-preview")
    running_on_distinct_nodes(cluster, NS, GROUP, size=1)


def test_destroy_then_up_adopts_the_kept_namespace_and_claims(project, cluster, steps):
    steps.need("steady")
    project.pulumi("destroy", "--yes", "--skip-preview")
    assert cluster.get("namespace", NS)["status"]["phase"] == "Active"
    claims = cluster.get("pvc", "-n", NS)["items"]
    assert sorted((c["metadata"]["name"], c["status"]["phase"]) for c in claims) == [
        ("models", "Bound"),
        ("open-webui-data", "Bound"),
    ]
    project.pulumi("up", "--yes", "--skip-preview")
    running_on_distinct_nodes(cluster, NS, GROUP, size=1)
    _, problems = render_and_reality(project, cluster)
    assert problems == []
    assert project.preview().changed() == {}
