"""What a laptop lacks is said once (tests/capabilities.py, tools/setup_tests.py): each skip names its capability,
and the run ends with one line per missing capability, the tests it held back and the command that provides it;
under CI=true every skip fails. The hooks run here in a pytest of their own (pytester, in a subprocess: the outer
run's conftest must not stand in for the inner one's)."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

from tools import setup_tests
from tools.setup_tests import NEEDS, Capability

pytest_plugins = ["pytester"]

CONFTEST = f"""
import sys
sys.path[:0] = [{str(ROOT / "tests")!r}, {str(ROOT)!r}]
from capabilities import pytest_runtest_makereport, pytest_terminal_summary  # the hooks under test
"""
TESTS = """
import pytest
from capabilities import unavailable
from tools.setup_tests import Capability

@pytest.fixture(scope="module")
def promtool():
    unavailable(Capability.PROMTOOL, "promtool not found")

def test_rules(promtool): pass
def test_dashboard(promtool): pass
def test_checkov(): unavailable(Capability.CHECKOV, "checkov not found")
def test_something_else(): pytest.skip("not on this platform")
def test_runs(): pass
"""
E2E = """
from capabilities import unavailable

def test_dev(): unavailable("end-to-end suite: no engine")
"""


@pytest.fixture
def inner(pytester, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_tools=TESTS)
    (pytester.path / "tests" / "e2e").mkdir(parents=True)
    (pytester.path / "tests" / "e2e" / "test_dev.py").write_text(E2E)
    return pytester


def summary(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"-+ what this machine lacks -+", line))
    # it ends with the line that names the command for all of them
    end = next(i for i, line in enumerate(lines) if i > start and line.startswith("all "))
    return lines[start + 1 : end + 1]


def test_each_missing_capability_once_with_its_count_and_command(inner):
    result = inner.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=5)
    need = NEEDS
    assert summary(result.outlines) == [
        f"   1 skipped: {need[Capability.CHECKOV].what}: {need[Capability.CHECKOV].command}",
        f"   2 skipped: {need[Capability.PROMTOOL].what}: {need[Capability.PROMTOOL].command}",
        # the e2e suite's one-argument skips are the sandbox's
        f"   1 skipped: {need[Capability.SANDBOX].what}: {need[Capability.SANDBOX].command}",
        "   1 skipped for other reasons",
        f"all but the sandbox: {setup_tests.COMMAND}; each skip's reason: pytest -rs",
    ]


def test_a_run_with_everything_prints_no_summary(pytester, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_all="def test_runs(): pass\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "what this machine lacks" not in result.stdout.str()


def test_in_ci_every_skip_fails(inner, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = inner.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    # a fixture that fails is an error of each test that uses it
    result.assert_outcomes(passed=1, failed=3, errors=2)
    assert "what this machine lacks" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*skipped in CI (CI=true)*not on this platform*"])


def test_every_capability_has_its_command():
    assert set(NEEDS) == set(Capability)
    for capability, need in NEEDS.items():
        if need.install is None:
            assert capability == Capability.SANDBOX and need.command == "sudo bash .ci/run"
        else:
            assert need.command.endswith(f"tools/setup_tests.py {capability}")
    with pytest.raises(ValueError, match="'promtol' is not a valid Capability"):
        Capability("promtol")


def test_the_setup_installs_the_releases_ci_does():
    run = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^CHECKOV_VERSION=(\S+)", run, flags=re.M)[1] == setup_tests.CHECKOV_VERSION  # type: ignore[index]
    assert re.search(r"^ACTIONLINT_VERSION=(\S+)", run, flags=re.M)[1] == setup_tests.ACTIONLINT_VERSION  # type: ignore[index]
    # and into the places the tests look (tools/security_scan.py, tests/test_workflows.py, tests/test_benchmark.py)
    assert "CHECKOV_VENV=.ci/.checkov-venv" in run and ".ci/bin" in run and "BENCH_VENV=.ci/.bench-venv" in run


def test_an_unknown_capability_is_refused(capsys):
    with pytest.raises(SystemExit):
        setup_tests.main(["promtol"])
    assert "unknown capability promtol" in capsys.readouterr().err
