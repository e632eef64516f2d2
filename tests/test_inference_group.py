"""SglangInferenceGroup as rendered for the shipped stacks: the specs that would reach the API server."""

from __future__ import annotations

import json

from conftest import API_KEY, SMALL_GROUP, container, env_map, lws, run_with, stack_values

from tools import harness

# The reference's command line, on the INT8 checkpoint's directory and with --dist-timeout (Pulumi.prod.yaml).
PROD_COMMON = [
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
]
PROD_TAIL = [
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
]
LEADER_KEY = ["--api-key", "$(SGLANG_API_KEY)"]


def test_prod_leader_worker_set_matches_the_reference(prod):
    obj = lws(prod, "deepseek-r1")
    assert obj["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    assert obj["metadata"]["namespace"] == "deepseek"
    spec = obj["spec"]
    assert spec["replicas"] == 1
    assert spec["startupPolicy"] == "LeaderCreated"
    assert spec["rolloutStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdateConfiguration": {"maxSurge": 0, "maxUnavailable": 2},
    }
    tpl = spec["leaderWorkerTemplate"]
    assert tpl["size"] == 2
    assert tpl["restartPolicy"] == "RecreateGroupOnPodRestart"
    values = stack_values("prod")
    group = values["inferenceGroups"][0]
    for pod in (tpl["leaderTemplate"], tpl["workerTemplate"]):
        assert pod["spec"]["schedulerName"] == "volcano"
        c = container(pod)
        assert c["image"] == values["versions"]["sglangImage"]
        assert c["command"] == ["python3", "-m", "sglang.launch_server"]
        # What the stack asks for, requested and limited alike (Guaranteed QoS).
        quantities = {
            "cpu": group["resources"]["cpu"],
            "memory": group["resources"]["memory"],
            "nvidia.com/gpu": "8",
            "rdma/ib": "4",
        }
        assert c["resources"] == {"limits": quantities, "requests": quantities}
        assert c["securityContext"]["capabilities"] == {"add": ["IPC_LOCK"], "drop": ["ALL"]}
        assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "512Gi"}} in pod["spec"]["volumes"]
        assert {"name": "models", "hostPath": {"path": "/mnt/catcat_data/model", "type": "DirectoryOrCreate"}} in pod[
            "spec"
        ]["volumes"]


def test_prod_exact_flags_leader_and_worker(prod):
    tpl = lws(prod, "deepseek-r1")["spec"]["leaderWorkerTemplate"]
    assert container(tpl["leaderTemplate"])["args"] == [*PROD_COMMON, "--node-rank", "0", *PROD_TAIL, *LEADER_KEY]
    # Workers serve no API and SGLang logs its arguments at start: the key stays off them.
    assert container(tpl["workerTemplate"])["args"] == [*PROD_COMMON, "--node-rank", "$(LWS_WORKER_INDEX)", *PROD_TAIL]


def test_prod_fabric_environment(prod):
    tpl = lws(prod, "deepseek-r1")["spec"]["leaderWorkerTemplate"]
    for pod in (tpl["leaderTemplate"], tpl["workerTemplate"]):
        env = env_map(container(pod))
        assert {k: env[k] for k in env if isinstance(env[k], str)} == {
            "GLOO_SOCKET_IFNAME": "eth0",
            "NCCL_SOCKET_IFNAME": "eth0",
            "NCCL_DEBUG": "INFO",
            "NCCL_IB_DISABLE": "0",
            "NCCL_IB_HCA": "mlx5_0,mlx5_1,mlx5_4,mlx5_5",
            "NCCL_IB_CUDA_SUPPORT": "1",
            "NCCL_IB_GID_INDEX": "0",
            "NCCL_NET_GDR_LEVEL": "2",
            "NCCL_P2P_LEVEL": "NVL",
        }
    leader_env = env_map(container(tpl["leaderTemplate"]))
    assert leader_env["SGLANG_API_KEY"] == {"secretKeyRef": {"key": "api-key", "name": "deepseek-r1-api-key"}}
    # A group whose weights come from ModelScope (as the reference's did) tells SGLang so.
    from_modelscope = run_with(
        "prod", lambda v: v["inferenceGroups"][0]["model"].update(source="modelscope"), secrets={"apiKey": API_KEY}
    )
    assert from_modelscope.error is None, from_modelscope.error
    ms_tpl = lws(from_modelscope, "deepseek-r1")["spec"]["leaderWorkerTemplate"]
    for pod in (ms_tpl["leaderTemplate"], ms_tpl["workerTemplate"]):
        assert env_map(container(pod))["SGLANG_USE_MODELSCOPE"] == "true"
    worker_env = env_map(container(tpl["workerTemplate"]))
    assert "SGLANG_API_KEY" not in worker_env
    assert worker_env["LWS_WORKER_INDEX"] == {
        "fieldRef": {"fieldPath": "metadata.labels['leaderworkerset.sigs.k8s.io/worker-index']"}
    }


def test_probes_cover_the_weight_load(prod):
    tpl = lws(prod, "deepseek-r1")["spec"]["leaderWorkerTemplate"]
    for pod in (tpl["leaderTemplate"], tpl["workerTemplate"]):
        c = container(pod)
        startup = c["startupProbe"]
        assert startup["httpGet"] == {"path": "/health", "port": "http"}
        # 90 minutes configured in Pulumi.prod.yaml
        assert startup["periodSeconds"] * startup["failureThreshold"] == 90 * 60
        assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert "initialDelaySeconds" not in c["livenessProbe"]


def test_dev_is_a_single_pod_group_on_tcp(dev):
    obj = lws(dev, "qwen-small")
    tpl = obj["spec"]["leaderWorkerTemplate"]
    assert tpl["size"] == 1
    assert "leaderTemplate" not in tpl
    c = container(tpl["workerTemplate"])
    assert c["args"] == [
        "--model-path",
        "/models/Qwen2.5-1.5B-Instruct",
        "--served-model-name",
        "qwen2.5-1.5b-instruct",
        "--tp-size",
        "1",
        "--context-length",
        "32768",
        "--mem-fraction-static",
        "0.85",
        "--enable-metrics",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    env = env_map(c)
    assert env["NCCL_IB_DISABLE"] == "1"
    assert "SGLANG_USE_MODELSCOPE" not in env and "SGLANG_API_KEY" not in env
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "rdma/ib" not in c["resources"]["limits"]
    assert "schedulerName" not in tpl["workerTemplate"]["spec"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in tpl[
        "workerTemplate"
    ]["spec"]["volumes"]


def test_api_service_selects_leaders_only(prod):
    svc = prod.k8s_object("Service", "deepseek-r1-api")
    assert svc["spec"] == {
        "type": "ClusterIP",
        "selector": {
            "leaderworkerset.sigs.k8s.io/name": "deepseek-r1",
            "leaderworkerset.sigs.k8s.io/worker-index": "0",
        },
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP", "targetPort": "http"}],
    }


def test_service_type_follows_the_stack_and_its_clients_get_through_the_network_policy():
    def nodeport(values):
        values["inferenceGroups"][0]["service"] = {"type": "NodePort"}
        values["apiAccess"] = {"allowedCidrs": ["10.20.0.0/16", "192.168.7.0/24"]}

    result = run_with("dev", nodeport)
    assert result.error is None, result.error
    assert result.k8s_object("Service", "qwen-small-api")["spec"]["type"] == "NodePort"
    api_rule = result.k8s_object("NetworkPolicy", "qwen-small-ingress")["spec"]["ingress"][1]
    assert {"ipBlock": {"cidr": "10.20.0.0/16"}} in api_rule["from"]
    assert {"ipBlock": {"cidr": "192.168.7.0/24"}} in api_rule["from"]
    assert api_rule["ports"] == [{"port": 8000, "protocol": "TCP"}]


def test_an_exposed_service_without_client_networks_is_refused():
    def nodeport(values):
        values["inferenceGroups"][0]["service"] = {"type": "LoadBalancer"}

    result = run_with("dev", nodeport)
    assert result.resources == [] and result.error is not None
    assert result.error.splitlines()[1:] == [
        "  - sglang-platform:inferenceGroups[0].service.type: a LoadBalancer Service is reached from outside the "
        "pod network, which the group's NetworkPolicy drops: list the client networks in "
        "sglang-platform:apiAccess.allowedCidrs (e.g. 10.0.0.0/8), or keep ClusterIP"
    ]


def test_client_networks_must_be_cidrs():
    result = run_with("dev", lambda v: v.update(apiAccess={"allowedCidrs": ["10.20.0.1/16"]}))
    assert result.error is not None
    assert result.error.splitlines()[1] == (
        "  - sglang-platform:apiAccess.allowedCidrs[0]: '10.20.0.1/16' is not a network in CIDR notation "
        "(e.g. 10.20.0.0/16): 10.20.0.1/16 has host bits set"
    )


def test_disruption_budget(prod):
    pdb = prod.k8s_object("PodDisruptionBudget", "deepseek-r1-pdb")
    assert pdb["spec"] == {
        "maxUnavailable": 0,
        "selector": {"matchLabels": {"leaderworkerset.sigs.k8s.io/name": "deepseek-r1"}},
        # A loading or crash-looping pod serves nothing: it never blocks a drain.
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }

    def two_replicas(values):
        del values["inferenceGroups"][0]["autoscaling"]
        values["inferenceGroups"][0]["replicas"] = 2
        values["volcano"]["queue"]["capability"]["nvidia.com/gpu"] = "32"  # room for both in the queue

    result = run_with("prod", two_replicas, secrets={"apiKey": API_KEY})
    assert result.k8s_object("PodDisruptionBudget", "deepseek-r1-pdb")["spec"]["maxUnavailable"] == 1


def test_network_policy_admits_group_members_and_clients():
    def allow(values):
        values["apiAccess"] = {"allowedNamespaces": ["ai-apps", "batch"]}

    result = run_with("prod", allow, secrets={"apiKey": API_KEY})
    spec = result.k8s_object("NetworkPolicy", "deepseek-r1-ingress")["spec"]
    members = {"podSelector": {"matchLabels": {"leaderworkerset.sigs.k8s.io/name": "deepseek-r1"}}}
    assert spec["podSelector"] == members["podSelector"]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == [
        {"from": [members]},
        {
            "from": [
                {"podSelector": {"matchLabels": {"sglang-platform.io/api-client": "true"}}},
                # the gateway of the group's model
                {
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "sglang-gateway",
                            "sglang-platform.io/model": "deepseek-r1",
                        }
                    }
                },
                {
                    "namespaceSelector": {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/metadata.name",
                                "operator": "In",
                                "values": ["ai-apps", "batch", "monitoring"],  # Prometheus, monitoring is on
                            }
                        ]
                    }
                },
            ],
            "ports": [{"port": 8000, "protocol": "TCP"}],
        },
    ]


def test_api_key_is_secret_everywhere(prod):
    secret = prod.named("deepseek-r1-api-key")
    assert harness.is_secret(secret.inputs["stringData"])
    assert secret.plain["stringData"] == {"api-key": API_KEY}
    rendered = json.dumps([r.spec for r in prod.resources])
    assert API_KEY not in rendered
    assert API_KEY not in json.dumps(prod.outputs)


def test_outputs_give_in_cluster_urls(prod, dev):
    assert prod.outputs["inferenceGroups"] == {
        "deepseek-r1": {
            "baseUrl": "http://deepseek-r1-api.deepseek.svc.cluster.local:8000/v1",
            "servedModelName": "deepseek-r1",
            "service": "deepseek-r1-api",
        }
    }
    assert dev.outputs["inferenceGroups"]["qwen-small"]["baseUrl"] == (
        "http://qwen-small-api.sglang-dev.svc.cluster.local:8000/v1"
    )


def test_several_groups_get_their_own_objects():
    def add_small(values):
        # prod gang-schedules every group through Volcano, in a queue sized for the groups.
        values["inferenceGroups"].append(dict(SMALL_GROUP, scheduler="volcano"))
        values["volcano"]["queue"]["capability"]["nvidia.com/gpu"] = "33"

    result = run_with("prod", add_small, secrets={"apiKey": API_KEY})
    assert result.error is None
    assert {o["metadata"]["name"] for o in harness.kubernetes_objects(result) if o["kind"] == "LeaderWorkerSet"} == {
        "deepseek-r1",
        "r1-distill",
    }
    assert set(result.outputs["inferenceGroups"]) == {"deepseek-r1", "r1-distill"}
    assert container(lws(result, "r1-distill")["spec"]["leaderWorkerTemplate"]["workerTemplate"])["args"][:6] == [
        "--model-path",
        "/models/DeepSeek-R1-Distill-Qwen-7B",
        "--served-model-name",
        "r1-distill",
        "--tp-size",
        "1",
    ]


def test_namespace_pod_security_level(prod, dev):
    assert (
        prod.k8s_object("Namespace", "deepseek")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        == "privileged"
    )
    assert (
        dev.k8s_object("Namespace", "sglang-dev")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        == "baseline"
    )


def test_children_are_parented_and_named_from_the_component(prod):
    group = [r for r in prod.resources if r.type == "sglang-platform:index:SglangInferenceGroup"]
    assert [g.name for g in group] == ["deepseek-r1"]
    children = [r for r in prod.resources if r.parent == group[0].urn]
    assert sorted(c.name for c in children) == [
        "deepseek-r1-api",
        "deepseek-r1-api-key",
        "deepseek-r1-group-gate-account",
        "deepseek-r1-group-gate-role",
        "deepseek-r1-group-gate-rolebinding",
        "deepseek-r1-group-gate-script",
        "deepseek-r1-lws",
        "deepseek-r1-netpol",
        "deepseek-r1-pdb",
    ]
    namespace_urn = prod.named("serving-namespace").urn
    assert namespace_urn in prod.named("deepseek-r1-lws").dependencies


def test_the_serving_namespace_outlives_destroy_while_it_holds_kept_claims(prod, dev):
    # Deleting a namespace deletes its claims, so retaining the claims alone would not keep chat history.
    assert prod.named("serving-namespace").retain_on_delete is True
    assert dev.named("serving-namespace").retain_on_delete is True

    def nothing_kept(values):
        values["openWebui"]["persistence"] = {"retainOnDestroy": False}
        values["inferenceGroups"][0]["modelVolume"]["pvc"]["retain"] = False

    result = run_with("dev", nothing_kept)
    assert result.error is None, result.error
    assert result.named("serving-namespace").retain_on_delete is False


def test_a_multi_node_group_puts_each_pod_on_its_own_node(prod, dev):
    spread = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"leaderworkerset.sigs.k8s.io/name": "deepseek-r1"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    template = lws(prod, "deepseek-r1")["spec"]["leaderWorkerTemplate"]
    assert template["leaderTemplate"]["spec"]["affinity"] == spread
    assert template["workerTemplate"]["spec"]["affinity"] == spread
    # A single-pod group (dev's 1-GPU group) gets none: its replicas may share a node.
    assert "affinity" not in lws(dev, "qwen-small")["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]


def test_a_dev_group_on_two_nodes_spreads_too():
    def two_nodes(values):
        values["inferenceGroups"][0]["nodes"] = 2

    result = run_with("dev", two_nodes)
    assert result.error is None, result.error
    template = lws(result, "qwen-small")["spec"]["leaderWorkerTemplate"]
    for role in ("leaderTemplate", "workerTemplate"):
        (term,) = template[role]["spec"]["affinity"]["podAntiAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
        assert term["labelSelector"] == {"matchLabels": {"leaderworkerset.sigs.k8s.io/name": "qwen-small"}}
