"""Every flag a group's pods get, against the flag table of the pinned SGLang release (``facts/sglang``).

The typed settings (leader's and worker's command, as ``render.server_args`` builds them) and ``extraArgs``
are read the way that release's argparse reads them: an unknown flag, one newer than the pin (naming the
shipped release that adds it), a bad, missing or extra value, an ambiguous prefix, and any spelling of a flag
the platform sets (exact, alias, ``--no-`` form, abbreviation) are refused, each on the key that causes it.
"""

from __future__ import annotations

from ..config.errors import Loc, Problem, key_path
from ..config.stack import InferenceGroup, Versions, release_of_tag
from ..facts.sglang import Table, check_args, load_table, missing_table_message
from ..render.server_args import TypedFlag, managed_flags, typed_flags

__all__ = ["check_group_flags", "check_release_table", "release_key", "release_loc"]


def release_loc(versions: Versions) -> Loc:
    """The key the release is read from: the image's tag when it names one, else sglangVersion."""
    if versions.sglang_version and release_of_tag(versions.sglang_image) is None:
        return ("versions", "sglangVersion")
    return ("versions", "sglangImage")


def release_key(versions: Versions) -> str:
    return key_path(release_loc(versions))


def check_release_table(versions: Versions) -> list[Problem]:
    """A pinned release the program ships no table for, once for the whole stack."""
    release = versions.sglang_release
    if release is None or load_table(release) is not None:
        return []
    return [Problem(release_loc(versions), missing_table_message(release))]


def check_group_flags(g: InferenceGroup, table: Table, *, release_key: str) -> list[Problem]:
    """The group's flags under ``table``'s release, located relative to the group (``distTimeoutSeconds``,
    ``extraArgs[3]``). ``release_key`` names the setting that pins the release, for "needs a newer release"
    messages."""
    out: list[Problem] = []
    for leader in (True, False):
        items = typed_flags(g, leader=leader, api_key=True, table=table)
        words, owners = _words(items)
        for p in check_args(words, table, required=True, pin_key=release_key):
            item = owners[p.index] if p.index < len(owners) else None
            problem = _typed_problem(item, p.message)
            if problem not in out:  # leader and worker share most flags: one line each
                out.append(problem)
    for p in check_args(g.extra_args, table, managed_flags(table), pin_key=release_key):
        out.append(Problem(("extraArgs", p.index), p.message))
    return out


def _words(items: list[TypedFlag]) -> tuple[list[str], list[TypedFlag]]:
    words: list[str] = []
    owners: list[TypedFlag] = []
    for item in items:
        for word in (item.flag, *item.values):
            words.append(word)
            owners.append(item)
    return words, owners


def _typed_problem(item: TypedFlag | None, message: str) -> Problem:
    """On the setting's key; a flag the platform sets itself (or from a stack-level key) on the group."""
    if item is None or item.key is None:
        return Problem((), f"{message} (a flag the platform sets itself)")
    if ":" in item.key:
        return Problem((), f"{message} (set from {item.key})")
    return Problem(tuple(item.key.split(".")), message)
