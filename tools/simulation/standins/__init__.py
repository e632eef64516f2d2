"""Stand-ins for the programs of a stack that need a GPU, for the GPU-less simulated cluster (docs/standin.md).

``sglang_server`` stands in for ``python3 -m sglang.launch_server`` and ``compile_deep_gemm`` for
``python3 -m sglang.compile_deep_gemm`` of one pinned SGLang release; ``overlay.build_overlay`` makes the
directory that, first on PYTHONPATH, turns those two commands of the rendered pods into the stand-ins.
Only the standard library and the project's own release data (``facts/sglang``, ``facts/metrics``) are
used, so the stand-in runs wherever the project's Python does.
"""
