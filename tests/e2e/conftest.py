"""Fixtures of the end-to-end suite: the engine (skipped on a laptop without it, a failure under CI=true), one
simulated cluster per test module (the sandbox's, stopped at the module's end), and a copy of the
project per stack, run by the engine inside the cluster's network namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import unavailable

from tools.engine import Cluster, Engine, EngineMissingError
from tools.simulation.cluster import CRDS


@pytest.fixture(scope="session")
def engine() -> Engine:
    try:
        return Engine.find()
    except EngineMissingError as exc:
        unavailable(f"end-to-end suite: {exc}")


@pytest.fixture(scope="module")
def cluster(request, engine: Engine, tmp_path_factory) -> Iterator[Cluster]:
    """A fresh simulated cluster for the module; its SIM_OPTIONS (sandbox start options) size it. The sandbox
    applies the LWS CRDs only (the charts the stacks install bring their own: KEDA's and Volcano's are release
    templates, which Helm refuses to create over existing ones); a module's EXTRA_CRDS are added: files of
    third_party/crds, or `charts/<chart>-<version>/...` paths in the chart mirror."""
    options = tuple(getattr(request.module, "SIM_OPTIONS", ("--nodes", "3")))
    base = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    for extra in getattr(request.module, "EXTRA_CRDS", ()):
        path = engine.charts / extra.removeprefix("charts/") if extra.startswith("charts/") else CRDS / extra
        options += ("--crd", str(path))
    sim = Cluster(engine, base / "run")
    sim.start(*options)
    try:
        yield sim
    finally:
        sim.stop()


class Steps:
    """The e2e modules are one scenario each (preview, up, checks, changes, destroy, up): a step that needs an
    earlier one is skipped once that failed, so the first failure is the one reported."""

    def __init__(self) -> None:
        self.done: set[str] = set()

    def need(self, *names: str) -> None:
        missing = [n for n in names if n not in self.done]
        if missing:
            pytest.skip(f"an earlier step failed: {', '.join(missing)}")


@pytest.fixture(scope="module")
def steps() -> Steps:
    return Steps()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, request) -> Path:
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1] + "-work")
