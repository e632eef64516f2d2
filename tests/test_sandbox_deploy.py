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


def pod(
    name: str, phase: str, ready: bool, statuses: list[dict], conditions: list[dict] | None = None, job: bool = False
) -> dict:
    conds = [{"type": "Ready", "status": "True" if ready else "False"}, *(conditions or [])]
    owners = [{"kind": "Job", "name": name.rsplit("-", 1)[0]}] if job else []
    return {
        "metadata": {"name": name, "namespace": "ns", "ownerReferences": owners},
        "status": {"phase": phase, "conditions": conds, "containerStatuses": statuses},
    }


def test_not_ready_names_each_pod_and_why():
    pods = [
        pod("job-x", "Succeeded", False, [], job=True),
        # Running and Ready (no readiness probe), but the Job's work is not done: prod's benchmark measuring.
        pod("bench-abc", "Running", True, [{"name": "c", "ready": True, "state": {"running": {}}}], job=True),
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
        "ns/bench-abc (Running): its Job has not completed",
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
