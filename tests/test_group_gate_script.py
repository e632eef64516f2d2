"""pod_scripts/wait_for_group.py, the wait-for-group init container, run against a fake Kubernetes API on
127.0.0.1 (tests/fake_kube.py): it waits while a peer's wait-for-weights runs or a peer pod is missing, returns
once every pod of its group passed its local gate, and reads only its own group's pods."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import ROOT
from fake_kube import FakeKube, serve

SCRIPT = ROOT / "pod_scripts" / "wait_for_group.py"
spec = importlib.util.spec_from_file_location("wait_for_group", SCRIPT)
assert spec is not None and spec.loader is not None
wfg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wfg)

NS = "deepseek"
KEY = "3e238779391c8fd563d42eb5af19391bdcd7c130"
GATE = "wait-for-weights"


def pod(
    name: str,
    *,
    gate: dict | None,
    node: str | None = "gpu-a",
    key: str = KEY,
    lws: str = "r1",
    namespace: str = NS,
    deleting: bool = False,
    initialized: bool = False,
    has_gate: bool = True,
) -> dict:
    """A group pod as the API returns it; ``gate``: the state of its wait-for-weights (None: no status yet)."""
    metadata: dict = {
        "name": name,
        "namespace": namespace,
        "labels": {
            "leaderworkerset.sigs.k8s.io/name": lws,
            "leaderworkerset.sigs.k8s.io/group-key": key,
            "leaderworkerset.sigs.k8s.io/group-index": "0",
        },
    }
    if deleting:
        metadata["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    init = [{"name": GATE}, {"name": "wait-for-group"}] if has_gate else [{"name": "wait-for-group"}]
    status: dict = {
        "phase": "Pending",
        "conditions": [{"type": "Initialized", "status": "True" if initialized else "False"}],
    }
    if gate is not None:
        status["initContainerStatuses"] = [{"name": GATE, "state": gate}]
    return {"metadata": metadata, "spec": {"nodeName": node, "initContainers": init}, "status": status}


RUNNING = {"running": {"startedAt": "2025-01-01T00:00:00Z"}}
PASSED = {"terminated": {"exitCode": 0, "reason": "Completed"}}


def env(fake: FakeKube, tmp_path, **extra: str) -> dict[str, str]:
    (tmp_path / "token").write_text(fake.token + "\n")
    return {
        "KUBERNETES_API_URL": fake.url,
        "SERVICEACCOUNT_DIR": str(tmp_path),
        "POD_NAMESPACE": NS,
        "POD_NAME": "r1-0",
        "GROUP_NAME": "r1",
        "GROUP_KEY": KEY,
        "GROUP_INDEX": "0",
        "GROUP_SIZE": "2",
        "WEIGHTS_GATE": GATE,
        "WAIT_POLL_SECONDS": "0",
        **extra,
    }


class Clock:
    """A minute per poll: every poll is a log line."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 60
        return self.t


def run(fake: FakeKube, tmp_path, capsys, max_polls: int = 10) -> tuple[bool, list[str], int]:
    with serve(fake):
        ok = wfg.wait(env(fake, tmp_path), sleep=lambda _: None, clock=Clock(), max_polls=max_polls)
        polls = sum(1 for method, _ in fake.requests if method == "GET")
    lines = [line.split(" ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    return ok, lines, polls


def test_waits_while_a_peers_weights_gate_runs_then_returns_once_all_passed(tmp_path, capsys):
    waiting = [pod("r1-0", gate=PASSED), pod("r1-0-1", gate=RUNNING, node="gpu-new")]
    fake = FakeKube(pod_lists=[waiting, waiting, [pod("r1-0", gate=PASSED), pod("r1-0-1", gate=PASSED)]])
    ok, lines, polls = run(fake, tmp_path, capsys)
    assert ok and polls == 3
    assert lines == [
        "waiting for 1 of 2 pods of group r1-0: r1-0-1 on gpu-new is still waiting for weights",
        "waiting for 1 of 2 pods of group r1-0: r1-0-1 on gpu-new is still waiting for weights",
        "all 2 pods of group r1-0 are past their weights gate",
    ]
    # Only its own group's pods, with the bearer token.
    selector = "leaderworkerset.sigs.k8s.io/name%3Dr1%2Cleaderworkerset.sigs.k8s.io/group-key%3D" + KEY
    assert set(fake.requests) == {("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector={selector}")}


def test_logs_about_once_a_minute_not_every_poll(tmp_path, capsys):
    waiting = [pod("r1-0", gate=PASSED), pod("r1-0-1", gate=RUNNING, node="gpu-new")]
    fake = FakeKube(pod_lists=[waiting])
    ticks = iter([0.0, 15.0, 30.0, 45.0, 60.0, 75.0])
    with serve(fake):
        ok = wfg.wait(env(fake, tmp_path), sleep=lambda _: None, clock=lambda: next(ticks), max_polls=5)
    assert not ok
    lines = [line.split(" ", 1)[1] for line in capsys.readouterr().out.splitlines()]
    # Polls at 0, 15, 30, 45 and 60 s: logged at 0 and at 60.
    assert lines == ["waiting for 1 of 2 pods of group r1-0: r1-0-1 on gpu-new is still waiting for weights"] * 2


def test_a_missing_peer_pod_is_waited_for(tmp_path, capsys):
    # The worker's StatefulSet has not created its pod yet (or it was deleted); then it appears, still gated.
    fake = FakeKube(
        pod_lists=[
            [pod("r1-0", gate=PASSED)],
            [pod("r1-0", gate=PASSED), pod("r1-0-1", gate=None, node=None)],
            [pod("r1-0", gate=PASSED), pod("r1-0-1", gate=PASSED)],
        ]
    )
    ok, lines, polls = run(fake, tmp_path, capsys)
    assert ok and polls == 3
    assert lines == [
        "waiting for 1 of 2 pods of group r1-0: 1 pod not created yet",
        "waiting for 1 of 2 pods of group r1-0: r1-0-1 on no node is not scheduled yet",
        "all 2 pods of group r1-0 are past their weights gate",
    ]


def test_other_groups_namespaces_and_deleted_pods_do_not_count(tmp_path, capsys):
    others = [
        # The same LeaderWorkerSet's other replica, another LeaderWorkerSet's group, another namespace.
        pod("r1-1-1", gate=PASSED, key="other"),
        pod("r1x-0-1", gate=PASSED, lws="r1x"),
        pod("r1-0-1", gate=PASSED, namespace="elsewhere"),
        # The old worker of a group being recreated: its replacement is what counts.
        pod("r1-0-1", gate=PASSED, deleting=True),
    ]
    fake = FakeKube(pod_lists=[[pod("r1-0", gate=PASSED), *others]])
    ok, lines, polls = run(fake, tmp_path, capsys, max_polls=2)
    assert not ok and polls == 2
    assert lines == ["waiting for 1 of 2 pods of group r1-0: 1 pod not created yet"] * 2


def test_a_failed_or_restarting_gate_is_not_through_an_initialized_pod_is(tmp_path, capsys):
    crash = {"waiting": {"reason": "CrashLoopBackOff"}}
    fake = FakeKube(
        pod_lists=[
            [pod("r1-0", gate=PASSED), pod("r1-0-1", gate={"terminated": {"exitCode": 1}}, node="gpu-new")],
            [pod("r1-0", gate=PASSED), pod("r1-0-1", gate=crash, node="gpu-new")],
            # Past init (its statuses no longer say), or a pod without the weights gate: nothing to wait for.
            [pod("r1-0", gate=None, initialized=True), pod("r1-0-1", gate=None, has_gate=False)],
        ]
    )
    ok, lines, _ = run(fake, tmp_path, capsys)
    assert ok
    assert lines == [
        "waiting for 1 of 2 pods of group r1-0: r1-0-1 on gpu-new failed its wait-for-weights (exit code 1)",
        "waiting for 1 of 2 pods of group r1-0: r1-0-1 on gpu-new is still waiting for weights (CrashLoopBackOff)",
        "all 2 pods of group r1-0 are past their weights gate",
    ]


def test_an_unreachable_api_is_retried(tmp_path, capsys):
    fake = FakeKube(pod_lists=[[pod("r1-0", gate=PASSED), pod("r1-0-1", gate=PASSED)]])
    with serve(fake):
        port = fake.port
    # The server is gone: every poll fails and is retried, none is taken for a complete group.
    e = env(fake, tmp_path, KUBERNETES_API_URL=f"http://127.0.0.1:{port}")
    assert not wfg.wait(e, sleep=lambda _: None, clock=Clock(), max_polls=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert all("waiting for 2 of 2 pods of group r1-0: cannot list the group's pods (URLError" in x for x in lines)


def test_the_token_is_read_at_every_poll(tmp_path, capsys):
    # The kubelet rotates the projected token while the gate waits (hours, past the token's hour).
    waiting = [pod("r1-0", gate=PASSED), pod("r1-0-1", gate=RUNNING)]
    fake = FakeKube(token="first", pod_lists=[waiting, [pod("r1-0", gate=PASSED), pod("r1-0-1", gate=PASSED)]])

    def rotate(_: float) -> None:
        fake.token = "second"
        (tmp_path / "token").write_text("second")

    with serve(fake):
        assert wfg.wait(env(fake, tmp_path), sleep=rotate, clock=Clock(), max_polls=3)
    assert capsys.readouterr().out.splitlines()[-1].endswith("all 2 pods of group r1-0 are past their weights gate")


def test_forbidden_keeps_waiting_naming_the_cause(tmp_path, capsys):
    """Exiting would restart the init container, and RecreateGroupOnPodRestart would recreate the whole group."""
    fake = FakeKube(forbid_pods=True)
    ok, lines, polls = run(fake, tmp_path, capsys, max_polls=3)
    assert not ok and polls == 3
    assert len(lines) == 3
    assert all(
        line.startswith(f"waiting for 2 of 2 pods of group r1-0: error: listing pods in {NS} is forbidden: ")
        and line.endswith(": its ServiceAccount or Role is missing")
        for line in lines
    ), lines


def test_only_the_pods_of_its_own_revision_count(tmp_path, capsys):
    """A rolling update recreates a group under the same group key: the old revision's pods, still terminating
    and long past their gates, must not let the new pods through."""
    fake = FakeKube(pod_lists=[[pod("r1-0", gate=PASSED)]])
    with serve(fake):
        ok = wfg.wait(env(fake, tmp_path, GROUP_REVISION="rev2"), sleep=lambda _: None, clock=Clock(), max_polls=1)
    assert not ok
    selector = (
        "leaderworkerset.sigs.k8s.io/name%3Dr1%2Cleaderworkerset.sigs.k8s.io/group-key%3D"
        + KEY
        + "%2Cleaderworkerset.sigs.k8s.io/template-revision-hash%3Drev2"
    )
    assert set(fake.requests) == {("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector={selector}")}


def test_an_ipv6_service_address_is_bracketed():
    api = wfg.KubeApi({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"})
    assert api.url == "https://[fd00::1]:443"
    assert wfg.KubeApi({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}).url == "https://10.96.0.1:443"


@pytest.mark.parametrize("argv", [["x", "extra"]])
def test_arguments_are_refused(argv):
    assert wfg.main(argv) == 2
