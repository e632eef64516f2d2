"""prod served for real: the committed Pulumi.prod.yaml (its secrets, the API key prod requires) deployed with
`tools/sandbox.py up --serve`, every pod of it running on the node agent's nodes.

What runs: the weights stager DaemonSet fetches DeepSeek-R1-Block-INT8 from the model hub stand-in into each GPU
node's host path, the group's two pods wait in `wait-for-weights` for their node's copy and in `wait-for-group` for
each other, the SGLang stand-ins of 0.4.4 meet at `--dist-init-addr`, the real sglang-router 0.3.2 gateway (two
replicas) discovers the leader with its own token and checks the key, and the benchmark Job runs 0.4.4's own
bench_serving through the gateway and writes its result ConfigMap. The steps build on each other (tests/e2e/
conftest.py, Steps); each prints how long it took, and the module's end prints them all (the sandbox's timings go
to docs/sandbox.md, never into an assertion)."""

from __future__ import annotations

import contextlib
import datetime
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

from tools.sim_stacks import SECRETS
from tools.simulation.deploy import not_ready
from tools.simulation.timeline import POD_PHASES, STAGER_PHASES, parse_time, timestamped

from .serving import Served, StagerLocks, init_state, leader_and_worker, ready, sandbox, stand_in_stats

NS = "deepseek"
GROUP = "deepseek-r1"
MODEL = "deepseek-r1"
KEY = SECRETS["prod"]["apiKey"]
GATEWAY = f"http://{GROUP}-gateway.{NS}.svc.cluster.local:8000"
BASE = f"{GATEWAY}/v1"
GROUP_SELECTOR = f"leaderworkerset.sigs.k8s.io/name={GROUP}"
STAGER_SELECTOR = f"app.kubernetes.io/component=weights-stager,app.kubernetes.io/instance={GROUP}"
# The group's modelVolume (a hostPath) and its model directory, as Pulumi.prod.yaml names them.
MODEL_ROOT = "/mnt/catcat_data/model"
MODEL_DIR = "DeepSeek-R1-Block-INT8"
IDENTITY = {"repo": "meituan/DeepSeek-R1-Block-INT8", "revision": "main", "source": "huggingface"}
HUB = "http://10.246.0.80:8090"
# Every pod of prod Ready includes the benchmark Job's pod Succeeded: 2000 requests through the gateway on this
# machine's two cores, after the cold start (docs/sandbox.md has what it took).
UP_TIMEOUT = "2400"
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def served(engine, tmp_path_factory):
    with Served.of(
        engine, tmp_path_factory.mktemp("serving-prod"), ROOT / "Pulumi.prod.yaml", SECRETS["prod"], "prod"
    ) as s:
        yield s
    print("timings of this run (s):", *(f"{k}: {v:.0f}" for k, v in TIMES.items()), sep="\n  ")


@contextlib.contextmanager
def timed(name: str) -> Iterator[None]:
    """How long a step took, printed and kept in TIMES (reported, never asserted)."""
    start = time.monotonic()
    try:
        yield
    finally:
        TIMES[name] = time.monotonic() - start
        print(f"{name}: {TIMES[name]:.0f} s")


def at(stamp: str) -> datetime.datetime:
    return parse_time(stamp)


def second(moment: datetime.datetime) -> datetime.datetime:
    """A log line's time cut to the second: the API server keeps container times to the second, cut down."""
    return moment.replace(microsecond=0)


def terminated(pod: dict, name: str, init: bool = True) -> dict:
    key = "initContainerStatuses" if init else "containerStatuses"
    status = next(s for s in pod["status"].get(key) or [] if s["name"] == name)
    return status["state"]["terminated"]


def gpu_nodes(served: Served) -> list[str]:
    items = served.cluster.get("nodes", "-l", "nvidia.com/gpu.present=true")["items"]
    return sorted(n["metadata"]["name"] for n in items)


def stager_log(served: Served, pod: dict) -> list[tuple[datetime.datetime, str]]:
    name = pod["metadata"]["name"]
    return timestamped(served.cluster.kubectl("logs", "-n", NS, name, "--timestamps").stdout)


def in_place_at(lines: list[tuple[datetime.datetime, str]]) -> datetime.datetime | None:
    return next((t for t, text in lines if " in place, commit " in text), None)


def node_model_root(served: Served, node: str) -> Path:
    return served.node_dir(node) / MODEL_ROOT.lstrip("/")


def smoke_test(served: Served):
    """The README's smoke test, inside the namespace, through the gateway's Service name with the stack's key."""
    return served.exec(sys.executable, str(ROOT / "tools" / "smoke_test.py"), "--base-url", BASE, "--api-key", KEY)


def test_up_serves_prod_every_pod_ready(served, steps):
    with timed("cold up --serve of prod (the benchmark Job included)"):
        served.start_up(None, "--timeout", UP_TIMEOUT)
        code, outputs, err = served.finish_up(timeout=float(UP_TIMEOUT) + 900)
    assert code == 0, err[-8000:]
    assert "overrides the simulation needs for prod:" in err
    assert f"sglang-platform:modelHubs = {HUB} (both hubs)" in err
    assert "sglang-platform:lws.mode = 'present' (up)" in err
    # prod's benchmark (SGLang 0.4.4) can run here: up does not leave it out.
    assert "benchmark removed" not in err
    assert outputs["gateway"][MODEL]["baseUrl"] == BASE
    # Every pod of every namespace is Ready (a Job's: Succeeded), on nodes that are the agent's, none kwok's.
    pods = served.cluster.get("pods", "-A")["items"]
    assert not_ready(pods) == []
    nodes = served.cluster.get("nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes if "kwok.x-k8s.io/node" in n["metadata"].get("annotations", {})] == []
    group = served.pods(NS, GROUP_SELECTOR)
    assert len(group) == 2 and all(p["status"]["phase"] == "Running" and ready(p) for p in group), group
    # The group spans two nodes (its pods' anti-affinity; each takes a whole 8-GPU node).
    assert len({p["spec"]["nodeName"] for p in group}) == 2
    leader, worker = leader_and_worker(group)
    assert [c["name"] for c in leader["spec"]["containers"]] == ["sglang-leader"]
    assert [c["name"] for c in worker["spec"]["containers"]] == ["sglang-worker"]
    # The rest of the serving namespace: the gateway's two replicas on two nodes, a stager on every GPU node, the
    # benchmark's pod done.
    gateways = served.pods(NS, f"app.kubernetes.io/instance={GROUP}-gateway")
    assert len(gateways) == 2 and all(ready(p) for p in gateways), gateways
    assert len({p["spec"]["nodeName"] for p in gateways}) == 2
    assert sorted(p["spec"]["nodeName"] for p in served.pods(NS, STAGER_SELECTOR)) == gpu_nodes(served)
    bench = served.pods(NS, "app.kubernetes.io/component=benchmark")
    assert [p["status"]["phase"] for p in bench] == ["Succeeded"], bench
    steps.done.add("up")


def test_the_stagers_fetched_each_nodes_copy_before_the_group_started(served, steps):
    """Cold: every GPU node's stager fetched from the hub stand-in into that node's directory; each pod of the
    group finished `wait-for-weights` no earlier than its node's copy was in place, `wait-for-group` no earlier
    than both pods' weights gates, and SGLang started after that. (The hub stand-in's model is a few MiB, in place
    before Pulumi creates the group: here the gates pass at once on a cold start; the last test holds them.)"""
    steps.need("up")
    with timed("weights checks"):
        code, body = served.curl(f"{HUB}/api/models/{IDENTITY['repo']}/revision/main")
        assert code == 200, body
        commit = json.loads(body)["sha"]
        in_place: dict[str, datetime.datetime] = {}
        for stager in served.pods(NS, STAGER_SELECTOR):
            node = stager["spec"]["nodeName"]
            lines = stager_log(served, stager)
            texts = [text for _, text in lines]
            assert any(": fetching {" in text for text in texts), texts
            assert any(text.endswith(f"in place, commit {commit}") for text in texts), texts
            in_place[node] = in_place_at(lines)  # type: ignore[assignment]
            # The node's copy: the model path points at the revision directory, whose marker names the source.
            root = node_model_root(served, node)
            link = root / MODEL_DIR
            assert link.is_symlink() and (root / link.readlink()).name.startswith(f"{MODEL_DIR}.rev-"), link
            marker = json.loads((link / ".sglang-platform-complete.json").read_text())
            assert {k: marker.get(k) for k in IDENTITY} == IDENTITY and marker["commit"] == commit, marker
            assert (link / "config.json").is_file()
        group = served.pods(NS, GROUP_SELECTOR)
        weights_done = {}
        for pod in group:
            inits = [c["name"] for c in pod["spec"]["initContainers"]]
            assert inits == ["wait-for-weights", "wait-for-group"], inits
            node = pod["spec"]["nodeName"]
            done = terminated(pod, "wait-for-weights")
            assert done["exitCode"] == 0
            weights_done[pod["metadata"]["name"]] = at(done["finishedAt"])
            assert at(done["finishedAt"]) >= second(in_place[node]), (pod["metadata"]["name"], done, in_place[node])
            log = served.container_log(pod, "wait-for-weights")
            assert f"{MODEL_ROOT}/{MODEL_DIR}: weights complete" in log, log
            # A gate that started before its node's copy was in place said so, and what it waits for.
            if at(done["startedAt"]) < second(in_place[node]):
                assert "waiting for" in log and "has no completion marker yet" in log, log
            print(
                f"{pod['metadata']['name']} on {node}: wait-for-weights {done['startedAt']} -> {done['finishedAt']},"
                f" copy in place {in_place[node].isoformat()}"
            )
        for pod in group:
            gate = terminated(pod, "wait-for-group")
            assert gate["exitCode"] == 0
            assert at(gate["startedAt"]) >= at(terminated(pod, "wait-for-weights")["finishedAt"])
            assert at(gate["finishedAt"]) >= max(weights_done.values())
            assert "all 2 pods of group deepseek-r1-0 are past their weights gate" in served.container_log(
                pod, "wait-for-group"
            )
            sglang = next(c for c in pod["status"]["containerStatuses"] if c["name"].startswith("sglang"))
            assert at(sglang["state"]["running"]["startedAt"]) >= at(gate["finishedAt"])
    steps.done.add("weights")


def test_the_smoke_test_passes_through_the_gateway_with_the_stacks_key(served, steps):
    steps.need("up")
    with timed("smoke test"):
        smoke = smoke_test(served)
    assert smoke.returncode == 0 and f"smoke test passed: {MODEL} answered" in smoke.stdout, smoke.stdout + smoke.stderr
    # A request for the model without the key, or with another one, is refused.
    for key in (None, "not-the-key"):
        code, body = served.chat(BASE, MODEL, key)
        assert code == 401, body
    # sglang-router 0.3.2 answers GET /v1/models itself (owned_by "local", where the group says "sglang"), with or
    # without a key: its --api-key is the key it sends to the workers (docs/gateway.md, "RBAC and the API key").
    code, body = served.curl(f"{BASE}/models")
    assert code == 200 and json.loads(body)["data"] == [{"id": MODEL, "object": "model", "owned_by": "local"}], body
    code, body = served.curl("-H", f"Authorization: Bearer {KEY}", f"{BASE}/models")
    assert code == 200 and [m["id"] for m in json.loads(body)["data"]] == [MODEL], body
    steps.done.add("smoke")


def test_the_benchmark_ran_bench_serving_through_the_gateway_and_refresh_reads_it(served, steps):
    """The Job ran 0.4.4's own bench_serving through the gateway (the leader's stand-in counted its requests),
    wrote status, verdict and figures into its ConfigMap; `up --refresh` brings them into `benchmarks`."""
    steps.need("up")
    data = served.cluster.get("configmap", f"{GROUP}-benchmark", "-n", NS)["data"]
    assert data["status"] == "done", data
    result = json.loads(data["result.json"])
    assert result["benchServing"] == "0.4.4"
    assert result["target"] == GATEWAY and result["group"] == GROUP
    assert (result["completed"], result["failed"]) == (2000, 0), result
    checks = result["slo"]["checks"]
    # prod's SLO: TTFT p99 and request throughput (monitoring.slo), beside every request succeeding.
    assert [c["name"] for c in checks] == ["allRequestsSucceeded", "ttftP99Seconds", "minRequestThroughput"], checks
    assert checks[0]["passed"] and [c["target"] for c in checks[1:]] == [0.2, 200], checks
    assert result["passed"] is all(c["passed"] for c in checks)
    assert data["passed"] == ("true" if result["passed"] else "false")
    # Every request reached the group's leader (the only one: one group, its worker serves no HTTP).
    leader, _ = leader_and_worker(served.pods(NS, GROUP_SELECTOR))
    assert stand_in_stats(served, leader, KEY)["requests"] >= 2000
    print(data["summary.txt"])
    with timed("up --refresh"):
        outputs, _ = served.up(None, "--refresh", "--timeout", UP_TIMEOUT)
    bench = outputs["benchmarks"][GROUP]
    assert bench["status"] == "done" and bench["passed"] is result["passed"], bench
    assert bench["result"] == result
    assert bench["configMap"] == f"{GROUP}-benchmark" and bench["target"] == GATEWAY
    steps.done.add("benchmark")


def test_the_timeline_has_every_phase_of_the_cold_start(served, steps):
    steps.need("weights")
    with timed("timeline"):
        out = sandbox("timeline", "-n", NS, run=served.run, netns=served.netns)
    assert out.returncode == 0, out.stderr
    print(out.stdout)
    lines = [line for line in out.stdout.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["pod", "node", "created", *STAGER_PHASES, *POD_PHASES]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    group = {p["metadata"]["name"] for p in served.pods(NS, GROUP_SELECTOR)}
    stagers = {p["metadata"]["name"] for p in served.pods(NS, STAGER_SELECTOR)}
    assert set(rows) == group | stagers
    for name in group:
        phases = dict(zip(header, rows[name], strict=True))
        times = [float(phases[p]) for p in POD_PHASES]  # every phase present: none is empty
        assert times == sorted(times), phases
    for name in stagers:
        phases = dict(zip(header, rows[name], strict=True))
        times = [float(phases[p]) for p in STAGER_PHASES]
        assert times == sorted(times), phases
    steps.done.add("timeline")


def test_the_group_gate_holds_a_group_placed_on_a_node_still_staging(served, steps):
    """The worker's node loses its copy (as a replaced disk would) and its stager is held behind the node's staging
    lock (StagerLocks); the group is recreated on the same two nodes (the third cordoned). The pod on the other node
    passes its weights gate and waits in `wait-for-group`, naming its peer, while the peer waits in
    `wait-for-weights`; released, the stager fetches again and both become Ready, the group gate opening only
    after the peer's weights gate."""
    steps.need("weights")
    old = served.pods(NS, GROUP_SELECTOR)
    leader, worker = leader_and_worker(old)
    held, other = worker["spec"]["nodeName"], leader["spec"]["nodeName"]
    spare = [n for n in gpu_nodes(served) if n not in (held, other)]
    print(f"cordoned {spare}, so the group is placed on {other} and {held} again")
    served.cluster.kubectl("cordon", *spare)
    locks = StagerLocks(served, [held], MODEL_ROOT, MODEL_DIR)
    try:
        with timed("group gate hold and release"):
            # The node's model directory emptied, as on a replaced disk: all but the lock this test holds.
            root = node_model_root(served, held)
            assert (root / MODEL_DIR).is_symlink()
            for entry in root.iterdir():
                if entry.name == f".{MODEL_DIR}.sglang-platform.lock":
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            stager = next(p for p in served.pods(NS, STAGER_SELECTOR) if p["spec"]["nodeName"] == held)
            served.cluster.kubectl("delete", "pod", "-n", NS, stager["metadata"]["name"], "--wait=false")
            served.cluster.kubectl(
                "delete", "pod", "-n", NS, leader["metadata"]["name"], worker["metadata"]["name"], "--wait=false"
            )
            old_uids = {p["metadata"]["uid"] for p in old}

            def new_group() -> list[dict]:
                return [p for p in served.pods(NS, GROUP_SELECTOR) if p["metadata"]["uid"] not in old_uids]

            def held_at_the_gates():
                pods = new_group()
                if len(pods) != 2 or not all(p["spec"].get("nodeName") for p in pods):
                    return None
                on = {p["spec"]["nodeName"]: p for p in pods}
                if set(on) != {held, other}:
                    return None
                waiting, gated = on[held], on[other]
                log = served.container_log(gated, "wait-for-group")
                line = f"{waiting['metadata']['name']} on {held} is still waiting for weights"
                if (
                    init_state(waiting, "wait-for-weights") == "running"
                    and init_state(gated, "wait-for-weights") == "done"
                    and init_state(gated, "wait-for-group") == "running"
                    and line in log
                ):
                    return waiting, gated
                return None

            waiting, gated = served.cluster.wait_for("the group held at its gates", held_at_the_gates, 300, 3)
            assert "has no completion marker yet" in served.container_log(waiting, "wait-for-weights")
            restaged = next(p for p in served.pods(NS, STAGER_SELECTOR) if p["spec"]["nodeName"] == held)
            assert in_place_at(stager_log(served, restaged)) is None
            assert not ready(waiting) and not ready(gated)
            locks.release_all()

            def both_ready():
                pods = new_group()
                return pods if len(pods) == 2 and all(ready(p) for p in pods) else None

            pods = {p["metadata"]["name"]: p for p in served.cluster.wait_for("both Ready", both_ready, 600, 3)}
        waiting, gated = pods[waiting["metadata"]["name"]], pods[gated["metadata"]["name"]]
        restaged = next(p for p in served.pods(NS, STAGER_SELECTOR) if p["spec"]["nodeName"] == held)
        lines = stager_log(served, restaged)
        assert any(": fetching {" in text for _, text in lines)
        copied = in_place_at(lines)
        assert copied is not None
        weights = at(terminated(waiting, "wait-for-weights")["finishedAt"])
        assert weights >= second(copied)
        assert at(terminated(gated, "wait-for-group")["finishedAt"]) >= weights
        # Served again through the gateway, once its health checks found the new leader.
        served.cluster.wait_for("the smoke test passes again", lambda: smoke_test(served).returncode == 0, 240, 5)
    finally:
        locks.release_all()
        served.cluster.kubectl("uncordon", *spare, check=False)
