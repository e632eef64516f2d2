"""An in-place upgrade on the real engine, for dev and for prod (issue 21): `up` at the reference set, then the
same stack at the defaults on the running cluster, then the way back.

What it shows (docs/upgrades.md quotes the measured order and times, printed here with `-s`):
- the preview of the defaults lists each chart and image change and plans no LeaderWorkerSet, PodGroup, Queue,
  ScaledObject, claim or Secret for deletion or replacement; what the preview refuses first (the GPU Operator two
  majors ahead, a new chart's crds/ the cluster lacks) is refused with the program's message, and doing what the
  message says (the release between; the `kubectl apply` it gives) lets it through;
- after each `up`: every object of those kinds and every CRD is the same object (its UID); every CRD the new
  charts bring is in place (crds/ as the chart has it, and the templated ones of the release's manifest); the
  pods of a workload whose template changed rolled, every other pod is the same pod; the group is Ready again;
  a second preview plans nothing;
- the downgrade is refused at preview with each component's message, and nothing in the cluster changed.

kwok mode (as test_prod.py): the pods are kwok's, Ready once bound. The sandbox's other mode runs every pod for
real (`sandbox up --serve`); it was not used here: prod's add-ons as real processes beside the engine on a 2-core
machine were not tried, and what an upgrade can break (an object deleted or replaced, a CRD missing, a plan that
does not settle) happens in the API server, Helm releases and LWS controller, which kwok mode runs for real
(pods are bound by kube-scheduler, Volcano's pods included: its profile `volcano` stands for Volcano's
scheduler). docs/upgrades.md also reports dev's upgrade served for real once, by hand.

prod "at the defaults" is the committed stack without its `versions` mapping (the `set` and the single pins that
hold the reference's lines: SGLang 0.4.4-cu124, KEDA 2.17.2, Volcano 1.10.2, Kubernetes 1.30.6), with the nodes'
driver declared as upgraded to R580 (gpuNodes.driverVersion; the defaults' cu130 image needs it, and the simulated
nodes' GPU feature discovery label says 580.95.05). Removing only `set` would leave SGLang, KEDA and Volcano where
they are, and refuse the rest for Kubernetes 1.30. The GPU Operator goes one major at a time: v25.10.1 first.
"""

from __future__ import annotations

import copy
import datetime
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, stack_values

from tools.engine import Cluster, Engine, Project
from tools.sim_stacks import NFS_CLIENT, SECRETS, SIM, describe_changes, merged, overrides_for

from .conftest import Steps
from .scenario import (
    KEPT_KINDS,
    Snapshot,
    crd_gaps,
    deployment_ready,
    gang_lws_controller,
    lost_or_replaced,
    manifest_crds,
    not_a_server_error,
    planned_charts,
    running_on_distinct_nodes,
    settle,
    type_and_name,
    upgrade_events,
)

REFERENCE_SGLANG = {"dev": "lmsysorg/sglang:v0.4.3.post2-cu124", "prod": "lmsysorg/sglang:v0.4.4-cu124"}
SGLANG = "lmsysorg/sglang:v0.5.23-cu130"
WEBUI = ("ghcr.io/open-webui/open-webui:v0.5.14", "ghcr.io/open-webui/open-webui:v0.12.4")
# Both sets run the same gateway (sglang-router 0.3.2): its image does not change; its health path does (SGLang
# 0.5's /ready, docs/gateway.md).
GATEWAY = "lmsysorg/sgl-model-gateway:v0.3.2"
DOCS = "docs/upgrades.md"
REFUSED_DOWNGRADE = (
    "{key}: {old} is older than {new}, which the cluster runs (Helm release {release}); a chart downgrade is refused: "
    "Helm leaves the newer CRDs of a chart's crds/ directory in place and an older chart's templated CRDs would "
    f"replace the ones live objects are stored with. Keep {{new}} or set a newer one ({DOCS}, Downgrades)"
)


@dataclass(frozen=True)
class Leg:
    """One `up` of the upgrade: the top-level stack keys it replaces in the stack as committed (None: removed), the
    chart each release plans to run after it (by release resource name: the releases it upgrades), whether the
    group's template changes, and the CRD refusal its first preview meets (the releases whose crds/ must be applied
    first)."""

    name: str
    change: dict[str, Any]
    charts: dict[str, str]
    images: dict[str, tuple[str, str]] = field(default_factory=dict)  # resource name -> (old image, new image)
    group_rolls: bool = True
    crds_first: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    stack: str
    namespace: str
    group: str
    size: int
    reference: dict[str, Any]
    reference_charts: dict[str, str]
    legs: tuple[Leg, ...]
    downgrade: tuple[str, ...]  # the refusals of the way back, in the preview's order (by stack key)
    # The kinds the stack has objects of once up (a kept kind without objects would be checked for nothing).
    kinds: frozenset[str] = frozenset(KEPT_KINDS)

    @property
    def webui(self) -> str:
        return "open-webui-deployment"


def _downgrade(key: str, old: str, new: str, release: str) -> str:
    return REFUSED_DOWNGRADE.format(key=f"sglang-platform:versions.{key}", old=old, new=new, release=release)


WEBUI_DOWNGRADE = (
    "sglang-platform:versions.openWebuiImage: ghcr.io/open-webui/open-webui:v0.5.14 is older than "
    "ghcr.io/open-webui/open-webui:v0.12.4, which Deployment {ns}/open-webui runs; Open WebUI migrates its database "
    "forward when it starts and has no way back, so a downgrade is refused: keep ghcr.io/open-webui/open-webui:v0.12.4 "
    f"or a newer one (going back means restoring the data volume saved before the upgrade, {DOCS}, Downgrades)"
)
# prod's GPU nodes with their driver upgraded to R580 (what the defaults' cu130 image needs; the platform does not
# manage prod's driver, gpuOperator.driver.managed: false).
PROD_DRIVER = stack_values("prod")["gpuNodes"] | {"driverVersion": "580.95.05"}

CASES = {
    "dev": Case(
        stack="dev",
        namespace="sglang-dev",
        group="qwen-small",
        size=1,
        reference={"versions": {"set": "reference"}},
        reference_charts={
            "keda-release": "keda-2.17.2",
            "monitoring-kube-prometheus-stack": "kube-prometheus-stack-88.3.0",
        },
        legs=(
            Leg(
                "defaults",
                {"versions": None},
                {"keda-release": "keda-2.20.2", "monitoring-kube-prometheus-stack": "kube-prometheus-stack-88.5.3"},
                {"qwen-small-lws": (REFERENCE_SGLANG["dev"], SGLANG), "open-webui-deployment": WEBUI},
            ),
        ),
        downgrade=(
            _downgrade("kedaChart", "2.17.2", "2.20.2", "keda/keda"),
            _downgrade("kubePrometheusStack", "88.3.0", "88.5.3", "monitoring/kube-prometheus-stack"),
            WEBUI_DOWNGRADE.format(ns="sglang-dev"),
        ),
        # dev installs no Volcano: no Queue, no PodGroup.
        kinds=frozenset(KEPT_KINDS) - {"PodGroup", "Queue"},
    ),
    "prod": Case(
        stack="prod",
        namespace="deepseek",
        group="deepseek-r1",
        size=2,
        reference={},
        reference_charts={
            "gpu-operator-release": "gpu-operator-v24.9.1",
            "volcano-release": "volcano-1.10.2",
            "keda-release": "keda-2.17.2",
            "monitoring-kube-prometheus-stack": "kube-prometheus-stack-88.3.0",
        },
        legs=(
            # NVIDIA supports one GPU Operator major at a time: everything else at the defaults, the operator at
            # the release between (what the refusal of the jump says to do).
            Leg(
                "defaults, GPU Operator v25.10.1",
                {"versions": {"gpuOperatorChart": "v25.10.1"}, "gpuNodes": PROD_DRIVER},
                {
                    "gpu-operator-release": "gpu-operator-v25.10.1",
                    "volcano-release": "volcano-1.15.1",
                    "keda-release": "keda-2.20.2",
                    "monitoring-kube-prometheus-stack": "kube-prometheus-stack-88.5.3",
                },
                {"deepseek-r1-lws": (REFERENCE_SGLANG["prod"], SGLANG), "open-webui-deployment": WEBUI},
                crds_first=("gpu-operator",),
            ),
            Leg(
                "defaults",
                {"versions": None, "gpuNodes": PROD_DRIVER},
                {"gpu-operator-release": "gpu-operator-v26.7.0"},
                group_rolls=False,
                crds_first=("gpu-operator",),
            ),
        ),
        downgrade=(
            _downgrade("gpuOperatorChart", "v24.9.1", "v26.7.0", "gpu-operator/gpu-operator"),
            _downgrade("kedaChart", "2.17.2", "2.20.2", "keda/keda"),
            _downgrade("kubePrometheusStack", "88.3.0", "88.5.3", "monitoring/kube-prometheus-stack"),
            WEBUI_DOWNGRADE.format(ns="deepseek"),
            _downgrade("volcanoChart", "1.10.2", "1.15.1", "volcano-system/volcano"),
        ),
    ),
}
GPU_OPERATOR_JUMP = (
    "sglang-platform:versions.gpuOperatorChart: v26.7.0 is two majors after v24.9.1, which the cluster runs (Helm "
    "release gpu-operator/gpu-operator); NVIDIA supports upgrading the GPU Operator one major at a time: set v25.10.1 "
    f"first and `pulumi up`, then v26.7.0 ({DOCS}, GPU Operator)"
)
# The command a refusal of missing or stale crds/ gives: `kubectl apply --server-side --force-conflicts -f DIR ...`.
APPLY_COMMAND = re.compile(r"`(kubectl apply --server-side --force-conflicts (?:-f \S+ ?)+)`")


# --- fixtures: one cluster per stack (the module's tests run for dev, then for prod) -------------------------------


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request) -> Case:
    return CASES[request.param]


@pytest.fixture(scope="module")
def cluster(case: Case, engine: Engine, tmp_path_factory) -> Iterator[Cluster]:
    sim = Cluster(engine, tmp_path_factory.mktemp(f"upgrade-{case.stack}") / "run")
    sim.start(*SIM[case.stack])
    try:
        if "PodGroup" in case.kinds:
            # prod's lws.gangScheduling: the LWS controller gives each group a PodGroup (kube-scheduler's volcano
            # profile still binds the pods: the chart's Volcano scheduler is one of kwok's pods).
            gang_lws_controller(sim)
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def steps(case: Case) -> Steps:
    return Steps()


@pytest.fixture(scope="module")
def project(case: Case, cluster: Cluster, tmp_path_factory) -> Project:
    work = tmp_path_factory.mktemp(f"upgrade-{case.stack}-work")
    return Project.copy(cluster, ROOT, work / "project", case.stack)


@pytest.fixture(scope="module")
def record(case: Case) -> dict[str, Any]:
    """What one step leaves for the next (the snapshots) and the measurements printed at the end."""
    return {"timings": {}, "events": {}}


# --- helpers -------------------------------------------------------------------------------------------------------


def stack_at(case: Case, engine: Engine, change: dict[str, Any]) -> dict[str, Any]:
    """The stack keys to write: the committed stack with ``change`` (each top-level key replaced; None removes it)
    and the simulation's overrides for what the result installs (printed)."""
    values = copy.deepcopy(stack_values(case.stack))
    for key, value in change.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = copy.deepcopy(value)
    print(f"overrides of {case.stack} {change}:", *describe_changes(values), sep="\n  ")
    out = merged(values, overrides_for(values, engine.charts))
    # A key the change removed is written as None, which Project.write_values drops from the file.
    return {key: out.get(key) for key in set(out) | set(change)}


def write(project: Project, values: dict[str, Any]) -> None:
    project.write_values(values)


def timed_up(project: Project, record: dict[str, Any], name: str) -> float:
    started = time.time()
    project.pulumi("up", "--yes", "--skip-preview")
    seconds = time.time() - started
    record["timings"][name] = seconds
    record.setdefault("started", {})[name] = started
    return seconds


def images(value: Any) -> set[str]:
    """Every container image named anywhere in a resource's inputs."""
    if isinstance(value, dict):
        found = {value["image"]} if isinstance(value.get("image"), str) else set()
        return found.union(*(images(v) for k, v in value.items() if k != "image"))
    if isinstance(value, list):
        return set().union(*(images(v) for v in value))
    return set()


def release_steps(preview: Any) -> dict[str, dict]:
    release = "kubernetes:helm.sh/v3:Release"
    return {s["urn"].rsplit("::", 1)[1]: s for s in preview.steps if type_and_name(s["urn"])[0] == release}


def the_plan_is_the_upgrade(case: Case, leg: Leg, preview: Any, charts: Path, before: dict[str, str]) -> None:
    """The preview lists each chart change (the release's chart moves from the one it runs to the new one) and each
    image change, updates the others in place, and plans no kept kind for deletion or replacement."""
    planned = planned_charts(preview)
    changed = {name: s for name, s in release_steps(preview).items() if s["op"] != "same"}
    assert {name: s["op"] for name, s in changed.items()} == dict.fromkeys(leg.charts, "update")
    for name, chart in leg.charts.items():
        assert planned[name] == str(charts / chart), name
        assert changed[name]["oldState"]["inputs"]["chart"] == str(charts / before[name]), name
    steps = preview.changed()
    for name, (old, new) in leg.images.items():
        assert steps[name]["op"] == "update", steps[name]["op"]
        assert old in images(steps[name]["oldState"]["inputs"]) and old not in images(steps[name]["newState"]["inputs"])
        assert new in images(steps[name]["newState"]["inputs"]), name
    kept = set(KEPT_KINDS)
    bad = [
        f"{type_and_name(s['urn'])} {s['op']}"
        for s in preview.steps
        if type_and_name(s["urn"])[0].rsplit(":", 1)[-1] in kept and s["op"] not in ("same", "update")
    ]
    assert bad == []
    # Nothing else is deleted or replaced but two objects that hold no state and are named by what they show: the
    # benchmark Job (named by what it measures, the image: a new image is a new Job, docs/benchmark-slo.md) and
    # the Grafana dashboard's ConfigMap (its panels follow the SGLang release; the Kubernetes provider replaces a
    # ConfigMap whose data changes, and with its fixed name deletes it first: Grafana's sidecar drops the
    # dashboard and loads the new one).
    replaced = {
        type_and_name(s["urn"])[1]: s["op"] for s in preview.steps if s["op"] not in ("same", "update", "create")
    }
    assert set(replaced) <= {f"{case.group}-benchmark-job", "monitoring-dashboard"}, replaced
    print(f"[{case.stack}] replaced: {replaced}")
    gateway = steps.get(f"{case.group}-gateway-deployment")
    if gateway is not None:
        assert images(gateway["oldState"]["inputs"]) == images(gateway["newState"]["inputs"]) == {GATEWAY}


def print_record(case: Case, record: dict[str, Any]) -> None:
    for name, seconds in record["timings"].items():
        print(f"[{case.stack}] up {name}: {seconds:.1f} s")
        start = datetime.datetime.fromtimestamp(record["started"][name], datetime.UTC)
        for when, what in record["events"].get(name, []):
            offset = (
                f"{(datetime.datetime.fromisoformat(when.replace('Z', '+00:00')) - start).total_seconds():+6.0f} s"
                if when
                else "      ?"
            )
            print(f"  {offset}  {what}")


# --- the scenario --------------------------------------------------------------------------------------------------


def test_up_at_the_reference_set(case, project, cluster, engine, steps, record):
    project.init(stack_at(case, engine, case.reference), SECRETS[case.stack])
    if case.stack == "prod":
        cluster.apply(NFS_CLIENT)
    preview = project.preview()
    planned = planned_charts(preview)
    for name, chart in case.reference_charts.items():
        assert planned[name] == str(engine.charts / chart), name
    timed_up(project, record, "reference")
    running_on_distinct_nodes(cluster, case.namespace, case.group, size=case.size)
    cluster.wait_for("Open WebUI ready", lambda: deployment_ready(cluster, case.namespace, "open-webui"))
    settle(cluster)
    record["snapshot"] = Snapshot.take(cluster)
    assert {kind for kind, objects in record["snapshot"].uids.items() if objects} == case.kinds
    record["charts"] = planned
    steps.done.add("reference")


def test_the_defaults_in_one_step_are_refused_only_for_a_gpu_operator_jump(case, project, engine, steps):
    """Straight from the reference set to the defaults: prod's GPU Operator would go two majors at once, the one
    refusal (its message names the release between); dev, whose GPU Operator is the cluster's own, previews."""
    steps.need("reference")
    write(project, stack_at(case, engine, case.legs[-1].change))
    preview = project.preview(check=False)
    lines = [line.removeprefix("  - ") for line in preview.error_text.splitlines() if line.startswith("  - ")]
    if len(case.legs) > 1:
        assert preview.result.returncode != 0
        assert lines == [GPU_OPERATOR_JUMP]
        not_a_server_error(preview.error_text)
    else:
        assert (preview.result.returncode, lines) == (0, []), preview.error_text


def test_each_upgrade_previews_its_changes_and_keeps_what_runs(case, project, cluster, engine, steps, record):
    steps.need("reference")
    for leg in case.legs:
        before: Snapshot = record["snapshot"]
        write(project, stack_at(case, engine, leg.change))
        preview = project.preview(check=False)
        if leg.crds_first:
            # Helm never upgrades a chart's crds/: the preview refuses until they are applied, and says how.
            assert preview.result.returncode != 0
            commands = APPLY_COMMAND.findall(preview.error_text)
            assert len(commands) == len(leg.crds_first), preview.error_text
            not_a_server_error(preview.error_text)
            for command in commands:
                cluster.kubectl(*command.split()[1:])
            preview = project.preview(check=False)
        assert preview.result.returncode == 0, preview.error_text or preview.result.output[-8000:]
        the_plan_is_the_upgrade(case, leg, preview, engine.charts, record["charts"])
        print(f"[{case.stack}] {leg.name}: planned", sorted((n, s["op"]) for n, s in preview.changed().items()))

        timed_up(project, record, leg.name)
        running_on_distinct_nodes(cluster, case.namespace, case.group, size=case.size)
        cluster.wait_for("Open WebUI ready", lambda: deployment_ready(cluster, case.namespace, "open-webui"))
        settle(cluster)
        after = Snapshot.take(cluster)
        record["events"][leg.name] = upgrade_events(cluster, before, after)

        # The same objects of every kept kind; what is new is printed.
        lost = lost_or_replaced(before.uids, after.uids)
        if leg.group_rolls:
            # But the PodGroups of a group that rolls: LWS gives each group revision its own, named by it
            # (<lws>-<group index>-<revision hash>), and the old one goes with the old revision's pods. One per
            # group again, of the new revision; where the group does not roll, the same PodGroup (the next leg).
            assert sorted(line for line in lost if line.startswith("PodGroup ")) == sorted(
                f"PodGroup {key}: deleted" for key in before.uids["PodGroup"]
            )
            assert len(after.uids["PodGroup"]) == len(before.uids["PodGroup"])
            lost = [line for line in lost if not line.startswith("PodGroup ")]
        assert lost == []
        for kind in KEPT_KINDS:
            new = sorted(set(after.uids[kind]) - set(before.uids[kind]))
            if new:
                print(f"[{case.stack}] {leg.name}: new {kind}: {new}")
        # Each upgraded release runs its new chart; every CRD it brings is in place.
        releases = after.releases()
        gaps = []
        for chart in leg.charts.values():
            (release,) = [r for r, (_, c) in releases.items() if c == chart]
            newest = after.helm[release][-1]
            assert newest.status == "deployed", newest
            gaps += crd_gaps(engine.charts / chart, after.crds)
            gaps += [f"{n} (templated by {release})" for n in manifest_crds(newest.manifest) if n not in after.crds]
        assert gaps == []
        # Pods roll exactly where their template changed.
        rolled: list[str] = []
        kept: list[str] = []
        wrong: list[str] = []
        for key, work in before.workloads.items():
            now = after.workloads.get(key)
            if now is None or not work.pods:
                continue
            if now.uid != work.uid:
                # A group's workers' StatefulSet belongs to its leader pod: LWS makes it anew with the new leader.
                (rolled if not set(now.pods.values()) & set(work.pods.values()) else wrong).append(key)
                continue
            same_template = now.template == work.template
            same_pods = set(now.pods.values()) == set(work.pods.values())
            untouched = not set(now.pods.values()) & set(work.pods.values())
            (kept if same_template else rolled).append(key)
            if (same_template and not same_pods) or (not same_template and not untouched):
                state = "same" if same_template else "changed"
                wrong.append(f"{key}: template {state}, pods {work.pods} -> {now.pods}")
        assert wrong == []
        group_sets = {k for k in before.workloads if k.startswith(f"StatefulSet {case.namespace}/{case.group}")}
        assert group_sets and group_sets <= set(rolled if leg.group_rolls else kept), (rolled, kept)
        print(f"[{case.stack}] {leg.name}: rolled {sorted(rolled)}; kept the pods of {sorted(kept)}")
        record["charts"] = record["charts"] | {n: c for n, c in planned_charts(preview).items()}
        record["snapshot"] = after
    steps.done.add("upgraded")


def test_a_second_preview_plans_nothing(case, project, steps, record):
    steps.need("upgraded")
    assert project.preview().changed() == {}
    print_record(case, record)
    steps.done.add("steady")


def test_the_downgrade_is_refused_and_changes_nothing(case, project, cluster, engine, steps, record):
    """Back to the reference set: every chart and Open WebUI refuse at preview, each with its message (the SGLang
    image alone would be taken: the group keeps no state, docs/upgrades.md)."""
    steps.need("steady")
    before: Snapshot = record["snapshot"]
    write(project, stack_at(case, engine, case.reference))
    refused = project.preview(check=False)
    assert refused.result.returncode != 0
    lines = [line.removeprefix("  - ") for line in refused.error_text.splitlines() if line.startswith("  - ")]
    print(f"[{case.stack}] the downgrade's preview:", *lines, sep="\n  ")
    assert lines == list(case.downgrade)
    not_a_server_error(refused.error_text)
    after = Snapshot.take(cluster)
    assert after.uids == before.uids
    assert after.releases() == before.releases()
    assert {k: (w.uid, w.template, w.pods) for k, w in after.workloads.items()} == {
        k: (w.uid, w.template, w.pods) for k, w in before.workloads.items()
    }
