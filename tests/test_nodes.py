"""The GPU node shape: a pod must fit a node after the DaemonSets' room, and capacity advice proposes only
tensor-parallel sizes the model can use, in words that count right ("1 GPU")."""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import stack_values
from pydantic import ValidationError

from sglang_platform.config.benchmark import BENCH_RESOURCES
from sglang_platform.config.model_cache import STAGER_REQUESTS
from sglang_platform.config.nodes import NodeShape
from sglang_platform.config.stack import PlatformConfig
from sglang_platform.facts import model_catalogue as catalogue
from sglang_platform.facts import quantization as q
from sglang_platform.rules.nodes import capacity_advice, check_pod_fits, cpu_text, memory_text, platform_pods, plural

# The reference hosts: 2 x (8 A800, 128 cores, 2 TB, 4 InfiniBand HCAs as rdma/ib).
REFERENCE = NodeShape.model_validate(
    {"cpu": "128", "memory": "2000Gi", "gpus": 8, "rdma": {"rdma/ib": 4}, "reserved": {"cpu": "2", "memory": "16Gi"}}
)
LOCS = {
    "cpu": ("resources", "cpu"),
    "memory": ("resources", "memory"),
    "nvidia.com/gpu": ("gpusPerNode",),
    "rdma/ib": ("network", "rdmaDevicesPerNode"),
}
R1 = catalogue.KNOWN_MODELS["deepseek-r1"]
QWEN = catalogue.KNOWN_MODELS["qwen2.5-1.5b-instruct"]


def requests(cpu="120", memory="1Ti", gpus=8, rdma=4) -> dict[str, str]:
    return {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(gpus), "rdma/ib": str(rdma)}


def test_words_count_right():
    assert [plural(1, "GPU"), plural(2, "GPU"), plural(Decimal("0.5"), "CPU"), plural(Decimal(128), "CPU")] == [
        "1 GPU",
        "2 GPUs",
        "0.5 CPU",
        "128 CPUs",
    ]
    assert [cpu_text(Decimal("126")), cpu_text(Decimal("125.5")), memory_text(Decimal(2**40 - 1))] == [
        "126",
        "125500m",
        "1023Gi",
    ]


def test_the_reference_request_of_a_whole_node_is_refused_with_what_fits():
    (problem,) = check_pod_fits(requests(cpu="128"), REFERENCE, LOCS)
    assert problem.loc == ("resources", "cpu")
    assert problem.message == (
        "'128' does not fit a GPU node: it allocates 128 CPUs (nodeShape.cpu) and the DaemonSets every GPU node "
        "runs (GPU Operator, CNI, node exporter) keep 2 (nodeShape.reserved.cpu): request at most '126'"
    )


def test_what_fits_passes():
    assert check_pod_fits(requests(), REFERENCE, LOCS) == []
    assert check_pod_fits(requests(cpu="126", memory="1984Gi"), REFERENCE, LOCS) == []


def test_memory_gpus_and_rdma():
    problems = check_pod_fits(requests(memory="2000Gi", gpus=16, rdma=8), REFERENCE, LOCS)
    by_loc = {p.loc: p.message for p in problems}
    assert "request at most '1984Gi'" in by_loc[("resources", "memory")]
    assert by_loc[("gpusPerNode",)] == (
        "16 GPUs per pod, but a GPU node has 8 GPUs (nodeShape.gpus): a pod runs on one node, so use at most 8 "
        "and more nodes"
    )
    assert by_loc[("network", "rdmaDevicesPerNode")] == (
        "8 devices of rdma/ib per pod, but a GPU node has 4 devices of it (nodeShape.rdma)"
    )
    one = NodeShape(cpu="8", memory="32Gi", gpus=1)
    (gpu,) = check_pod_fits({"nvidia.com/gpu": "2"}, one, LOCS)
    assert "but a GPU node has 1 GPU (nodeShape.gpus)" in gpu.message
    (missing,) = check_pod_fits({"rdma/ib": "1"}, one, LOCS)
    assert "but a GPU node has 0 device of it" not in missing.message and "has 0 devices of it" in missing.message


def test_fractional_cpu_room_and_reserved_that_eats_everything():
    odd = NodeShape(cpu="127500m", memory="64Gi", gpus=1, reserved={"cpu": "1", "memory": "64Gi"})
    problems = {p.loc: p.message for p in check_pod_fits({"cpu": "127", "memory": "1Gi"}, odd, LOCS)}
    assert problems[("resources", "cpu")].endswith("request at most '126500m'")
    assert problems[("nodeShape", "reserved", "memory")] == (
        "64Gi leaves no memory of the node's 64Gi allocatable for the pods"
    )


STAGER = ("the stager", STAGER_REQUESTS)
BENCH = ("the benchmark", BENCH_RESOURCES)


def test_the_platforms_pods_beside_the_group_take_their_room_first():
    # 128 - 2 reserved - 0.25 - 2 = 123.75 CPUs; 2000Gi - 16Gi - 512Mi - 4Gi = 1979.5Gi.
    assert check_pod_fits(requests(cpu="123750m", memory="1979Gi"), REFERENCE, LOCS, beside=[STAGER, BENCH]) == []
    problems = check_pod_fits(requests(cpu="124", memory="1980Gi"), REFERENCE, LOCS, beside=[STAGER, BENCH])
    assert [p.message for p in problems] == [
        "'124' does not fit a GPU node: it allocates 128 CPUs (nodeShape.cpu), the DaemonSets every GPU node runs "
        "(GPU Operator, CNI, node exporter) keep 2 (nodeShape.reserved.cpu), and the platform's own pods on the "
        "group's nodes request 2250m (250m for the stager; 2 for the benchmark): request at most '123750m'",
        "'1980Gi' does not fit a GPU node: it allocates 2000Gi (nodeShape.memory), the DaemonSets every GPU node "
        "runs (GPU Operator, CNI, node exporter) keep 16Gi (nodeShape.reserved.memory), and the platform's own pods "
        "on the group's nodes request 4608Mi (512Mi for the stager; 4Gi for the benchmark): request at most '1979Gi'",
    ]
    # Nothing beside it: the same pod fits (the room is the reserve's alone).
    assert check_pod_fits(requests(cpu="124", memory="1980Gi"), REFERENCE, LOCS) == []


def test_platform_pods_that_leave_nothing_say_so():
    tiny = NodeShape(cpu="2", memory="8Gi", gpus=1, reserved={"cpu": "1", "memory": "4Gi"})
    (cpu,) = check_pod_fits({"cpu": "500m"}, tiny, LOCS, beside=[STAGER, BENCH])
    assert cpu.loc == ("resources", "cpu")
    assert cpu.message.endswith(
        "request 2250m (250m for the stager; 2 for the benchmark): they leave nothing for the group's pod: use "
        "larger nodes or drop what runs beside it"
    )


def test_the_benchmark_is_counted_where_it_runs():
    # A disaggregated service staged per node: the stager on both roles' nodes, the benchmark on decode's only
    # (it takes the decode role's placement, components.benchmark.placement).
    values = stack_values("pd-h200")
    values["inferenceGroups"][0]["model"] = {
        "source": "huggingface",
        "download": {"repo": "deepseek-ai/DeepSeek-R1", "revision": "a" * 40},
    }
    cfg = PlatformConfig.model_validate(values)
    stager = ("the weights stager that model.download runs on a hostPath modelVolume", STAGER_REQUESTS)
    bench = ("the benchmark Job that benchmark runs", BENCH_RESOURCES)
    assert {u.role: platform_pods(u) for u in cfg.serving_units} == {"prefill": [stager], "decode": [stager, bench]}
    # On a pvc neither is placed by the weights.
    values["inferenceGroups"][0]["modelVolume"] = {"type": "pvc", "pvc": {"size": "800Gi"}}
    cfg = PlatformConfig.model_validate(values)
    assert [platform_pods(u) for u in cfg.serving_units] == [[], []]


def test_node_shape_is_validated():
    with pytest.raises(ValidationError):
        NodeShape.model_validate({"cpu": "lots", "memory": "1Ti", "gpus": 8})
    with pytest.raises(ValidationError):
        NodeShape.model_validate({"cpu": "8", "memory": "1Ti", "gpus": 8, "gpu": 8})


def test_capacity_advice_never_proposes_a_size_the_heads_do_not_divide():
    # 642 GiB on 1-GPU nodes of ~63 GiB room: 11 would hold it, 11 does not divide 128 heads.
    advice = capacity_advice(R1, q.SCHEMES["none"], 642, 1, lambda tp: 63.0)
    assert advice.startswith("set nodes: 16 and tensorParallel: 16, 16 nodes of 1 GPU (11, 12 or 13 would hold")
    assert "tensor-parallel sizes must be one of 1, 2, 4, 8 or 16" in advice
    assert capacity_advice(R1, q.SCHEMES["none"], 642, 8, lambda tp: 63.0) == (
        "set nodes: 2 and tensorParallel: 16, 2 nodes of 8 GPUs"
    )


def test_capacity_advice_respects_blocks_and_kv_heads():
    # Block-quantized DeepSeek stops at tp 16.
    advice = capacity_advice(R1, q.SCHEMES["fp8-block"], 642, 8, lambda tp: 30.0)
    assert advice == (
        "no group of up to 64 nodes of 8 GPUs holds it with a tensor-parallel size deepseek-ai/DeepSeek-R1 can "
        "use (1, 2, 4, 8 or 16): use GPUs with more memory or a smaller quantization"
    )
    # 12 heads, 2 KV heads: 3 GPUs would hold it but only 4 is a size Qwen2.5-1.5B shards to.
    assert capacity_advice(QWEN, q.SCHEMES["none"], 2.9, 1, lambda tp: 1.0).startswith(
        "set nodes: 4 and tensorParallel: 4, 4 nodes of 1 GPU (3 would hold"
    )
    assert capacity_advice(None, q.SCHEMES["none"], 100, 1, lambda tp: 10.0) == (
        "set nodes: 10 and tensorParallel: 10, 10 nodes of 1 GPU"
    )
