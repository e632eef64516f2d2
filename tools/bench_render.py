#!/usr/bin/env python3
"""Benchmark: render time and peak memory for 1, 8 and 64 inference groups, next to the floor of importing
the SDKs (the same API groups) and registering the same number of resources under the same mocks.

    python tools/bench_render.py [--groups 1 8 64] [--repeat 3]

Each measurement runs in a fresh interpreter (imports included, as a `pulumi preview` would pay them) and
reports the best wall time of --repeat runs and the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    sys.path.insert(0, {root!r})
    from tools import harness
    config = json.loads({config!r})
    result = harness.run(config, {secret_keys!r}, stack="bench", program=__import__("pathlib").Path({program!r}))
    assert result.error is None, result.error
    if {write!r}:
        from tools.render import dump_all
        dump_all(harness.kubernetes_objects(result)), dump_all(harness.releases(result))
    elapsed = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({{"seconds": elapsed, "peak_mib": peak_kib / 1024, "resources": len(result.resources)}}))
    """
)

FLOOR_PROGRAM = textwrap.dedent(
    """
    import pulumi, pulumi_kubernetes as k8s
    # The SDK modules the platform uses (pulumi_kubernetes loads each API group lazily, at a cost).
    k8s.apps.v1.Deployment, k8s.batch.v1.Job, k8s.networking.v1.NetworkPolicy, k8s.policy.v1.PodDisruptionBudget
    k8s.helm.v3.Release, k8s.apiextensions.CustomResource
    n = int(pulumi.Config("sglang-platform").require("floorResources"))
    for i in range(n):
        k8s.core.v1.ConfigMap(f"cm-{i}", metadata={"name": f"cm-{i}", "namespace": "bench"}, data={"k": "v"})
    """
)


def stack_with_groups(stack: str, count: int | None) -> tuple[dict[str, str], list[str]]:
    """The stack's config (secrets as placeholders), its first group repeated ``count`` times."""
    sys.path.insert(0, str(ROOT))
    from tools import harness

    cfg = harness.stack_config(ROOT / f"Pulumi.{stack}.yaml")
    key = "sglang-platform:inferenceGroups"
    if count is not None:
        base = json.loads(cfg.values[key])[0]
        groups = []
        for i in range(count):
            g = copy.deepcopy(base)
            g["name"] = f"{base['name'][:30]}-{i}"
            g["model"]["servedName"] = f"{base['model']['servedName']}-{i}"
            # Each copy stages its weights into its own claim, as separate models would.
            if "claimName" in g.get("modelVolume", {}):
                g["modelVolume"]["claimName"] = f"{base['modelVolume']['claimName']}-{i}"
            groups.append(g)
        cfg.values[key] = json.dumps(groups)
    return cfg.values, cfg.secret_keys


def measure(config: dict[str, str], program: Path, repeat: int, secret_keys: list[str], write: bool) -> dict:
    runs = []
    for _ in range(repeat):
        code = CHILD.format(
            root=str(ROOT), config=json.dumps(config), program=str(program), secret_keys=secret_keys, write=write
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"the measured run failed:\n{out.stderr[-3000:]}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    return {"seconds": best["seconds"], "peak_mib": max(r["peak_mib"] for r in runs), "resources": best["resources"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| stack | groups | resources | render s | floor s | ratio | render peak MiB | floor peak MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    cases = [("prod", None)] + [("dev", n) for n in args.groups]
    with tempfile.TemporaryDirectory() as tmp:
        floor_program = Path(tmp) / "floor.py"
        floor_program.write_text(FLOOR_PROGRAM)
        for stack, count in cases:
            config, secret_keys = stack_with_groups(stack, count)
            real = measure(config, ROOT / "__main__.py", args.repeat, secret_keys, write=True)
            floor_config = {"sglang-platform:floorResources": str(real["resources"])}
            floor = measure(floor_config, floor_program, args.repeat, [], write=False)
            groups = len(json.loads(config["sglang-platform:inferenceGroups"]))
            print(
                f"| {stack} | {groups} | {real['resources']} | {real['seconds']:.2f} | {floor['seconds']:.2f} | "
                f"{real['seconds'] / floor['seconds']:.2f} | {real['peak_mib']:.0f} | {floor['peak_mib']:.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
