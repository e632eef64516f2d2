"""The GitHub Actions workflows: actionlint-clean, a preview per stack, dev deployed from main."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, Capability, unavailable

WORKFLOWS = ROOT / ".github" / "workflows"
STACKS_ON_DISK = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))


def actionlint() -> str:
    for candidate in (
        os.environ.get("ACTIONLINT"),
        str(ROOT / ".ci" / "bin" / "actionlint"),
        shutil.which("actionlint"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    unavailable(Capability.ACTIONLINT, "actionlint not found in .ci/bin, ACTIONLINT or PATH")
    raise AssertionError


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(workflow: dict) -> list[dict]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


def pulumi_step(workflow: dict) -> dict:
    (step,) = [s for s in steps(workflow) if s.get("uses", "").startswith("pulumi/actions@")]
    return step


def test_actionlint_is_clean():
    proc = subprocess.run([actionlint(), "-color=false"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_actionlint_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / ".github" / "workflows"
    bad.mkdir(parents=True)
    (bad / "x.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n"
    )
    proc = subprocess.run(
        [actionlint(), "-color=false", str(bad / "x.yml")], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1 and "matrix" in proc.stdout


def test_every_stack_is_previewed_on_pull_requests_with_a_pr_comment():
    wf = load("preview.yml")
    assert list(wf[True]) == ["pull_request"]  # YAML 1.1 reads the key `on` as True
    job = wf["jobs"]["preview"]
    assert sorted(job["strategy"]["matrix"]["stack"]) == STACKS_ON_DISK
    step = pulumi_step(wf)
    assert step["with"]["command"] == "preview" and step["with"]["comment-on-pr"] is True
    assert wf["permissions"]["pull-requests"] == "write"


@pytest.mark.parametrize(("name", "job"), [("preview.yml", "preview"), ("deploy-dev.yml", "up")])
def test_nothing_touches_a_cluster_before_the_tests_pass(name, job):
    wf = load(name)
    assert wf["jobs"]["tests"] == {"uses": "./.github/workflows/tests.yml"}
    assert wf["jobs"][job]["needs"] == "tests"
    gate = load("tests.yml")
    assert list(gate[True]) == ["workflow_call"]
    runs = [s.get("run", "") for s in steps(gate)]
    assert any("CI=true bash main/.ci/run" in r for r in runs)
    assert any("python -m pytest -q" in r for r in runs)
    # Without the shared material the gate fails unless the repository explicitly allows a partial run.
    (refuse,) = [s for s in steps(gate) if s.get("name", "").startswith("Refuse a partial gate")]
    assert refuse["if"] == "vars.SHARED_REPOSITORY == '' && vars.ALLOW_PARTIAL_TESTS != 'true'"
    assert refuse["run"].rstrip().endswith("exit 1")
    (partial,) = [s for s in steps(gate) if "python -m pytest -q" in s.get("run", "")]
    assert "vars.ALLOW_PARTIAL_TESTS == 'true'" in partial["if"]


def test_dev_is_deployed_from_main():
    wf = load("deploy-dev.yml")
    assert wf[True] == {"push": {"branches": ["main"]}}
    step = pulumi_step(wf)
    assert step["with"]["command"] == "up" and "'dev'" in step["with"]["stack-name"]


@pytest.mark.parametrize("name", ["preview.yml", "deploy-dev.yml"])
def test_the_pulumi_cli_is_pinned(name):
    assert pulumi_step(load(name))["with"]["pulumi-version"] == "3.276.0"


@pytest.mark.parametrize("name", ["preview.yml", "deploy-dev.yml"])
def test_actions_pinned_and_secrets_from_settings(name):
    wf = load(name)
    for step in steps(wf):
        if "uses" in step:
            assert re.fullmatch(r"[\w-]+/[\w-]+@v\d+(\.\d+){0,2}", step["uses"]), step["uses"]
    env = pulumi_step(wf)["env"]
    assert env == {
        "PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}",
        "PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
    }
    text = (WORKFLOWS / name).read_text()
    assert "${{ secrets.KUBECONFIG }}" in text
