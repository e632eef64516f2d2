"""Prefill/decode disaggregation (docs/disaggregation.md): a service's two roles as LeaderWorkerSets, their
exact flags, labels and annotations, the gateway in PD mode on the pair's revision, the rules that refuse what
cannot run, each role's autoscaler, monitoring split by role, and the example stack against SGLang's own."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import (
    API_KEY,
    Capability,
    _cached_run,
    container,
    env_map,
    run_with,
    stack_values,
    unavailable,
)
from promql import grafana_to_promql, known_metrics, metric_names, run_promtool, write_yaml
from test_gateway import lws_pods

from sglang_platform.components import gateway as gw
from sglang_platform.components.autoscaling import scaled_object_spec
from sglang_platform.config import ConfigError, validate
from sglang_platform.config.autoscaling import GroupAutoscaling
from sglang_platform.config.monitoring import Slo
from sglang_platform.config.stack import InferenceGroup
from sglang_platform.facts.sglang import shipped_releases
from sglang_platform.render import alerts, dashboard
from sglang_platform.render.sglang_pods import PD_REVISION_LABEL, pd_revision
from tools import gateway_flags, harness

STACK = "pd-h200"
SECRETS = {"apiKey": API_KEY}
ALL = frozenset({"apiKey", "webuiSecretKey", "grafanaAdminPassword"})
NS = "deepseek"

PREFILL_ARGS = (
    "--model-path /models/DeepSeek-R1 --served-model-name deepseek-r1 --tp-size 8 --trust-remote-code "
    "--context-length 32768 --mem-fraction-static 0.7 --page-size 64 --attn-dp-size 8 --moe-a2a-backend deepep "
    "--disaggregation-mode prefill --disaggregation-transfer-backend mooncake --disaggregation-bootstrap-port 8998 "
    "--disaggregation-ib-device mlx5_bond_0,mlx5_bond_1,mlx5_bond_2,mlx5_bond_3 --chunked-prefill-size 524288 "
    "--max-running-requests 1024 --reasoning-parser deepseek-r1 --enable-metrics --host 0.0.0.0 --port 8000 "
    "--api-key $(SGLANG_API_KEY) --max-prefill-tokens 32768 --ep-dispatch-algorithm dynamic --eplb-algorithm "
    "deepseek --enable-dp-lm-head --disable-radix-cache --ep-num-redundant-experts 32 --moe-dense-tp-size 1"
)
DECODE_ARGS = (
    "--model-path /models/DeepSeek-R1 --served-model-name deepseek-r1 --tp-size 8 --trust-remote-code "
    "--context-length 32768 --mem-fraction-static 0.849 --page-size 64 --attn-dp-size 8 --moe-a2a-backend deepep "
    "--disaggregation-mode decode --disaggregation-transfer-backend mooncake --disaggregation-bootstrap-port 8998 "
    "--disaggregation-ib-device mlx5_bond_0,mlx5_bond_1,mlx5_bond_2,mlx5_bond_3 --chunked-prefill-size 262144 "
    "--max-running-requests 2048 --cuda-graph-max-bs-decode 64 --reasoning-parser deepseek-r1 --enable-metrics "
    "--host 0.0.0.0 --port 8000 --api-key $(SGLANG_API_KEY) --enable-dp-lm-head --ep-num-redundant-experts 32 "
    "--moe-dense-tp-size 1"
)


@pytest.fixture(scope="module")
def pd() -> harness.RunResult:
    return _cached_run(STACK, True)


def role_template(result: harness.RunResult, role: str, template: str = "workerTemplate") -> dict:
    spec = result.k8s_object("LeaderWorkerSet", f"deepseek-r1-{role}")["spec"]["leaderWorkerTemplate"]
    return spec[template]


def revision_of(result: harness.RunResult) -> str:
    return role_template(result, "prefill")["metadata"]["labels"][PD_REVISION_LABEL]


def gateway_args(result: harness.RunResult) -> list[str]:
    return container(result.k8s_object("Deployment", "deepseek-r1-gateway")["spec"]["template"])["args"]


def selectors(args: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    p, d = args.index("--prefill-selector"), args.index("--decode-selector")
    prefill = dict(w.split("=", 1) for w in args[p + 1 : d])
    decode = dict(w.split("=", 1) for w in args[d + 1 : args.index("--policy")])
    return prefill, decode


def problems(mutate) -> list[str]:
    values = copy.deepcopy(stack_values(STACK))
    mutate(values)
    try:
        validate(values, ALL)
    except ConfigError as error:
        return [f"{p.key}: {p.message}" for p in error.problems]
    return []


def service(values: dict) -> dict:
    return values["inferenceGroups"][0]


# --- each role as its own LeaderWorkerSet -------------------------------------------------------------------


def test_each_role_is_its_own_leader_worker_set_with_its_exact_flags(pd):
    names = sorted(o["metadata"]["name"] for o in harness.kubernetes_objects(pd) if o["kind"] == "LeaderWorkerSet")
    assert names == ["deepseek-r1-decode", "deepseek-r1-prefill"]
    for role, expected in (("prefill", PREFILL_ARGS), ("decode", DECODE_ARGS)):
        lws = pd.k8s_object("LeaderWorkerSet", f"deepseek-r1-{role}")["spec"]
        assert (lws["replicas"], lws["leaderWorkerTemplate"]["size"]) == (1, 1)
        server = container(role_template(pd, role))
        assert server["image"] == "lmsysorg/sglang:v0.5.23-cu130"
        assert server["command"] == ["python3", "-m", "sglang.launch_server"]
        assert " ".join(server["args"]) == expected
        assert server["resources"]["limits"] == {
            "cpu": "96",
            "memory": "1600Gi",
            "nvidia.com/gpu": "8",
            "rdma/ib": "4",
        }


def test_both_roles_get_the_infiniband_nvshmem_and_mooncake_environment(pd):
    for role in ("prefill", "decode"):
        env = env_map(container(role_template(pd, role)))
        assert {k: v for k, v in env.items() if k.startswith(("NCCL_IB", "NVSHMEM", "MC_"))} == {
            "NCCL_IB_DISABLE": "0",
            "NCCL_IB_HCA": "mlx5_bond_0,mlx5_bond_1,mlx5_bond_2,mlx5_bond_3",
            "NCCL_IB_CUDA_SUPPORT": "1",
            "NCCL_IB_GID_INDEX": "3",
            # DeepEP's NVSHMEM over the same HCAs, and Mooncake's GID index
            "NVSHMEM_HCA_LIST": "mlx5_bond_0,mlx5_bond_1,mlx5_bond_2,mlx5_bond_3",
            "NVSHMEM_IB_GID_INDEX": "3",
            "MC_GID_INDEX": "3",
        }
        security = container(role_template(pd, role))["securityContext"]
        assert security == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["IPC_LOCK"]}}
        spec = role_template(pd, role)["spec"]
        # No host network, host IPC, privileged mode or /dev/infiniband host path (docs/disaggregation.md).
        assert not {"hostNetwork", "hostIPC"} & set(spec)
        assert not [v for v in spec["volumes"] if v.get("hostPath", {}).get("path") == "/dev/infiniband"]


def test_the_prefill_leader_announces_its_bootstrap_port(pd):
    prefill = role_template(pd, "prefill")
    assert prefill["metadata"]["annotations"]["sglang.ai/bootstrap-port"] == "8998"
    assert container(prefill)["ports"] == [
        {"name": "http", "containerPort": 8000, "protocol": "TCP"},
        {"name": "bootstrap", "containerPort": 8998, "protocol": "TCP"},
    ]
    decode = role_template(pd, "decode")
    assert "sglang.ai/bootstrap-port" not in decode["metadata"]["annotations"]
    assert container(decode)["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_a_multi_node_role_annotates_only_its_leader():
    def two_node_prefill(values):
        service(values)["disaggregation"]["prefill"] |= {
            "nodes": 2,
            "tensorParallel": 16,
            "dpAttentionSize": 16,
            # a node-local kernel cache cannot be precompiled across nodes (the rule runs on the role)
            "deepGemm": {"cache": {"type": "hostPath", "hostPath": "/var/cache/dg"}, "precompile": False},
        }

    result = run_with(STACK, two_node_prefill, secrets=SECRETS)
    assert result.error is None, result.error
    spec = result.k8s_object("LeaderWorkerSet", "deepseek-r1-prefill")["spec"]["leaderWorkerTemplate"]
    assert spec["size"] == 2
    assert spec["leaderTemplate"]["metadata"]["annotations"]["sglang.ai/bootstrap-port"] == "8998"
    assert "sglang.ai/bootstrap-port" not in spec["workerTemplate"]["metadata"]["annotations"]
    worker = container(spec["workerTemplate"])["args"]
    assert worker[worker.index("--disaggregation-mode") + 1] == "prefill"
    assert worker[worker.index("--node-rank") + 1] == "$(LWS_WORKER_INDEX)"
    # decode stays on one node
    assert result.k8s_object("LeaderWorkerSet", "deepseek-r1-decode")["spec"]["leaderWorkerTemplate"]["size"] == 1


def test_the_roles_share_the_services_key_and_reach_each_other(pd):
    secrets = [o["metadata"]["name"] for o in harness.kubernetes_objects(pd) if o["kind"] == "Secret"]
    assert "deepseek-r1-api-key" in secrets and not [s for s in secrets if s.startswith("deepseek-r1-prefill")]
    for role in ("prefill", "decode"):
        env = env_map(container(role_template(pd, role)))
        assert env["SGLANG_API_KEY"] == {"secretKeyRef": {"name": "deepseek-r1-api-key", "key": "api-key"}}
        policy = pd.k8s_object("NetworkPolicy", f"deepseek-r1-{role}-ingress")["spec"]
        assert policy["podSelector"] == {"matchLabels": {"leaderworkerset.sigs.k8s.io/name": f"deepseek-r1-{role}"}}
        # every port from both roles of the service (bootstrap, transfer messages, NCCL within the role)
        assert policy["ingress"][0] == {
            "from": [{"podSelector": {"matchLabels": {"sglang-platform.io/pd-service": "deepseek-r1"}}}]
        }
        assert policy["ingress"][1]["ports"] == [{"protocol": "TCP", "port": 8000}]


# --- the gateway in PD mode, on the pair's revision -------------------------------------------------------


def test_the_gateway_runs_in_pd_mode_on_the_revision_of_both_roles(pd):
    args = gateway_args(pd)
    rev = revision_of(pd)
    assert rev == role_template(pd, "decode")["metadata"]["labels"][PD_REVISION_LABEL]
    assert args[:10] == [
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--pd-disaggregation",
        "--service-discovery",
        "--service-discovery-namespace",
        "$(POD_NAMESPACE)",
        "--service-discovery-port",
        "8000",
    ]
    assert "--selector" not in args
    common = {
        "app.kubernetes.io/name": "sglang",
        "leaderworkerset.sigs.k8s.io/worker-index": "0",
        "sglang-platform.io/model": "deepseek-r1",
        "sglang-platform.io/pd-service": "deepseek-r1",
        "sglang-platform.io/pd-revision": rev,
    }
    assert selectors(args) == (
        common | {"sglang-platform.io/pd-role": "prefill"},
        common | {"sglang-platform.io/pd-role": "decode"},
    )
    # the gateway's health checks probe each role's leaders and drop a dead one; on 0.5.23 on /ready, which
    # generates nothing
    assert args[args.index("--health-check-endpoint") : args.index("--request-timeout-secs")] == [
        "--health-check-endpoint",
        "/ready",
        "--health-check-interval-secs",
        "15",
        "--health-check-timeout-secs",
        "5",
        "--health-failure-threshold",
        "3",
        "--health-success-threshold",
        "2",
    ]


def test_the_release_reads_the_pd_flags_as_meant(pd):
    try:
        parser = gateway_flags.load("0.3.2")
    except FileNotFoundError as missing:
        unavailable(Capability.GATEWAY_WHEEL, str(missing))
        raise
    args = gateway_args(pd)
    assert parser.check(args) == []
    parsed = parser.parse(args)
    assert (parsed.pd_disaggregation, parsed.service_discovery, parsed.selector) == (True, True, {})
    prefill, decode = selectors(args)
    assert (parsed.prefill_selector, parsed.decode_selector) == (prefill, decode)
    assert (parsed.prefill_urls, parsed.decode_urls) == ([], [])
    # the name 0.3.2 reads each prefill pod's bootstrap port from, which the prefill leader carries
    assert parsed.bootstrap_port_annotation == "sglang.ai/bootstrap-port"


def test_the_selectors_find_each_roles_leaders_of_one_revision_only(pd):
    prefill_sel, decode_sel = selectors(gateway_args(pd))
    current: dict[str, dict[str, str]] = {}
    for role in ("prefill", "decode"):
        current |= dict(lws_pods(pd.k8s_object("LeaderWorkerSet", f"deepseek-r1-{role}"), 3))
    # the pods of a previous revision still running during a rollout: the same labels but the revision
    old = {f"old-{name}": labels | {PD_REVISION_LABEL: "0000000000"} for name, labels in current.items()}
    pods = current | old
    found_p = sorted(p for p, labels in pods.items() if gw.selector_matches(prefill_sel, labels))
    found_d = sorted(p for p, labels in pods.items() if gw.selector_matches(decode_sel, labels))
    assert found_p == [f"deepseek-r1-prefill-{i}" for i in range(3)]
    assert found_d == [f"deepseek-r1-decode-{i}" for i in range(3)]


def test_a_change_to_either_role_is_a_new_revision_of_both_and_scaling_is_not(pd):
    before = revision_of(pd)

    def decode_change(values):
        service(values)["disaggregation"]["decode"]["cudaGraphMaxBs"] = 128

    changed = run_with(STACK, decode_change, secrets=SECRETS)
    assert changed.error is None, changed.error
    after = revision_of(changed)
    assert after != before
    # the prefill role's pods change too (a new label), so LWS rolls both; the gateway selects the new pair
    assert role_template(changed, "prefill")["metadata"]["labels"][PD_REVISION_LABEL] == after
    assert role_template(changed, "decode")["metadata"]["labels"][PD_REVISION_LABEL] == after
    assert {v[PD_REVISION_LABEL] for v in selectors(gateway_args(changed))} == {after}
    # everything of the prefill pod but the revision label is as before
    old_p, new_p = role_template(pd, "prefill"), role_template(changed, "prefill")
    assert new_p["spec"] == old_p["spec"]

    def more_decode(values):
        service(values)["disaggregation"]["decode"]["replicas"] = 2

    scaled = run_with(STACK, more_decode, secrets=SECRETS)
    assert scaled.error is None, scaled.error
    assert scaled.k8s_object("LeaderWorkerSet", "deepseek-r1-decode")["spec"]["replicas"] == 2
    assert revision_of(scaled) == before


def test_the_revision_is_the_hash_of_both_roles_templates_without_it(pd):
    templates = []
    for role in ("prefill", "decode"):
        template = copy.deepcopy(
            pd.k8s_object("LeaderWorkerSet", f"deepseek-r1-{role}")["spec"]["leaderWorkerTemplate"]
        )
        for part in ("leaderTemplate", "workerTemplate"):
            if part in template:
                del template[part]["metadata"]["labels"][PD_REVISION_LABEL]
        templates.append(template)
    assert pd_revision(templates) == revision_of(pd)


def test_open_webui_talks_to_the_gateway(pd):
    ui = container(pd.k8s_object("Deployment", "open-webui")["spec"]["template"])
    env = env_map(ui)
    assert env["OPENAI_API_BASE_URLS"] == "http://deepseek-r1-gateway.deepseek.svc.cluster.local:8000/v1"
    assert pd.outputs["gateway"]["deepseek-r1"]["group"] == "deepseek-r1"


# --- refused before anything is registered ------------------------------------------------------------------


@pytest.mark.parametrize("image", ["lmsysorg/sglang:v0.4.3.post2-cu124", "lmsysorg/sglang:v0.4.5-cu124"])
def test_a_release_without_pd_is_refused_naming_the_first_that_has_it(image):
    def pin(values):
        values["versions"]["sglangImage"] = image
        service(values)["deepGemm"] = None  # the preset's DeepGEMM cache arrives with 0.4.6 too
        service(values)["reasoningParser"] = None
        service(values)["pageSize"] = None
        service(values)["expertParallel"] = None  # DeepEP arrives with 0.4.5
        for role in ("prefill", "decode"):
            service(values)["disaggregation"][role]["extraArgs"] = []

    release = image.split(":v")[1].split("-")[0]
    assert problems(pin) == [
        "sglang-platform:inferenceGroups[0].disaggregation: prefill/decode disaggregation with mooncake needs SGLang "
        "0.4.6 or later (the first shipped release whose --disaggregation-transfer-backend offers mooncake); the "
        f"pinned release is {release} (sglang-platform:versions.sglangImage)",
    ]


def test_mooncake_needs_infiniband_and_its_devices():
    def tcp(values):
        service(values)["network"] = {}

    assert problems(tcp) == [
        "sglang-platform:inferenceGroups[0].network.fabric: mooncake moves the KV cache from prefill to decode over "
        "RDMA: set fabric infiniband (with network.hcas and network.rdmaDevicesPerNode), or "
        "disaggregation.transferBackend nixl",
    ]

    def excluded(values):
        service(values)["network"]["hcas"] = ["^mlx5_0"]

    assert problems(excluded) == [
        "sglang-platform:inferenceGroups[0].disaggregation.ibDevices: mooncake needs the RDMA devices to move the KV "
        "cache over, and network.hcas (^mlx5_0) names them only by exclusion: list them here (e.g. [mlx5_0, "
        "mlx5_1])",
    ]

    def listed(values):
        excluded(values)
        service(values)["disaggregation"]["ibDevices"] = ["mlx5_1", "mlx5_2"]

    assert problems(listed) == []


def test_nixl_over_tcp_runs_without_devices_and_reads_the_ucx_gid_index():
    def nixl(values):
        service(values)["disaggregation"]["transferBackend"] = "nixl"

    result = run_with(STACK, nixl, secrets=SECRETS)
    assert result.error is None, result.error
    env = env_map(container(role_template(result, "decode")))
    assert (env["UCX_IB_GID_INDEX"], "MC_GID_INDEX" in env) == ("3", False)

    def nixl_tcp(values):
        nixl(values)
        service(values)["network"] = {}
        service(values)["expertParallel"] = None  # DeepEP on one node needs no fabric; keep it simple

    result = run_with(STACK, nixl_tcp, secrets=SECRETS)
    assert result.error is None, result.error
    args = container(role_template(result, "prefill"))["args"]
    assert args[args.index("--disaggregation-transfer-backend") + 1] == "nixl"
    assert "--disaggregation-ib-device" not in args


def test_the_service_is_served_only_through_the_gateway():
    def off(values):
        values["gateway"] = {"enabled": False}

    why = (
        "a disaggregated service is served only through the model gateway in PD mode, which sends each request to a "
        "prefill and a decode server and tells decode where to fetch the KV cache"
    )
    assert problems(off) == [
        f"sglang-platform:inferenceGroups[0].disaggregation: {why}: set sglang-platform:gateway.enabled true"
    ]

    def elsewhere(values):
        values["inferenceGroups"].append(
            {
                "name": "small",
                "model": {"path": "Qwen2.5-1.5B-Instruct", "servedName": "small"},
                "modelVolume": {"type": "pvc", "claimName": "models"},
                "gpusPerNode": 1,
                "resources": {"cpu": "8", "memory": "64Gi", "shmSize": "8Gi"},
            }
        )
        values["gateway"]["groups"] = ["small"]

    assert problems(elsewhere) == [
        f"sglang-platform:inferenceGroups[0].disaggregation: {why}: list 'deepseek-r1' in "
        "sglang-platform:gateway.groups"
    ]


def with_keda(values: dict) -> None:
    """KEDA installed, on a Kubernetes its chart supports (for the autoscaled roles)."""
    values["keda"] = {"mode": "install"}
    values["versions"]["kubernetes"] = "1.34.2"


def test_ratio_bounds_hold_at_every_pair_of_sizes_the_roles_may_run():
    def bounded(low, high, prefill, decode):
        def mutate(values):
            with_keda(values)
            pd = service(values)["disaggregation"]
            pd["decodePerPrefill"] = {"min": low, "max": high}
            pd["prefill"] |= prefill
            pd["decode"] |= decode

        return mutate

    # static sizes inside the bounds, and autoscaled ranges whose extremes stay inside them
    assert problems(bounded(1, 2, {"replicas": 1}, {"replicas": 2})) == []
    assert (
        problems(
            bounded(
                1,
                3,
                {"autoscaling": {"minReplicas": 1, "maxReplicas": 2}},
                {"autoscaling": {"minReplicas": 2, "maxReplicas": 3}},
            )
        )
        == []
    )
    assert problems(bounded(1, 2, {"replicas": 1}, {"replicas": 3})) == [
        "sglang-platform:inferenceGroups[0].disaggregation.decode.replicas: decode may run 3 groups while prefill "
        "runs 1: 3 decode per prefill, above decodePerPrefill.max 2: let decode run at most 2, or prefill at least 2",
    ]
    # prefill may grow to 3 while decode stays at 1; decode may grow to 4 while prefill stays at 1
    assert problems(
        bounded(
            1,
            2,
            {"autoscaling": {"minReplicas": 1, "maxReplicas": 3}},
            {"autoscaling": {"minReplicas": 1, "maxReplicas": 4}},
        )
    ) == [
        "sglang-platform:inferenceGroups[0].disaggregation.decode.autoscaling.maxReplicas: decode may run 4 groups "
        "while prefill runs 1: 4 decode per prefill, above decodePerPrefill.max 2: let decode run at most 2, or "
        "prefill at least 2",
        "sglang-platform:inferenceGroups[0].disaggregation.decode.autoscaling.minReplicas: decode may run 1 group "
        "while prefill runs 3: 0.333333 decode per prefill, below decodePerPrefill.min 1: let decode run at least "
        "3, or prefill at most 1",
    ]
    assert problems(bounded(3, 2, {}, {})) == [
        "sglang-platform:inferenceGroups[0].disaggregation.decodePerPrefill.min: 3 is above decodePerPrefill.max 2",
    ]


def test_decode_must_hold_the_kv_cache_of_its_running_requests():
    def longer(values):
        service(values)["disaggregation"]["tokensPerRequest"] = 4096

    # 8 x H200 at 0.849: 39.0 GiB per GPU after the weights, 576 x 61 x 2 bytes a token, 8 DP-attention groups
    assert problems(longer) == [
        "sglang-platform:inferenceGroups[0].disaggregation.decode.maxRunningRequests: the decode role: 2,048 running "
        "requests of 4,096 tokens (disaggregation.tokensPerRequest) need 8,388,608 tokens of KV cache, and decode "
        "holds 4,761,272 (39.0 GiB per GPU after the weights, 70,272 bytes per token, in each of 8 DP-attention "
        "groups): lower maxRunningRequests to 1,162, set disaggregation.tokensPerRequest to the typical request "
        "(2,324 fits), or give decode more GPUs or memory",
    ]

    def every_request_at_its_longest(values):
        del service(values)["disaggregation"]["tokensPerRequest"]

    (only,) = problems(every_request_at_its_longest)
    assert only.startswith(
        "sglang-platform:inferenceGroups[0].disaggregation.decode.maxRunningRequests: the decode role: 2,048 running "
        "requests of 32,768 tokens (contextLength) need 67,108,864 tokens"
    )


def test_each_role_holds_the_weights_and_one_prompt():
    def half_prefill(values):
        service(values)["disaggregation"]["prefill"] |= {"gpusPerNode": 4, "tensorParallel": 4, "dpAttentionSize": 4}

    (only,) = problems(half_prefill)
    assert only.startswith(
        "sglang-platform:inferenceGroups[0].nodes: the prefill role: the weights of DeepSeek-R1 (642.0 GiB, known "
        "size of deepseek-r1) need 160.5 GiB per GPU on 1 node x 4 GPUs"
    )

    def tight_prefill(values):
        service(values)["contextLength"] = 163840  # DeepSeek-R1's longest
        service(values)["disaggregation"]["prefill"]["memFractionStatic"] = 0.64

    # 0.64 x 140.4 GiB leaves 9.6 GiB a GPU beyond the weights: more than the capacity rule's tenth, less than
    # a 160k prompt needs in one DP-attention group (decode, at 0.849, holds it)
    assert problems(tight_prefill) == [
        "sglang-platform:inferenceGroups[0].contextLength: the prefill role: a prompt of contextLength 163,840 "
        "tokens does not fit its KV cache: it holds 146,791 tokens (9.6 GiB per GPU after the weights, 70,272 bytes "
        "per token, in each of 8 DP-attention groups): give it more GPUs or memory (memFractionStatic), or shorten "
        "contextLength",
    ]


def test_each_role_scales_on_its_own_signals_only():
    def scaled(prefill, decode):
        def mutate(values):
            pd = service(values)["disaggregation"]
            pd["prefill"]["autoscaling"] = {"maxReplicas": 2} | prefill
            pd["decode"]["autoscaling"] = {"maxReplicas": 2} | decode
            values["keda"] = {"mode": "install"}
            values["versions"]["kubernetes"] = "1.34.2"

        return mutate

    assert problems(scaled({"ttftSeconds": 2}, {"interTokenLatencySeconds": 0.05})) == []
    assert problems(scaled({"kvCacheUsage": 0.9}, {"queueDepthPerGroup": 4, "ttftSeconds": 1})) == [
        "sglang-platform:inferenceGroups[0].disaggregation.decode.autoscaling.queueDepthPerGroup: not a signal of "
        "this group: decode scales on its KV-cache usage and the inter-token latency (its queue and first tokens "
        "wait on prefill)",
        "sglang-platform:inferenceGroups[0].disaggregation.decode.autoscaling.ttftSeconds: not a signal of this "
        "group: decode scales on its KV-cache usage and the inter-token latency (its queue and first tokens wait "
        "on prefill)",
        "sglang-platform:inferenceGroups[0].disaggregation.prefill.autoscaling.kvCacheUsage: not a signal of this "
        "group: prefill scales on its queue and the time to first token (its KV cache holds a prompt only until "
        "decode takes it over)",
    ]


def test_a_colocated_group_refuses_the_role_latency_targets():
    def colocated(values):
        values["inferenceGroups"][0]["autoscaling"]["ttftSeconds"] = 1

    result = run_with("prod", colocated, secrets=SECRETS)
    assert result.error is not None
    assert (
        "sglang-platform:inferenceGroups[0].autoscaling.ttftSeconds: not a signal of this group: a colocated group "
        "scales on queue depth and KV-cache usage; the latency targets are for the roles of a disaggregated service"
    ) in result.error


def test_the_volcano_queue_must_hold_every_role_at_its_maximum():
    def queued(values):
        service(values)["scheduler"] = "volcano"
        service(values)["disaggregation"]["decode"]["autoscaling"] = {"maxReplicas": 2}
        values["volcano"] = {"mode": "install", "queue": {"capability": {"nvidia.com/gpu": "16"}}}
        values["lws"] = {"mode": "install", "gangScheduling": True}
        values["keda"] = {"mode": "install"}
        # prod's pins: Kubernetes 1.30 with the Volcano and KEDA lines that support it
        values["versions"] |= {"kubernetes": "1.30.6", "kedaChart": "2.17.2", "volcanoChart": "1.10.2"}

    assert problems(queued) == [
        "sglang-platform:volcano.queue.capability: nvidia.com/gpu 16 is less than the groups in the queue need: "
        "deepseek-r1-prefill (1 replicas + 0 surge) x 1 pods x 8; deepseek-r1-decode (2 autoscaling.maxReplicas + 0 "
        "surge) x 1 pods x 8; in all 24. Groups beyond the capability are never admitted: raise it, or lower "
        "replicas, autoscaling.maxReplicas or rollout.maxSurge",
    ]


def test_a_role_key_is_checked_on_the_role():
    def typo(values):
        service(values)["disaggregation"]["decode"]["cudaGraphMaxBS"] = 1
        service(values)["disaggregation"]["prefill"]["gpusPerNode"] = 0

    lines = problems(typo)
    assert lines[0] == (
        "sglang-platform:inferenceGroups[0].disaggregation.decode.cudaGraphMaxBS: unknown key (a typo?); allowed "
        "here: preset, replicas, nodes, gpusPerNode, gpu, gpuMemoryGiB, tensorParallel, memFractionStatic, "
        "dpAttentionSize, expertParallel, chunkedPrefillSize, maxRunningRequests, cudaGraphMaxBs, cudaGraphBatchSizes, "
        "torchCompileMaxBs, extraArgs, resources, nodeSelector, tolerations, nodeShape, autoscaling, rollout, probes, "
        "deepGemm"
    )
    assert lines[1] == (
        "sglang-platform:inferenceGroups[0].disaggregation.prefill.gpusPerNode: Input should be greater than or "
        "equal to 1 (got 0)"
    )

    def pd_flag(values):
        service(values)["disaggregation"]["decode"]["extraArgs"] = ["--disaggregation-mode", "prefill"]

    (only,) = problems(pd_flag)
    assert only.startswith(
        "sglang-platform:inferenceGroups[0].disaggregation.decode.extraArgs[0]: --disaggregation-mode"
    )
    assert "disaggregation" in only.split(": ", 1)[1]


def test_names_the_roles_take():
    def long(values):
        service(values)["name"] = "a" * 33

    assert problems(long) == [
        f"sglang-platform:inferenceGroups[0].name: '{'a' * 33}' is too long for a disaggregated service: its roles run "
        f"as {'a' * 33}-prefill and {'a' * 33}-decode, group names of at most 40 characters; use at most 32",
    ]

    def clash(values):
        values["inferenceGroups"].append(
            {
                "name": "deepseek-r1-decode",
                "model": {"path": "Qwen2.5-1.5B-Instruct", "servedName": "small"},
                "modelVolume": {"type": "pvc", "claimName": "models"},
                "gpusPerNode": 1,
                "resources": {"cpu": "8", "memory": "64Gi", "shmSize": "8Gi"},
            }
        )

    assert problems(clash) == [
        "sglang-platform:inferenceGroups[1].name: 'deepseek-r1-decode' is the decode role of the disaggregated "
        "service 'deepseek-r1' (its LeaderWorkerSet); rename one of the two",
    ]


def test_a_role_may_take_another_preset_and_keeps_the_services_keys():
    g = InferenceGroup.model_validate(
        {
            **stack_values(STACK)["inferenceGroups"][0],
            "disaggregation": {"prefill": {"preset": "deepseek-r1-h100", "resources": {"cpu": "64", "memory": "1Ti"}}},
        }
    )
    prefill, decode = g.roles["prefill"], g.roles["decode"]
    # the role's preset under the service's own keys: H100 x 2 nodes, the service's context length and volume
    assert (prefill.gpu, prefill.nodes, prefill.tp_size, prefill.dp_attention_size) == ("H100-80GB", 2, 16, 2)
    assert (prefill.context_length, prefill.model_volume.host_path) == (32768, "/mnt/models")
    # a role's mapping merges over the service's; the H100 preset asks for no larger /dev/shm, the H200 one does
    assert (prefill.resources.cpu, prefill.resources.memory, prefill.resources.shm_size) == ("64", "1Ti", "16Gi")
    assert (decode.gpu, decode.nodes, decode.resources.cpu, decode.resources.shm_size) == (
        "H200-141GB",
        1,
        "96",
        "32Gi",
    )
    assert g.role_key("prefill", ("resources", "cpu")) == ("disaggregation", "prefill", "resources", "cpu")
    assert g.role_key("decode", ("resources", "cpu")) == ("resources", "cpu")


def test_library_components_refuse_the_wrong_config():
    from sglang_platform.components.disaggregated import _refuse_invalid as refuse_service
    from sglang_platform.components.sglang_group import SglangInferenceGroupArgs
    from sglang_platform.components.sglang_group import _refuse_invalid as refuse_group

    g = InferenceGroup.model_validate(stack_values(STACK)["inferenceGroups"][0])
    with pytest.raises(ValueError) as info:
        refuse_group("svc", g, SglangInferenceGroupArgs(config=g, namespace="n", image="lmsysorg/sglang:v0.5.23-cu130"))
    assert "config: has disaggregation: serve it with SglangDisaggregatedService, which runs its roles" in str(
        info.value
    )
    colocated = InferenceGroup.model_validate(stack_values("prod")["inferenceGroups"][0])
    with pytest.raises(ValueError) as info:
        refuse_service("svc", colocated)
    assert str(info.value).splitlines() == [
        "SglangDisaggregatedService 'svc': invalid config (1 problem):",
        "  - config has no disaggregation: serve it with SglangInferenceGroup",
    ]
    refuse_service("svc", g)  # a valid service passes


# --- scaling and monitoring, by role -------------------------------------------------------------------------


def test_each_role_has_its_own_autoscaler_on_its_own_signals():
    prom = "http://prometheus:9090"
    prefill = scaled_object_spec(
        "deepseek-r1-prefill", NS, "deepseek-r1", GroupAutoscaling(max_replicas=2, ttft_seconds=2), prom, "prefill"
    )
    decode = scaled_object_spec(
        "deepseek-r1-decode",
        NS,
        "deepseek-r1",
        GroupAutoscaling(max_replicas=3, inter_token_latency_seconds=0.05),
        prom,
        "decode",
    )
    assert prefill["scaleTargetRef"]["name"] == "deepseek-r1-prefill"
    assert [
        (t["name"], t["metricType"], t["metadata"]["query"], t["metadata"]["threshold"]) for t in prefill["triggers"]
    ] == [
        (
            "queue-depth",
            "AverageValue",
            'sum(sglang:num_queue_reqs{namespace="deepseek",model_name="deepseek-r1",pd_role="prefill"})',
            "8",
        ),
        (
            "time-to-first-token",
            "Value",
            "histogram_quantile(0.9, sum by (le) (rate(sglang:time_to_first_token_seconds_bucket"
            '{namespace="deepseek",model_name="deepseek-r1",pd_role="prefill"}[2m])))',
            "2",
        ),
    ]
    assert [
        (t["name"], t["metricType"], t["metadata"]["query"], t["metadata"]["threshold"]) for t in decode["triggers"]
    ] == [
        (
            "kv-cache-usage",
            "Value",
            'avg(sglang:token_usage{namespace="deepseek",model_name="deepseek-r1",pd_role="decode"})',
            "0.85",
        ),
        (
            "inter-token-latency",
            "Value",
            "histogram_quantile(0.9, sum by (le) (rate(sglang:inter_token_latency_seconds_bucket"
            '{namespace="deepseek",model_name="deepseek-r1",pd_role="decode"}[2m])))',
            "0.05",
        ),
    ]
    assert (decode["minReplicaCount"], decode["maxReplicaCount"]) == (1, 3)
    # KEDA < 2.18 admits a fallback only next to an AverageValue trigger, which decode has none of.
    assert prefill["fallback"] == {"failureThreshold": 3, "replicas": 1, "behavior": "currentReplicas"}
    assert "fallback" not in decode


def keda_2_17_fallback_error(spec: dict) -> str | None:
    """KEDA v2.17.2's admission check of a ScaledObject's fallback (CheckFallbackValid in
    apis/keda/v1alpha1/scaledobject_types.go, run by its validating webhook), for specs without
    scalingModifiers: None when admitted, else its error."""
    if "fallback" not in spec:
        return None
    for trigger in spec["triggers"]:
        if trigger["type"] in ("cpu", "memory"):
            continue
        # an empty metricType counts as AverageValue
        if trigger.get("metricType", "AverageValue") in ("", "AverageValue"):
            return None
    return (
        "at least one trigger (that is not cpu or memory) has to have the `AverageValue` type for the fallback to "
        "be enabled"
    )


def test_keda_2_17_admits_the_autoscalers_of_both_roles():
    """prod's KEDA line for Kubernetes 1.30 (2.17) refuses a fallback without an AverageValue trigger: decode's
    autoscaler would fail `pulumi up` at admission."""
    decode = scaled_object_spec(
        "svc-decode", NS, "m", GroupAutoscaling(max_replicas=2, inter_token_latency_seconds=0.05), "http://p", "decode"
    )
    assert keda_2_17_fallback_error(decode | {"fallback": {"failureThreshold": 3, "replicas": 1}}) == (
        "at least one trigger (that is not cpu or memory) has to have the `AverageValue` type for the fallback to "
        "be enabled"
    )

    def scaled(values):
        pd = service(values)["disaggregation"]
        pd["prefill"]["autoscaling"] = {"maxReplicas": 2, "ttftSeconds": 2}
        pd["decode"]["autoscaling"] = {"maxReplicas": 2, "interTokenLatencySeconds": 0.05}
        values["keda"] = {"mode": "install"}
        values["versions"] |= {"kubernetes": "1.30.6", "kedaChart": "2.17.2"}

    result = run_with(STACK, scaled, secrets=SECRETS)
    assert result.error is None, result.error
    specs = {
        o["metadata"]["name"]: o["spec"] for o in harness.kubernetes_objects(result) if o["kind"] == "ScaledObject"
    }
    assert sorted(specs) == ["deepseek-r1-decode-autoscaler", "deepseek-r1-prefill-autoscaler"]
    assert {name: keda_2_17_fallback_error(spec) for name, spec in specs.items()} == {
        "deepseek-r1-decode-autoscaler": None,
        "deepseek-r1-prefill-autoscaler": None,
    }
    assert "fallback" in specs["deepseek-r1-prefill-autoscaler"]


def test_the_stack_scales_each_role_with_its_release_names():
    def scaled(values):
        pd = service(values)["disaggregation"]
        pd["prefill"]["autoscaling"] = {"maxReplicas": 2}
        pd["decode"]["autoscaling"] = {"maxReplicas": 2, "interTokenLatencySeconds": 0.05}
        values["keda"] = {"mode": "install"}
        values["versions"]["kubernetes"] = "1.34.2"

    result = run_with(STACK, scaled, secrets=SECRETS)
    assert result.error is None, result.error
    objects = {o["metadata"]["name"]: o for o in harness.kubernetes_objects(result) if o["kind"] == "ScaledObject"}
    assert sorted(objects) == ["deepseek-r1-decode-autoscaler", "deepseek-r1-prefill-autoscaler"]
    decode = objects["deepseek-r1-decode-autoscaler"]["spec"]
    assert [t["name"] for t in decode["triggers"]] == ["kv-cache-usage", "inter-token-latency"]
    assert [t["name"] for t in objects["deepseek-r1-prefill-autoscaler"]["spec"]["triggers"]] == ["queue-depth"]
    for spec in (o["spec"] for o in objects.values()):
        for trigger in spec["triggers"]:
            assert metric_names(trigger["metadata"]["query"]) <= known_metrics("0.5.23")
    # each role's LeaderWorkerSet leaves replicas to its autoscaler
    lws = result.k8s_object("LeaderWorkerSet", "deepseek-r1-decode")
    assert lws["spec"]["replicas"] == 1


def test_each_roles_pod_monitor_labels_its_series_with_the_role(pd):
    for role in ("prefill", "decode"):
        monitor = pd.k8s_object("PodMonitor", f"deepseek-r1-{role}-metrics")["spec"]
        assert monitor["selector"] == {"matchLabels": {"leaderworkerset.sigs.k8s.io/name": f"deepseek-r1-{role}"}}
        (endpoint,) = monitor["podMetricsEndpoints"]
        assert endpoint["relabelings"] == [{"action": "replace", "targetLabel": "pd_role", "replacement": role}]
        # 0.5.23's /metrics needs no key
        assert "authorization" not in endpoint


def test_the_dashboard_has_a_row_split_by_role(pd):
    board = json.loads(pd.k8s_object("ConfigMap", "sglang-platform-dashboard")["data"]["sglang-platform.json"])
    titles = [p["title"] for p in board["panels"]]
    start = titles.index("Prefill/decode disaggregation: by role")
    assert titles[start + 1 : start + 7] == [
        "Prefill: time to first token",
        "Decode: inter-token latency",
        "Prefill and decode queues",
        "KV-cache usage by role",
        "KV transfer failures",
        "KV transfer latency",
    ]
    rules = {
        r["alert"] for g in pd.k8s_object("PrometheusRule", "sglang-platform")["spec"]["groups"] for r in g["rules"]
    }
    assert {"SGLangDecodeInterTokenLatencyHigh", "SGLangKVTransferFailing", "SGLangKVTransferSlow"} <= rules


@pytest.mark.parametrize("release", shipped_releases())
def test_pd_panels_use_only_the_releases_series_and_parse(tmp_path, release):
    exprs = dashboard.expressions(NS, release, pd=True)
    plain = dashboard.expressions(NS, release)
    pd_only = [e for e in exprs if e not in plain]
    assert pd_only
    for expr in pd_only:
        assert metric_names(grafana_to_promql(expr)) <= known_metrics(release), expr
    rules = [{"record": f"dashboard:pd_{i}", "expr": grafana_to_promql(e)} for i, e in enumerate(pd_only)]
    write_yaml(tmp_path / "pd.yaml", {"groups": [{"name": "pd", "rules": rules}]})
    proc = run_promtool("check", "rules", "pd.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    panels = [p.title for p in dashboard.pd_panels(dashboard.SglangMetrics.of(release))]
    transfer = {"0.4.7", "0.4.10", "0.5.1", "0.5.23"}
    assert ("KV transfer failures" in panels) == (release in transfer)
    assert ("KV transfer latency" in panels) == (release == "0.5.23")


# --- PD alerts with promtool, per release ---------------------------------------------------------------------


def _series(name: str, labels: dict[str, str], values: str) -> dict:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _pd_series(release: str) -> list[dict]:
    from sglang_platform.facts.metrics import SglangMetrics

    metrics = SglangMetrics.of(release)
    itl = metrics.inter_token_latency
    out = []
    # decode of deepseek-r1 streams slowly (p99 ~ 0.5 s); its prefill's tokens are slow too, but prefill's
    # pace is not decode's; qwen's decode is fast
    for model, role, slow in (
        ("deepseek-r1", "decode", True),
        ("deepseek-r1", "prefill", True),
        ("qwen", "decode", False),
    ):
        per_minute = (
            {"0.05": 0, "0.1": 0, "0.5": 10, "+Inf": 10} if slow else {"0.05": 10, "0.1": 10, "0.5": 10, "+Inf": 10}
        )
        for le, n in per_minute.items():
            out.append(
                _series(f"{itl}_bucket", {"namespace": NS, "model_name": model, "pd_role": role, "le": le}, f"0+{n}x40")
            )
    if metrics.has("sglang:num_transfer_failed_reqs_total"):
        # deepseek-r1's decode fails transfers from minute 15; qwen's never
        out.append(
            _series(
                "sglang:num_transfer_failed_reqs_total",
                {"namespace": NS, "model_name": "deepseek-r1", "pd_role": "decode"},
                "0x15 0+1x25",
            )
        )
        out.append(
            _series(
                "sglang:num_transfer_failed_reqs_total",
                {"namespace": NS, "model_name": "qwen", "pd_role": "decode"},
                "0x40",
            )
        )
        out.append(
            _series(
                "sglang:num_bootstrap_failed_reqs_total",
                {"namespace": NS, "model_name": "qwen", "pd_role": "decode"},
                "0x40",
            )
        )
    if metrics.has("sglang:kv_transfer_latency_ms"):
        for model, per_minute in (
            ("deepseek-r1", {"100": 0, "1000": 10, "+Inf": 10}),
            ("qwen", {"100": 10, "1000": 10, "+Inf": 10}),
        ):
            for le, n in per_minute.items():
                out.append(
                    _series(
                        "sglang:kv_transfer_latency_ms_bucket",
                        {"namespace": NS, "model_name": model, "pd_role": "decode", "le": le},
                        f"0+{n}x40",
                    )
                )
    return out


@pytest.mark.parametrize("release", shipped_releases())
def test_pd_alerts_fire_on_the_role_they_watch_and_only_then(tmp_path, release):
    from sglang_platform.facts.metrics import SglangMetrics

    # Without an ITL target there is no decode pace alert (the key is the benchmark's too, unset by default).
    assert "SGLangDecodeInterTokenLatencyHigh" not in {r["alert"] for r in alerts.disaggregation_rules(NS, Slo())}
    rules = alerts.disaggregation_rules(NS, Slo(itl_p99_seconds=0.1), release)
    for rule in rules:
        assert metric_names(rule["expr"]) <= known_metrics(release), rule["expr"]
        rule.pop("annotations")
    groups = [{"name": "sglang-disaggregation", "rules": rules}]
    metrics = SglangMetrics.of(release)
    deepseek = {"severity": "warning", "namespace": NS, "model_name": "deepseek-r1"}
    expected = {"SGLangDecodeInterTokenLatencyHigh": [{"exp_labels": deepseek}]}
    if metrics.has("sglang:num_transfer_failed_reqs_total"):
        expected["SGLangKVTransferFailing"] = [{"exp_labels": deepseek}]
    if metrics.has("sglang:kv_transfer_latency_ms"):
        expected["SGLangKVTransferSlow"] = [{"exp_labels": deepseek}]
    assert set(expected) == {r["alert"] for r in rules}
    write_yaml(tmp_path / "rules.yaml", {"groups": groups})
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": _pd_series(release),
                "alert_rule_test": [
                    *({"eval_time": "20m", "alertname": n, "exp_alerts": e} for n, e in expected.items()),
                    # before the for-duration (and before any transfer failed) nothing fires
                    *({"eval_time": "3m", "alertname": n, "exp_alerts": []} for n in expected),
                ],
            }
        ],
    }
    write_yaml(tmp_path / "tests.yaml", tests)
    proc = run_promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_ttft_alert_reads_prefill_not_decode():
    (ttft,) = [r for r in alerts.sglang_rules(NS, [], Slo(), []) if r["alert"] == "SGLangTTFTHigh"]
    assert 'sglang:time_to_first_token_seconds_bucket{namespace="deepseek", pd_role!="decode"}' in ttft["expr"]


# --- the example, against SGLang's own ------------------------------------------------------------------------


def test_docs_compare_the_example_with_sglangs_lws_pd_example():
    from tools import pd_reference

    doc = pd_reference.DOC.read_text()
    block = doc[doc.index(pd_reference.BEGIN) : doc.index(pd_reference.END) + len(pd_reference.END)]
    assert block == pd_reference.reference(), "run: python tools/pd_reference.py --write"


def test_every_difference_from_sglangs_example_has_its_reason(pd):
    from tools import pd_reference

    for role in ("prefill", "decode"):
        args = container(role_template(pd, role))["args"]
        rows = pd_reference.rows(role, args)
        assert [r for r in rows if r[1] != r[2] and not r[3]] == []
        # The serving flags SGLang's example sets are rendered, with its values or (above) a reason. Only its
        # multi-node rendezvous flags are left out (one node per role here), and only the placement-bound ones
        # take other values: anything else dropped or changed shows up here.
        published = {r[0]: r[2] for r in rows if r[1] != "(not set)"}
        assert {f for f, ours in published.items() if ours == "(not set)"} == {
            "--dist-init-addr",
            "--nnodes",
            "--node-rank",
        }
        changed = {r[0] for r in rows if r[0] in published and r[2] not in ("(not set)", r[1])}
        assert changed == {"--attn-dp-size", "--model-path", "--port", "--tp-size"}
        same = {r[0] for r in rows if r[1] == r[2]}
        assert {"--disaggregation-mode", "--disaggregation-ib-device", "--page-size", "--moe-a2a-backend"} <= same


def test_readme_points_at_the_disaggregation_page():
    readme = (harness.ROOT / "README.md").read_text()
    assert "docs/disaggregation.md" in readme
    assert "examples/stacks/Pulumi.pd-h200.yaml" in readme


def test_docs_explain_every_pd_panel_and_alert():
    from sglang_platform.facts.metrics import SglangMetrics

    doc = (harness.ROOT / "docs" / "disaggregation.md").read_text()
    rows = {line.split("|")[1].strip() for line in doc.splitlines() if line.startswith("| ")}
    for panel in dashboard.pd_panels(SglangMetrics.of("0.5.23")):
        assert panel.title in rows, panel.title
    for rule in alerts.disaggregation_rules("ns", Slo(), "0.5.23"):
        assert rule["alert"] in rows, rule["alert"]


def test_a_prefill_of_0_5_1_is_told_decodes_layout():
    def on_0_5_1(values):
        values["versions"]["sglangImage"] = "lmsysorg/sglang:v0.5.1-cu126"
        service(values)["deepGemm"] = None
        for role in ("prefill", "decode"):
            # 0.5.1 has neither --ep-dispatch-algorithm's 0.5.23 choices nor every flag of the example
            service(values)["disaggregation"][role]["extraArgs"] = []
        service(values)["disaggregation"]["decode"] |= {"nodes": 2, "tensorParallel": 16, "dpAttentionSize": 16}

    result = run_with(STACK, on_0_5_1, secrets=SECRETS)
    assert result.error is None, result.error
    prefill = container(role_template(result, "prefill"))["args"]
    i = prefill.index("--disaggregation-decode-tp")
    assert prefill[i : i + 4] == ["--disaggregation-decode-tp", "16", "--disaggregation-decode-dp", "16"]
    decode = result.k8s_object("LeaderWorkerSet", "deepseek-r1-decode")["spec"]["leaderWorkerTemplate"]
    assert "--disaggregation-decode-tp" not in container(decode["leaderTemplate"])["args"]
    # 0.5.23 learns decode's layout at bootstrap: no such flags there
    assert "--disaggregation-decode-tp" not in PREFILL_ARGS

    def uneven(values):
        on_0_5_1(values)
        service(values)["disaggregation"]["decode"] |= {
            "nodes": 1,
            "gpusPerNode": 6,
            "tensorParallel": 6,
            "dpAttentionSize": 6,
        }

    # (DeepSeek-R1's 128 heads refuse tp 6 too; the layout rule is SGLang's own assertion)
    assert (
        "sglang-platform:inferenceGroups[0].disaggregation.decode.tensorParallel: prefill runs tp 8 and decode tp 6: "
        "SGLang 0.5.1 moves the KV cache between different tensor-parallel sizes only when one is a multiple of the "
        "other"
    ) in problems(uneven)


def test_the_stack_output_names_each_services_revision_and_roles(pd):
    """A role's Service answers health and metrics only: it gets no client URL (only the gateway serves)."""
    root = "http://deepseek-r1-{}-api.deepseek.svc.cluster.local:8000"
    assert pd.outputs["disaggregated"] == {
        "deepseek-r1": {
            "revision": revision_of(pd),
            "roles": {
                f"deepseek-r1-{role}": {
                    "service": f"deepseek-r1-{role}-api",
                    "healthUrl": root.format(role) + "/health",
                    "metricsUrl": root.format(role) + "/metrics",
                }
                for role in ("prefill", "decode")
            },
        }
    }
    assert pd.outputs["inferenceGroups"] == {}
    assert (
        pd.outputs["gateway"]["deepseek-r1"]["baseUrl"]
        == "http://deepseek-r1-gateway.deepseek.svc.cluster.local:8000/v1"
    )


# --- weights staged once for both roles, cold starts per role, one benchmark per service ----------------------


def pod_templates(result: harness.RunResult, role: str) -> list[dict]:
    spec = result.k8s_object("LeaderWorkerSet", f"deepseek-r1-{role}")["spec"]["leaderWorkerTemplate"]
    return [spec[t] for t in ("leaderTemplate", "workerTemplate") if t in spec]


def daemon_sets(result: harness.RunResult) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in harness.kubernetes_objects(result) if o["kind"] == "DaemonSet"}


def test_one_daemon_set_stages_the_weights_for_both_roles_and_both_wait_for_it(pd):
    (name,) = daemon_sets(pd)
    assert name == "deepseek-r1-weights"
    stager = daemon_sets(pd)[name]["spec"]["template"]["spec"]
    # Both roles select the same nodes: one nodeSelector says it all.
    assert stager["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200", "nvidia.com/gpu.present": "true"}
    assert "affinity" not in stager
    for role in ("prefill", "decode"):
        for template in pod_templates(pd, role):
            spec = template["spec"]
            gates = [c for c in spec.get("initContainers", []) if c["name"] == "wait-for-weights"]
            assert len(gates) == 1, role
            assert env_map(gates[0])["WAIT_HINT"].startswith("daemonset/deepseek-r1-weights fetches them")
            # never placed on a node the stager does not cover
            assert spec["nodeSelector"] == stager["nodeSelector"], role
    # the service's weights are fetched by the DaemonSet alone: no download Job, no per-role stager
    assert not [o for o in harness.kubernetes_objects(pd) if o["kind"] == "Job" and "download" in o["metadata"]["name"]]


def test_roles_on_different_nodes_get_the_weights_on_either():
    from sglang_platform.components.model_cache import stager_spec

    def apart(values):
        service(values)["tolerations"] = [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
        service(values)["disaggregation"]["prefill"]["nodeSelector"] = {"pool": "prefill"}
        service(values)["disaggregation"]["decode"] |= {
            "nodeSelector": {"pool": "decode", "fabric": "ib"},
            "tolerations": [{"key": "decode-only", "operator": "Exists", "effect": "NoSchedule"}],
        }

    values = copy.deepcopy(stack_values(STACK))
    apart(values)
    cfg = validate(values, ALL)
    pod = stager_spec(cfg.inference_groups[0], "python:3.12-slim", "", [])["template"]["spec"]
    # What both roles select (and the GPU label), then either role's own labels
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200", "nvidia.com/gpu.present": "true"}
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["prefill"]}]},
            {
                "matchExpressions": [
                    {"key": "fabric", "operator": "In", "values": ["ib"]},
                    {"key": "pool", "operator": "In", "values": ["decode"]},
                ]
            },
        ]
    }
    # a taint either role tolerates (a list replaces the service's: decode's own, prefill's the service's)
    assert pod["tolerations"] == [
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "decode-only", "operator": "Exists", "effect": "NoSchedule"},
    ]

    def one_role_anywhere(values):
        service(values)["nodeSelector"] = {}
        service(values)["disaggregation"]["prefill"]["nodeSelector"] = {"pool": "prefill"}

    values = copy.deepcopy(stack_values(STACK))
    one_role_anywhere(values)
    pod = stager_spec(validate(values, ALL).inference_groups[0], "python:3.12-slim", "", [])["template"]["spec"]
    # decode may run on any GPU node, so every GPU node gets a copy
    assert (pod["nodeSelector"], "affinity" in pod) == ({"nvidia.com/gpu.present": "true"}, False)


def test_each_role_has_its_own_start_budget_alert_naming_the_services_stager(pd):
    groups = {g["name"]: g["rules"] for g in pd.k8s_object("PrometheusRule", "sglang-platform")["spec"]["groups"]}
    startup = groups["sglang-startup"]
    over = {r["labels"]["group"]: r for r in startup if r["alert"] == "SGLangStartOverBudget"}
    assert set(over) == {"deepseek-r1-prefill", "deepseek-r1-decode"}
    for role, rule in over.items():
        assert f'label_leaderworkerset_sigs_k8s_io_name="{role}"' in rule["expr"]
        assert "daemonset/deepseek-r1-weights" in rule["annotations"]["description"]
    # the staging alerts of the one DaemonSet
    assert {"ModelWeightsStagingStalled", "ModelWeightsStagingFailing"} <= {r["alert"] for r in startup}
    # and the decode pace alert, the example setting its ITL target
    assert "SGLangDecodeInterTokenLatencyHigh" in {r["alert"] for r in groups["sglang-disaggregation"]}


def test_the_dashboard_shows_cold_starts_per_role_and_the_staging(pd):
    board = json.loads(pd.k8s_object("ConfigMap", "sglang-platform-dashboard")["data"]["sglang-platform.json"])
    titles = [p["title"] for p in board["panels"]]
    row = titles.index("Cold starts: where a group's start spends its time")
    assert titles.index("Prefill/decode disaggregation: by role") < row
    assert titles[row + 1 : row + 5] == [
        "Cold-start timeline",
        "Pods starting, by phase",
        "Weights staged per node",
        "Weights download rate",
    ]
    # a role is a LeaderWorkerSet of its own: the timeline's rows and the phases' lines are per role
    phases = next(p for p in board["panels"] if p["title"] == "Pods starting, by phase")
    assert all("count by (label_leaderworkerset_sigs_k8s_io_name)" in t["expr"] for t in phases["targets"])


def bench(result: harness.RunResult) -> dict:
    (job,) = [o for o in harness.kubernetes_objects(result) if o["kind"] == "Job"]
    return job


def test_the_service_has_one_benchmark_through_its_gateway_on_its_revision(pd):
    job = bench(pd)
    assert job["metadata"]["name"].startswith("deepseek-r1-bench-")
    assert job["metadata"]["annotations"]["sglang-platform.io/revision"] == revision_of(pd)
    pod = job["spec"]["template"]["spec"]
    env = env_map(container(job["spec"]["template"]))
    assert env["BENCH_BASE_URL"] == "http://deepseek-r1-gateway.deepseek.svc.cluster.local:8000"
    assert (env["BENCH_GROUP"], env["BENCH_REVISION"]) == ("deepseek-r1", revision_of(pd))
    assert env["BENCH_LEADERWORKERSETS"] == "deepseek-r1-prefill,deepseek-r1-decode"
    assert env["OPENAI_API_KEY"] == {"secretKeyRef": {"name": "deepseek-r1-api-key", "key": "api-key"}}
    assert env["BENCH_SLO"] == (
        '{"e2eP99Seconds": null, "itlP99Seconds": 0.1, "minRequestThroughput": 200.0, "ttftP99Seconds": 0.2}'
    )
    # on a node holding the weights, like the roles' pods; it waits for them itself, on its ready clock
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200", "nvidia.com/gpu.present": "true"}
    assert "initContainers" not in pod
    assert env["BENCH_WEIGHTS_HINT"] == (
        "daemonset/deepseek-r1-weights fetches them (kubectl logs daemonset/deepseek-r1-weights)"
    )
    # its token reads both roles' LeaderWorkerSets, by name
    rules = pd.k8s_object("Role", "deepseek-r1-benchmark")["rules"]
    assert rules[1]["resourceNames"] == ["deepseek-r1-prefill", "deepseek-r1-decode"]
    assert pd.outputs["benchmarks"]["deepseek-r1"]["target"] == env["BENCH_BASE_URL"]
    assert pd.outputs["benchmarks"]["deepseek-r1"]["revision"] == revision_of(pd)
    # nothing per role
    names = [o["metadata"]["name"] for o in harness.kubernetes_objects(pd)]
    assert not [n for n in names if n.startswith(("deepseek-r1-prefill-bench", "deepseek-r1-decode-bench"))]


def test_a_change_to_either_role_runs_the_benchmark_again_and_scaling_does_not(pd):
    def decode_change(values):
        service(values)["disaggregation"]["decode"]["cudaGraphMaxBs"] = 128

    def more_decode(values):
        service(values)["disaggregation"]["decode"]["replicas"] = 2

    changed = run_with(STACK, decode_change, secrets=SECRETS)
    scaled = run_with(STACK, more_decode, secrets=SECRETS)
    assert changed.error is None and scaled.error is None
    assert bench(changed)["metadata"]["name"] != bench(pd)["metadata"]["name"]
    assert bench(scaled)["metadata"]["name"] == bench(pd)["metadata"]["name"]


def test_a_role_cannot_have_a_benchmark_of_its_own():
    def on_prefill(values):
        service(values)["disaggregation"]["prefill"]["benchmark"] = {}

    found = problems(on_prefill)
    assert len(found) == 1 and found[0].startswith(
        "sglang-platform:inferenceGroups[0].disaggregation.prefill.benchmark: "
    ), found
    # the service's benchmark is not copied onto its roles
    cfg = validate(copy.deepcopy(stack_values(STACK)), ALL)
    assert cfg.inference_groups[0].benchmark is not None
    assert [r.benchmark for r in cfg.inference_groups[0].roles.values()] == [None, None]


def test_only_an_autoscaler_with_a_fallback_needs_keda_2_17():
    """fallback.behavior arrived in KEDA 2.17.0; decode's autoscaler has no fallback, so it alone does not need
    it, and prefill's does."""

    def scaled(*roles):
        def change(values):
            pd = service(values)["disaggregation"]
            for role in roles:
                pd[role]["autoscaling"] = {"maxReplicas": 2}
            values["keda"] = {"mode": "install"}
            values["versions"] |= {"kubernetes": "1.30.6", "kedaChart": "2.16.1"}

        return change

    result = run_with(STACK, scaled("decode"), secrets=SECRETS)
    assert result.error is None, result.error
    result = run_with(STACK, scaled("prefill", "decode"), secrets=SECRETS)
    assert str(result.error).splitlines() == [
        "invalid stack configuration (1 problem):",
        "  - sglang-platform:versions.kedaChart: KEDA 2.16.1 lacks fallbackBehavior, which "
        "inferenceGroups[0].disaggregation.prefill.autoscaling uses: it arrives in 2.17.0 (ScaledObject CRD "
        "spec.fallback.behavior (absent in v2.16.1, enum in v2.17.0; Go module github.com/kedacore/keda/v2 "
        "config/crd/bases/keda.sh_scaledobjects.yaml)); pin 2.17.0 or later",
    ]
