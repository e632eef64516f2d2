"""Rules of the serving benchmark: a dataset it can read, a load it can bound, requests the model can take."""

from __future__ import annotations

from ..config.errors import Problem
from ..config.stack import InferenceGroup, PlatformConfig


def check_benchmark(cfg: PlatformConfig) -> list[Problem]:
    out: list[Problem] = []
    for i, g in enumerate(cfg.inference_groups):
        out += [Problem(("inferenceGroups", i, *p.loc), p.message) for p in check_group_benchmark(g)]
    return out


def check_group_benchmark(g: InferenceGroup) -> list[Problem]:
    """The rules of one group's benchmark (locations relative to the group)."""
    bench = g.benchmark
    if bench is None:
        return []
    out: list[Problem] = []
    loc: tuple[str | int, ...] = ("benchmark",)
    if bench.dataset == "sharegpt" and bench.dataset_path is None:
        out.append(
            Problem(
                (*loc, "datasetPath"),
                "required with dataset sharegpt: a ShareGPT JSON file inside the model volume (the benchmark "
                "downloads nothing)",
            )
        )
    if bench.dataset == "random" and bench.dataset_path is not None:
        out.append(Problem((*loc, "datasetPath"), "only allowed with dataset sharegpt (random generates its prompts)"))
    if bench.request_rate is None and bench.max_concurrency is None:
        out.append(
            Problem(
                loc,
                f"set requestRate or maxConcurrency: with neither, bench_serving sends all {bench.num_prompts} "
                "requests at once",
            )
        )
    needed = bench.random_input_len + bench.random_output_len
    if bench.dataset == "random" and g.context_length is not None and needed > g.context_length:
        out.append(
            Problem(
                (*loc, "randomInputLen"),
                f"randomInputLen + randomOutputLen ({needed} tokens) exceed the group's contextLength "
                f"({g.context_length}): SGLang would reject every request",
            )
        )
    return out
