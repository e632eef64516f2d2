#!/usr/bin/env python3
"""Print the configuration reference (markdown) from the pydantic models, and the add-on compatibility table
from config/compat.py; docs/configuration.md embeds both and a test keeps them equal.
Usage: python tools/config_reference.py [--write [FILE]]"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.errors import _unwrap
from config.models import SECRET_KEYS, PlatformConfig
from config.rules.compat import compatibility_table

BEGIN, END = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"
COMPAT_BEGIN, COMPAT_END = "<!-- compatibility:begin -->", "<!-- compatibility:end -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    return getattr(annotation, "__name__", str(annotation))


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows, nested = [], []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        inner = _unwrap(field.annotation)
        is_model = isinstance(inner, type) and issubclass(inner, BaseModel)
        if field.is_required():
            default = "required"
        elif field.default_factory is not None:
            value = field.get_default(call_default_factory=True, validated_data={})
            default = "{}" if isinstance(value, BaseModel) else f"`{value!r}`"
        elif field.default is PydanticUndefined or field.default is None:
            default = "unset"
        else:
            default = f"`{field.default!r}`"
        kind = _type_name(field.annotation)
        rows.append(f"| `{key}` | {kind} | {default} | {field.description or ''} |")
        if is_model:
            sep = "[]." if "list[" in str(field.annotation) else "."
            nested.append((inner, f"{key}{sep}"))
    for inner, sub in nested:
        rows += _rows(inner, sub)
    return rows


def reference() -> str:
    lines = [BEGIN, "| key | type | default | meaning |", "|---|---|---|---|"]
    lines += _rows(PlatformConfig, "sglang-platform:")
    lines += [f"| `sglang-platform:{k}` | secret | unset | {v} |" for k, v in SECRET_KEYS.items()]
    lines.append(END)
    return "\n".join(lines)


def compatibility() -> str:
    return "\n".join([COMPAT_BEGIN, compatibility_table(), COMPAT_END])


def embed(doc: str) -> str:
    """``doc`` with both generated blocks replaced."""
    for begin, end, text in ((BEGIN, END, reference()), (COMPAT_BEGIN, COMPAT_END, compatibility())):
        start, stop = doc.index(begin), doc.index(end) + len(end)
        doc = doc[:start] + text + doc[stop:]
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write",
        type=Path,
        nargs="?",
        const=DOC,
        help=f"replace the reference and the compatibility table between their markers (default {DOC.name})",
    )
    args = parser.parse_args()
    if args.write:
        args.write.write_text(embed(args.write.read_text()))
    else:
        print(reference())
        print()
        print(compatibility())
    return 0


if __name__ == "__main__":
    sys.exit(main())
