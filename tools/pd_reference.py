#!/usr/bin/env python3
"""Print the comparison of examples/stacks/Pulumi.pd-h200.yaml with SGLang's own LWS PD example (markdown,
for docs/disaggregation.md): each role's flags as SGLang's example passes them next to what the stack renders
(the program under mocks), with the reason for every difference, and the two routers. A test keeps the page
equal to this output and fails on a difference without a reason.
Usage: python tools/pd_reference.py [--write [FILE]]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
BEGIN, END = "<!-- pd-example:begin -->", "<!-- pd-example:end -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "disaggregation.md"
STACK = "pd-h200"
SOURCE = "https://github.com/sgl-project/sglang/tree/main/docs/references/multi_node_deployment/lws_pd/lws-examples"

# SGLang's example as published (p.yaml, d.yaml: the leader container of each LeaderWorkerSet; the workers run
# the same without --port and --host), and its router (lb.yaml).
PUBLISHED = {
    "prefill": (
        "--port 30000 --host 0.0.0.0 --model-path /work/models "
        "--disaggregation-ib-device mlx5_bond_0,mlx5_bond_1,mlx5_bond_2,mlx5_bond_3 --chunked-prefill-size 524288 "
        "--max-prefill-tokens 32768 --page-size 64 --ep-dispatch-algorithm dynamic --eplb-algorithm deepseek "
        "--enable-dp-lm-head --enable-dp-attention --dp-size 16 --disable-radix-cache --moe-a2a-backend deepep "
        "--disaggregation-mode prefill --mem-fraction-static 0.7 --context-length 32768 --tp 16 "
        "--dist-init-addr $(LWS_LEADER_ADDRESS):20102 --nnodes $(LWS_GROUP_SIZE) --node-rank $(LWS_WORKER_INDEX) "
        "--trust-remote-code --ep-num-redundant-experts 32 --moe-dense-tp-size 1 --max-running-requests 1024"
    ),
    "decode": (
        "--port 30000 --host 0.0.0.0 --model-path /work/models --chunked-prefill-size 262144 --page-size 64 "
        "--enable-dp-attention --enable-dp-lm-head --dp-size 16 --moe-a2a-backend deepep --disaggregation-mode decode "
        "--mem-fraction-static 0.849 --context-length 32768 "
        "--disaggregation-ib-device mlx5_bond_0,mlx5_bond_1,mlx5_bond_2,mlx5_bond_3 --cuda-graph-max-bs 64 "
        "--max-running-requests 2048 --tp-size 16 --dist-init-addr $(LWS_LEADER_ADDRESS):20102 "
        "--nnodes $(LWS_GROUP_SIZE) --node-rank $(LWS_WORKER_INDEX) --trust-remote-code "
        "--ep-num-redundant-experts 32 --moe-dense-tp-size 1"
    ),
}
PUBLISHED_ROUTER = (
    "python -m sglang_router.launch_router --pd-disaggregation --prefill http://deepseekr10528-prefill-main:30000 "
    "--decode http://deepseekr10528-decode-main:30000 --host 0.0.0.0 --port 8000"
)
# The example's spelling -> the one the pinned release (0.5.23) has for the same setting.
SPELLING = {
    "--tp": "--tp-size",
    "--enable-dp-attention": "--attn-dp-size",
    "--dp-size": "--attn-dp-size",
    "--cuda-graph-max-bs": "--cuda-graph-max-bs-decode",
}
# Why the stack renders a flag differently from the example (or renders one the example lacks), by flag.
WHY = {
    "--tp-size": "one node of 8 H200 per role instead of two nodes of 8: tp 8",
    "--attn-dp-size": "0.5.23's spelling of `--enable-dp-attention --dp-size N` (the old pair is a deprecated "
    "alias there); 8 DP-attention groups, one per GPU, as the example's 16 on 16 GPUs",
    "--cuda-graph-max-bs-decode": "0.5.23's spelling: `--cuda-graph-max-bs` is an ambiguous prefix there "
    "(`-decode`, `-prefill`) and stops the server",
    "--port": "the platform's API port (`ports.http`), the same on both roles for the gateway's discovery",
    "--model-path": "the model volume's mount and the weights' directory (`modelVolume`, `model.path`)",
    "--dist-init-addr": "one node per role: no distributed init address, node count or rank",
    "--nnodes": "one node per role",
    "--node-rank": "one node per role",
    "--served-model-name": "the name clients send, through the gateway",
    "--disaggregation-transfer-backend": "written out: the example relies on the default (mooncake)",
    "--disaggregation-bootstrap-port": "written out: the example relies on the default (8998), which the prefill "
    "leader's `sglang.ai/bootstrap-port` annotation tells the gateway",
    "--reasoning-parser": "the preset's (`deepseek-r1-h200`): answers split into reasoning and content",
    "--enable-metrics": "the platform's: the dashboard, alerts and autoscalers read /metrics",
    "--api-key": "the stack's `apiKey` from its Secret; the gateway sends it on",
}
ROLES = ("prefill", "decode")


def _flags(words: list[str]) -> list[tuple[str, str]]:
    """(flag, value) in order; a flag without a value gets ''."""
    out: list[tuple[str, str]] = []
    for word in words:
        if word.startswith("--"):
            out.append((word, ""))
        elif out:
            flag, value = out[-1]
            out[-1] = (flag, f"{value} {word}".strip())
    return out


def _published(role: str) -> dict[str, str]:
    """The example's flags under the pinned release's spellings (``--enable-dp-attention --dp-size 16`` is one
    setting: 16 DP-attention groups)."""
    out: dict[str, str] = {}
    for flag, value in _flags(PUBLISHED[role].split()):
        ours = SPELLING.get(flag, flag)
        if flag == "--enable-dp-attention":
            continue
        out[ours] = value
    return out


def render() -> dict[str, object]:
    """What the example stack renders: each role's leader command, and the gateway's."""
    from tools import harness

    secrets = {key: harness.PLACEHOLDER for key in ("apiKey", "webuiSecretKey", "grafanaAdminPassword")}
    result, _ = harness.run_stack(STACK, secrets=secrets)
    if result.error is not None:
        raise SystemExit(result.error)
    out: dict[str, object] = {}
    for role in ROLES:
        lws = result.k8s_object("LeaderWorkerSet", f"deepseek-r1-{role}")["spec"]["leaderWorkerTemplate"]
        pod = lws.get("leaderTemplate") or lws["workerTemplate"]
        (server,) = pod["spec"]["containers"]
        out[role] = server["args"]
    (gateway,) = result.k8s_object("Deployment", "deepseek-r1-gateway")["spec"]["template"]["spec"]["containers"]
    out["gateway"] = [*gateway["command"], *gateway["args"]]
    return out


def rows(role: str, rendered_args: list[str]) -> list[tuple[str, str, str, str]]:
    """(flag, the example's value, the stack's value, why they differ) for every flag of either."""
    published = _published(role)
    ours = dict(_flags(rendered_args))
    order = list(published) + [f for f in ours if f not in published]
    out = []
    for flag in order:
        theirs, mine = published.get(flag), ours.get(flag)
        why = ""
        if theirs != mine:
            if flag not in WHY:
                raise SystemExit(f"{role} {flag}: {theirs!r} in SGLang's example, {mine!r} rendered, and no reason")
            why = WHY[flag]
        out.append((flag, _cell(theirs), _cell(mine), why))
    return out


def _cell(value: str | None) -> str:
    if value is None:
        return "(not set)"
    return f"`{value}`" if value else "(set)"


def reference() -> str:
    rendered = render()
    lines = [BEGIN]
    for role in ROLES:
        args = rendered[role]
        assert isinstance(args, list)
        lines += [
            f"**{role.capitalize()}** (SGLang's `{role[0]}.yaml` leader, against `deepseek-r1-{role}`'s leader):",
            "",
            "| flag | SGLang's example | `Pulumi.pd-h200.yaml` | why they differ |",
            "|---|---|---|---|",
        ]
        lines += [f"| `{flag}` | {a} | {b} | {why} |" for flag, a, b, why in rows(role, args)]
        lines += ["", "```", "python3 -m sglang.launch_server " + " ".join(args), "```", ""]
    gateway = rendered["gateway"]
    assert isinstance(gateway, list)
    lines += [
        "**Router**: SGLang's `lb.yaml` names one prefill and one decode Service (a headless Service of several "
        "groups would be one worker to it, and no bootstrap port is passed: decode falls back to its own "
        "default); the stack's gateway discovers every leader of the current revision by label, with each "
        "prefill leader's bootstrap port from its annotation:",
        "",
        "```",
        PUBLISHED_ROUTER,
        " ".join(gateway),
        "```",
        END,
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, nargs="?", const=DOC, help=f"replace the block in {DOC.name}")
    args = parser.parse_args()
    text = reference()
    if args.write:
        doc = args.write.read_text()
        start, stop = doc.index(BEGIN), doc.index(END) + len(END)
        args.write.write_text(doc[:start] + text + doc[stop:])
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
