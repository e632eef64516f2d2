"""The sandbox as a user runs it: `tools/sandbox.py up --serve` of the committed dev stack (the overrides printed,
every pod of it running for real on the node agent's nodes and Ready, the outputs as JSON on stdout), the README's
smoke test through the gateway's Service name inside the namespace, and `down`, which leaves no namespace behind.

What runs: the download Job fetches from the model hub stand-in, the real sglang-router 0.3.2 gateway discovers the
group's pod through the API server with its own token, the SGLang stand-in answers; Service names resolve through
CoreDNS and ClusterIPs route through kube-proxy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from conftest import ROOT

from tools.engine import Engine
from tools.sim_stacks import SECRETS


def sandbox(*args: str, run, netns: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "sandbox.py"), "--run-dir", str(run), "--netns", netns, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | {"PULUMI_CONFIG_PASSPHRASE": "sandbox-cli"},
        check=False,
    )


def test_up_exec_down(engine: Engine, tmp_path):
    run, netns = tmp_path / "run", f"sbx-cli-{uuid.uuid4().hex[:6]}"
    secrets = [f"--secret={k}={v}" for k, v in SECRETS["dev"].items()]
    try:
        up = sandbox("up", "--serve", "--stack-file", str(ROOT / "Pulumi.dev.yaml"), *secrets, run=run, netns=netns)
        assert up.returncode == 0, up.stderr[-6000:]
        assert up.stdout.strip(), up.stderr[-3000:]
        outputs = json.loads(up.stdout)
        assert outputs["gateway"]["qwen2.5-1.5b-instruct"]["baseUrl"] == (
            "http://qwen-small-gateway.sglang-dev.svc.cluster.local:8000/v1"
        )
        assert "overrides the simulation needs for dev:" in up.stderr
        assert "sglang-platform:lws.mode = 'present' (up)" in up.stderr
        # Inside: kubectl configured against the sandbox; the LeaderWorkerSet the stack made is there.
        lws = sandbox("exec", "--", "kubectl", "get", "lws", "-n", "sglang-dev", "-o", "name", run=run, netns=netns)
        assert lws.stdout.split() == ["leaderworkerset.leaderworkerset.x-k8s.io/qwen-small"], lws.stderr
        assert "sglang-platform:modelHubs = http://10.246.0.80:8090 (both hubs)" in up.stderr
        # A client inside, by the gateway's Service name: the smoke test passes, /v1/models lists the served name.
        base = outputs["gateway"]["qwen2.5-1.5b-instruct"]["baseUrl"]
        smoke = sandbox(
            "exec",
            "--",
            sys.executable,
            str(ROOT / "tools" / "smoke_test.py"),
            "--base-url",
            base,
            run=run,
            netns=netns,
            timeout=300,
        )
        assert smoke.returncode == 0 and "smoke test passed: qwen2.5-1.5b-instruct answered" in smoke.stdout, (
            smoke.stdout + smoke.stderr
        )
        models = sandbox("exec", "--", "curl", "-sS", "-m", "10", f"{base}/models", run=run, netns=netns)
        assert [m["id"] for m in json.loads(models.stdout)["data"]] == ["qwen2.5-1.5b-instruct"], models.stdout
        # Every pod of the stack runs on the node agent's nodes (none is kwok's), and the download Job completed.
        pods = json.loads(
            sandbox(
                "exec", "--", "kubectl", "get", "pods", "-n", "sglang-dev", "-o", "json", run=run, netns=netns
            ).stdout
        )["items"]
        phases = {p["metadata"]["name"].rsplit("-", 1)[0]: p["status"]["phase"] for p in pods}
        assert phases["qwen-small-model-download"] == "Succeeded"
        assert phases["qwen-small"] == "Running"
        # Inside, 10.0.0.1 is the kubernetes Service now (kube-proxy); an address outside the namespace's own is
        # unreachable (192.0.2.1: TEST-NET-1, routed nowhere).
        out = sandbox("exec", "--", "curl", "-sS", "-m", "3", "https://192.0.2.1", run=run, netns=netns)
        assert out.returncode == 7 and "Couldn't connect" in out.stderr, out.stderr
    finally:
        down = sandbox("down", run=run, netns=netns, timeout=180)
    assert down.returncode == 0, down.stderr
    assert f"network namespace {netns} deleted" in down.stderr
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
