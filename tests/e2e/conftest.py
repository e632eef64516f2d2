"""Fixtures of the end-to-end suite: the engine (skipped on a laptop without it, a failure under CI=true), one
simulated cluster per test module (started with cluster.sh, stopped at the module's end), and a copy of the
project per stack, run by the engine inside the cluster's network namespace."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SHARED, unavailable

from tools.engine import Cluster, Engine, EngineMissingError

# The LWS CRD only: the charts the stacks install bring their own CRDs (KEDA's and Volcano's are release
# templates, which Helm refuses to create over existing ones).
LWS_CRD = "lws-v0.10.0.yaml"


@pytest.fixture(scope="session")
def engine() -> Engine:
    try:
        return Engine.find(SHARED)
    except EngineMissingError as exc:
        unavailable(f"end-to-end suite: {exc}")


@pytest.fixture(scope="module")
def cluster(request, engine: Engine, tmp_path_factory) -> Iterator[Cluster]:
    """A fresh simulated cluster for the module; its SIM_OPTIONS (cluster.sh start options) size it, besides
    the LWS CRD, its EXTRA_CRDS (files or folders under ../shared) are applied."""
    options = tuple(getattr(request.module, "SIM_OPTIONS", ("--nodes", "3")))
    base = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    crds = base / "crds"
    crds.mkdir()
    shutil.copy(engine.shared / "crds" / LWS_CRD, crds / LWS_CRD)
    for folder in getattr(request.module, "EXTRA_CRDS", ()):
        options += ("--crd", str(engine.shared / folder))
    sim = Cluster(engine, base / "run", env={"SGLANG_SIM_CRDS": str(crds)})
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
