"""Configuration problems, each tied to the stack key it is about, reported all at once."""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

PROJECT = "sglang-platform"
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    loc: Loc
    message: str

    @property
    def key(self) -> str:
        return key_path(self.loc)

    @property
    def local(self) -> str:
        """``key: message`` without the project prefix: a problem of a component's own ``config``."""
        return f"{self.key.split(':', 1)[1]}: {self.message}"


def refusal(subject: str, lines: Sequence[str]) -> str:
    """The one form of every refusal: ``<subject> (N problem[s]):`` and one ``  - <line>`` per problem."""
    count = len(lines)
    return "\n".join([f"{subject} ({count} problem{'s' if count != 1 else ''}):", *(f"  - {line}" for line in lines)])


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def key_path(loc: Loc) -> str:
    """``("inferenceGroups", 0, "gpusPerNode")`` -> ``sglang-platform:inferenceGroups[0].gpusPerNode``.
    A key that is not a plain word (an unknown key can hold anything, newlines included) is quoted, so
    each problem stays on one line: ``versions["bad key"]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.match(part):
            out += f"[{json.dumps(part)}]"
        else:
            out += f".{part}" if out else part
    return f"{PROJECT}:{out}"


class ConfigError(Exception):
    """The stack configuration is invalid; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (_sortable(p.loc), p.message))
        super().__init__(refusal("invalid stack configuration", [f"{p.key}: {p.message}" for p in self.problems]))


def _sortable(loc: Loc) -> tuple:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in loc)


def _unwrap(annotation: Any) -> Any:
    """The model class behind Optional[...] / list[...] / dict[str, ...] / Annotated[...]."""
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            models = [a for a in get_args(annotation) if a is not type(None)]
            annotation = models[0] if len(models) == 1 else annotation
            if len(models) != 1:
                return annotation
        elif origin in (list, tuple, set, frozenset):
            annotation = get_args(annotation)[0]
        elif origin is dict:
            annotation = get_args(annotation)[1]
        else:
            return annotation


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class whose keys live at ``loc`` (indexes into lists are skipped)."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = next(
            (f for n, f in model.model_fields.items() if part in (n, f.alias)),
            None,
        )
        if field is None:
            return None
        model = _unwrap(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def problems_from_validation(error: ValidationError, root: type[BaseModel], prefix: Loc = ()) -> list[Problem]:
    problems = []
    for err in error.errors(include_url=False):
        loc: Loc = prefix + tuple(err["loc"])
        kind = err["type"]
        message = err["msg"]
        if kind == "extra_forbidden":
            parent = _model_at(root, tuple(err["loc"])[:-1])
            allowed = ", ".join(allowed_keys(parent)) if parent else "see Pulumi.yaml"
            message = f"unknown key (a typo?); allowed here: {allowed}"
        elif kind == "missing":
            message = "required key is missing"
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        elif kind == "string_pattern_mismatch":
            message = f"{err['input']!r} does not match {err['ctx']['pattern']}"
            if loc and loc[-1] == "name":
                message += " (a DNS-1123 label: lower-case letters, digits and '-')"
        else:
            message = f"{message} (got {err.get('input')!r})" if "input" in err and kind != "model_type" else message
        problems.append(Problem(loc, message))
    return problems
