"""`tools/sandbox.py up`'s own logic: stack names, secrets on the command line, and how it says which pods are not
Ready and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.simulation import deploy
from tools.simulation.cluster import SandboxError


def test_stack_name_and_secrets():
    assert deploy.stack_name(Path("/x/Pulumi.team-a.yaml")) == "team-a"
    with pytest.raises(SandboxError, match=r"a stack file is named Pulumi\.<stack>\.yaml"):
        deploy.stack_name(Path("/x/dev.yaml"))
    assert deploy.parse_secrets(["apiKey=a=b", "hfToken="]) == {"apiKey": "a=b", "hfToken": ""}
    with pytest.raises(SandboxError, match="give KEY=VALUE"):
        deploy.parse_secrets(["sglang-platform:apiKey=x"])


def pod(name: str, phase: str, ready: bool, statuses: list[dict], conditions: list[dict] | None = None) -> dict:
    conds = [{"type": "Ready", "status": "True" if ready else "False"}, *(conditions or [])]
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "status": {"phase": phase, "conditions": conds, "containerStatuses": statuses},
    }


def test_not_ready_names_each_pod_and_why():
    pods = [
        pod("job-x", "Succeeded", False, []),
        pod("ok", "Running", True, [{"name": "c", "ready": True, "state": {"running": {}}}]),
        pod("pull", "Pending", False, [{"name": "c", "state": {"waiting": {"reason": "ImageNotInSandbox"}}}]),
        pod("crash", "Running", False, [{"name": "c", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]),
        pod(
            "unplaced",
            "Pending",
            False,
            [],
            [{"type": "PodScheduled", "status": "False", "message": "0/3 nodes: Insufficient nvidia.com/gpu"}],
        ),
    ]
    assert deploy.not_ready(pods) == [
        "ns/pull (Pending): c waiting: ImageNotInSandbox",
        "ns/crash (Running): c exited 2 (Error)",
        "ns/unplaced (Pending): unschedulable: 0/3 nodes: Insufficient nvidia.com/gpu",
    ]


def test_what_serving_changes_and_prepares_per_stack(monkeypatch, tmp_path):
    """prod benchmarks with 0.4.4, whose bench_serving runs here: its venv is prepared and nothing changes. The PD
    example benchmarks with 0.5.23, whose bench_serving cannot run here: `up` removes the benchmark and says why.
    prod's Open WebUI claim asks for nfs-client (stack key openWebui.persistence.storageClass), which the sandbox
    then provides; dev's claims name no class."""
    from conftest import ROOT

    prod = deploy.stack_values(ROOT / "Pulumi.prod.yaml")
    pd = deploy.stack_values(ROOT / "examples" / "stacks" / "Pulumi.pd-h200.yaml")
    dev = deploy.stack_values(ROOT / "Pulumi.dev.yaml")
    assert deploy.serve_changes(prod) == ({}, [])
    changes, lines = deploy.serve_changes(pd)
    assert "benchmark" not in changes["inferenceGroups"][0]
    assert changes["inferenceGroups"][0]["disaggregation"] == pd["inferenceGroups"][0]["disaggregation"]
    assert lines == [
        "sglang-platform:inferenceGroups[0].benchmark removed (deepseek-r1): its release's bench_serving cannot run "
        "in the sandbox: sglang.bench_serving is sglang.benchmark.serving, whose module-level imports reach some 350 "
        "server modules and torch, torchvision, triton and transformers 5.19"
    ]
    assert "benchmark" in pd["inferenceGroups"][0]  # the stack's own values are left as they are
    assert [deploy.needs_nfs_client(v) for v in (prod, pd, dev)] == [True, False, False]
    prepared: list[list[str]] = []
    monkeypatch.setattr(
        "tools.simulation.agent_images.prepare", lambda images, dest, table: prepared.append(list(images))
    )
    for values in (prod, pd, dev):
        deploy.prepare_images(values, tmp_path)
    assert prepared == [
        ["lmsysorg/sgl-model-gateway:v0.3.2", "lmsysorg/sglang:v0.4.4-cu124"],
        ["lmsysorg/sgl-model-gateway:v0.3.2"],
        ["lmsysorg/sgl-model-gateway:v0.3.2"],
    ]


def test_served_stacks_run_keda_s_metrics_server_off_the_api_server_s_port():
    """With --serve KEDA's metrics API server runs (its pods are the pinned build), so its APIService is on, and its
    port is not the API server's 6443 (every pod shares the namespace where the API server listens on 6443);
    without --serve it stays off, as kwok runs no container. The printed lines say which."""
    from tools.sim_stacks import committed, describe_changes, overrides_for

    dev = committed("dev")
    charts = Path("/charts")
    assert overrides_for(dev, charts)["keda"]["values"] == {
        "webhooks": {"enabled": False},
        "metricsServer": {"enabled": False},
    }
    assert overrides_for(dev, charts, serve=True)["keda"]["values"] == {
        "webhooks": {"enabled": False},
        "metricsServer": {"enabled": True},
        "service": {"portHttpsTarget": 6444},
    }
    served = [line for line in describe_changes(dev, serve=True) if "keda.values" in line]
    assert len(served) == 1 and "from 6443 to 6444" in served[0]
    assert not any("keda.values" in line and "6444" in line for line in describe_changes(dev))


def test_served_prod_runs_the_bom_s_monitoring_and_keda_releases_the_sandbox_builds():
    """prod pins the reference set's kube-prometheus-stack 88.3.0 and KEDA 2.17.2; the sandbox builds one release
    of each (the BOM's), so a served prod gets those, printed as up-only overrides; dev already pins them."""
    from sglang_platform.facts import bom
    from tools.sim_stacks import committed, describe_changes, overrides_for

    prod = overrides_for(committed("prod"), Path("/charts"), serve=True)
    assert prod["versions"]["kubePrometheusStack"] == bom.KUBE_PROMETHEUS_STACK_CHART == "88.5.3"
    assert prod["versions"]["kedaChart"] == bom.KEDA_CHART == "2.20.2"
    assert "kubePrometheusStack" not in overrides_for(committed("prod"), Path("/charts")).get("versions", {})
    assert "kubePrometheusStack" not in overrides_for(committed("dev"), Path("/charts"), serve=True).get("versions", {})
    lines = [line for line in describe_changes(committed("prod"), serve=True) if "versions.keda" in line]
    assert lines == [
        "sglang-platform:versions.kedaChart = '2.20.2' (up): the sandbox builds one KEDA, the BOM's (DESIGN.md); the "
        "stack's own chart is what preview checks"
    ]
