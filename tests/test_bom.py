"""The bill of materials (facts/bom.py): its two named version sets, how a stack selects one and overrides a
pin, the Renovate comment on every pin and the regex of renovate.json that reads them, and that every pin of
both sets is one the rest of the program knows (compatibility window, flag table, CUDA build, vendored chart)."""

from __future__ import annotations

import ast
import copy
import json
import re

import pytest
import yaml
from conftest import FRONT_END_SECRETS, ROOT, chart, stack_values

from sglang_platform.config import ConfigError, Versions, validate
from sglang_platform.facts import bom
from sglang_platform.facts.compat import ADDON_KEYS, window_of
from sglang_platform.facts.cuda import MIN_DRIVER, image_cuda
from sglang_platform.facts.gateways import gateway_of, load_gateway_table
from sglang_platform.facts.sglang import load_table

BOM = ROOT / "facts" / "bom.py"
RENOVATE = json.loads((ROOT / "renovate.json").read_text())
(MANAGER,) = RENOVATE["customManagers"]
# Renovate's regexes are RE2/ECMAScript: named groups are (?<name>...), Python's (?P<name>...).
(PATTERN,) = (re.compile(s.replace("(?<", "(?P<")) for s in MANAGER["matchStrings"])


def pin_constants() -> dict[str, str]:
    """Every constant of facts/bom.py a version set names, and SMG_IMAGE: the pins, by constant name."""
    tree = ast.parse(BOM.read_text())
    values: dict[str, str] = {}
    named: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                values[node.target.id] = node.value.value
            elif isinstance(node.value, ast.Dict) and node.target.id in ("CURRENT", "REFERENCE"):
                named |= {v.id for v in node.value.values if isinstance(v, ast.Name)}
    assert named, "the sets name their pins by constant"
    return {name: values[name] for name in sorted(named | {"SMG_IMAGE"})}


def version_part(value: str) -> str:
    """What Renovate bumps: the tag of an image, the version of a pip pin, a chart or Kubernetes version whole."""
    if "==" in value:
        return value.split("==", 1)[1]
    name = value.rsplit("/", 1)[-1]
    return value.rsplit(":", 1)[1] if ":" in name else value


def test_every_pin_has_a_renovate_comment_the_managers_regex_matches():
    source = BOM.read_text()
    lines = source.splitlines()
    pins = pin_constants()
    assert len(pins) == 2 * len(bom.CURRENT) + 1
    matched = {m.start(): m for m in PATTERN.finditer(source)}
    for name, value in pins.items():
        (index,) = [i for i, line in enumerate(lines) if line.startswith(f"{name}: Final = ")]
        comment = lines[index - 1]
        assert comment.startswith("# renovate: datasource="), f"{name} has no renovate comment above it"
        start = sum(len(line) + 1 for line in lines[: index - 1])
        match = matched.pop(start, None)
        assert match is not None, f"renovate.json's regex does not match {name}"
        assert match["currentValue"] == version_part(value), name
        # The reference set is the reference's on purpose: its pins carry the depType renovate.json turns off.
        assert (match["depType"] == "reference") is name.startswith("REFERENCE_"), name
    # Nothing but the pins: a repository URL or a derived constant is never bumped.
    assert matched == {}


def test_each_comment_names_what_the_pin_is():
    repos = {
        "kube-prometheus-stack": bom.KUBE_PROMETHEUS_STACK_REPO,
        "keda": bom.KEDA_REPO,
        "gpu-operator": bom.GPU_OPERATOR_REPO,
        "volcano": bom.VOLCANO_REPO,
    }
    for match in PATTERN.finditer(BOM.read_text()):
        value = match.group(0).rsplit('"', 2)[-2]
        source, dep = match["datasource"], match["depName"]
        if source == "docker":
            # An image's repository, or the lws chart's OCI path (a docker datasource in Renovate).
            assert dep in (value.rsplit(":", 1)[0], bom.LWS_CHART_REF.removeprefix("oci://")), dep
        elif source == "helm":
            assert match["registryUrl"] == repos[dep], dep
        elif source == "pypi":
            assert value.startswith(f"{dep}=="), dep
        else:
            assert (source, dep) == ("github-releases", "kubernetes/kubernetes")
            extracted = re.match(match["extractVersion"].replace("(?<", "(?P<"), f"v{value}")
            assert extracted is not None and extracted["version"] == value


def test_renovate_reads_only_the_bom_and_never_bumps_the_reference_set():
    (files,) = MANAGER["managerFilePatterns"]
    assert files.startswith("/") and files.endswith("/")
    assert re.search(files[1:-1], "facts/bom.py") and not re.search(files[1:-1], "facts/bom.py.orig")
    assert RENOVATE["enabledManagers"] == ["custom.regex"]
    assert {"matchDepTypes": ["reference"], "enabled": False}.items() <= RENOVATE["packageRules"][0].items()


def test_both_sets_pin_the_same_keys_which_are_the_versions_keys():
    assert list(bom.CURRENT) == list(bom.REFERENCE)
    aliases = {f.alias or n for n, f in Versions.model_fields.items()}
    # A set pins everything but itself and the keys that say which release a digest runs.
    assert aliases - set(bom.CURRENT) == {"set", "sglangVersion", "gatewayVersion", "gatewayProduct"}
    assert bom.SETS == {"current": bom.CURRENT, "reference": bom.REFERENCE}
    assert bom.DEFAULTS is bom.SETS[bom.DEFAULT_SET] and bom.DEFAULT_SET == "current"


def test_no_set_named_means_the_current_set():
    assert {k: getattr(Versions(), _snake(k)) for k in bom.CURRENT} == bom.CURRENT
    dev = validate(stack_values("dev"), set(FRONT_END_SECRETS))
    assert dev.versions.set_name == "current"
    assert {k: getattr(dev.versions, _snake(k)) for k in bom.CURRENT} == bom.CURRENT


def _snake(alias: str) -> str:
    return next(n for n, f in Versions.model_fields.items() if (f.alias or n) == alias)


def test_a_set_fills_every_pin_the_stack_leaves_out_and_each_key_overrides_one():
    versions = Versions.model_validate({"set": "reference", "sglangImage": "lmsysorg/sglang:v0.4.4-cu124"})
    assert versions.sglang_image == "lmsysorg/sglang:v0.4.4-cu124"
    others = {k: v for k, v in bom.REFERENCE.items() if k != "sglangImage"}
    assert {k: getattr(versions, _snake(k)) for k in others} == others
    # In Python, snake_case works the same.
    assert Versions(set_name="reference", keda_chart="2.17.1").keda_chart == "2.17.1"
    assert Versions(set_name="reference").gpu_operator_chart == bom.REFERENCE_GPU_OPERATOR_CHART


def test_prod_selects_the_reference_set_and_keeps_its_own_pins():
    raw = stack_values("prod")["versions"]
    assert raw == {
        "set": "reference",
        "kubernetes": "1.30.6",
        "sglangImage": "lmsysorg/sglang:v0.4.4-cu124",
        "kedaChart": "2.17.2",
        "volcanoChart": "1.10.2",
    }
    versions = Versions.model_validate(raw)
    # Everything else is the reference's: the GPU Operator, Open WebUI, the monitoring chart.
    assert (versions.gpu_operator_chart, versions.open_webui_image, versions.kube_prometheus_stack) == (
        "v24.9.1",
        "ghcr.io/open-webui/open-webui:v0.5.14",
        "88.3.0",
    )


def test_an_unknown_set_is_refused_naming_the_key_and_the_allowed_names():
    raw = copy.deepcopy(stack_values("dev"))
    raw["versions"] = {"set": "latest", "kedaChart": "2.20.2"}
    with pytest.raises(ConfigError) as info:
        validate(raw, set(FRONT_END_SECRETS))
    assert [f"{p.key}: {p.message}" for p in info.value.problems] == [
        "sglang-platform:versions.set: 'latest' is not a version set: use current (the newest releases that work "
        "together, the default) or reference (the reference deployment's versions), as facts/bom.py defines them"
    ]


@pytest.mark.parametrize("name", list(bom.SETS))
def test_every_pin_of_each_set_is_one_the_program_knows(name):
    """The compatibility table has a window for each add-on pin; the SGLang and gateway releases have flag
    tables; the SGLang image's CUDA build is in the driver table; each set's add-ons claim its Kubernetes except
    the reference's own Volcano 1.9.0 (test_compat.py says why)."""
    pins = bom.SETS[name]
    for addon, (version_loc, _) in ADDON_KEYS.items():
        assert window_of(addon, pins[str(version_loc[1])]) is not None, (name, addon)
    versions = Versions.model_validate({"set": name})
    assert versions.sglang_release is not None and load_table(versions.sglang_release) is not None
    gateway = gateway_of(versions)
    assert gateway is not None and load_gateway_table(*gateway) is not None
    cuda = image_cuda(versions.sglang_image, versions.sglang_release)
    assert cuda in MIN_DRIVER, (name, versions.sglang_image)


@pytest.mark.parametrize("name", list(bom.SETS))
def test_every_chart_of_each_set_is_in_the_chart_mirror(name):
    """The chart source (a mirror, or the project's cache) has every chart of either set: both deploy offline."""
    pins = bom.SETS[name]
    for chart_name, key in (
        ("gpu-operator", "gpuOperatorChart"),
        ("volcano", "volcanoChart"),
        ("keda", "kedaChart"),
        ("kube-prometheus-stack", "kubePrometheusStack"),
        ("lws", "lwsChart"),
    ):
        unpacked = yaml.safe_load((chart(chart_name, pins[key]) / "Chart.yaml").read_text())
        assert unpacked["version"].lstrip("v") == pins[key].lstrip("v"), (name, chart_name, pins[key])
