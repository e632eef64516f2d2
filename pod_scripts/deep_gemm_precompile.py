#!/usr/bin/env python3
"""Compile DeepGEMM's kernels for one serving configuration into the cache volume, once.

Runs as the first container of every pod of a group whose ``deepGemm.precompile`` is on, in the SGLang image,
with the group's GPUs and flags:

    python3 deep_gemm_precompile.py --cache DIR --key KEY -- python3 -m sglang.compile_deep_gemm <flags>

``KEY`` names the configuration (image, flags: the platform computes it); the GPU model is added here, since
kernels compiled for one GPU do not fit another. If ``DIR/.sglang-platform/<KEY>-<gpu>.done`` exists the
kernels are there and SGLang starts at once; otherwise the command runs (it loads the weights, compiles every
kernel the configuration uses, about 10 minutes more, and exits) and the marker is written only when it
succeeds. A failed or interrupted compile leaves no marker, so the next start compiles again. Every node of a
group runs the command together (compile_deep_gemm needs them all, like the server): the group's nodes share
one cache (a claim) so they agree on whether to compile.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

MARKER_DIR = ".sglang-platform"


def gpu_name() -> str:
    """The first GPU's model, as torch or nvidia-smi report it ("NVIDIA H200")."""
    try:
        import torch  # type: ignore[import-not-found]

        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except Exception:  # torch missing or CUDA not initialisable: ask the driver
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "--id=0"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown-gpu"


def marker_path(cache: str, key: str, gpu: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", gpu).strip("-") or "unknown-gpu"
    return Path(cache) / MARKER_DIR / f"{key}-{slug}.done"


def main(argv: list[str] | None = None, gpu: str | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, help="the cache volume's mount path")
    parser.add_argument("--key", required=True, help="the configuration's key")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the compile command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no compile command after --")
    gpu = gpu or gpu_name()
    marker = marker_path(args.cache, args.key, gpu)
    if marker.exists():
        print(f"DeepGEMM kernels for {args.key} on {gpu} are in {args.cache}: nothing to compile", flush=True)
        return 0
    print(f"compiling DeepGEMM kernels for {args.key} on {gpu} into {args.cache}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    code = subprocess.call(command)
    if code != 0:
        print(f"compile_deep_gemm failed (exit {code}); no marker written, the next start compiles again", flush=True)
        return code
    marker.parent.mkdir(parents=True, exist_ok=True)
    partial = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
    partial.write_text(
        json.dumps({"key": args.key, "gpu": gpu, "seconds": round(time.monotonic() - started), "command": command})
    )
    partial.replace(marker)
    print(f"DeepGEMM kernels compiled in {round(time.monotonic() - started)} s; marker {marker}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
