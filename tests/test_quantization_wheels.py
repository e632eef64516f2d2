"""The facts in facts/quantization.py, re-read from SGLang's own wheels.

For every release in RELEASES_READ that has a shipped flag table (``tools/sglang_flags.py fetch`` caches
those wheels in ``.cache/sglang-wheels/``, as CI does), and every other release read whose wheel is cached
here (``pip download --no-deps --dest .cache/sglang-wheels sglang==X``): which quantization methods
QUANTIZATION_METHODS registers, each config class's get_min_capability(), and the release boundaries the rules
depend on (MoE support of w8a8_int8, the Marlin fallback of FP8 linear layers, MLA on Triton). No network.
"""

from __future__ import annotations

import ast
import re
import zipfile

import pytest
from conftest import Capability, unavailable

from sglang_platform.facts import quantization as q
from tools import sglang_flags

QUANT_DIR = "sglang/srt/layers/quantization/"
CLASSES = {
    "fp8": "Fp8Config",
    "blockwise_int8": "BlockInt8Config",
    "w8a8_int8": "W8A8Int8Config",
    "w8a8_fp8": "W8A8Fp8Config",
    "modelopt": "ModelOptFp8Config",
    "modelopt_fp4": "ModelOptFp4Config",
    "awq": "AWQConfig",
    "gptq": "GPTQConfig",
    "compressed-tensors": "CompressedTensorsConfig",
    "mxfp4": "Mxfp4Config",
}


SHIPPED = set(sglang_flags.shipped_wheels())
# Every release the facts were read from: `python tools/sglang_flags.py fetch` gets each one's wheel (the shipped
# tables' and the others), and a missing one is a skip that says so (a failure in CI), never a release quietly
# left out.
CHECKED = list(q.RELEASES_READ)


def test_the_releases_ci_fetches_cover_the_boundaries():
    """Each boundary of the rules has a shipped (CI-fetched) release on its present side."""
    for since in (q.W8A8_INT8_MOE, q.FP8_DENSE_MARLIN, *(m.since for m in q.METHODS.values())):
        assert str(since.present_from) in SHIPPED or since.present_from == q.RELEASES_READ[0], since


def sources(version) -> dict[str, str]:
    wheel = sglang_flags.wheel_for(str(version))
    if wheel is None:
        unavailable(Capability.SGLANG_WHEELS, f"no sglang {version} wheel in {sglang_flags.CACHE}")
        raise AssertionError("unreachable")
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: archive.read(name).decode("utf-8")
            for name in archive.namelist()
            if name.startswith(QUANT_DIR) and name.endswith(".py")
        }


def sources_of(version, name: str) -> str:
    wheel = sglang_flags.wheel_for(str(version))
    assert wheel is not None
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name).decode("utf-8") if name in archive.namelist() else ""


def registered(files: dict[str, str]) -> set[str]:
    init = files[QUANT_DIR + "__init__.py"]
    return set(re.findall(r'^\s+"([a-z0-9_\-]+)":\s*\w+,', init, re.M))


def min_capability(files: dict[str, str], cls: str) -> int | None:
    """The value get_min_capability() returns on CUDA: the last return in the method (the CUDA path comes
    after the NPU/MUSA/ROCm special cases), the else branch of a conditional expression."""
    for text in files.values():
        if f"class {cls}(" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.name == cls:
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "get_min_capability":
                        returns = [n for n in ast.walk(item) if isinstance(n, ast.Return) and n.value]
                        value: ast.expr | None = max(returns, key=lambda n: n.lineno).value
                        if isinstance(value, ast.IfExp):
                            value = value.orelse
                        assert value is not None
                        return ast.literal_eval(value)
    return None


@pytest.mark.parametrize("version", CHECKED, ids=str)
def test_methods_and_minimum_capabilities(version):
    files = sources(version)
    methods = registered(files)
    for method in q.METHODS.values():
        status = method.since.status(version)
        assert status != "unknown", f"{version} was read, so {method.name} is known there"
        assert (method.name in methods) == (status == "yes"), f"{method.name} in SGLang {version}"
        if status == "yes":
            found = min_capability(files, CLASSES[method.name])
            # 0.4.x imports the AWQ, GPTQ and compressed-tensors config classes from vLLM.
            if found is not None:
                assert found == method.min_capability_in(version), f"{CLASSES[method.name]} in {version}"


@pytest.mark.parametrize("version", CHECKED, ids=str)
def test_release_boundaries_the_rules_rely_on(version):
    files = sources(version)
    w8a8 = files[QUANT_DIR + "w8a8_int8.py"]
    assert ("class W8A8Int8MoEMethod" in w8a8) == (q.W8A8_INT8_MOE.status(version) == "yes")
    fp8 = files[QUANT_DIR + "fp8.py"]
    assert ("can_auto_enable_marlin_fp8" in fp8) == (q.FP8_DENSE_MARLIN.status(version) == "yes")
    runner = sources_of(version, "sglang/srt/model_executor/model_runner.py")
    mla_on_triton = "MLA optimization is turned on. Use triton backend." in runner
    if version <= q.MLA_TRITON_LAST_READ or version >= q.MLA_TRITON_GONE:
        assert mla_on_triton == (version <= q.MLA_TRITON_LAST_READ)
    # FP8 experts never get a Marlin path: every mention of Marlin in Fp8MoEMethod is on its FP4-expert path.
    moe = fp8[fp8.index("class Fp8MoEMethod") :].split("\nclass ", 1)[0].splitlines()
    for i, line in enumerate(moe):
        if "marlin" in line.lower():
            assert any("fp4" in earlier.lower() for earlier in moe[max(0, i - 6) : i + 1]), f"{version}: {line}"
