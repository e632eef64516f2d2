"""The components as a package another team installs: what the wheel holds, that the example project runs
from the installed package alone, and that importing one component loads only what it needs."""

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
    ours = ("components", "config", "grafana_foundation_sdk", "boto3")
    loaded = sorted(n for n in sys.modules if n.split(".")[0] in ours)
    print(json.dumps({"registered": registered, "outputs": outputs, "modules": loaded,
                      "components_from": sys.modules["components"].__file__}))
    """
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # A copy, so the build's scratch directories never land in the checkout.
    shutil.copytree(ROOT, build / "src", ignore=shutil.ignore_patterns(".*", "venv", "out", "build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), "."],
        cwd=build / "src",
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("sglang_platform-*.whl")
    return found


def test_the_wheel_holds_both_packages_and_their_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "components/sglang_group.py",
        "components/k8s.py",
        "components/scripts/download_model.py",
        "components/metrics/sglang-0.4.3.post2.txt",
        "components/metrics/sglang-0.5.23.txt",
        "config/models.py",
        "config/rules/groups.py",
        "config/rules/flags.py",
        "config/server_args.py",
        "config/sglang/0.4.3.post2.json",
        "config/gateways/sglang-router-0.3.2.json",
        "config/gateways/smg-1.13.0.json",
        "components/metrics/smg-1.13.0.txt",
    ):
        assert expected in names, expected
    assert not [n for n in names if n.startswith(("tests/", "tools/", "__main__"))]


def test_the_example_project_runs_from_the_installed_package(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    project = tmp_path / "team_program"
    shutil.copytree(EXAMPLE, project)
    assert (project / "Pulumi.yaml").is_file() and (project / "README.md").is_file()
    (project / "mock_run.py").write_text(MOCK_RUN)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "mock_run.py"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout.splitlines()[-1])
    assert run["components_from"].startswith(str(site))
    assert run["outputs"] == {
        "baseUrl": "http://r1-distill-api.team-a.svc.cluster.local:8000/v1",
        "service": "r1-distill-api",
    }
    by_name = {r["name"]: r for r in run["registered"]}
    namespace_urn = by_name["team-namespace"]["urn"]
    # The caller's opts.depends_on reaches every child of the component, not only the component.
    children = [r for r in run["registered"] if r["parent"] == by_name["team-r1"]["urn"]]
    assert sorted(r["name"] for r in children) == ["team-r1-api", "team-r1-lws", "team-r1-netpol", "team-r1-pdb"]
    assert all(namespace_urn in r["dependencies"] for r in children)
    # Only the inference group's modules: no monitoring stack, Grafana SDK, loader or S3 client.
    assert not [m for m in run["modules"] if m.startswith(("grafana_foundation_sdk", "boto3"))]
    assert not {"components.monitoring", "components.dashboard", "config.loader", "config.preflight"} & set(
        run["modules"]
    )


def test_lazy_exports_are_complete():
    import components
    import config

    for package in (components, config):
        assert sorted(package.__all__) == sorted(package._EXPORTS)
        for name in package.__all__:
            assert getattr(package, name) is not None
