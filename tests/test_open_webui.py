"""OpenWebUI as rendered: wiring to the groups, secrets, persistence, Ingress, and its config rules."""

from __future__ import annotations

import json

from conftest import API_KEY, SMALL_GROUP, WEBUI_SECRET_KEY, container, env_map, run_with

from tools import harness


def ui_container(result) -> dict:
    return container(result.k8s_object("Deployment", "open-webui")["spec"]["template"])


def key_ref(secret: str) -> dict:
    return {"secretKeyRef": {"name": secret, "key": "api-key"}}


def test_prod_ui_talks_to_its_one_group_with_the_key_from_the_secret(prod):
    c = ui_container(prod)
    assert c["image"] == "ghcr.io/open-webui/open-webui:v0.5.14"
    assert [e["name"] for e in c["env"]] == [
        "WEBUI_SECRET_KEY",
        "WEBUI_AUTH",
        "ENABLE_SIGNUP",
        "DEFAULT_USER_ROLE",
        "ENABLE_OLLAMA_API",
        "ENABLE_OPENAI_API",
        "OPENAI_API_BASE_URLS",
        "SGLANG_API_KEY_DEEPSEEK_R1_GATEWAY",
        # after the variable it expands: Kubernetes resolves $(VAR) only from earlier entries
        "OPENAI_API_KEYS",
        "AIOHTTP_CLIENT_TIMEOUT",
    ]
    assert env_map(c) == {
        "WEBUI_SECRET_KEY": {"secretKeyRef": {"name": "open-webui-secret-key", "key": "webui-secret-key"}},
        "WEBUI_AUTH": "True",
        # 0.5.14 refuses every sign-up while this is false, the first one too: no admin could ever exist.
        "ENABLE_SIGNUP": "True",
        # ...so every account after the first (the admin) waits for the admin's approval.
        "DEFAULT_USER_ROLE": "pending",
        "ENABLE_OLLAMA_API": "False",
        "ENABLE_OPENAI_API": "True",
        # through the model's gateway, with the groups' key (which the gateway checks and passes on)
        "OPENAI_API_BASE_URLS": "http://deepseek-r1-gateway.deepseek.svc.cluster.local:8000/v1",
        "SGLANG_API_KEY_DEEPSEEK_R1_GATEWAY": key_ref("deepseek-r1-api-key"),
        "OPENAI_API_KEYS": "$(SGLANG_API_KEY_DEEPSEEK_R1_GATEWAY)",
        "AIOHTTP_CLIENT_TIMEOUT": "1800",
    }


def add_small(values):
    # prod gang-schedules every group through Volcano, in a queue sized for the groups.
    values["inferenceGroups"].append(dict(SMALL_GROUP, scheduler="volcano"))
    values["volcano"]["queue"]["capability"]["nvidia.com/gpu"] = "33"


def test_several_models_each_get_their_gateway_and_key_in_the_same_order():
    result = run_with("prod", add_small, secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    env = env_map(ui_container(result))
    assert env["OPENAI_API_BASE_URLS"] == (
        "http://deepseek-r1-gateway.deepseek.svc.cluster.local:8000/v1;"
        "http://r1-distill-gateway.deepseek.svc.cluster.local:8000/v1"
    )
    assert env["OPENAI_API_KEYS"] == "$(SGLANG_API_KEY_DEEPSEEK_R1_GATEWAY);$(SGLANG_API_KEY_R1_DISTILL_GATEWAY)"
    assert env["SGLANG_API_KEY_R1_DISTILL_GATEWAY"] == key_ref("r1-distill-api-key")
    # every referenced Secret exists in the UI's namespace
    for ref in ("deepseek-r1-api-key", "r1-distill-api-key"):
        assert result.k8s_object("Secret", ref)["metadata"]["namespace"] == "deepseek"


def test_groups_no_gateway_fronts_are_reached_directly():
    def front_only_r1(values):
        add_small(values)
        values["gateway"]["groups"] = ["r1-distill"]

    result = run_with("prod", front_only_r1, secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    env = env_map(ui_container(result))
    # stack order: deepseek-r1 (direct) first, then r1-distill's gateway
    assert env["OPENAI_API_BASE_URLS"] == (
        "http://deepseek-r1-api.deepseek.svc.cluster.local:8000/v1;"
        "http://r1-distill-gateway.deepseek.svc.cluster.local:8000/v1"
    )
    assert env["OPENAI_API_KEYS"] == "$(SGLANG_API_KEY_DEEPSEEK_R1);$(SGLANG_API_KEY_R1_DISTILL_GATEWAY)"

    def no_gateway(values):
        values["gateway"]["enabled"] = False

    env = env_map(ui_container(run_with("prod", no_gateway, secrets={"apiKey": API_KEY})))
    assert env["OPENAI_API_BASE_URLS"] == "http://deepseek-r1-api.deepseek.svc.cluster.local:8000/v1"
    assert env["OPENAI_API_KEYS"] == "$(SGLANG_API_KEY_DEEPSEEK_R1)"


def test_without_an_api_key_no_keys_are_wired(dev):
    env = env_map(ui_container(dev))
    assert env["OPENAI_API_BASE_URLS"] == "http://qwen-small-gateway.sglang-dev.svc.cluster.local:8000/v1"
    assert "OPENAI_API_KEYS" not in env
    assert not [k for k in env if k.startswith("SGLANG_API_KEY_")]


def test_secrets_never_in_plaintext(prod):
    secret = prod.named("open-webui-secret-key")
    assert harness.is_secret(secret.inputs["stringData"])
    assert secret.plain["stringData"] == {"webui-secret-key": WEBUI_SECRET_KEY}
    rendered = json.dumps([r.spec for r in prod.resources]) + json.dumps(prod.outputs)
    assert WEBUI_SECRET_KEY not in rendered
    assert API_KEY not in rendered


def test_ui_pods_are_admitted_by_the_groups_network_policy(prod):
    pod_labels = prod.k8s_object("Deployment", "open-webui")["spec"]["template"]["metadata"]["labels"]
    policy = prod.k8s_object("NetworkPolicy", "deepseek-r1-ingress")
    assert policy["metadata"]["namespace"] == prod.k8s_object("Deployment", "open-webui")["metadata"]["namespace"]
    api_rule = policy["spec"]["ingress"][1]
    selectors = [p["podSelector"]["matchLabels"] for p in api_rule["from"] if "podSelector" in p]
    assert any(all(pod_labels.get(k) == v for k, v in s.items()) for s in selectors)


def test_only_the_ui_port_of_its_pods_is_reachable(prod):
    pod_labels = prod.k8s_object("Deployment", "open-webui")["spec"]["template"]["metadata"]["labels"]
    policy = prod.k8s_object("NetworkPolicy", "open-webui-ingress")
    assert policy["metadata"]["namespace"] == "deepseek"
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "open-webui"}
    assert all(pod_labels[k] == v for k, v in selector.items())
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]
    # The UI's container listens on that port and nothing else.
    ports = container(prod.k8s_object("Deployment", "open-webui")["spec"]["template"])["ports"]
    assert [p["containerPort"] for p in ports] == [8080]


def test_checkov_skips_on_the_ui_name_their_reason_and_follow_the_image_pin():
    def skips(result):
        annotations = result.k8s_object("Deployment", "open-webui")["metadata"]["annotations"]
        return [v.split("=", 1)[0] for k, v in sorted(annotations.items()) if k.startswith("checkov.io/skip")]

    tagged = run_with("dev", lambda v: None)
    assert skips(tagged) == ["CKV_K8S_15", "CKV_K8S_43", "CKV_K8S_23", "CKV_K8S_40", "CKV_K8S_22", "CKV_K8S_35"]
    digest = run_with(
        "dev",
        lambda v: v.setdefault("versions", {}).update(
            openWebuiImage="ghcr.io/open-webui/open-webui@sha256:" + "b" * 64
        ),
    )
    assert digest.error is None, digest.error
    assert "CKV_K8S_43" not in skips(digest)


def test_pod_spec_probes_resources_and_hardening(prod):
    spec = prod.k8s_object("Deployment", "open-webui")["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "open-webui-data"}}]
    assert pod["automountServiceAccountToken"] is False
    c = container(spec["template"])
    assert c["volumeMounts"] == [{"name": "data", "mountPath": "/app/backend/data"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    service = prod.k8s_object("Service", "open-webui")
    assert service["spec"]["ports"] == [{"name": "http", "port": 3000, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "open-webui"}
    # Registered without waiting up to 10 minutes for ready endpoints (the engine test found that wait).
    assert service["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}


def test_chat_history_survives_destroy_unless_the_stack_opts_out(prod):
    claim = prod.named("open-webui-data")
    assert claim.retain_on_delete is True
    assert prod.k8s_object("PersistentVolumeClaim", "open-webui-data")["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "100Gi"}},
        "storageClassName": "nfs-client",
    }

    def opt_out(values):
        values["openWebui"]["persistence"]["retainOnDestroy"] = False

    assert run_with("prod", opt_out, secrets={"apiKey": API_KEY}).named("open-webui-data").retain_on_delete is False


def test_settings_from_config():
    def tune(values):
        values["openWebui"] |= {"requestTimeoutSeconds": 7200, "enableSignup": True, "defaultUserRole": "user"}

    env = env_map(ui_container(run_with("dev", tune)))
    assert (env["AIOHTTP_CLIENT_TIMEOUT"], env["ENABLE_SIGNUP"], env["DEFAULT_USER_ROLE"]) == ("7200", "True", "user")


def test_ingress_with_tls():
    def ingress(values):
        values["openWebui"]["ingress"] = {
            "enabled": True,
            "host": "chat.example.com",
            "className": "nginx",
            "tlsSecretName": "chat-tls",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "1800"},
        }

    result = run_with("dev", ingress)
    obj = result.k8s_object("Ingress", "open-webui")
    assert obj["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/proxy-read-timeout": "1800"}
    assert obj["spec"] == {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": "chat.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "open-webui", "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ],
        "tls": [{"hosts": ["chat.example.com"], "secretName": "chat-tls"}],
    }
    assert result.outputs["openWebui"]["url"] == "https://chat.example.com"


def test_no_ingress_by_default(prod):
    assert not [o for o in harness.kubernetes_objects(prod) if o["kind"] == "Ingress"]
    assert prod.outputs["openWebui"]["url"] == "http://open-webui.deepseek.svc.cluster.local:3000"


def test_config_errors():
    def bad(values):
        values["openWebui"]["ingress"] = {"enabled": True}
        values["openWebui"]["requestTimeoutSeconds"] = 10

    result = run_with("dev", bad, secrets={"webuiSecretKey": None})
    assert result.resources == []
    assert result.error is not None
    assert result.error.splitlines()[1:] == [
        "  - sglang-platform:openWebui.requestTimeoutSeconds: Input should be greater than or equal to 60 (got 10)",
    ]

    def no_host(values):
        values["openWebui"]["ingress"] = {"enabled": True}

    result = run_with("dev", no_host, secrets={"webuiSecretKey": None})
    assert result.error is not None
    assert result.error.splitlines()[1:] == [
        "  - sglang-platform:openWebui.ingress.host: required when ingress.enabled is true",
        "  - sglang-platform:webuiSecretKey: required secret is not set (openWebui.enabled is true): run "
        "`pulumi config set --secret sglang-platform:webuiSecretKey <value>` or set "
        "sglang-platform:openWebui.enabled to false",
    ]


def test_disabled_ui_needs_no_secret_and_renders_nothing():
    def off(values):
        values["openWebui"] = {"enabled": False}

    result = run_with("dev", off, secrets={"webuiSecretKey": None})
    assert result.error is None
    assert not [r for r in result.resources if r.type == "sglang-platform:index:OpenWebUI"]
    assert "openWebui" not in result.outputs
