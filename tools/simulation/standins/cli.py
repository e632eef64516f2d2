"""The release's own command line: an ``argparse`` parser rebuilt from its flag table (facts/sglang/<release>.json).

The wheels cannot be imported here (``server_args.py`` imports torch), so the parser is built from the table
that ``tools/sglang_table.py`` reads out of each wheel: the same option strings in the same order (so argparse
derives the same ``dest``), actions, ``nargs``, types, choices, defaults and ``required``, on a parser with
argparse's defaults as SGLang creates it (``allow_abbrev`` on, so ``--tp`` is ``--tp-size``). argparse itself
then refuses what the release refuses, with its exit code 2 and message.

Where the table records what it could not read statically, the parser accepts what the real one may refuse: a
custom ``type=`` converter (``human_readable_int``, ``nullable_str``, ...) takes any string, and choices the
reader could not evaluate are not checked. The usage line lists the options alphabetically (the table's order),
not in the release's ``add_argument`` order.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from sglang_platform.facts.sglang import Option, Table

_TYPES: dict[str, Callable[[str], Any]] = {"str": str, "int": int, "float": float, "bool": bool, "json": json.loads}


def _dest(strings: Sequence[str]) -> str:
    """argparse's dest: the first long option string, without its dashes, '-' turned into '_'."""
    long = next((s for s in strings if s.startswith("--")), strings[0])
    return long.lstrip("-").replace("-", "_")


def _add(parser: argparse.ArgumentParser, option: Option, defaults: dict[str, Any]) -> None:
    strings = list(option.strings)
    kwargs: dict[str, Any] = {}
    if option.name in defaults:
        kwargs["default"] = defaults[option.name]
    if option.required:
        kwargs["required"] = True
    action = option.action
    if action == "help":
        return  # argparse's own -h/--help (add_help), listed first in the usage line as SGLang's is
    if action == "boolean_optional":
        # The table lists the --no-X strings BooleanOptionalAction adds itself.
        positive = [s for s in strings if not (s.startswith("--no-") and "--" + s[5:] in strings)]
        parser.add_argument(*positive, action=argparse.BooleanOptionalAction, **kwargs)
        return
    if action in ("store_true", "store_false", "count"):
        parser.add_argument(*strings, action=action, **kwargs)
        return
    if not option.takes_value:
        # store_const and SGLang's Deprecated*Action classes: no value; what they store does not matter here.
        parser.add_argument(*strings, action="store_true", **kwargs)
        return
    if action in ("append", "extend"):
        kwargs["action"] = action
    if option.nargs is not None:
        kwargs["nargs"] = option.nargs
    kind = option.type or "str"
    kwargs["type"] = _TYPES.get(kind, str)
    if option.choices is not None and kind in _TYPES:
        kwargs["choices"] = list(option.choices)
    parser.add_argument(*strings, **kwargs)


def build_parser(table: Table, prog: str, extra: Callable[[argparse.ArgumentParser], None] | None = None):
    """``argparse.ArgumentParser(prog=prog)`` with every option of the release (and ``extra``'s, e.g.
    compile_deep_gemm's ``--timeout``)."""
    parser = argparse.ArgumentParser(
        prog=prog, add_help=True, allow_abbrev=table.allow_abbrev, prefix_chars=table.prefix_chars
    )
    defaults = _defaults(table)
    for option in table:
        _add(parser, option, defaults)
    if extra is not None:
        extra(parser)
    return parser


def _defaults(table: Table) -> dict[str, Any]:
    """The defaults the table recorded (the Option dataclass keeps only what argparse needs to read words)."""
    import importlib.resources

    text = (
        importlib.resources.files("sglang_platform.facts.sglang")
        .joinpath(f"{table.release}.json")
        .read_text(encoding="utf-8")
    )
    return {o["name"]: o["default"] for o in json.loads(text)["options"] if "default" in o}


class Args:
    """A parsed command line, read by any option string of the release (``args["--tp"]`` is ``--tp-size``)."""

    def __init__(self, table: Table, namespace: argparse.Namespace, argv: Sequence[str]):
        self.table = table
        self.namespace = namespace
        self.argv = list(argv)

    def dest(self, flag: str) -> str | None:
        option = self.table.option(flag)
        return _dest(option.strings) if option is not None else None

    def __getitem__(self, flag: str) -> Any:
        dest = self.dest(flag)
        return getattr(self.namespace, dest) if dest is not None else None

    def get(self, flag: str, default: Any = None) -> Any:
        value = self[flag]
        return default if value is None else value

    def has(self, flag: str) -> bool:
        """The release has this option."""
        return self.table.option(flag) is not None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self.namespace))


def parse(table: Table, prog: str, argv: Sequence[str], extra=None) -> Args:
    """Parse like the release: on a refusal argparse prints usage and the error to stderr and exits 2."""
    parser = build_parser(table, prog, extra)
    return Args(table, parser.parse_args(list(argv)), argv)
