"""Stack keys of the serving benchmark (``inferenceGroups[].benchmark``): SGLang's own ``bench_serving``
run against a group each time it serves a new revision, judged against ``monitoring.slo``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Base, RelativePath

# What the benchmark Job requests (and limits): bench_serving is one Python process (asyncio); two cores keep
# it from becoming the bottleneck it measures. Here, not in the component, because on a hostPath volume the
# Job runs on one of the group's GPU nodes, and the node-fit rules (rules.nodes) and the live checks count
# it there.
BENCH_RESOURCES = {"cpu": "2", "memory": "4Gi"}


class Benchmark(Base):
    """A Job that runs ``python -m sglang.bench_serving`` (the group's own image) once the group serves its
    current revision. The defaults are a closed loop of 256 users sending 128-token prompts for 128-token
    answers (the lengths of SGLang's DeepSeek-R1 A800 benchmark), 2000 requests in all: a QPS figure is a
    capacity, and an open loop at a fixed rate can never measure more than the rate it offers."""

    dataset: Literal["random", "sharegpt"] = Field(
        "random",
        description="random: prompts of exactly randomInputLen tokens (text the Job generates, tokenized with the "
        "model's own tokenizer; nothing downloaded); sharegpt: conversations from datasetPath.",
    )
    dataset_path: RelativePath | None = Field(
        None, description="sharegpt: a ShareGPT JSON file inside the model volume (path relative to its mount)."
    )
    num_prompts: int = Field(2000, ge=1, le=1_000_000, description="Requests sent in all (--num-prompts).")
    random_input_len: int = Field(128, ge=1, le=10_000_000, description="random: prompt tokens per request.")
    random_output_len: int = Field(128, ge=1, le=10_000_000, description="random: tokens generated per request.")
    random_range_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="random: lengths are drawn from [ratio x len, len]; 1.0 makes every request exactly the set "
        "lengths (bench_serving's own default, 0.0, draws them from 1 upwards).",
    )
    request_rate: float | None = Field(
        None,
        gt=0,
        le=1_000_000,
        description="Requests per second offered (Poisson arrivals, an open loop); unset: as fast as "
        "maxConcurrency allows (--request-rate inf).",
    )
    max_concurrency: int | None = Field(
        256, ge=1, le=1_000_000, description="Requests in flight at most (--max-concurrency); unset: no cap."
    )
    seed: int = Field(1, ge=0, le=2**31 - 1, description="Seed of the prompt sampling (--seed).")
    ready_timeout_minutes: int = Field(
        240,
        ge=1,
        le=7 * 24 * 60,
        description="How long the Job waits for the weights on its node and for the group to serve its current "
        "revision (weights staged and loaded), on one clock, before it gives up and writes why into its ConfigMap.",
    )
