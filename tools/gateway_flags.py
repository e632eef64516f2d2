#!/usr/bin/env python3
"""The argument parser of the pinned sglang-router (the model gateway), built from its own wheel.

    python tools/gateway_flags.py fetch             # pip download the wheel of the stacks' gateway release
    python tools/gateway_flags.py check 0.3.2 ARGS  # parse ARGS as launch_router would

``sglang_router/router_args.py`` declares every flag in ``RouterArgs.add_cli_args`` and turns the parsed
namespace into ``RouterArgs`` with ``from_cli_args``; ``launch_router`` runs exactly those two. Its only
import beyond the standard library is the Rust extension (for the list of tool-call parsers), so the module
is loaded from the wheel with a stand-in for that one function: every flag, type, choice and nargs is the
release's own (only ``--tool-call-parser`` then accepts any value). Tests read wheels from
``.cache/gateway-wheels/`` and never touch the network; ``fetch`` fills that cache (``.ci/run`` calls it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from packaging.utils import canonicalize_version

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "gateway-wheels"
PACKAGE = "sglang_router"
ROUTER_ARGS = f"{PACKAGE}/router_args.py"
LAUNCH_MODULE = f"{PACKAGE}.launch_router"


class ParseError(Exception):
    """What argparse would print before exiting with status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ParseError(message)


@dataclass
class RouterParser:
    version: str
    router_args: Any  # the release's RouterArgs class

    def parser(self) -> argparse.ArgumentParser:
        # launch_router.parse_router_args: add_cli_args(parser, use_router_prefix=False)
        parser = _Parser(prog="launch_router", add_help=False)
        self.router_args.add_cli_args(parser, use_router_prefix=False)
        return parser

    def option_strings(self) -> list[str]:
        return sorted(s for action in self.parser()._actions for s in action.option_strings)

    def parse(self, args: list[str]) -> Any:
        """``RouterArgs`` as launch_router builds it; ParseError for what would stop it at start."""
        namespace = self.parser().parse_args(args)
        return self.router_args.from_cli_args(namespace, use_router_prefix=False)

    def check(self, args: list[str]) -> list[str]:
        try:
            self.parse(args)
        except (ParseError, ValueError) as error:
            return [f"sglang-router {self.version}: {error}"]
        return []


def wheel_for(version: str, cache: Path = CACHE) -> Path | None:
    wanted = canonicalize_version(version)
    for wheel in sorted(cache.glob("sglang_router-*.whl")):
        if canonicalize_version(wheel.name.split("-")[1]) == wanted:
            return wheel
    return None


def load(version: str, cache: Path = CACHE) -> RouterParser:
    wheel = wheel_for(version, cache)
    if wheel is None:
        raise FileNotFoundError(
            f"no sglang-router {version} wheel in {cache}; fetch it with `python tools/gateway_flags.py fetch`"
        )
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read(ROUTER_ARGS).decode("utf-8")
    return RouterParser(version, _router_args_class(source, f"{wheel.name}/{ROUTER_ARGS}"))


def _router_args_class(source: str, origin: str) -> Any:
    """Execute router_args.py with a stand-in for the Rust extension, without leaving either module behind
    (a real sglang_router installed next to the tests would otherwise be shadowed, or shadow this one)."""
    names = (PACKAGE, f"{PACKAGE}.sglang_router_rs", f"{PACKAGE}.router_args")
    saved = {name: sys.modules.get(name) for name in names}
    package = types.ModuleType(PACKAGE)
    package.__path__ = []
    rust = types.ModuleType(f"{PACKAGE}.sglang_router_rs")
    rust.get_available_tool_call_parsers = lambda: None  # type: ignore[attr-defined]
    try:
        sys.modules[PACKAGE] = package
        sys.modules[f"{PACKAGE}.sglang_router_rs"] = rust
        spec = importlib.util.spec_from_loader(f"{PACKAGE}.router_args", loader=None, origin=origin)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses resolve the module of the class they decorate
        exec(compile(source, origin, "exec"), module.__dict__)
        return module.RouterArgs
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def launch_router_args(container: dict[str, Any]) -> list[str] | None:
    """The flags after ``-m sglang_router.launch_router`` in a container's command + args, or None."""
    words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    if LAUNCH_MODULE in words:
        return words[words.index(LAUNCH_MODULE) + 1 :]
    return None


def _stack_releases() -> list[str]:
    sys.path.insert(0, str(ROOT))
    import yaml

    from config import Versions

    releases = set()
    for stack_file in sorted(ROOT.glob("Pulumi.*.yaml")):
        stack = yaml.safe_load(stack_file.read_text()) or {}
        versions = (stack.get("config") or {}).get("sglang-platform:versions") or {}
        release = Versions.model_validate(versions).gateway_release
        if release is not None:
            releases.add(str(release))
    return sorted(releases)


def fetch(cache: Path = CACHE) -> int:
    cache.mkdir(parents=True, exist_ok=True)
    for version in _stack_releases():
        if wheel_for(version, cache):
            print(f"sglang-router {version}: cached in {cache}")
            continue
        # --no-deps: only router_args.py is read. The wheel is built for manylinux x86_64 (abi3); ask for that
        # platform explicitly so the download works from any machine.
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        cmd += ["--platform", "manylinux2014_x86_64", "--python-version", "3.11"]
        subprocess.run([*cmd, "--dest", str(cache), f"sglang-router=={version}"], check=True, env=os.environ.copy())
        print(f"sglang-router {version}: downloaded to {cache}")
    return 0


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = cli.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the wheel of the stacks' gateway release into the cache")
    checking = sub.add_parser("check", help="parse flags as the release's launch_router would")
    checking.add_argument("version")
    checking.add_argument("flags", nargs=argparse.REMAINDER)
    args = cli.parse_args(argv)
    if args.command == "fetch":
        return fetch()
    problems = load(args.version).check(args.flags)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
