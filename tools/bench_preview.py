#!/usr/bin/env python3
"""Benchmark on the real engine: wall time of `pulumi preview` and `pulumi up` of each stack against the local
simulated cluster, next to a floor program that registers the same number of ConfigMaps through the same engine,
cluster and virtualenv, in the same run.

    sudo -E python tools/bench_preview.py [--stack dev prod] [--repeat 5] [--cycles 2]

Needs what the e2e suite needs (the sandbox's binaries, a chart mirror, root for its network namespace); every
pulumi command runs inside that namespace. Per stack, on a fresh cluster, the stack as the e2e
suite deploys it (tools/sim_stacks.py) and the floor side by side, each command alternating between the two:
  preview   `pulumi preview` of the new stack (everything to create; best of --repeat)
  up        `pulumi up --yes` (its preview included, as a user runs it; best of --cycles up/destroy cycles)
  steady    `pulumi preview` of the deployed stack (nothing to change; best of --repeat)
Prints a Markdown table (docs/real-engine.md, "Speed on the real engine").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.engine import ROOT, Cluster, Engine, Project
from tools.sim_stacks import NFS_CLIENT, SECRETS, SIM, committed, merged, overrides

FLOOR_PROGRAM = textwrap.dedent(
    """
    import pulumi
    import pulumi_kubernetes as k8s

    n = pulumi.Config().require_int("resources")
    ns = k8s.core.v1.Namespace("floor", metadata={"name": "floor"})
    for i in range(n - 1):
        k8s.core.v1.ConfigMap(
            f"cm-{i}",
            metadata={"name": f"cm-{i}", "namespace": "floor"},
            data={"k": "v"},
            opts=pulumi.ResourceOptions(depends_on=[ns]),
        )
    """
)
FLOOR_PROJECT = "name: floor\nruntime:\n  name: python\n  options:\n    toolchain: pip\n    virtualenv: venv\n"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(stack: Project, floor: Project, args: tuple[str, ...], repeat: int) -> tuple[float, float]:
    """Best wall time of the same pulumi command on the stack and on the floor, run alternately (other load on
    the machine then weighs on both alike)."""
    a, b = [], []
    for _ in range(repeat):
        a.append(timed(lambda: stack.pulumi(*args)))
        b.append(timed(lambda: floor.pulumi(*args)))
    return min(a), min(b)


def measure(stack: Project, floor: Project, repeat: int, cycles: int) -> tuple[dict[str, float], dict[str, float]]:
    real: dict[str, float] = {}
    base: dict[str, float] = {}
    real["preview"], base["preview"] = interleaved(stack, floor, ("preview",), repeat)
    ups: list[tuple[float, float]] = []
    for cycle in range(cycles):
        ups.append((timed(lambda: stack.pulumi("up", "--yes")), timed(lambda: floor.pulumi("up", "--yes"))))
        if cycle == 0:
            no_change = ("preview", "--expect-no-changes")
            real["steady"], base["steady"] = interleaved(stack, floor, no_change, repeat)
        # The stack's destroy keeps its namespace and claims; the next up adopts them (upsertExistingObjects).
        stack.pulumi("destroy", "--yes", "--skip-preview")
        floor.pulumi("destroy", "--yes", "--skip-preview")
    real["up"], base["up"] = min(u[0] for u in ups), min(u[1] for u in ups)
    return real, base


def bench(
    engine: Engine, stack: str, repeat: int, cycles: int, work: Path
) -> tuple[int, dict[str, float], dict[str, float]]:
    from tools import harness

    cluster = Cluster(engine, work / "run")
    cluster.start(*SIM[stack])
    try:
        if stack == "prod":
            cluster.apply(NFS_CLIENT)
        project = Project.copy(cluster, ROOT, work / "project", stack)
        project.init(merged(committed(stack), overrides(stack, engine.charts)), SECRETS[stack])
        result, _ = harness.run_stack(stack_file=project.stack_file, secrets=SECRETS[stack])
        # Kubernetes objects and Helm releases; the floor registers as many ConfigMaps (a namespace included).
        count = sum(1 for r in result.resources if r.custom)

        floor_dir = work / "floor-src"
        floor_dir.mkdir()
        (floor_dir / "Pulumi.yaml").write_text(FLOOR_PROJECT)
        (floor_dir / "__main__.py").write_text(FLOOR_PROGRAM)
        floor = Project.copy(cluster, floor_dir, work / "floor", "floor")
        floor.pulumi("stack", "init", "floor")
        floor.pulumi("config", "set", "resources", str(count))
        return count, *measure(project, floor, repeat, cycles)
    finally:
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", nargs="+", default=["dev", "prod"], choices=["dev", "prod"])
    parser.add_argument("--repeat", type=int, default=5, help="previews per command (best kept)")
    parser.add_argument("--cycles", type=int, default=2, help="up/destroy cycles (best up kept)")
    args = parser.parse_args()
    engine = Engine.find()
    rows = []
    for stack in args.stack:
        with tempfile.TemporaryDirectory(prefix=f"bench-{stack}-") as tmp:
            rows.append((stack, *bench(engine, stack, args.repeat, args.cycles, Path(tmp))))
    print("| stack | resources | command | stack s | floor s | ratio |")
    print("|---|---:|---|---:|---:|---:|")
    for stack, count, real, floor in rows:
        for command in ("preview", "up", "steady"):
            label = {"preview": "preview (new)", "up": "up", "steady": "preview (no change)"}[command]
            print(
                f"| {stack} | {count} | {label} | {real[command]:.1f} | {floor[command]:.1f} | "
                f"{real[command] / floor[command]:.2f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
