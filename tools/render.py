#!/usr/bin/env python3
"""Offline render: run the real program under Pulumi mocks and write what `pulumi up` would send.

    python tools/render.py --stack dev --out out/dev
    python tools/render.py --stack-file path/to/Pulumi.x.yaml --out out/x

Writes DIR/manifests.yaml (every Kubernetes object, multi-document, stable order) and DIR/releases.yaml
(every Helm release with chart, repository, version and values). Needs no cluster, CLI or secrets:
secrets render as a placeholder. Invalid configuration: message on stderr, exit 1, nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools import harness


# libyaml's emitter is ~10x faster than the pure-Python one on large renders; same output.
class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_all(documents: list) -> str:
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def render(stack: str | None, stack_file: Path | None, out: Path) -> int:
    path = stack_file or harness.stack_path(str(stack))
    if not path.is_file():
        print(f"error: no stack file {path}", file=sys.stderr)
        return 2
    # The render stays offline: the program skips its S3 preflight listing (and says so).
    os.environ["SGLANG_PLATFORM_OFFLINE"] = "1"
    try:
        result, cfg = harness.run_stack(name=stack, stack_file=stack_file)
    except (yaml.YAMLError, ValueError) as error:
        print(f"error: cannot read {path}: {error}", file=sys.stderr)
        return 2
    if result.error is not None:
        print(f"error: {path.name}: {result.error}", file=sys.stderr)
        return 1
    objects = harness.kubernetes_objects(result)
    releases = harness.releases(result)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifests.yaml").write_text(dump_all(objects))
    (out / "releases.yaml").write_text(yaml.dump(releases, Dumper=_Dumper, sort_keys=False, width=120))
    for key in cfg.placeholders:
        print(
            f"note: secret {key} is not available here; rendered as {harness.PLACEHOLDER!r} "
            f"(set it with `pulumi config set --secret {key} ...` before `pulumi up`)",
            file=sys.stderr,
        )
    print(
        f"{path.name}: {len(objects)} Kubernetes objects -> {out / 'manifests.yaml'}; "
        f"{len(releases)} releases -> {out / 'releases.yaml'}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--stack", help="stack name (reads Pulumi.<name>.yaml, or examples/stacks/Pulumi.<name>.yaml)")
    which.add_argument("--stack-file", type=Path, help="any Pulumi stack file")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    args = parser.parse_args(argv)
    return render(args.stack, args.stack_file, args.out)


if __name__ == "__main__":
    sys.exit(main())
