"""The DeepSeek serving levers of a group that take more than one value: expert parallelism, speculative
decoding and the DeepGEMM kernel cache. Each becomes the flags of the pinned release (``render/server_args.py``,
spelled from the flag tables), and ``rules/levers.py`` holds the rules that tie them to each other and
to the release."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import AbsolutePath, Base, DnsLabel, RelativePath

# Parser, backend and quantization names: the pinned release's table says which it accepts.
Choice = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class ExpertParallel(Base):
    size: int | None = Field(
        None,
        ge=2,
        le=1024,
        description="--ep-size: GPUs the MoE experts are spread over; unset: tensorParallel. Up to 0.4.7 "
        "--enable-ep-moe and DeepEP always use tensorParallel.",
    )
    a2a_backend: Choice | None = Field(
        None,
        alias="a2aBackend",
        description="MoE all-to-all backend, e.g. deepep: --moe-a2a-backend deepep (0.5.1 and later), "
        "--enable-deepep-moe (0.4.5 to 0.5.0). Unset: plain expert parallelism.",
    )
    deepep_mode: Literal["auto", "normal", "low_latency"] | None = Field(
        None, description="--deepep-mode (DeepEP only): normal for prefill, low_latency for decode, auto picks."
    )


class Speculative(Base):
    algorithm: Literal["EAGLE", "NEXTN", "EAGLE3"] = Field(
        "EAGLE",
        description="--speculative-algorithm: EAGLE (DeepSeek MTP; NEXTN is its alias), EAGLE3 (needs a draft model).",
    )
    num_steps: int | None = Field(None, ge=1, le=64, description="--speculative-num-steps.")
    eagle_topk: int | None = Field(None, ge=1, le=64, description="--speculative-eagle-topk.")
    num_draft_tokens: int | None = Field(None, ge=2, le=1024, description="--speculative-num-draft-tokens.")
    draft_model_path: RelativePath | None = Field(
        None,
        description="--speculative-draft-model-path, inside the model volume: the NextN weights SGLang up to "
        "0.4.6 needs for DeepSeek MTP (e.g. lmsys/DeepSeek-R1-NextN); later releases read them from the model.",
    )


class DeepGemmCache(Base):
    type: Literal["hostPath", "pvc"] = Field(
        description="hostPath: each node keeps its own kernels; pvc: one claim (ReadWriteMany) for every node."
    )
    host_path: AbsolutePath | None = Field(None, description="Node directory of the kernels (type hostPath).")
    claim_name: DnsLabel | None = Field(None, description="Existing PersistentVolumeClaim (type pvc).")


class DeepGemm(Base):
    cache: DeepGemmCache
    precompile: bool = Field(
        True,
        description="Before SGLang starts, run python3 -m sglang.compile_deep_gemm with the group's flags unless "
        "the cache already holds this configuration's kernels (a marker per release, flags and GPU).",
    )
    timeout_minutes: int = Field(
        60, ge=10, le=24 * 60, description="compile_deep_gemm --timeout (weights load, then about 10 minutes)."
    )
