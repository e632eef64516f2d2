#!/usr/bin/env python3
"""Regenerate the checked-in lists of metric names the dashboard and alerts may use.

    python tools/metric_names.py sglang sglang-0.4.3.post2-py3-none-any.whl > components/metrics/sglang.txt
    python tools/metric_names.py dcgm default-counters.csv > components/metrics/dcgm-exporter.txt

The SGLang list comes from the wheel of the pinned release (``pip download --no-deps sglang==<v>``): every
prometheus_client Gauge/Counter/Histogram in ``sglang/srt/metrics/*.py``, read with ``ast`` because the
modules cannot be imported without torch. The DCGM list comes from dcgm-exporter's ``etc/default-counters.csv``
at the exporter tag the GPU Operator deploys. Output lines: ``<name> <type>``, sorted.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
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


def sglang_metrics(wheel: str) -> dict[str, str]:
    found: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as zf:
        for member in sorted(zf.namelist()):
            if member.startswith("sglang/srt/metrics/") and member.endswith(".py"):
                found |= metrics_in_source(zf.read(member).decode())
    return found


def dcgm_metrics(counters_csv: str) -> dict[str, str]:
    found = {}
    with open(counters_csv) as fh:
        lines = [line for line in fh if line.strip() and not line.lstrip().startswith("#")]
    for row in csv.reader(io.StringIO("".join(lines))):
        field, kind = row[0].strip(), row[1].strip()
        if kind != "label":  # label fields become labels of the other series, not series themselves
            found[field] = kind
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=["sglang", "dcgm"])
    parser.add_argument("path", help="the sglang wheel, or dcgm-exporter's default-counters.csv")
    args = parser.parse_args(argv)
    found = sglang_metrics(args.path) if args.source == "sglang" else dcgm_metrics(args.path)
    for name in sorted(found):
        print(f"{name} {found[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
