"""The SGLang image's CUDA build against the GPU nodes' NVIDIA driver, offline (facts/cuda.py,
rules/drivers.py): prod declares the reference hosts' 550 driver, and an image that needs a newer one is
refused through a whole program run, naming the newest build the driver runs. The live check of the nodes' labels is
in test_live.py."""

from __future__ import annotations

import pytest
import yaml
from conftest import API_KEY, chart, run_with, stack_values
from packaging.version import Version

from sglang_platform.facts import bom
from sglang_platform.facts.cuda import (
    MIN_DRIVER,
    NEWEST_BUILDS,
    OPERATOR_DRIVER,
    advice,
    image_cuda,
    newest_build,
    node_driver,
    parse_driver,
)

IMAGE = "sglang-platform:versions.sglangImage"
NOTES = "(NVIDIA CUDA Toolkit release notes, 'CUDA Toolkit and Corresponding Driver Versions')"


def refused(stack: str, mutate) -> list[str]:
    result = run_with(stack, mutate, secrets={"apiKey": API_KEY} if stack == "prod" else None)
    assert result.error is not None, "the stack was not refused"
    assert result.resources == []
    return [line.removeprefix("  - ") for line in result.error.splitlines()[1:]]


def pin(image: str, driver: str | None = None):
    def mutate(values):
        values["versions"]["sglangImage"] = image
        if driver is not None:
            values["gpuNodes"]["driverVersion"] = driver

    return mutate


def test_prod_declares_the_reference_hosts_driver_and_its_image_runs_there():
    assert stack_values("prod")["gpuNodes"]["driverVersion"] == "550.127.05"
    assert run_with("prod", lambda v: None, secrets={"apiKey": API_KEY}).error is None


def test_the_current_sglang_on_the_reference_driver_is_refused_with_what_it_can_run():
    assert refused("prod", pin("lmsysorg/sglang:v0.5.23-cu130")) == [
        f"{IMAGE}: lmsysorg/sglang:v0.5.23-cu130 is a CUDA 13.0 build, which needs NVIDIA driver 580.65.06 or newer "
        f"{NOTES}, and the GPU nodes run 550.127.05 (gpuNodes.driverVersion): with driver 550 (CUDA 12.4 at most) pin "
        "a -cu124 image: lmsysorg/sglang:v0.4.7-cu124 (the newest SGLang release seen with a CUDA 12.4 build); or "
        "upgrade the nodes' driver to 580.65.06 or newer"
    ]


def test_a_cuda_12_6_build_on_a_555_driver_and_the_advice_for_a_575_driver():
    lines = refused("prod", pin("lmsysorg/sglang:v0.5.1-cu126", "555.42.06"))
    assert lines == [
        f"{IMAGE}: lmsysorg/sglang:v0.5.1-cu126 is a CUDA 12.6 build, which needs NVIDIA driver 560.28.03 or newer "
        f"{NOTES}, and the GPU nodes run 555.42.06 (gpuNodes.driverVersion): with driver 555 (CUDA 12.5 at most) pin "
        "a -cu124 image: lmsysorg/sglang:v0.4.7-cu124 (the newest SGLang release seen with a CUDA 12.4 build); or "
        "upgrade the nodes' driver to 560.28.03 or newer"
    ]
    # A 575 driver runs CUDA 12.9: the advice is 0.5.19's cu129 build, whose flag table must be generated first.
    assert advice(Version("575.57.08")) == (
        "with driver 575 (CUDA 12.9 at most) pin a -cu129 image: lmsysorg/sglang:v0.5.19-cu129 (the last CUDA 12 "
        "release; generate its flag table first: python tools/sglang_flags.py generate 0.5.19)"
    )


def test_a_new_enough_driver_passes_and_the_boundary_is_the_toolkits_own():
    assert (
        run_with("prod", pin("lmsysorg/sglang:v0.4.10-cu126", "560.28.03"), secrets={"apiKey": API_KEY}).error is None
    )
    assert refused("prod", pin("lmsysorg/sglang:v0.4.10-cu126", "560.28.02"))[0].startswith(
        f"{IMAGE}: lmsysorg/sglang:v0.4.10-cu126 is a CUDA 12.6 build"
    )


def test_a_groups_own_node_shape_declares_its_own_driver():
    def newer_nodes(values):
        values["versions"]["sglangImage"] = "lmsysorg/sglang:v0.5.23-cu130"
        values["gpuNodes"]["driverVersion"] = "580.95.05"
        values["inferenceGroups"][0]["nodeShape"] = {"driverVersion": "570.86.15"}

    (line,) = refused("prod", newer_nodes)
    assert "the GPU nodes run 570.86.15 (inferenceGroups[0].nodeShape.driverVersion)" in line


def test_the_driver_the_gpu_operator_installs_is_checked_and_a_host_driver_beside_it_refused():
    """A stack whose GPU Operator manages the driver gets the chart's (v24.9.1: 550.127.08), or driver.version."""

    def managed(version: str | None = None):
        def mutate(values):
            del values["gpuNodes"]["driverVersion"]
            values["versions"]["sglangImage"] = "lmsysorg/sglang:v0.5.23-cu130"
            values["gpuOperator"]["driver"] = {"managed": True, **({"version": version} if version else {})}

        return mutate

    (line,) = refused("prod", managed())
    assert "the GPU nodes run 550.127.08 (the default driver of the GPU Operator v24.9.1 chart)" in line
    (line,) = refused("prod", managed("570.124.06"))
    assert "the GPU nodes run 570.124.06 (gpuOperator.driver.version)" in line
    ok = run_with("prod", managed("580.105.08"), secrets={"apiKey": API_KEY})
    assert ok.error is None, ok.error

    def both(values):
        values["gpuOperator"]["driver"] = {"managed": True}

    assert refused("prod", both) == [
        "sglang-platform:gpuNodes.driverVersion: is 550.127.05, a driver installed on the hosts, but this stack's GPU "
        "Operator installs its own (550.127.08, the default driver of the GPU Operator v24.9.1 chart; "
        "gpuOperator.driver.managed is true): remove it, or set gpuOperator.driver.managed false when the hosts keep "
        "their driver"
    ]


def test_dev_declares_no_driver_so_nothing_is_checked_offline():
    assert "gpuNodes" not in stack_values("dev")
    assert run_with("dev", lambda v: None).error is None


def test_compatibility_false_turns_the_refusal_into_a_warning(caplog):
    def off(values):
        pin("lmsysorg/sglang:v0.5.23-cu130")(values)
        values["preflight"] = {"compatibility": False}

    caplog.set_level("WARNING")
    result = run_with("prod", off, secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    assert any(
        r.getMessage().startswith(f"{IMAGE}: lmsysorg/sglang:v0.5.23-cu130 is a CUDA 13.0 build")
        and r.getMessage().endswith("(not refused: sglang-platform:preflight.compatibility is false)")
        for r in caplog.records
    )


def test_an_image_whose_cuda_build_is_unknown_is_a_warning(caplog):
    caplog.set_level("WARNING")
    digest = "lmsysorg/sglang@sha256:" + "d" * 64

    def mutate(values):
        values["versions"] |= {"sglangImage": digest, "sglangVersion": "0.4.4"}

    assert run_with("prod", mutate, secrets={"apiKey": API_KEY}).error is None
    assert f"the CUDA build of {digest!r} is unknown" in caplog.text


# --- the table and its lookups ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "release", "cuda"),
    [
        ("lmsysorg/sglang:v0.4.3.post2-cu124", "0.4.3.post2", "12.4"),
        ("lmsysorg/sglang:v0.4.8.post1-cu128-b200", "0.4.8.post1", "12.8"),
        ("lmsysorg/sglang:v0.5.19-cu129", "0.5.19", "12.9"),
        ("registry.local:5000/lmsysorg/sglang:v0.5.23-cu130", "0.5.23", "13.0"),
        # Every build from 0.5.20 is CUDA 13, the bare tag and a digest included.
        ("lmsysorg/sglang:v0.5.23", "0.5.23", "13.0"),
        ("lmsysorg/sglang@sha256:" + "e" * 64, "0.5.21", "13.0"),
        # Before, a bare tag or a digest says nothing.
        ("lmsysorg/sglang:v0.4.4", "0.4.4", None),
    ],
)
def test_the_cuda_build_of_an_image(image, release, cuda):
    assert image_cuda(image, Version(release)) == cuda


def test_every_sets_image_and_every_known_build_is_in_the_table():
    for pins in bom.SETS.values():
        release = Version(pins["sglangImage"].rsplit(":v", 1)[1].split("-")[0])
        assert image_cuda(pins["sglangImage"], release) in MIN_DRIVER
    assert [b.cuda for b in NEWEST_BUILDS] == sorted({b.cuda for b in NEWEST_BUILDS}, key=Version)
    for build in NEWEST_BUILDS:
        assert image_cuda(f"lmsysorg/sglang:{build.tag}", Version(build.release)) == build.cuda


def test_the_newest_build_a_driver_runs():
    assert newest_build(Version("550.127.05")).tag == "v0.4.7-cu124"  # type: ignore[union-attr]
    assert newest_build(Version("570.124.06")).tag == "v0.5.1-cu126"  # type: ignore[union-attr]
    assert newest_build(Version("580.65.06")).tag == "v0.5.23-cu130"  # type: ignore[union-attr]
    assert newest_build(Version("535.216.01")) is None
    assert advice(Version("535.216.01")) == (
        "driver 535 is older than every SGLang build in facts/cuda.py: upgrade the driver"
    )


def test_driver_versions_parse_as_nvidia_smi_prints_them():
    assert parse_driver("550.127.05") == Version("550.127.5")
    assert parse_driver("570.26") == Version("570.26")
    assert parse_driver("R550") is None and parse_driver("") is None and parse_driver(None) is None
    assert node_driver({"nvidia.com/cuda.driver-version.full": "580.95.05"}) == Version("580.95.5")
    assert node_driver({"nvidia.com/cuda.driver.major": "550", "nvidia.com/cuda.driver.minor": "54"}) == Version(
        "550.54"
    )
    assert node_driver({"nvidia.com/gpu.product": "NVIDIA-A800-SXM4-80GB"}) is None


def test_the_gpu_operators_default_drivers_are_its_charts():
    for version, driver in OPERATOR_DRIVER.items():
        values = yaml.safe_load((chart("gpu-operator", version) / "values.yaml").read_text())
        assert values["driver"]["version"] == driver, version
    # Every GPU Operator chart of the sets is in the table, so a managed driver is always known.
    assert {pins["gpuOperatorChart"] for pins in bom.SETS.values()} <= set(OPERATOR_DRIVER)
