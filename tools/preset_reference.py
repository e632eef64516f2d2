#!/usr/bin/env python3
"""Print the presets' reference (markdown) for docs/deepseek.md: each preset with its GPUs, sources and the
oldest shipped SGLang release it runs on, each source's command next to the command the platform renders
from the preset, and what the example stack (examples/stacks) renders; docs/deepseek.md embeds both and a test
keeps them equal.
Usage: python tools/preset_reference.py [--write [FILE]]"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Like tools/render.py: the page shows what the program renders offline; nothing here reaches the network
# (no config.json or S3 listing at "preview").
os.environ["SGLANG_PLATFORM_OFFLINE"] = "1"

from sglang_platform.config.errors import ConfigError
from sglang_platform.config.loader import validate
from sglang_platform.config.stack import InferenceGroup
from sglang_platform.facts.presets import PRESETS, Preset
from sglang_platform.facts.sglang import load_table, shipped_releases
from sglang_platform.render.server_args import typed_args
from sglang_platform.render.sglang_pods import DEEP_GEMM_MOUNT, deep_gemm_compile_args

BEGIN, END = "<!-- presets:begin -->", "<!-- presets:end -->"
EXAMPLE_BEGIN, EXAMPLE_END = "<!-- example:begin -->", "<!-- example:end -->"
EXAMPLE = "deepseek-h200"
DOC = Path(__file__).resolve().parent.parent / "docs" / "deepseek.md"
# The release the rendered commands are shown for: the newest shipped.
SHOWN = shipped_releases()[-1]


def preset_group(preset: Preset) -> dict[str, Any]:
    """A group that uses the preset and adds only what a preset cannot know (volume, node size, fabric)."""
    group: dict[str, Any] = {
        "name": "deepseek",
        "preset": preset.name,
        "modelVolume": {"type": "hostPath", "hostPath": "/models", "mountPath": "/models"},
        "resources": {"cpu": "96", "memory": "1600Gi"},
    }
    if "revision" not in preset.settings["model"]["download"]:
        group["model"] = {"download": None}  # staged by hand, or pinned by the stack
    if preset.nodes > 1:
        group["network"] = {"fabric": "infiniband", "hcas": ["mlx5_0"], "rdmaDevicesPerNode": 1}
    return group


def problems_on(preset: Preset, release: str) -> list[str]:
    raw = {
        "versions": {"sglangImage": f"lmsysorg/sglang:v{release}"},
        "inferenceGroups": [preset_group(preset)],
        "openWebui": {"enabled": False},
        "monitoring": {"enabled": False},
        # The capacity check is its own subject (docs/deepseek.md, H20).
        "preflight": {"capacity": False},
    }
    try:
        validate(raw)
    except ConfigError as error:
        return [f"{p.key}: {p.message}" for p in error.problems]
    return []


def oldest_release(preset: Preset) -> str | None:
    return next((r for r in shipped_releases() if not problems_on(preset, r)), None)


def rendered(preset: Preset, release: str) -> list[str]:
    group = InferenceGroup.model_validate(preset_group(preset))
    table = load_table(release)
    words = ["python3", "-m", "sglang.launch_server", *typed_args(group, leader=True, api_key=True, table=table)]
    out = [" ".join(words)]
    if group.deep_gemm is not None and group.deep_gemm.precompile:
        compile_ = deep_gemm_compile_args(group, table, leader=True)
        out.append(f"(init container, unless {DEEP_GEMM_MOUNT} holds the kernels) " + " ".join(compile_))
    return out


def reference() -> str:
    lines = [
        BEGIN,
        "| preset | GPUs | nodes x GPUs | weights | oldest SGLang | sources |",
        "|---|---|---|---|---|---|",
    ]
    for preset in PRESETS.values():
        sources = "; ".join(f"[{what}]({url})" for what, url in preset.sources)
        gpus = ", ".join(preset.gpus) or "any (24 GB or more)"
        oldest = oldest_release(preset) or "none shipped"
        lines.append(
            f"| `{preset.name}` | {gpus} | {preset.nodes} x {preset.gpus_per_node} | {preset.weights} | {oldest} | "
            f"{sources} |"
        )
    for preset in PRESETS.values():
        lines += ["", f"### `{preset.name}`", "", preset.summary + ".", "", "Published:", "", "```"]
        lines += list(preset.source_commands)
        lines += ["```", "", f"Rendered for SGLang {SHOWN} (leader; `--api-key` comes from the stack's secret):"]
        lines += ["", "```", *rendered(preset, SHOWN), "```"]
        first = oldest_release(preset)
        if first is not None and rendered(preset, first) != rendered(preset, SHOWN):
            lines += ["", f"Rendered for SGLang {first}, the oldest it runs on:", "", "```"]
            lines += [*rendered(preset, first), "```"]
        for note in preset.notes:
            lines += ["", f"Note: {note}"]
    lines.append(END)
    return "\n".join(lines)


def example() -> str:
    """What examples/stacks/Pulumi.<EXAMPLE>.yaml renders for its SGLang pods (the program under mocks)."""
    from tools import harness

    secrets = {key: harness.PLACEHOLDER for key in ("apiKey", "webuiSecretKey", "grafanaAdminPassword")}
    result, _ = harness.run_stack(EXAMPLE, secrets=secrets)
    if result.error is not None:
        raise SystemExit(result.error)
    lines = [EXAMPLE_BEGIN]
    for lws in (o for o in harness.kubernetes_objects(result) if o["kind"] == "LeaderWorkerSet"):
        spec = lws["spec"]
        template = spec["leaderWorkerTemplate"]
        pod = template.get("leaderTemplate") or template["workerTemplate"]
        (server,) = pod["spec"]["containers"]
        lines += [
            f"`{lws['metadata']['name']}`: {spec['replicas']} groups of {template['size']} pod(s), image "
            f"`{server['image']}`:",
            "",
            "```",
        ]
        for init in pod["spec"].get("initContainers", []):
            lines.append(f"# init container {init['name']}")
            lines.append(" ".join([*init["command"], *init.get("args", [])]))
        lines.append(f"# {server['name']}")
        lines.append(" ".join([*server["command"], *server["args"]]))
        lines += ["```", ""]
    for deployment in (o for o in harness.kubernetes_objects(result) if o["kind"] == "Deployment"):
        (gateway,) = deployment["spec"]["template"]["spec"]["containers"]
        if "launch_router" not in " ".join(gateway.get("command", []) + gateway.get("args", [])):
            continue
        lines += [
            f"`{deployment['metadata']['name']}`: {deployment['spec']['replicas']} pod(s), image `{gateway['image']}`:",
            "",
            "```",
            " ".join([*gateway.get("command", []), *gateway["args"]]),
            "```",
            "",
        ]
    lines[-1:] = [EXAMPLE_END]
    return "\n".join(lines)


def _replace(doc: str, begin: str, end: str, text: str) -> str:
    start, stop = doc.index(begin), doc.index(end) + len(end)
    return doc[:start] + text + doc[stop:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, nargs="?", const=DOC, help=f"replace the block in {DOC.name}")
    args = parser.parse_args()
    text, rendered_example = reference(), example()
    if args.write:
        doc = _replace(args.write.read_text(), BEGIN, END, text)
        args.write.write_text(_replace(doc, EXAMPLE_BEGIN, EXAMPLE_END, rendered_example))
    else:
        print(text)
        print()
        print(rendered_example)
    return 0


if __name__ == "__main__":
    sys.exit(main())
