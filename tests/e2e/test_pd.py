"""The disaggregated example (examples/stacks/Pulumi.pd-h200.yaml: a prefill and a decode LeaderWorkerSet of one
8 x H200 node each, the gateway in PD mode) on the real engine: preview, up, render and reality, each role on
its own H200 node, the gateway's two selectors answered by the API server, no perpetual diff, no drift."""

from __future__ import annotations

import pytest
from conftest import ROOT

from tools.engine import Project
from tools.sim_stacks import SECRETS, SIM, committed, describe, merged, overrides

from .scenario import (
    daemon_set_on_gpu_nodes,
    gateway_discovery,
    plans_exactly_the_render,
    render_and_reality,
    running_on_distinct_nodes,
)

STACK = "pd-h200"
NS = "deepseek"
SERVICE = "deepseek-r1"
GATEWAY = f"{SERVICE}-gateway"
# Three nodes labelled as GPU feature discovery labels an 8 x H200 node (the roles select that product).
SIM_OPTIONS = SIM[STACK]


@pytest.fixture(scope="module")
def project(cluster, workdir) -> Project:
    return Project.copy(cluster, ROOT, workdir / "project", STACK)


def test_preview_plans_what_the_render_registers(project, engine, steps):
    project.init(merged(committed(STACK), overrides(STACK, engine.charts, preview_only=True)), SECRETS[STACK])
    preview = project.preview()
    plans_exactly_the_render(project, preview)
    steps.done.add("preview")


def test_up_on_simulated_h200_nodes(project, engine, steps):
    steps.need("preview")
    print("e2e overrides of the pd-h200 example stack:", *describe(STACK), sep="\n  ")
    project.write_values(merged(committed(STACK), overrides(STACK, engine.charts)))
    project.pulumi("up", "--yes", "--skip-preview")
    steps.done.add("up")


def test_render_and_reality_agree(project, cluster, steps):
    steps.need("up")
    count, problems = render_and_reality(project, cluster)
    assert problems == []
    assert count >= 30


def test_each_role_runs_on_its_own_h200_node(project, cluster, steps):
    steps.need("up")
    prefill = running_on_distinct_nodes(cluster, NS, f"{SERVICE}-prefill", size=1)
    decode = running_on_distinct_nodes(cluster, NS, f"{SERVICE}-decode", size=1)
    assert set(prefill["0"]).isdisjoint(decode["0"])
    # The weights are staged on every H200 node the roles may use.
    daemon_set_on_gpu_nodes(cluster, NS, f"{SERVICE}-weights")


def test_the_pd_gateway_finds_one_leader_of_each_role(project, cluster, steps):
    steps.need("up")
    assert gateway_discovery(cluster, NS, GATEWAY) == {
        "--prefill-selector": [f"{SERVICE}-prefill-0"],
        "--decode-selector": [f"{SERVICE}-decode-0"],
    }


def test_a_second_preview_changes_nothing_and_refresh_finds_no_drift(project, steps):
    steps.need("up")
    assert project.preview().changed() == {}
    changes, drifted = project.refresh()
    assert drifted == {}
    assert set(changes) == {"same"}
