from __future__ import annotations

import copy
import functools
import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The skip that names what is missing, and the hooks that fail it in CI and sum it up at the end of a run.
from capabilities import (  # noqa: E402, F401 - pytest takes the hooks from this module by name
    Capability,
    in_ci,
    pytest_runtest_makereport,
    pytest_terminal_summary,
    unavailable,
)

from tools import harness  # noqa: E402

# Only the e2e suite (tests/e2e/conftest.py, tools/engine.py) still reads the engine recipe beside the project.

# No test reaches the network: program runs skip the S3 preflight listing unless a test (under moto) unsets this.
os.environ["SGLANG_PLATFORM_OFFLINE"] = "1"

API_KEY = "sk-test-7f3a9c2e-never-in-plaintext"
WEBUI_SECRET_KEY = "webui-test-4c1d8e-never-in-plaintext"
GRAFANA_PASSWORD = "grafana-test-91b2aa-never-in-plaintext"
# A second, one-GPU group for tests that need several.
SMALL_GROUP = {
    "name": "r1-distill",
    "model": {"path": "DeepSeek-R1-Distill-Qwen-7B", "servedName": "r1-distill"},
    "modelVolume": {"type": "pvc", "claimName": "models"},
    "gpusPerNode": 1,
    "resources": {"cpu": "8", "memory": "64Gi", "shmSize": "8Gi"},
}
# Secret keys the shipped stacks require (for validate() calls that bypass the harness).
REQUIRED_SECRETS = frozenset({"apiKey", "webuiSecretKey", "grafanaAdminPassword"})
FRONT_END_SECRETS = {"webuiSecretKey": WEBUI_SECRET_KEY, "grafanaAdminPassword": GRAFANA_PASSWORD}
# The preset gallery runs no Open WebUI.
ALL_SECRETS_FOR_PRESETS = frozenset({"apiKey", "grafanaAdminPassword"})


# A stack made here, not read from a file: one group per preset (facts/presets.py), so every preset's render
# goes through the schema, flag and checkov checks like the shipped stacks.
PRESET_GALLERY = "presets"


def stack_values(name: str) -> dict:
    """The sglang-platform keys of Pulumi.<name>.yaml (or examples/stacks/), without the project prefix."""
    if name == PRESET_GALLERY:
        return preset_gallery()
    data = yaml.safe_load(harness.stack_path(name).read_text())["config"]
    return {k.split(":", 1)[1]: v for k, v in data.items()}


def preset_gallery(release_image: str = "lmsysorg/sglang:v0.5.23-cu130") -> dict:
    from sglang_platform.facts.presets import PRESETS

    groups = []
    for name, preset in PRESETS.items():
        group: dict = {
            "name": name.replace(".", "-"),
            "preset": name,
            "model": {"servedName": name},
            "modelVolume": {"type": "hostPath", "hostPath": "/mnt/models", "mountPath": "/models"},
            "resources": {"cpu": "64", "memory": "1Ti"},
        }
        if "revision" not in preset.settings["model"]["download"]:
            group["model"]["download"] = None  # staged by hand: no revision of it is pinned here
        if preset.nodes > 1:
            group["network"] = {"fabric": "infiniband", "hcas": ["mlx5_0"], "rdmaDevicesPerNode": 1}
        groups.append(group)
    return {
        "namespace": "presets",
        "requireApiKey": True,
        "versions": {"sglangImage": release_image},
        "inferenceGroups": groups,
        "gateway": {"enabled": True},
        "openWebui": {"enabled": False},
        "monitoring": {"enabled": True},
        "gpuOperator": {"mode": "present"},
        "volcano": {"mode": "absent"},
        "lws": {"mode": "present"},
        # deepseek-v3-h20 follows SGLang's docs (tp 8, memFractionStatic 0.9 on 96 GB), which leaves the KV
        # cache under the 10% of the pool the capacity check keeps (tests/test_presets.py): off here.
        "preflight": {"capacity": False},
    }


def run_named(stack: str, secrets: dict) -> harness.RunResult:
    """A shipped or example stack by name, or the preset gallery, with these secrets."""
    if stack != PRESET_GALLERY:
        return harness.run_stack(stack, secrets=secrets)[0]
    config = {f"sglang-platform:{k}": harness._encode(v) for k, v in stack_values(stack).items()}
    config |= {f"sglang-platform:{k}": v for k, v in secrets.items()}
    return harness.run(config, [f"sglang-platform:{k}" for k in secrets], stack=stack)


@functools.cache
def _cached_run(stack: str, with_key: bool) -> harness.RunResult:
    secrets = {"apiKey": API_KEY, **FRONT_END_SECRETS} if with_key else dict(FRONT_END_SECRETS)
    result = run_named(stack, secrets)
    assert result.error is None, result.error
    return result


@pytest.fixture(scope="session")
def prod() -> harness.RunResult:
    return _cached_run("prod", True)


@pytest.fixture(scope="session")
def dev() -> harness.RunResult:
    return _cached_run("dev", False)


def on_modelscope(values: dict) -> dict:
    """prod's group as docs/model-weights.md shows it for clusters that reach only ModelScope (its moving master)."""
    model = values["inferenceGroups"][0]["model"]
    model["source"] = "modelscope"
    model["download"]["revision"] = "master"
    return values


@pytest.fixture
def upstream(monkeypatch):
    """tests/fake_upstream.py's release site on 127.0.0.1 for the test. urllib honours proxy variables: a proxy must
    not carry the loopback requests anywhere."""
    from fake_upstream import FakeUpstream, serve

    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    with serve(FakeUpstream()) as fake:
        yield fake


def run_with(stack: str, mutate, secrets: dict | None = None) -> harness.RunResult:
    """Run a stack after ``mutate(values)`` edits a deep copy of its keys. The front-end secrets are set
    unless ``secrets`` maps them to None."""
    values = copy.deepcopy(stack_values(stack))
    mutate(values)
    config = {f"sglang-platform:{k}": harness._encode(v) for k, v in values.items()}
    secret_keys = []
    for key, value in {**FRONT_END_SECRETS, **(secrets or {})}.items():
        if value is None:
            continue
        config[f"sglang-platform:{key}"] = value
        secret_keys.append(f"sglang-platform:{key}")
    return harness.run(config, secret_keys, stack=stack)


def lws(result: harness.RunResult, name: str) -> dict:
    return result.k8s_object("LeaderWorkerSet", name)


def container(pod_template: dict) -> dict:
    (only,) = pod_template["spec"]["containers"]
    return only


def env_map(c: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


# The shipped stacks, the examples of docs/deepseek.md and docs/disaggregation.md, and every preset: the
# conformance checks run on each.
STACKS = ("dev", "prod", "deepseek-h200", "pd-h200", PRESET_GALLERY)


@pytest.fixture(scope="session", params=STACKS)
def stack(request) -> tuple[str, harness.RunResult, object]:
    """Each shipped stack: (name, its mock run, its validated PlatformConfig)."""
    from sglang_platform.config import validate

    name = request.param
    result = _cached_run(name, name != "dev")
    return name, result, validate(stack_values(name), REQUIRED_SECRETS)


def chart(name: str, version: str) -> Path:
    """An unpacked chart from the chart source (tools/chart_source.py: the named mirror, else the project's cache),
    or the test is unavailable, saying which command fetches it."""
    __tracebackhide__ = True  # the skip is reported at the test's line
    from tools import chart_source

    path = chart_source.chart_dir(name, version)
    if path is None:
        unavailable(Capability.CHARTS, chart_source.missing([f"{name}-{version}"]))
    return path
