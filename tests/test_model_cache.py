"""ModelCache as rendered for the shipped stacks and variants: the claim, the download Job per source, the
init containers that gate every SGLang pod, and the startup budget."""

from __future__ import annotations

import json

import pytest
from conftest import container, lws, run_with

from tools import harness

HF_REVISION = "989aa7980e4cf806f80c7fef2b1adb7bc71aa306"
HF_IDENTITY = json.dumps(
    {"repo": "Qwen/Qwen2.5-1.5B-Instruct", "revision": HF_REVISION, "source": "huggingface"}, sort_keys=True
)
# prod's weights: Meituan's Hugging Face repository at its moving main (no commit of it is published).
PROD_IDENTITY = json.dumps({"repo": "meituan/DeepSeek-R1-Block-INT8", "revision": "main", "source": "huggingface"})
PROD_IDENTITY_SORTED = json.dumps(json.loads(PROD_IDENTITY), sort_keys=True)
SCRIPT_VOLUME = {
    "name": "model-download-script",
    "configMap": {"name": "qwen-small-model-download", "defaultMode": 0o444},
}


def plain_env(c: dict) -> dict:
    return {e["name"]: e["value"] for e in c["env"] if "value" in e}


def ref_env(c: dict) -> dict:
    return {e["name"]: e["valueFrom"] for e in c["env"] if "valueFrom" in e}


def job(result: harness.RunResult, name: str) -> dict:
    return result.k8s_object("Job", name)


# --- dev: Hugging Face into the PVC "models" ------------------------------------------------------------


def test_dev_creates_the_models_claim_and_keeps_it_on_destroy(dev):
    pvc = dev.k8s_object("PersistentVolumeClaim", "models")
    assert pvc["metadata"]["namespace"] == "sglang-dev"
    assert pvc["spec"] == {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "20Gi"}}}
    assert dev.named("qwen-small-model-pvc").retain_on_delete is True


def test_a_changed_download_job_is_deleted_before_its_replacement(dev):
    """Its name is fixed and its template immutable: updating it in place fails at the API server."""
    assert dev.named("qwen-small-model-download").delete_before_replace is True
    assert dev.named("qwen-small-model-pvc").delete_before_replace is False


def test_dev_download_job_fetches_the_pinned_revision(dev):
    obj = job(dev, "qwen-small-model-download")
    # pulumi up does not wait for hours of download; the gates do. checkov may not ask for a digest while
    # the downloader image is pinned by tag, nor for pulling it on every retry.
    annotations = obj["metadata"]["annotations"]
    assert annotations.pop("pulumi.com/skipAwait") == "true"
    assert [v.split("=", 1)[0] for v in annotations.values()] == ["CKV_K8S_15", "CKV_K8S_43"]
    spec = obj["spec"]
    assert spec["backoffLimit"] == 20
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    # No root: the claim is made writable to the download user through fsGroup.
    assert pod["securityContext"] == {
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "fsGroupChangePolicy": "OnRootMismatch",
    }
    assert "serviceAccountName" not in pod and "tolerations" not in pod
    assert pod["volumes"] == [
        {"name": "models", "persistentVolumeClaim": {"claimName": "models"}},
        SCRIPT_VOLUME,
        {"name": "model-download-tmp", "emptyDir": {"sizeLimit": "2Gi"}},
    ]
    (c,) = pod["containers"]
    assert c["image"] == "python:3.12.8-slim-bookworm"
    assert c["command"] == ["python3", "/opt/sglang-platform/download_model.py", "download"]
    assert plain_env(c) == {
        "MODEL_DIR": "/models/Qwen2.5-1.5B-Instruct",
        "MODEL_SOURCE": "huggingface",
        "MODEL_IDENTITY": HF_IDENTITY,
        "MODEL_REPO": "Qwen/Qwen2.5-1.5B-Instruct",
        "MODEL_REVISION": HF_REVISION,
        "MAX_WORKERS": "8",
        "DOWNLOAD_REQUIREMENT": "huggingface_hub==2.4.0",
        "DEPS_DIR": "/tmp/sglang-platform-deps",
        "HOME": "/tmp",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONUNBUFFERED": "1",
    }
    # No hfToken set: a public model, no Secret, no token variable.
    assert ref_env(c) == {}
    assert {"name": "models", "mountPath": "/models"} in c["volumeMounts"]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    with pytest.raises(KeyError):
        dev.k8s_object("Secret", "qwen-small-model-credentials")


def test_nothing_may_connect_to_the_download_job(dev):
    policy = dev.k8s_object("NetworkPolicy", "qwen-small-model-download")
    labels = job(dev, "qwen-small-model-download")["spec"]["template"]["metadata"]["labels"]
    assert policy["metadata"]["namespace"] == "sglang-dev"
    assert policy["spec"] == {
        "podSelector": {"matchLabels": labels},
        "policyTypes": ["Ingress"],
        "ingress": [],
    }
    # Only the Job's pod: the SGLang pods carry other labels.
    assert labels["app.kubernetes.io/name"] == "sglang-model-cache"


def test_the_job_ships_the_repository_script(dev):
    from sglang_platform.components.model_cache import SCRIPT

    cm = dev.k8s_object("ConfigMap", "qwen-small-model-download")
    assert cm["data"] == {"download_model.py": SCRIPT.read_text()}


def test_dev_pods_wait_for_the_download(dev):
    pod = lws(dev, "qwen-small")["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
    (gate,) = pod["initContainers"]
    assert gate["name"] == "wait-for-weights"
    # The SGLang image, already on the node, runs the gate: nothing more to pull before the pod starts.
    assert gate["image"] == container({"spec": pod})["image"]
    assert gate["command"] == ["python3", "/opt/sglang-platform/download_model.py", "wait"]
    env = {e["name"]: e["value"] for e in gate["env"]}
    # It waits for the marker of exactly the revision the stack pins, in the directory SGLang reads.
    assert env["MODEL_DIR"] == "/models/Qwen2.5-1.5B-Instruct"
    assert env["MODEL_IDENTITY"] == HF_IDENTITY
    assert "kubectl logs job/qwen-small-model-download" in env["WAIT_HINT"]
    # It only reads the weights, and changes nothing else.
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in gate["volumeMounts"]
    assert all(m.get("readOnly") for m in gate["volumeMounts"])
    assert gate["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    # requests == limits, small: the pod stays Guaranteed and the gate costs the GPU node nothing.
    assert gate["resources"]["requests"] == gate["resources"]["limits"] == {"cpu": "100m", "memory": "128Mi"}
    assert SCRIPT_VOLUME in pod["volumes"]
    # The served container still mounts the weights read-only.
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in container({"spec": pod})["volumeMounts"]


def test_groups_wait_for_the_claim_they_mount(dev):
    # depends_on the ModelCache expands to its children: the claim exists before the pods that mount it.
    assert dev.named("qwen-small-model").type == "sglang-platform:index:ModelCache"
    assert set(dev.named("qwen-small-lws").dependencies) == {
        dev.urn_of(name)
        for name in (
            "serving-namespace",
            "lws-release",
            "qwen-small-model-pvc",
            "qwen-small-model-script",
            "qwen-small-model-download",
            "qwen-small-model-download-netpol",
        )
    }


def test_the_hf_token_reaches_the_job_only_as_a_secret():
    token = "hf_never_in_plaintext_4b1d"
    result = run_with("dev", lambda v: None, secrets={"hfToken": token})
    assert result.error is None, result.error
    (res,) = [r for r in result.of_type("kubernetes:core/v1:Secret") if r.name == "qwen-small-model-credentials"]
    assert res.spec["stringData"] == {"HF_TOKEN": "[secret]"}
    assert res.plain["stringData"] == {"HF_TOKEN": token}
    c = job(result, "qwen-small-model-download")["spec"]["template"]["spec"]["containers"][0]
    assert ref_env(c) == {"HF_TOKEN": {"secretKeyRef": {"name": "qwen-small-model-credentials", "key": "HF_TOKEN"}}}
    rendered = json.dumps([r.spec for r in result.resources])
    assert token not in rendered


def test_a_claim_the_stack_opts_out_of_keeping():
    result = run_with("dev", lambda v: v["inferenceGroups"][0]["modelVolume"]["pvc"].update(retain=False))
    assert result.named("qwen-small-model-pvc").retain_on_delete is False


def test_storage_class_and_access_mode():
    def mutate(v):
        v["inferenceGroups"][0]["modelVolume"]["pvc"].update(storageClass="cephfs", accessMode="ReadWriteOnce")

    pvc = run_with("dev", mutate).k8s_object("PersistentVolumeClaim", "models")
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "cephfs",
    }


def test_an_existing_claim_is_only_mounted():
    def mutate(v):
        del v["inferenceGroups"][0]["modelVolume"]["pvc"]

    result = run_with("dev", mutate)
    assert result.error is None, result.error
    assert [r.name for r in result.of_type("kubernetes:core/v1:PersistentVolumeClaim")] == ["open-webui-data"]
    assert job(result, "qwen-small-model-download")["spec"]["template"]["spec"]["volumes"][0] == {
        "name": "models",
        "persistentVolumeClaim": {"claimName": "models"},
    }


def test_hand_staged_weights_get_no_download_and_no_gate():
    def mutate(v):
        g = v["inferenceGroups"][0]
        del g["model"]["download"], g["modelVolume"]["pvc"]

    result = run_with("dev", mutate)
    assert result.error is None, result.error
    assert not result.of_type("sglang-platform:index:ModelCache")
    assert "initContainers" not in lws(result, "qwen-small")["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]


# --- S3 and ModelScope Jobs -----------------------------------------------------------------------------


def s3_group(**download):
    def mutate(v):
        model = v["inferenceGroups"][0]["model"]
        model["source"] = "s3"
        model["download"] = {
            "bucket": "team-weights",
            "prefix": "qwen/1.5b",
            "endpoint": "https://minio.storage.svc:9000",
            "region": "eu-west-1",
        } | download

    return mutate


def test_s3_job_with_keys_from_the_stack_secrets():
    result = run_with("dev", s3_group(), secrets={"s3AccessKeyId": "AKIA123", "s3SecretAccessKey": "shh"})
    assert result.error is None, result.error
    c = job(result, "qwen-small-model-download")["spec"]["template"]["spec"]["containers"][0]
    env = plain_env(c)
    assert {k: env[k] for k in ("S3_BUCKET", "S3_PREFIX", "S3_ENDPOINT", "AWS_REGION", "DOWNLOAD_REQUIREMENT")} == {
        "S3_BUCKET": "team-weights",
        "S3_PREFIX": "qwen/1.5b",
        "S3_ENDPOINT": "https://minio.storage.svc:9000",
        "AWS_REGION": "eu-west-1",
        "DOWNLOAD_REQUIREMENT": "boto3==1.44.8",
    }
    assert "MODEL_REPO" not in env and "MODEL_REVISION" not in env
    assert json.loads(env["MODEL_IDENTITY"]) == {
        "source": "s3",
        "bucket": "team-weights",
        "prefix": "qwen/1.5b",
        "endpoint": "https://minio.storage.svc:9000",
        "revision": "",
    }
    assert ref_env(c) == {
        name: {"secretKeyRef": {"name": "qwen-small-model-credentials", "key": name}}
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    secret = next(r for r in result.of_type("kubernetes:core/v1:Secret") if r.name == "qwen-small-model-credentials")
    assert secret.plain["stringData"] == {"AWS_ACCESS_KEY_ID": "AKIA123", "AWS_SECRET_ACCESS_KEY": "shh"}
    assert secret.spec["stringData"] == {"AWS_ACCESS_KEY_ID": "[secret]", "AWS_SECRET_ACCESS_KEY": "[secret]"}


def test_s3_job_with_an_existing_secret_and_a_service_account():
    def mutate(v):
        s3_group(credentialsSecret="team-s3", serviceAccountName="weights-reader")(v)
        v["inferenceGroups"][0]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
        v["inferenceGroups"][0]["nodeSelector"] = {"topology.kubernetes.io/zone": "zone-a"}

    result = run_with("dev", mutate, secrets={"s3AccessKeyId": "ignored", "s3SecretAccessKey": "ignored"})
    assert result.error is None, result.error
    pod = job(result, "qwen-small-model-download")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "weights-reader"
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    # Runs where the group runs, where its claim is reachable.
    assert pod["nodeSelector"] == {"topology.kubernetes.io/zone": "zone-a"}
    assert ref_env(pod["containers"][0]) == {
        name: {"secretKeyRef": {"name": "team-s3", "key": name}}
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    # The group names its own Secret: the stack's keys do not become another one.
    assert all(r.name != "qwen-small-model-credentials" for r in result.of_type("kubernetes:core/v1:Secret"))


def test_modelscope_job_on_a_pvc():
    def mutate(v):
        model = v["inferenceGroups"][0]["model"]
        model["source"] = "modelscope"
        model["download"] = {"repo": "Qwen/Qwen2.5-1.5B-Instruct", "revision": "v1.0.0"}

    result = run_with("dev", mutate, secrets={"modelscopeToken": "ms-1"})
    c = job(result, "qwen-small-model-download")["spec"]["template"]["spec"]["containers"][0]
    env = plain_env(c)
    assert (env["MODEL_SOURCE"], env["MODEL_REVISION"], env["DOWNLOAD_REQUIREMENT"]) == (
        "modelscope",
        "v1.0.0",
        "modelscope==1.40.2 modelscope-hub==0.5.1",
    )
    assert ref_env(c) == {
        "MODELSCOPE_API_TOKEN": {
            "secretKeyRef": {"name": "qwen-small-model-credentials", "key": "MODELSCOPE_API_TOKEN"}
        }
    }


# --- prod: ModelScope into each node's host path, staged by a DaemonSet -----------------------------------


def stager(result: harness.RunResult, name: str = "deepseek-r1-weights") -> dict:
    return result.k8s_object("DaemonSet", name)


def test_prod_stages_the_weights_on_every_gpu_node_with_a_daemonset(prod):
    assert not [r for r in prod.of_type("kubernetes:batch/v1:Job") if "download" in r.name]
    assert [r.name for r in prod.of_type("kubernetes:core/v1:PersistentVolumeClaim")] == ["open-webui-data"]
    ds = stager(prod)
    assert ds["metadata"]["namespace"] == "deepseek"
    # pulumi up does not wait hours for a first copy; `kubectl rollout status` does, node by node. checkov's
    # findings that do not fit (root in a root-owned host directory, the pinned tag) are skipped with reasons.
    annotations = ds["metadata"]["annotations"]
    assert annotations.pop("pulumi.com/skipAwait") == "true"
    assert [v.split("=", 1)[0] for v in annotations.values()] == [
        "CKV_K8S_15",
        "CKV_K8S_43",
        "CKV_K8S_23",
        "CKV_K8S_40",
    ]
    spec = ds["spec"]
    # A new revision is fetched on every node at once, not one node after the other.
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}}
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"] == {"matchLabels": labels}
    assert labels["app.kubernetes.io/component"] == "weights-stager"
    pod = spec["template"]["spec"]
    # The GPU nodes (the GPU Operator's label): prod's group has no nodeSelector or tolerations of its own.
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert "tolerations" not in pod and "serviceAccountName" not in pod
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["volumes"] == [
        {"name": "models", "hostPath": {"path": "/mnt/catcat_data/model", "type": "DirectoryOrCreate"}},
        {"name": "model-download-script", "configMap": {"name": "deepseek-r1-model-download", "defaultMode": 0o444}},
        {"name": "model-download-tmp", "emptyDir": {"sizeLimit": "2Gi"}},
    ]
    (c,) = pod["containers"]
    assert c["name"] == "stage-weights"
    assert c["image"] == "python:3.12.8-slim-bookworm"
    assert c["command"] == ["python3", "/opt/sglang-platform/download_model.py", "stage"]
    env = plain_env(c)
    assert {k: env[k] for k in ("MODEL_DIR", "MODEL_SOURCE", "MODEL_REPO", "MODEL_REVISION")} == {
        "MODEL_DIR": "/mnt/catcat_data/model/DeepSeek-R1-Block-INT8",
        "MODEL_SOURCE": "huggingface",
        "MODEL_REPO": "meituan/DeepSeek-R1-Block-INT8",
        "MODEL_REVISION": "main",
    }
    assert json.loads(env["MODEL_IDENTITY"]) == json.loads(PROD_IDENTITY)
    assert (env["DOWNLOAD_REQUIREMENT"], env["STAGE_GROUP"], env["STAGE_KEEP_REVISIONS"], env["METRICS_PORT"]) == (
        "huggingface_hub==2.4.0",
        "deepseek-r1",
        "1",
        "9400",
    )
    assert c["ports"] == [{"name": "metrics", "containerPort": 9400, "protocol": "TCP"}]
    # Ready means this node's copy is in place.
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # Small request (it stays on the GPU node for good), room to burst while it downloads.
    assert c["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    assert {"name": "models", "mountPath": "/mnt/catcat_data/model"} in c["volumeMounts"]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }


def test_only_prometheus_reaches_the_stagers_metrics(prod):
    labels = stager(prod)["spec"]["template"]["metadata"]["labels"]
    assert prod.k8s_object("NetworkPolicy", "deepseek-r1-weights")["spec"] == {
        "podSelector": {"matchLabels": labels},
        "policyTypes": ["Ingress"],
        "ingress": [
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
                "ports": [{"protocol": "TCP", "port": 9400}],
            }
        ],
    }


def test_prod_pods_only_wait_for_their_nodes_copy(prod):
    tpl = lws(prod, "deepseek-r1")["spec"]["leaderWorkerTemplate"]
    for pod in (tpl["leaderTemplate"], tpl["workerTemplate"]):
        spec = pod["spec"]
        # The weights gate first; then the group gate (tests/test_group_gate.py) of this multi-node group.
        gate, group_gate = spec["initContainers"]
        assert (gate["name"], group_gate["name"]) == ("wait-for-weights", "wait-for-group")
        assert gate["command"] == ["python3", "/opt/sglang-platform/download_model.py", "wait"]
        assert plain_env(gate) == {
            "MODEL_DIR": "/mnt/catcat_data/model/DeepSeek-R1-Block-INT8",
            "MODEL_IDENTITY": PROD_IDENTITY_SORTED,
            "WAIT_HINT": "daemonset/deepseek-r1-weights fetches them (kubectl logs daemonset/deepseek-r1-weights)",
        }
        assert {"name": "models", "mountPath": "/mnt/catcat_data/model", "readOnly": True} in gate["volumeMounts"]
        assert {"name": "models", "mountPath": "/mnt/catcat_data/model", "readOnly": True} in container(pod)[
            "volumeMounts"
        ]
        # Placed only where the DaemonSet keeps copies: a node it does not cover would leave the gate waiting.
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert spec["volumes"] == [
            {"name": "models", "hostPath": {"path": "/mnt/catcat_data/model", "type": "DirectoryOrCreate"}},
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "512Gi"}},
            {
                "name": "model-download-script",
                "configMap": {"name": "deepseek-r1-model-download", "defaultMode": 0o444},
            },
            *(v for v in spec["volumes"] if v["name"].startswith("group-gate-")),
        ]
        assert [v["name"] for v in spec["volumes"][3:]] == ["group-gate-script", "group-gate-token"]


def test_staging_follows_the_groups_nodes_and_settings():
    def mutate(v):
        g = v["inferenceGroups"][0]
        g["nodeSelector"] = {"pool": "a800"}
        g["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        g["model"]["download"]["staging"] |= {"nodeSelector": {}, "keepRevisions": 0}

    result = run_with("prod", mutate, secrets={"apiKey": "k"})
    assert result.error is None, result.error
    pod = stager(result)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "a800"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert plain_env(pod["containers"][0])["STAGE_KEEP_REVISIONS"] == "0"
    group_pod = lws(result, "deepseek-r1")["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]
    assert group_pod["nodeSelector"] == {"pool": "a800"}


def test_without_monitoring_nothing_reaches_the_stager():
    def off(values):
        values["monitoring"] = {"enabled": False}
        del values["inferenceGroups"][0]["autoscaling"]

    result = run_with("prod", off, secrets={"apiKey": "k", "grafanaAdminPassword": None})
    assert result.error is None, result.error
    assert result.k8s_object("NetworkPolicy", "deepseek-r1-weights")["spec"]["ingress"] == []


def test_hand_staged_host_paths_get_no_stager():
    def mutate(v):
        del v["inferenceGroups"][0]["model"]["download"]
        v["inferenceGroups"][0]["model"]["source"] = "local"

    result = run_with("prod", mutate, secrets={"apiKey": "k"})
    assert result.error is None, result.error
    assert not result.of_type("kubernetes:apps/v1:DaemonSet")
    spec = lws(result, "deepseek-r1")["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]
    assert "initContainers" not in spec and "nodeSelector" not in spec


# --- model hub endpoints (modelHubs, model.download.endpoint) ---------------------------------------------

HUB_KEYS = ("HF_ENDPOINT", "MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN")


def hub_env_of(c: dict) -> dict:
    return {k: v for k, v in plain_env(c).items() if k in HUB_KEYS}


def test_a_hugging_face_mirror_reaches_the_download_job_as_hf_endpoint(dev):
    def mirror(v):
        v["modelHubs"] = {"huggingface": "https://hf-mirror.corp.example/", "modelscope": "https://ms.corp.example"}

    result = run_with("dev", mirror)
    assert result.error is None, result.error
    c = job(result, "qwen-small-model-download")["spec"]["template"]["spec"]["containers"][0]
    # Only the group's own hub, as huggingface_hub's own setting; the trailing slash is the client's to drop.
    assert hub_env_of(c) == {"HF_ENDPOINT": "https://hf-mirror.corp.example/"}
    # A mirror serves the same commits: the identity, so the gates and the group's pods, do not change, and
    # moving a stack to a mirror neither fetches the weights again nor rolls the group.
    assert plain_env(c)["MODEL_IDENTITY"] == HF_IDENTITY
    assert lws(result, "qwen-small") == lws(dev, "qwen-small")


def test_a_groups_own_endpoint_wins_over_the_platforms():
    def mutate(v):
        v["modelHubs"] = {"huggingface": "https://hf-mirror.corp.example"}
        v["inferenceGroups"][0]["model"]["download"]["endpoint"] = "http://hf-proxy.mirrors.svc:8080"

    result = run_with("dev", mutate)
    assert result.error is None, result.error
    c = job(result, "qwen-small-model-download")["spec"]["template"]["spec"]["containers"][0]
    assert hub_env_of(c) == {"HF_ENDPOINT": "http://hf-proxy.mirrors.svc:8080"}


def from_modelscope(v: dict) -> None:
    """prod's group as docs/model-weights.md shows it for clusters that reach only ModelScope."""
    model = v["inferenceGroups"][0]["model"]
    model["source"] = "modelscope"
    model["download"]["revision"] = "master"


def test_a_modelscope_endpoint_reaches_every_stager_in_both_settings_the_clients_read():
    def mutate(v):
        from_modelscope(v)
        v["modelHubs"] = {"modelscope": "https://modelscope.corp.example/ms"}

    result = run_with("prod", mutate, secrets={"apiKey": "k"})
    assert result.error is None, result.error
    (c,) = stager(result)["spec"]["template"]["spec"]["containers"]
    # modelscope-hub (what modelscope 1.40.2 runs) reads MODELSCOPE_ENDPOINT; an older modelscope only
    # MODELSCOPE_DOMAIN, to which it adds https:// itself.
    assert hub_env_of(c) == {
        "MODELSCOPE_ENDPOINT": "https://modelscope.corp.example/ms",
        "MODELSCOPE_DOMAIN": "modelscope.corp.example/ms",
    }


def test_an_http_modelscope_endpoint_is_not_given_to_clients_that_would_call_it_over_https():
    def mutate(v):
        from_modelscope(v)
        v["inferenceGroups"][0]["model"]["download"]["endpoint"] = "http://modelscope.mirrors.svc:8080"

    result = run_with("prod", mutate, secrets={"apiKey": "k"})
    assert result.error is None, result.error
    (c,) = stager(result)["spec"]["template"]["spec"]["containers"]
    assert hub_env_of(c) == {"MODELSCOPE_ENDPOINT": "http://modelscope.mirrors.svc:8080"}


def test_an_s3_group_gets_no_hub_endpoint():
    def mutate(v):
        s3_group()(v)
        v["modelHubs"] = {"huggingface": "https://hf-mirror.corp.example"}

    result = run_with("dev", mutate, secrets={"s3AccessKeyId": "a", "s3SecretAccessKey": "b"})
    assert result.error is None, result.error
    c = job(result, "qwen-small-model-download")["spec"]["template"]["spec"]["containers"][0]
    assert hub_env_of(c) == {}
    assert plain_env(c)["S3_ENDPOINT"] == "https://minio.storage.svc:9000"


def test_prod_startup_budget_is_the_configured_one_when_larger(prod):
    c = container(lws(prod, "deepseek-r1")["spec"]["leaderWorkerTemplate"]["leaderTemplate"])
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] == 90 * 60


def test_startup_budget_grows_with_the_model():
    # 642 GiB: 10 minutes to start plus 642 GiB at 10 GiB/min = 75 minutes, above a configured 30.
    result = run_with(
        "prod", lambda v: v["inferenceGroups"][0]["probes"].update(startupTimeoutMinutes=30), secrets={"apiKey": "k"}
    )
    c = container(lws(result, "deepseek-r1")["spec"]["leaderWorkerTemplate"]["workerTemplate"])
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] == 75 * 60


def test_a_group_waits_for_the_cache_that_creates_its_claim_and_no_other():
    def three(values):
        first = values["inferenceGroups"][0]
        # Mounts the claim the first group's cache creates; hand-staged weights, no download of its own.
        values["inferenceGroups"].append(
            dict(
                first,
                name="sharing",
                model={"path": "Other-Model", "servedName": "sharing", "source": "local"},
                modelVolume={"type": "pvc", "claimName": first["modelVolume"]["claimName"]},
            )
        )
        # Its own claim and download: independent of the first group's.
        values["inferenceGroups"].append(
            dict(
                first,
                name="separate",
                model=dict(first["model"], servedName="separate"),
                modelVolume=dict(first["modelVolume"], claimName="separate-models"),
            )
        )

    result = run_with("dev", three)
    assert result.error is None, result.error
    sharing = set(result.named("sharing-lws").dependencies)
    assert result.urn_of("qwen-small-model-pvc") in sharing
    assert not any("separate-model" in urn for urn in sharing)
    separate = set(result.named("separate-lws").dependencies)
    assert result.urn_of("separate-model-pvc") in separate
    assert not any("qwen-small-model" in urn for urn in separate)
