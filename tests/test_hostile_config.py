"""Property tests: whatever a stack file holds, the program renders or stops with the clean error that
names the key, never a traceback and never a partial deployment."""

from __future__ import annotations

import copy
import re

from conftest import API_KEY, stack_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools import harness

# Fixed examples so CI is repeatable; modest counts because every example is a whole mock run.
settings.register_profile(
    "conformance",
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CONFORMANCE = settings.get_profile("conformance")
# One line per problem: the key (plain words, [index], or a quoted odd key), then the message.
ERROR_LINE = re.compile(r'^  - sglang-platform:(?:[A-Za-z0-9_-]+|\.|\[\d+\]|\["(?:[^"\\]|\\.)*"\])+: \S.*$')

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", " ", "x" * 5000, "-1", "0", "1e400", "0x10", "../../etc", "$(rm -rf /)", "a\x00b", "latest"]),
)
garbage = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, (*prefix, i))


def parent_and_key(root, path):
    node = root
    for part in path[:-1]:
        node = node[part]
    return node, path[-1]


@st.composite
def hostile(draw, stack: str):
    raw = copy.deepcopy(stack_values(stack))
    targets = [p for p in paths(raw) if p]
    kind = draw(st.sampled_from(["replace", "replace", "delete", "unknown-key"]))
    if kind == "unknown-key":
        containers = [p for p in paths(raw) if isinstance(_at(raw, p), dict)]
        path = draw(st.sampled_from(containers))
        key = draw(st.text(min_size=1, max_size=10))
        _at(raw, path)[key] = draw(garbage)
    else:
        path = draw(st.sampled_from(targets))
        parent, key = parent_and_key(raw, path)
        if kind == "delete":
            del parent[key]
        else:
            parent[key] = draw(garbage)
    return raw


def _at(root, path):
    for part in path:
        root = root[part]
    return root


def run(stack: str, raw: dict) -> harness.RunResult:
    config = {f"sglang-platform:{k}": harness._encode(v) for k, v in raw.items()}
    config["sglang-platform:apiKey"] = API_KEY
    return harness.run(config, ["sglang-platform:apiKey"], stack=stack)


def assert_clean(result: harness.RunResult) -> None:
    if result.error is None:
        kinds = {o["kind"] for o in harness.kubernetes_objects(result)}
        assert "LeaderWorkerSet" in kinds, kinds
        return
    lines = result.error.splitlines()
    assert re.match(r"^invalid stack configuration \(\d+ problems?\):$", lines[0]), result.error
    assert len(lines) > 1, result.error
    assert all(ERROR_LINE.match(line) for line in lines[1:]), result.error
    assert "Traceback" not in result.error
    assert result.resources == [], [r.name for r in result.resources]


@CONFORMANCE
@given(raw=hostile("dev"))
def test_hostile_dev_config(raw):
    assert_clean(run("dev", raw))


@CONFORMANCE
@given(raw=hostile("prod"))
def test_hostile_prod_config(raw):
    assert_clean(run("prod", raw))


@CONFORMANCE
@given(value=garbage)
def test_any_value_for_any_top_level_key(value):
    for key in ("namespace", "requireApiKey", "apiAccess", "versions", "inferenceGroups", "typo"):
        raw = copy.deepcopy(stack_values("dev")) | {key: value}
        assert_clean(run("dev", raw))


def test_the_oracle_rejects_a_partial_render():
    """The property must be able to fail: an error after resources were registered is not clean."""
    result = harness.RunResult(error="invalid stack configuration (1 problem):\n  - sglang-platform:x: bad")
    result.resources.append(harness.Registered("t", "n", "u", "", True, [], {}))
    try:
        assert_clean(result)
    except AssertionError:
        return
    raise AssertionError("assert_clean accepted a partial render")
