"""The group gate as rendered (docs/model-weights.md, "The group gate"): a multi-node group whose weights are
staged per node gets a wait-for-group init container after wait-for-weights in its leader and worker pods, a
ServiceAccount of its own that may only read the namespace's pods, and that account's token mounted into the
gate alone. The script itself: tests/test_group_gate_script.py."""

from __future__ import annotations

from conftest import container, lws, run_with

from sglang_platform.render.sglang_pods import GROUP_GATE_SCRIPT

GATE_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def field(path: str) -> dict:
    return {"valueFrom": {"fieldRef": {"fieldPath": path}}}


def expected_gate(group: str, size: int, image: str) -> dict:
    return {
        "name": "wait-for-group",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "/opt/sglang-platform/group-gate/wait_for_group.py"],
        "env": [
            {"name": "GROUP_NAME", "value": group},
            {"name": "GROUP_SIZE", "value": str(size)},
            {"name": "GROUP_KEY", **field("metadata.labels['leaderworkerset.sigs.k8s.io/group-key']")},
            {"name": "GROUP_INDEX", **field("metadata.labels['leaderworkerset.sigs.k8s.io/group-index']")},
            {
                "name": "GROUP_REVISION",
                **field("metadata.labels['leaderworkerset.sigs.k8s.io/template-revision-hash']"),
            },
            {"name": "POD_NAMESPACE", **field("metadata.namespace")},
            {"name": "POD_NAME", **field("metadata.name")},
            {"name": "WEIGHTS_GATE", "value": "wait-for-weights"},
            {"name": "SERVICEACCOUNT_DIR", "value": GATE_TOKEN_DIR},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
        },
        "volumeMounts": [
            {"name": "group-gate-script", "mountPath": "/opt/sglang-platform/group-gate", "readOnly": True},
            {"name": "group-gate-token", "mountPath": GATE_TOKEN_DIR, "readOnly": True},
        ],
    }


def expected_volumes(group: str) -> list[dict]:
    return [
        {"name": "group-gate-script", "configMap": {"name": f"{group}-group-gate", "defaultMode": 0o444}},
        {
            "name": "group-gate-token",
            "projected": {
                "defaultMode": 0o444,
                "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                ],
            },
        },
    ]


def pods(result, name: str) -> list[dict]:
    tpl = lws(result, name)["spec"]["leaderWorkerTemplate"]
    return [tpl["leaderTemplate"], tpl["workerTemplate"]]


def test_prod_pods_wait_for_their_group_after_their_weights(prod):
    for pod in pods(prod, "deepseek-r1"):
        spec = pod["spec"]
        assert [c["name"] for c in spec["initContainers"]] == ["wait-for-weights", "wait-for-group"]
        # The downloader image: the staging DaemonSet runs it on every node these pods may use.
        assert spec["initContainers"][1] == expected_gate("deepseek-r1", 2, "python:3.12.8-slim-bookworm")
        assert spec["volumes"][-2:] == expected_volumes("deepseek-r1")
        assert spec["serviceAccountName"] == "deepseek-r1-group-gate"
        # No token in the pod but the gate's: SGLang and the weights gate mount neither gate volume.
        assert spec["automountServiceAccountToken"] is False
        mounting = {
            c["name"]
            for c in spec["initContainers"] + spec["containers"]
            for m in c["volumeMounts"]
            if m["name"].startswith("group-gate-")
        }
        assert mounting == {"wait-for-group"}
        # Both images are tags: the digest skip names both keys.
        assert pod["metadata"]["annotations"]["checkov.io/skip2"] == (
            "CKV_K8S_43=the tags are pinned in config/bom.py; set versions.sglangImage and "
            "versions.modelDownloaderImage to @sha256 digests"
        )


def test_prod_gate_account_may_only_read_pods_of_its_namespace(prod):
    labels = {
        "app.kubernetes.io/name": "sglang",
        "app.kubernetes.io/instance": "deepseek-r1",
        "app.kubernetes.io/managed-by": "pulumi",
        "app.kubernetes.io/part-of": "sglang-platform",
    }
    account = prod.k8s_object("ServiceAccount", "deepseek-r1-group-gate")
    assert account["metadata"]["namespace"] == "deepseek"
    assert account["automountServiceAccountToken"] is False
    role = prod.k8s_object("Role", "deepseek-r1-group-gate")
    assert role["metadata"]["namespace"] == "deepseek"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    binding = prod.k8s_object("RoleBinding", "deepseek-r1-group-gate")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "deepseek-r1-group-gate",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "deepseek-r1-group-gate", "namespace": "deepseek"}
    ]
    script = prod.k8s_object("ConfigMap", "deepseek-r1-group-gate")
    assert script["data"] == {"wait_for_group.py": GROUP_GATE_SCRIPT.read_text()}
    for obj in (account, role, binding, script):
        assert obj["metadata"]["labels"] == labels
    # Not a ClusterRole: nothing the gate may read outside its namespace.
    assert not [r for r in prod.resources if r.type.startswith("kubernetes:rbac.authorization.k8s.io/v1:Cluster")]
    # The pods are created only once their account, its Role and the script exist.
    deps = set(prod.named("deepseek-r1-lws").dependencies)
    for child in ("account", "role", "rolebinding", "script"):
        assert prod.named(f"deepseek-r1-group-gate-{child}").urn in deps


def test_no_gate_where_the_pods_share_one_download_or_a_group_is_one_pod(dev):
    def two_nodes_on_a_claim(values):
        group = values["inferenceGroups"][0]
        group["nodes"] = 2
        group["tensorParallel"] = 2 * group.get("gpusPerNode", 1)

    two = run_with("dev", two_nodes_on_a_claim)
    # One node per group, staged per node (its preset downloads).
    one = run_with("deepseek-h200", lambda values: None, secrets={"apiKey": "k"})
    for result, name in ((dev, "qwen-small"), (two, "qwen-small"), (one, "deepseek-r1")):
        assert result.error is None, result.error
        obj = lws(result, name)["spec"]["leaderWorkerTemplate"]
        for pod in filter(None, (obj.get("leaderTemplate"), obj["workerTemplate"])):
            spec = pod["spec"]
            names = [c["name"] for c in spec.get("initContainers", [])]
            # Each pod still waits for its weights (the staged group on its node's copy): only the group gate
            # is left out.
            assert names == (["wait-for-weights", "compile-deep-gemm"] if result is one else ["wait-for-weights"])
            assert "serviceAccountName" not in spec
            assert not [v for v in spec["volumes"] if v["name"].startswith("group-gate-")]
            assert spec["automountServiceAccountToken"] is False
        assert not [r for r in result.resources if "group-gate" in r.name]


def test_the_gate_comes_before_the_deep_gemm_compile_which_loads_the_weights():
    def two_nodes(values):
        group = values["inferenceGroups"][0]
        group |= {"nodes": 2, "tensorParallel": 16}
        group["deepGemm"] = {"cache": {"type": "pvc", "claimName": "deep-gemm"}}
        group["network"] = {"fabric": "infiniband", "hcas": ["mlx5_0"], "rdmaDevicesPerNode": 1}

    result = run_with("deepseek-h200", two_nodes, secrets={"apiKey": "k"})
    assert result.error is None, result.error
    for pod in pods(result, "deepseek-r1"):
        names = [c["name"] for c in pod["spec"]["initContainers"]]
        assert names == ["wait-for-weights", "wait-for-group", "compile-deep-gemm"]
        # The gate's volumes are not the compile's either (it copies the SGLang container's mounts).
        assert not [m for m in pod["spec"]["initContainers"][2]["volumeMounts"] if m["name"].startswith("group-gate-")]
        assert container(pod)["name"] in ("sglang-leader", "sglang-worker")
