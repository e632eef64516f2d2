"""Every preflight rule (GPU, quantization, node shape, add-on compatibility, stack-key namespaces) through a
full run of the program, as `pulumi preview` and the offline render run it: the stack is refused with one message
naming the key and the fix, and nothing is registered. The rules' own corner cases are tested on the functions
(test_quantization.py, test_nodes.py, test_compat.py, test_stack_keys.py)."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys

import fake_hub
import pytest
import yaml
from conftest import API_KEY, FRONT_END_SECRETS, ROOT, container, lws, on_modelscope, run_with, stack_values

from tools import harness

G = "sglang-platform:inferenceGroups[0]"
# What prod's weights stager and benchmark Job request on the group's GPU nodes, as the node-fit messages say it.
OURS_CPU = (
    "and the platform's own pods on the group's nodes request 2250m (250m for the weights stager that model.download "
    "runs on a hostPath modelVolume; 2 for the benchmark Job that benchmark runs)"
)
OURS_MEMORY = (
    "and the platform's own pods on the group's nodes request 4608Mi (512Mi for the weights stager that "
    "model.download runs on a hostPath modelVolume; 4Gi for the benchmark Job that benchmark runs)"
)


def group(values: dict) -> dict:
    return values["inferenceGroups"][0]


def run(stack: str, mutate):
    return run_with(stack, mutate, secrets={"apiKey": API_KEY} if stack == "prod" else None)


def refused(stack: str, mutate) -> list[str]:
    """The problems of a run that must be refused before anything is registered."""
    result = run(stack, mutate)
    assert result.error is not None, "the stack was not refused"
    assert result.resources == [], [r.name for r in result.resources]
    return [line.removeprefix("  - ") for line in result.error.splitlines()[1:]]


def notes(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# --- the reference as written -----------------------------------------------------------------------------------


def reference_as_written(values: dict) -> None:
    """Pulumi.prod.yaml as the reference had it: FP8 DeepSeek-R1 on the reference set's versions (SGLang
    0.4.3.post2, Volcano 1.9.0 on Kubernetes 1.30), pods asking for the whole node."""
    g = group(values)
    g["model"] |= {"path": "DeepSeek-R1"}
    g["model"]["download"]["repo"] = "deepseek-ai/DeepSeek-R1"
    g["resources"] |= {"cpu": "128", "memory": "1Ti"}
    del g["distTimeoutSeconds"]
    values["versions"] = {"set": "reference"}


def test_the_reference_as_written_cannot_run_and_says_why():
    assert refused("prod", reference_as_written) == [
        f"{G}.gpu: deepseek-ai/DeepSeek-R1 is FP8 (e4m3) in 128 x 128 blocks (the known checkpoint "
        "deepseek-ai/DeepSeek-R1), and its experts run SGLang's FP8 MoE kernels, which need FP8 tensor cores in every "
        "release read (Fp8MoEMethod has no Marlin path for FP8 experts); A800-80GB (compute capability 8.0) has none: "
        'SGLang stops at load with "type fp8e4nv not supported in this architecture" (DeepSeek-R1#588, sglang#4364). '
        "Serve meituan/DeepSeek-R1-Block-INT8 (W8A8 INT8 in 128 x 128 blocks, SGLang >= 0.4.3.post3, on the same "
        "GPUs) or meituan/DeepSeek-R1-Channel-INT8 (W8A8 INT8, per channel, SGLang >= 0.4.4, model.quantization "
        "w8a8-int8, which passes --quantization w8a8_int8, on the same GPUs) or BF16 weights converted with "
        "DeepSeek-V3's inference/fp8_cast_bf16.py (unquantized BF16/FP16, 1250 GiB, so about 2 x the GPUs), or a GPU "
        "with FP8 (L40S, L20, H100-80GB, H800-80GB, H20-96GB, H200-141GB, B200)",
        f"{G}.resources.cpu: '128' does not fit a GPU node: it allocates 128 CPUs (gpuNodes.cpu), the DaemonSets "
        "every GPU node runs (GPU Operator, CNI, node exporter) keep 1 (gpuNodes.reserved.cpu), " + OURS_CPU + ": "
        "request at most '124750m'",
        "sglang-platform:versions.volcanoChart: Volcano 1.9.0 is tested on Kubernetes 1.21-1.29 (volcano-sh/volcano "
        "README, Kubernetes compatibility (v1.11 era)), not 1.30 (versions.kubernetes): pin a release of 1.10, 1.11, "
        "1.12, 1.13, 1.14 or 1.15 in sglang-platform:versions.volcanoChart",
    ]


def test_fp8_weights_run_on_a_gpu_with_fp8():
    def h100(values):
        reference_as_written(values)
        group(values)["gpu"] = "H100-80GB"
        group(values)["resources"]["cpu"] = "124"
        values["versions"] |= {"volcanoChart": "1.10.2"}

    result = run("prod", h100)
    assert result.error is None, result.error
    args = container(lws(result, "deepseek-r1")["spec"]["leaderWorkerTemplate"]["leaderTemplate"])["args"]
    assert "--quantization" not in args


# --- GPU and quantization -----------------------------------------------------------------------------------------


def test_gpu_and_gpu_memory_are_one_or_the_other():
    assert refused("prod", lambda v: group(v).update(gpuMemoryGiB=80)) == [
        f"{G}.gpuMemoryGiB: set gpu or gpuMemoryGiB, not both: gpu A800-80GB has 80 GiB (facts/gpus.py); remove "
        "gpuMemoryGiB, or remove gpu for a GPU the table does not list"
    ]
    assert refused("prod", lambda v: group(v).update(gpu="A900")) == [
        f"{G}.gpu: 'A900' is not a GPU the platform knows: use one of A100-40GB, A100-80GB, A800-80GB, L40S, L20, "
        "H100-80GB, H800-80GB, H20-96GB, H200-141GB, B200 (facts/gpus.py)"
    ]


def channel_int8(values: dict) -> None:
    g = group(values)
    g["model"]["path"] = "DeepSeek-R1-Channel-INT8"
    g["model"]["download"]["repo"] = "meituan/DeepSeek-R1-Channel-INT8"


def test_a_scheme_sglang_selects_only_by_flag_must_be_declared():
    assert refused("prod", channel_int8) == [
        f"{G}.model.quantization: meituan/DeepSeek-R1-Channel-INT8 is W8A8 INT8, per channel (the known checkpoint "
        "meituan/DeepSeek-R1-Channel-INT8), which SGLang runs with its own kernels only under --quantization "
        "w8a8_int8: set model.quantization: w8a8-int8 (the platform then passes the flag)"
    ]

    def declared(values):
        channel_int8(values)
        group(values)["model"]["quantization"] = "w8a8-int8"

    result = run("prod", declared)
    assert result.error is None, result.error
    tpl = lws(result, "deepseek-r1")["spec"]["leaderWorkerTemplate"]
    for pod in (tpl["leaderTemplate"], tpl["workerTemplate"]):
        args = container(pod)["args"]
        assert args[args.index("--quantization") + 1] == "w8a8_int8"


def test_the_flag_is_the_platforms():
    assert refused("prod", lambda v: group(v).update(extraArgs=["--quantization", "fp8"])) == [
        f"{G}.extraArgs[0]: --quantization is set by the platform from model.quantization: use that key"
    ]


def test_quantization_methods_follow_the_pinned_release():
    def old_sglang(values):
        values["versions"]["sglangImage"] = "lmsysorg/sglang:v0.4.3.post2-cu124"
        del group(values)["distTimeoutSeconds"]

    assert refused("prod", old_sglang) == [
        "sglang-platform:versions.sglangImage: meituan/DeepSeek-R1-Block-INT8 is W8A8 INT8 in 128 x 128 blocks (the "
        "known checkpoint meituan/DeepSeek-R1-Block-INT8), quantization method blockwise_int8, which SGLang "
        "0.4.3.post2 does not have (first in 0.4.3.post3): pin an SGLang image of 0.4.3.post3 or later"
    ]

    def channel_on_0_4_3_post3(values):
        channel_int8(values)
        group(values)["model"]["quantization"] = "w8a8-int8"
        values["versions"]["sglangImage"] = "lmsysorg/sglang:v0.4.3.post3-cu124"

    assert refused("prod", channel_on_0_4_3_post3) == [
        "sglang-platform:versions.sglangImage: meituan/DeepSeek-R1-Channel-INT8 is W8A8 INT8, per channel "
        "(model.quantization), but SGLang 0.4.3.post3 applies w8a8_int8 only to dense layers (W8A8Int8Config has no "
        "MoE method before 0.4.4), so the INT8 experts cannot load: pin an SGLang image of 0.4.4 or later"
    ]


def four_nodes(values: dict) -> None:
    group(values)["nodes"] = 4
    values["volcano"]["queue"]["capability"]["nvidia.com/gpu"] = "64"


def test_tensor_parallel_sizes_the_model_can_be_split_to():
    def explicit(values):
        four_nodes(values)
        group(values)["tensorParallel"] = 32

    assert refused("prod", explicit) == [
        f"{G}.tensorParallel: tensorParallel 32: with int8-block weights each GPU's share of "
        "meituan/DeepSeek-R1-Block-INT8's 18432-wide layers must be a multiple of 128 (18432 / 32 = 576; SGLang: 'is "
        "not divisible by weight quantization block_n'); use 1, 2, 4, 8 or 16"
    ]

    def implicit(values):
        four_nodes(values)
        del group(values)["tensorParallel"]

    assert refused("prod", implicit) == [
        f"{G}.gpusPerNode: the group shards over nodes x gpusPerNode = 32 GPUs: with int8-block weights each GPU's "
        "share of meituan/DeepSeek-R1-Block-INT8's 18432-wide layers must be a multiple of 128 (18432 / 32 = 576; "
        "SGLang: 'is not divisible by weight quantization block_n'); use a total of 1, 2, 4, 8 or 16"
    ]


def test_fp8_kv_cache_where_triton_cannot_compile_it():
    assert refused("prod", lambda v: group(v).update(kvCacheDtype="fp8_e4m3")) == [
        f"{G}.kvCacheDtype: fp8_e4m3 stores the KV cache as float8_e4m3fn, and SGLang 0.4.4 runs "
        "meituan/DeepSeek-R1-Block-INT8's MLA attention on Triton kernels, which cannot compile over it on A800-80GB "
        "(compute capability 8.0; Triton supports only fp8e5 there): use fp8_e5m2, or auto"
    ]
    assert run("prod", lambda v: group(v).update(kvCacheDtype="fp8_e5m2")).error is None


def test_capacity_advice_proposes_only_sizes_the_model_can_be_split_to():
    assert refused("prod", lambda v: group(v).update(gpu="A100-40GB")) == [
        f"{G}.nodes: the weights of DeepSeek-R1-Block-INT8 (650.0 GiB, known size of deepseek-r1-block-int8) need "
        "40.6 GiB per GPU on 2 nodes x 8 GPUs, but each GPU keeps 31.6 GiB for weights and KV cache (gpu A100-40GB: "
        "40 GiB x memFractionStatic 0.79, SGLang's default at tp 16), of which at least 10% must stay for the KV "
        "cache, leaving 28.4 GiB for weights: no group of up to 64 nodes of 8 GPUs holds it with a tensor-parallel "
        "size meituan/DeepSeek-R1-Block-INT8 can use (1, 2, 4, 8 or 16): use GPUs with more memory or a smaller "
        "quantization"
    ]


# --- the GPU node ----------------------------------------------------------------------------------------------


def test_pods_must_fit_the_gpu_node():
    def too_big(values):
        g = group(values)
        g["resources"] |= {"memory": "2000Gi"}
        g["network"]["rdmaDevicesPerNode"] = 8
        g |= {"gpusPerNode": 16, "nodes": 1}

    assert refused("prod", too_big) == [
        f"{G}.gpusPerNode: 16 GPUs per pod, but a GPU node has 8 GPUs (gpuNodes.gpus): a pod runs on one node, so "
        "use at most 8 and more nodes",
        f"{G}.network.rdmaDevicesPerNode: 8 devices of rdma/ib per pod, but a GPU node has 4 devices of it "
        "(gpuNodes.rdma)",
        f"{G}.resources.memory: '2000Gi' does not fit a GPU node: it allocates 2000Gi (gpuNodes.memory), the "
        "DaemonSets every GPU node runs (GPU Operator, CNI, node exporter) keep 4Gi (gpuNodes.reserved.memory), "
        + OURS_MEMORY
        + ": request at most '1991Gi'",
    ]


def test_the_platforms_own_pods_on_the_gpu_nodes_are_counted():
    # All but the DaemonSets' reserve (what prod asked for before): the stager and the benchmark have no room.
    def whole_room(values):
        group(values)["resources"] |= {"cpu": "127", "memory": "1996Gi"}

    assert refused("prod", whole_room) == [
        f"{G}.resources.cpu: '127' does not fit a GPU node: it allocates 128 CPUs (gpuNodes.cpu), the DaemonSets "
        "every GPU node runs (GPU Operator, CNI, node exporter) keep 1 (gpuNodes.reserved.cpu), " + OURS_CPU + ": "
        "request at most '124750m'",
        f"{G}.resources.memory: '1996Gi' does not fit a GPU node: it allocates 2000Gi (gpuNodes.memory), the "
        "DaemonSets every GPU node runs (GPU Operator, CNI, node exporter) keep 4Gi (gpuNodes.reserved.memory), "
        + OURS_MEMORY
        + ": request at most '1991Gi'",
    ]

    # Without a benchmark only the stager shares the nodes: it alone is counted.
    def no_benchmark(values):
        whole_room(values)
        del group(values)["benchmark"]

    assert refused("prod", no_benchmark) == [
        f"{G}.resources.cpu: '127' does not fit a GPU node: it allocates 128 CPUs (gpuNodes.cpu), the DaemonSets "
        "every GPU node runs (GPU Operator, CNI, node exporter) keep 1 (gpuNodes.reserved.cpu), and the platform's "
        "own pods on the group's nodes request 250m (250m for the weights stager that model.download runs on a "
        "hostPath modelVolume): request at most '126750m'",
        f"{G}.resources.memory: '1996Gi' does not fit a GPU node: it allocates 2000Gi (gpuNodes.memory), the "
        "DaemonSets every GPU node runs (GPU Operator, CNI, node exporter) keep 4Gi (gpuNodes.reserved.memory), and "
        "the platform's own pods on the group's nodes request 512Mi (512Mi for the weights stager that "
        "model.download runs on a hostPath modelVolume): request at most '1995Gi'",
    ]

    # Weights staged by hand (no download, no stager) and no benchmark: the pod may take all but the reserve.
    def by_hand(values):
        no_benchmark(values)
        group(values)["model"]["source"] = "local"
        del group(values)["model"]["download"]

    assert run("prod", by_hand).error is None


def test_a_node_shape_is_whole_or_unset():
    assert refused("prod", lambda v: v.update(gpuNodes={"cpu": "128"})) == [
        "sglang-platform:gpuNodes.gpus: required: cpu is set, and a node shape is its allocatable cpu, memory and gpus "
        "together (kubectl get node <gpu node> -o jsonpath='{.status.allocatable}')",
        "sglang-platform:gpuNodes.memory: required: cpu is set, and a node shape is its allocatable cpu, memory and "
        "gpus together (kubectl get node <gpu node> -o jsonpath='{.status.allocatable}')",
    ]
    # Unset: nothing to check the pods against (dev declares no node shape).
    assert "gpuNodes" not in stack_values("dev")


def test_a_group_on_other_nodes_names_its_own_shape():
    def smaller_nodes(values):
        group(values)["nodeShape"] = {"cpu": "64", "memory": "1Ti", "gpus": 8, "rdma": {"rdma/ib": 4}}

    assert refused("prod", smaller_nodes) == [
        f"{G}.resources.cpu: '124' does not fit a GPU node: it allocates 64 CPUs (nodeShape.cpu), the DaemonSets "
        "every GPU node runs (GPU Operator, CNI, node exporter) keep 1 (nodeShape.reserved.cpu), " + OURS_CPU + ": "
        "request at most '60750m'",
        f"{G}.resources.memory: '1991Gi' does not fit a GPU node: it allocates 1024Gi (nodeShape.memory), the "
        "DaemonSets every GPU node runs (GPU Operator, CNI, node exporter) keep 4Gi (nodeShape.reserved.memory), "
        + OURS_MEMORY
        + ": request at most '1015Gi'",
    ]


# --- add-ons against Kubernetes -------------------------------------------------------------------------------


def test_an_addon_release_that_does_not_support_the_kubernetes_version():
    assert refused("prod", lambda v: v["versions"].update(kedaChart="2.20.2")) == [
        "sglang-platform:versions.kedaChart: KEDA 2.20.2 is tested on Kubernetes 1.33-1.35 "
        "(keda.sh/docs/2.20/operate/cluster), not 1.30 (versions.kubernetes): pin a release of 2.15, 2.16 or 2.17 in "
        "sglang-platform:versions.kedaChart"
    ]
    # On 1.36 a newer GPU Operator is the fix; no KEDA or Volcano release claims 1.36 yet (warnings, below).
    assert refused("prod", lambda v: v["versions"].update(kubernetes="1.36.3")) == [
        "sglang-platform:versions.gpuOperatorChart: the GPU Operator v24.9.1 is tested on Kubernetes 1.24-1.31 "
        "(NVIDIA/cloud-native-docs gpu-operator/platform-support.rst at 73575d6d (GPU Operator 24.9.1)), not 1.36 "
        "(versions.kubernetes): pin a release of 26.3.2 or a later 26.3 or 26.7 in "
        "sglang-platform:versions.gpuOperatorChart",
    ]


def test_a_feature_the_pinned_release_lacks():
    assert refused("prod", lambda v: v["versions"].update(kedaChart="2.16.1")) == [
        "sglang-platform:versions.kedaChart: KEDA 2.16.1 lacks fallbackBehavior, which inferenceGroups[0].autoscaling "
        "uses: it arrives in 2.17.0 (ScaledObject CRD spec.fallback.behavior (absent in v2.16.1, enum in v2.17.0; Go "
        "module github.com/kedacore/keda/v2 config/crd/bases/keda.sh_scaledobjects.yaml)); pin 2.17.0 or later"
    ]


def test_a_kubernetes_no_release_claims_yet_renders_with_a_warning(caplog):
    caplog.set_level(logging.WARNING)
    result = run("dev", lambda v: v.update(versions={"kubernetes": "1.36.3"}))
    assert result.error is None, result.error
    assert (
        "no KEDA release claims Kubernetes 1.36 yet: 2.20.2 is tested on 1.33-1.35, the newest line (2.20) on "
        "1.33-1.35 (keda.sh/docs/2.20/operate/cluster); proceeding, the live checks verify the APIs"
    ) in notes(caplog)


def test_compatibility_refusals_can_be_turned_into_warnings(caplog):
    """The escape hatch for a cluster that must run an add-on outside its window (e.g. a simulated cluster
    with a mirror of the reference's charts): the refusal is printed, and the stack renders."""
    caplog.set_level(logging.WARNING)

    def simulated(values):
        values["versions"] |= {"kubernetes": "1.36.3", "kedaChart": "2.20.2", "volcanoChart": "1.9.0"}
        values["preflight"] = {"compatibility": False}

    result = run("prod", simulated)
    assert result.error is None, result.error
    assert (
        "sglang-platform:versions.gpuOperatorChart: the GPU Operator v24.9.1 is tested on Kubernetes 1.24-1.31 "
        "(NVIDIA/cloud-native-docs gpu-operator/platform-support.rst at 73575d6d (GPU Operator 24.9.1)), not 1.36 "
        "(versions.kubernetes): pin a release of 26.3.2 or a later 26.3 or 26.7 in "
        "sglang-platform:versions.gpuOperatorChart (not refused: sglang-platform:preflight.compatibility is false)"
    ) in notes(caplog)


# --- stack keys under a typo'd namespace ------------------------------------------------------------------------


def test_a_key_under_a_misspelt_project_namespace_is_refused():
    values = {f"sglang-platform:{k}": harness._encode(v) for k, v in stack_values("dev").items()}
    values |= {f"sglang-platform:{k}": v for k, v in FRONT_END_SECRETS.items()}
    secrets = [f"sglang-platform:{k}" for k in FRONT_END_SECRETS]
    values["sglang-platfrom:namespace"] = "team-a"
    values["kubernetes:context"] = "prod-cluster"  # another namespace, legitimately
    result = harness.run(values, secrets, stack="dev")
    assert result.resources == []
    assert (result.error or "").splitlines()[1:] == [
        "  - sglang-platform:namespace: is set as 'sglang-platfrom:namespace', under the namespace 'sglang-platfrom', "
        "which this program does not read (a typo of 'sglang-platform'?): rename it to sglang-platform:namespace "
        "(`pulumi config rm sglang-platfrom:namespace` and `pulumi config set sglang-platform:namespace ...`, or edit "
        "the stack file)"
    ]


def test_the_offline_render_refuses_a_misspelt_namespace_too(tmp_path):
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    stack["config"]["sglang_platform:requireApiKey"] = True
    path = tmp_path / "Pulumi.typo.yaml"
    path.write_text(yaml.safe_dump(stack))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "render.py"), "--stack-file", str(path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 1
    assert (
        "sglang-platform:requireApiKey: is set as 'sglang_platform:requireApiKey', under the namespace "
        "'sglang_platform'"
    ) in proc.stderr
    assert not (tmp_path / "out" / "manifests.yaml").exists()


# --- config.json at preview --------------------------------------------------------------------------------------


@pytest.fixture
def preview(monkeypatch):
    """A run as `pulumi preview` makes it: the network is allowed, and the model hubs are the local fake."""
    with fake_hub.serve() as endpoints:
        monkeypatch.setenv("SGLANG_PLATFORM_OFFLINE", "0")
        monkeypatch.setenv("HF_ENDPOINT", endpoints.huggingface)
        monkeypatch.setenv("MODELSCOPE_DOMAIN", endpoints.modelscope)
        yield endpoints


def test_prod_reads_its_config_json_at_preview(preview, caplog):
    caplog.set_level(logging.WARNING)
    before = len(fake_hub.FakeHub.seen)
    result = run("prod", lambda v: None)
    assert result.error is None, result.error
    (read,) = fake_hub.FakeHub.seen[before:]
    assert (read["path"], read["query"]) == ("/meituan/DeepSeek-R1-Block-INT8/resolve/main/config.json", "")
    assert not [n for n in notes(caplog) if "config.json" in n]


def test_a_wrong_source_fails_at_preview_not_on_the_gpus(preview):
    def elsewhere(values):
        group(values)["model"]["download"]["repo"] = "meituan/DeepSeek-R1-Block-INT8-Missing"
        group(values)["model"]["path"] = "DeepSeek-R1-Block-INT8"

    (line,) = refused("prod", elsewhere)
    assert line == (
        f"{G}.model.download.repo: meituan/DeepSeek-R1-Block-INT8-Missing does not exist on Hugging Face, or is "
        "private and sglang-platform:hfToken is not set "
        f"({preview.huggingface}/meituan/DeepSeek-R1-Block-INT8-Missing/resolve/main/config.json): check "
        "model.download.repo"
    )

    # The reference's source: ModelScope has no repository of that name (docs/model-weights.md).
    def on_modelscope(values):
        elsewhere(values)
        group(values)["model"]["source"] = "modelscope"
        group(values)["model"]["download"]["revision"] = "master"

    (line,) = refused("prod", on_modelscope)
    assert line == (
        f"{G}.model.download.repo: ModelScope has no repository meituan/DeepSeek-R1-Block-INT8-Missing with a "
        "config.json at revision 'master', or it is private and sglang-platform:modelscopeToken is not set "
        f"({preview.modelscope}/api/v1/models/meituan/DeepSeek-R1-Block-INT8-Missing/repo?Revision=master&"
        "FilePath=config.json): check model.download.repo and revision, or model.source (a model published only on "
        "Hugging Face needs source huggingface)"
    )


def test_the_preview_reads_config_json_from_the_stacks_hub_endpoint(preview, monkeypatch, caplog):
    # This machine's environment names another ModelScope (nothing listens there): the stack's endpoint is the
    # one the stagers download from, so it is the one read.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", nowhere)
    caplog.set_level(logging.WARNING)
    before = len(fake_hub.FakeHub.seen)
    result = run("prod", lambda v: on_modelscope(v).update(modelHubs={"modelscope": preview.modelscope}))
    assert result.error is None, result.error
    (read,) = fake_hub.FakeHub.seen[before:]
    assert read["path"] == "/api/v1/models/meituan/DeepSeek-R1-Block-INT8/repo"
    assert not [n for n in notes(caplog) if "config.json" in n]
    (c,) = result.k8s_object("DaemonSet", "deepseek-r1-weights")["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e.get("value") for e in c["env"]}["MODELSCOPE_ENDPOINT"] == preview.modelscope


def test_a_hub_endpoint_nothing_answers_is_refused_before_anything_is_registered(preview):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert refused("prod", lambda v: on_modelscope(v).update(modelHubs={"modelscope": nowhere})) == [
        f"sglang-platform:modelHubs.modelscope: cannot reach the ModelScope endpoint {nowhere} to read {nowhere}"
        "/api/v1/models/meituan/DeepSeek-R1-Block-INT8/repo?Revision=master&FilePath=config.json (<urlopen error "
        "[Errno 111] Connection refused>): check the URL and the network, or set "
        "sglang-platform:preflight.hubEndpoints to false if only the cluster reaches it"
    ]


def test_a_malformed_hub_endpoint_is_refused_with_the_other_problems():
    def mutate(values):
        values["modelHubs"] = {"huggingface": "hf-mirror.corp.example"}
        group(values)["model"]["download"]["endpoint"] = "https://user:pw@modelscope.corp.example"
        group(values)["gpusPerNode"] = 0

    lines = refused("prod", mutate)
    assert lines == [
        f"{G}.gpusPerNode: Input should be greater than or equal to 1 (got 0)",
        f"{G}.model.download.endpoint: an endpoint URL may not hold credentials (user:password@): it is stored and "
        "rendered in plaintext; put the token in the stack secret (hfToken, modelscopeToken, "
        "s3AccessKeyId/s3SecretAccessKey)",
        "sglang-platform:modelHubs.huggingface: 'hf-mirror.corp.example' is not an endpoint URL: give an http:// or "
        "https:// URL with a host and, at most, a path prefix, e.g. https://hf-mirror.example.com or "
        "http://modelscope.mirrors.svc:8080/ms",
    ]
    assert not any("pw@" in line for line in lines)


def test_a_declared_quantization_must_match_config_json(preview):
    assert refused("prod", lambda v: group(v)["model"].update(quantization="w8a8-int8")) == [
        f"{G}.model.quantization: 'w8a8-int8' does not match config.json of meituan/DeepSeek-R1-Block-INT8 at main "
        "(Hugging Face), which says int8-block (W8A8 INT8 in 128 x 128 blocks): remove model.quantization (it is "
        "read from config.json) or set it to int8-block"
    ]


def test_offline_the_declared_quantization_is_what_is_checked():
    assert run("prod", lambda v: group(v)["model"].update(quantization="int8-block")).error is None
    (line,) = refused("prod", lambda v: group(v)["model"].update(quantization="fp8-block"))
    assert line.startswith(
        f"{G}.gpu: meituan/DeepSeek-R1-Block-INT8 is FP8 (e4m3) in 128 x 128 blocks (model.quantization)"
    )
