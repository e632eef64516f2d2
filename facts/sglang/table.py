"""The ``sglang.launch_server`` options of one SGLang release, from the table shipped with the program.

Tables are generated from each release's own wheel by ``python tools/sglang_flags.py generate VERSION`` into
``facts/sglang/<VERSION>.json`` and read here with ``importlib.resources``, so they work from a checkout and
from an installed package alike. Nothing here imports Pulumi or reaches the network.

``Table.parse_word`` is argparse's own reading of one command-line word (Python 3.10 to 3.12, which the
SGLang images run): an exact option string wins; ``--flag=value`` splits at the first ``=``; otherwise, with
``allow_abbrev`` (SGLang's parsers keep the default), any unique prefix of an option string selects it, and a
prefix of several is an error even when they belong to one option.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from packaging.version import InvalidVersion, Version

# The table format this module reads (tools/sglang_table.py FORMAT).
FORMAT = 1
# argparse's _negative_number_matcher (3.10-3.12): such words are values, not options, when no option
# string looks like a negative number (true of every SGLang release).
NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")
UNBOUNDED = 1 << 30


@dataclass(frozen=True)
class Option:
    """One ``add_argument`` of the release: what argparse needs to read its words and values."""

    name: str  # the first long option string
    strings: tuple[str, ...]  # every option string (aliases, and --no-X of a BooleanOptionalAction)
    action: str  # store, store_true, store_false, store_const, append, count, help, boolean_optional, custom
    nargs: int | str | None
    type: str | None  # str, int, float, bool, json, custom (any value), None for options without values
    type_name: str | None
    choices: tuple[Any, ...] | None
    required: bool
    action_class: str | None
    unresolved: tuple[str, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Option:
        choices = data.get("choices")
        return cls(
            name=data["name"],
            strings=tuple(data["strings"]),
            action=data["action"],
            nargs=data.get("nargs"),
            type=data.get("type"),
            type_name=data.get("type_name"),
            choices=tuple(choices) if isinstance(choices, list) else None,
            required=bool(data.get("required")),
            action_class=data.get("action_class"),
            unresolved=tuple(data.get("unresolved") or ()),
        )

    @property
    def values(self) -> tuple[int, int]:
        """(fewest, most) values the option takes after its option string."""
        nargs = self.nargs
        if nargs is None:
            return 1, 1
        if isinstance(nargs, int):
            return nargs, nargs
        return {"?": (0, 1), "*": (0, UNBOUNDED), "+": (1, UNBOUNDED), "A...": (1, UNBOUNDED)}.get(
            nargs, (0, UNBOUNDED)
        )

    @property
    def takes_value(self) -> bool:
        return self.values[1] > 0

    def value_problem(self, flag: str, value: str, release: str, product: str = "SGLang") -> str | None:
        """What argparse says of one value (type conversion, then choices), or None when it accepts it or the
        table cannot tell (a custom converter, choices it could not read)."""
        if "$(" in value:
            return None  # Kubernetes substitutes $(VAR) from the container env before SGLang reads it
        converted: Any = value
        if self.type == "int":
            try:
                converted = int(value)
            except ValueError:
                return f"{flag} wants an int, got {value!r}"
        elif self.type == "float":
            try:
                converted = float(value)
            except ValueError:
                return f"{flag} wants a float, got {value!r}"
        elif self.type == "json":
            try:
                json.loads(value)
            except ValueError as error:
                return f"{flag} wants JSON, got {value!r} ({error})"
            return None  # the converted value is a dict or list; no SGLang option has choices there
        elif self.type not in ("str", None):
            return None  # bool() accepts any string; a custom converter may accept what the table cannot see
        if self.choices is not None and converted not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            return f"{flag} wants one of {allowed} ({product} {release}), got {value!r}"
        return None


@dataclass(frozen=True)
class Word:
    """argparse's reading of one word where an option may start.

    kind: ``value`` (argparse reads it as an argument, not an option), ``option`` (resolved, with the option
    string it matched and the value after ``=``), ``ambiguous`` (a prefix of several option strings) or
    ``unknown`` (looks like an option, matches none).
    """

    kind: str
    option: Option | None = None
    string: str | None = None
    explicit: str | None = None
    candidates: tuple[str, ...] = ()


class Table:
    def __init__(self, data: dict[str, Any]):
        if data.get("format") != FORMAT:
            raise ValueError(f"flag table format {data.get('format')!r} is not {FORMAT}: regenerate it")
        self.release: str = data["release"]
        # Whose parser it is, as messages name it: SGLang's launch_server (its tables say nothing), or a gateway's
        # launch_router (facts/gateways: "sglang-router", "smg").
        self.product: str = data.get("product", "SGLang")
        self.source: dict[str, Any] = data["source"]
        parser = data.get("parser") or {}
        self.allow_abbrev: bool = parser.get("allow_abbrev", True)
        self.prefix_chars: str = parser.get("prefix_chars", "-")
        self.options: tuple[Option, ...] = tuple(Option.from_json(o) for o in data["options"])
        self.by_string: dict[str, Option] = {s: o for o in self.options for s in o.strings}

    def __repr__(self) -> str:
        return f"Table({self.release!r}, {len(self.options)} options)"

    def __iter__(self) -> Iterator[Option]:
        return iter(self.options)

    def option(self, string: str) -> Option | None:
        """The option with exactly this option string."""
        return self.by_string.get(string)

    def parse_word(self, word: str) -> Word:
        """``ArgumentParser._parse_optional`` of one word."""
        chars = self.prefix_chars
        if not word or word[0] not in chars:
            return Word("value")
        if word in self.by_string:
            return Word("option", self.by_string[word], word)
        if len(word) == 1:
            return Word("value")
        if "=" in word:
            string, explicit = word.split("=", 1)
            if string in self.by_string:
                return Word("option", self.by_string[string], string, explicit)
        matches = self._prefix_matches(word)
        if len(matches) > 1:
            return Word("ambiguous", candidates=tuple(s for s, _ in matches))
        if len(matches) == 1:
            match, value = matches[0]
            return Word("option", self.by_string[match], match, value)
        if NEGATIVE_NUMBER.match(word) or " " in word:
            return Word("value")
        return Word("unknown")

    def _prefix_matches(self, word: str) -> list[tuple[str, str | None]]:
        """``ArgumentParser._get_option_tuples``: (option string, explicit value) of each match."""
        chars = self.prefix_chars
        out: list[tuple[str, str | None]] = []
        if word[0] in chars and word[1] in chars:
            if not self.allow_abbrev:
                return out
            prefix, _, explicit = word.partition("=")
            value = explicit if "=" in word else None
            out = [(s, value) for s in self.by_string if s.startswith(prefix)]
        elif word[0] in chars:
            short, attached = word[:2], word[2:]
            for string in self.by_string:
                if string == short:
                    out.append((string, attached))
                elif string.startswith(word):
                    out.append((string, None))
        return sorted(out)

    def resolve(self, flag: str) -> Word:
        """The option a flag names the way argparse reads it (see ``parse_word``)."""
        return self.parse_word(flag)


# ---------------------------------------------------------------------------------------------------------
# Shipped tables
# ---------------------------------------------------------------------------------------------------------


def normalize(release: str | Version) -> str:
    """``v0.4.3-post2`` and ``0.4.3.post2`` name one release: the table file uses the normalized form."""
    return str(Version(str(release)))


def table_path(release: str | Version) -> str:
    return f"facts/sglang/{normalize(release)}.json"


def generate_command(release: str | Version) -> str:
    return f"python tools/sglang_flags.py generate {normalize(release)}"


def missing_table_message(release: str | Version) -> str:
    return (
        f"no flag table for SGLang {normalize(release)} is shipped: run `{generate_command(release)}` "
        f"and commit {table_path(release)}"
    )


def shipped_releases() -> tuple[str, ...]:
    """Releases with a table in this package, oldest first."""
    return _shipped()


@functools.cache
def _shipped() -> tuple[str, ...]:
    releases = []
    for entry in resources.files(__package__).iterdir():
        if entry.name.endswith(".json"):
            try:
                releases.append(Version(entry.name.removesuffix(".json")))
            except InvalidVersion:
                continue
    return tuple(str(r) for r in sorted(releases))


def load_table(release: str | Version) -> Table | None:
    """The shipped table of a release, or None when the program ships none for it."""
    try:
        name = normalize(release)
    except InvalidVersion:
        return None
    return _load(name) if name in _shipped() else None


@functools.cache
def _load(release: str) -> Table:
    text = resources.files(__package__).joinpath(f"{release}.json").read_text(encoding="utf-8")
    table = Table(json.loads(text))
    if table.release != release:
        raise ValueError(f"facts/sglang/{release}.json holds the table of SGLang {table.release}")
    return table


def releases_with(flag: str, value: str | None = None) -> tuple[str, ...]:
    """Shipped releases, oldest first, whose parser reads ``flag`` as one option (exactly or as a unique
    prefix) and, when ``value`` is given, accepts that value for it."""
    out = []
    for release in _shipped():
        table = _load(release)
        word = table.parse_word(flag)
        if word.kind != "option" or word.option is None:
            continue
        if value is not None and (
            not word.option.takes_value or word.option.value_problem(flag, value, release) is not None
        ):
            continue
        out.append(release)
    return tuple(out)


def first_release_with(flag: str, value: str | None = None) -> str | None:
    """The oldest shipped release that has ``flag`` (and accepts ``value``), or None. When it is the oldest
    shipped table, older releases may have it too: the tables start at the reference release."""
    found = releases_with(flag, value)
    return found[0] if found else None
