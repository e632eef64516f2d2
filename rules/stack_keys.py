"""Stack keys under a namespace that is almost this project's.

Pulumi passes every ``<namespace>:<key>`` of a stack to the program, and reads only its own project's
namespace from ``pulumi.Config``: ``sglang-platfrom:namespace: deepseek`` is silently ignored, and the stack
deploys into the default namespace. Other namespaces are legitimate (``kubernetes:`` provider settings,
``pulumi:`` and other projects' keys in a shared stack file), so only a namespace that looks like a typo of
this one is refused: the same letters up to two edits (insert, delete, substitute, swap two neighbours), or
the same after case, ``_`` and ``-`` are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..config.errors import PROJECT, Problem

MAX_EDITS = 2


def _distance(a: str, b: str) -> int:
    """Optimal string alignment distance (Levenshtein plus adjacent transpositions)."""
    rows = [list(range(len(b) + 1))] + [[i] + [0] * len(b) for i in range(1, len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[len(a)][len(b)]


def _squashed(text: str) -> str:
    return text.lower().replace("-", "").replace("_", "")


def looks_like(namespace: str, project: str = PROJECT) -> bool:
    if namespace == project:
        return False
    return _squashed(namespace) == _squashed(project) or _distance(namespace.lower(), project) <= MAX_EDITS


def check_namespaces(full_keys: Iterable[str], project: str = PROJECT) -> list[Problem]:
    """Every stack key (``namespace:key``, as Pulumi hands them over) whose namespace looks like a typo of
    ``project``. The problem sits at the key as it would be spelt correctly."""
    out = []
    for full in sorted(full_keys):
        namespace, sep, key = full.partition(":")
        if not sep or not key or not looks_like(namespace, project):
            continue
        out.append(
            Problem(
                (key,),
                f"is set as {full!r}, under the namespace {namespace!r}, which this program does not read (a typo of "
                f"{project!r}?): rename it to {project}:{key} (`pulumi config rm {full}` and `pulumi config set "
                f"{project}:{key} ...`, or edit the stack file)",
            )
        )
    return out
