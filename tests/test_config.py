"""The config models and cross-field rules, with plain pytest (no Pulumi)."""

from __future__ import annotations

import copy
from collections.abc import Set as AbstractSet

import pytest
import yaml
from conftest import ROOT, stack_values

from sglang_platform.config import ConfigError, InferenceGroup, PlatformConfig, Versions, validate
from sglang_platform.config.errors import Problem, refusal

# Open WebUI and monitoring are on in both shipped stacks; their secrets are set unless a test says otherwise.
FRONT_END = frozenset({"webuiSecretKey", "grafanaAdminPassword"})
ALL_SECRETS = FRONT_END | {"apiKey"}


def problems(raw: dict, secrets: AbstractSet[str] = FRONT_END) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(raw, set(secrets))
    return str(info.value).splitlines()[1:]


def prod_with(**group_changes) -> dict:
    raw = copy.deepcopy(stack_values("prod"))
    raw["inferenceGroups"][0].update(group_changes)
    return raw


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stacks_validate(stack):
    cfg = validate(stack_values(stack), ALL_SECRETS)
    assert cfg.inference_groups


def test_prod_is_the_reference_topology():
    g = validate(stack_values("prod"), ALL_SECRETS).inference_groups[0]
    assert (g.nodes, g.gpus_per_node, g.tp_size) == (2, 8, 16)
    assert g.network.fabric == "infiniband"
    assert g.network.hcas == ["mlx5_0", "mlx5_1", "mlx5_4", "mlx5_5"]
    # The reference fetched from ModelScope; Meituan's INT8 conversion is on Hugging Face.
    assert g.model.source == "huggingface"


def test_every_problem_is_reported_at_once_with_its_key():
    raw = prod_with(gpusPerNode=0, name="Bad_Name", typo=1, resources={"cpu": "4", "memory": "lots"})
    raw["versions"] |= {"sglangImage": "lmsysorg/sglang:latest"}
    lines = problems(raw, ALL_SECRETS)
    assert lines == [
        "  - sglang-platform:inferenceGroups[0].gpusPerNode: Input should be greater than or equal to 1 (got 0)",
        "  - sglang-platform:inferenceGroups[0].name: 'Bad_Name' does not match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ "
        "(a DNS-1123 label: lower-case letters, digits and '-')",
        "  - sglang-platform:inferenceGroups[0].resources.memory: 'lots' is not a Kubernetes quantity (a number "
        "with an optional suffix: Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent such as 1e3)",
        "  - sglang-platform:inferenceGroups[0].typo: unknown key (a typo?); allowed here: preset, name, model, "
        "modelVolume, replicas, nodes, gpusPerNode, gpu, gpuMemoryGiB, tensorParallel, contextLength, "
        "memFractionStatic, kvCacheDtype, distTimeoutSeconds, dpAttentionSize, expertParallel, speculative, "
        "chunkedPrefillSize, maxRunningRequests, cudaGraphMaxBs, cudaGraphBatchSizes, torchCompileMaxBs, "
        "reasoningParser, toolCallParser, enableMetrics, metricsForAllSchedulers, extraArgs, network, resources, "
        "ports, probes, service, scheduler, restartPolicy, rollout, podDisruptionBudget, nodeSelector, tolerations, "
        "autoscaling, benchmark, nodeShape, deepGemm, pageSize, disaggregation",
        "  - sglang-platform:versions.sglangImage: image 'lmsysorg/sglang:latest' uses the floating tag 'latest': "
        "pin a version tag (e.g. v0.4.3.post2) or a @sha256 digest",
    ]


def test_header_counts_problems():
    with pytest.raises(ConfigError) as info:
        validate(prod_with(gpusPerNode=0), ALL_SECRETS)
    assert str(info.value).splitlines()[0] == "invalid stack configuration (1 problem):"


def test_parallelism_must_match_the_gpus():
    assert problems(prod_with(tensorParallel=8), ALL_SECRETS) == [
        "  - sglang-platform:inferenceGroups[0].tensorParallel: tensorParallel 8 must equal nodes x gpusPerNode "
        "= 2 x 8 = 16 (SGLang shards the model over every GPU of the group)"
    ]


def test_tensor_parallel_defaults_to_all_gpus_of_the_group():
    raw = prod_with()
    del raw["inferenceGroups"][0]["tensorParallel"]
    assert validate(raw, ALL_SECRETS).inference_groups[0].tp_size == 16


def test_group_name_length_leaves_room_for_lws_names():
    lines = problems(prod_with(name="a" * 41), ALL_SECRETS)
    assert lines == [
        f"  - sglang-platform:inferenceGroups[0].name: String should have at most 40 characters (got {'a' * 41!r})"
    ]
    validate(prod_with(name="a" * 40), ALL_SECRETS)


def test_duplicate_names_and_served_names():
    raw = copy.deepcopy(stack_values("prod"))
    raw["inferenceGroups"].append(copy.deepcopy(raw["inferenceGroups"][0]))
    raw["volcano"]["queue"]["capability"]["nvidia.com/gpu"] = "64"  # room for the copy in the Volcano queue
    assert problems(raw, ALL_SECRETS) == [
        "  - sglang-platform:inferenceGroups[0].model.servedName: served model name 'deepseek-r1' is used by 2 "
        "groups; each must be unique",
        "  - sglang-platform:inferenceGroups[0].name: group name 'deepseek-r1' is used by 2 groups; "
        "each must be unique",
        "  - sglang-platform:inferenceGroups[1].model.servedName: served model name 'deepseek-r1' is used by 2 "
        "groups; each must be unique",
        "  - sglang-platform:inferenceGroups[1].name: group name 'deepseek-r1' is used by 2 groups; "
        "each must be unique",
    ]


@pytest.mark.parametrize(
    ("image", "ok"),
    [
        ("lmsysorg/sglang:v0.4.4-cu124", True),
        ("registry.local:5000/sglang@sha256:" + "a" * 64, True),
        ("lmsysorg/sglang:main", False),
        ("lmsysorg/sglang", False),
        ("registry.local:5000/sglang", False),
        ("lmsysorg/sglang:latest", False),
    ],
)
def test_images_must_be_pinned(image, ok):
    raw = prod_with()
    raw["versions"] |= {"sglangImage": image, "sglangVersion": "0.4.4"}
    if ok:
        validate(raw, ALL_SECRETS)
    else:
        (line,) = problems(raw, ALL_SECRETS)
        assert line.startswith("  - sglang-platform:versions.sglangImage: image ")


def test_digest_without_version_needs_sglang_version():
    raw = prod_with()
    raw["versions"] |= {"sglangImage": "lmsysorg/sglang@sha256:" + "b" * 64}
    assert problems(raw, ALL_SECRETS) == [
        "  - sglang-platform:versions.sglangVersion: cannot tell the SGLang release of 'lmsysorg/sglang@sha256:"
        + "b" * 64
        + "': set versions.sglangVersion (e.g. 0.4.3.post2) so flags can be checked against it"
    ]


def test_ports_in_range_and_distinct():
    assert problems(prod_with(ports={"http": 70000, "distInit": 0}), ALL_SECRETS) == [
        "  - sglang-platform:inferenceGroups[0].ports.distInit: Input should be greater than or equal to 1 (got 0)",
        "  - sglang-platform:inferenceGroups[0].ports.http: Input should be less than or equal to 65535 (got 70000)",
    ]
    assert problems(prod_with(ports={"http": 9000, "distInit": 9000}), ALL_SECRETS) == [
        "  - sglang-platform:inferenceGroups[0].ports.distInit: port 9000 is also ports.http; the two must differ"
    ]


def test_dist_timeout_follows_the_pinned_release():
    dev = copy.deepcopy(stack_values("dev"))
    dev["inferenceGroups"][0]["distTimeoutSeconds"] = 3600
    # The current set's SGLang (0.5.23, what dev runs) has the flag; the reference set's 0.4.3.post2 does not.
    assert validate(dev, FRONT_END).inference_groups[0].dist_timeout_seconds == 3600
    dev["versions"] = {"set": "reference"}
    assert problems(dev) == [
        "  - sglang-platform:inferenceGroups[0].distTimeoutSeconds: --dist-timeout needs SGLang 0.4.3.post3 or "
        "later; the pinned release is 0.4.3.post2 (sglang-platform:versions.sglangImage)"
    ]
    dev["versions"] = {"sglangImage": "lmsysorg/sglang:v0.4.3.post3-cu124"}
    assert validate(dev, FRONT_END).inference_groups[0].dist_timeout_seconds == 3600
    # A digest's release is sglangVersion, and it is the key the message names.
    dev["versions"] = {"sglangImage": "lmsysorg/sglang@sha256:" + "c" * 64, "sglangVersion": "0.4.3.post2"}
    assert problems(dev) == [
        "  - sglang-platform:inferenceGroups[0].distTimeoutSeconds: --dist-timeout needs SGLang 0.4.3.post3 or "
        "later; the pinned release is 0.4.3.post2 (sglang-platform:versions.sglangVersion)"
    ]


def test_extra_args_may_not_shadow_typed_settings():
    lines = problems(
        prod_with(
            extraArgs=[
                "--tp",
                "8",
                "--chunked-prefill-size",
                "8192",
                "--port=1",
                "stray",
                "--enable-torch-compile",
                "x",
            ]
        ),
        ALL_SECRETS,
    )
    assert lines == [
        "  - sglang-platform:inferenceGroups[0].extraArgs[0]: --tp is an abbreviation of --tp-size, which the "
        "platform sets from tensorParallel: use that key",
        "  - sglang-platform:inferenceGroups[0].extraArgs[2]: --chunked-prefill-size is set by the platform from "
        "chunkedPrefillSize: use that key",
        "  - sglang-platform:inferenceGroups[0].extraArgs[4]: --port is set by the platform from ports.http: use "
        "that key",
        "  - sglang-platform:inferenceGroups[0].extraArgs[5]: 'stray' follows --port, which takes one value",
        "  - sglang-platform:inferenceGroups[0].extraArgs[6]: --enable-torch-compile is set by the platform from "
        "torchCompileMaxBs: use that key",
        "  - sglang-platform:inferenceGroups[0].extraArgs[7]: 'x' follows --enable-torch-compile, which takes no value",
    ]


def test_shm_must_fit_in_memory():
    assert problems(prod_with(resources={"cpu": "8", "memory": "64Gi", "shmSize": "64Gi"}), ALL_SECRETS) == [
        "  - sglang-platform:inferenceGroups[0].resources.shmSize: 64Gi must be below resources.memory (64Gi): "
        "a memory-backed /dev/shm counts against the pod's memory limit"
    ]


def test_fabric_rules():
    tcp_with_ib = prod_with()
    tcp_with_ib["inferenceGroups"][0]["network"] = {"fabric": "tcp", "hcas": ["mlx5_0"]}
    assert problems(tcp_with_ib, ALL_SECRETS) == [
        "  - sglang-platform:inferenceGroups[0].network.hcas: only allowed with fabric infiniband"
    ]
    ib_without_devices = prod_with()
    ib_without_devices["inferenceGroups"][0]["network"] = {"fabric": "infiniband", "hcas": ["mlx5_0"]}
    assert problems(ib_without_devices, ALL_SECRETS) == [
        "  - sglang-platform:inferenceGroups[0].network.rdmaDevicesPerNode: fabric infiniband needs at least 1 "
        "(without an RDMA device NCCL silently falls back to TCP)"
    ]


def test_model_volume_rules():
    assert problems(prod_with(modelVolume={"type": "pvc", "hostPath": "/x"}), ALL_SECRETS) == [
        # prod's staging settings (allowMovingRevision) belong to its hostPath volume; on a claim Hugging Face's
        # main is no pin at all.
        "  - sglang-platform:inferenceGroups[0].model.download.revision: 'main' is not a commit id: a Hugging Face "
        "branch or tag can move; pin the 40-character commit (the 'Files and versions' history of the repository)",
        "  - sglang-platform:inferenceGroups[0].model.download.staging: only applies to modelVolume.type hostPath "
        "(a copy on every node); a pvc is filled once by the download Job",
        "  - sglang-platform:inferenceGroups[0].modelVolume.claimName: required when type is pvc",
        "  - sglang-platform:inferenceGroups[0].modelVolume.hostPath: only allowed when type is hostPath",
    ]
    assert problems(prod_with(modelVolume={"type": "hostPath", "hostPath": "relative/dir"}), ALL_SECRETS) == [
        "  - sglang-platform:inferenceGroups[0].modelVolume.hostPath: 'relative/dir' must be an absolute path "
        "without '..'"
    ]


def test_api_key_secret_rules():
    assert problems(stack_values("prod")) == [
        "  - sglang-platform:apiKey: required secret is not set (requireApiKey is true): run "
        "`pulumi config set --secret sglang-platform:apiKey <key>` or set sglang-platform:requireApiKey to false"
    ]
    raw = stack_values("dev") | {"apiKey": "plaintext"}
    assert problems(raw) == [
        "  - sglang-platform:apiKey: is a secret but is stored in plaintext: run `pulumi config rm "
        "sglang-platform:apiKey` and `pulumi config set --secret sglang-platform:apiKey <value>`"
    ]


def test_unknown_top_level_key_lists_allowed_keys():
    assert problems(stack_values("dev") | {"inferenceGroup": []}) == [
        "  - sglang-platform:inferenceGroup: unknown key (a typo?); allowed here: namespace, requireApiKey, "
        "apiAccess, versions, inferenceGroups, gateway, openWebui, monitoring, keda, modelHubs, preflight, "
        "gpuOperator, volcano, lws, chartMirror, gpuNodes, and the secrets apiKey, webuiSecretKey, "
        "grafanaAdminPassword, hfToken, modelscopeToken, s3AccessKeyId, s3SecretAccessKey"
    ]


def test_models_are_usable_from_python_with_snake_case():
    g = InferenceGroup(
        name="tiny",
        model={"path": "m", "served_name": "tiny"},
        model_volume={"type": "pvc", "claim_name": "w"},
        gpus_per_node=1,
        resources={"cpu": "2", "memory": "8Gi", "shm_size": "1Gi"},
    )
    assert g.model_path == "/models/m"


def test_pulumi_yaml_declares_every_top_level_key_with_the_model_defaults():
    config = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    # Provider settings (kubernetes:...) live there too; they are not keys of this project.
    declared = {k: v for k, v in config.items() if k.startswith("sglang-platform:")}
    fields = {f.alias: f for f in PlatformConfig.model_fields.values()}
    assert set(declared) == {f"sglang-platform:{k}" for k in fields}
    for alias, field in fields.items():
        decl = declared[f"sglang-platform:{alias}"]
        assert decl["description"]
        if field.is_required():
            assert "default" not in decl, alias
        else:
            default = field.get_default(call_default_factory=True)
            expected = default.model_dump(exclude_defaults=True) if hasattr(default, "model_dump") else default
            assert decl["default"] == expected, alias


def test_pulumi_yaml_makes_up_after_destroy_adopt_the_kept_objects():
    config = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert {k: v for k, v in config.items() if not k.startswith("sglang-platform:")} == {
        "kubernetes:upsertExistingObjects": {"value": True}
    }


def test_an_odd_unknown_key_is_quoted_so_each_problem_stays_on_one_line():
    raw = copy.deepcopy(stack_values("dev"))
    raw["versions"] = {"bad\nkey": 1}
    # Every field of Versions under its stack spelling; new pins extend the list without editing this test.
    allowed = [field.alias or name for name, field in Versions.model_fields.items()]
    assert allowed[:4] == ["set", "sglangImage", "sglangVersion", "kubernetes"]
    assert problems(raw) == [
        f'  - sglang-platform:versions["bad\\nkey"]: unknown key (a typo?); allowed here: {", ".join(allowed)}'
    ]


def test_every_refusal_counts_its_problems_in_one_form():
    """The stack's ConfigError and each component's ValueError share it (one problem is "1 problem")."""
    assert refusal("SglangGateway 'g': invalid config", ["port: taken"]) == (
        "SglangGateway 'g': invalid config (1 problem):\n  - port: taken"
    )
    assert str(ConfigError([Problem(("namespace",), "b"), Problem(("apiKey",), "a")])) == (
        "invalid stack configuration (2 problems):\n  - sglang-platform:apiKey: a\n  - sglang-platform:namespace: b"
    )
    assert Problem(("inferenceGroups", 0, "name"), "taken").local == "inferenceGroups[0].name: taken"
