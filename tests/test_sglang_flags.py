"""Every rendered sglang.launch_server command parses under the pinned release's own argument parser."""

from __future__ import annotations

import pytest
from conftest import unavailable

from tools import harness, sglang_flags


def parser_for(version) -> sglang_flags.Parser:
    try:
        return sglang_flags.load(str(version))
    except FileNotFoundError as missing:
        unavailable(str(missing))
        raise


def launch_commands(result: harness.RunResult) -> list[tuple[str, list[str]]]:
    """(where, flags) of every container running the server, in any object that holds containers."""
    found = []

    def walk(node, path):
        if isinstance(node, dict):
            for c in node.get("containers") or []:
                if isinstance(c, dict) and (args := sglang_flags.launch_server_args(c)) is not None:
                    found.append((f"{path}/{c.get('name')}", args))
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    for obj in harness.kubernetes_objects(result):
        walk(obj, f"{obj['kind']}/{obj['metadata'].get('name')}")
    return found


def test_every_launch_command_parses_under_the_pinned_release(stack):
    name, result, platform = stack
    parser = parser_for(platform.versions.sglang_release)
    commands = launch_commands(result)
    assert commands, f"stack {name} renders no sglang.launch_server command"
    problems = {where: p for where, args in commands if (p := sglang_flags.check(args, parser))}
    assert problems == {}


def test_prod_runs_leader_and_worker_commands(prod):
    assert sorted(where.rsplit("/", 1)[1] for where, _ in launch_commands(prod)) == ["sglang-leader", "sglang-worker"]


@pytest.fixture(scope="module")
def v0432() -> sglang_flags.Parser:
    return parser_for("0.4.3.post2")


def test_the_parser_is_read_from_the_release_itself(v0432):
    strings = v0432.option_strings()
    assert len(v0432.options) == 98
    assert {"--tp-size", "--tensor-parallel-size", "--dist-init-addr", "--nccl-init-addr"} <= set(strings)
    assert "--dist-timeout" not in strings
    kv = v0432.resolve("--kv-cache-dtype")[0]
    assert kv is not None and kv.choices == ("auto", "fp8_e5m2", "fp8_e4m3")


@pytest.mark.parametrize(
    ("args", "problems"),
    [
        (["--model-path", "/m", "--tp", "2"], []),  # unique prefix of --tp-size
        (["--model-path", "/m", "--dist-timeout", "600"], ["--dist-timeout is not an option of SGLang 0.4.3.post2"]),
        (
            ["--model-path", "/m", "--disable-cuda"],
            [
                "--disable-cuda is ambiguous in SGLang 0.4.3.post2 (could be --disable-cuda-graph, "
                "--disable-cuda-graph-padding)"
            ],
        ),
        (
            ["--model-path", "/m", "--kv-cache-dtype", "fp16"],
            ["--kv-cache-dtype 'fp16' is not one of SGLang 0.4.3.post2's choices: auto, fp8_e5m2, fp8_e4m3"],
        ),
        (["--model-path", "/m", "--tp-size"], ["--tp-size needs a value"]),
        (["--model-path", "/m", "--tp-size", "many"], ["--tp-size wants an int, got 'many'"]),
        (
            ["--model-path", "/m", "--enable-metrics=yes"],
            ["--enable-metrics takes no value (got '--enable-metrics=yes')"],
        ),
        (
            ["--model-path", "/m", "--enable-metrics", "yes"],
            ["unrecognized argument 'yes' (no option before it takes a value)"],
        ),
        (["--served-model-name", "x"], ["--model-path is required"]),
        (["--model-path=/m", "--node-rank", "$(LWS_WORKER_INDEX)", "--mem-fraction-static", "0.85"], []),
    ],
)
def test_argparse_rules(v0432, args, problems):
    assert sglang_flags.check(args, v0432) == problems


def test_a_bad_extra_arg_is_caught(v0432):
    result_args = ["--model-path", "/m", "--enable-metrcs"]
    assert sglang_flags.check(result_args, v0432) == ["--enable-metrcs is not an option of SGLang 0.4.3.post2"]


def test_shell_wrapped_commands_are_found():
    c = {"command": ["bash", "-c"], "args": ["python3 -m sglang.launch_server --model-path /m --port 1 && sleep 1"]}
    assert sglang_flags.launch_server_args(c) == ["--model-path", "/m", "--port", "1"]
    assert sglang_flags.launch_server_args({"command": ["python3", "-m", "http.server"]}) is None
