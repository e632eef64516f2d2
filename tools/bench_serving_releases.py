#!/usr/bin/env python3
"""The SGLang releases whose real ``python -m sglang.bench_serving`` tests/test_benchmark.py runs, one per line:
those of every committed stack (``Pulumi.*.yaml``) and of every version set of the bill of materials, less the
ones whose bench_serving cannot run in the test venv (``NOT_RUN``, with the reason). .ci/run installs each one's
wheel for it into ``.ci/.bench-venv/sglang/<release>``.

    python tools/bench_serving_releases.py

The reference set's 0.4.3.post2 is run although no committed stack pins it any more (dev takes the current set's
0.5.23): it is what ``versions.set: reference`` deploys. The stacks of examples/stacks (0.5.23) are read from
source only, like dev: docs/benchmark-slo.md, "Tested how", says why.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Releases whose bench_serving is read from the wheel's source, not run (docs/benchmark-slo.md, "Tested how").
NOT_RUN = {
    "0.5.23": "sglang.bench_serving is sglang.benchmark.serving, whose module-level imports reach some 350 server "
    "modules and torch, torchvision, triton and transformers 5.19",
}


def stack_releases() -> dict[str, str]:
    """Each committed stack's name and the SGLang release it pins (``versions.sglangImage`` or
    ``sglangVersion``, else its version set's)."""
    sys.path.insert(0, str(ROOT))
    import yaml

    from sglang_platform.config import Versions

    releases = {}
    for stack_file in sorted(ROOT.glob("Pulumi.*.yaml")):
        stack = yaml.safe_load(stack_file.read_text()) or {}
        versions = (stack.get("config") or {}).get("sglang-platform:versions") or {}
        release = Versions.model_validate(versions).sglang_release
        if release is None:
            raise SystemExit(f"{stack_file.name}: no SGLang release in versions")
        releases[stack_file.name.split(".")[1]] = str(release)
    return releases


def set_releases() -> dict[str, str]:
    """Each version set of facts/bom.py and the SGLang release it pins."""
    sys.path.insert(0, str(ROOT))
    from sglang_platform.config import Versions
    from sglang_platform.facts import bom

    out = {}
    for name in bom.SETS:
        release = Versions.model_validate({"set": name}).sglang_release
        assert release is not None, name
        out[name] = str(release)
    return out


def bench_releases() -> list[str]:
    """The releases the tests run bench_serving of, oldest first."""
    from packaging.version import Version

    wanted = set(stack_releases().values()) | set(set_releases().values())
    return sorted(wanted - set(NOT_RUN), key=Version)


def main() -> int:
    for release in bench_releases():
        print(release)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
