"""argparse's verdict on an ``sglang.launch_server`` command line, before a GPU is scheduled.

``check_args`` walks the words the way ``ArgumentParser.parse_args`` of the pinned release would (see
``facts.sglang.table``) and reports each problem once, with the index of the word it is about (so config
can name ``extraArgs[3]``) and a message that says what to do:

- a word that is no option of the release (a typo, a flag of a newer release: which shipped release adds
  it, or of an older one: the last shipped release that has it), or a prefix of several;
- a value argparse refuses: not an int/float/JSON where the option converts one, outside ``choices``;
- a missing value, a value where the option takes none (``--flag=value`` included), a stray word;
- ``--help``, which prints and exits instead of serving;
- any spelling (exact, alias, ``--no-`` form, abbreviation) of a flag the platform sets from a typed key.

What the table could not resolve statically (a custom converter, choices computed at run time) is accepted:
the check may miss a bad value there, but never refuses a good one. ``$(VAR)`` values are accepted too:
Kubernetes substitutes them from the container env before SGLang starts.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from packaging.version import Version

from .table import Option, Table, Word, releases_with

Kind = Literal[
    "unknown",
    "newer",
    "removed",
    "ambiguous",
    "managed",
    "help",
    "no_value",
    "missing_value",
    "extra_value",
    "bad_value",
    "positional",
    "required",
]


# How many candidates an ambiguous prefix lists (``--=`` is a prefix of every option).
AMBIGUOUS_SHOWN = 6


@dataclass(frozen=True)
class FlagProblem:
    index: int  # of the word in the checked args (len(args) for a missing required option)
    kind: Kind
    message: str
    flag: str | None = None  # the option's canonical name, when the word resolved to one

    def __post_init__(self) -> None:
        # A word may hold anything (a newline, an escape sequence): the message stays one printable line.
        printable = "".join(c if c.isprintable() else repr(c)[1:-1] for c in self.message)
        object.__setattr__(self, "message", printable)


def check_args(
    args: Sequence[str],
    table: Table,
    managed: Mapping[str, str | None] | None = None,
    *,
    required: bool = False,
    pin_key: str | None = None,
    releases: Callable[[str], tuple[str, ...]] = releases_with,
) -> list[FlagProblem]:
    """Every problem argparse of ``table``'s release would stop ``launch_server`` for, in word order.

    ``managed`` maps each flag the platform sets to the config key that sets it (None: the platform sets it
    itself, e.g. ``--host``); any spelling of one of them is refused. ``required``: also report required
    options that are absent (for a complete command line, not for extra arguments alone). ``pin_key`` names
    the setting that pins the release, for the "needs a newer release" message; ``releases`` the shipped releases
    of the table's product that have a flag (SGLang's by default; a gateway's from facts.gateways).
    """
    owners = _managed_options(table, managed or {})
    problems: list[FlagProblem] = []
    seen: set[str] = set()
    previous: tuple[str, Option] | None = None  # the last option read, for a stray word's message
    i = 0
    while i < len(args):
        word = str(args[i])
        if word == "--":
            problems.append(
                FlagProblem(i, "positional", f"'--' ends the options and {table.product} takes no positional arguments")
            )
            break
        parsed = table.parse_word(word)
        if parsed.kind == "value":
            if "$(" not in word:  # a $(VAR) may expand to an option: Kubernetes knows, the table does not
                problems.append(FlagProblem(i, "extra_value", _stray(word, previous, table)))
            i += 1
            continue
        if parsed.kind in ("unknown", "ambiguous"):
            problems.append(_not_an_option(i, word, parsed, table, pin_key, releases))
            i = _skip_values(args, i + 1, table)
            previous = None
            continue
        option, string = parsed.option, parsed.string
        assert option is not None and string is not None
        seen.add(option.name)
        flag = word.split("=", 1)[0] if parsed.explicit is not None and "=" in word else word
        if option.name in owners:
            refusal = _managed_message(flag, string, option, owners[option.name])
            problems.append(FlagProblem(i, "managed", refusal, option.name))
            # Past the values argparse would give it (none after --flag=value): a word beyond them is a
            # mistake of its own.
            taken = 0 if parsed.explicit is not None else len(_values_after(args, i + 1, option.values[1], table))
            i += 1 + taken
            previous = (flag, option)
            continue
        if option.action in ("help", "version"):
            exits = f"{flag} prints {table.product}'s {option.action} and exits: remove it"
            problems.append(FlagProblem(i, "help", exits))
            i += 1
            continue
        low, high = option.values
        if parsed.explicit is not None:
            if high == 0:
                problems.append(FlagProblem(i, "no_value", f"{flag} takes no value (got {word!r})", option.name))
            elif low > 1:
                problems.append(
                    FlagProblem(i, "missing_value", f"{flag} needs {low} values; write them as separate words")
                )
            elif message := option.value_problem(flag, parsed.explicit, table.release, table.product):
                problems.append(FlagProblem(i, "bad_value", message, option.name))
            previous = (flag, option) if high <= 1 else None
            i += 1
            continue
        j = i + 1
        values: list[str] = []
        while (
            len(values) < high and j < len(args) and args[j] != "--" and table.parse_word(str(args[j])).kind == "value"
        ):
            values.append(str(args[j]))
            j += 1
        if len(values) < low:
            problems.append(FlagProblem(i, "missing_value", _missing(flag, option, args, j, table), option.name))
            if j < len(args) and table.parse_word(str(args[j])).kind == "unknown":
                j += 1  # the dash-word meant as the value: the message above says how to write it
        else:
            for k, value in enumerate(values):
                if message := option.value_problem(flag, value, table.release, table.product):
                    problems.append(FlagProblem(i + 1 + k, "bad_value", message, option.name))
        previous = (flag, option)
        i = j
    if required:
        for option in table.options:
            if option.required and option.name not in seen:
                problems.append(FlagProblem(len(args), "required", f"{option.name} is required", option.name))
    return problems


def _managed_options(table: Table, managed: Mapping[str, str | None]) -> dict[str, tuple[str, str | None]]:
    """(the flag as the platform writes it, its key) by the canonical name of its option in this release."""
    out: dict[str, tuple[str, str | None]] = {}
    for flag, key in managed.items():
        word = table.parse_word(flag)
        if word.kind == "option" and word.option is not None:
            out[word.option.name] = (word.string or flag, key)
    return out


def _managed_message(flag: str, string: str, option: Option, owner: tuple[str, str | None]) -> str:
    """Names the flag as the platform writes it (``--tp-size``), whichever string the table lists first."""
    platform_flag, key = owner
    how = f"which the platform sets from {key}: use that key" if key else "which the platform sets itself: remove it"
    if string == platform_flag:
        if flag == string:
            return (
                f"{flag} is set by the platform from {key}: use that key"
                if key
                else (f"{flag} is set by the platform itself: remove it")
            )
        return f"{flag} is an abbreviation of {platform_flag}, {how}"
    negative = option.action == "boolean_optional" and string.startswith("--no-")
    relation = "the negative form" if negative else "an alias"
    if flag == string:
        return f"{flag} is {relation} of {platform_flag}, {how}"
    return f"{flag} is an abbreviation of {string}, {relation} of {platform_flag}, {how}"


def _not_an_option(
    i: int, word: str, parsed: Word, table: Table, pin_key: str | None, releases: Callable[[str], tuple[str, ...]]
) -> FlagProblem:
    flag = word.split("=", 1)[0]
    release = table.release
    if parsed.kind == "ambiguous":
        candidates = sorted({c for c in parsed.candidates})
        if len(candidates) > AMBIGUOUS_SHOWN:
            shown = candidates[:AMBIGUOUS_SHOWN]
            listed = ", ".join(shown) + f" or {len(candidates) - len(shown)} other options"
        else:
            listed = ", ".join(candidates[:-1]) + f" or {candidates[-1]}"
        message = f"{flag} is ambiguous in {table.product} {release}: it could be {listed}; spell the option out"
        return FlagProblem(i, "ambiguous", message)
    pin = Version(release)
    having = releases(flag)
    later = [r for r in having if Version(r) > pin]
    earlier = [r for r in having if Version(r) < pin]
    where = f" ({pin_key})" if pin_key else ""
    if later:
        return FlagProblem(
            i, "newer", f"{flag} needs {table.product} {later[0]} or later; the pinned release is {release}{where}"
        )
    if earlier:
        return FlagProblem(
            i,
            "removed",
            f"{flag} is not an option of {table.product} {release}: {earlier[-1]} is the last shipped release that "
            "has it",
        )
    message = f"{flag} is not an option of {table.product} {release}"
    if flag.startswith("--"):
        close = difflib.get_close_matches(flag, [s for s in table.by_string if s.startswith("--")], n=1, cutoff=0.8)
        if close:
            message += f" (did you mean {close[0]}?)"
    return FlagProblem(i, "unknown", message)


def _values_after(args: Sequence[str], j: int, most: int, table: Table) -> list[str]:
    """The words argparse gives an option as its values: up to ``most`` that it does not read as options."""
    values: list[str] = []
    while len(values) < most and j < len(args) and args[j] != "--" and table.parse_word(str(args[j])).kind == "value":
        values.append(str(args[j]))
        j += 1
    return values


def _skip_values(args: Sequence[str], j: int, table: Table) -> int:
    """Past the values of an option that is refused anyway: one message per option, not one per word."""
    while j < len(args) and args[j] != "--" and table.parse_word(str(args[j])).kind == "value":
        j += 1
    return j


def _stray(word: str, previous: tuple[str, Option] | None, table: Table) -> str:
    if previous is not None:
        flag, option = previous
        low, high = option.values
        takes = "no value" if high == 0 else "one value" if high == 1 else f"{high} values"
        if low != high and high == 1:
            takes = "at most one value"
        return f"{word!r} follows {flag}, which takes {takes}"
    return f"{word!r} is neither an option of {table.product} {table.release} nor the value of one"


def _missing(flag: str, option: Option, args: Sequence[str], j: int, table: Table) -> str:
    low = option.values[0]
    wanted = "a value" if low == 1 else f"{low} values"
    if j < len(args) and str(args[j]).startswith("-") and args[j] != "--":
        nxt = str(args[j])
        if table.parse_word(nxt).kind == "unknown":
            return f"{flag} needs {wanted}; argparse reads {nxt!r} as an option: write {flag}={nxt}"
    return f"{flag} needs {wanted}"
