"""The sandbox's cold-start timeline (tools/simulation/timeline.py): phases read from a pod's status as the API
server writes it and from its SGLang container's timestamped log."""

from __future__ import annotations

from tools.simulation import timeline

T0 = "2026-12-07T17:00:00Z"


def at(seconds: float) -> str:
    whole, frac = divmod(seconds, 1)
    return f"2026-12-07T17:{int(whole) // 60:02d}:{int(whole) % 60:02d}.{round(frac * 1e9):09d}Z"


def pod(name: str, worker_index: str, **status) -> dict:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": T0,
            "labels": {
                "leaderworkerset.sigs.k8s.io/name": "deepseek-r1",
                "leaderworkerset.sigs.k8s.io/worker-index": worker_index,
            },
        },
        "spec": {"nodeName": "gpu-node-1", "containers": [{"name": "sglang-leader"}]},
        "status": status,
    }


def terminated(name: str, finished: float, code: int = 0) -> dict:
    return {"name": name, "state": {"terminated": {"exitCode": code, "finishedAt": at(finished)}}}


def test_a_leader_passes_every_phase_in_order():
    leader = pod(
        "deepseek-r1-0",
        "0",
        conditions=[
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": at(0.5)},
            {"type": "Ready", "status": "True", "lastTransitionTime": at(61)},
        ],
        initContainerStatuses=[terminated("wait-for-weights", 30), terminated("wait-for-group", 45)],
        containerStatuses=[{"name": "sglang-leader", "state": {"running": {"startedAt": at(46)}}}],
    )
    log = "\n".join(
        [
            f"{at(47.25)} [stand-in] node 0 waiting on 10.245.1.2:20000 for 1 more node(s) of the group",
            f"{at(49.5)} [stand-in] node 1 joined (2/2)",
            f"{at(49.5)} [stand-in] group complete: 2 node(s), world size 16",
            f"{at(52.75)} [stand-in] Uvicorn running on http://10.245.1.2:8000",
            "not a timestamped line",
        ]
    )
    line = timeline.group_pod(leader, log)
    assert (line.role, line.node) == ("leader", "gpu-node-1")
    assert line.phases == {
        "scheduled": 0.5,
        "weights present": 30.0,
        "group gate passed": 45.0,
        "SGLang started": 46.0,
        "group formed": 49.5,
        "weights loaded": 52.75,
        "ready": 61.0,
    }
    assert line.ordered()


def test_a_worker_held_at_its_gate_has_only_the_phases_it_reached():
    worker = pod(
        "deepseek-r1-0-1",
        "1",
        conditions=[
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": at(1)},
            {"type": "Ready", "status": "False", "lastTransitionTime": at(1)},
        ],
        # A gate that failed is not a phase passed.
        initContainerStatuses=[terminated("wait-for-weights", 20), terminated("wait-for-group", 25, code=1)],
    )
    line = timeline.group_pod(worker, f"{at(30)} [stand-in] node 1 joined node 0 at deepseek-r1-0.x:20000")
    assert line.role == "worker"
    assert line.phases == {"scheduled": 1.0, "weights present": 20.0, "group formed": 30.0}


def test_a_stager_fetches_then_puts_the_weights_in_place():
    stager = {
        "metadata": {"name": "deepseek-r1-weights-abcde", "creationTimestamp": T0, "labels": {}},
        "spec": {"nodeName": "gpu-node-0"},
        "status": {"containerStatuses": [{"name": "stage-weights", "state": {"running": {"startedAt": at(2)}}}]},
    }
    log = "\n".join(
        [
            f"{at(3)} /mnt/m/.R1.rev-1: fetching {{'repo': 'meituan/DeepSeek-R1-Block-INT8', 'revision': 'main'}}",
            f"{at(9.5)} /mnt/m/R1 -> .R1.rev-1: {{'repo': 'r'}} in place, commit 0123abcd",
        ]
    )
    line = timeline.stager_pod(stager, log)
    assert line.phases == {"started": 2.0, "fetching": 3.0, "in place": 9.5} and line.ordered()
    # One clock for all rows: a pod created 4 s after the first shows its phases 4 s later.
    later = timeline.group_pod(pod("deepseek-r1-0", "0", conditions=[]), "")
    later.created = timeline.parse_time(at(4))
    later.phases = {"scheduled": 1.0}
    rows = timeline.table([line, later]).splitlines()
    assert rows[2].startswith("| deepseek-r1-weights-abcde | gpu-node-0 | 0.0 | 2.0 | 3.0 | 9.5 |")
    assert rows[3] == "| deepseek-r1-0 | gpu-node-1 | 4.0 |  |  |  | 5.0 |  |  |  |  |  |  |"


def test_kubectl_timestamps_with_nanoseconds_parse():
    assert timeline.parse_time("2026-12-07T17:00:01.123456789Z") == timeline.parse_time("2026-12-07T17:00:01.123456Z")
    assert timeline.timestamped("2026-12-07T17:00:01Z hello world") == [
        (timeline.parse_time("2026-12-07T17:00:01Z"), "hello world")
    ]
