#!/usr/bin/env python3
"""The sandbox: a simulated GPU cluster on this Linux machine, no GPU and no network needed, confined to a network
namespace whose only interface is loopback.

    sudo -E python tools/sandbox.py up --stack-file Pulumi.dev.yaml [--secret KEY=VALUE ...] [--timeout S] [--refresh]
                                       # start it if needed, deploy the stack with the real engine (the overrides the
                                       # simulation needs printed), wait for every pod Ready, print the outputs (JSON);
                                       # with --serve the GPU nodes' pods really run (the node agent, stand-ins)
    sudo -E python tools/sandbox.py start [--nodes 3 --gpus 8 ...]   # etcd, kube-apiserver, controllers, scheduler,
                                                                     # kwok GPU nodes, the LWS controller
    sudo -E python tools/sandbox.py exec -- kubectl get nodes        # any command inside the namespace
    sudo -E python tools/sandbox.py status
    sudo -E python tools/sandbox.py timeline -n NS                   # each serving pod's cold start, phase by phase
    sudo -E python tools/sandbox.py down                             # stop everything it started
    python tools/sandbox.py binaries list|fetch|check [NAME ...]     # the pinned binaries (simulation/binaries.py)

Options of ``start``: --nodes N (2) --gpus N (8) --rdma N (4) --cpu N (192) --memory Q (2Ti) --node-labels k=v,...
--node-taints k=v:NoSchedule,... --pvs N (8) --pv-size Q (1Ti) --pv-class NAME ("") --crd PATH (repeatable) --fresh
--serve (the node agent runs the GPU nodes: their pods' processes really run) --image-dir DIR (its prepared venvs).
Global: --run-dir DIR (default $SGLANG_SIM_RUN or /tmp/sglang-sim), --netns NAME (default $SGLANG_SIM_NETNS or
sglang-sim). Binaries come from ENGINE_BIN or the project's cache (``binaries fetch``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.simulation import binaries
from tools.simulation.cluster import Options, Sandbox, SandboxError


def up(sandbox: Sandbox, argv: list[str]) -> int:
    import argparse
    import json

    from tools.simulation import deploy

    parser = argparse.ArgumentParser(prog="tools/sandbox.py up")
    parser.add_argument("--stack-file", required=True, type=Path)
    parser.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for every pod Ready")
    parser.add_argument(
        "--refresh", action="store_true", help="pulumi up --refresh: read back what ran (the benchmarks' results)"
    )
    args, start_options = parser.parse_known_args(argv)
    from tools import chart_source

    charts, what = chart_source.source_dir()
    if not any(charts.glob("*/Chart.yaml")):
        raise SandboxError(
            f"no charts in {what}: the sandbox reaches no chart repository; run `python tools/chart_source.py pull`, "
            "or set SGLANG_PLATFORM_CHART_MIRROR to a directory of unpacked <chart>-<version>/ charts"
        )
    outputs = deploy.up(
        args.stack_file, deploy.parse_secrets(args.secret), sandbox, charts, args.timeout, start_options, args.refresh
    )
    print(json.dumps(outputs, indent=2, sort_keys=True))
    return 0


def timeline(sandbox: Sandbox, argv: list[str]) -> int:
    import argparse

    from tools.simulation import timeline as tl

    parser = argparse.ArgumentParser(prog="tools/sandbox.py timeline")
    parser.add_argument("--namespace", "-n", required=True, help="the stack's serving namespace")
    args = parser.parse_args(argv)

    def kubectl(*words: str) -> str:
        result = sandbox.kubectl(*words, check=False)
        return result.stdout if result.returncode == 0 else ""

    print(tl.table(tl.collect(kubectl, args.namespace)))
    return 0


def main(argv: list[str]) -> int:
    run: Path | None = None
    netns: str | None = None
    while argv and argv[0] in ("--run-dir", "--netns"):
        if len(argv) < 2:
            print(f"{argv[0]} needs a value", file=sys.stderr)
            return 2
        if argv[0] == "--run-dir":
            run = Path(argv[1])
        else:
            netns = argv[1]
        argv = argv[2:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    try:
        if command == "binaries":
            return binaries.main(rest)
        sandbox = Sandbox(run, netns)
        if command == "start":
            sandbox.start(Options.parse(rest))
            return 0
        if command == "up":
            return up(sandbox, rest)
        if command in ("down", "stop"):
            sandbox.stop()
            return 0
        if command == "status":
            ok, lines = sandbox.status()
            print("\n".join(lines))
            return 0 if ok else 1
        if command == "timeline":
            return timeline(sandbox, rest)
        if command == "exec":
            if rest[:1] == ["--"]:
                rest = rest[1:]
            if not rest:
                print("exec: no command (tools/sandbox.py exec -- CMD ...)", file=sys.stderr)
                return 2
            argv_in = sandbox.exec_argv(rest)
            os.execvp(argv_in[0], argv_in)
        print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
        return 2
    except (SandboxError, binaries.FetchError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
