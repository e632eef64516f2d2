"""The Prometheus series an SGLang release exposes, from the lists generated from each release's wheel
(``facts/metrics/sglang-<release>.txt``, ``python tools/metric_names.py sglang --all``).

The dashboard, the alerts and the autoscaler name their series through ``SglangMetrics`` of the pinned
release, so a name a release lacks is never queried (0.4.3.post2 has ``time_per_output_token_seconds``, 0.4.5
and later only ``inter_token_latency_seconds``), and the tests check every expression against that list.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

from packaging.version import InvalidVersion, Version


@functools.cache
def _lists() -> dict[Version, str]:
    out = {}
    for entry in resources.files(__name__).iterdir():
        name = entry.name
        if name.startswith("sglang-") and name.endswith(".txt"):
            try:
                out[Version(name.removeprefix("sglang-").removesuffix(".txt"))] = name
            except InvalidVersion:
                continue
    return dict(sorted(out.items()))


def releases() -> tuple[str, ...]:
    """Releases with a metric list, oldest first."""
    return tuple(str(v) for v in _lists())


@functools.cache
def _read(name: str) -> dict[str, str]:
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    found = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            metric, kind = line.split()
            found[metric] = kind
    return found


@dataclass(frozen=True)
class SglangMetrics:
    """The series names of one release (its own list, else the newest list below it)."""

    release: str
    names: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, release: str | Version | None) -> SglangMetrics:
        lists = _lists()
        try:
            wanted = Version(str(release)) if release is not None else max(lists)
        except InvalidVersion:
            wanted = max(lists)
        below = [v for v in lists if v <= wanted] or [min(lists)]
        chosen = below[-1]
        return cls(str(chosen), tuple(sorted(_read(lists[chosen]).items())))

    @property
    def kinds(self) -> dict[str, str]:
        return dict(self.names)

    def has(self, name: str) -> bool:
        return name in self.kinds

    def pick(self, *candidates: str) -> str:
        """The first candidate this release exposes (newest spelling first)."""
        for name in candidates:
            if self.has(name):
                return name
        raise KeyError(f"SGLang {self.release} exposes none of {', '.join(candidates)}")

    @property
    def inter_token_latency(self) -> str:
        """The decode-latency histogram: inter_token_latency_seconds (0.4.3.post3 and later), else
        time_per_output_token_seconds (0.4.3.post2; 0.4.3.post3 and 0.4.4 expose both)."""
        return self.pick("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds")

    def series(self) -> set[str]:
        """Every series name Prometheus stores for this release (histograms as _bucket/_sum/_count)."""
        out: set[str] = set()
        for name, kind in self.names:
            out |= {f"{name}_{s}" for s in ("bucket", "sum", "count")} if kind == "histogram" else {name}
        return out
