"""The disaggregated example served for real (examples/stacks/Pulumi.pd-h200.yaml: a prefill and a decode group of
one 8 x H200 node each, the gateway in PD mode, `tools/sandbox.py up --serve`): a chat through the gateway is served
by a prefill and a decode of one revision; a rollout of one role (decode's memFractionStatic changed, which is a new
revision of both) under steady requests never pairs two revisions (docs/disaggregation.md, "Rollouts"). The SGLang
stand-in refuses a partner of another revision and logs it (docs/standin.md, "PD"), so a mixed pair cannot hide."""

from __future__ import annotations

import copy
import json
import time
from collections import Counter

import pytest
import yaml
from conftest import ROOT

from tools.sim_stacks import SECRETS

from .serving import Served, derived_stack, ready, stand_in_stats

STACK_FILE = ROOT / "examples" / "stacks" / "Pulumi.pd-h200.yaml"
NS = "deepseek"
SERVICE = "deepseek-r1"
GATEWAY = f"http://{SERVICE}-gateway.{NS}.svc.cluster.local:8000"
KEY = SECRETS["pd-h200"]["apiKey"]
ROLE = "sglang-platform.io/pd-role"
REVISION = "sglang-platform.io/pd-revision"
LEADER = "leaderworkerset.sigs.k8s.io/worker-index"


@pytest.fixture(scope="module")
def served(engine, tmp_path_factory):
    with Served.of(engine, tmp_path_factory.mktemp("serving-pd"), STACK_FILE, SECRETS["pd-h200"], "pd") as s:
        yield s


def role_pods(served: Served) -> list[dict]:
    return [p for p in served.pods(NS, f"sglang-platform.io/pd-service={SERVICE}") if p["metadata"]["labels"].get(ROLE)]


def leaders(served: Served, revision: str | None = None) -> dict[str, dict]:
    """The Ready leader of each role (of ``revision`` when given)."""
    found = {}
    for pod in role_pods(served):
        labels = pod["metadata"]["labels"]
        if labels.get(LEADER) == "0" and ready(pod) and revision in (None, labels[REVISION]):
            found[labels[ROLE]] = pod
    return found


def test_a_chat_is_served_by_a_prefill_and_a_decode_of_one_revision(served, steps):
    served.up()
    pair = leaders(served)
    assert set(pair) == {"prefill", "decode"}, sorted(pair)
    revisions = {role: pod["metadata"]["labels"][REVISION] for role, pod in pair.items()}
    assert revisions["prefill"] == revisions["decode"], revisions
    code, body = served.chat(f"{GATEWAY}/v1", SERVICE, KEY)
    assert code == 200 and json.loads(body)["choices"], body
    prefill, decode = pair["prefill"], pair["decode"]
    rev = revisions["prefill"]
    assert f"{decode['metadata']['name']}@{rev}" in stand_in_stats(served, prefill, KEY)["pd"]["served_with"]
    assert f"{prefill['metadata']['name']}@{rev}" in stand_in_stats(served, decode, KEY)["pd"]["served_with"]
    steps.done.add("up")


def test_a_rollout_of_one_role_never_pairs_two_revisions(served, steps, tmp_path):
    steps.need("up")
    old = {p["metadata"]["labels"][REVISION] for p in role_pods(served)}
    assert len(old) == 1, old
    doc = yaml.safe_load(STACK_FILE.read_text())
    groups = copy.deepcopy(doc["config"]["sglang-platform:inferenceGroups"])
    groups[0]["disaggregation"]["decode"]["memFractionStatic"] = 0.84
    stack = derived_stack(
        STACK_FILE,
        tmp_path,
        {"inferenceGroups": groups},
        {"decode memFractionStatic 0.849 -> 0.84": "a change to one role: a new revision of both"},
    )
    seen: dict[str, dict] = {}
    codes: Counter[int] = Counter()
    served.start_up(stack)
    new: dict[str, dict] = {}
    deadline = time.monotonic() + 1500
    while time.monotonic() < deadline:
        for pod in role_pods(served):
            seen[pod["metadata"]["uid"]] = pod
        codes[served.chat(f"{GATEWAY}/v1", SERVICE, KEY)[0]] += 1
        revisions = {p["metadata"]["labels"][REVISION] for p in role_pods(served)}
        new = leaders(served, next(iter(revisions - old), None)) if revisions - old else {}
        if served.up_proc is not None and served.up_proc.poll() is not None and set(new) == {"prefill", "decode"}:
            break
        time.sleep(0.5)
    code, _, err = served.finish_up(60)
    assert code == 0, err[-6000:]
    print(f"during the rollout: {dict(codes)} (HTTP status: requests); pods seen: {len(seen)}")
    assert set(new) == {"prefill", "decode"}, "the new revision's pair never became Ready"
    # No role pod, of either revision, refused a partner: no pair of two revisions was ever formed.
    for pod in seen.values():
        container = "sglang-leader" if pod["metadata"]["labels"].get(LEADER) == "0" else "sglang-worker"
        log = served.container_log(pod, container)
        assert "[stand-in] refused a pair" not in log, (pod["metadata"]["name"], log[-2000:])
    # The new pair serves, each with the other only, and of its own revision.
    assert {p["metadata"]["labels"][REVISION] for p in new.values()}.isdisjoint(old)
    code, body = served.chat(f"{GATEWAY}/v1", SERVICE, KEY)
    assert code == 200, body
    rev = new["prefill"]["metadata"]["labels"][REVISION]
    for role, other in (("prefill", "decode"), ("decode", "prefill")):
        stats = stand_in_stats(served, new[role], KEY)["pd"]
        assert stats["refused"] == [], stats
        assert set(stats["served_with"]) == {f"{new[other]['metadata']['name']}@{rev}"}, stats
    assert codes[200] > 0, codes
