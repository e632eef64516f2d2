"""Every rendered sglang.launch_server command parses under the pinned release, and the wheels behind the tables.

The commands are read from every rendered container and checked against the pinned release's shipped table
(which tests/test_sglang_tables.py proves is what that release's own wheel gives). ``fetch``, which CI runs
before the tests to get those wheels, is tested with a stand-in for pip.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sglang_platform.facts.sglang import check_args, load_table
from tools import harness, sglang_flags, sglang_table


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
    table = load_table(platform.versions.sglang_release)
    assert table is not None, f"stack {name} pins a release without a shipped table"
    commands = launch_commands(result)
    assert commands, f"stack {name} renders no sglang.launch_server command"
    assert {where: p for where, args in commands if (p := check_args(args, table, required=True))} == {}


def test_prod_runs_leader_and_worker_commands(prod):
    assert sorted(where.rsplit("/", 1)[1] for where, _ in launch_commands(prod)) == ["sglang-leader", "sglang-worker"]


def test_shell_wrapped_commands_are_found():
    c = {"command": ["bash", "-c"], "args": ["python3 -m sglang.launch_server --model-path /m --port 1 && sleep 1"]}
    assert sglang_flags.launch_server_args(c) == ["--model-path", "/m", "--port", "1"]
    assert sglang_flags.launch_server_args({"command": ["python3", "-m", "http.server"]}) is None


# ---------------------------------------------------------------------------------------------------------
# fetch: the wheel of every shipped table, robustly (it runs in CI before the tests)
# ---------------------------------------------------------------------------------------------------------

WHEELS = {"0.4.3.post2": b"wheel of 0.4.3.post2", "0.5.23": b"wheel of 0.5.23"}


def wheel_name(release: str) -> str:
    return f"sglang-{release}-py3-none-any.whl"


@pytest.fixture
def shipped(tmp_path, monkeypatch) -> tuple[Path, Path, list[str]]:
    """A tables directory recording two wheels, an empty cache, and a pip stand-in that logs its calls."""
    tables, cache = tmp_path / "tables", tmp_path / "cache"
    tables.mkdir()
    for release, content in WHEELS.items():
        (tmp_path / "w").write_bytes(content)
        record = {"wheel": wheel_name(release), "sha256": sglang_table.sha256(tmp_path / "w")}
        (tables / f"{release}.json").write_text(json.dumps({"source": record}))
    calls: list[str] = []

    def pip(version, dest, name):
        calls.append(version)
        (dest / name).write_bytes(WHEELS[version])

    monkeypatch.setattr(sglang_flags, "_pip_download", pip)
    monkeypatch.setattr(sglang_flags, "RETRY_PAUSE_SECONDS", 0)
    return tables, cache, calls


def test_fetch_gets_every_shipped_wheel_once(shipped):
    tables, cache, calls = shipped
    assert sglang_flags.fetch(cache, tables) == 0
    assert sorted(p.name for p in cache.iterdir()) == [wheel_name(r) for r in WHEELS]
    assert sglang_flags.fetch(cache, tables) == 0
    assert calls == list(WHEELS)  # the second run finds them cached


def test_fetch_also_gets_the_releases_read_without_a_table(shipped, monkeypatch):
    tables, cache, calls = shipped
    read_only = {"0.4.3.post4": b"wheel of 0.4.3.post4"}

    def pip(version, dest, name):
        calls.append(version)
        # no table records the file: pip picks one (name None), whatever its platform tag
        assert name is None or version in WHEELS
        (dest / (name or f"sglang-{version}-cp311-cp311-manylinux_2_28_x86_64.whl")).write_bytes(
            WHEELS.get(version) or read_only[version]
        )

    monkeypatch.setattr(sglang_flags, "_pip_download", pip)
    assert sglang_flags.fetch(cache, tables, also=["0.4.3.post4"]) == 0
    assert calls == [*WHEELS, "0.4.3.post4"]
    assert (
        sglang_flags.wheel_for("0.4.3.post4", cache)
        == cache / "sglang-0.4.3.post4-cp311-cp311-manylinux_2_28_x86_64.whl"
    )
    # the releases read that ship a table are fetched as tables' wheels, the others by release
    assert "0.4.3.post2" not in sglang_flags.read_releases() and "0.4.3.post4" in sglang_flags.read_releases()


def test_fetch_replaces_a_cached_file_that_is_not_the_recorded_wheel(shipped):
    tables, cache, calls = shipped
    assert not calls
    cache.mkdir()
    (cache / wheel_name("0.5.23")).write_bytes(b"half a whe")  # an interrupted download of another tool
    assert sglang_flags.fetch(cache, tables) == 0
    assert (cache / wheel_name("0.5.23")).read_bytes() == WHEELS["0.5.23"]


def test_fetch_retries_and_reports_every_failure_at_the_end(shipped, monkeypatch, capsys):
    tables, cache, _ = shipped
    attempts: list[str] = []

    def flaky(version, dest, name):
        attempts.append(version)
        if version == "0.4.3.post2" and attempts.count(version) == 1:
            raise subprocess.CalledProcessError(1, ["pip"])  # a hiccup: the next attempt works
        if version == "0.5.23":
            (dest / name).write_bytes(b"someone else's wheel")  # never the recorded one
            return
        (dest / name).write_bytes(WHEELS[version])

    monkeypatch.setattr(sglang_flags, "_pip_download", flaky)
    assert sglang_flags.fetch(cache, tables) == 1
    assert attempts == ["0.4.3.post2", "0.4.3.post2"] + ["0.5.23"] * sglang_flags.ATTEMPTS
    assert sorted(p.name for p in cache.iterdir()) == [wheel_name("0.4.3.post2")]  # no scratch left behind
    err = capsys.readouterr().err
    assert "fetch: missing wheels, the table tests will fail:\n  sglang 0.5.23: sglang-0.5.23-py3-none-any.whl" in err
    assert "not the " in err and "its flag table records" in err


def test_list_prints_a_release_from_its_table(capsys):
    assert sglang_flags.main(["list", "0.4.3.post2"]) == 0
    assert "--tensor-parallel-size --tp-size [store]" in capsys.readouterr().out.splitlines()
    assert sglang_flags.main(["list", "0.4.9"]) == 1
    assert "python tools/sglang_flags.py generate 0.4.9" in capsys.readouterr().err
