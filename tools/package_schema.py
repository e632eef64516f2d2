#!/usr/bin/env python3
"""Write provider/schema.json, the component package's schema as `pulumi package get-schema provider` prints it,
from the provider's own analysis (no engine needed): the CLI binds and prints the schema the provider returns,
which drops what carries nothing (empty lists, null enum descriptions, the descriptions Pulumi's analyzer
repeats on list items and map values) and adds an empty ``config``. tests/test_provider.py fails when the
committed file differs from the code's schema; tests/e2e/test_packages.py compares it with the CLI's output.
Usage: python tools/package_schema.py [--write]"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OUT = Path(__file__).resolve().parent.parent / "provider" / "schema.json"


def _property(prop: dict[str, Any], nested: bool = False) -> dict[str, Any]:
    out = {k: v for k, v in prop.items() if v is not None and not (nested and k == "description")}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _property(out[key], nested=True)
    return out


def _object(spec: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in spec.items() if v is not None and v != []}
    for key in ("properties", "inputProperties"):
        if key in out:
            out[key] = {name: _property(prop) for name, prop in out[key].items()}
    if "enum" in out:
        out["enum"] = [{k: v for k, v in member.items() if v is not None} for member in out["enum"]]
    return out


def cli_form(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as the CLI prints it (compared as JSON values, not text)."""
    out = {k: v for k, v in schema.items() if v not in (None, [])}
    out.setdefault("config", {})
    for section in ("types", "resources"):
        out[section] = {token: _object(spec) for token, spec in sorted(out.get(section, {}).items())}
    return out


def schema() -> dict[str, Any]:
    from sglang_platform.provider.host import PlatformProvider, package_version

    return cli_form(json.loads(PlatformProvider(package_version()).schema or "{}"))


def text(value: dict[str, Any]) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write provider/schema.json")
    args = parser.parse_args()
    out = text(schema())
    if args.write:
        OUT.write_text(out)
    else:
        sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
