"""Stand-in for ``python3 -m sglang.compile_deep_gemm`` of one SGLang release (0.4.6 and later have it).

The real module parses the server's arguments plus its own ``--timeout`` (default 3600) with a parser of its
own (``argparse.ArgumentParser()``, so argparse names it ``compile_deep_gemm.py``), launches a server with them
-- which, with ``--nnodes`` > 1, forms the group like ``launch_server`` -- sends it one request so every DeepGEMM
kernel the configuration uses is JIT-compiled into the cache directory (``SGL_DG_CACHE_DIR``, from 0.5.x
``SGLANG_DG_CACHE_DIR``), and exits 0. The stand-in does the same without a GPU: it parses the same command
line, forms the same group, "loads" (``SGLANG_STANDIN_LOAD_SECONDS``), "compiles" (``SGLANG_STANDIN_COMPILE_SECONDS``,
default 1), writes its kernels into that cache directory (``cache/kernel.sglang-standin.<key>/kernel.json``,
where a later ``launch_server`` stand-in finds them), and exits 0; nodes other than 0 exit when node 0 has.
It serves no HTTP on ``--host:--port`` while doing so (the real one does, internally), so that init containers
of pods sharing the simulation's network namespace do not collide on that port.

    SGLANG_STANDIN_RELEASE=0.5.23 python -m tools.simulation.standins.compile_deep_gemm --model-path ... [flags]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tools.simulation.standins import cli
from tools.simulation.standins.sglang_server import Config, chosen_behaviour, serve

PROG = "compile_deep_gemm.py"


def compile_args(parser: argparse.ArgumentParser) -> None:
    """CompileArgs.add_cli_args of every release that has the module."""
    parser.add_argument("--timeout", type=int, default=3600)


def main(argv: Sequence[str] | None = None, release: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    b = chosen_behaviour(release)
    if b is None:
        return 1
    if not b.facts.deep_gemm_compile:
        # python3 -m of a module the release does not ship.
        print(f"/usr/bin/python3: No module named sglang.compile_deep_gemm (SGLang {b.release})", file=sys.stderr)
        return 1
    args = cli.parse(b.table, PROG, argv, compile_args)
    print("Disable CUDA Graph and Torch Compile to save time...", flush=True)
    return serve(Config(b, args, compile=True))


if __name__ == "__main__":
    sys.exit(main())
