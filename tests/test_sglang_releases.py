"""facts/sglang/releases.py: every fact of every shipped release, read again from that release's wheel.

The wheels are the ones the flag tables record (``python tools/sglang_flags.py fetch``); without them the
check skips (and fails under CI=true). Each fact is derived from the source the way a reviewer would find
it: the route decorators of the HTTP server, the API-key middleware, ``ServerArgs.__post_init__`` and the
0.5.x resolution hooks, the module list.
"""

from __future__ import annotations

import ast
import re
import zipfile
from typing import Literal

import pytest
from conftest import Capability, unavailable

from sglang_platform.facts.sglang import shipped_releases
from sglang_platform.facts.sglang.releases import FACTS, ReleaseFacts, facts
from tools import sglang_flags


def _sources(release: str) -> dict[str, str]:
    wheel = sglang_flags.wheel_for(release)
    if wheel is None:
        unavailable(Capability.SGLANG_WHEELS, f"no sglang {release} wheel in {sglang_flags.CACHE}")
    with zipfile.ZipFile(wheel) as zf:
        return {
            name: zf.read(name).decode("utf-8", "replace")
            for name in zf.namelist()
            if name.startswith("sglang/") and name.endswith(".py")
        }


def _routes(source: str) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """Path -> handler of every ``@app.get/post/api_route(path)`` in an HTTP server module."""
    out = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                if (
                    isinstance(deco, ast.Call)
                    and isinstance(deco.func, ast.Attribute)
                    and isinstance(deco.func.value, ast.Name)
                    and deco.func.value.id == "app"
                    and deco.args
                    and isinstance(deco.args[0], ast.Constant)
                    and isinstance(deco.args[0].value, str)
                ):
                    out[deco.args[0].value] = node
    return out


def _function(sources: dict[str, str], name: str) -> str:
    for path, text in sources.items():
        if f"def {name}(" in text and path.startswith("sglang/srt/"):
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                    return ast.get_source_segment(text, node) or ""
    return ""


def _server_args(sources: dict[str, str]) -> str:
    """ServerArgs' own module plus, from 0.5.x on, the resolution hooks it delegates to."""
    return "\n".join(
        text
        for path, text in sorted(sources.items())
        if path == "sglang/srt/server_args.py" or path.startswith("sglang/srt/arg_groups/")
    )


def derive(release: str) -> ReleaseFacts:
    sources = _sources(release)
    (http,) = [t for p, t in sources.items() if p.endswith("srt/entrypoints/http_server.py")]
    routes = _routes(http)
    health = routes["/health"]
    health_generates = routes.get("/health_generate") is health or "GenerateReqInput" in (
        ast.get_source_segment(http, health) or ""
    )
    auth = _function(sources, "add_api_key_middleware") + _function(sources, "decide_request_auth")
    assert auth, "no API-key middleware found"
    dummy = _function(sources, "launch_dummy_health_check_server")
    assert dummy, "no stand-in health server found"
    args = _server_args(sources)
    dp_is_tp = re.search(r"if self\.enable_dp_attention:\s*\n\s*self\.dp_size = self\.tp_size", args) is not None
    ep_flag = re.search(r'"--enable-ep-moe",\s*\n?\s*action="store_true",\s*\n?\s*help="([^"]*)', args)
    ep_moe_flag: Literal["forces", "selects"] | None
    if ep_flag is None or ep_flag.group(1).startswith("(Deprecated)"):
        ep_moe_flag = None
    elif re.search(r"if self\.enable_ep_moe:\s*\n\s*self\.ep_size = self\.tp_size", args):
        ep_moe_flag = "forces"
    else:
        ep_moe_flag = "selects"
    caps = {int(m) for m in re.findall(r"max_running_requests\s*[=:]\s*(\d+)\b", args)}
    # 0.4.x: `if self.max_running_requests is None: self.max_running_requests = 48` under the EAGLE branch;
    # 0.5.x hooks declare it with the log line "Max running requests is reset to 48 for speculative decoding".
    spec = re.search(r"(?s)speculative_algorithm.{0,400}?max_running_requests\s*[=:]\s*(\d+)", args) or re.search(
        r"Max running requests is reset to (\d+) for speculative decoding", args
    )
    cap = int(spec.group(1)) if spec else None
    assert cap is None or cap in caps
    environ = sources.get("sglang/srt/environ.py", "")
    if "SGLANG_DG_CACHE_DIR = " in environ:
        dg_env: str | None = "SGLANG_DG_CACHE_DIR"
    elif any('"SGL_DG_CACHE_DIR"' in t for t in sources.values()):
        dg_env = "SGL_DG_CACHE_DIR"
    else:
        dg_env = None
    return ReleaseFacts(
        release=release,
        health_generates=health_generates,
        ready_endpoint="/ready" in routes,
        metrics_need_api_key='"/metrics"' not in auth,
        worker_metrics="metrics" in dummy.split("def health", 1)[-1] or "prometheus" in dummy,
        dp_attention_dp_is_tp=dp_is_tp,
        ep_moe_flag=ep_moe_flag,
        speculative_running_cap=cap,
        mtp_draft_from_model="DeepSeek MTP does not require setting speculative_draft_model_path" in args,
        deep_gemm_compile="sglang/compile_deep_gemm.py" in sources,
        deep_gemm_cache_env=dg_env,
    )


def test_every_shipped_table_has_its_facts():
    assert list(FACTS) == list(shipped_releases())


@pytest.mark.parametrize("release", shipped_releases())
def test_facts_are_what_the_wheel_says(release):
    assert derive(release) == FACTS[release]


def test_a_release_without_a_row_behaves_like_its_predecessor():
    assert facts("0.4.9") == FACTS["0.4.7"]
    assert facts("0.5.22").release == "0.5.1"
    assert facts("0.4.2").release == "0.4.3.post2"
