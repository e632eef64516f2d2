"""Every flag a group gets, checked at preview against the pinned release's table (rules/flags.py).

The issue's mistakes go through a whole program run (what `pulumi preview` and tools/render.py run): each is
refused with exactly one line naming the key and the fix, and nothing is registered.
"""

from __future__ import annotations

import json

import pulumi
import pytest
import yaml
from conftest import ROOT, run_with, stack_values
from packaging.version import Version
from test_render import render

from sglang_platform.components.sglang_group import SglangInferenceGroupArgs, _refuse_invalid
from sglang_platform.config import InferenceGroup
from sglang_platform.facts.sglang import Table, load_table, shipped_releases
from sglang_platform.rules.flags import check_group_flags

# The first release with --dist-timeout (facts/sglang/0.4.3.post3.json).
DIST_TIMEOUT = Version("0.4.3.post3")

PIN = "(sglang-platform:versions.sglangImage)"
GROUP = "sglang-platform:inferenceGroups[0]"


def refusal(mutate, stack: str = "dev") -> list[str]:
    """The problem lines of a run that must be refused before anything is registered."""
    result = run_with(stack, mutate)
    assert result.error is not None, "the run was not refused"
    assert result.resources == []
    header, *lines = result.error.splitlines()
    assert header == f"invalid stack configuration ({len(lines)} problem{'s' if len(lines) != 1 else ''}):"
    return lines


def on_reference(values: dict) -> None:
    """The reference set's SGLang, 0.4.3.post2: the release issue 11's examples are about (dev runs the current
    set's 0.5.23 otherwise)."""
    values["versions"] = {"set": "reference"}


def extra_args(*args: str):
    def mutate(values):
        on_reference(values)
        values["inferenceGroups"][0]["extraArgs"] = list(args)

    return mutate


@pytest.mark.parametrize(
    ("args", "line"),
    [
        # The examples of issue 11 (--max-running-requests, --chunked-prefill-size and --enable-torch-compile
        # have become typed settings since: flags of the same kinds stand in for them).
        (["--enable-turbo-mode"], "extraArgs[0]: --enable-turbo-mode is not an option of SGLang 0.4.3.post2"),
        (["--max-prefill-tokens", "lots"], "extraArgs[1]: --max-prefill-tokens wants an int, got 'lots'"),
        (
            ["--tensor-parallel-size", "8"],
            "extraArgs[0]: --tensor-parallel-size is an alias of --tp-size, which the platform sets from "
            "tensorParallel: use that key",
        ),
        # A missing value, an extra value (as a word and after '='), a value outside the choices.
        (["--max-prefill-tokens"], "extraArgs[0]: --max-prefill-tokens needs a value"),
        (
            ["--max-prefill-tokens", "--disable-radix-cache"],
            "extraArgs[0]: --max-prefill-tokens needs a value",
        ),
        (["--disable-radix-cache", "yes"], "extraArgs[1]: 'yes' follows --disable-radix-cache, which takes no value"),
        (
            ["--disable-radix-cache=yes"],
            "extraArgs[0]: --disable-radix-cache takes no value (got '--disable-radix-cache=yes')",
        ),
        (
            ["--attention-backend", "fa3"],
            "extraArgs[1]: --attention-backend wants one of flashinfer, triton, torch_native (SGLang 0.4.3.post2), "
            "got 'fa3'",
        ),
        # argparse's prefix rule: ambiguous, and a unique prefix of a flag the platform sets.
        (
            ["--disable-cuda"],
            "extraArgs[0]: --disable-cuda is ambiguous in SGLang 0.4.3.post2: it could be --disable-cuda-graph or "
            "--disable-cuda-graph-padding; spell the option out",
        ),
        (
            ["--tp", "2"],
            "extraArgs[0]: --tp is an abbreviation of --tp-size, which the platform sets from tensorParallel: "
            "use that key",
        ),
        (
            ["--api-key", "sk-1"],
            "extraArgs[0]: --api-key is set by the platform from sglang-platform:apiKey: use that key",
        ),
        (["--host", "::"], "extraArgs[0]: --host is set by the platform itself: remove it"),
        # A flag of a newer release says which shipped release adds it.
        (
            ["--enable-deepep-moe"],
            f"extraArgs[0]: --enable-deepep-moe needs SGLang 0.4.5 or later; the pinned release is 0.4.3.post2 {PIN}",
        ),
    ],
)
def test_each_mistake_in_extra_args_is_one_line_naming_the_key(args, line):
    assert refusal(extra_args(*args)) == [f"  - {GROUP}.{line}"]


def test_each_word_is_named_by_its_own_index():
    good = ["--max-prefill-tokens", "4096"]
    assert refusal(extra_args(*good, "--schedule-conservativeness", "lots", *good, "--enable-turbo-mode")) == [
        f"  - {GROUP}.extraArgs[3]: --schedule-conservativeness wants a float, got 'lots'",
        f"  - {GROUP}.extraArgs[6]: --enable-turbo-mode is not an option of SGLang 0.4.3.post2",
    ]


def test_good_extra_args_pass_and_reach_the_pods():
    result = run_with("dev", extra_args("--max-prefill", "4096", "--schedule-policy", "fcfs"))
    assert result.error is None
    (lws,) = [r for r in result.resources if r.type == "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"]
    args = lws.inputs["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["args"]
    assert args[-4:] == ["--max-prefill", "4096", "--schedule-policy", "fcfs"]


def test_a_typed_setting_newer_than_the_pin_is_refused_on_its_key():
    def dist_timeout(values):
        on_reference(values)
        values["inferenceGroups"][0]["distTimeoutSeconds"] = 600

    assert refusal(dist_timeout) == [
        f"  - {GROUP}.distTimeoutSeconds: --dist-timeout needs SGLang 0.4.3.post3 or later; the pinned release "
        f"is 0.4.3.post2 {PIN}"
    ]


def test_a_release_without_a_table_is_refused_with_the_command_that_generates_it():
    def pin(versions):
        def mutate(values):
            values["versions"] = versions

        return mutate

    message = (
        "no flag table for SGLang 0.4.9 is shipped: run `python tools/sglang_flags.py generate 0.4.9` and commit "
        "facts/sglang/0.4.9.json"
    )
    assert refusal(pin({"sglangImage": "lmsysorg/sglang:v0.4.9-cu124"})) == [
        f"  - sglang-platform:versions.sglangImage: {message}"
    ]
    digest = "lmsysorg/sglang@sha256:" + "c" * 64
    assert refusal(pin({"sglangImage": digest, "sglangVersion": "0.4.9"})) == [
        f"  - sglang-platform:versions.sglangVersion: {message}"
    ]


def test_a_version_that_contradicts_the_image_tag_is_refused():
    """sglangVersion and gatewayVersion are for digests and tags that name no release: next to a tag that names
    one they are refused, not obeyed (the flags and probes would follow the wrong release)."""

    def contradict(values):
        values["versions"] = {
            "sglangImage": "lmsysorg/sglang:v0.5.23-cu130",
            "sglangVersion": "0.4.4",
            "gatewayImage": "lmsysorg/sgl-model-gateway:v0.3.2",
            "gatewayVersion": "0.2.4",
        }

    assert refusal(contradict) == [
        "  - sglang-platform:versions.gatewayVersion: 0.2.4 contradicts versions.gatewayImage "
        "'lmsysorg/sgl-model-gateway:v0.3.2', whose tag names 0.3.2: remove versions.gatewayVersion (it is only "
        "for digests and tags that name no release)",
        "  - sglang-platform:versions.sglangVersion: 0.4.4 contradicts versions.sglangImage "
        "'lmsysorg/sglang:v0.5.23-cu130', whose tag names 0.5.23: remove versions.sglangVersion (it is only for "
        "digests and tags that name no release)",
    ]

    def agree(values):
        values["versions"] = {"sglangImage": "lmsysorg/sglang:v0.4.3.post2-cu124", "sglangVersion": "v0.4.3.post2"}

    result = run_with("dev", agree)
    assert result.error is None, result.error


def test_the_component_refuses_a_version_that_contradicts_its_image_tag():
    image = "lmsysorg/sglang:v0.4.3.post2-cu124"
    assert component_refusal(image, "0.5.23") == (
        "SglangInferenceGroup 'team-r1': invalid config (1 problem):\n"
        "  - sglang_version: 0.5.23 contradicts image 'lmsysorg/sglang:v0.4.3.post2-cu124', whose tag names "
        "0.4.3.post2: remove sglang_version (it is only for digests and tags that name no release)"
    )
    assert component_refusal(image, "0.4.3.post2") is None


def test_render_refuses_the_same_way_and_writes_nothing(tmp_path):
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    stack["config"]["sglang-platform:inferenceGroups"][0]["extraArgs"] = ["--enable-turbo-mode"]
    bad = tmp_path / "Pulumi.turbo.yaml"
    bad.write_text(yaml.safe_dump(stack))
    out = tmp_path / "out"
    proc = render("--stack-file", str(bad), "--out", str(out))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[:2] == [
        "error: Pulumi.turbo.yaml: invalid stack configuration (1 problem):",
        f"  - {GROUP}.extraArgs[0]: --enable-turbo-mode is not an option of SGLang 0.5.23",
    ]
    assert not out.exists()


@pytest.mark.parametrize("release", shipped_releases())
def test_the_typed_settings_of_the_shipped_stacks_parse_under_every_shipped_release(release):
    """Every flag the platform emits for the shipped stacks exists, with the values it writes, in each release
    it ships a table for; only prod's distTimeoutSeconds needs 0.4.3.post3 (the other rules of a stack, such as
    its quantization against the release, are tested on their own)."""
    table = load_table(Version(release))
    assert table is not None
    for stack in ("dev", "prod"):
        for raw in stack_values(stack)["inferenceGroups"]:
            problems = check_group_flags(InferenceGroup.model_validate(raw), table, release_key="image")
            expected = ["distTimeoutSeconds"] if "distTimeoutSeconds" in raw and Version(release) < DIST_TIMEOUT else []
            assert [".".join(map(str, p.loc)) for p in problems] == expected, (stack, problems)


def test_a_typed_value_the_release_refuses_is_reported_on_its_key():
    data = json.loads((ROOT / "facts" / "sglang" / "0.4.3.post2.json").read_text())
    for option in data["options"]:
        if option["name"] == "--kv-cache-dtype":
            option["choices"] = ["auto"]
    table = Table(data)
    prod = {k: v for k, v in stack_values("prod")["inferenceGroups"][0].items() if k != "distTimeoutSeconds"}
    group = InferenceGroup.model_validate({**prod, "kvCacheDtype": "fp8_e4m3"})
    problems = check_group_flags(group, table, release_key="image")
    assert [(p.loc, p.message) for p in problems] == [
        (("kvCacheDtype",), "--kv-cache-dtype wants one of auto (SGLang 0.4.3.post2), got 'fp8_e4m3'")
    ]


# ---------------------------------------------------------------------------------------------------------
# A team's own program: the component runs the same checks when it can tell the release
# ---------------------------------------------------------------------------------------------------------

TEAM_GROUP = {
    "name": "r1-distill",
    "model": {"path": "m", "servedName": "r1-distill"},
    "modelVolume": {"type": "pvc", "claimName": "team-models"},
    "gpusPerNode": 1,
    "resources": {"cpu": "8", "memory": "64Gi", "shmSize": "8Gi"},
}


def component_refusal(image, sglang_version: str | None = None, **group) -> str | None:
    g = InferenceGroup.model_validate({**TEAM_GROUP, **group})
    args = SglangInferenceGroupArgs(config=g, namespace="team-a", image=image, sglang_version=sglang_version)
    try:
        _refuse_invalid("team-r1", g, args)
    except ValueError as refused:
        return str(refused)
    return None


def test_the_component_checks_flags_against_its_image_tag():
    image = "lmsysorg/sglang:v0.4.3.post2-cu124"
    assert component_refusal(image, extraArgs=["--schedule-policy", "fcfs"]) is None
    assert component_refusal(image, extraArgs=["--enable-turbo-mode"], distTimeoutSeconds=600) == (
        "SglangInferenceGroup 'team-r1': invalid config (2 problems):\n"
        "  - distTimeoutSeconds: --dist-timeout needs SGLang 0.4.3.post3 or later; the pinned release is "
        "0.4.3.post2 (image)\n"
        "  - extraArgs[0]: --enable-turbo-mode is not an option of SGLang 0.4.3.post2"
    )


def test_the_component_refuses_a_release_without_a_table_like_a_stack():
    assert component_refusal("lmsysorg/sglang:v0.4.9-cu124") == (
        "SglangInferenceGroup 'team-r1': invalid config (1 problem):\n"
        "  - image: no flag table for SGLang 0.4.9 is shipped: run `python tools/sglang_flags.py generate 0.4.9` "
        "and commit facts/sglang/0.4.9.json"
    )
    digest = "lmsysorg/sglang@sha256:" + "d" * 64
    assert component_refusal(digest, "0.4.3.post2", extraArgs=["--tp", "1"]) == (
        "SglangInferenceGroup 'team-r1': invalid config (1 problem):\n"
        "  - extraArgs[0]: --tp is an abbreviation of --tp-size, which the platform sets from tensorParallel: use "
        "that key"
    )
    assert component_refusal(digest, "zero.four") == (
        "SglangInferenceGroup 'team-r1': invalid config (1 problem):\n"
        "  - sglang_version: 'zero.four' is not an SGLang release (e.g. 0.4.3.post2)"
    )


def test_the_component_cannot_check_flags_when_it_cannot_tell_the_release():
    # An image that is another resource's output, or a digest, without sglang_version: the rules that need
    # no release still apply.
    unknown = ["--enable-turbo-mode"]
    assert component_refusal("lmsysorg/sglang@sha256:" + "e" * 64, extraArgs=unknown) is None
    assert component_refusal(pulumi.Output.from_input("lmsysorg/sglang:v0.4.9-cu124"), extraArgs=unknown) is None
