"""Gang scheduling for real: Volcano's scheduler (the sandbox's pinned vc-scheduler, built from its Go module) places
the prod group's pods, and the LWS v0.10.0 controller runs with its Volcano provider
(gangSchedulingManagement.schedulerProvider: volcano), as lws.gangScheduling declares. A group is admitted whole
or not at all: with one free node for a two-node group, neither pod is bound; with two, both run.

The simulation runs Volcano itself here, so the stack takes it as present (volcano.mode: present, the Queue still
created by the stack); the kube-scheduler of the simulation keeps only its default profile."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from conftest import ROOT, unavailable

from tools.engine import Cluster, Project
from tools.sim_stacks import NFS_CLIENT, SECRETS, SIM, committed, merged, overrides
from tools.simulation import binaries

from .scenario import gang_lws_controller, group_pods, running_on_distinct_nodes

SIM_OPTIONS = SIM["prod"]
# Volcano 1.9.0's CRDs as its chart ships them (the scheduler also watches Numatopologies and Commands).
EXTRA_CRDS = ("charts/volcano-1.9.0/crd/v1",)
NS = "deepseek"
GROUP = "deepseek-r1"
PODGROUP = "podgroups.scheduling.volcano.sh"
GROUP_NAME_ANNOTATION = "scheduling.k8s.io/group-name"


@pytest.fixture(scope="module")
def vc_scheduler() -> str:
    path = binaries.locate("vc-scheduler")
    if path is None:
        unavailable(
            "no Volcano scheduler: `python tools/sandbox.py binaries fetch vc-scheduler` builds it (.ci/run does)"
        )
    try:
        subprocess.run([str(path), "--version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as exc:
        unavailable(f"the Volcano scheduler at {path} does not run: {exc}")
    return str(path)


@pytest.fixture(scope="module")
def volcano(cluster: Cluster, vc_scheduler: str) -> Cluster:
    """The simulation with Volcano's scheduler and a gang-scheduling LWS controller instead of its own."""
    run = cluster.run_dir
    cluster.stop_component("kube-scheduler")
    config = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "leaderElection": {"leaderElect": False},
        "clientConnection": {"kubeconfig": str(run / "kubeconfig")},
        "profiles": [{"schedulerName": "default-scheduler"}],
    }
    (run / "scheduler-default-only.yaml").write_text(yaml.safe_dump(config))
    cluster.spawn(
        "kube-scheduler",
        "kube-scheduler",
        "--config",
        str(run / "scheduler-default-only.yaml"),
        "--bind-address",
        "127.0.0.1",
        "--secure-port",
        "0",
    )
    cluster.spawn(
        "vc-scheduler",
        vc_scheduler,
        "--kubeconfig",
        str(run / "kubeconfig"),
        "--scheduler-name",
        "volcano",
        "--leader-elect=false",
        "--listen-address",
        "127.0.0.1:18090",
        "--healthz-address",
        "127.0.0.1:18091",
        "--enable-healthz",
    )
    gang_lws_controller(cluster)
    cluster.wait_for(
        "Volcano scheduler healthy",
        lambda: cluster.exec("curl", "-sf", "http://127.0.0.1:18091/healthz", check=False).returncode == 0,
    )
    cluster.apply(NFS_CLIENT)
    return cluster


@pytest.fixture(scope="module")
def project(volcano: Cluster, engine, workdir) -> Project:
    project = Project.copy(volcano, ROOT, workdir / "project", "prod")
    values = merged(committed("prod"), overrides("prod", engine.charts))
    # The simulation runs Volcano (its scheduler, just started); the stack only creates the Queue.
    values["volcano"] = {k: v for k, v in values["volcano"].items() if k != "values"} | {"mode": "present"}
    project.init(values, SECRETS["prod"])
    return project


def podgroups(cluster: Cluster) -> dict[str, dict]:
    items = cluster.get(PODGROUP, "-n", NS, "-l", f"leaderworkerset.sigs.k8s.io/name={GROUP}")["items"]
    return {pg["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/group-index"]: pg for pg in items}


def test_volcano_admits_the_group_whole(project, volcano, steps):
    up = project.pulumi("up", "--yes", "--skip-preview")
    # The live checks found the controller's Volcano provider (no "gang scheduling not verified" note).
    assert "gang scheduling not verified" not in up.output
    placement = running_on_distinct_nodes(volcano, NS, GROUP, size=2)
    (pg,) = podgroups(volcano).values()
    assert (pg["spec"]["minMember"], pg["spec"]["queue"]) == (2, "inference")
    assert pg["status"]["phase"] == "Running"
    (pods,) = group_pods(volcano, NS, GROUP).values()
    for pod in pods:
        assert pod["spec"]["schedulerName"] == "volcano"
        assert pod["metadata"]["annotations"][GROUP_NAME_ANNOTATION] == pg["metadata"]["name"]
    events = volcano.get("events", "-n", NS, "--field-selector", "reason=Scheduled")["items"]
    bound_by = {
        e["involvedObject"]["name"]: e.get("reportingComponent") or e["source"].get("component") for e in events
    }
    assert {bound_by[p["metadata"]["name"]] for p in pods} == {"volcano"}
    assert len(placement["0"]) == 2
    steps.done.add("gang")


def test_a_second_group_waits_whole_until_two_nodes_are_free(project, volcano, steps):
    """What the autoscaler does (the scale subresource): one node free for a two-pod group leaves both pods
    unbound (kube-scheduler would bind the leader and hold its 8 GPUs); a fourth node admits the group."""
    steps.need("gang")
    volcano.kubectl("scale", f"leaderworkerset.leaderworkerset.x-k8s.io/{GROUP}", "-n", NS, "--replicas", "2")

    def unschedulable() -> str | None:
        pg = podgroups(volcano).get("1")
        if pg is None:
            return None
        pods = group_pods(volcano, NS, GROUP).get("1", [])
        assert all(not p["spec"].get("nodeName") for p in pods), [p["spec"].get("nodeName") for p in pods]
        conditions = (pg.get("status") or {}).get("conditions") or []
        found = [c for c in conditions if c.get("type") == "Unschedulable" and c.get("status") == "True"]
        if not found or len(pods) != 2:
            return None
        messages.append(found[0]["message"])
        # A cycle that ran before the worker pod existed reports "2/1 tasks ..." (minAvailable/tasks seen): wait
        # for one that counted both pods.
        return messages[-1] if "2/2 tasks in gang unschedulable" in messages[-1] else None

    messages: list[str] = []
    try:
        volcano.wait_for("second group Unschedulable as a whole", unschedulable, timeout=120)
    except AssertionError as e:
        raise AssertionError(f"{e}; Volcano's messages: {sorted(set(messages))}") from None
    # Still nothing bound a few scheduling cycles later.
    assert all(not p["spec"].get("nodeName") for p in group_pods(volcano, NS, GROUP)["1"])

    node = list(yaml.safe_load_all((volcano.run_dir / "nodes.yaml").read_text()))[-1]
    node["metadata"]["name"] = node["metadata"]["labels"]["kubernetes.io/hostname"] = "gpu-node-3"
    volcano.apply([node])
    placement = running_on_distinct_nodes(volcano, NS, GROUP, size=2)
    assert set(placement) == {"0", "1"}
    assert set(placement["1"]).isdisjoint(placement["0"])
    assert podgroups(volcano)["1"]["status"]["phase"] == "Running"
