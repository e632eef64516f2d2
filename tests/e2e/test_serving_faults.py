"""A served two-node group and its faults: the committed dev stack with its group made two 1-GPU pods (tp 2), the
stack's API key set and the distributed-init timeout at its minimum, deployed by `tools/sandbox.py up --serve`. The
SGLang stand-in keeps SGLang's group behaviour (docs/standin.md, "Groups"); what restarts a group is the real
LeaderWorkerSet controller, told by the node agent's container states.

- the leader is Ready only after its worker joined;
- a request without the stack's key, or with another, gets 401, from the group and through the gateway (whose
  `GET /v1/models` alone answers without one);
- the leader's process killed: LeaderWorkerSet recreates the whole group (RecreateGroupOnPodRestart), which
  serves again;
- a worker that never comes (the nodes it may use cordoned): the leader fails at `--dist-timeout` with torch's
  message;
- cluster DNS frozen (CoreDNS stopped with SIGSTOP): a recreated group's worker cannot resolve its leader, the group
  stays unready, and serves again once DNS answers."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from conftest import ROOT

from tools.sim_stacks import SECRETS

from .serving import Served, derived_stack, group_change, leader_and_worker, ready

NS = "sglang-dev"
GROUP = "qwen-small"
MODEL = "qwen2.5-1.5b-instruct"
GATEWAY = f"http://{GROUP}-gateway.{NS}.svc.cluster.local:8000"
SELECTOR = f"leaderworkerset.sigs.k8s.io/name={GROUP}"
KEY = "e2e-faults-key-0123456789"
DIST_TIMEOUT = 60  # the stack's minimum (config: distTimeoutSeconds >= 60)


@pytest.fixture(scope="module")
def served(engine, tmp_path_factory):
    base = tmp_path_factory.mktemp("serving-faults")
    source = ROOT / "Pulumi.dev.yaml"
    stack = derived_stack(
        source,
        base / "stack",
        group_change(source, 0, nodes=2, distTimeoutSeconds=DIST_TIMEOUT),
        {
            "inferenceGroups[0].nodes: 2": "a group of two pods, leader and worker, on distinct nodes",
            f"inferenceGroups[0].distTimeoutSeconds: {DIST_TIMEOUT}": "a missing worker fails the leader in a minute",
        },
    )
    with Served.of(engine, base, stack, SECRETS["dev"] | {"apiKey": KEY}, "faults") as s:
        yield s


def group(served: Served) -> tuple[dict, dict]:
    return leader_and_worker(served.pods(NS, SELECTOR))


def uids(served: Served) -> set[str]:
    return {p["metadata"]["uid"] for p in served.pods(NS, SELECTOR)}


def serving_again(served: Served, old: set[str], timeout: float = 600) -> tuple[dict, dict]:
    """A new group (no pod of ``old``) with both pods Ready, answering through the gateway."""

    def new_and_ready():
        pods = served.pods(NS, SELECTOR)
        if len(pods) == 2 and all(ready(p) for p in pods) and not {p["metadata"]["uid"] for p in pods} & old:
            return leader_and_worker(pods)
        return None

    pair = served.cluster.wait_for("a new group, Ready", new_and_ready, timeout, 2)

    def answers():
        return served.curl("-H", f"Authorization: Bearer {KEY}", f"{GATEWAY}/v1/models")[0] == 200

    served.cluster.wait_for("the gateway answers with the new group", answers, 180, 2)
    return pair


def test_the_leader_is_ready_only_after_its_worker_joined(served, steps):
    served.up()
    leader, worker = group(served)
    assert ready(leader) and ready(worker)
    assert leader["spec"]["nodeName"] != worker["spec"]["nodeName"]
    log = served.container_log(leader, "sglang-leader")
    joined = log.index("[stand-in] node 1 joined (2/2)")
    assert joined < log.index("[stand-in] group complete: 2 node(s), world size 2") < log.index("ready to roll")
    steps.done.add("up")


def test_a_request_without_the_key_is_refused(served, steps):
    """The group checks --api-key on every API path; through the gateway (sglang-router 0.3.2) a chat without the
    key, or with another, is refused too, while `GET /v1/models` is answered by the router itself, keyless
    (docs/gateway.md, "RBAC and the API key")."""
    steps.need("up")
    leader, _ = group(served)
    direct = f"http://{leader['status']['podIP']}:8000/v1/models"
    assert served.curl(direct)[0] == 401
    code, body = served.curl("-H", f"Authorization: Bearer {KEY}", direct)
    assert code == 200 and MODEL in body, body
    assert served.chat(f"{GATEWAY}/v1", MODEL)[0] == 401
    assert served.chat(f"{GATEWAY}/v1", MODEL, "not-the-key")[0] == 401
    code, body = served.chat(f"{GATEWAY}/v1", MODEL, KEY)
    assert code == 200 and json.loads(body)["choices"], body
    code, body = served.curl(f"{GATEWAY}/v1/models")
    assert code == 200 and MODEL in body, (code, body)


def test_open_webui_lists_the_model_through_the_gateway_with_the_key(served, steps):
    """The UI's pod (Open WebUI stood in: its connection settings read as the release reads them) asks the gateway
    by its Service name, with the stack's key, for the models it offers users."""
    steps.need("up")
    code, body = served.curl(f"http://open-webui.{NS}.svc.cluster.local:3000/api/models")
    assert code == 200, body
    models = json.loads(body)["data"]
    assert [m["id"] for m in models] == [MODEL], body


def test_a_killed_leader_restarts_the_whole_group(served, steps):
    steps.need("up")
    leader, worker = group(served)
    before = uids(served)
    pid = served.container_pid(leader, "sglang-leader")
    print(f"SIGKILL to the leader's SGLang process (host PID {pid}) on {leader['spec']['nodeName']}")
    os.kill(pid, signal.SIGKILL)
    _, new_worker = serving_again(served, before)
    # Both pods are new: the worker was recreated with its leader, not left waiting for a rank 0 that is gone.
    assert new_worker["metadata"]["uid"] != worker["metadata"]["uid"]
    steps.done.add("restarted")


def test_a_worker_that_never_comes_fails_the_leader_at_dist_timeout(served, steps):
    steps.need("up")
    leader, _ = group(served)
    keep = leader["spec"]["nodeName"]
    nodes = [n["metadata"]["name"] for n in served.cluster.get("nodes")["items"]]
    others = [n for n in nodes if n != keep]
    before = uids(served)
    served.cluster.kubectl("cordon", *others)
    try:
        # The group recreated on one schedulable node: its worker stays Pending on the anti-affinity.
        served.cluster.kubectl("delete", "pods", "-n", NS, "-l", SELECTOR, "--wait=false")

        pending: set[str] = set()

        def leader_failed():
            pods = served.pods(NS, SELECTOR)
            pending.update(
                p["metadata"]["name"]
                for p in pods
                if p["metadata"]["uid"] not in before and p["status"].get("phase") == "Pending"
            )
            for pod in pods:
                if (
                    pod["metadata"]["uid"] in before
                    or pod["metadata"]["labels"].get("leaderworkerset.sigs.k8s.io/worker-index") != "0"
                ):
                    continue
                status: dict = next(
                    (s for s in pod["status"].get("containerStatuses") or [] if s["name"] == "sglang-leader"), {}
                )
                terminated = (status.get("lastState") or {}).get("terminated") or (status.get("state") or {}).get(
                    "terminated"
                )
                if terminated:
                    return pod, terminated
            return None

        started = time.monotonic()
        pod, terminated = served.cluster.wait_for(
            "the leader failing at --dist-timeout", leader_failed, DIST_TIMEOUT + 240, 2
        )
        print(f"the leader exited {terminated.get('exitCode')} after about {time.monotonic() - started:.0f} s")
        assert terminated["exitCode"] == 1
        log = served.container_log(pod, "sglang-leader")
        assert (
            f"torch.distributed.DistStoreError: Timed out after {DIST_TIMEOUT + 1} seconds waiting for clients. "
            "1/2 clients joined."
        ) in log, log[-3000:]
        # Its worker was Pending meanwhile: the only schedulable node holds the leader (anti-affinity).
        assert f"{GROUP}-0-1" in pending, pending
    finally:
        served.cluster.kubectl("uncordon", *others)
    serving_again(served, before)


def test_a_worker_that_cannot_resolve_its_leader_keeps_the_group_unready(served, steps):
    steps.need("up")
    before = uids(served)
    served.cluster.sandbox.send_signal("coredns", signal.SIGSTOP)
    try:
        served.cluster.kubectl("delete", "pods", "-n", NS, "-l", SELECTOR, "--wait=false")

        def worker_cannot_resolve():
            for pod in served.pods(NS, SELECTOR):
                if (
                    pod["metadata"]["uid"] in before
                    or pod["metadata"]["labels"].get("leaderworkerset.sigs.k8s.io/worker-index") != "1"
                ):
                    continue
                log = served.container_log(pod, "sglang-worker")
                if "[W socket.cpp]" in log:
                    return pod, log
            return None

        pod, log = served.cluster.wait_for("the worker failing to resolve its leader", worker_cannot_resolve, 300, 2)
        print(f"{pod['metadata']['name']}:", log[-1500:])
        assert "cannot be retrieved (gai error:" in log, log[-3000:]
        # Held long enough to be sure nothing turns Ready while names do not resolve.
        for _ in range(10):
            time.sleep(3)
            assert not any(ready(p) for p in served.pods(NS, SELECTOR) if p["metadata"]["uid"] not in before)
    finally:
        served.cluster.sandbox.send_signal("coredns", signal.SIGCONT)
    serving_again(served, before)


def test_smg_refuses_a_request_without_the_key(served, steps, tmp_path):
    """The same stack with the gateway's successor (versions.gatewayImage lightseekorg/smg:1.13.0): a chat without
    the key, or with another, is refused through it as through sglang-router 0.3.2."""
    steps.need("up")
    source = served.stack_file
    stack = derived_stack(
        source,
        tmp_path / "smg",
        {"versions": {"gatewayImage": "lightseekorg/smg:1.13.0"}},
        {"versions.gatewayImage: lightseekorg/smg:1.13.0": "the Shepherd Model Gateway in place of sglang-router"},
    )
    served.up(stack)

    def smg_answers():
        code, body = served.curl("-H", f"Authorization: Bearer {KEY}", f"{GATEWAY}/v1/models")
        return (code, body) if code == 200 and MODEL in body else None

    served.cluster.wait_for("smg serving the model", smg_answers, 300, 3)
    assert served.chat(f"{GATEWAY}/v1", MODEL)[0] == 401
    assert served.chat(f"{GATEWAY}/v1", MODEL, "not-the-key")[0] == 401
    code, body = served.chat(f"{GATEWAY}/v1", MODEL, KEY)
    assert code == 200 and json.loads(body)["choices"], body
