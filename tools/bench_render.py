#!/usr/bin/env python3
"""Benchmark: render time and peak memory for 1, 8 and 64 inference groups, next to two floors under the same
mocks: a program that imports the same SDK modules and registers as many ConfigMaps ("ConfigMap floor"), and one
that registers the very objects and Helm releases of the render, read from its output, with no logic at all
("objects floor": render / objects floor is the program's own overhead).

    python tools/bench_render.py [--groups 1 8 64] [--repeat 5] [--against REV]

Each measurement runs in a fresh interpreter (imports included, as a `pulumi preview` would pay them) and
reports the best wall time of --repeat runs and the peak RSS of the process. --against REV measures the tree of
git revision REV too (a temporary worktree), each run alternating between the two trees and the floors, so that
other load on the machine weighs on both alike: before and after in one run.
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
        objects, releases = harness.kubernetes_objects(result), harness.releases(result)
        dump_all(objects), dump_all(releases)
    elapsed = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if {write!r}:
        with open({write!r}, "w") as out:
            json.dump({{"objects": objects, "releases": releases}}, out)
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


# The render's own objects and releases, registered as they are: the typed class of each kind the SDK has
# (top-level fields in the SDK's snake_case), a CustomResource for the others. No validation, no rules, no
# components: what is left of the program's time above this is its own.
OBJECTS_PROGRAM = textwrap.dedent(
    """
    import json, re
    import pulumi, pulumi_kubernetes as k8s

    SDK_GROUPS = {"": "core", "apps": "apps", "batch": "batch", "policy": "policy", "autoscaling": "autoscaling",
                  "rbac.authorization.k8s.io": "rbac", "networking.k8s.io": "networking", "storage.k8s.io": "storage"}
    with open(pulumi.Config("sglang-platform").require("floorObjects")) as f:
        rendered = json.load(f)
    for obj in rendered["objects"]:
        group, _, version = obj["apiVersion"].rpartition("/")
        module = getattr(k8s, SDK_GROUPS.get(group, ""), None) if group in SDK_GROUPS else None
        cls = getattr(getattr(module, version, None), obj["kind"], None)
        meta = obj["metadata"]
        name = f"{obj['kind']}-{meta.get('namespace', '')}-{meta['name']}"
        fields = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        if cls is None:
            k8s.apiextensions.CustomResource(name, api_version=obj["apiVersion"], kind=obj["kind"], **fields)
        else:
            cls(name, **{re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in fields.items()})
    for r in rendered["releases"]:
        repo = k8s.helm.v3.RepositoryOptsArgs(repo=r["repository"]) if r.get("repository") else None
        k8s.helm.v3.Release(f"release-{r['name']}", name=r["name"], namespace=r["namespace"], chart=r["chart"],
                            version=r["version"], repository_opts=repo, values=r["values"])
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


def run_once(root: Path, config: dict[str, str], program: Path, secret_keys: list[str], write: str) -> dict:
    """One measured run in a fresh interpreter, with the harness of the tree at ``root``; ``write``: a path for the
    render's objects and releases (JSON), or ""."""
    code = CHILD.format(
        root=str(root), config=json.dumps(config), program=str(program), secret_keys=secret_keys, write=write
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the measured run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def best(runs: list[dict]) -> dict:
    fastest = min(runs, key=lambda r: r["seconds"])
    return {
        "seconds": fastest["seconds"],
        "peak_mib": max(r["peak_mib"] for r in runs),
        "resources": fastest["resources"],
    }


def worktree(rev: str, dest: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(dest), rev], check=True)
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--against", metavar="REV", help="also measure the tree of this git revision, interleaved")
    args = parser.parse_args()
    cases = [("prod", None)] + [("dev", n) for n in args.groups]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        trees = {"this tree": ROOT}
        if args.against:
            trees[args.against] = worktree(args.against, tmp / "against")
        try:
            floor_program, objects_program = tmp / "floor.py", tmp / "objects.py"
            floor_program.write_text(FLOOR_PROGRAM)
            objects_program.write_text(OBJECTS_PROGRAM)
            rows = []
            for stack, count in cases:
                config, secret_keys = stack_with_groups(stack, count)
                groups = len(json.loads(config["sglang-platform:inferenceGroups"]))
                runs: dict[tuple[str, str], list[dict]] = {}
                for _ in range(args.repeat):
                    for label, root in trees.items():
                        rendered = tmp / f"{label.replace(' ', '-')}-{stack}-{groups}.json"
                        real = run_once(root, config, root / "__main__.py", secret_keys, str(rendered))
                        floor_config = {"sglang-platform:floorResources": str(real["resources"])}
                        objects_config = {"sglang-platform:floorObjects": str(rendered)}
                        runs.setdefault((label, "render"), []).append(real)
                        runs.setdefault((label, "floor"), []).append(
                            run_once(ROOT, floor_config, floor_program, [], "")
                        )
                        runs.setdefault((label, "objects"), []).append(
                            run_once(ROOT, objects_config, objects_program, [], "")
                        )
                for label in trees:
                    real, floor, objects = (best(runs[(label, k)]) for k in ("render", "floor", "objects"))
                    rows.append((label, stack, groups, real, floor, objects))
        finally:
            if args.against:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "against")])
    print(
        "| tree | stack | groups | resources | render s | ConfigMap floor s | ratio | objects floor s | own overhead "
        "| render peak MiB | floor peak MiB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, stack, groups, real, floor, objects in rows:
        print(
            f"| {label} | {stack} | {groups} | {real['resources']} | {real['seconds']:.2f} | {floor['seconds']:.2f} | "
            f"{real['seconds'] / floor['seconds']:.2f} | {objects['seconds']:.2f} | "
            f"{real['seconds'] / objects['seconds']:.2f} | {real['peak_mib']:.0f} | {floor['peak_mib']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
