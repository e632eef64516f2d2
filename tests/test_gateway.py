"""SglangGateway as rendered for the shipped stacks: the exact command line (parsed by the pinned release's own
parser), the least RBAC, the selector that finds every replica's leader and nothing else, the network paths,
the wiring of clients, and its config rules."""

from __future__ import annotations

import copy
import json
import zipfile
from collections.abc import Iterator

import pytest
from conftest import API_KEY, SMALL_GROUP, Capability, container, env_map, run_with, stack_values, unavailable

from sglang_platform.components import gateway as gw
from sglang_platform.config import ConfigError, validate
from sglang_platform.config.gateway import GatewayConfig
from sglang_platform.facts.sglang import shipped_releases
from sglang_platform.render.gateway_args import DECIDED, gateway_args, health_endpoint, managed_flags
from sglang_platform.render.sglang_pods import model_label_value
from tools import gateway_flags, harness

GATEWAY_SKIPS = {"CKV_K8S_15", "CKV_K8S_43", "CKV_K8S_38", "CKV_K8S_35"}
SELECTOR = [
    "app.kubernetes.io/name=sglang",
    "leaderworkerset.sigs.k8s.io/worker-index=0",
    "sglang-platform.io/model=deepseek-r1",
]
PROD_ARGS = [
    "--host",
    "0.0.0.0",
    "--port",
    "8000",
    "--service-discovery",
    "--service-discovery-namespace",
    "$(POD_NAMESPACE)",
    "--service-discovery-port",
    "8000",
    "--selector",
    *SELECTOR,
    "--policy",
    "cache_aware",
    "--cache-threshold",
    "0.3",
    "--balance-abs-threshold",
    "64",
    "--balance-rel-threshold",
    "1.5",
    "--eviction-interval-secs",
    "60",
    "--max-tree-size",
    "67108864",
    "--retry-max-retries",
    "5",
    "--retry-initial-backoff-ms",
    "50",
    "--retry-max-backoff-ms",
    "30000",
    "--retry-backoff-multiplier",
    "1.5",
    "--retry-jitter-factor",
    "0.2",
    "--cb-failure-threshold",
    "10",
    "--cb-success-threshold",
    "3",
    "--cb-timeout-duration-secs",
    "60",
    "--cb-window-duration-secs",
    "120",
    "--health-check-endpoint",
    "/health",
    "--health-check-interval-secs",
    "15",
    "--health-check-timeout-secs",
    "5",
    "--health-failure-threshold",
    "3",
    "--health-success-threshold",
    "2",
    "--request-timeout-secs",
    "1800",
    "--shutdown-grace-period-secs",
    "180",
    "--prometheus-host",
    "0.0.0.0",
    "--prometheus-port",
    "29000",
    "--log-level",
    "info",
    "--api-key",
    "$(SGLANG_API_KEY)",
]


def deployment(result, name="deepseek-r1-gateway") -> dict:
    return result.k8s_object("Deployment", name)


def gateway_container(result, name="deepseek-r1-gateway") -> dict:
    return container(deployment(result, name)["spec"]["template"])


@pytest.fixture(scope="module")
def v032() -> gateway_flags.RouterParser:
    try:
        return gateway_flags.load("0.3.2")
    except FileNotFoundError as missing:
        unavailable(Capability.GATEWAY_WHEEL, str(missing))
        raise


# --- the command line --------------------------------------------------------------------------------------


def test_prod_gateway_runs_the_pinned_router_with_exact_flags(prod):
    c = gateway_container(prod)
    assert c["image"] == "lmsysorg/sgl-model-gateway:v0.3.2"
    assert c["command"] == ["python3", "-m", "sglang_router.launch_router"]
    assert c["args"] == PROD_ARGS
    assert env_map(c) == {
        "POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "HOME": "/tmp",
        # the groups' key, from the group's Secret: the same key the leaders check
        "SGLANG_API_KEY": {"secretKeyRef": {"name": "deepseek-r1-api-key", "key": "api-key"}},
    }
    assert c["ports"] == [
        {"name": "http", "containerPort": 8000, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 29000, "protocol": "TCP"},
    ]


def test_dev_gateway_without_a_key_asks_for_none(dev):
    c = gateway_container(dev, "qwen-small-gateway")
    assert "--api-key" not in c["args"]
    assert "SGLANG_API_KEY" not in env_map(c)
    i = c["args"].index("--selector")
    assert c["args"][i + 1 : i + 4] == [
        "app.kubernetes.io/name=sglang",
        "leaderworkerset.sigs.k8s.io/worker-index=0",
        "sglang-platform.io/model=qwen2.5-1.5b-instruct",
    ]


def _router_commands(result) -> list[tuple[str, list[str]]]:
    found = []
    for obj in harness.kubernetes_objects(result):
        for c in ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers", []):
            if (args := gateway_flags.launch_router_args(c)) is not None:
                found.append((f"{obj['kind']}/{obj['metadata']['name']}", args))
    return found


def test_every_gateway_command_parses_under_the_pinned_release(stack):
    name, result, platform = stack
    parser = gateway_flags.load(str(platform.versions.gateway_release)) if _cached(platform) else None
    commands = _router_commands(result)
    assert commands, f"stack {name} renders no gateway"
    if parser is None:
        unavailable(Capability.GATEWAY_WHEEL, f"no sglang-router {platform.versions.gateway_release} wheel")
    assert parser is not None
    assert {where: p for where, args in commands if (p := parser.check(args))} == {}


def _cached(platform) -> bool:
    return gateway_flags.wheel_for(str(platform.versions.gateway_release)) is not None


def test_the_release_reads_the_flags_as_meant(prod, v032):
    parsed = v032.parse(gateway_container(prod)["args"])
    assert parsed.service_discovery is True
    assert parsed.selector == {
        "app.kubernetes.io/name": "sglang",
        "leaderworkerset.sigs.k8s.io/worker-index": "0",
        "sglang-platform.io/model": "deepseek-r1",
    }
    assert (parsed.service_discovery_namespace, parsed.service_discovery_port) == ("$(POD_NAMESPACE)", 8000)
    assert (parsed.policy, parsed.dp_aware, parsed.pd_disaggregation, parsed.enable_igw) == (
        "cache_aware",
        False,
        False,
        False,
    )
    assert parsed.worker_urls == []
    assert (parsed.api_key, parsed.prometheus_port, parsed.request_timeout_secs) == ("$(SGLANG_API_KEY)", 29000, 1800)
    # 0.3.2 reads the prefill bootstrap port from this annotation, fixed (no flag): PD (#14) must set it.
    assert parsed.bootstrap_port_annotation == "sglang.ai/bootstrap-port"


def test_the_parser_is_the_releases_own(v032):
    strings = v032.option_strings()
    # launch_router's own parser: its flags and argparse's -h/--help.
    assert len(strings) == 100 and {"-h", "--help"} <= set(strings)
    assert {"--service-discovery", "--selector", "--prefill-selector", "--decode-selector", "--dp-aware"} <= set(
        strings
    )
    # the docs of later releases show flags 0.3.2 does not have
    assert "--bootstrap-port-annotation" not in strings
    assert v032.check(["--bootstrap-port-annotation", "x"]) == [
        "sglang-router 0.3.2: unrecognized arguments: --bootstrap-port-annotation x"
    ]
    assert v032.check(["--policy", "prefix_hash"]) == [
        "sglang-router 0.3.2: argument --policy: invalid choice: 'prefix_hash' (choose from 'random', "
        "'round_robin', 'cache_aware', 'power_of_two', 'manual')"
    ]
    assert v032.check(["--prometheus-port", "many"]) == [
        "sglang-router 0.3.2: argument --prometheus-port: invalid int value: 'many'"
    ]


def test_every_typed_setting_renders_a_flag_the_release_knows(v032):
    every = GatewayConfig(
        policy="power_of_two",
        dp_aware=True,
        retries={"enabled": False},
        circuit_breaker={"enabled": False},
        health_check={"enabled": False},
        log_level="debug",
    )
    args = gateway_args(every, worker_port=30000, selector={"a": "b"}, api_key=False)
    assert v032.check(args) == []
    parsed = v032.parse(args)
    assert (parsed.policy, parsed.dp_aware, parsed.disable_retries) == ("power_of_two", True, True)
    assert (parsed.disable_circuit_breaker, parsed.disable_health_check, parsed.api_key) == (True, True, None)
    # cache-aware knobs only with cache_aware
    assert "--cache-threshold" not in args
    # and every flag the platform manages exists in the release
    known = set(v032.option_strings())
    assert managed_flags() - set(DECIDED) <= known


def test_extra_args_reach_the_command_and_the_parser_catches_typos(v032):
    def extra(values):
        values["gateway"]["extraArgs"] = ["--max-concurrent-requests", "256", "--queue-size", "64"]

    result = run_with("dev", extra)
    assert result.error is None, result.error
    args = gateway_container(result, "qwen-small-gateway")["args"]
    assert args[-4:] == ["--max-concurrent-requests", "256", "--queue-size", "64"]
    assert v032.check(args) == []
    assert v032.check([*args, "--max-concurent-requests", "1"]) == [
        "sglang-router 0.3.2: unrecognized arguments: --max-concurent-requests 1"
    ]


# --- the pods it finds -------------------------------------------------------------------------------------


def lws_pods(lws_obj: dict, replicas: int) -> Iterator[tuple[str, dict[str, str]]]:
    """The pods the LWS controller (v0.10.0) creates for ``replicas`` groups: the template's labels plus
    leaderworkerset.sigs.k8s.io/name, group-index, worker-index ("0" on the leader: the leader StatefulSet's
    template, leaderworkerset_controller.go), group-key and template-revision-hash (pod_webhook.go)."""
    tpl = lws_obj["spec"]["leaderWorkerTemplate"]
    name = lws_obj["metadata"]["name"]
    for i in range(replicas):
        for j in range(tpl["size"]):
            template = tpl["leaderTemplate"] if j == 0 and "leaderTemplate" in tpl else tpl["workerTemplate"]
            labels = dict(template["metadata"]["labels"]) | {
                "leaderworkerset.sigs.k8s.io/name": name,
                "leaderworkerset.sigs.k8s.io/group-index": str(i),
                "leaderworkerset.sigs.k8s.io/worker-index": str(j),
                "leaderworkerset.sigs.k8s.io/group-key": f"{i:040x}",
                "leaderworkerset.sigs.k8s.io/template-revision-hash": "5d8f7c6b9",
            }
            yield (f"{name}-{i}" if j == 0 else f"{name}-{i}-{j}"), labels


@pytest.mark.parametrize(
    ("stack_name", "group", "gateway"),
    [("prod", "deepseek-r1", "deepseek-r1-gateway"), ("dev", "qwen-small", "qwen-small-gateway")],
)
def test_the_selector_finds_the_leader_of_every_replica_and_no_worker(stack_name, group, gateway, request):
    result = request.getfixturevalue(stack_name)
    lws_obj = result.k8s_object("LeaderWorkerSet", group)
    platform = validate(stack_values(stack_name), {"apiKey", "webuiSecretKey", "grafanaAdminPassword"})
    scaling = platform.inference_groups[0].autoscaling
    assert scaling is not None
    most = scaling.max_replicas
    args = gateway_container(result, gateway)["args"]
    i = args.index("--selector") + 1
    selector = dict(word.split("=", 1) for word in args[i : args.index("--policy")])
    pods = dict(lws_pods(lws_obj, most))
    matched = sorted(pod for pod, labels in pods.items() if gw.selector_matches(selector, labels))
    # every group the autoscaler may run, leaders only: workers serve no API
    assert matched == [f"{group}-{i}" for i in range(most)]
    assert len(pods) == most * lws_obj["spec"]["leaderWorkerTemplate"]["size"]


def test_the_selector_leaves_other_models_alone():
    def add_small(values):
        values["inferenceGroups"].append(dict(SMALL_GROUP, scheduler="volcano"))
        values["volcano"]["queue"]["capability"]["nvidia.com/gpu"] = "33"

    result = run_with("prod", add_small, secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    pods = dict(lws_pods(result.k8s_object("LeaderWorkerSet", "r1-distill"), 3)) | dict(
        lws_pods(result.k8s_object("LeaderWorkerSet", "deepseek-r1"), 2)
    )
    for gateway, model in (("deepseek-r1-gateway", "deepseek-r1"), ("r1-distill-gateway", "r1-distill")):
        args = gateway_container(result, gateway)["args"]
        i = args.index("--selector") + 1
        selector = dict(word.split("=", 1) for word in args[i : args.index("--policy")])
        matched = sorted(pod for pod, labels in pods.items() if gw.selector_matches(selector, labels))
        assert matched == [f"{model}-{n}" for n in range(3 if model == "r1-distill" else 2)]


def test_group_pods_carry_their_model(prod):
    tpl = prod.k8s_object("LeaderWorkerSet", "deepseek-r1")["spec"]["leaderWorkerTemplate"]
    for role in ("leaderTemplate", "workerTemplate"):
        assert tpl[role]["metadata"]["labels"]["sglang-platform.io/model"] == "deepseek-r1"


@pytest.mark.parametrize(
    ("served", "value"),
    [
        ("deepseek-r1", "deepseek-r1"),
        ("Qwen2.5-1.5B_Instruct", "Qwen2.5-1.5B_Instruct"),
        # not label values: a readable stem plus the first 10 hex of the name's sha256
        ("deepseek-ai/DeepSeek-R1", "deepseek-ai-DeepSeek-R1-4ecad6d319"),
        ("a" * 64, "a" * 52 + "-ffe054fe7a"),
        ("model-", "model-a297214f17"),
    ],
)
def test_model_label_values(served, value):
    assert model_label_value(served) == value
    assert len(value) <= 63


def test_distinct_names_never_share_a_label_value():
    names = ["org/model", "org-model", "org.model", "org_model", "Org/Model", "a" * 64, "a" * 65]
    assert len({model_label_value(n) for n in names}) == len(names)


# --- RBAC, pod, Service, disruption budget -----------------------------------------------------------------


def test_least_rbac_list_and_watch_pods_in_the_serving_namespace_only(prod):
    role = prod.k8s_object("Role", "deepseek-r1-gateway")
    assert role["metadata"]["namespace"] == "deepseek"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]
    binding = prod.k8s_object("RoleBinding", "deepseek-r1-gateway")
    assert binding["metadata"]["namespace"] == "deepseek"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "deepseek-r1-gateway",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "deepseek-r1-gateway", "namespace": "deepseek"}]
    account = prod.k8s_object("ServiceAccount", "deepseek-r1-gateway")
    assert account["automountServiceAccountToken"] is False
    kinds = {o["kind"] for o in harness.kubernetes_objects(prod)}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    # the pod that uses it asks for the token; nothing else in the stack does
    spec = deployment(prod)["spec"]["template"]["spec"]
    assert (spec["serviceAccountName"], spec["automountServiceAccountToken"]) == ("deepseek-r1-gateway", True)
    # the binding is created after what it binds
    assert {prod.urn_of("deepseek-r1-gateway-role"), prod.urn_of("deepseek-r1-gateway-serviceaccount")} <= set(
        prod.named("deepseek-r1-gateway-rolebinding").dependencies
    )


def test_pod_is_hardened_and_probed(prod):
    dep = deployment(prod)
    assert dep["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"  # ready only once a group is
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    template = dep["spec"]["template"]
    assert template["metadata"]["annotations"] == {"sglang-platform.io/served-model-name": "deepseek-r1"}
    spec = template["spec"]
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["terminationGracePeriodSeconds"] == 190
    assert spec["enableServiceLinks"] is False
    assert (
        spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"][
            "topologyKey"
        ]
        == "kubernetes.io/hostname"
    )
    c = container(template)
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["readinessProbe"]["httpGet"] == {"path": "/readiness", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/liveness", "port": "http"}
    assert c["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}}
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    skips = {v.split("=", 1)[0] for k, v in dep["metadata"]["annotations"].items() if k.startswith("checkov.io/")}
    assert skips == GATEWAY_SKIPS


def test_service_and_disruption_budget(prod, dev):
    svc = prod.k8s_object("Service", "deepseek-r1-gateway")
    assert svc["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    assert svc["spec"] == {
        "type": "ClusterIP",
        "selector": {"app.kubernetes.io/name": "sglang-gateway", "app.kubernetes.io/instance": "deepseek-r1-gateway"},
        "ports": [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}],
    }
    assert prod.k8s_object("PodDisruptionBudget", "deepseek-r1-gateway-pdb")["spec"] == {
        "maxUnavailable": 1,
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": "sglang-gateway",
                "app.kubernetes.io/instance": "deepseek-r1-gateway",
            }
        },
    }
    # one replica: no budget (it would block every drain), no pod anti-affinity (only the GPU-node one,
    # tests/test_placement.py)
    assert [o["metadata"]["name"] for o in harness.kubernetes_objects(dev) if o["kind"] == "PodDisruptionBudget"] == [
        "qwen-small-pdb"
    ]
    assert list(deployment(dev, "qwen-small-gateway")["spec"]["template"]["spec"]["affinity"]) == ["nodeAffinity"]
    # the groups' own Services stay for direct access
    assert prod.k8s_object("Service", "deepseek-r1-api")["spec"]["selector"] == {
        "leaderworkerset.sigs.k8s.io/name": "deepseek-r1",
        "leaderworkerset.sigs.k8s.io/worker-index": "0",
    }


def test_waits_for_the_groups_it_fronts(prod):
    # a dependency on the group component is one on each of its children: the Secret the key comes from too
    deps = prod.named("deepseek-r1-gateway-deployment").dependencies
    assert {prod.urn_of("deepseek-r1-api-key"), prod.urn_of("deepseek-r1-lws")} <= set(deps)


# --- network paths -----------------------------------------------------------------------------------------


def _admits(peer: dict, pod_labels: dict[str, str]) -> bool:
    selector = peer.get("podSelector", {}).get("matchLabels")
    return selector is not None and "namespaceSelector" not in peer and gw.selector_matches(selector, pod_labels)


def test_the_group_admits_its_gateway_and_the_gateway_its_clients(prod):
    gateway_pod = deployment(prod)["spec"]["template"]["metadata"]["labels"]
    group_api = prod.k8s_object("NetworkPolicy", "deepseek-r1-ingress")["spec"]["ingress"][1]
    assert group_api["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert any(_admits(peer, gateway_pod) for peer in group_api["from"])
    # a gateway of another model is not admitted
    other = gateway_pod | {"sglang-platform.io/model": "r1-distill"}
    assert not any(_admits(peer, other) for peer in group_api["from"] if "ipBlock" not in peer)

    policy = prod.k8s_object("NetworkPolicy", "deepseek-r1-gateway-ingress")["spec"]
    assert policy["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "sglang-gateway", "app.kubernetes.io/instance": "deepseek-r1-gateway"}
    }
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {"sglang-platform.io/api-client": "true"}}}],
            "ports": [{"protocol": "TCP", "port": 8000}],
        },
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchExpressions": [
                            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["monitoring"]}
                        ]
                    }
                }
            ],
            "ports": [{"protocol": "TCP", "port": 29000}],
        },
    ]
    # Open WebUI is such a client
    ui = prod.k8s_object("Deployment", "open-webui")["spec"]["template"]["metadata"]["labels"]
    assert _admits(policy["ingress"][0]["from"][0], ui)


def test_gateway_clients_follow_api_access():
    def allow(values):
        values["apiAccess"] = {"allowedNamespaces": ["ai-apps"], "allowedCidrs": ["10.20.0.0/16"]}
        values["gateway"]["serviceType"] = "LoadBalancer"

    result = run_with("dev", allow)
    assert result.error is None, result.error
    assert result.k8s_object("Service", "qwen-small-gateway")["spec"]["type"] == "LoadBalancer"
    clients = result.k8s_object("NetworkPolicy", "qwen-small-gateway-ingress")["spec"]["ingress"][0]["from"]
    assert clients == [
        {"podSelector": {"matchLabels": {"sglang-platform.io/api-client": "true"}}},
        {
            "namespaceSelector": {
                "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["ai-apps"]}]
            }
        },
        {"ipBlock": {"cidr": "10.20.0.0/16"}},
    ]


# --- monitoring --------------------------------------------------------------------------------------------


def test_pod_monitor_scrapes_every_gateway_with_its_model(prod):
    obj = prod.k8s_object("PodMonitor", "sglang-gateway-metrics")
    assert obj["metadata"]["namespace"] == "deepseek"
    assert obj["spec"] == {
        "namespaceSelector": {"matchNames": ["deepseek"]},
        "selector": {"matchLabels": {"app.kubernetes.io/name": "sglang-gateway"}},
        "podMetricsEndpoints": [
            {
                "port": "metrics",
                "path": "/metrics",
                "interval": "15s",
                "relabelings": [
                    {
                        "action": "replace",
                        "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
                        "targetLabel": "gateway",
                    },
                    {
                        "action": "replace",
                        "sourceLabels": ["__meta_kubernetes_pod_annotation_sglang_platform_io_served_model_name"],
                        "targetLabel": "model_name",
                    },
                ],
            }
        ],
    }
    # the port and the annotation it reads are on the gateway's pods
    template = deployment(prod)["spec"]["template"]
    assert {"name": "metrics", "containerPort": 29000, "protocol": "TCP"} in container(template)["ports"]
    assert template["metadata"]["labels"]["app.kubernetes.io/instance"] == "deepseek-r1-gateway"


def test_dashboard_has_the_gateway_row(prod):
    cm = prod.k8s_object("ConfigMap", "sglang-platform-dashboard")
    board = json.loads(cm["data"]["sglang-platform.json"])
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == [
        "SGLang: traffic, latency, capacity",
        "Cold starts: where a group's start spends its time",
        "SGLang gateway: routing, workers, failures",
        "GPUs (DCGM)",
    ]


def test_metric_list_matches_the_pinned_wheel():
    from tools.metric_names import gateway_metrics

    wheel = gateway_flags.wheel_for("0.3.2")
    if wheel is None:
        unavailable(Capability.GATEWAY_WHEEL, "no sglang-router 0.3.2 wheel")
    listed = {
        line.split()[0]: line.split()[1]
        for line in (harness.ROOT / "facts" / "metrics" / "sgl-model-gateway.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    # the list written as the Rust source declares it, then confirmed by the tool against the binary
    source = "\n".join(
        f"{'describe_' if kind != 'counter' or not name.endswith('branch_total') else ''}"
        f'{"histogram" if kind in ("histogram", "summary") else kind}!("{name}", "x");'
        for name, kind in listed.items()
    )
    found, missing = gateway_metrics(source, str(wheel))
    assert missing == []
    assert found == listed


def test_metric_tool_drops_names_the_binary_lacks(tmp_path):
    from tools.metric_names import gateway_metrics

    wheel = tmp_path / "sglang_router-0-cp38-abi3-x.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("sglang_router/sglang_router_rs.abi3.so", b"\x00smg_a_totalsmg_b_duration_secondsxsmg_c_seconds")
    source = (
        'describe_counter!("smg_a_total", "a");\n'
        'describe_histogram!(\n    "smg_b_duration_seconds",\n    "b"\n);\n'
        'histogram!("smg_c_seconds", "k" => v).record(1.0);\n'
        'describe_gauge!("smg_gone", "not in this release");\n'
    )
    found, missing = gateway_metrics(source, str(wheel))
    assert found == {"smg_a_total": "counter", "smg_b_duration_seconds": "histogram", "smg_c_seconds": "summary"}
    assert missing == ["smg_gone"]


# --- outputs, switches, rules ------------------------------------------------------------------------------


def test_stack_output_names_the_client_url(prod):
    assert prod.outputs["gateway"] == {
        "deepseek-r1": {
            "baseUrl": "http://deepseek-r1-gateway.deepseek.svc.cluster.local:8000/v1",
            "service": "deepseek-r1-gateway",
            "group": "deepseek-r1",
        }
    }
    # direct access stays in its own output
    assert prod.outputs["inferenceGroups"]["deepseek-r1"]["service"] == "deepseek-r1-api"


def test_disabled_gateway_renders_nothing_of_it():
    result = run_with("dev", lambda v: v["gateway"].update(enabled=False))
    assert result.error is None, result.error
    names = [(o["kind"], o["metadata"]["name"]) for o in harness.kubernetes_objects(result)]
    assert not [n for n in names if "gateway" in n[1]]
    assert "gateway" not in result.outputs
    board = json.loads(result.k8s_object("ConfigMap", "sglang-platform-dashboard")["data"]["sglang-platform.json"])
    assert "Gateway request latency" not in [p["title"] for p in board["panels"]]
    rules = result.k8s_object("PrometheusRule", "sglang-platform")["spec"]["groups"]
    assert [g["name"] for g in rules] == ["sglang-slo", "sglang-startup", "gpu-health"]


def test_the_key_is_never_in_plaintext(prod):
    rendered = json.dumps([r.spec for r in prod.resources]) + json.dumps(prod.outputs)
    assert API_KEY not in rendered


def problems(mutate) -> list[str]:
    raw = copy.deepcopy(stack_values("dev"))
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        validate(raw, {"webuiSecretKey", "grafanaAdminPassword"})
    return str(info.value).splitlines()[1:]


def test_config_rules():
    def bad(raw):
        raw["gateway"].update(
            groups=["qwen-small", "nope", "qwen-small"],
            policy="round_robin",
            cacheAware={"cacheThreshold": 0.5},
            metricsPort=8000,
            serviceType="NodePort",
            extraArgs=["--pol", "random", "--worker-urls", "http://x", "stray", "--queue-size", "8"],
        )
        raw["versions"] = {"gatewayImage": "registry.local/sgl-model-gateway@sha256:" + "a" * 64}

    assert problems(bad) == [
        "  - sglang-platform:gateway.cacheAware: only used with policy cache_aware (the policy is round_robin)",
        # Without a release, no parser reads them: still no setting of the platform's may be overridden.
        "  - sglang-platform:gateway.extraArgs[0]: --pol would override --policy, which the platform sets from "
        "gateway.policy: use that key",
        "  - sglang-platform:gateway.extraArgs[2]: --worker-urls would override --worker-urls, which the platform "
        "sets itself: remove it",
        "  - sglang-platform:gateway.extraArgs[4]: 'stray' is neither a --flag nor the value of the flag before it",
        "  - sglang-platform:gateway.groups[0]: 'qwen-small' is listed 2 times",
        "  - sglang-platform:gateway.groups[1]: 'nope' is not an inference group (have: qwen-small)",
        "  - sglang-platform:gateway.groups[2]: 'qwen-small' is listed 2 times",
        "  - sglang-platform:gateway.metricsPort: port 8000 is also gateway.port; they must differ",
        "  - sglang-platform:gateway.serviceType: a NodePort Service is reached from outside the pod network, which "
        "the gateway's NetworkPolicy drops: list the client networks in sglang-platform:apiAccess.allowedCidrs "
        "(e.g. 10.0.0.0/8), or keep ClusterIP",
        "  - sglang-platform:versions.gatewayVersion: cannot tell the sglang-router release of "
        "'registry.local/sgl-model-gateway@sha256:" + "a" * 64 + "': set versions.gatewayVersion (e.g. 0.3.2) so "
        "the gateway's flags can be checked against it",
    ]


def test_a_group_may_not_take_a_gateways_name():
    def clash(raw):
        other = {"path": "Other", "servedName": "other", "source": "local"}
        raw["inferenceGroups"].append(dict(SMALL_GROUP, name="qwen-small-gateway", model=other))

    assert problems(clash) == [
        "  - sglang-platform:inferenceGroups[1].name: 'qwen-small-gateway' is the name of the gateway of group "
        "'qwen-small' (its Deployment and Service); rename one of the two groups"
    ]


def test_rules_stay_quiet_when_the_gateway_is_off_except_for_unknown_groups():
    def off(raw):
        raw["gateway"] = {"enabled": False, "groups": ["nope"], "policy": "random", "cacheAware": {}}

    assert problems(off) == [
        "  - sglang-platform:gateway.groups[0]: 'nope' is not an inference group (have: qwen-small)"
    ]


def test_a_typo_under_gateway_lists_the_allowed_keys():
    lines = problems(lambda raw: raw["gateway"].update(polcy="random"))
    assert lines == [
        "  - sglang-platform:gateway.polcy: unknown key (a typo?); allowed here: enabled, groups, policy, cacheAware, "
        "dpAware, retries, circuitBreaker, healthCheck, requestTimeoutSeconds, shutdownGraceSeconds, replicas, "
        "resources, serviceType, port, metricsPort, logLevel, extraArgs"
    ]


def test_library_use_refuses_a_bad_name_before_any_child():
    args = gw.SglangGatewayArgs(
        config=GatewayConfig(port=9000, metrics_port=9000, service_type="NodePort"),
        namespace="team-a",
        image="lmsysorg/sgl-model-gateway:v0.3.2",
        served_model_name="m",
        worker_port=8000,
    )
    with pytest.raises(ValueError) as info:
        gw._refuse_invalid("Bad_Name", args)
    assert str(info.value).splitlines() == [
        "SglangGateway 'Bad_Name': invalid config (3 problems):",
        "  - name 'Bad_Name' must be a DNS-1123 label of at most 50 characters",
        "  - port and metricsPort are both 9000",
        "  - a NodePort Service needs client_cidrs (its NetworkPolicy drops the rest)",
    ]


def test_docs_explain_every_gateway_panel_and_alert():
    from sglang_platform.config.monitoring import Slo
    from sglang_platform.render import alerts, dashboard

    doc = (harness.ROOT / "docs" / "gateway.md").read_text()
    rows = {line.split("|")[1].strip() for line in doc.splitlines() if line.startswith("| ")}
    for panel in dashboard.GATEWAY_PANELS:
        assert panel.title in rows, panel.title
    for rule in alerts.gateway_rules("ns", ["g-gateway"], Slo()):
        assert rule["alert"] in rows, rule["alert"]


def test_readme_sends_clients_and_the_smoke_test_to_the_gateway(prod):
    readme = (harness.ROOT / "README.md").read_text()
    section = readme[readme.index("## How clients reach the service") : readme.index("## The first start")]
    service = prod.outputs["gateway"]["deepseek-r1"]["service"]
    assert f"port-forward svc/{service} 8000:8000" in section
    assert prod.outputs["gateway"]["deepseek-r1"]["baseUrl"] in section
    assert f"tools/smoke_test.py --namespace deepseek --service {service} --key-secret deepseek-r1-api-key" in section


def test_the_health_check_endpoint_follows_the_groups_release():
    """/ready where the release has it (no generation); /health elsewhere: a plain 200 up to 0.4.10, one
    generated token per idle probe from 0.5.1 (where /health is /health_generate)."""
    assert {r: health_endpoint(r) for r in shipped_releases()} == {
        "0.4.3.post2": "/health",
        "0.4.3.post3": "/health",
        "0.4.4": "/health",
        "0.4.5": "/health",
        "0.4.6": "/health",
        "0.4.7": "/health",
        "0.4.10": "/health",
        "0.5.1": "/health",
        "0.5.23": "/ready",
    }
    assert health_endpoint(None) == "/health"


def test_a_stack_on_0_5_23_probes_ready(prod):
    def endpoint(args):
        return args[args.index("--health-check-endpoint") + 1]

    assert endpoint(gateway_container(prod)["args"]) == "/health"  # prod runs 0.4.4
    # dev runs the current set's 0.5.23 (prod's declared 550 driver cannot: facts/cuda.py).
    result = run_with("dev", lambda v: None)
    assert result.error is None, result.error
    assert endpoint(gateway_container(result, "qwen-small-gateway")["args"]) == "/ready"
