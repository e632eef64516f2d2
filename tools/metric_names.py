#!/usr/bin/env python3
"""Regenerate the checked-in lists of metric names the dashboard and alerts may use.

    python tools/metric_names.py sglang --all     # facts/metrics/sglang-<release>.txt, every release
    python tools/metric_names.py sglang <wheel>   # one wheel's names, to stdout
    python tools/metric_names.py dcgm default-counters.csv > facts/metrics/dcgm-exporter.txt
    python tools/metric_names.py gateway sgl-model-gateway/src/observability/metrics.rs \
        sglang_router-0.3.2-cp38-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl \
        > facts/metrics/sgl-model-gateway.txt

Each SGLang release the program ships a flag table for has its own list, from its wheel (the one
``python tools/sglang_flags.py fetch`` caches): every prometheus_client Gauge/Counter/Histogram in
``sglang/srt/metrics/*.py`` (0.4.x, 0.5.1) and ``sglang/srt/observability/*.py`` (where 0.5.x moved them), read
with ``ast`` because the modules cannot be imported without torch. The dashboard, alerts and autoscaler take
their names from the pinned release's list (``facts/metrics/__init__.py``). The DCGM list comes from
dcgm-exporter's ``etc/default-counters.csv`` at the exporter tag the GPU Operator deploys. The gateway's list
comes from its Rust source (the ``describe_*!``, ``counter!``, ``gauge!`` and ``histogram!`` calls of
``observability/metrics.rs``), kept only where the name is in the Rust extension of the pinned sglang-router
wheel: the wheel holds no Python metrics code, and strings in the binary run together, so the source names
them and the binary confirms them.
Output lines: ``<name> <type>``, sorted.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import re
import sys
import zipfile

KINDS = {"Gauge": "gauge", "Counter": "counter", "Histogram": "histogram", "Summary": "summary"}


def metrics_in_source(source: str) -> dict[str, str]:
    found = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if func not in KINDS:
            continue
        name = next((k.value for k in node.keywords if k.arg == "name"), None)
        if name is None and node.args:
            name = node.args[0]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            metric = name.value
            # prometheus_client exposes counters with a _total suffix whether or not the name has one.
            if func == "Counter" and not metric.endswith("_total"):
                metric += "_total"
            found[metric] = KINDS[func]
    return found


SGLANG_METRIC_DIRS = ("sglang/srt/metrics/", "sglang/srt/observability/")


def sglang_metrics(wheel: str) -> dict[str, str]:
    found: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as zf:
        for member in sorted(zf.namelist()):
            if member.startswith(SGLANG_METRIC_DIRS) and member.endswith(".py"):
                found |= metrics_in_source(zf.read(member).decode())
    return found


def sglang_list(release: str, wheel: str) -> str:
    """The checked-in file of one release: a header naming its source, then ``<name> <type>`` lines."""
    from pathlib import Path

    found = sglang_metrics(wheel)
    lines = [
        f"# Metrics of SGLang {release}: every Gauge/Counter/Histogram in sglang/srt/metrics/*.py and",
        f"# sglang/srt/observability/*.py of {Path(wheel).name} (PyPI).",
        "# Regenerate: python tools/metric_names.py sglang --all (after python tools/sglang_flags.py fetch).",
    ]
    return "\n".join(lines + [f"{name} {found[name]}" for name in sorted(found)]) + "\n"


def write_all_sglang() -> int:
    """facts/metrics/sglang-<release>.txt for every shipped flag table, from the cached wheels."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from sglang_platform.facts.sglang import shipped_releases
    from tools import sglang_flags

    out = Path(__file__).resolve().parent.parent / "facts" / "metrics"
    missing = []
    for release in shipped_releases():
        wheel = sglang_flags.wheel_for(release)
        if wheel is None:
            missing.append(release)
            continue
        (out / f"sglang-{release}.txt").write_text(sglang_list(release, str(wheel)))
    for release in missing:
        print(f"no wheel for {release}: run python tools/sglang_flags.py fetch", file=sys.stderr)
    return 1 if missing else 0


def dcgm_metrics(counters_csv: str) -> dict[str, str]:
    found = {}
    with open(counters_csv) as fh:
        lines = [line for line in fh if line.strip() and not line.lstrip().startswith("#")]
    for row in csv.reader(io.StringIO("".join(lines))):
        field, kind = row[0].strip(), row[1].strip()
        if kind != "label":  # label fields become labels of the other series, not series themselves
            found[field] = kind
    return found


_RUST_METRIC = re.compile(r'\b(describe_)?(counter|gauge|histogram)!\(\s*"(smg_[a-z0-9_]+)"')
# The gateway's exporter (metrics-exporter-prometheus) sets buckets only for names with this suffix and serves
# every other histogram as a summary.
_BUCKETED = "duration_seconds"


def gateway_metrics(metrics_rs: str, wheel: str) -> tuple[dict[str, str], list[str]]:
    """(name -> kind of every smg_ metric the source declares and the wheel's binary holds, the names the
    binary lacks)."""
    declared: dict[str, str] = {}
    for _, macro, name in _RUST_METRIC.findall(metrics_rs):
        kind = macro if macro != "histogram" else ("histogram" if name.endswith(_BUCKETED) else "summary")
        declared[name] = kind
    with zipfile.ZipFile(wheel) as zf:
        binary = b"".join(zf.read(m) for m in zf.namelist() if m.endswith(".so"))
    missing = sorted(name for name in declared if name.encode() not in binary)
    return {k: v for k, v in declared.items() if k not in missing}, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=["sglang", "dcgm", "gateway"])
    parser.add_argument("path", nargs="?", help="the sglang wheel, dcgm-exporter's default-counters.csv, or metrics.rs")
    parser.add_argument("wheel", nargs="?", help="gateway: the sglang-router wheel")
    parser.add_argument(
        "--all", action="store_true", help="sglang: write the list of every shipped release from its cached wheel"
    )
    args = parser.parse_args(argv)
    if args.source == "sglang" and args.all:
        return write_all_sglang()
    if not args.path:
        parser.error("give the wheel, counters file or metrics.rs (or sglang --all)")
    if args.source == "gateway":
        if not args.wheel:
            parser.error("gateway needs metrics.rs and the sglang-router wheel")
        with open(args.path) as fh:
            found, missing = gateway_metrics(fh.read(), args.wheel)
        for name in missing:
            print(f"not in the wheel, left out: {name}", file=sys.stderr)
    elif args.source == "sglang":
        found = sglang_metrics(args.path)
    else:
        found = dcgm_metrics(args.path)
    for name in sorted(found):
        print(f"{name} {found[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
