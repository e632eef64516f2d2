"""Model download, volume and capacity rules, with the exact messages a user sees (plain pytest, no Pulumi)."""

from __future__ import annotations

import copy
from collections.abc import Set as AbstractSet

import pytest
from conftest import REQUIRED_SECRETS, stack_values

from sglang_platform.config import ConfigError, validate
from sglang_platform.rules.model_cache import startup_budget_minutes


def problems(raw: dict, secrets: AbstractSet[str] = REQUIRED_SECRETS) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(raw, set(secrets))
    return [f"{p.key}: {p.message}" for p in info.value.problems]


def prod(**group) -> dict:
    raw = copy.deepcopy(stack_values("prod"))
    raw["inferenceGroups"][0].update(group)
    return raw


def dev() -> dict:
    return copy.deepcopy(stack_values("dev"))


G = "sglang-platform:inferenceGroups[0]"


def with_second_group(raw: dict, *, keep_pvc: bool = False, download: dict | None = None, **model) -> dict:
    """``raw`` plus a copy of its first group named qwen-too on the same claim, with these changes."""
    second = copy.deepcopy(raw["inferenceGroups"][0])
    second["name"] = "qwen-too"
    second["model"].update(model)
    second["model"]["download"].update(download or {})
    if not keep_pvc:
        del second["modelVolume"]["pvc"]
    raw["inferenceGroups"].append(second)
    return raw


def test_the_prod_topology_fits():
    g = validate(prod(), REQUIRED_SECRETS).inference_groups[0]
    assert (g.nodes, g.gpus_per_node, g.gpu, g.gpu_memory) == (2, 8, "A800-80GB", 80)


def test_deepseek_r1_on_one_node_of_8_x_80_gb_is_refused_with_the_nodes_it_needs():
    assert problems(prod(nodes=1, tensorParallel=8), REQUIRED_SECRETS) == [
        f"{G}.nodes: the weights of DeepSeek-R1-Block-INT8 (650.0 GiB, known size of deepseek-r1-block-int8) need "
        "81.2 GiB per GPU on 1 node x 8 GPUs, but each GPU keeps 64.8 GiB for weights and KV cache (gpu A800-80GB: "
        "80 GiB x memFractionStatic 0.81, SGLang's default at tp 8), of which at least 10% must stay for the KV "
        "cache, leaving 58.3 GiB for weights: set nodes: 2 and tensorParallel: 16, 2 nodes of 8 GPUs"
    ]


def test_a_configured_memory_fraction_is_used():
    [line] = problems(prod(nodes=1, tensorParallel=8, memFractionStatic=0.9), REQUIRED_SECRETS)
    assert "each GPU keeps 72.0 GiB for weights and KV cache (gpu A800-80GB: 80 GiB x memFractionStatic 0.9), " in line


def test_smaller_gpus_need_more_nodes():
    # 40 GiB GPUs hold 28.4 GiB of weights each at tp 16: 650 GiB needs 23 or more GPUs, and 24 or 32 would hold
    # them, but a block-quantized DeepSeek splits only over 1, 2, 4, 8 or 16 (its 2048-wide experts in 128 blocks).
    [line] = problems(prod(gpu="A100-40GB"), REQUIRED_SECRETS)
    assert line.endswith(
        "leaving 28.4 GiB for weights: no group of up to 64 nodes of 8 GPUs holds it with a tensor-parallel size "
        "meituan/DeepSeek-R1-Block-INT8 can use (1, 2, 4, 8 or 16): use GPUs with more memory or a smaller "
        "quantization"
    )
    # Unquantized weights of unknown architecture: the fewest nodes that hold them.
    raw = dev()
    raw["inferenceGroups"][0] |= {"gpuMemoryGiB": 24, "gpusPerNode": 4}
    raw["inferenceGroups"][0]["model"] |= {"path": "Big", "sizeGiB": 120, "download": None}
    raw["inferenceGroups"][0]["modelVolume"]["pvc"]["size"] = "200Gi"
    [line] = problems(raw)
    assert line.endswith("leaving 18.4 GiB for weights: set nodes: 2 and tensorParallel: 8, 2 nodes of 4 GPUs")


def test_a_model_that_fits_nowhere():
    raw = dev()
    raw["inferenceGroups"][0]["gpuMemoryGiB"] = 1
    raw["inferenceGroups"][0]["model"]["sizeGiB"] = 500
    raw["inferenceGroups"][0]["modelVolume"]["pvc"]["size"] = "1Ti"
    assert problems(raw) == [
        f"{G}.nodes: the weights of Qwen2.5-1.5B-Instruct (500.0 GiB, model.sizeGiB) need 500.0 GiB per GPU on "
        "1 node x 1 GPUs, but each GPU keeps 0.8 GiB for weights and KV cache (gpuMemoryGiB 1 x memFractionStatic "
        "0.85), of which at least 10% must stay for the KV cache, leaving 0.8 GiB for weights: no group of up to 64 "
        "nodes of 1 GPU holds it with a tensor-parallel size Qwen/Qwen2.5-1.5B-Instruct can use (1, 2, 4, 6 or 12): "
        "use GPUs with more memory or a smaller quantization"
    ]


def test_capacity_checks_can_be_turned_off():
    raw = prod(nodes=1, tensorParallel=8)
    raw["preflight"] = {"capacity": False}
    assert validate(raw, REQUIRED_SECRETS).inference_groups[0].nodes == 1


def test_unknown_sizes_are_not_guessed():
    raw = prod(nodes=1, tensorParallel=8)
    raw["inferenceGroups"][0]["model"]["path"] = "SomeOtherModel"
    raw["inferenceGroups"][0]["model"]["download"]["repo"] = "team/some-other-model"
    validate(raw, REQUIRED_SECRETS)


def test_the_pvc_must_hold_the_weights_with_headroom():
    raw = dev()
    raw["inferenceGroups"][0]["modelVolume"]["pvc"]["size"] = "3Gi"
    assert problems(raw) == [
        f"{G}.modelVolume.pvc.size: claim 'models' of 3Gi (3.0 GiB) cannot hold the weights "
        "(Qwen2.5-1.5B-Instruct 2.9 GiB) plus 10% headroom: it needs at least 3.2 GiB"
    ]


def test_groups_sharing_a_claim_add_up():
    raw = with_second_group(dev(), path="Other", servedName="other", sizeGiB=16, download={"repo": "team/other"})
    assert problems(raw) == [
        f"{G}.modelVolume.pvc.size: claim 'models' of 20Gi (20.0 GiB) cannot hold the weights (Other 16.0 GiB, "
        "Qwen2.5-1.5B-Instruct 2.9 GiB) plus 10% headroom: it needs at least 20.8 GiB"
    ]


def test_one_claim_created_twice():
    raw = with_second_group(dev(), keep_pvc=True, path="Other", servedName="other", download={"repo": "team/other"})
    message = "claim 'models' is created by 2 groups; let one create it and the others only name it in claimName"
    assert problems(raw) == [
        f"{G}.modelVolume.pvc.create: {message}",
        f"sglang-platform:inferenceGroups[1].modelVolume.pvc.create: {message}",
    ]


def test_two_downloads_into_one_directory():
    raw = with_second_group(dev(), servedName="other", download={"revision": "b" * 40})
    message = (
        "groups qwen-small, qwen-too share the directory 'Qwen2.5-1.5B-Instruct' on one volume but download "
        "different weights into it; give each its own model.path or the same source and revision"
    )
    assert problems(raw) == [
        f"{G}.model.download: {message}",
        f"sglang-platform:inferenceGroups[1].model.download: {message}",
    ]


def test_a_hugging_face_branch_is_not_a_pin():
    raw = dev()
    raw["inferenceGroups"][0]["model"]["download"]["revision"] = "main"
    assert problems(raw) == [
        f"{G}.model.download.revision: 'main' is not a commit id: a Hugging Face branch or tag can move; pin the "
        "40-character commit (the 'Files and versions' history of the repository)"
    ]


MOVING = (
    "is not a commit id, and a branch or tag can move: on a hostPath volume each node fetches it when its stager "
    "starts (first deploy, a node added or replaced), so the nodes of one tensor-parallel group can hold "
    "different weights; pin the 40-character commit, or set model.download.staging.allowMovingRevision: true to "
    "accept that (each node's completion marker then records the commit it got)"
)


def test_a_moving_revision_is_staged_per_node_only_when_allowed():
    # prod stages Hugging Face's main on each node (no commit of it is published), and says it accepts that.
    download = validate(prod(), REQUIRED_SECRETS).inference_groups[0].model.download
    assert download is not None and download.staging.allow_moving_revision
    assert (download.repo, download.revision) == ("meituan/DeepSeek-R1-Block-INT8", "main")
    for revision in ("master", "v1.0"):
        raw = prod()
        raw["inferenceGroups"][0]["model"]["download"] = {
            "repo": "meituan/DeepSeek-R1-Block-INT8",
            "revision": revision,
        }
        assert problems(raw) == [f"{G}.model.download.revision: {revision!r} {MOVING}"]
    # A commit is fixed: no opt-in needed.
    raw = prod()
    raw["inferenceGroups"][0]["model"]["download"] = {"repo": "meituan/DeepSeek-R1-Block-INT8", "revision": "e" * 40}
    validate(raw, REQUIRED_SECRETS)
    # The same opt-in for ModelScope, which keeps the reference's source for clusters that reach only it.
    raw = prod()
    raw["inferenceGroups"][0]["model"]["source"] = "modelscope"
    raw["inferenceGroups"][0]["model"]["download"]["revision"] = "master"
    validate(raw, REQUIRED_SECRETS)
    # One copy on a claim is one fetch: a branch there is the existing upgrade concern, not a mix across nodes.
    raw = dev()
    raw["inferenceGroups"][0]["model"] |= {"source": "modelscope"}
    raw["inferenceGroups"][0]["model"]["download"]["revision"] = "master"
    validate(raw, REQUIRED_SECRETS)


def test_download_keys_follow_the_source():
    raw = dev()
    raw["inferenceGroups"][0]["model"]["download"] = {
        "bucket": "weights",
        "region": "eu-west-1",
        # Every downloading source has an endpoint: here a Hugging Face mirror, so it is not refused.
        "endpoint": "http://hf-mirror.mirrors.svc:8080",
    }
    assert problems(raw) == [
        f"{G}.model.download.bucket: only allowed with source s3",
        f"{G}.model.download.region: only allowed with source s3",
        f"{G}.model.download.repo: required when model.source is huggingface (e.g. deepseek-ai/DeepSeek-R1)",
        f"{G}.model.download.revision: required when model.source is huggingface: pin the weights you serve",
    ]


ALLOWED_URL = (
    "give an http:// or https:// URL with a host and, at most, a path prefix, e.g. https://hf-mirror.example.com or "
    "http://modelscope.mirrors.svc:8080/ms"
)


def test_hub_endpoints_must_be_urls_the_clients_can_use_and_every_one_is_reported():
    raw = dev()
    raw["modelHubs"] = {"huggingface": "hf-mirror.example.com", "modelscope": "https://ms.example.com/?site=cn"}
    raw["inferenceGroups"][0]["model"]["download"]["endpoint"] = "ftp://mirror.example.com"
    assert problems(raw) == [
        f"{G}.model.download.endpoint: 'ftp://mirror.example.com' is not an endpoint URL: {ALLOWED_URL}",
        f"sglang-platform:modelHubs.huggingface: 'hf-mirror.example.com' is not an endpoint URL: {ALLOWED_URL}",
        "sglang-platform:modelHubs.modelscope: 'https://ms.example.com/?site=cn' has a query or fragment, which the "
        f"clients cannot use: {ALLOWED_URL}",
    ]
    raw = dev()
    raw["modelHubs"] = {"huggingface": "https://mirror:99999", "typo": "https://x"}
    assert problems(raw) == [
        "sglang-platform:modelHubs.huggingface: 'https://mirror:99999' is not an endpoint URL (bad port): "
        f"{ALLOWED_URL}",
        "sglang-platform:modelHubs.typo: unknown key (a typo?); allowed here: huggingface, modelscope",
    ]


def test_an_endpoint_with_credentials_is_refused_without_repeating_them():
    raw = dev()
    raw["modelHubs"] = {"huggingface": "https://reader:s3cr3t@hf-mirror.example.com"}
    found = problems(raw)
    assert found == [
        "sglang-platform:modelHubs.huggingface: an endpoint URL may not hold credentials (user:password@): it is "
        "stored and rendered in plaintext; put the token in the stack secret (hfToken, modelscopeToken, "
        "s3AccessKeyId/s3SecretAccessKey)"
    ]
    assert "s3cr3t" not in found[0]


def test_hub_endpoints_are_resolved_group_first():
    raw = dev()
    raw["modelHubs"] = {"huggingface": "https://hf-mirror.example.com", "modelscope": "https://ms.example.com"}
    cfg = validate(raw, REQUIRED_SECRETS)
    g = cfg.inference_groups[0]
    assert cfg.model_hubs.endpoint(g.model.source, g.model.download) == (
        "https://hf-mirror.example.com",
        ("modelHubs", "huggingface"),
    )
    raw["inferenceGroups"][0]["model"]["download"]["endpoint"] = "http://hf-proxy.mirrors.svc/hf"
    g = validate(raw, REQUIRED_SECRETS).inference_groups[0]
    assert cfg.model_hubs.endpoint(g.model.source, g.model.download) == (
        "http://hf-proxy.mirrors.svc/hf",
        ("model", "download", "endpoint"),
    )
    # An S3 group's endpoint is its store's, never a hub's.
    assert cfg.model_hubs.endpoint("s3", g.model.download) == (None, ())
    assert validate(dev(), REQUIRED_SECRETS).model_hubs.endpoint("huggingface", None) == (None, ())


def test_s3_needs_a_bucket_and_a_service_account_works_on_a_host_path_too():
    raw = prod()
    raw["inferenceGroups"][0]["model"]["source"] = "s3"
    # The staging DaemonSet runs the hostPath download now, and it can use the ServiceAccount (IRSA).
    raw["inferenceGroups"][0]["model"]["download"] = {"prefix": "r1/", "serviceAccountName": "reader"}
    assert problems(raw, REQUIRED_SECRETS) == [f"{G}.model.download.bucket: required when model.source is s3"]


def test_staging_settings_only_apply_to_a_host_path():
    raw = dev()
    raw["inferenceGroups"][0]["model"]["download"]["staging"] = {"keepRevisions": 0}
    assert problems(raw) == [
        f"{G}.model.download.staging: only applies to modelVolume.type hostPath (a copy on every node); a pvc is "
        "filled once by the download Job"
    ]
    raw = prod()
    raw["inferenceGroups"][0]["model"]["download"]["staging"] = {"keepRevisions": 11, "nodeSelector": {}}
    assert problems(raw, REQUIRED_SECRETS) == [
        f"{G}.model.download.staging.keepRevisions: Input should be less than or equal to 10 (got 11)"
    ]


def test_hand_staged_weights_take_no_download():
    raw = dev()
    raw["inferenceGroups"][0]["model"]["source"] = "local"
    assert problems(raw) == [
        f"{G}.model.download: not allowed with source local (weights staged by hand); set model.source to "
        "huggingface, modelscope or s3 to have the platform download them"
    ]


def test_pvc_settings_need_a_pvc_and_a_size():
    raw = prod()
    raw["inferenceGroups"][0]["modelVolume"]["pvc"] = {"storageClass": "cephfs"}
    assert problems(raw, REQUIRED_SECRETS) == [
        f"{G}.modelVolume.pvc: only allowed when type is pvc",
        f"{G}.modelVolume.pvc.size: required when create is true (e.g. 800Gi)",
    ]


def test_field_rules_of_the_new_keys():
    raw = dev()
    g = raw["inferenceGroups"][0]
    g["model"]["download"].update(prefix="/abs", maxWorkers=0, bucket="Bad_Bucket")
    g["modelVolume"]["pvc"].update(size="lots", accessMode="ReadOnlyMany")
    g["gpuMemoryGiB"] = 0
    raw["versions"] = {"huggingfaceHub": "huggingface_hub>=2"}
    assert problems(raw) == [
        f"{G}.gpuMemoryGiB: Input should be greater than 0 (got 0)",
        f"{G}.model.download.bucket: 'Bad_Bucket' does not match ^[a-z0-9][a-z0-9.-]{{1,61}}[a-z0-9]$",
        f"{G}.model.download.maxWorkers: Input should be greater than or equal to 1 (got 0)",
        f"{G}.model.download.prefix: '/abs' must be a key prefix without a leading '/' or '..'",
        f"{G}.modelVolume.pvc.accessMode: Input should be 'ReadWriteMany' or 'ReadWriteOnce' (got 'ReadOnlyMany')",
        f"{G}.modelVolume.pvc.size: 'lots' is not a Kubernetes quantity (a number with an optional suffix: Ki Mi Gi "
        "Ti Pi Ei, n u m k M G T P E, or an exponent such as 1e3)",
        "sglang-platform:versions.huggingfaceHub: 'huggingface_hub>=2' does not match "
        "^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+$",
    ]


def test_startup_budget():
    cfg = validate(prod(), REQUIRED_SECRETS)
    g = cfg.inference_groups[0]
    assert startup_budget_minutes(g, 642.0) == 90  # configured 90 > 10 + 64.2
    assert (
        startup_budget_minutes(
            g.model_copy(update={"probes": g.probes.model_copy(update={"startup_timeout_minutes": 5})}), 642.0
        )
        == 75
    )
    assert startup_budget_minutes(g, None) == 90


def test_the_documented_refusal_is_what_a_user_sees():
    from conftest import ROOT

    raw = dev()
    raw["modelHubs"] = {"huggingface": "hf-mirror.corp.example"}
    (line,) = problems(raw)
    assert f"\n{line}\n" in (ROOT / "docs" / "model-weights.md").read_text()
