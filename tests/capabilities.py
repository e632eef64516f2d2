"""Tests that need what a laptop may lack (tools/setup_tests.py's capabilities): ``unavailable(capability,
reason)`` skips one on a developer's machine and fails it under CI=true, where .ci/run installs everything; at the
end of a run, one line per missing capability says how many tests it held back and the command that provides it.

conftest.py imports the hooks from here (pytest takes a conftest's hooks by name, imported ones included);
tests/test_capabilities.py runs them in a pytest of their own.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import NoReturn, overload

import pytest

from tools.setup_tests import COMMAND, NEEDS, Capability

# The key a skip's report carries its capability under (TestReport.user_properties).
PROPERTY = "unavailable"


class Unavailable(pytest.skip.Exception):  # type: ignore[name-defined]
    """A skip that knows which capability it waits for (None: the caller did not say)."""

    # As pytest's own outcomes do: the skip's reason reads "Unavailable: ...", not "capabilities.Unavailable: ...".
    __module__ = "builtins"

    def __init__(self, capability: Capability | None, reason: str) -> None:
        super().__init__(msg=reason, allow_module_level=True)
        self.capability = capability


@overload
def unavailable(reason: str, /) -> NoReturn: ...


@overload
def unavailable(capability: Capability, reason: str, /) -> NoReturn: ...


def unavailable(first: str, reason: str | None = None, /) -> NoReturn:
    """A tool or download a check needs is missing: skip on a developer's machine, fail in CI (.ci/run installs
    it, so its absence there means the gate did not run). The one-argument form is the e2e suite's (tests/e2e,
    whose skips count as the sandbox's)."""
    # The skip is reported at the line that called this, not here.
    __tracebackhide__ = True
    capability, message = (None, first) if reason is None else (Capability(first), reason)
    if in_ci():
        pytest.fail(message)
    raise Unavailable(capability, message)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skip records its capability on the report; in CI nothing may be skipped, however the skip was asked for:
    a skipped check is a gate that did not run."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    if in_ci():
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true): {report.longrepr}"
        return
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, Unavailable):
        capability = error.capability
        if capability is None and item.nodeid.startswith("tests/e2e/"):
            capability = Capability.SANDBOX
        if capability is not None:
            # A new list: the report's is the item's own, which its later phases' reports share.
            report.user_properties = [*report.user_properties, (PROPERTY, str(capability))]


def lacking(reports) -> tuple[Counter[str], int]:
    """Skipped tests per capability, and the skips that named none."""
    per: Counter[str] = Counter()
    other = 0
    for report in reports:
        capability = dict(report.user_properties).get(PROPERTY)
        if capability is None:
            other += 1
        else:
            per[capability] += 1
    return per, other


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    per, other = lacking(terminalreporter.stats.get("skipped", []))
    if not per and not other:
        return
    terminalreporter.write_sep("-", "what this machine lacks")
    for capability, need in NEEDS.items():
        if per[capability]:
            terminalreporter.write_line(f"{per[capability]:>4} skipped: {need.what}: {need.command}")
    if other:
        terminalreporter.write_line(f"{other:>4} skipped for other reasons")
    everything = "all but the sandbox" if per[Capability.SANDBOX] else "all of them"
    terminalreporter.write_line(f"{everything}: {COMMAND}; each skip's reason: pytest -rs")
