"""argparse's verdict on a launch_server command line, from the shipped flag tables (facts.sglang).

Each rule with its exact message; a property test that the verdict is the one Python's own argparse gives
for a parser built from the same table.
"""

from __future__ import annotations

import argparse
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sglang_platform.facts.sglang import FlagProblem, Table, check_args, load_table

PIN_KEY = "sglang-platform:versions.sglangImage"
# A few of the flags the platform sets (render.server_args.managed_flags, used for real in test_flag_rules.py):
# the flag as the platform writes it -> the key that sets it. The value rules below use other managed flags.
MANAGED: dict[str, str | None] = {
    "--model-path": "model.path",
    "--served-model-name": "model.servedName",
    "--tp-size": "tensorParallel",
    "--enable-metrics": "enableMetrics",
    "--host": None,
}


def table(release: str) -> Table:
    loaded = load_table(release)
    assert loaded is not None, release
    return loaded


REF = table("0.4.3.post2")
NEW = table("0.5.23")


def verdict(args, release="0.4.3.post2", managed=MANAGED, **kw) -> list[tuple[int, str, str]]:
    return [(p.index, p.kind, p.message) for p in check_args(args, table(release), managed, pin_key=PIN_KEY, **kw)]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # The mistakes of issue 11: each refused with one message naming the word and the fix.
        (["--enable-turbo-mode"], [(0, "unknown", "--enable-turbo-mode is not an option of SGLang 0.4.3.post2")]),
        (
            ["--max-running-requests", "lots"],
            [(1, "bad_value", "--max-running-requests wants an int, got 'lots'")],
        ),
        (
            ["--tensor-parallel-size", "8"],
            [
                (
                    0,
                    "managed",
                    "--tensor-parallel-size is an alias of --tp-size, which the platform sets from tensorParallel: "
                    "use that key",
                )
            ],
        ),
        # A typo close to an option gets a suggestion.
        (
            ["--enable-metrcs"],
            [(0, "unknown", "--enable-metrcs is not an option of SGLang 0.4.3.post2 (did you mean --enable-metrics?)")],
        ),
        # argparse's prefix rule: a unique prefix selects its option, several are an error.
        (["--chunked-prefill", "4096"], []),
        (
            ["--disable-cuda"],
            [
                (
                    0,
                    "ambiguous",
                    "--disable-cuda is ambiguous in SGLang 0.4.3.post2: it could be --disable-cuda-graph or "
                    "--disable-cuda-graph-padding; spell the option out",
                )
            ],
        ),
        # Values: type conversion, then choices.
        (["--mem-fraction-static", "most"], [(1, "bad_value", "--mem-fraction-static wants a float, got 'most'")]),
        (
            ["--kv-cache-dtype", "fp16"],
            [
                (
                    1,
                    "bad_value",
                    "--kv-cache-dtype wants one of auto, fp8_e5m2, fp8_e4m3 (SGLang 0.4.3.post2), got 'fp16'",
                )
            ],
        ),
        (
            ["--json-model-override-args", "{x"],
            [],  # type=str in 0.4.3.post2: SGLang parses it later, argparse does not
        ),
        (["--cuda-graph-bs", "1", "2", "x"], [(3, "bad_value", "--cuda-graph-bs wants an int, got 'x'")]),
        (["--random-seed=7"], []),
        (["--random-seed=seven"], [(0, "bad_value", "--random-seed wants an int, got 'seven'")]),
        # Missing and extra values.
        (["--schedule-policy"], [(0, "missing_value", "--schedule-policy needs a value")]),
        (["--cuda-graph-bs"], [(0, "missing_value", "--cuda-graph-bs needs a value")]),
        (
            ["--chat-template", "-x", "--random-seed", "1"],
            [
                (
                    0,
                    "missing_value",
                    "--chat-template needs a value; argparse reads '-x' as an option: write --chat-template=-x",
                )
            ],
        ),
        (
            ["--enable-torch-compile", "yes"],
            [(1, "extra_value", "'yes' follows --enable-torch-compile, which takes no value")],
        ),
        (["--random-seed", "1", "2"], [(2, "extra_value", "'2' follows --random-seed, which takes one value")]),
        (["stray"], [(0, "extra_value", "'stray' is neither an option of SGLang 0.4.3.post2 nor the value of one")]),
        (
            ["--enable-torch-compile=1"],
            [(0, "no_value", "--enable-torch-compile takes no value (got '--enable-torch-compile=1')")],
        ),
        # Negative numbers are values (argparse: no option string looks like one); $(VAR) is Kubernetes'.
        (["--chunked-prefill-size", "-1"], []),
        (["--max-running-requests", "$(MAX_REQUESTS)"], []),
        (["--max-running-requests=$(MAX_REQUESTS)"], []),
        # What would stop the server without an argparse error.
        (["--help"], [(0, "help", "--help prints SGLang's help and exits: remove it")]),
        (["-h"], [(0, "help", "-h prints SGLang's help and exits: remove it")]),
        (
            ["--", "--random-seed", "1"],
            [(0, "positional", "'--' ends the options and SGLang takes no positional arguments")],
        ),
        # One message per unknown option, not one more per value it was given.
        (
            ["--dist-timeout", "600", "--random-seed", "1"],
            [
                (
                    0,
                    "newer",
                    "--dist-timeout needs SGLang 0.4.3.post3 or later; the pinned release is 0.4.3.post2 "
                    "(sglang-platform:versions.sglangImage)",
                )
            ],
        ),
    ],
)
def test_argparse_rules(args, expected):
    assert verdict(args) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--tp-size", "8"], "--tp-size is set by the platform from tensorParallel: use that key"),
        (["--tp-size=8"], "--tp-size is set by the platform from tensorParallel: use that key"),
        (
            ["--tp", "8"],
            "--tp is an abbreviation of --tp-size, which the platform sets from tensorParallel: use that key",
        ),
        (
            ["--tensor", "8"],
            "--tensor is an abbreviation of --tensor-parallel-size, an alias of --tp-size, which the platform sets "
            "from tensorParallel: use that key",
        ),
        (
            ["--model", "/m"],
            "--model is an abbreviation of --model-path, which the platform sets from model.path: use that key",
        ),
        (["--enable-metrics"], "--enable-metrics is set by the platform from enableMetrics: use that key"),
        (["--host", "0.0.0.0"], "--host is set by the platform itself: remove it"),
    ],
)
def test_any_spelling_of_a_managed_flag_is_refused(args, expected):
    assert verdict(args) == [(0, "managed", expected)]


def test_a_word_after_a_refused_managed_flag_is_a_mistake_of_its_own():
    managed = "--tp-size is set by the platform from tensorParallel: use that key"
    assert verdict(["--tp-size=8", "stray"]) == [
        (0, "managed", managed),
        (1, "extra_value", "'stray' follows --tp-size, which takes one value"),
    ]
    assert verdict(["--tp-size", "8", "9", "--random-seed", "1"]) == [
        (0, "managed", managed),
        (2, "extra_value", "'9' follows --tp-size, which takes one value"),
    ]


def test_managed_flags_follow_the_release():
    # 0.5.23 lists --tp-size first and --tensor-parallel-size as its alias; 0.4.3.post2 the other way round.
    assert verdict(["--tensor-parallel-size", "8"], "0.5.23") == [
        (
            0,
            "managed",
            "--tensor-parallel-size is an alias of --tp-size, which the platform sets from tensorParallel: "
            "use that key",
        )
    ]
    # --model is an exact alias in 0.5.23, an abbreviation in 0.4.3.post2.
    assert verdict(["--model", "/m"], "0.5.23") == [
        (0, "managed", "--model is an alias of --model-path, which the platform sets from model.path: use that key")
    ]
    # The --no- form of a BooleanOptionalAction is the same option.
    managed = {"--dcp-replicate-q-proj": "parallel.dcpReplicateQProj"}
    assert verdict(["--no-dcp-replicate-q-proj"], "0.5.23", managed) == [
        (
            0,
            "managed",
            "--no-dcp-replicate-q-proj is the negative form of --dcp-replicate-q-proj, which the platform sets from "
            "parallel.dcpReplicateQProj: use that key",
        )
    ]


def test_a_flag_of_another_release_says_which_release_has_it():
    assert verdict(["--enable-deepep-moe"]) == [
        (
            0,
            "newer",
            "--enable-deepep-moe needs SGLang 0.4.5 or later; the pinned release is 0.4.3.post2 "
            "(sglang-platform:versions.sglangImage)",
        )
    ]
    assert verdict(["--enable-deepep-moe"], "0.5.23") == [
        (
            0,
            "removed",
            "--enable-deepep-moe is not an option of SGLang 0.5.23: 0.5.1 is the last shipped release that has it",
        )
    ]
    assert verdict(["--moe-a2a-backend", "deepep"], "0.5.1") == []
    assert verdict(["--moe-a2a-backend", "deepep"], "0.4.10")[0][2].startswith(
        "--moe-a2a-backend needs SGLang 0.5.1 or"
    )


def test_lenient_where_the_table_cannot_tell():
    # A converter the table does not evaluate (human_readable_int, JSON lists...) accepts any value.
    custom = [o for o in NEW.options if o.type == "custom" and o.takes_value]
    assert custom, "0.5.23 has options with custom converters"
    for option in custom:
        assert check_args([option.name, "anything"], NEW) == [], option.name
    # A value only an environment variable adds is accepted.
    assert check_args(["--sampling-backend", "token_oracle"], NEW) == []


def test_required_options_only_when_asked():
    assert check_args(["--random-seed", "1"], REF) == []
    assert check_args(["--random-seed", "1"], REF, required=True) == [
        FlagProblem(2, "required", "--model-path is required", "--model-path")
    ]


def test_problems_carry_the_index_of_their_word():
    args = ["--random-seed", "1", "--kv-cache-dtype", "fp16", "--enable-turbo-mode", "x", "--tp", "2"]
    assert [(p.index, p.kind, p.flag) for p in check_args(args, REF, MANAGED)] == [
        (3, "bad_value", "--kv-cache-dtype"),
        (4, "unknown", None),
        (6, "managed", "--tensor-parallel-size"),
    ]


# ---------------------------------------------------------------------------------------------------------
# The verdict is argparse's own
# ---------------------------------------------------------------------------------------------------------


class _RefusedError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _RefusedError(message)

    def exit(self, status=0, message=None):
        raise _RefusedError(message or "exit")

    def print_help(self, file=None):
        pass


def argparse_of(t: Table) -> argparse.ArgumentParser:
    """A Python argparse parser with the table's options (custom converters as str: the checker accepts any
    value there, and so does this parser)."""
    parser = _Parser(add_help=False, allow_abbrev=t.allow_abbrev)
    for option in t.options:
        strings = list(option.strings)
        kwargs: dict = {"dest": option.name.lstrip("-").replace("-", "_")}
        if option.action == "boolean_optional":
            strings = [s for s in strings if not (s.startswith("--no-") and "--" + s[5:] in strings)]
            kwargs["action"] = argparse.BooleanOptionalAction
        elif option.action in ("help", "count", "store_true", "store_false"):
            kwargs["action"] = option.action
        elif option.values == (0, 0):
            kwargs.update(action="store_const", const=True)
        else:
            kwargs["action"] = "append" if option.action == "append" else "store"
            kwargs["nargs"] = option.nargs
            kwargs["type"] = {"int": int, "float": float, "json": json.loads}.get(option.type or "str", str)
            if option.type in ("str", "int", "float", None) and option.choices is not None:
                kwargs["choices"] = list(option.choices)
            if option.nargs == "?":
                kwargs["const"] = "c"
        if option.required:
            kwargs["required"] = True
        if option.action == "help":
            kwargs.pop("dest")
        parser.add_argument(*strings, **kwargs)
    return parser


def words(t: Table) -> st.SearchStrategy[str]:
    """Option strings, prefixes of them, values, and ``--opt=value``. Not ``--``: argparse's reading of it
    differs between Python releases (3.11 drops it even from ``--opt=--``), and the checker refuses it
    wherever it is, which no launch command needs."""
    strings = sorted(t.by_string)
    choices = sorted({str(c) for o in t.options for c in (o.choices or ())})
    prefix = st.sampled_from(strings).flatmap(lambda s: st.integers(2, len(s)).map(lambda n: s[:n]))
    values = st.sampled_from(["1", "-1", "0.5", "-.5", "x", "-x", "-", "", "a b", "-a b", "{}", "[1]", *choices])
    with_value = st.tuples(st.one_of(st.sampled_from(strings), prefix), values).map(lambda p: f"{p[0]}={p[1]}")
    return st.one_of(st.sampled_from(strings), prefix, values, with_value)


@pytest.mark.parametrize("release", ["0.4.3.post2", "0.5.23"])
def test_the_verdict_is_what_argparse_decides(release):
    t = table(release)
    parser = argparse_of(t)

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(words(t), max_size=6))
    def agree(args):
        args = ["--model-path", "/m", *args]
        try:
            parser.parse_args(args)
            accepted = True
        except _RefusedError:
            accepted = False
        problems = check_args(args, t, required=True)
        assert accepted == (problems == []), (args, problems)

    agree()


def test_every_message_is_one_printable_line():
    assert verdict(["--foo\nbar", "--=", "--enable-metrics\x1b[31m"]) == [
        (0, "unknown", "--foo\\nbar is not an option of SGLang 0.4.3.post2"),
        (
            1,
            "ambiguous",
            "-- is ambiguous in SGLang 0.4.3.post2: it could be --allow-auto-truncate, --api-key, --attention-backend, "
            "--base-gpu-id, --chat-template, --chunked-prefill-size or 97 other options; spell the option out",
        ),
        (
            2,
            "unknown",
            "--enable-metrics\\x1b[31m is not an option of SGLang 0.4.3.post2 (did you mean --enable-metrics?)",
        ),
    ]
