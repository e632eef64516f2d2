"""The shipped flag tables (facts/sglang/*.json) and the generator that writes them from a release's wheel.

Each shipped table must be exactly what ``python tools/sglang_flags.py generate`` writes from the wheel it
names (that test needs the wheels: ``python tools/sglang_flags.py fetch``; it skips without them and fails
under CI=true). The generator's rules are also tested on small wheels built here, where the parser the
static reader describes can be built for real and compared.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, Capability, unavailable
from packaging.version import Version

from sglang_platform.facts.sglang import (
    first_release_with,
    load_table,
    missing_table_message,
    releases_with,
    shipped_releases,
)
from tools import sglang_flags, sglang_table

TABLES = ROOT / "facts" / "sglang"
SHIPPED = sorted(p.stem for p in TABLES.glob("*.json"))


# ---------------------------------------------------------------------------------------------------------
# Shipped tables against their wheels
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("release", SHIPPED)
def test_each_shipped_table_is_what_generate_writes_from_its_wheel(release):
    shipped = (TABLES / f"{release}.json").read_text()
    source = json.loads(shipped)["source"]
    wheel = sglang_flags.CACHE / source["wheel"]
    if not wheel.exists():
        unavailable(Capability.SGLANG_WHEELS, f"{wheel.name} is not in {sglang_flags.CACHE}")
    assert sglang_table.sha256(wheel) == source["sha256"], f"{wheel} is not the wheel the table was generated from"
    generated = sglang_table.dumps(sglang_table.build_table(wheel, release))
    if generated != shipped:
        diff = "\n".join(difflib.unified_diff(shipped.splitlines(), generated.splitlines(), "shipped", "wheel", n=0))
        pytest.fail(
            f"facts/sglang/{release}.json is not what its wheel gives; run "
            f"`python tools/sglang_flags.py generate {release}`:\n{diff[:4000]}"
        )


def test_the_program_ships_the_reference_the_newest_and_every_pinned_release():
    from sglang_platform.config import Versions

    pinned = {str(r) for r in [Versions().sglang_release] if r is not None}
    assert {"0.4.3.post2", "0.5.23"} | pinned <= set(shipped_releases())
    # in release order (0.4.10 after 0.4.7), which the files' names do not sort to
    assert list(shipped_releases()) == sorted(SHIPPED, key=Version)
    assert SHIPPED != sorted(SHIPPED, key=Version)
    assert shipped_releases()[0] == "0.4.3.post2" and shipped_releases()[-1] == "0.5.23"


def test_tables_are_read_by_release_in_any_spelling():
    table = load_table("v0.4.3-post2")
    assert table is not None and table.release == "0.4.3.post2"
    assert load_table("0.4.9") is None
    assert load_table("not-a-version") is None
    assert missing_table_message("0.4.9") == (
        "no flag table for SGLang 0.4.9 is shipped: run `python tools/sglang_flags.py generate 0.4.9` "
        "and commit facts/sglang/0.4.9.json"
    )


def test_the_reference_table_reads_its_parser():
    table = load_table("0.4.3.post2")
    assert table is not None
    assert len(table.options) == 99  # 98 add_argument calls and argparse's own -h/--help
    tp = table.option("--tp-size")
    assert tp is not None and tp.strings == ("--tensor-parallel-size", "--tp-size") and tp.type == "int"
    kv = table.option("--kv-cache-dtype")
    assert kv is not None and kv.choices == ("auto", "fp8_e5m2", "fp8_e4m3")
    model = table.option("--model-path")
    assert model is not None and model.required
    assert table.option("--dist-timeout") is None


def test_the_newest_table_reads_the_record_fields_of_0_5_2x():
    table = load_table("0.5.23")
    assert table is not None
    assert len(table.options) == 532
    tp = table.option("--tp-size")
    assert tp is not None and tp.strings == ("--tp-size", "--tensor-parallel-size") and tp.type == "int"
    # Optional[bool] with argparse.BooleanOptionalAction: the --no- form is an option string too.
    q_proj = table.option("--no-dcp-replicate-q-proj")
    assert q_proj is not None and q_proj.action == "boolean_optional" and q_proj.values == (0, 0)
    # choices=Backend.ALL (a class constant of another module) with an identity-or-raise type callable.
    backend = table.option("--cuda-graph-backend-decode")
    assert backend is not None and backend.choices == ("full", "breakable", "disabled") and backend.type == "str"
    # choices built at add_cli_args time from another module's registry names, behind a function.
    reasoning = table.option("--reasoning-parser")
    assert reasoning is not None and reasoning.choices is not None and {"auto", "deepseek-r1"} <= set(reasoning.choices)
    # [m.name.lower() for m in RealKvHashMode] over an IntEnum of the kernels package.
    canary = table.option("--kv-canary-real-data")
    assert canary is not None and canary.choices == ("none", "partial", "all")
    # A custom action with action_kwargs nargs='*'; a deprecated store-const taking one value of choices.
    lora = table.option("--lora-paths")
    assert lora is not None and lora.action == "custom" and lora.nargs == "*"
    mono = table.option("--monokernel-backend")
    assert mono is not None and mono.action_class == "DeprecatedStoreConstAction" and mono.choices == ("amd",)
    assert all(not o.unresolved for o in table.options)


# DESIGN.md, "SGLang today": the first release with a flag, from the wheels. The tables start at 0.4.3.post2,
# so an older flag's first shipped release is 0.4.3.post2; --dist-timeout and --reasoning-parser are in
# 0.4.3.post3 already (DESIGN says 0.4.4: it did not look at the post releases).
FIRST_RELEASE = {
    "--enable-dp-attention": "0.4.3.post2",
    "--dp-size": "0.4.3.post2",
    "--ep-size": "0.4.3.post2",
    "--enable-hierarchical-cache": "0.4.3.post2",
    "--dist-timeout": "0.4.3.post3",
    "--reasoning-parser": "0.4.3.post3",
    "--enable-deepep-moe": "0.4.5",
    "--deepep-mode": "0.4.5",
    "--disaggregation-mode": "0.4.5",
    "--disaggregation-bootstrap-port": "0.4.5",
    "--disaggregation-ib-device": "0.4.6",
    "--disaggregation-transfer-backend": "0.4.6",
    "--moe-dense-tp-size": "0.4.6",
    "--enable-eplb": "0.4.7",
    "--enable-two-batch-overlap": "0.4.7",
    "--enable-dp-lm-head": "0.4.7",
    "--enable-metrics-for-all-schedulers": "0.4.10",
    "--moe-a2a-backend": "0.5.1",
}


@pytest.mark.parametrize(("flag", "release"), sorted(FIRST_RELEASE.items()))
def test_first_release_with_a_flag_comes_from_the_shipped_tables(flag, release):
    assert first_release_with(flag) == release


def test_first_release_accepting_a_value():
    assert first_release_with("--speculative-algorithm", "EAGLE") == "0.4.3.post2"
    assert first_release_with("--speculative-algorithm", "EAGLE3") == "0.4.5"
    assert first_release_with("--kv-cache-dtype", "fp8_e4m3") == "0.4.3.post2"
    assert first_release_with("--kv-cache-dtype", "bf16") is not None
    assert first_release_with("--enable-turbo-mode") is None
    # Removed flags: --enable-deepep-moe is gone by 0.5.23 (replaced by --moe-a2a-backend deepep).
    assert releases_with("--enable-deepep-moe")[-1] == "0.5.1"


def test_tag_options_select_the_recorded_wheel_on_any_host():
    running = f"{sys.version_info.major}.{sys.version_info.minor}"  # "3" would be Python 3.0 to pip
    assert sglang_flags._tag_options("sglang-0.4.3.post2-py3-none-any.whl") == [
        "--platform", "any", "--python-version", running, "--implementation", "py", "--abi", "none",
    ]  # fmt: skip
    assert sglang_flags._tag_options("sglang-0.5.23-cp311-cp311-manylinux_2_34_x86_64.whl") == [
        "--platform", "manylinux_2_34_x86_64", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# The generator on small wheels
# ---------------------------------------------------------------------------------------------------------

CLASSIC = {
    "sglang/__init__.py": "",
    "sglang/srt/__init__.py": "",
    "sglang/srt/choices.py": """
        BACKENDS = ["triton", "flashinfer"]


        class Parser:
            Map = {"r1": object, "qwen": object}
    """,
    "sglang/srt/utils.py": """
        def nullable_str(value):
            if not value or value == "None":
                return None
            return value


        def human_int(value):
            return int(float(value[:-1]) * 1000) if value.endswith("k") else int(value)


        def same(value):
            if value == "retired":
                raise ValueError(value)
            return value
    """,
    "sglang/srt/server_args.py": """
        import argparse
        import dataclasses
        import json
        import os
        from enum import Enum

        from sglang.srt.choices import BACKENDS, Parser
        from sglang.srt.utils import human_int, nullable_str, same


        class Mode(Enum):
            FAST = 1
            SLOW = 2


        class QuietAction(argparse.Action):
            def __init__(self, option_strings, dest, nargs=0, **kwargs):
                super().__init__(option_strings, dest, nargs=nargs, **kwargs)

            def __call__(self, parser, namespace, values, option_string=None):
                pass


        def add_deprecated(parser):
            parser.add_argument("--legacy", action="store_true", help=argparse.SUPPRESS)


        def registry_names():
            return [n.lower() for n in dir(Mode) if not n.startswith("_")]


        @dataclasses.dataclass
        class ServerArgs:
            model_path: str
            port: int = 30000
            ratio: float = 0.5

            @staticmethod
            def add_cli_args(parser: argparse.ArgumentParser):
                parser.add_argument("--model-path", "--model", type=str, required=True)
                parser.add_argument("--port", type=int, default=ServerArgs.port)
                parser.add_argument("--ratio", type=float, default=ServerArgs.ratio)
                parser.add_argument("--backend", choices=BACKENDS + ["extra"])
                parser.add_argument("--parser", choices=list(Parser.Map.keys()))
                parser.add_argument("--mode", choices=[m.name.lower() for m in Mode])
                parser.add_argument("--json-args", type=json.loads)
                parser.add_argument("--name", type=nullable_str)
                parser.add_argument("--size", type=human_int)
                parser.add_argument("--same", type=same, choices=["x", "y"])
                parser.add_argument("--flag", action="store_true")
                parser.add_argument("--toggle", action=argparse.BooleanOptionalAction)
                parser.add_argument("--quiet", action=QuietAction)
                parser.add_argument("--bs", type=int, nargs="+")
                parser.add_argument("--opt", nargs="?", const="c")
                parser.add_argument("--dyn", choices=sorted(dir(Mode)))
                extra = ["p"]
                if os.environ.get("SGLANG_TEST_EXTRA"):
                    extra.append("q")
                parser.add_argument("--cond", choices=extra)
                add_deprecated(parser)
                for name in ["alpha", "beta"]:
                    parser.add_argument(f"--{name}-size", type=int)


        def prepare_server_args(argv):
            parser = argparse.ArgumentParser()
            ServerArgs.add_cli_args(parser)
            return parser.parse_args(argv)
    """,
}


def make_wheel(tmp_path: Path, files: dict[str, str], name: str = "sglang-9.9.9-py3-none-any.whl") -> Path:
    wheel = tmp_path / name
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, source in files.items():
            archive.writestr(path, textwrap.dedent(source).lstrip())
    return wheel


def options_by_name(table: dict) -> dict[str, dict]:
    return {o["name"]: o for o in table["options"]}


def test_generator_reads_hand_written_add_argument_calls(tmp_path):
    table = sglang_table.build_table(make_wheel(tmp_path, CLASSIC), "9.9.9")
    got = options_by_name(table)
    assert table["release"] == "9.9.9" and table["source"]["wheel"] == "sglang-9.9.9-py3-none-any.whl"
    assert table["source"]["files"] == ["sglang/srt/choices.py", "sglang/srt/server_args.py", "sglang/srt/utils.py"]
    assert got["--model-path"] == {
        "action": "store", "choices": None, "name": "--model-path", "nargs": None, "required": True,
        "strings": ["--model-path", "--model"], "type": "str",
    }  # fmt: skip
    assert got["--port"]["type"] == "int" and got["--port"]["default"] == 30000
    assert got["--ratio"]["type"] == "float" and got["--ratio"]["default"] == 0.5
    assert got["--backend"]["choices"] == ["triton", "flashinfer", "extra"]  # a constant of another module + [x]
    assert got["--parser"]["choices"] == ["r1", "qwen"]  # list(Class.DictAttr.keys()) across modules
    assert got["--mode"]["choices"] == ["fast", "slow"]  # a comprehension over an Enum
    assert got["--json-args"]["type"] == "json"
    assert (got["--name"]["type"], got["--name"]["type_name"]) == ("custom", "nullable_str")  # changes the value
    assert (got["--size"]["type"], got["--size"]["type_name"]) == ("custom", "human_int")
    assert (got["--same"]["type"], got["--same"]["type_name"]) == ("str", "same")  # returns its argument or raises
    assert got["--flag"] == {"action": "store_true", "name": "--flag", "nargs": 0, "strings": ["--flag"]}
    assert got["--toggle"]["strings"] == ["--toggle", "--no-toggle"] and got["--toggle"]["nargs"] == 0
    assert got["--quiet"]["action"] == "custom" and got["--quiet"]["action_class"] == "QuietAction"
    assert got["--quiet"]["nargs"] == 0  # the default of its __init__'s nargs
    assert got["--bs"]["nargs"] == "+" and got["--bs"]["type"] == "int"
    assert got["--opt"]["nargs"] == "?"
    # dir() is not evaluated statically: recorded as unresolved, checked leniently.
    assert got["--dyn"]["choices"] is None and got["--dyn"]["unresolved"] == [
        "choices=sorted(dir(Mode)): dir is not defined in sglang.srt.server_args"
    ]
    # A value added under a condition is in the table (accepted), and the condition is noted.
    assert got["--cond"]["choices"] == ["p", "q"]
    assert table["notes"] == ["extra gains 'q' only when os.environ.get('SGLANG_TEST_EXTRA')"]
    assert "--legacy" in got  # added by a helper that receives the parser
    assert {"--alpha-size", "--beta-size"} <= set(got)  # a loop with an f-string
    assert got["--help"]["strings"] == ["-h", "--help"]  # argparse's own


def real_parser(tmp_path: Path, files: dict[str, str]) -> argparse.ArgumentParser:
    """The parser the small wheel really builds (it imports nothing heavy)."""
    root = tmp_path / "src"
    for path, source in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(textwrap.dedent(source).lstrip())
    saved = {k: v for k, v in sys.modules.items() if k == "sglang" or k.startswith("sglang.")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("sglang.srt.server_args")
        parser = argparse.ArgumentParser()
        module.ServerArgs.add_cli_args(parser)
        return parser
    finally:
        sys.path.remove(str(root))
        for name in [k for k in sys.modules if k == "sglang" or k.startswith("sglang.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def test_generator_agrees_with_the_parser_the_wheel_builds(tmp_path):
    table = options_by_name(sglang_table.build_table(make_wheel(tmp_path, CLASSIC), "9.9.9"))
    parser = real_parser(tmp_path, CLASSIC)
    assert {a.option_strings[-1] for a in parser._actions} == {o["strings"][-1] for o in table.values()}
    for action in parser._actions:
        option = next(o for o in table.values() if o["strings"] == list(action.option_strings))
        assert option["nargs"] == action.nargs, option["name"]
        assert option.get("required", False) == action.required, option["name"]
        if option.get("choices") is not None and option["name"] != "--cond":
            assert option["choices"] == list(action.choices or ()), option["name"]


def test_generator_reads_record_fields_like_add_cli_args_from_dataclass(tmp_path):
    files = {
        "sglang/__init__.py": "",
        "sglang/srt/__init__.py": "",
        "sglang/srt/arg_groups/__init__.py": "",
        "sglang/srt/arg_groups/arg_utils.py": """
            from typing import Annotated
            A = Annotated


            class Arg:
                pass


            def add_cli_args_from_dataclass(parser, cls, *, fields=None):
                pass
        """,
        "sglang/srt/arg_groups/choices.py": """
            LOAD_FORMAT_CHOICES = ["auto", "pt"]
        """,
        "sglang/srt/arg_groups/fields.py": """
            from __future__ import annotations

            import argparse
            from typing import List, Literal, Optional

            import msgspec

            from sglang.srt.arg_groups.arg_utils import A, Arg
            from sglang.srt.arg_groups.choices import LOAD_FORMAT_CHOICES


            class Parallel(msgspec.Struct):
                _NS_PATH = "parallel"
                tp_size: A[int, Arg(help="TP.", aliases=["--tensor-parallel-size"])] = 1
                dist_timeout: A[Optional[int], "Timeout."] = None
                mode: A[Literal["null", "prefill", "decode"], "Mode."] = "null"
                page: A[Optional[Literal[1, 2]], "Page."] = None
                bs: A[Optional[List[int]], "Batch sizes."] = None
                paths: A[List[str], Arg(help="Paths.", nargs="*")] = []
                fmt: A[str, Arg(help="Format.", choices=LOAD_FORMAT_CHOICES)] = "auto"
                metrics: A[bool, "Metrics."] = False
                fuse: A[Optional[bool], Arg(help="Fuse.", action=argparse.BooleanOptionalAction)] = None
                model_path: A[str, Arg(help="Model.", aliases=["--model"])]
                hidden: A[bool, Arg(no_cli=True)] = False
                internal: int = 0
                gemm: A[str, Arg(help="GEMM.", cli_name="--gemm-backend")] = "auto"
        """,
        "sglang/srt/server_args.py": """
            import argparse

            import msgspec

            from sglang.srt.arg_groups.arg_utils import add_cli_args_from_dataclass
            from sglang.srt.arg_groups.fields import Parallel


            class ServerArgs:
                @staticmethod
                def add_cli_args(parser: argparse.ArgumentParser):
                    add_cli_args_from_dataclass(parser, ServerArgs)
                    parser.add_argument("--config", type=str)


            _INPUT_NAMESPACES = [Parallel]
            ServerArgs = msgspec.defstruct("ServerArgs", [])


            def prepare_server_args(argv):
                parser = argparse.ArgumentParser(prog="sglang serve")
                ServerArgs.add_cli_args(parser)
                return parser.parse_args(argv)
        """,
    }
    got = options_by_name(sglang_table.build_table(make_wheel(tmp_path, files), "9.9.9"))
    assert got["--tp-size"]["strings"] == ["--tp-size", "--tensor-parallel-size"] and got["--tp-size"]["type"] == "int"
    assert got["--dist-timeout"]["type"] == "int" and got["--dist-timeout"]["default"] is None
    assert got["--mode"]["choices"] == ["null", "prefill", "decode"] and got["--mode"]["type"] == "str"
    assert got["--page"]["choices"] == [1, 2] and got["--page"]["type"] == "int"  # Optional[Literal[ints]]
    assert (got["--bs"]["nargs"], got["--bs"]["type"]) == ("+", "int")  # Optional[List[int]]
    assert got["--paths"]["nargs"] == "*"
    assert got["--fmt"]["choices"] == ["auto", "pt"]
    assert got["--metrics"]["action"] == "store_true"
    assert got["--fuse"]["strings"] == ["--fuse", "--no-fuse"]
    assert got["--model-path"]["required"] is True  # no default
    assert got["--gemm-backend"]["strings"] == ["--gemm-backend"]
    assert "--hidden" not in got and "--internal" not in got  # no_cli, and no Arg metadata
    assert "--config" in got


def test_generator_refuses_what_it_cannot_follow(tmp_path):
    files = dict(CLASSIC)
    files["sglang/srt/server_args.py"] = """
        import argparse

        from somewhere_else import add_more


        class ServerArgs:
            @staticmethod
            def add_cli_args(parser):
                parser.add_argument("--port", type=int)
                add_more(parser)
    """
    with pytest.raises(ValueError, match="the parser is passed to add_more, which the reader cannot follow"):
        sglang_table.build_table(make_wheel(tmp_path, files), "9.9.9")
