"""The library as a package another team installs: the wheel holds one import name, ``sglang_platform``, with
every module and data file of its rooms; a team project with its own ``config.py`` and ``components/`` runs
its program from the installed wheel and keeps its own modules; importing one component loads only what it
needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT
from test_layout import MAY_IMPORT

EXAMPLE = ROOT / "examples" / "team_program"

# Runs a Pulumi program under mocks in a fresh interpreter and prints what it registered, as JSON.
MOCK_RUN = textwrap.dedent(
    """
    import json, runpy, sys
    import pulumi
    from pulumi.runtime import mocks, settings

    registered = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            return f"{args.name}-id", args.inputs
        def call(self, args):
            return {}

    class Monitor(mocks.MockMonitor):
        def RegisterResource(self, request):
            response = super().RegisterResource(request)
            registered.append({"type": request.type, "name": request.name, "urn": response.urn,
                               "parent": request.parent, "dependencies": list(request.dependencies)})
            return response

    m = Mocks()
    pulumi.runtime.set_mocks(m, project="team-program", stack="dev", preview=False, monitor=Monitor(m))
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await
    _sync_await(run_pulumi_func(lambda: runpy.run_path("__main__.py", run_name="__main__")))
    outputs = {k: _sync_await(pulumi.Output.from_input(v).future())
               for k, v in settings.get_root_resource().outputs.items()}
    ours = ("sglang_platform", "grafana_foundation_sdk", "boto3")
    loaded = sorted(n for n in sys.modules if n.split(".")[0] in ours)
    files = {n: sys.modules[n].__file__ for n in ("config", "components", "sglang_platform.config",
                                                   "sglang_platform.components")}
    print(json.dumps({"registered": registered, "outputs": outputs, "modules": loaded, "files": files}))
    """
)

# The team's own modules, named as Pulumi projects often name theirs.
TEAM_CONFIG = '''"""The team's own settings."""
OWNER = "team-a"
'''
TEAM_COMPONENTS = '''"""The team's own components package."""
def describe() -> str:
    return "team-a's components"
'''
TEAM_USES = """
import config
import components

pulumi.export("team", {"config": config.OWNER, "components": components.describe()})
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # A copy, so the build's scratch directories never land in the checkout; its symlinks stay symlinks, as in
    # a clone (sglang_platform/<room> -> ../<room>).
    shutil.copytree(
        ROOT,
        build / "src",
        symlinks=True,
        ignore=shutil.ignore_patterns(".*", "venv", "out", "build", "*.egg-info", "__pycache__"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), "."],
        cwd=build / "src",
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("sglang_platform-*.whl")
    return found


def _room_files() -> set[str]:
    """Every file of every room, as the wheel names it."""
    return {
        f"sglang_platform/{path.relative_to(ROOT)}"
        for room in MAY_IMPORT
        for path in (ROOT / room).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and "venv" not in path.relative_to(ROOT).parts
    }


def test_the_wheel_holds_one_import_name_with_every_room_and_its_data(wheel):
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    (info,) = {n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD")}
    assert {n.split("/")[0] for n in names} == {"sglang_platform", info}
    assert archive.read(f"{info}/top_level.txt").decode().split() == ["sglang_platform"]
    expected = _room_files() | {"sglang_platform/__init__.py", "sglang_platform/_lazy.py"}
    assert {n for n in names if not n.startswith(info)} == expected
    # The data each room reads with importlib.resources or by path: flag tables, metric lists, pod scripts.
    for data in (
        "sglang_platform/facts/sglang/0.4.3.post2.json",
        "sglang_platform/facts/gateways/smg-1.13.0.json",
        "sglang_platform/facts/metrics/sglang-0.5.23.txt",
        "sglang_platform/pod_scripts/download_model.py",
    ):
        assert data in names, data


def test_a_team_project_with_its_own_config_and_components_runs_from_the_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    assert sorted(p.name for p in site.iterdir() if not p.name.endswith(".dist-info")) == ["sglang_platform"]
    project = tmp_path / "team_program"
    shutil.copytree(EXAMPLE, project)
    assert (project / "Pulumi.yaml").is_file() and (project / "README.md").is_file()
    (project / "config.py").write_text(TEAM_CONFIG)
    (project / "components").mkdir()
    (project / "components" / "__init__.py").write_text(TEAM_COMPONENTS)
    (project / "__main__.py").write_text((EXAMPLE / "__main__.py").read_text() + TEAM_USES)
    (project / "mock_run.py").write_text(MOCK_RUN)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "mock_run.py"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout.splitlines()[-1])
    # The team's modules are the team's, the library's the wheel's.
    assert run["files"] == {
        "config": str(project / "config.py"),
        "components": str(project / "components" / "__init__.py"),
        "sglang_platform.config": str(site / "sglang_platform" / "config" / "__init__.py"),
        "sglang_platform.components": str(site / "sglang_platform" / "components" / "__init__.py"),
    }
    assert run["outputs"] == {
        "baseUrl": "http://r1-distill-api.team-a.svc.cluster.local:8000/v1",
        "service": "r1-distill-api",
        "team": {"config": "team-a", "components": "team-a's components"},
    }
    by_name = {r["name"]: r for r in run["registered"]}
    namespace_urn = by_name["team-namespace"]["urn"]
    # The caller's opts.depends_on reaches every child of the component, not only the component.
    children = [r for r in run["registered"] if r["parent"] == by_name["team-r1"]["urn"]]
    assert sorted(r["name"] for r in children) == ["team-r1-api", "team-r1-lws", "team-r1-netpol", "team-r1-pdb"]
    assert all(namespace_urn in r["dependencies"] for r in children)
    # Only the inference group's modules: no monitoring stack, Grafana SDK, loader, live checks or S3 client.
    assert not [m for m in run["modules"] if m.startswith(("grafana_foundation_sdk", "boto3"))]
    assert not {
        "sglang_platform.components.monitoring",
        "sglang_platform.render.dashboard",
        "sglang_platform.config.loader",
        "sglang_platform.live.s3",
        "sglang_platform.live.cluster",
    } & set(run["modules"])
    assert "sglang_platform.components.sglang_group" in run["modules"]


def test_lazy_exports_are_complete():
    from sglang_platform import components, config

    for package in (components, config):
        assert sorted(package.__all__) == sorted(package._EXPORTS)
        for name in package.__all__:
            assert getattr(package, name) is not None
