#!/usr/bin/env python3
"""Print the configuration reference (markdown) from the pydantic models, the SGLang release each typed
setting's flag needs from the shipped flag tables, the add-on compatibility table from facts/compat.py, the
version sets of facts/bom.py and the CUDA driver table of facts/cuda.py; docs/configuration.md embeds them
all and a test keeps them equal.
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

from sglang_platform.config.errors import _unwrap
from sglang_platform.config.stack import SECRET_KEYS, InferenceGroup, PdRole, PlatformConfig
from sglang_platform.facts import bom, cuda
from sglang_platform.facts.sglang import load_table, releases_with, shipped_releases
from sglang_platform.render.server_args import (
    EVERY_TYPED_SETTING,
    FLAG_VALUES,
    every_managed_flag,
    every_typed_group,
    typed_flags,
)
from sglang_platform.rules.compat import compatibility_table

BEGIN, END = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"
FLAGS_BEGIN, FLAGS_END = "<!-- flag-releases:begin -->", "<!-- flag-releases:end -->"
COMPAT_BEGIN, COMPAT_END = "<!-- compatibility:begin -->", "<!-- compatibility:end -->"
SETS_BEGIN, SETS_END = "<!-- version-sets:begin -->", "<!-- version-sets:end -->"
CUDA_BEGIN, CUDA_END = "<!-- cuda-drivers:begin -->", "<!-- cuda-drivers:end -->"
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
        # A role's keys are the group's own (listed in its description), documented once, under the group.
        if is_model and inner is not PdRole:
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


def flag_releases() -> str:
    """One row per flag the platform sets: the key that sets it, the shipped releases that have it (and, for a
    setting with a fixed set of values, each value the oldest release does not accept yet), and the releases
    the platform writes that spelling for."""
    shipped = shipped_releases()
    lines = [
        FLAGS_BEGIN,
        f"Shipped flag tables: {', '.join(shipped)}.",
        "",
        "| setting | flag | needs SGLang | written for |",
        "|---|---|---|---|",
    ]
    written = _written_for()
    # In command-line order; a spelling the newest releases do not use after the one they do.

    every = every_typed_group()
    emitted = typed_flags(every, leader=False, api_key=True)
    order = [item.flag for item in emitted]
    first = {item.key: i for i, item in reversed(list(enumerate(emitted)))}
    first.setdefault("expertParallel", first["expertParallel.a2aBackend"])
    first.setdefault("expertParallel.size", first["expertParallel.a2aBackend"])
    # Decode's layout, written on prefill only for the releases that take it (0.4.10 to 0.5.1).
    first.setdefault("disaggregation.decode.tensorParallel", first["disaggregation.ibDevices"])
    first.setdefault("disaggregation.decode.dpAttentionSize", first["disaggregation.ibDevices"])

    def rank(item: tuple[str, str | None]) -> tuple[float, int]:
        flag, key = item
        return (order.index(flag), 0) if flag in order else (first[key] + 0.5, 0)

    rows = sorted(every_managed_flag().items(), key=rank)
    for flag, key in rows:
        having = releases_with(flag)
        when = _releases(having, shipped)
        for value in _choices(key):
            accepting = releases_with(flag, value)
            if accepting != having:
                when += f"; `{value}`: {_releases(accepting, shipped)}"
        if key is None:
            setting = "(set by the platform)"
        elif ":" in key:
            setting = f"`{key}`"
        else:
            setting = f"`sglang-platform:inferenceGroups[].{key}`"
        used = tuple(r for r in written.get(flag, ()) if r in having)
        lines.append(f"| {setting} | `{flag}` | {when} | {_releases(used, shipped)} |")
    lines.append(FLAGS_END)
    return "\n".join(lines)


def _written_for() -> dict[str, tuple[str, ...]]:
    """flag -> the shipped releases the platform spells a lever with it for (with DeepEP and with plain expert
    parallelism, which emit different flags)."""

    variants = [EVERY_TYPED_SETTING, {**EVERY_TYPED_SETTING, "expertParallel": {"size": 2}}]
    out: dict[str, list[str]] = {}
    for release in shipped_releases():
        table = load_table(release)
        flags: set[str] = set()
        for variant in variants:
            group = InferenceGroup.model_validate(variant).roles["prefill"]
            for leader in (True, False):
                flags |= {item.flag for item in typed_flags(group, leader=leader, api_key=True, table=table)}
        for flag in flags:
            out.setdefault(flag, []).append(release)
    return {flag: tuple(releases) for flag, releases in out.items()}


def _releases(having: tuple[str, ...], shipped: tuple[str, ...]) -> str:
    if not having:
        return "no shipped release"
    if having == shipped:
        return "every shipped release"
    start = shipped.index(having[0])
    if having != shipped[start : start + len(having)]:
        return "only " + ", ".join(having)
    if start == 0:
        return f"up to {having[-1]}"
    if having[-1] == shipped[-1]:
        return f"{having[0]} or later"
    return f"{having[0]} to {having[-1]}"


def _choices(key: str | None) -> tuple[str, ...]:
    """The values a group setting writes after its flag: its Literal's values, or what FLAG_VALUES says."""
    if key is None or ":" in key:
        return ()
    if key in FLAG_VALUES:
        return FLAG_VALUES[key]
    model: Any = InferenceGroup
    annotation: Any = None
    for part in key.split("."):
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        annotation = fields[part].annotation
        model = _unwrap(annotation)
    for candidate in (annotation, *get_args(annotation)):
        if get_origin(candidate) is Literal:
            return tuple(str(v) for v in get_args(candidate))
    return ()


def version_sets() -> str:
    """facts/bom.py's named sets, pin by pin (each set's purpose in the header)."""
    names = list(bom.SETS)
    lines = [SETS_BEGIN, "| `versions.` key | " + " | ".join(f"`{n}`" for n in names) + " |"]
    lines.append("|---|" + "---|" * len(names))
    for key in bom.SETS[bom.DEFAULT_SET]:
        lines.append(f"| `{key}` | " + " | ".join(f"`{bom.SETS[n][key]}`" for n in names) + " |")
    lines += ["", ", ".join(f"`{n}`: {bom.SET_PURPOSE[n]}" for n in names) + ".", SETS_END]
    return "\n".join(lines)


def cuda_drivers() -> str:
    """facts/cuda.py's CUDA lines with the driver each needs, and the newest SGLang build of each line."""
    newest = {b.cuda: b for b in cuda.NEWEST_BUILDS}
    lines = [CUDA_BEGIN, "| CUDA (image tag) | needs NVIDIA driver | newest SGLang build known |", "|---|---|---|"]
    for line, driver in cuda.MIN_DRIVER.items():
        build = newest.get(line)
        known = f"`lmsysorg/sglang:{build.tag}` ({build.note})" if build else ""
        lines.append(f"| {line} (`-cu{line.replace('.', '')}`) | {driver} or newer | {known} |")
    lines += ["", f"Source: {cuda.CUDA_NOTES}.", CUDA_END]
    return "\n".join(lines)


def compatibility() -> str:
    """facts/compat.py's add-on windows and features by release, each with its source."""
    return "\n".join([COMPAT_BEGIN, compatibility_table(), COMPAT_END])


def _replace(doc: str, begin: str, end: str, text: str) -> str:
    start, stop = doc.index(begin), doc.index(end) + len(end)
    return doc[:start] + text + doc[stop:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--write",
        type=Path,
        nargs="?",
        const=DOC,
        help=f"replace the reference between the markers (default {DOC.name})",
    )
    args = parser.parse_args()
    blocks = [
        (BEGIN, END, reference()),
        (FLAGS_BEGIN, FLAGS_END, flag_releases()),
        (COMPAT_BEGIN, COMPAT_END, compatibility()),
        (SETS_BEGIN, SETS_END, version_sets()),
        (CUDA_BEGIN, CUDA_END, cuda_drivers()),
    ]
    if args.write:
        doc = args.write.read_text()
        for begin, end, text in blocks:
            doc = _replace(doc, begin, end, text)
        args.write.write_text(doc)
    else:
        print("\n\n".join(text for _, _, text in blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
