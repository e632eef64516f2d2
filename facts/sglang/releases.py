"""What a release does that its flag table cannot say: its HTTP endpoints, how it reads a lever, where it
caches DeepGEMM kernels. One row per shipped flag table, each fact read from that release's wheel
(``tests/test_sglang_releases.py`` reads them again from every wheel and fails on any difference).

The flag tables say which options a release has; these facts say what some of them mean there, so the
platform can emit the spelling a release needs and refuse a setting the release would silently change:

- ``health_generates``: the leader's ``/health`` runs a one-token generation (``http_server.py``: ``/health``
  and ``/health_generate`` are one handler from 0.5.x); before, ``/health`` answered 200 as soon as the HTTP
  server was up. Workers (``--node-rank`` >= 1) always serve a stand-in ``/health`` (``utils``:
  ``launch_dummy_health_check_server``).
- ``ready_endpoint``: the leader serves ``/ready``, 200 once warmed up and while healthy, without generating.
- ``metrics_need_api_key``: ``--api-key`` guards ``/metrics`` (the API-key middleware exempts only
  ``/health*``; from 0.4.6 it exempts ``/metrics`` too, and 0.5.23's ``decide_request_auth`` never asks).
- ``worker_metrics``: workers' stand-in server also serves ``/metrics`` with ``--enable-metrics``: the
  schedulers running on a worker node (DP-attention groups there) report on the worker pod.
- ``dp_attention_dp_is_tp``: ``--enable-dp-attention`` sets ``dp_size = tp_size`` whatever ``--dp-size``
  says (``ServerArgs.__post_init__``); later releases take the DP size as given.
- ``ep_moe_flag``: how ``--enable-ep-moe`` works there: ``forces`` (selects the EP MoE layer and sets
  ``ep_size = tp_size``), ``selects`` (selects the layer, ``--ep-size`` sizes it), or None (the flag is
  deprecated or gone: ``--ep-size`` > 1 alone selects expert parallelism). DeepEP always sets ``ep_size =
  tp_size`` (``enable_deepep_moe`` / ``moe_a2a_backend == "deepep"``, 0.5.23's ``_a2a_ep_size``).
- ``speculative_running_cap``: with EAGLE/NEXTN speculative decoding and ``--max-running-requests`` unset,
  SGLang caps running requests at this many (None: no cap).
- ``mtp_draft_from_model``: DeepSeek MTP takes its draft layer from the model itself
  (``speculative_draft_model_path`` defaults to the model path for ``DeepseekV3ForCausalLM``); before,
  ``--speculative-draft-model-path`` must name the NextN weights.
- ``deep_gemm_compile``: ``python3 -m sglang.compile_deep_gemm`` exists; ``deep_gemm_cache_env``: the
  variable naming the directory DeepGEMM's JIT kernels are cached in (``SGL_DG_CACHE_DIR`` defaulting to
  ``~/.cache/deep_gemm``, from 0.5.x ``SGLANG_DG_CACHE_DIR`` defaulting to ``~/.cache/sglang/deep_gemm``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from packaging.version import InvalidVersion, Version


@dataclass(frozen=True)
class ReleaseFacts:
    release: str
    health_generates: bool
    ready_endpoint: bool
    metrics_need_api_key: bool
    worker_metrics: bool
    dp_attention_dp_is_tp: bool
    ep_moe_flag: Literal["forces", "selects"] | None
    speculative_running_cap: int | None
    mtp_draft_from_model: bool
    deep_gemm_compile: bool
    deep_gemm_cache_env: str | None


# One row per shipped flag table, in the order of ReleaseFacts' fields after the release.
_SGL = "SGL_DG_CACHE_DIR"
_ROWS: tuple[tuple, ...] = (
    # release       health  ready  mkey   wmetr  dp=tp  ep_moe     cap   draft  dgc    dg_env
    ("0.4.3.post2", False, False, True, False, True, "forces", None, False, False, None),
    ("0.4.3.post3", False, False, True, False, True, "forces", 32, False, False, None),
    ("0.4.4", False, False, True, False, True, "forces", 32, False, False, None),
    ("0.4.5", False, False, True, False, False, "forces", 48, False, False, None),
    ("0.4.6", False, False, False, False, False, "forces", 48, False, True, _SGL),
    ("0.4.7", False, False, False, False, False, "forces", 48, True, True, _SGL),
    ("0.4.10", False, False, False, True, False, "selects", 48, True, True, _SGL),
    ("0.5.1", True, False, False, True, False, None, 48, True, True, _SGL),
    ("0.5.23", True, True, False, True, False, None, 48, True, True, "SGLANG_DG_CACHE_DIR"),
)
_FACTS = tuple(ReleaseFacts(*row) for row in _ROWS)
FACTS: dict[str, ReleaseFacts] = {f.release: f for f in _FACTS}


def facts(release: str | Version) -> ReleaseFacts:
    """The facts of a release: its own row, else the row of the newest release below it (a table generated
    for a release without a row here gets the behaviour of its predecessor; add a row with the table)."""
    return _facts(str(release))


# Every group's flags and pods ask for their release's row, several times each.
@functools.cache
def _facts(release: str) -> ReleaseFacts:
    try:
        wanted = Version(release)
    except InvalidVersion:
        wanted = Version(_FACTS[-1].release)
    below = [f for f in _FACTS if Version(f.release) <= wanted]
    return below[-1] if below else _FACTS[0]
