"""Helpers for checking PromQL: the metric names an expression reads, and promtool runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from conftest import Capability, unavailable

METRICS_DIR = Path(__file__).resolve().parent.parent / "facts" / "metrics"
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
# Grafana fills these in before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$model": ".*"}


def known_metrics(sglang_release: str | None = None, gateway: str = "sgl-model-gateway.txt") -> set[str]:
    """Every series name the exporters expose (histograms as _bucket/_sum/_count, summaries as the quantiles
    plus _sum/_count), plus `up`: SGLang's of ``sglang_release`` (facts/metrics/sglang-<release>.txt), or
    of every shipped release when None; of the gateways, only ``gateway``'s list (the default gateway's,
    sglang-router 0.3.2's), so a name only another gateway exports is not taken for known."""
    from sglang_platform.facts.gateways import RELEASES
    from sglang_platform.facts.metrics import SglangMetrics, releases

    names = {"up"}  # written by Prometheus for every target
    for release in [sglang_release] if sglang_release else releases():
        names |= SglangMetrics.of(release).series()
    gateway_lists = {r.metrics for r in RELEASES}
    for path in sorted(METRICS_DIR.glob("*.txt")):
        if path.name.startswith("sglang-") or (path.name in gateway_lists and path.name != gateway):
            continue
        for line in path.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            name, kind = line.split()
            if kind == "histogram":
                names |= {f"{name}_{s}" for s in ("bucket", "sum", "count")}
            elif kind == "summary":
                names |= {name, f"{name}_sum", f"{name}_count"}
            else:
                names.add(name)
    return names


def metric_names(expr: str) -> set[str]:
    """Series names an expression selects: identifiers that are not functions, keywords or label names."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.$])([A-Za-z_:][A-Za-z0-9_:]*)(?![A-Za-z0-9_:])(?!\s*\()", text):
        word = match.group(1)
        if word.lower() not in KEYWORDS and word.lower() not in {"inf", "nan"}:
            names.add(word)
    return names


def grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    return expr


def promtool() -> str:
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not path:
        unavailable(Capability.PROMTOOL, "promtool not found (Debian's prometheus package, or set PROMTOOL)")
    return path


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path
