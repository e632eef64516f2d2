"""House rules for components, checked on the source and on a real run."""

from __future__ import annotations

import ast
import subprocess
import sys
from typing import Any

import pytest
from conftest import ROOT

COMPONENT_FILES = sorted((ROOT / "components").glob("*.py"))
# Every ComponentResource of the package. A new component is added here on purpose, so a class that stops
# being found (renamed base, moved file) fails the test instead of silently escaping the contract.
COMPONENTS = {
    "GpuOperator",
    "InferenceAutoscaler",
    "Keda",
    "LwsController",
    "ModelCache",
    "MonitoringStack",
    "OpenWebUI",
    "Platform",
    "ServingBenchmark",
    "SglangDisaggregatedService",
    "SglangGateway",
    "SglangInferenceGroup",
    "Volcano",
}


def component_classes():
    for path in COMPONENT_FILES:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Attribute) and b.attr == "ComponentResource" for b in node.bases
            ):
                yield path, node


def test_every_component_is_found():
    assert {cls.name for _, cls in component_classes()} == COMPONENTS


def _names_from_child_opts(init: ast.FunctionDef) -> set[str]:
    """Variables holding options built by components.k8s.child_opts (directly or merged from one)."""
    names: set[str] = set()
    for node in ast.walk(init):
        if isinstance(node, ast.Assign) and "child_opts(" in ast.unparse(node.value):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


@pytest.mark.parametrize(("path", "cls"), list(component_classes()), ids=lambda v: getattr(v, "name", ""))
def test_component_contract(path, cls):
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assert [a.arg for a in init.args.args] == ["self", "name", "args", "opts"]
    calls: list[Any] = [n for n in ast.walk(init) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    super_init: Any = next(c for c in calls if c.func.attr == "__init__")
    assert super_init.args[0].value == f"sglang-platform:index:{cls.name}"
    last = init.body[-1]
    assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
    assert isinstance(last.value.func, ast.Attribute) and last.value.func.attr == "register_outputs"
    assert sum(1 for c in calls if c.func.attr == "register_outputs") == 1
    source = ast.unparse(init)
    assert "pulumi.Config" not in source
    # Every child gets its options from child_opts: parented to the component, and waiting for what the
    # caller's opts.depends_on names (Pulumi passes neither on by itself).
    holders = _names_from_child_opts(init)
    for call in ast.walk(init):
        for keyword in getattr(call, "keywords", []) if isinstance(call, ast.Call) else []:
            if keyword.arg != "opts" or (isinstance(keyword.value, ast.Name) and keyword.value.id == "opts"):
                continue
            text = ast.unparse(keyword.value)
            assert "child_opts(" in text or any(h in text for h in holders), f"{cls.name}: opts={text}"


def test_no_component_reads_pulumi_config():
    for path in COMPONENT_FILES:
        assert "Config(" not in path.read_text(), path


def test_importing_the_packages_has_no_side_effects():
    code = (
        "import pulumi.runtime.settings as s;"
        "from sglang_platform import components, config, facts, live, pod_scripts, render, rules;"
        "assert s.get_monitor() is None and s.get_root_resource() is None;"
        "print('clean')"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "clean"


def test_every_child_is_parented_to_its_component(prod):
    components = {r.urn for r in prod.resources if r.type.startswith("sglang-platform:index:")}
    for res in prod.resources:
        if res.type.startswith("kubernetes:") and res.name != "serving-namespace":
            assert res.parent in components, res.name


def test_configuration_reference_is_current():
    from tools.config_reference import BEGIN, DOC, END, reference

    doc = DOC.read_text()
    assert doc[doc.index(BEGIN) : doc.index(END) + len(END)] == reference(), (
        "run: python tools/config_reference.py --write"
    )


def test_compatibility_table_is_current():
    """The add-on compatibility table of docs/configuration.md is facts/compat.py's, with its sources."""
    from tools.config_reference import COMPAT_BEGIN, COMPAT_END, DOC, compatibility

    doc = DOC.read_text()
    assert doc[doc.index(COMPAT_BEGIN) : doc.index(COMPAT_END) + len(COMPAT_END)] == compatibility(), (
        "run: python tools/config_reference.py --write"
    )


@pytest.mark.parametrize(
    ("begin", "end", "block"),
    [
        ("SETS_BEGIN", "SETS_END", "version_sets"),
        ("CUDA_BEGIN", "CUDA_END", "cuda_drivers"),
    ],
)
def test_version_set_and_driver_tables_are_current(begin, end, block):
    """docs/configuration.md's tables of the version sets (facts/bom.py) and of the driver each CUDA build needs
    (facts/cuda.py)."""
    from tools import config_reference

    doc = config_reference.DOC.read_text()
    start, stop = getattr(config_reference, begin), getattr(config_reference, end)
    assert doc[doc.index(start) : doc.index(stop) + len(stop)] == getattr(config_reference, block)(), (
        "run: python tools/config_reference.py --write"
    )


def test_flag_release_table_is_current():
    from tools.config_reference import DOC, FLAGS_BEGIN, FLAGS_END, flag_releases

    doc = DOC.read_text()
    assert doc[doc.index(FLAGS_BEGIN) : doc.index(FLAGS_END) + len(FLAGS_END)] == flag_releases(), (
        "run: python tools/config_reference.py --write"
    )


def test_flag_release_table_says_which_releases_have_a_flag():
    from tools.config_reference import _releases, flag_releases

    shipped = ("0.4.3.post2", "0.4.3.post3", "0.4.4", "0.5.1")
    assert _releases(shipped, shipped) == "every shipped release"
    assert _releases(shipped[1:], shipped) == "0.4.3.post3 or later"
    assert _releases(shipped[1:3], shipped) == "0.4.3.post3 to 0.4.4"
    assert _releases(shipped[:2], shipped) == "up to 0.4.3.post3"
    assert _releases((shipped[0], shipped[2]), shipped) == "only 0.4.3.post2, 0.4.4"
    assert _releases((), shipped) == "no shipped release"
    lines = flag_releases().splitlines()
    assert (
        "| `sglang-platform:inferenceGroups[].distTimeoutSeconds` | `--dist-timeout` | 0.4.3.post3 or later | "
        "0.4.3.post3 or later |" in lines
    )
    # Each spelling of DP attention with the releases that have it and those the platform writes it for.
    key = "`sglang-platform:inferenceGroups[].dpAttentionSize`"
    assert [line for line in lines if line.startswith(f"| {key} ")] == [
        f"| {key} | `--attn-dp-size` | 0.5.23 or later | 0.5.23 or later |",
        f"| {key} | `--enable-dp-attention` | every shipped release | up to 0.5.1 |",
        f"| {key} | `--dp-size` | every shipped release | up to 0.5.1 |",
    ]


# The prefix policy of the package (docs/library.md): `Sglang` names a component whose workload is an SGLang
# program serving requests (the server, its disaggregated roles, the router); the others are named for what
# they do. The type tokens carry the names into every URN, so renaming one later costs aliases.
SERVES_SGLANG = {"SglangDisaggregatedService", "SglangGateway", "SglangInferenceGroup"}


def test_the_sglang_prefix_marks_exactly_the_serving_components():
    assert {name for name in COMPONENTS if name.startswith("Sglang")} == SERVES_SGLANG


def test_the_program_builds_components_and_their_arguments_by_keyword():
    """`Component(name, args)` positionally, as Pulumi's convention; every args class and value object of
    the package by keyword only, so two fields of one type cannot be swapped unnoticed (in the program and in
    the composition and wiring helpers that build its args)."""
    from sglang_platform import components

    exported = set(components.__all__)
    source = "\n".join(
        (ROOT / path).read_text() for path in ("__main__.py", "components/platform.py", "components/wiring.py")
    )
    tree = ast.parse(source)
    positional = {
        ast.unparse(call)[:60]
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id in exported
        and len(call.args) > (2 if call.func.id in COMPONENTS else 0)
    }
    assert positional == set()
    used = {c.func.id for c in ast.walk(tree) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
    assert {"ScrapeTarget", "Backend", "SglangGatewayArgs"} <= used & exported


def test_value_objects_refuse_positional_construction():
    from sglang_platform.components import Backend, ScrapeTarget

    value_objects: list[tuple[Any, tuple]] = [(ScrapeTarget, ("g", True)), (Backend, ("g", "http://g/v1"))]
    for cls, args in value_objects:
        with pytest.raises(TypeError, match="positional"):
            cls(*args)
