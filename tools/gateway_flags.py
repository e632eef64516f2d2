#!/usr/bin/env python3
"""The model gateway's argument parser, built from the wheel of each release: sglang-router (``sglang_router``) and
its successor, the Shepherd Model Gateway (``smg``).

    python tools/gateway_flags.py fetch                          # pip download the wheels (stacks, sets, tables)
    python tools/gateway_flags.py generate smg 1.13.0             # write facts/gateways/smg-1.13.0.json
    python tools/gateway_flags.py check 0.3.2 ARGS                # parse ARGS as sglang-router's launch_router would
    python tools/gateway_flags.py check --product smg 1.13.0 ARGS

``<package>/router_args.py`` declares every flag in ``RouterArgs.add_cli_args`` and turns the parsed namespace
into ``RouterArgs`` with ``from_cli_args``; ``launch_router`` (``python -m <package>.launch_router``, the images'
entrypoint) runs exactly those two. Its only import beyond the standard library is the Rust extension (for the
lists of tool-call and reasoning parsers), so the module is loaded from the wheel with stand-ins for those
functions: every flag, type, choice and nargs is the release's own (only the parser options then accept any
value, and the table says so). ``generate`` writes that parser as a flag table in the format of SGLang's
(facts/sglang/table.py), which facts/gateways reads at preview to check the gateway's flags. Tests read wheels
from ``.cache/gateway-wheels/`` and never touch the network; ``fetch`` fills that cache (``.ci/run`` calls it).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from packaging.utils import canonicalize_name, canonicalize_version

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "gateway-wheels"
TABLES = ROOT / "facts" / "gateways"
# The table format facts/sglang/table.py reads.
FORMAT = 1


@dataclass(frozen=True)
class Product:
    name: str  # on PyPI
    package: str  # in the wheel
    rust: str  # the Rust extension router_args.py imports from
    stubs: tuple[str, ...]  # the extension's functions it calls while building the parser

    @property
    def router_args(self) -> str:
        return f"{self.package}/router_args.py"

    @property
    def launch_module(self) -> str:
        return f"{self.package}.launch_router"


PRODUCTS = {
    "sglang-router": Product(
        "sglang-router", "sglang_router", "sglang_router_rs", ("get_available_tool_call_parsers",)
    ),
    "smg": Product("smg", "smg", "smg_rs", ("get_available_tool_call_parsers", "get_available_reasoning_parsers")),
}
# The option whose choices come from the stubbed extension, by product: the table cannot check their values.
RUST_CHOICES = {"sglang-router": ("--tool-call-parser",), "smg": ("--tool-call-parser", "--reasoning-parser")}


class ParseError(Exception):
    """What argparse would print before exiting with status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ParseError(message)


@dataclass
class RouterParser:
    version: str
    router_args: Any  # the release's RouterArgs class
    product: str = "sglang-router"

    def parser(self) -> argparse.ArgumentParser:
        # launch_router.parse_router_args: ArgumentParser(...) with its help, add_cli_args(use_router_prefix=False)
        parser = _Parser(prog="launch_router")
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
            return [f"{self.product} {self.version}: {error}"]
        return []


def wheel_for(version: str, cache: Path = CACHE, product: str = "sglang-router") -> Path | None:
    wanted = canonicalize_version(version)
    prefix = PRODUCTS[product].package
    for wheel in sorted(cache.glob(f"{prefix}-*.whl")):
        if canonicalize_version(wheel.name.split("-")[1]) == wanted:
            return wheel
    return None


def load(version: str, cache: Path = CACHE, product: str = "sglang-router") -> RouterParser:
    wheel = wheel_for(version, cache, product)
    if wheel is None:
        raise FileNotFoundError(
            f"no {product} {version} wheel in {cache}; fetch it with `python tools/gateway_flags.py fetch`"
        )
    spec = PRODUCTS[product]
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read(spec.router_args).decode("utf-8")
    return RouterParser(version, _router_args_class(spec, source, f"{wheel.name}/{spec.router_args}"), product)


def _router_args_class(spec: Product, source: str, origin: str) -> Any:
    """Execute router_args.py with a stand-in for the Rust extension, without leaving either module behind
    (a real package installed next to the tests would otherwise be shadowed, or shadow this one)."""
    names = (spec.package, f"{spec.package}.{spec.rust}", f"{spec.package}.router_args")
    saved = {name: sys.modules.get(name) for name in names}
    package = types.ModuleType(spec.package)
    package.__path__ = []
    rust = types.ModuleType(f"{spec.package}.{spec.rust}")
    for stub in spec.stubs:
        setattr(rust, stub, lambda: None)
    try:
        sys.modules[spec.package] = package
        sys.modules[f"{spec.package}.{spec.rust}"] = rust
        module_spec = importlib.util.spec_from_loader(f"{spec.package}.router_args", loader=None, origin=origin)
        assert module_spec is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module  # dataclasses resolve the module of the class they decorate
        exec(compile(source, origin, "exec"), module.__dict__)
        return module.RouterArgs
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def launch_router_args(container: dict[str, Any]) -> list[str] | None:
    """The flags after ``-m <package>.launch_router`` in a container's command + args, or None."""
    words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    for product in PRODUCTS.values():
        if product.launch_module in words:
            return words[words.index(product.launch_module) + 1 :]
    return None


# --- the flag table -----------------------------------------------------------------------------------------------

_ACTIONS = {
    "_StoreAction": "store",
    "_StoreTrueAction": "store_true",
    "_StoreFalseAction": "store_false",
    "_StoreConstAction": "store_const",
    "_AppendAction": "append",
    "_AppendConstAction": "append_const",
    "_ExtendAction": "extend",
    "_CountAction": "count",
    "_HelpAction": "help",
    "_VersionAction": "version",
    "BooleanOptionalAction": "boolean_optional",
}
_TYPES = {int: "int", float: "float", str: "str"}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def option_entry(action: argparse.Action, product: str) -> dict[str, Any]:
    """One ``add_argument`` as facts/sglang/table.py's Option reads it."""
    strings = list(action.option_strings)
    name = next((s for s in strings if s.startswith("--")), strings[0])
    kind = _ACTIONS.get(type(action).__name__, "custom")
    entry: dict[str, Any] = {"action": kind, "name": name, "strings": strings}
    if kind == "custom":
        entry["action_class"] = type(action).__name__
    takes_value = action.nargs != 0 and kind not in ("store_true", "store_false", "store_const", "count", "help")
    takes_value = takes_value and kind not in ("version", "boolean_optional", "append_const")
    entry["nargs"] = action.nargs if takes_value else 0
    if takes_value:
        converter = action.type
        if converter is None:
            entry["type"] = "str"
        elif converter in _TYPES:
            entry["type"] = _TYPES[converter]
        else:
            entry["type"] = "custom"
            entry["type_name"] = getattr(converter, "__name__", repr(converter))
        entry["choices"] = list(action.choices) if action.choices is not None else None
        if action.choices is None and name in RUST_CHOICES[product]:
            entry["unresolved"] = ["choices: computed by the Rust extension at run time"]
    if action.required:
        entry["required"] = True
    if kind != "help":
        entry["default"] = _jsonable(action.default)
    return entry


def build_table(product: str, version: str, cache: Path = CACHE) -> dict[str, Any]:
    wheel = wheel_for(version, cache, product)
    if wheel is None:
        raise FileNotFoundError(f"no {product} {version} wheel in {cache}: run `python tools/gateway_flags.py fetch`")
    parser = load(version, cache, product).parser()
    options = [option_entry(a, product) for a in parser._actions if a.option_strings]
    notes = [
        "mutually exclusive (argparse refuses both): " + ", ".join(a.option_strings[0] for a in group._group_actions)
        for group in parser._mutually_exclusive_groups
    ]
    spec = PRODUCTS[product]
    return {
        "format": FORMAT,
        "notes": notes,
        "parser": {"add_help": parser.add_help, "allow_abbrev": parser.allow_abbrev, "prefix_chars": "-"},
        "product": product,
        "release": str(canonicalize_version(version, strip_trailing_zero=False)),
        "source": {
            "files": [spec.router_args, f"{spec.package}/launch_router.py"],
            "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
            "wheel": wheel.name,
        },
        "options": sorted(options, key=lambda o: o["name"]),
    }


def write_table(table: dict[str, Any], out: Path = TABLES) -> Path:
    target = out / f"{table['product']}-{table['release']}.json"
    # One option per line, as facts/sglang's tables: a regenerated table diffs option by option.
    head = {k: v for k, v in table.items() if k != "options"}
    text = json.dumps(head, indent=1, sort_keys=True)[:-2]
    lines = [json.dumps(o, sort_keys=True) for o in table["options"]]
    target.write_text(text + ',\n "options": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n")
    return target


# --- wheels -------------------------------------------------------------------------------------------------------


def _wanted() -> list[tuple[str, str]]:
    """(product, release) of every committed stack's gateway, every version set's and every shipped table's."""
    sys.path.insert(0, str(ROOT))
    import yaml

    from sglang_platform.config import Versions
    from sglang_platform.facts import bom
    from sglang_platform.facts.gateways import gateway_of, shipped_gateway_tables

    wanted = set(shipped_gateway_tables())
    candidates = [Versions.model_validate({"set": name}) for name in bom.SETS]
    for stack_file in sorted(ROOT.glob("Pulumi.*.yaml")):
        stack = yaml.safe_load(stack_file.read_text()) or {}
        candidates.append(Versions.model_validate((stack.get("config") or {}).get("sglang-platform:versions") or {}))
    for versions in candidates:
        found = gateway_of(versions)
        if found is not None:
            wanted.add((found[0], str(found[1])))
    return sorted(wanted)


def fetch(cache: Path = CACHE) -> int:
    cache.mkdir(parents=True, exist_ok=True)
    for product, version in _wanted():
        if wheel_for(version, cache, product):
            print(f"{product} {version}: cached in {cache}")
            continue
        # --no-deps: only router_args.py is read. The wheels are built for manylinux x86_64 (abi3); ask for that
        # platform explicitly so the download works from any machine.
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        cmd += ["--platform", "manylinux2014_x86_64", "--python-version", "3.11"]
        requirement = f"{canonicalize_name(product)}=={version}"
        subprocess.run([*cmd, "--dest", str(cache), requirement], check=True, env=os.environ.copy())
        print(f"{product} {version}: downloaded to {cache}")
    return 0


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = cli.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the wheels of the stacks', the sets' and the tables' gateway releases")
    generating = sub.add_parser("generate", help="write the flag table of a release from its wheel")
    generating.add_argument("product", choices=sorted(PRODUCTS))
    generating.add_argument("version")
    checking = sub.add_parser("check", help="parse flags as the release's launch_router would")
    checking.add_argument("--product", choices=sorted(PRODUCTS), default="sglang-router")
    checking.add_argument("version")
    checking.add_argument("flags", nargs=argparse.REMAINDER)
    args = cli.parse_args(argv)
    if args.command == "fetch":
        return fetch()
    if args.command == "generate":
        print(write_table(build_table(args.product, args.version)))
        return 0
    problems = load(args.version, product=args.product).check(args.flags)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
