"""OpenWebUI: the chat front end, wired to every inference group of the stack.

Plain objects, as in the reference deployment (Deployment + PVC + Service), plus the Secret holding
WEBUI_SECRET_KEY and an optional Ingress. Open WebUI 0.5.14 keeps OPENAI_API_BASE_URLS / OPENAI_API_KEYS
and ENABLE_SIGNUP as "PersistentConfig": read from the environment on the first start only, then from its
database (ENABLE_PERSISTENT_CONFIG, which turns that off, arrived in 0.6.x). Groups added later must be
added under Admin Settings > Connections, or the data volume reset.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..config.webui import CLAIM_ACCESS_MODES, CLAIM_NAME, OpenWebUIConfig
from ..render.k8s import NAME_LABEL, Spec, away_from_gpu_nodes, image_skips, labels, skip_annotations, skip_await
from ..render.sglang_pods import API_CLIENT_LABEL, API_KEY_SECRET_KEY
from .k8s import child_opts, meta

NAME = "open-webui"
HTTP_PORT = 8080  # the image's start.sh default
SERVICE_PORT = 3000  # the reference's Service port
DATA_DIR = "/app/backend/data"  # DATA_DIR default of the image: SQLite database, uploads, caches
SECRET_KEY_KEY = "webui-secret-key"


# Keyword-only: several fields of one type in a row, easy to swap by position.
@dataclass(kw_only=True)
class Backend:
    """One OpenAI-compatible endpoint: an inference group's base URL and the Secret with its API key."""

    name: str
    base_url: pulumi.Input[str]
    # Secret (in the UI's namespace) whose key "api-key" holds the group's --api-key; None: no key.
    api_key_secret_name: pulumi.Input[str | None] = None


@dataclass
class OpenWebUIArgs:
    config: OpenWebUIConfig
    namespace: pulumi.Input[str]
    image: str
    secret_key: pulumi.Input[str]
    backends: Sequence[Backend]
    depends_on: Sequence[pulumi.Resource] = ()


class OpenWebUI(pulumi.ComponentResource):
    service_name: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(self, name: str, args: OpenWebUIArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sglang-platform:index:OpenWebUI", name, None, opts)
        s = args.config
        ns = args.namespace
        ui_labels = labels(NAME)
        child = child_opts(self, opts, *args.depends_on)

        secret = k8s.core.v1.Secret(
            f"{name}-secret-key",
            metadata=meta(f"{NAME}-secret-key", ns, ui_labels),
            type="Opaque",
            string_data={SECRET_KEY_KEY: pulumi.Output.secret(args.secret_key)},
            opts=child,
        )
        claim = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-data",
            # Bound only once the UI pod mounts it on WaitForFirstConsumer classes; the pod comes after it.
            metadata=meta(CLAIM_NAME, ns, ui_labels, skip_await()),
            spec=pvc_spec(s),
            # Users, chat history and uploads: they outlive `pulumi destroy` unless the stack opts out.
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(retain_on_delete=s.persistence.retain_on_destroy)
            ),
        )
        names = [b.name for b in args.backends]
        env = pulumi.Output.all(
            [b.base_url for b in args.backends], [b.api_key_secret_name for b in args.backends]
        ).apply(lambda v: container_env(s, list(zip(names, v[0], v[1], strict=True))))
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta(NAME, ns, ui_labels, checkov_skips(args.image)),
            spec=deployment_spec(s, args.image, ui_labels, env),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[secret, claim])),
        )
        service_spec: Spec = {
            "type": s.service_type,
            "selector": {NAME_LABEL: NAME},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        }
        # Like the groups' Services: not awaited, since the UI's first start (database migration, embedding model
        # download) can outlast the provider's 10-minute wait for endpoints.
        k8s.core.v1.Service(
            f"{name}-service", metadata=meta(NAME, ns, ui_labels, skip_await()), spec=service_spec, opts=child
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta(f"{NAME}-ingress", ns, ui_labels),
            spec=network_policy_spec(),
            opts=child,
        )
        url: pulumi.Input[str] = pulumi.Output.concat("http://", NAME, ".", ns, f".svc.cluster.local:{SERVICE_PORT}")
        if s.ingress.enabled:
            k8s.networking.v1.Ingress(
                f"{name}-ingress",
                metadata=meta(NAME, ns, ui_labels, s.ingress.annotations),
                spec=ingress_spec(s),
                opts=child,
            )
            url = f"{'https' if s.ingress.tls_secret_name else 'http'}://{s.ingress.host}"

        self.service_name = pulumi.Output.from_input(NAME)
        self.url = pulumi.Output.from_input(url)
        self.register_outputs({"service_name": self.service_name, "url": self.url})


def checkov_skips(image: str) -> dict[str, str]:
    """checkov findings on the UI's Deployment that this image does not allow, each with its reason (see
    docs/conformance.md); everything else checkov asks for is set in deployment_spec."""
    root = (
        "Open WebUI 0.5 images are built for UID 0 (its Dockerfile's UID and GID build args) and own /app as "
        "root; a non-root run is not verified with this image"
    )
    return skip_annotations(
        [
            *image_skips(image, "openWebuiImage"),
            ("CKV_K8S_23", root),
            ("CKV_K8S_40", root),
            (
                "CKV_K8S_22",
                "Open WebUI writes outside its data volume when it starts (static assets under "
                "/app/backend/open_webui/static, caches under /root and /tmp); a read-only root is not verified",
            ),
            (
                "CKV_K8S_35",
                "Open WebUI reads WEBUI_SECRET_KEY and OPENAI_API_KEYS only from its environment; both come "
                "from Secrets by secretKeyRef and never appear in the spec",
            ),
        ]
    )


def network_policy_spec() -> Spec:
    """Only the UI's HTTP port is reachable (from the Ingress controller, a port-forward or a LoadBalancer);
    the UI itself calls out freely (the groups, its embedding model's hub)."""
    return {
        "podSelector": {"matchLabels": {NAME_LABEL: NAME}},
        "policyTypes": ["Ingress"],
        "ingress": [{"ports": [{"port": HTTP_PORT, "protocol": "TCP"}]}],
    }


def key_env_name(backend: str) -> str:
    return "SGLANG_API_KEY_" + re.sub(r"[^A-Z0-9]", "_", backend.upper())


def container_env(s: OpenWebUIConfig, backends: list[tuple[str, str, str | None]]) -> list[dict]:
    """Env of the container; API keys come from the groups' Secrets and reach OPENAI_API_KEYS through
    Kubernetes' $(VAR) expansion, so no key is ever in the spec."""
    env: list[dict] = [
        {
            "name": "WEBUI_SECRET_KEY",
            "valueFrom": {"secretKeyRef": {"name": f"{NAME}-secret-key", "key": SECRET_KEY_KEY}},
        },
        {"name": "WEBUI_AUTH", "value": "True"},
        {"name": "ENABLE_SIGNUP", "value": str(s.enable_signup)},
        {"name": "DEFAULT_USER_ROLE", "value": s.default_user_role},
        # Ollama is on by default and would keep probing http://localhost:11434.
        {"name": "ENABLE_OLLAMA_API", "value": "False"},
        {"name": "ENABLE_OPENAI_API", "value": "True"},
        {"name": "OPENAI_API_BASE_URLS", "value": ";".join(url for _, url, _ in backends)},
    ]
    keys = []
    for name, _, secret in backends:
        if secret:
            var = key_env_name(name)
            env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": API_KEY_SECRET_KEY}}})
            keys.append(f"$({var})")
        else:
            keys.append("")  # index-aligned with the URLs; SGLang without --api-key ignores the header
    if any(keys):
        env.append({"name": "OPENAI_API_KEYS", "value": ";".join(keys)})
    # Seconds one proxied completion may take; unset would mean no limit, the old 300 s default cut
    # DeepSeek-R1's long reasoning answers off (open-webui #6125).
    env.append({"name": "AIOHTTP_CLIENT_TIMEOUT", "value": str(s.request_timeout_seconds)})
    return env


def pvc_spec(s: OpenWebUIConfig) -> Spec:
    spec: dict[str, Any] = {
        "accessModes": list(CLAIM_ACCESS_MODES),
        "resources": {"requests": {"storage": s.persistence.size}},
    }
    if s.persistence.storage_class:
        spec["storageClassName"] = s.persistence.storage_class
    return spec


def deployment_spec(s: OpenWebUIConfig, image: str, ui_labels: dict[str, str], env: pulumi.Input[list]) -> Spec:
    health = {"path": "/health", "port": "http"}
    limits = {"memory": s.resources.memory_limit}
    if s.resources.cpu_limit:
        limits["cpu"] = s.resources.cpu_limit
    return {
        # One writer: the SQLite database lives on a ReadWriteOnce volume.
        "replicas": 1,
        "strategy": {"type": "Recreate"},
        "selector": {"matchLabels": {NAME_LABEL: NAME}},
        "template": {
            "metadata": {"labels": {**ui_labels, API_CLIENT_LABEL: "true"}},
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                # Off the GPU nodes where it can: the group pods need their room (components/k8s.py).
                "affinity": away_from_gpu_nodes(),
                "containers": [
                    {
                        "name": NAME,
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
                        "env": env,
                        "resources": {
                            "requests": {"cpu": s.resources.cpu, "memory": s.resources.memory},
                            "limits": limits,
                        },
                        # The image runs as root and writes under /app; it needs no capabilities.
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}],
                        # The first start migrates the database and fetches the embedding model.
                        "startupProbe": {
                            "httpGet": dict(health),
                            "periodSeconds": 10,
                            "timeoutSeconds": 5,
                            "failureThreshold": 60,
                        },
                        "readinessProbe": {"httpGet": dict(health), "periodSeconds": 10, "timeoutSeconds": 5},
                        "livenessProbe": {
                            "httpGet": dict(health),
                            "periodSeconds": 30,
                            "timeoutSeconds": 10,
                            "failureThreshold": 5,
                        },
                    }
                ],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": CLAIM_NAME}}],
            },
        },
    }


def ingress_spec(s: OpenWebUIConfig) -> Spec:
    ing = s.ingress
    spec: dict[str, Any] = {
        "rules": [
            {
                "host": ing.host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": NAME, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ]
    }
    if ing.class_name:
        spec["ingressClassName"] = ing.class_name
    if ing.tls_secret_name:
        spec["tls"] = [{"hosts": [ing.host], "secretName": ing.tls_secret_name}]
    return spec
