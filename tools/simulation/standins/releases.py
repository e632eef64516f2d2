"""What one SGLang release does on the surface the stand-in reproduces, read from that release's wheel.

``facts.sglang.releases`` already records what the platform relies on (``/ready``, ``/health`` generating,
whether ``--api-key`` guards ``/metrics``, workers' metrics, DeepGEMM's cache); the rest is here, each with the
first shipped release that behaves so (every stand-in release has a shipped flag table, so a threshold between
two shipped releases is exact for all of them). Sources, in each wheel: ``srt/entrypoints/http_server.py``,
``srt/utils.py`` (``add_api_key_middleware``; 0.5.23 ``srt/utils/auth.py``), ``srt/server_args.py``
(``prepare_server_args``), ``srt/metrics/collector.py`` and the schedulers' label dicts, ``compile_deep_gemm.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from sglang_platform.facts.metrics import SglangMetrics
from sglang_platform.facts.sglang import Table, load_table, normalize, shipped_releases
from sglang_platform.facts.sglang.releases import ReleaseFacts, facts

# Histogram buckets (seconds) of TTFT, inter-token latency and e2e latency. Up to 0.4.6 they are fixed in
# metrics/collector.py (0.4.3.post2's lists); from 0.4.7 the defaults below apply unless --bucket-* flags say
# otherwise.
OLD_BUCKETS = {
    "ttft": (0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 20, 40, 60, 80, 120, 160),
    "itl": (0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5),
    "e2e": (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 60, 80, 120, 160),
}
NEW_BUCKETS = {
    "ttft": (0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400),
    "itl": tuple(
        float(b)
        for b in "0.002 0.004 0.006 0.008 0.01 0.015 0.02 0.025 0.03 0.035 0.04 0.06 0.08 0.1 0.2 0.4 "
        "0.6 0.8 1 2 4 6 8".split()
    ),
    "e2e": (0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 800),
}


def _at_least(release: str, first: str) -> bool:
    return Version(release) >= Version(first)


@dataclass(frozen=True)
class Behaviour:
    release: str
    facts: ReleaseFacts
    table: Table
    metrics: SglangMetrics

    # -- the command line -----------------------------------------------------------------------------------

    @property
    def prog(self) -> str:
        """argparse's prog in launch_server's messages: 0.5.23 names it; before, argparse takes the basename of
        sys.argv[0], which ``python -m sglang.launch_server`` sets to the module's file."""
        return "sglang serve" if _at_least(self.release, "0.5.23") else "launch_server.py"

    # -- health and readiness ---------------------------------------------------------------------------------

    @property
    def health_generates(self) -> bool:
        """/health is /health_generate, and both answer 503 until the warmup request finished (0.5.1)."""
        return self.facts.health_generates

    @property
    def health_generate_polls(self) -> bool:
        """/health_generate (0.4.3.post3 on) polls once a second, up to SGLANG_HEALTH_CHECK_TIMEOUT (20 s), for
        any output of the scheduler since it was asked; 0.4.3.post2 awaits its own one-token request."""
        return _at_least(self.release, "0.4.3.post3")

    @property
    def ready_endpoint(self) -> bool:
        return self.facts.ready_endpoint

    # -- the API key ------------------------------------------------------------------------------------------

    def exempt_from_api_key(self, path: str) -> bool:
        """Paths the API-key middleware lets through without a key."""
        if path.startswith("/health"):
            return True
        if path.startswith("/metrics") and not self.facts.metrics_need_api_key:
            return True
        return _at_least(self.release, "0.5.23") and path.startswith("/ready")

    def key_matches(self, header: str | None, key: str) -> bool:
        """Up to 0.5.1 the header must be exactly ``Bearer <key>``; 0.5.23 splits it and takes the scheme in any
        case (``decide_request_auth``)."""
        if header is None:
            return False
        if not _at_least(self.release, "0.5.23"):
            return header == "Bearer " + key
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and token == key

    # -- routes -----------------------------------------------------------------------------------------------

    @property
    def flush_cache_methods(self) -> tuple[str, ...]:
        return ("GET", "POST") if _at_least(self.release, "0.4.5") else ("POST",)

    @property
    def flush_cache_refuses_when_busy(self) -> bool:
        """From 0.4.6 /flush_cache answers 400 when requests are running or waiting (before: 200, not done)."""
        return _at_least(self.release, "0.4.6")

    @property
    def models_list_max_len(self) -> bool:
        """/v1/models cards carry max_model_len from 0.4.5."""
        return _at_least(self.release, "0.4.5")

    @property
    def get_load(self) -> bool:
        """/get_load exists from 0.4.10 to 0.5.1 (0.5.23 has /v1/loads instead, not stood in)."""
        return _at_least(self.release, "0.4.10") and not _at_least(self.release, "0.5.23")

    @property
    def new_info_routes(self) -> bool:
        """/model_info and /server_info (0.5.23; the /get_ forms stay, deprecated)."""
        return _at_least(self.release, "0.5.23")

    def model_info(self, model_path: str, served_name: str, mode: str, ns: dict) -> dict:
        info: dict = {"model_path": model_path, "tokenizer_path": ns.get("tokenizer_path") or model_path}
        info["is_generation"] = True
        if _at_least(self.release, "0.4.10"):
            info["preferred_sampling_params"] = ns.get("preferred_sampling_params")
        if _at_least(self.release, "0.5.1"):
            info["weight_version"] = ns.get("weight_version", "default")
        if _at_least(self.release, "0.5.23"):
            info |= {
                "served_model_name": served_name,
                "load_format": ns.get("load_format"),
                "reasoning_parser": ns.get("reasoning_parser"),
                "tool_call_parser": ns.get("tool_call_parser"),
                "disaggregation_mode": mode,
                "has_image_understanding": False,
                "has_audio_understanding": False,
            }
        return info

    # -- metrics ----------------------------------------------------------------------------------------------

    def scheduler_labels(self, served_name: str, mode: str) -> dict[str, str]:
        """The scheduler's metric labels: model_name (0.4.3.x), engine_type (0.4.4; "unified" until 0.5.23 names
        the PD role), tp_rank and pp_rank (0.4.10), moe_ep_rank (0.5.23). The leader's rank 0 reports."""
        labels = {"model_name": served_name}
        if _at_least(self.release, "0.4.4"):
            labels["engine_type"] = mode if _at_least(self.release, "0.5.23") and mode != "null" else "unified"
        if _at_least(self.release, "0.4.10"):
            labels |= {"tp_rank": "0", "pp_rank": "0"}
        if _at_least(self.release, "0.5.23"):
            labels["moe_ep_rank"] = "0"
        return labels

    def tokenizer_labels(self, served_name: str, mode: str) -> dict[str, str]:
        """The tokenizer manager's labels: model_name, and engine_type from 0.5.23."""
        labels = {"model_name": served_name}
        if _at_least(self.release, "0.5.23"):
            labels["engine_type"] = mode if mode != "null" else "unified"
        return labels

    def buckets(self, kind: str, flags: dict[str, list[float] | None]) -> tuple[float, ...]:
        if not _at_least(self.release, "0.4.7"):
            return OLD_BUCKETS[kind]
        given = flags.get(kind)
        return tuple(given) if given else NEW_BUCKETS[kind]

    # -- PD ---------------------------------------------------------------------------------------------------

    @property
    def route_query(self) -> dict[str, str]:
        """The query decode sends the bootstrap server's GET /route for the prefill server's layout."""
        if _at_least(self.release, "0.5.23"):
            return {"prefill_dp_rank": "-1", "prefill_cp_rank": "-1", "target_tp_rank": "-1", "target_pp_rank": "-1"}
        return {"engine_rank": "-1", "target_dp_group": "-1"}

    # -- DeepGEMM ---------------------------------------------------------------------------------------------

    @property
    def deep_gemm_cache_dir_default(self) -> Path:
        if self.facts.deep_gemm_cache_env == "SGLANG_DG_CACHE_DIR":
            return Path.home() / ".cache" / "sglang" / "deep_gemm"
        return Path.home() / ".cache" / "deep_gemm"


class UnknownReleaseError(ValueError):
    pass


@functools.cache
def behaviour(release: str) -> Behaviour:
    """The behaviour of a shipped release (one with a flag table in facts/sglang)."""
    table = load_table(release)
    if table is None:
        shipped = ", ".join(shipped_releases())
        raise UnknownReleaseError(f"SGLang {release} has no flag table in facts/sglang (shipped: {shipped})")
    name = normalize(release)
    return Behaviour(name, facts(name), table, SglangMetrics.of(name))
