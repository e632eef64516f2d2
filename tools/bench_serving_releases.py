#!/usr/bin/env python3
"""The SGLang release of every committed stack (``Pulumi.*.yaml``), one per line: the releases whose real
``python -m sglang.bench_serving`` tests/test_benchmark.py runs, and whose wheels .ci/run installs for it into
``.ci/.bench-venv/sglang/<release>``.

    python tools/bench_serving_releases.py

The stacks of examples/stacks (0.5.23) are not among them: docs/benchmark-slo.md, "Tested how", says why.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stack_releases() -> dict[str, str]:
    """Each committed stack's name and the SGLang release it pins (``versions.sglangImage`` or
    ``sglangVersion``, else the bill of materials')."""
    sys.path.insert(0, str(ROOT))
    import yaml

    from config import Versions

    releases = {}
    for stack_file in sorted(ROOT.glob("Pulumi.*.yaml")):
        stack = yaml.safe_load(stack_file.read_text()) or {}
        versions = (stack.get("config") or {}).get("sglang-platform:versions") or {}
        release = Versions.model_validate(versions).sglang_release
        if release is None:
            raise SystemExit(f"{stack_file.name}: no SGLang release in versions")
        releases[stack_file.name.split(".")[1]] = str(release)
    return releases


def main() -> int:
    for release in sorted(set(stack_releases().values())):
        print(release)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
