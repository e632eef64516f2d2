"""Rules of a group's GPU: ``gpu`` names the model and with it the memory, so the two keys cannot both be set."""

from __future__ import annotations

from ..config.errors import Problem
from ..config.stack import PlatformConfig
from ..facts.gpus import GPUS


def check_gpus(cfg: PlatformConfig) -> list[Problem]:
    out: list[Problem] = []
    for unit in cfg.serving_units:
        g = unit.group
        if g.gpu is not None and g.gpu_memory_gib is not None:
            gpu = GPUS[g.gpu]
            problem = Problem(
                unit.loc(("gpuMemoryGiB",)),
                f"set gpu or gpuMemoryGiB, not both: gpu {gpu.name} has {gpu.memory_gib:g} GiB "
                "(facts/gpus.py); remove gpuMemoryGiB, or remove gpu for a GPU the table does not list",
            )
            if problem not in out:
                out.append(problem)
    return out
