"""The sandbox as a user runs it: `tools/sandbox.py up` of the committed dev stack (the overrides printed, every pod
Ready, the outputs as JSON on stdout), `exec`, and `down`, which leaves no namespace behind."""

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
        up = sandbox("up", "--stack-file", str(ROOT / "Pulumi.dev.yaml"), *secrets, run=run, netns=netns)
        assert up.returncode == 0, up.stderr[-6000:]
        outputs = json.loads(up.stdout)
        assert outputs["gateway"]["qwen2.5-1.5b-instruct"]["baseUrl"] == (
            "http://qwen-small-gateway.sglang-dev.svc.cluster.local:8000/v1"
        )
        assert "overrides the simulation needs for dev:" in up.stderr
        assert "sglang-platform:lws.mode = 'present' (up)" in up.stderr
        # Inside: kubectl configured against the sandbox; the LeaderWorkerSet the stack made is there.
        lws = sandbox("exec", "--", "kubectl", "get", "lws", "-n", "sglang-dev", "-o", "name", run=run, netns=netns)
        assert lws.stdout.split() == ["leaderworkerset.leaderworkerset.x-k8s.io/qwen-small"], lws.stderr
        # Nothing outside is reachable from in there.
        out = sandbox("exec", "--", "curl", "-sS", "-m", "3", "https://10.0.0.1", run=run, netns=netns)
        assert out.returncode == 7, out.stderr
    finally:
        down = sandbox("down", run=run, netns=netns, timeout=180)
    assert down.returncode == 0, down.stderr
    assert f"network namespace {netns} deleted" in down.stderr
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
