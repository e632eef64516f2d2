#!/usr/bin/env python3
"""The argument parser of a pinned SGLang release, read from its own wheel, and a check of command lines.

    python tools/sglang_flags.py fetch               # pip download the wheels of the stacks' releases and of
                                                     # every shipped flag table (config/sglang/*.json)
    python tools/sglang_flags.py generate 0.4.9 ...  # write config/sglang/0.4.9.json from that release's wheel
    python tools/sglang_flags.py list 0.4.3.post2    # the option strings of that release

``sglang/srt/server_args.py`` imports torch and triton at module level, so the parser cannot be built
by importing it here; its ``add_argument`` calls are read with ``ast`` instead (literal arguments and
module or dataclass constants, which is all ``ServerArgs.add_cli_args`` uses). Tests read wheels from
``.cache/sglang-wheels/`` and never touch the network; ``fetch`` fills that cache (``.ci/run`` calls it).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_version
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import sglang_table

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "sglang-wheels"
TABLES = ROOT / "config" / "sglang"
SERVER_ARGS = "sglang/srt/server_args.py"
LAUNCH_MODULE = "sglang.launch_server"
# argparse actions that take no value on the command line.
NO_VALUE_ACTIONS = {"store_true", "store_false", "store_const", "count", "help", "version", "append_const"}


@dataclass(frozen=True)
class Option:
    strings: tuple[str, ...]
    action: str | None = None
    nargs: Any = None
    type: str | None = None
    choices: tuple[Any, ...] | None = None
    required: bool = False

    @property
    def takes_value(self) -> bool:
        return self.action not in NO_VALUE_ACTIONS and self.nargs != 0


@dataclass
class Parser:
    version: str
    options: list[Option] = field(default_factory=list)

    def option_strings(self) -> list[str]:
        return sorted(s for o in self.options for s in o.strings)

    def resolve(self, flag: str) -> tuple[Option | None, str | None]:
        """argparse's lookup (allow_abbrev): an exact option string wins, else a unique prefix."""
        by_string = {s: o for o in self.options for s in o.strings}
        if flag in by_string:
            return by_string[flag], None
        matches = sorted(s for s in by_string if s.startswith(flag))
        if len(matches) == 1:
            return by_string[matches[0]], None
        if matches:
            return None, f"{flag} is ambiguous in SGLang {self.version} (could be {', '.join(matches)})"
        return None, f"{flag} is not an option of SGLang {self.version}"


def _constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level ``NAME = literal`` and dataclass defaults ``Class.attr``, for ``choices=NAME``."""
    out: dict[str, Any] = {}

    def literal(node: ast.AST | None) -> Any:
        try:
            return ast.literal_eval(node) if node is not None else None
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None

    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = literal(node.value)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    out[f"{node.name}.{item.target.id}"] = literal(item.value)
    return out


def parse_source(source: str, version: str) -> Parser:
    tree = ast.parse(source)
    constants = _constants(tree)
    parser = Parser(version)
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
        ):
            continue
        strings = tuple(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
        if not strings or not all(s.startswith("-") for s in strings):
            continue
        kw: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg in ("action", "type"):
                kw[keyword.arg] = (
                    keyword.value.value if isinstance(keyword.value, ast.Constant) else ast.unparse(keyword.value)
                )
            elif keyword.arg in ("nargs", "required", "choices"):
                try:
                    kw[keyword.arg] = ast.literal_eval(keyword.value)
                except ValueError:
                    kw[keyword.arg] = constants.get(ast.unparse(keyword.value))
        choices = kw.get("choices")
        parser.options.append(
            Option(
                strings=strings,
                action=kw.get("action"),
                nargs=kw.get("nargs"),
                type=kw.get("type"),
                choices=tuple(choices) if isinstance(choices, list | tuple | set) else None,
                required=bool(kw.get("required")),
            )
        )
    if not parser.options:
        raise ValueError(f"no add_argument calls found in SGLang {version}'s {SERVER_ARGS}")
    return parser


def wheel_for(version: str, cache: Path = CACHE) -> Path | None:
    wanted = canonicalize_version(version)
    for wheel in sorted(cache.glob("sglang-*.whl")):
        if canonicalize_version(wheel.name.split("-")[1]) == wanted:
            return wheel
    return None


def load(version: str, cache: Path = CACHE) -> Parser:
    wheel = wheel_for(version, cache)
    if wheel is None:
        raise FileNotFoundError(
            f"no sglang {version} wheel in {cache}; fetch it with `python tools/sglang_flags.py fetch`"
        )
    with zipfile.ZipFile(wheel) as archive:
        return parse_source(archive.read(SERVER_ARGS).decode("utf-8"), version)


def launch_server_args(container: dict[str, Any]) -> list[str] | None:
    """The flags after ``-m sglang.launch_server`` in a container's command + args (or in a ``sh -c``
    script), or None when the container does not run the server."""
    words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    if LAUNCH_MODULE in words:
        return words[words.index(LAUNCH_MODULE) + 1 :]
    for word in words:
        if LAUNCH_MODULE in word and " " in word:
            import shlex

            inner = shlex.split(word)
            rest = inner[inner.index(LAUNCH_MODULE) + 1 :]
            return rest[: rest.index("&&")] if "&&" in rest else rest
    return None


_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$")
_TEMPLATE = re.compile(r"\$\(|\$\{|\$[A-Z_]")


def _is_flag(word: str) -> bool:
    return word.startswith("-") and not _NEGATIVE.match(word) and word != "-"


def check(args: list[str], parser: Parser) -> list[str]:
    """Every problem argparse would stop the server for: unknown or ambiguous flags, missing or surplus
    values, values outside ``choices`` or not of the option's type, missing required options."""
    problems: list[str] = []
    seen: set[Option] = set()
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if not _is_flag(word):
            problems.append(f"unrecognized argument {word!r} (no option before it takes a value)")
            continue
        flag, eq, inline = word.partition("=")
        option, error = parser.resolve(flag)
        if option is None:
            problems.append(str(error))
            while i < len(args) and not _is_flag(args[i]):
                i += 1  # its values: one report per unknown flag
            continue
        seen.add(option)
        if not option.takes_value:
            if eq:
                problems.append(f"{flag} takes no value (got {word!r})")
            continue
        values: list[str] = [inline] if eq else []
        if not eq:
            wanted = option.nargs
            limit = 1 if wanted in (None, "?") else wanted if isinstance(wanted, int) else len(args)
            while len(values) < limit and i < len(args) and not _is_flag(args[i]):
                values.append(args[i])
                i += 1
            if wanted in (None, "+") and not values:
                problems.append(f"{flag} needs a value")
                continue
            if isinstance(wanted, int) and len(values) != wanted:
                problems.append(f"{flag} needs {wanted} values, got {len(values)}")
                continue
        for value in values:
            problems += _check_value(flag, option, value, parser.version)
    for option in parser.options:
        if option.required and option not in seen:
            problems.append(f"{option.strings[0]} is required")
    return problems


def _check_value(flag: str, option: Option, value: str, version: str) -> list[str]:
    if _TEMPLATE.search(value):
        return []  # filled in by Kubernetes ($(VAR)) or a shell at start; its source is checked elsewhere
    converted: Any = value
    if option.type in ("int", "float"):
        try:
            converted = int(value) if option.type == "int" else float(value)
        except ValueError:
            return [f"{flag} wants an {option.type}, got {value!r}"]
    if option.choices is not None and converted not in option.choices:
        allowed = ", ".join(str(c) for c in option.choices)
        return [f"{flag} {value!r} is not one of SGLang {version}'s choices: {allowed}"]
    return []


def _stack_releases() -> list[str]:
    sys.path.insert(0, str(ROOT))
    import yaml

    from config import Versions

    releases = set()
    for stack_file in sorted(ROOT.glob("Pulumi.*.yaml")):
        stack = yaml.safe_load(stack_file.read_text()) or {}
        # Only the pins matter here: the whole stack would also need its secrets, which CI does not have.
        versions = (stack.get("config") or {}).get("sglang-platform:versions") or {}
        release = Versions.model_validate(versions).sglang_release
        if release is not None:
            releases.add(str(release))
    return sorted(releases)


def _shipped_wheels() -> dict[str, tuple[str, str]]:
    """release -> (wheel file name, sha256) of every shipped flag table."""
    out = {}
    for path in sorted(TABLES.glob("*.json")):
        source = json.loads(path.read_text())["source"]
        out[path.stem] = (source["wheel"], source["sha256"])
    return out


def _tag_options(wheel_name: str) -> list[str]:
    """pip options that select exactly this wheel file on any machine (0.5.11 on ships only CPython
    platform wheels, which pip would otherwise pick by the host's own tags)."""
    python, abi, platform = wheel_name.removesuffix(".whl").split("-")[-3:]
    python, abi, platform = python.split(".")[0], abi.split(".")[0], platform.split(".")[0]
    implementation, digits = python[:2], python[2:]
    # A py3 wheel fits any Python 3, but pip reads "3" as 3.0 and then refuses Requires-Python >= 3.10.
    version = f"{digits[0]}.{digits[1:]}" if len(digits) > 1 else f"{sys.version_info.major}.{sys.version_info.minor}"
    return ["--platform", platform, "--python-version", version, "--implementation", implementation, "--abi", abi]


def download(version: str, cache: Path = CACHE, wheel_name: str | None = None, sha: str | None = None) -> Path:
    """The cached wheel of a release (the named file when given), downloaded with pip when missing."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / wheel_name if wheel_name else wheel_for(version, cache)
    if path is None or not path.exists():
        # --no-deps: only the sources are read; torch and friends are never installed.
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        cmd += _tag_options(wheel_name) if wheel_name else []
        subprocess.run([*cmd, "--dest", str(cache), f"sglang=={version}"], check=True, env=os.environ.copy())
        path = cache / wheel_name if wheel_name else wheel_for(version, cache)
        if path is None or not path.exists():
            raise FileNotFoundError(f"pip downloaded no {wheel_name or f'sglang {version} wheel'} into {cache}")
        print(f"sglang {version}: downloaded {path.name} to {cache}")
    else:
        print(f"sglang {version}: {path.name} cached in {cache}")
    if sha is not None and sglang_table.sha256(path) != sha:
        raise ValueError(f"{path} does not have the sha256 {sha} its flag table records")
    return path


def fetch(cache: Path = CACHE) -> int:
    shipped = _shipped_wheels()
    for version, (wheel_name, sha) in shipped.items():
        download(version, cache, wheel_name, sha)
    for version in _stack_releases():
        if str(Version(version)) not in shipped:
            download(version, cache)
    return 0


def table_wheel(version: str, cache: Path = CACHE) -> Path:
    """The wheel a release's table is generated from: the one its shipped table names, else any cached or
    downloadable wheel of the release."""
    shipped = _shipped_wheels().get(str(Version(version)))
    if shipped is not None:
        return download(version, cache, shipped[0], shipped[1])
    return download(version, cache)


def generate(versions: list[str], cache: Path = CACHE, out: Path | None = None) -> int:
    out = out or TABLES
    for raw in versions:
        version = str(Version(raw))
        wheel = table_wheel(version, cache)
        table = sglang_table.build_table(wheel, version)
        target = out / f"{version}.json"
        target.write_text(sglang_table.dumps(table))
        unresolved = sum(1 for o in table["options"] if o.get("unresolved"))
        print(
            f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: {len(table['options'])} options"
            f" from {wheel.name}" + (f", {unresolved} with unresolved parts (accepted as is)" if unresolved else "")
        )
        for note in table["notes"]:
            print(f"  note: {note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = cli.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the wheels of the stacks' releases and of every shipped flag table")
    gen = sub.add_parser("generate", help="write config/sglang/<VERSION>.json from the release's wheel")
    gen.add_argument("versions", nargs="+", metavar="VERSION")
    listing = sub.add_parser("list", help="print the option strings of a release")
    listing.add_argument("version")
    args = cli.parse_args(argv)
    if args.command == "fetch":
        return fetch()
    if args.command == "generate":
        return generate(args.versions)
    for option in load(args.version).options:
        extra = f" choices={list(option.choices)}" if option.choices else ""
        print(" ".join(option.strings) + (f" [{option.action}]" if option.action else "") + extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
