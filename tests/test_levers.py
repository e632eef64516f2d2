"""The DeepSeek levers (issue 13): each rendered with the spelling of the pinned release, refused on a release
that lacks it, tied to the others by the rules SGLang itself enforces or silently applies; the probes and the
DeepEP environment follow the release too. Through the whole program where it matters (what preview runs)."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from conftest import API_KEY, container, env_map, lws, run_with

from sglang_platform.components.sglang_group import SglangInferenceGroupArgs, _refuse_invalid
from sglang_platform.config import InferenceGroup
from sglang_platform.facts.sglang import load_table
from sglang_platform.render.server_args import typed_args

IMAGES = {
    "0.4.3.post2": "lmsysorg/sglang:v0.4.3.post2-cu124",
    "0.4.4": "lmsysorg/sglang:v0.4.4-cu124",
    "0.4.5": "lmsysorg/sglang:v0.4.5-cu124",
    "0.4.7": "lmsysorg/sglang:v0.4.7-cu124",
    "0.4.10": "lmsysorg/sglang:v0.4.10-cu126",
    "0.5.1": "lmsysorg/sglang:v0.5.1-cu126",
    "0.5.23": "lmsysorg/sglang:v0.5.23-cu130",
}
GROUP = "sglang-platform:inferenceGroups[0]"
# A driver that runs every image below (an R580 one: CUDA 13.0; prod declares the reference's 550, CUDA 12.4).
R580 = "580.95.05"
# The prod group (2 x 8, InfiniBand) with every DeepSeek lever a 2 x 8 H100 deployment would use.
LEVERS: dict[str, Any] = {
    "dpAttentionSize": 2,
    "expertParallel": {"a2aBackend": "deepep", "deepepMode": "auto"},
    "speculative": {"numSteps": 3, "eagleTopk": 1, "numDraftTokens": 4},
    "maxRunningRequests": 128,
    "cudaGraphMaxBs": 128,
    "chunkedPrefillSize": 8192,
    "kvCacheDtype": "fp8_e4m3",
    "reasoningParser": "deepseek-r1",
    "toolCallParser": "deepseekv3",
}
HEAD = [
    "--model-path",
    "/mnt/catcat_data/model/DeepSeek-R1",
    "--served-model-name",
    "deepseek-r1",
    "--tp-size",
    "16",
    "--dist-init-addr",
    "$(LWS_LEADER_ADDRESS):20000",
    "--nnodes",
    "2",
    "--node-rank",
    "0",
    "--trust-remote-code",
    "--context-length",
    "131072",
    "--kv-cache-dtype",
    "fp8_e4m3",
]
SPEC = [
    "--speculative-algorithm",
    "EAGLE",
    "--speculative-num-steps",
    "3",
    "--speculative-eagle-topk",
    "1",
    "--speculative-num-draft-tokens",
    "4",
    "--reasoning-parser",
    "deepseek-r1",
    "--tool-call-parser",
    "deepseekv3",
    "--enable-metrics",
]
TAIL = ["--host", "0.0.0.0", "--port", "8000", "--api-key", "$(SGLANG_API_KEY)"]


# The prod group (2 x 8 over InfiniBand) as an H100 group serving DeepSeek-R1's own FP8 weights, without the
# --dist-timeout of Pulumi.prod.yaml (0.4.3.post2 lacks it): what each lever adds is all that changes.
H100_R1 = {
    "gpu": "H100-80GB",
    "model": {
        "path": "DeepSeek-R1",
        "servedName": "deepseek-r1",
        "source": "modelscope",
        # A commit: per-node staging refuses a moving branch unless the stack opts in.
        "download": {"repo": "deepseek-ai/DeepSeek-R1", "revision": "f" * 40},
    },
}


def prod(release: str, **group: Any):
    def mutate(values):
        values.setdefault("versions", {})["sglangImage"] = IMAGES[release]
        # prod's hosts with an R580 driver, which runs every CUDA build (they declare the reference's 550: cu124 only).
        values["gpuNodes"]["driverVersion"] = R580
        g = values["inferenceGroups"][0]
        g.pop("distTimeoutSeconds", None)
        g.update(H100_R1)
        g.update(group)

    return run_with("prod", mutate, secrets={"apiKey": API_KEY})


def refused(release: str, **group: Any) -> list[str]:
    result = prod(release, **group)
    assert result.error is not None, "the run was not refused"
    assert result.resources == []
    return [line.removeprefix("  - ") for line in result.error.splitlines()[1:]]


def leader_args(result) -> list[str]:
    return container(lws(result, "deepseek-r1")["spec"]["leaderWorkerTemplate"]["leaderTemplate"])["args"]


@pytest.mark.parametrize(
    ("release", "levers"),
    [
        (
            "0.5.23",
            [
                "--attn-dp-size",
                "2",
                "--moe-a2a-backend",
                "deepep",
                "--deepep-mode",
                "auto",
                "--chunked-prefill-size",
                "8192",
                "--max-running-requests",
                "128",
                "--cuda-graph-max-bs-decode",
                "128",
            ],
        ),
        (
            "0.5.1",
            [
                "--enable-dp-attention",
                "--dp-size",
                "2",
                "--moe-a2a-backend",
                "deepep",
                "--deepep-mode",
                "auto",
                "--chunked-prefill-size",
                "8192",
                "--max-running-requests",
                "128",
                "--cuda-graph-max-bs",
                "128",
            ],
        ),
        (
            "0.4.10",
            [
                "--enable-dp-attention",
                "--dp-size",
                "2",
                "--enable-deepep-moe",
                "--deepep-mode",
                "auto",
                "--chunked-prefill-size",
                "8192",
                "--max-running-requests",
                "128",
                "--cuda-graph-max-bs",
                "128",
            ],
        ),
    ],
)
def test_each_release_gets_its_own_spelling_of_every_lever(release, levers):
    result = prod(release, **LEVERS)
    assert result.error is None, result.error
    assert leader_args(result) == [*HEAD, *levers, *SPEC, *TAIL]


def test_each_rendered_command_passes_its_releases_flag_check():
    # The same argparse reading the flag rules use, on what the pods really get (leader and worker).
    from sglang_platform.facts.sglang import check_args

    for release in ("0.4.10", "0.5.1", "0.5.23"):
        tpl = lws(prod(release, **LEVERS), "deepseek-r1")["spec"]["leaderWorkerTemplate"]
        for pod in (tpl["leaderTemplate"], tpl["workerTemplate"]):
            table = load_table(release)
            assert table is not None
            assert check_args(container(pod)["args"], table, required=True) == [], release


@pytest.mark.parametrize(
    ("release", "lines"),
    [
        (
            "0.4.4",
            [
                f"{GROUP}.dpAttentionSize: SGLang 0.4.4 runs DP attention with one group per GPU (dp = tensorParallel "
                "= 16) whatever --dp-size says: set 16, or pin 0.4.5 or later for 2 groups",
                f"{GROUP}.expertParallel.a2aBackend: --enable-deepep-moe needs SGLang 0.4.5 or later; the pinned "
                "release is 0.4.4 (sglang-platform:versions.sglangImage)",
                f"{GROUP}.expertParallel.deepepMode: --deepep-mode needs SGLang 0.4.5 or later; the pinned release is "
                "0.4.4 (sglang-platform:versions.sglangImage)",
                f"{GROUP}.speculative.draftModelPath: SGLang 0.4.4 reads the MTP draft layer only from "
                "--speculative-draft-model-path: set it to the NextN weights in the model volume (e.g. "
                "lmsys/DeepSeek-R1-NextN), or pin 0.4.7 or later, which reads them from the model",
                f"{GROUP}.toolCallParser: --tool-call-parser wants one of qwen25, mistral, llama3 (SGLang 0.4.4), "
                "got 'deepseekv3'",
            ],
        ),
        (
            "0.4.3.post2",
            [
                f"{GROUP}.dpAttentionSize: SGLang 0.4.3.post2 runs DP attention with one group per GPU (dp = "
                "tensorParallel = 16) whatever --dp-size says: set 16, or pin 0.4.5 or later for 2 groups",
                f"{GROUP}.expertParallel.a2aBackend: --enable-deepep-moe needs SGLang 0.4.5 or later; the pinned "
                "release is 0.4.3.post2 (sglang-platform:versions.sglangImage)",
                f"{GROUP}.expertParallel.deepepMode: --deepep-mode needs SGLang 0.4.5 or later; the pinned release is "
                "0.4.3.post2 (sglang-platform:versions.sglangImage)",
                f"{GROUP}.reasoningParser: --reasoning-parser needs SGLang 0.4.3.post3 or later; the pinned release "
                "is 0.4.3.post2 (sglang-platform:versions.sglangImage)",
                f"{GROUP}.speculative.draftModelPath: SGLang 0.4.3.post2 reads the MTP draft layer only from "
                "--speculative-draft-model-path: set it to the NextN weights in the model volume (e.g. "
                "lmsys/DeepSeek-R1-NextN), or pin 0.4.7 or later, which reads them from the model",
                f"{GROUP}.toolCallParser: --tool-call-parser wants one of qwen25, mistral, llama3 (SGLang "
                "0.4.3.post2), got 'deepseekv3'",
            ],
        ),
    ],
)
def test_a_release_that_lacks_a_lever_refuses_it_on_its_key(release, lines):
    assert refused(release, **LEVERS) == lines


def test_the_prod_group_is_unchanged_by_the_levers_it_does_not_use():
    # Pulumi.prod.yaml sets none of them: its tp 16 command is what tests/test_inference_group.py pins.
    result = run_with("prod", lambda values: None, secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    assert leader_args(result) == [
        "--model-path",
        "/mnt/catcat_data/model/DeepSeek-R1-Block-INT8",
        "--served-model-name",
        "deepseek-r1",
        "--tp-size",
        "16",
        "--dist-init-addr",
        "$(LWS_LEADER_ADDRESS):20000",
        "--nnodes",
        "2",
        "--node-rank",
        "0",
        "--trust-remote-code",
        "--context-length",
        "131072",
        "--dist-timeout",
        "1800",
        "--enable-metrics",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--api-key",
        "$(SGLANG_API_KEY)",
    ]


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        (
            {"dpAttentionSize": 3},
            "dpAttentionSize: 3 must divide tensorParallel (16): each DP-attention group runs "
            "attention on tensorParallel / dpAttentionSize GPUs",
        ),
        (
            {"expertParallel": {"a2aBackend": "deepep", "size": 8}},
            "expertParallel.size: DeepEP spreads the experts "
            "over every GPU of the group: SGLang sets --ep-size to tensorParallel (16); leave size unset",
        ),
        ({"expertParallel": {"size": 3}}, "expertParallel.size: 3 must divide tensorParallel (16)"),
        ({"expertParallel": {"deepepMode": "normal"}}, "expertParallel.deepepMode: only with a2aBackend deepep"),
        (
            {"speculative": {"numSteps": 3}, "maxRunningRequests": 64},
            "speculative.eagleTopk: set numSteps, eagleTopk and numDraftTokens together or not at all (SGLang picks "
            "all three when numSteps is unset and refuses a partial set); missing: eagleTopk, numDraftTokens",
        ),
        (
            {"speculative": {"numSteps": 3, "eagleTopk": 1, "numDraftTokens": 8}, "maxRunningRequests": 64},
            "speculative.numDraftTokens: with eagleTopk 1 SGLang uses numSteps + 1 = 4 draft tokens: set that",
        ),
        (
            {"speculative": {}},
            "maxRunningRequests: with speculative decoding SGLang 0.5.23 caps running requests at 48 unless "
            "--max-running-requests is set: set maxRunningRequests (the DeepSeek docs raise it for larger batches, "
            "with the CUDA-graph batch sizes)",
        ),
        (
            {"metricsForAllSchedulers": True, "dpAttentionSize": 2},
            "metricsForAllSchedulers: with it each of the 8 GPUs of an attention group reports the same queue, and "
            "the autoscaler (which sums sglang:num_queue_reqs) would count every waiting request 8 times: turn it "
            "off, or autoscaling off",
        ),
        ({"metricsForAllSchedulers": True, "enableMetrics": False}, "metricsForAllSchedulers: needs enableMetrics"),
        (
            {"chunkedPrefillSize": 0},
            "chunkedPrefillSize: 0 is not a chunk size: give the prompt tokens per chunk, or -1 to disable chunking",
        ),
    ],
)
def test_rules_that_tie_the_levers(changes, line):
    assert refused("0.5.23", **changes) == [f"{GROUP}.{line}"]


def test_metrics_for_all_schedulers_is_fine_where_each_gpu_is_its_own_attention_group():
    result = prod("0.5.23", metricsForAllSchedulers=True, dpAttentionSize=16)
    assert result.error is None, result.error
    assert "--enable-metrics-for-all-schedulers" in leader_args(result)


def test_deepep_across_nodes_needs_infiniband():
    def tcp(values):
        values.setdefault("versions", {})["sglangImage"] = IMAGES["0.5.23"]
        values["gpuNodes"]["driverVersion"] = R580
        g = values["inferenceGroups"][0]
        g["network"] = {"fabric": "tcp"}
        g["expertParallel"] = {"a2aBackend": "deepep"}

    result = run_with("prod", tcp, secrets={"apiKey": API_KEY})
    assert result.error is not None
    assert result.error.splitlines()[1:] == [
        f"  - {GROUP}.network.fabric: DeepEP across nodes sends tokens GPU to GPU over NVSHMEM on RDMA: it needs "
        "fabric infiniband (HCAs, RDMA devices, IPC_LOCK)"
    ]


def test_deepep_gets_the_nvshmem_environment_of_the_fabric():
    tpl = lws(prod("0.5.23", expertParallel={"a2aBackend": "deepep"}), "deepseek-r1")["spec"]["leaderWorkerTemplate"]
    for pod in (tpl["leaderTemplate"], tpl["workerTemplate"]):
        env = env_map(container(pod))
        assert (env["NVSHMEM_HCA_LIST"], env["NVSHMEM_IB_GID_INDEX"]) == ("mlx5_0,mlx5_1,mlx5_4,mlx5_5", "0")
    plain = env_map(container(lws(prod("0.5.23"), "deepseek-r1")["spec"]["leaderWorkerTemplate"]["leaderTemplate"]))
    assert "NVSHMEM_HCA_LIST" not in plain


def test_plain_expert_parallelism_per_release():
    assert "--enable-ep-moe" in leader_args(prod("0.4.10", expertParallel={"size": 8}))
    args = leader_args(prod("0.5.23", expertParallel={"size": 8}))
    assert "--enable-ep-moe" not in args and args[args.index("--ep-size") + 1] == "8"
    assert refused("0.4.7", expertParallel={"size": 8}) == [
        f"{GROUP}.expertParallel.size: SGLang 0.4.7's --enable-ep-moe sets the expert-parallel size to tensorParallel "
        "(16): leave size unset, or pin 0.4.10 or later for 8"
    ]
    args = leader_args(prod("0.4.7", expertParallel={}))
    assert args[args.index("--enable-ep-moe") : args.index("--enable-ep-moe") + 3] == [
        "--enable-ep-moe",
        "--ep-size",
        "16",
    ]


@pytest.mark.parametrize(
    ("release", "extra", "line"),
    [
        (
            "0.5.23",
            ["--enable-dp-attention"],
            "--enable-dp-attention is set by the platform from dpAttentionSize: use that key",
        ),
        ("0.5.1", ["--dp-size", "2"], "--dp-size is set by the platform from dpAttentionSize: use that key"),
        (
            "0.4.10",
            ["--enable-deepep-moe"],
            "--enable-deepep-moe is set by the platform from expertParallel.a2aBackend: use that key",
        ),
        (
            "0.5.23",
            ["--cuda-graph-max-bs-decode", "64"],
            "--cuda-graph-max-bs-decode is set by the platform from cudaGraphMaxBs: use that key",
        ),
        (
            "0.5.23",
            ["--reasoning", "deepseek-r1"],
            "--reasoning is an abbreviation of --reasoning-parser, which the platform sets from reasoningParser: "
            "use that key",
        ),
    ],
)
def test_extra_args_may_not_spell_a_lever_another_way(release, extra, line):
    assert refused(release, extraArgs=extra) == [f"{GROUP}.extraArgs[0]: {line}"]


def test_dp_size_is_free_where_it_means_replicas():
    # From 0.5.22 --dp-size alone runs replicas behind one server: not the DP-attention lever.
    result = prod("0.5.23", extraArgs=["--dp-size", "2"])
    assert result.error is None, result.error


def _probes(result, template: str) -> dict:
    c = container(lws(result, "deepseek-r1")["spec"]["leaderWorkerTemplate"][template])
    return {
        name: (c[name]["httpGet"]["path"], c[name]["timeoutSeconds"])
        for name in ("startupProbe", "readinessProbe", "livenessProbe")
    }


@pytest.mark.parametrize(
    ("release", "leader"),
    [
        # /health is a cheap 200 once the server is up.
        (
            "0.4.10",
            {"startupProbe": ("/health", 5), "readinessProbe": ("/health", 5), "livenessProbe": ("/health", 10)},
        ),
        # /health generates one token (when idle) and answers within SGLang's own 20 s; no /ready yet.
        (
            "0.5.1",
            {"startupProbe": ("/health", 25), "readinessProbe": ("/health", 25), "livenessProbe": ("/health", 25)},
        ),
        # /ready is the cheap one; liveness keeps the generating /health, which catches a hung scheduler.
        ("0.5.23", {"startupProbe": ("/ready", 5), "readinessProbe": ("/ready", 5), "livenessProbe": ("/health", 25)}),
    ],
)
def test_probe_paths_follow_the_release(release, leader):
    result = prod(release)
    assert _probes(result, "leaderTemplate") == leader
    # Workers serve only a stand-in /health (no API, no generation) in every release.
    assert _probes(result, "workerTemplate") == {
        "startupProbe": ("/health", 5),
        "readinessProbe": ("/health", 5),
        "livenessProbe": ("/health", 10),
    }


def test_a_program_that_cannot_tell_the_release_must_name_it_for_release_dependent_levers():
    group = InferenceGroup.model_validate(
        {
            "name": "r1",
            "model": {"path": "DeepSeek-R1", "servedName": "r1"},
            "modelVolume": {"type": "pvc", "claimName": "m"},
            "gpusPerNode": 8,
            "dpAttentionSize": 8,
            "resources": {"cpu": "8", "memory": "64Gi"},
        }
    )
    image = pulumi.Output.from_input("lmsysorg/sglang:v0.5.23-cu130")
    with pytest.raises(ValueError) as info:
        _refuse_invalid("r1", group, SglangInferenceGroupArgs(config=group, namespace="ns", image=image))
    assert str(info.value).splitlines()[1:] == [
        "  - sglang_version: this group's flags are spelled differently per SGLang release and the image does not "
        "say which it runs: set sglang_version"
    ]
    _refuse_invalid(
        "r1", group, SglangInferenceGroupArgs(config=group, namespace="ns", image=image, sglang_version="0.5.23")
    )
    args = typed_args(group, leader=True, api_key=False, table=load_table("0.5.23"))
    assert args[args.index("--attn-dp-size") + 1] == "8"
