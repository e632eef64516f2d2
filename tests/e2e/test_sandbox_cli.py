"""The sandbox as a user runs it: `tools/sandbox.py up --serve` of the committed dev stack (the overrides printed,
every pod of it running for real on the node agent's nodes and Ready, the outputs as JSON on stdout), the README's
smoke test through the gateway's Service name inside the namespace, two replicas behind the gateway's cache-aware
policy, and `down`, which leaves no namespace behind.

What runs: the download Job fetches from the model hub stand-in, the real sglang-router 0.3.2 gateway discovers the
group's pods through the API server with its own token, the SGLang stand-in answers; Service names resolve through
CoreDNS and ClusterIPs route through kube-proxy."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from conftest import ROOT

from tools.sim_stacks import SECRETS

from .serving import Served, ready, sandbox_argv, stand_in_stats

NS = "sglang-dev"
GROUP = "qwen-small"
MODEL = "qwen2.5-1.5b-instruct"
BASE = f"http://{GROUP}-gateway.{NS}.svc.cluster.local:8000/v1"


@pytest.fixture(scope="module")
def served(engine, tmp_path_factory):
    with Served.of(
        engine, tmp_path_factory.mktemp("sandbox-cli"), ROOT / "Pulumi.dev.yaml", SECRETS["dev"], "cli"
    ) as s:
        yield s


def test_up_deploys_dev_served_for_real(served, steps):
    served.start_up()
    code, outputs, err = served.finish_up()
    assert code == 0, err[-6000:]
    assert outputs["gateway"][MODEL]["baseUrl"] == BASE
    assert "overrides the simulation needs for dev:" in err
    assert "sglang-platform:lws.mode = 'present' (up)" in err
    assert "sglang-platform:modelHubs = http://10.246.0.80:8090 (both hubs)" in err
    # Inside: kubectl configured against the sandbox; the LeaderWorkerSet the stack made is there.
    lws = served.exec("kubectl", "get", "lws", "-n", NS, "-o", "name")
    assert lws.stdout.split() == [f"leaderworkerset.leaderworkerset.x-k8s.io/{GROUP}"], lws.stderr
    steps.done.add("up")


def test_the_smoke_test_passes_through_the_gateways_service_name(served, steps):
    steps.need("up")
    smoke = served.exec(sys.executable, str(ROOT / "tools" / "smoke_test.py"), "--base-url", BASE)
    assert smoke.returncode == 0 and f"smoke test passed: {MODEL} answered" in smoke.stdout, smoke.stdout + smoke.stderr
    models = served.exec("curl", "-sS", "-m", "10", f"{BASE}/models")
    assert [m["id"] for m in json.loads(models.stdout)["data"]] == [MODEL], models.stdout
    # Every pod of the stack runs on the node agent's nodes (none is kwok's), and the download Job completed.
    phases = {p["metadata"]["name"].rsplit("-", 1)[0]: p["status"]["phase"] for p in served.pods(NS)}
    assert phases[f"{GROUP}-model-download"] == "Succeeded"
    assert phases[GROUP] == "Running"
    # Inside, 10.0.0.1 is the kubernetes Service now (kube-proxy); an address outside the namespace's own is
    # unreachable (192.0.2.1: TEST-NET-1, routed nowhere).
    out = served.exec("curl", "-sS", "-m", "3", "https://192.0.2.1")
    assert out.returncode == 7 and "Couldn't connect" in out.stderr, out.stderr
    steps.done.add("serving")


def burst(served: Served, prompts: list[str]) -> dict[str, int]:
    """The prompts sent at once through the gateway; how many requests each replica served meanwhile."""
    pods = [p for p in served.pods(NS, f"leaderworkerset.sigs.k8s.io/name={GROUP}") if ready(p)]
    before = {p["metadata"]["name"]: stand_in_stats(served, p, None)["requests"] for p in pods}
    result = subprocess.run(
        sandbox_argv(
            served.run,
            served.netns,
            "exec",
            "--",
            "python3",
            str(ROOT / "tests" / "e2e" / "send_chats.py"),
            BASE,
            MODEL,
            "32",
        ),
        input=json.dumps(prompts),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0 and json.loads(result.stdout) == [200] * len(prompts), result.stdout + result.stderr
    return {
        p["metadata"]["name"]: stand_in_stats(served, p, None)["requests"] - before[p["metadata"]["name"]] for p in pods
    }


def test_two_replicas_the_gateway_routes_by_prefix(served, steps):
    """Scaled to two groups, as KEDA would (its operator does not run in the sandbox). Eight requests at once that
    share a long prefix all go to one replica (the first one's text is in that replica's tree, and the others
    match it above the cache threshold); eight at once whose prefixes differ are spread over both (each a miss,
    sent to the least loaded replica). sglang-router 0.3.2's cache_aware policy, observed in the stand-ins'
    counters. (A miss goes to the least loaded replica, the first one on a tie: sequential misses all land on
    one replica, docs/gateway.md.)"""
    steps.need("serving")
    print("scaled as the autoscaler would: kubectl scale leaderworkerset/qwen-small --replicas=2")
    served.cluster.kubectl("scale", f"leaderworkerset/{GROUP}", "-n", NS, "--replicas=2")
    selector = f"leaderworkerset.sigs.k8s.io/name={GROUP}"

    def two_ready():
        pods = [p for p in served.pods(NS, selector) if ready(p)]
        return pods if len(pods) == 2 else None

    served.cluster.wait_for("two replicas Ready", two_ready, 300, 2)

    def both_healthy():
        code, body = served.curl(f"http://{GROUP}-gateway.{NS}.svc.cluster.local:8000/workers")
        return code == 200 and [w["is_healthy"] for w in json.loads(body)["workers"]] == [True, True]

    served.cluster.wait_for("the gateway routes to both, healthy", both_healthy, 180, 2)
    salt = uuid.uuid4().hex[:8]
    shared = " ".join(f"context {salt} sentence {i} of a long shared system prompt." for i in range(150))
    counts = burst(served, [f"{shared} Question {i}: what follows?" for i in range(8)])
    assert sorted(counts.values()) == [0, 8], counts
    spread = burst(served, [" ".join(f"topic{salt}{i} word{j}" for j in range(300)) for i in range(8)])
    print(f"shared prefix: {counts}; distinct prefixes: {spread}")
    assert sum(spread.values()) == 8 and min(spread.values()) >= 2, spread
