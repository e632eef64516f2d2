"""``/metrics`` of the stand-in: every metric family of the pinned release's list (facts/metrics/
sglang-<release>.txt, generated from its wheel), in Prometheus' text format as prometheus_client writes it, with
the release's labels (``model_name`` always).

The families SGLang's dashboards, alerts and autoscalers read are driven by the engine: the gauges
(``num_running_reqs``, ``num_queue_reqs``, ``num_used_tokens``, ``token_usage``, ``gen_throughput``,
``cache_hit_rate``, and the KV-pool gauges of newer releases) are read at scrape time, the counters
(``prompt_tokens_total``, ``generation_tokens_total``, ``num_requests_total``, ``cached_tokens_total``, aborts,
PD bootstrap and transfer failures) and histograms (TTFT, inter-token latency or time per output token, e2e,
KV transfer) follow every request. Every other family of the release is exposed at zero: a real server exposes
only those its configuration writes to, so the stand-in's set is the release's whole list (a superset).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tools.simulation.standins.engine import Engine, EngineObserver, Req
from tools.simulation.standins.releases import Behaviour

# Families written by the scheduler (its labels) rather than the tokenizer manager.
SCHEDULER_COUNTERS = {
    "sglang:num_bootstrap_failed_reqs_total",
    "sglang:num_transfer_failed_reqs_total",
    "sglang:cached_tokens_total",
}
SCHEDULER_HISTOGRAMS = {"sglang:kv_transfer_latency_ms"}
KV_TRANSFER_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def _value(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _labels(labels: dict[str, str], extra: dict[str, str] | None = None) -> str:
    items = {**labels, **(extra or {})}
    if not items:
        return ""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{esc(str(v))}"' for k, v in items.items()) + "}"


class Histogram:
    def __init__(self, buckets: Sequence[float]):
        self.bounds = (*sorted(float(b) for b in buckets), math.inf)
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break

    def lines(self, name: str, labels: dict[str, str]) -> list[str]:
        out, cumulative = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            cumulative += count
            out.append(f"{name}_bucket{_labels(labels, {'le': _value(bound)})} {_value(cumulative)}")
        out.append(f"{name}_count{_labels(labels)} {_value(self.count)}")
        out.append(f"{name}_sum{_labels(labels)} {_value(self.sum)}")
        return out


class Metrics(EngineObserver):
    def __init__(
        self,
        behaviour: Behaviour,
        served_name: str,
        mode: str,
        bucket_flags: dict[str, list[float] | None],
        engine: Engine | None = None,
    ):
        self.behaviour = behaviour
        self.kinds = behaviour.metrics.kinds  # name -> gauge/counter/histogram/summary
        self.scheduler_labels = behaviour.scheduler_labels(served_name, mode)
        self.tokenizer_labels = behaviour.tokenizer_labels(served_name, mode)
        self.engine = engine
        self.counters: dict[str, float] = {n: 0.0 for n, k in self.kinds.items() if k == "counter"}
        self.histograms: dict[str, Histogram] = {}
        for name, kind in self.kinds.items():
            if kind != "histogram":
                continue
            if name.endswith("time_to_first_token_seconds"):
                buckets = behaviour.buckets("ttft", bucket_flags)
            elif name.endswith(("inter_token_latency_seconds", "time_per_output_token_seconds")):
                buckets = behaviour.buckets("itl", bucket_flags)
            elif name.endswith("e2e_request_latency_seconds"):
                buckets = behaviour.buckets("e2e", bucket_flags)
            elif name in SCHEDULER_HISTOGRAMS:
                buckets = KV_TRANSFER_BUCKETS_MS
            else:
                buckets = ()
            self.histograms[name] = Histogram(buckets)

    # -- writes -----------------------------------------------------------------------------------------------

    def inc(self, name: str, value: float = 1.0) -> None:
        if name in self.counters:
            self.counters[name] += value

    def observe(self, name: str, value: float) -> None:
        if name in self.histograms:
            self.histograms[name].observe(value)

    def token(self, req: Req, now: float, previous: float | None) -> None:
        if not req.log_metrics:
            return
        if previous is None:
            self.observe("sglang:time_to_first_token_seconds", now - req.created)
        else:
            self.observe("sglang:inter_token_latency_seconds", now - previous)

    def finished(self, req: Req) -> None:
        if not req.log_metrics or req.finished_at is None:
            return
        self.inc("sglang:prompt_tokens_total", len(req.prompt_ids))
        self.inc("sglang:generation_tokens_total", len(req.generated))
        self.inc("sglang:num_requests_total")
        self.inc("sglang:cached_tokens_total", req.cached_tokens)
        self.observe("sglang:e2e_request_latency_seconds", req.finished_at - req.created)
        if len(req.generated) > 1 and req.first_token_at is not None:
            tpot = (req.finished_at - req.first_token_at) / (len(req.generated) - 1)
            self.observe("sglang:time_per_output_token_seconds", tpot)

    # -- the exposition ---------------------------------------------------------------------------------------

    def _gauges(self) -> dict[str, float]:
        engine = self.engine
        if engine is None:
            return {}
        pool = engine.cost.max_total_tokens
        used = engine.used_tokens
        cached = engine.cache.tokens
        usage = used / pool if pool else 0.0
        return {
            "sglang:num_running_reqs": len(engine.running),
            "sglang:num_queue_reqs": len(engine.waiting),
            "sglang:num_used_tokens": used,
            "sglang:token_usage": usage,
            "sglang:full_token_usage": usage,
            "sglang:gen_throughput": engine.gen_throughput,
            "sglang:cache_hit_rate": engine.last_hit_rate,
            "sglang:max_total_num_tokens": pool,
            "sglang:kv_used_tokens": used,
            "sglang:kv_evictable_tokens": cached,
            "sglang:kv_available_tokens": max(0, pool - used - cached),
        }

    def render(self) -> str:
        gauges = self._gauges()
        lines: list[str] = []
        for name, kind in sorted(self.kinds.items()):
            scheduler = kind == "gauge" or name in SCHEDULER_COUNTERS or name in SCHEDULER_HISTOGRAMS
            labels = self.scheduler_labels if scheduler else self.tokenizer_labels
            lines.append(f"# HELP {name} {name.split(':', 1)[-1].replace('_', ' ')} (SGLang stand-in)")
            lines.append(f"# TYPE {name} {kind}")
            if kind == "gauge":
                lines.append(f"{name}{_labels(labels)} {_value(gauges.get(name, 0.0))}")
            elif kind == "counter":
                lines.append(f"{name}{_labels(labels)} {_value(self.counters.get(name, 0.0))}")
            elif kind == "histogram":
                lines += self.histograms[name].lines(name, labels)
            else:  # summary
                lines.append(f"{name}_count{_labels(labels)} 0.0")
                lines.append(f"{name}_sum{_labels(labels)} 0.0")
        return "\n".join(lines) + "\n"


def parse_families(text: str) -> dict[str, str]:
    """Family name -> type from ``# TYPE`` lines (what tests and tools compare with the release's list)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            out[name] = kind
    return out


def sample(text: str, name: str) -> float | None:
    """The value of the first sample called exactly ``name`` (any labels)."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None
