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
    assert runs.count('sudo -E env "PATH=$PATH" HOME="$HOME" CI=true bash .ci/run') == 1


def test_the_gate_needs_no_second_repository():
    """A stock runner and this repository: one checkout (no `repository:`), no variable or secret names another."""
    gate = load("tests.yml")
    checkouts = [s for s in steps(gate) if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts == [{"uses": "actions/checkout@v4"}]
    text = (WORKFLOWS / "tests.yml").read_text()
    assert "vars." not in text and "secrets." not in text and "shared" not in text.lower()


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


def test_ci_runs_the_readmes_test_command_on_a_lone_clone():
    from tools.readme_commands import commands

    readme = commands((ROOT / "README.md").read_text())
    assert readme["test"].endswith(".venv/bin/python -m pytest -q")
    assert readme["render"].endswith("tools/render.py --stack dev --out out/dev")
    ci = (ROOT / ".ci" / "run").read_text()
    # A clone of this checkout with nothing beside it, an empty HOME (no caches), and exactly that command.
    assert 'git clone --quiet --no-hardlinks "$PWD" "$LONE/clone/sglang-platform"' in ci
    assert "TEST_COMMAND=$(python tools/readme_commands.py test)" in ci
    assert 'env -i HOME="$LONE/home"' in ci and 'bash -c "$TEST_COMMAND"' in ci
    with pytest.raises(ValueError, match=r"lacks '# 1\.' and '# 2\.' commands"):
        commands("```bash\n# 1. render\nx\n```\n")
