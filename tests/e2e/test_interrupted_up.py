"""An `up` interrupted as a killed CI runner interrupts it: the whole `pulumi up` process group killed (SIGKILL, no
chance to clean up) while a chart is installing. The stack stays locked; the next `up` refuses and names `pulumi
cancel`; after `pulumi cancel` Helm refuses the interrupted release until its pending record is deleted; then `up`
converges and a preview after it plans nothing. README, "Troubleshooting"."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, stack_values

from tools.engine import Project
from tools.sim_stacks import SECRETS, SIM, merged, overrides

STACK = "dev"
SIM_OPTIONS = SIM["dev"]
LOCKED = (
    "the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock "
    "file with `pulumi cancel`."
)


@pytest.fixture(scope="module")
def project(cluster, workdir) -> Project:
    return Project.copy(cluster, ROOT, workdir / "project", STACK)


def installing(cluster) -> list[str]:
    """Helm releases caught mid-install: their release Secret says pending-install."""
    secrets = cluster.get("secrets", "-A", "-l", "owner=helm,status=pending-install")["items"]
    return [s["metadata"]["labels"]["name"] for s in secrets]


def kill_session(sid: int) -> None:
    """SIGKILL to every process of the session: pulumi starts its plugins (the language host, the provider that
    runs Helm) in process groups of their own, which a runner's end kills with the rest."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)


def diagnostics(output: str) -> str:
    """The engine's diagnostics of a failed update (the program's traceback after them is only its cancellation)."""
    start = output.find("Diagnostics:")
    return output[start : start + 8000] if start >= 0 else output[-8000:]


def test_a_killed_up_leaves_a_lock_that_cancel_clears_and_up_converges(project, engine, cluster, workdir):
    project.init(merged(stack_values(STACK), overrides(STACK, engine.charts)), SECRETS[STACK])
    log_path = workdir / "killed-up.log"
    # A watch, not a poll: a chart's pending-install lasts only seconds on the simulated nodes.
    watch = subprocess.Popen(
        cluster.sandbox.exec_argv(
            ["kubectl", "get", "secrets", "-A", "-l", "owner=helm,status=pending-install", "-w", "-o", "name"]
        ),
        env=cluster.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    with open(log_path, "w") as log:
        up = subprocess.Popen(
            cluster.sandbox.exec_argv(["pulumi", "up", "--yes", "--skip-preview", "--non-interactive"]),
            cwd=project.dir,
            env=cluster.env(project.env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            assert watch.stdout is not None
            first, deadline = "", time.monotonic() + 900
            while not first and up.poll() is None and time.monotonic() < deadline:
                if select.select([watch.stdout], [], [], 2)[0]:
                    first = watch.stdout.readline()
        finally:
            kill_session(up.pid)
            up.wait()
            kill_session(watch.pid)
            watch.wait()
    caught = installing(cluster)
    assert first and caught, f"no chart was caught installing (up: {up.returncode}):\n" + log_path.read_text()[-4000:]
    print(f"killed `pulumi up` while {', '.join(caught)} installed")

    locked = project.pulumi("up", "--yes", "--skip-preview", check=False)
    assert locked.returncode != 0
    assert LOCKED in locked.output, locked.output[-4000:]

    project.pulumi("cancel", "--yes")
    # Helm's own record of the release the kill interrupted still says pending-install: Helm refuses to install
    # over it, and Pulumi (which never recorded the release) installs it anew.
    refused = project.pulumi("up", "--yes", "--skip-preview", check=False)
    assert refused.returncode != 0
    (workdir / "refused.log").write_text(refused.output)
    assert "cannot re-use a name that is still in use" in refused.output, diagnostics(refused.output)
    # README's remedy: delete that record (the release's objects stay, carrying Helm's ownership annotations,
    # and the next install adopts them; CRDs and claims are untouched).
    for release in caught:
        cluster.kubectl("delete", "secret", "-A", "-l", f"owner=helm,name={release},status=pending-install")
    converged = project.pulumi("up", "--yes", "--skip-preview", check=False)
    (workdir / "converged.log").write_text(converged.output)
    assert converged.returncode == 0, diagnostics(converged.output)
    # What the killed run had started is the stack's now: releases deployed, nothing planned.
    assert installing(cluster) == []
    preview = project.preview()
    assert preview.changed() == {}, list(preview.changed())
