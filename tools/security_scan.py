#!/usr/bin/env python3
"""checkov over what a stack renders, custom-resource pod templates included.

    python tools/security_scan.py --stack prod [--stack dev] [--reference] [--checkov PATH]

checkov knows Pods, Deployments, StatefulSets and friends but not a LeaderWorkerSet (or any other CRD
that embeds pod templates), so every pod template found inside a custom resource is also handed to it
as a synthetic StatefulSet (LWS runs its pods through StatefulSets), carrying the template's
annotations: that is where ``checkov.io/skipN`` annotations for the pods live. ``--reference`` scans
the YAML of the reference deployment (its objects as the write-up gives them, committed as
``tests/fixtures/reference/``) the same way, for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools import harness

REFERENCE = harness.ROOT / "tests" / "fixtures" / "reference" / "deepseek-r1-k8s-sglang-deployment.yaml"
CHECKOV_VENV = harness.ROOT / ".ci" / ".checkov-venv" / "bin" / "checkov"
# Built-in kinds whose pod templates checkov already scans.
_BUILTIN_GROUPS = ("v1", "apps/", "batch/")
# Labels a controller puts on the pods it creates from a custom resource (so NetworkPolicies that select
# them are matched as on a cluster).
CONTROLLER_LABELS = {"LeaderWorkerSet": lambda name: {"leaderworkerset.sigs.k8s.io/name": name}}


def find_checkov() -> str | None:
    for candidate in (os.environ.get("CHECKOV"), str(CHECKOV_VENV), shutil.which("checkov")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _pod_templates(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every PodTemplateSpec-shaped mapping (``spec.containers``) below ``node``, with its key path."""
    if isinstance(node, dict):
        spec = node.get("spec")
        if path and isinstance(spec, dict) and isinstance(spec.get("containers"), list):
            yield path, node
            return
        for key, value in node.items():
            yield from _pod_templates(value, (*path, str(key)))


def template_workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A synthetic StatefulSet per pod template embedded in a custom resource."""
    out = []
    for obj in objects:
        if str(obj.get("apiVersion", "")).startswith(_BUILTIN_GROUPS):
            continue
        meta = obj.get("metadata") or {}
        for path, template in _pod_templates({k: v for k, v in obj.items() if k != "metadata"}):
            role = re.sub(r"[^a-z0-9]+", "-", path[-1].lower()).strip("-")
            tmeta = template.get("metadata") or {}
            labels = dict(tmeta.get("labels") or {"app": meta.get("name", "x")})
            if (added := CONTROLLER_LABELS.get(str(obj.get("kind")))) is not None:
                labels |= added(str(meta.get("name")))
            template = {**template, "metadata": {**tmeta, "labels": labels}}
            wmeta: dict[str, Any] = {
                "name": f"{meta.get('name')}-{role}",
                "labels": labels,
                "annotations": {
                    "sglang-platform.io/template-of": f"{obj.get('kind')}/{meta.get('name')} {'.'.join(path)}",
                    **(tmeta.get("annotations") or {}),
                },
            }
            if meta.get("namespace"):
                wmeta["namespace"] = meta["namespace"]
            out.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "StatefulSet",
                    "metadata": wmeta,
                    "spec": {
                        "serviceName": str(meta.get("name")),
                        "replicas": 1,
                        "selector": {"matchLabels": labels},
                        "template": template,
                    },
                }
            )
    return out


def reference_objects(path: Path = REFERENCE) -> list[dict[str, Any]]:
    """The Kubernetes objects of the reference deployment, in the write-up's order."""
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict) and "kind" in d]


@dataclass
class Report:
    passed: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.passed) + len(self.failed)


def scan(sets: dict[str, list[dict[str, Any]]], checkov: str) -> dict[str, Report]:
    """Run checkov once over every named set of objects (each set plus its synthetic pod workloads)."""
    with tempfile.TemporaryDirectory(prefix="checkov-") as tmp:
        for name, objects in sets.items():
            (Path(tmp) / f"{name}.yaml").write_text(yaml.safe_dump_all(objects + template_workloads(objects)))
        proc = subprocess.run(
            [checkov, "--directory", tmp, "--framework", "kubernetes", "--output", "json", "--skip-download"],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
        )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"checkov exited {proc.returncode}: {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout)
    results = (data[0] if isinstance(data, list) else data).get("results", {})
    reports = {name: Report() for name in sets}
    for status, attr in (("passed_checks", "passed"), ("failed_checks", "failed"), ("skipped_checks", "skipped")):
        for check in results.get(status, []):
            name = Path(check["file_path"]).stem
            getattr(reports[name], attr).append(check)
    return reports


def describe(check: dict[str, Any]) -> str:
    line = f"{check['check_id']} {check['resource']}: {check['check_name']}"
    suppress = (check.get("check_result") or {}).get("suppress_comment")
    return f"{line} [skipped: {suppress}]" if suppress else line


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--stack", action="append", default=[], help="stack to render and scan (repeatable)")
    cli.add_argument("--reference", action="store_true", help="also scan the reference deployment")
    cli.add_argument("--checkov", default=find_checkov(), help="checkov executable")
    args = cli.parse_args(argv)
    if not args.checkov:
        print("error: checkov not found (bash .ci/run installs it into .ci/.checkov-venv)", file=sys.stderr)
        return 2
    sets: dict[str, list[dict[str, Any]]] = {}
    for stack in args.stack:
        result, _ = harness.run_stack(stack)
        if result.error:
            print(f"error: {stack}: {result.error}", file=sys.stderr)
            return 1
        sets[stack] = harness.kubernetes_objects(result)
    if args.reference:
        sets["reference"] = reference_objects()
    failed = 0
    for name, report in scan(sets, args.checkov).items():
        print(f"{name}: {len(report.failed)} of {report.total} checks fail, {len(report.skipped)} skipped")
        for check in report.failed + report.skipped:
            print(f"  {'FAIL' if check in report.failed else 'skip'} {describe(check)}")
        failed += len(report.failed) if name != "reference" else 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
