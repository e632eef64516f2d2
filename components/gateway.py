"""SglangGateway: SGLang's model gateway in front of every group that serves one model.

The gateway (PyPI ``sglang-router``, image ``lmsysorg/sgl-model-gateway``; or its successor smg, image
``lightseekorg/smg``: ``product``, facts/gateways) watches the pods of its namespace
through the Kubernetes API and registers each ready leader whose labels match its selector: every group
serving the model, and every replica the autoscaler adds, without a ``pulumi up``. Requests are routed
cache-aware (the group most likely to hold the prompt's prefix), retried on another group, kept away from
failing ones (circuit breaker, health checks). It creates its ServiceAccount with a Role that may only list
and watch pods in its namespace, the Deployment, a Service, a NetworkPolicy and (several replicas) a
PodDisruptionBudget. The pure ``*_spec`` builders below are what the tests read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from ..config.errors import refusal
from ..config.gateway import GatewayConfig
from ..facts.gateways import PACKAGES, PRODUCTS
from ..facts.lws import LWS_WORKER_INDEX_LABEL
from ..render.gateway_args import API_KEY_ENV, NAMESPACE_ENV, PdSelectors, gateway_args
from ..render.k8s import (
    INSTANCE_LABEL,
    NAME_LABEL,
    Spec,
    away_from_gpu_nodes,
    image_skips,
    labels,
    skip_annotations,
    skip_await,
)
from ..render.sglang_pods import (
    API_CLIENT_LABEL,
    API_KEY_SECRET_KEY,
    GATEWAY_APP,
    MODEL_LABEL,
    PD_REVISION_LABEL,
    PD_ROLE_LABEL,
    PD_SERVICE_LABEL,
    model_label_value,
)
from .k8s import child_opts, meta, workload_rbac

# The exact served model name, on the gateway's pods: Prometheus copies it into the model_name label of
# every gateway series (the dashboard's model filter), as SGLang's own series carry it.
SERVED_MODEL_ANNOTATION = "sglang-platform.io/served-model-name"
# A non-root user of no image's: the gateway reads its Python venv (root-owned, world-readable under /opt in
# the image) and writes nothing but /tmp.
RUN_AS = 65532
NAME_MAX = 50  # "<name>-ingress" and the Deployment's pod names must stay within Kubernetes' limits
# What the gateway may do with the Kubernetes API: the discovery of sglang-router 0.3.2 and of smg (its
# service_discovery.rs: a kube-rs reflector over watcher()) is one watcher (LIST then WATCH) on the pods of
# --service-discovery-namespace; neither reads a single pod, a Service or anything else.
DISCOVERY_RULES: Spec = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]


def gateway_labels(name: str) -> dict[str, str]:
    return labels(GATEWAY_APP, instance=name, component="gateway")


def gateway_selector(name: str) -> dict[str, str]:
    return {NAME_LABEL: GATEWAY_APP, INSTANCE_LABEL: name}


def leader_selector(served_model_name: str) -> dict[str, str]:
    """The leader pods of every group serving the model, in every replica: the model label the groups put on
    their pods, the groups' app name, and LWS's worker index 0 (workers serve no API and must not be
    registered)."""
    return {
        NAME_LABEL: "sglang",
        MODEL_LABEL: model_label_value(served_model_name),
        LWS_WORKER_INDEX_LABEL: "0",
    }


def pd_selectors(served_model_name: str, service: str, revision: str) -> tuple[dict[str, str], dict[str, str]]:
    """The leaders of a disaggregated service's prefill role and of its decode role, of one revision only: a
    gateway never pairs a prefill and a decode server of different revisions (docs/disaggregation.md)."""
    base = leader_selector(served_model_name) | {PD_SERVICE_LABEL: service, PD_REVISION_LABEL: revision}
    prefill = base | {PD_ROLE_LABEL: "prefill"}
    decode = base | {PD_ROLE_LABEL: "decode"}
    return prefill, decode


@dataclass
class SglangGatewayArgs:
    config: GatewayConfig
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    # The model whose groups it fronts (their --served-model-name) and the port they serve on.
    served_model_name: str
    worker_port: int
    # Secret (in the namespace) whose key "api-key" holds the groups' --api-key: the gateway checks it on
    # every request and sends it on. None: neither the groups nor the gateway ask for a key.
    api_key_secret_name: pulumi.Input[str | None] = None
    # Namespaces and networks whose clients may call it (besides labelled pods), as for the groups.
    client_namespaces: Sequence[str] = ()
    client_cidrs: Sequence[str] = ()
    # Namespace of the Prometheus that scrapes its metrics port; None: no monitoring.
    monitoring_namespace: str | None = None
    depends_on: Sequence[pulumi.Resource] = ()
    # A disaggregated service (its name) and the revision of its roles (SglangDisaggregatedService.revision):
    # the gateway runs in PD mode, pairing only the prefill and decode leaders of that revision.
    pd_service: str | None = None
    pd_revision: pulumi.Input[str] | None = None
    # The SGLang release the groups run: which endpoint the gateway's health checks probe (/ready where the
    # release has it). None: /health.
    sglang_release: str | None = None
    # Which gateway the image runs (facts.gateways.PRODUCTS): the Python package whose launch_router it starts.
    product: str = "sglang-router"


class SglangGateway(pulumi.ComponentResource):
    base_url: pulumi.Output[str]
    service_name: pulumi.Output[str]
    port: pulumi.Output[int]
    served_model_name: pulumi.Output[str]
    api_key_secret_name: pulumi.Output[str | None]

    def __init__(self, name: str, args: SglangGatewayArgs, opts: pulumi.ResourceOptions | None = None):
        # Before registering: a refused component leaves nothing behind, not even itself.
        _refuse_invalid(name, args)
        super().__init__("sglang-platform:index:SglangGateway", name, None, opts)
        s = args.config
        ns = args.namespace
        child = child_opts(self, opts, *args.depends_on)
        gw_labels = gateway_labels(name)

        # Only pods that ask for the token get it (the gateway's own, see pod_spec).
        *_, binding = workload_rbac(name, name, ns, gw_labels, DISCOVERY_RULES, child, account_suffix="serviceaccount")
        spec = pulumi.Output.all(args.image, args.api_key_secret_name, args.pd_revision).apply(
            lambda v: deployment_spec(
                name,
                s,
                v[0],
                args.served_model_name,
                args.worker_port,
                v[1],
                pd_selectors(args.served_model_name, args.pd_service, v[2]) if args.pd_service else None,
                args.sglang_release,
                args.product,
            )
        )
        # Ready only once a group's leader is healthy (its /readiness), which can be an hour after the up for
        # DeepSeek-R1: Pulumi must not wait for it.
        metadata = pulumi.Output.all(args.image, ns).apply(
            lambda v: meta(name, v[1], gw_labels, skip_await(checkov_skips(v[0], args.product)))
        )
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata,
            spec=spec,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[binding])),
        )
        service_spec: Spec = {
            "type": s.service_type,
            "selector": gateway_selector(name),
            "ports": [{"name": "http", "port": s.port, "targetPort": "http", "protocol": "TCP"}],
        }
        k8s.core.v1.Service(
            f"{name}-service", metadata=meta(name, ns, gw_labels, skip_await()), spec=service_spec, opts=child
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta(f"{name}-ingress", ns, gw_labels),
            spec=network_policy_spec(name, s, args.client_namespaces, args.client_cidrs, args.monitoring_namespace),
            opts=child,
        )
        if s.replicas > 1:
            # One replica at a time may go; with a single replica a budget would block every drain.
            pdb_spec: Spec = {"maxUnavailable": 1, "selector": {"matchLabels": gateway_selector(name)}}
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb", metadata=meta(f"{name}-pdb", ns, gw_labels), spec=pdb_spec, opts=child
            )

        self.service_name = pulumi.Output.from_input(name)
        self.port = pulumi.Output.from_input(s.port)
        self.base_url = pulumi.Output.concat("http://", name, ".", ns, ".svc.cluster.local:", str(s.port), "/v1")
        self.served_model_name = pulumi.Output.from_input(args.served_model_name)
        self.api_key_secret_name = pulumi.Output.from_input(args.api_key_secret_name)
        self.register_outputs(
            {
                "base_url": self.base_url,
                "service_name": self.service_name,
                "port": self.port,
                "served_model_name": self.served_model_name,
                "api_key_secret_name": self.api_key_secret_name,
            }
        )


def _refuse_invalid(name: str, args: SglangGatewayArgs) -> None:
    """For programs that build the args themselves (the stack's own were checked with the whole
    configuration): refuse before any child exists."""
    problems = []
    if (args.pd_service is None) != (args.pd_revision is None):
        problems.append("pd_service and pd_revision go together (PD mode needs both)")
    if len(name) > NAME_MAX or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name):
        problems.append(f"name {name!r} must be a DNS-1123 label of at most {NAME_MAX} characters")
    if args.config.port == args.config.metrics_port:
        problems.append(f"port and metricsPort are both {args.config.port}")
    if args.product not in PRODUCTS:
        problems.append(f"product {args.product!r} is not a gateway the platform runs: use {' or '.join(PRODUCTS)}")
    if args.config.service_type != "ClusterIP" and not args.client_cidrs:
        problems.append(f"a {args.config.service_type} Service needs client_cidrs (its NetworkPolicy drops the rest)")
    if problems:
        raise ValueError(refusal(f"SglangGateway {name!r}: invalid config", problems))


def checkov_skips(image: str, product: str = "sglang-router") -> dict[str, str]:
    """checkov findings that do not fit the gateway, each with the reason a reviewer sees (docs/conformance.md);
    everything else checkov asks for is set in pod_spec."""
    return skip_annotations(
        [
            *image_skips(image, "gatewayImage"),
            (
                "CKV_K8S_38",
                "the gateway discovers the groups' leader pods through the Kubernetes API; its ServiceAccount "
                "may only list and watch pods in this namespace",
            ),
            (
                "CKV_K8S_35",
                f"{product} takes the groups' key only as --api-key; the env var from the Secret only feeds "
                "that argument via $(VAR) expansion",
            ),
        ]
    )


def deployment_spec(
    name: str,
    s: GatewayConfig,
    image: str,
    served_model_name: str,
    worker_port: int,
    api_key_secret: str | None,
    pd: PdSelectors | None = None,
    sglang_release: str | None = None,
    product: str = "sglang-router",
) -> Spec:
    pod_labels = gateway_labels(name) | {MODEL_LABEL: model_label_value(served_model_name)}
    return {
        "replicas": s.replicas,
        # Keep the old pod until the new one has found a healthy group: a gateway restart never empties the
        # Service while the groups serve.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "selector": {"matchLabels": gateway_selector(name)},
        "template": {
            "metadata": {"labels": pod_labels, "annotations": {SERVED_MODEL_ANNOTATION: served_model_name}},
            "spec": pod_spec(
                name, s, image, served_model_name, worker_port, api_key_secret, pd, sglang_release, product
            ),
        },
    }


def pod_spec(
    name: str,
    s: GatewayConfig,
    image: str,
    served_model_name: str,
    worker_port: int,
    api_key_secret: str | None,
    pd: PdSelectors | None = None,
    sglang_release: str | None = None,
    product: str = "sglang-router",
) -> Spec:
    env: list[dict] = [
        {"name": NAMESPACE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        # Nothing of the image's user is writable under a read-only root.
        {"name": "HOME", "value": "/tmp"},
    ]
    if api_key_secret:
        env.append(
            {"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": api_key_secret, "key": API_KEY_SECRET_KEY}}}
        )
    limits = {"memory": s.resources.memory_limit}
    if s.resources.cpu_limit:
        limits["cpu"] = s.resources.cpu_limit
    container = {
        "name": "gateway",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        # The image's entrypoint, spelled out: what runs does not depend on which image family is pinned.
        "command": ["python3", "-m", f"{PACKAGES[product]}.launch_router"],
        "args": gateway_args(
            s,
            worker_port=worker_port,
            selector=leader_selector(served_model_name),
            api_key=bool(api_key_secret),
            pd=pd,
            sglang_release=sglang_release,
        ),
        "env": env,
        "ports": [
            {"name": "http", "containerPort": s.port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": s.metrics_port, "protocol": "TCP"},
        ],
        "resources": {"requests": {"cpu": s.resources.cpu, "memory": s.resources.memory}, "limits": limits},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # /readiness answers 200 once at least one discovered leader passes the gateway's health check (in PD
        # mode: one prefill and one decode leader): the Service sends nothing to a gateway that has nowhere to
        # route. /liveness answers whenever the process serves HTTP.
        "readinessProbe": {
            "httpGet": {"path": "/readiness", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/liveness", "port": "http"},
            "initialDelaySeconds": 10,
            "periodSeconds": 20,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    spec: dict = {
        "serviceAccountName": name,
        # The one pod of the platform that talks to the Kubernetes API (the ServiceAccount mounts no token
        # by default).
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # Requests in flight get shutdownGraceSeconds to finish before the kubelet kills the process.
        "terminationGracePeriodSeconds": s.shutdown_grace_seconds + 10,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    # Off the GPU nodes where it can: the group pods need their room (components/k8s.py).
    spec["affinity"] = away_from_gpu_nodes()
    if s.replicas > 1:
        # Each replica on another node, where there is room: a node failure leaves the others routing.
        spec["affinity"]["podAntiAffinity"] = {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": gateway_selector(name)},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    return spec


def network_policy_spec(
    name: str,
    s: GatewayConfig,
    client_namespaces: Sequence[str],
    client_cidrs: Sequence[str] = (),
    monitoring_namespace: str | None = None,
) -> Spec:
    """The same clients as the groups' API (labelled pods, the listed namespaces and networks) reach the
    gateway's API port; only the monitoring namespace reaches its metrics port."""
    clients: list[dict] = [{"podSelector": {"matchLabels": {API_CLIENT_LABEL: "true"}}}]
    if client_namespaces:
        clients.append(_namespaces(client_namespaces))
    clients += [{"ipBlock": {"cidr": cidr}} for cidr in sorted(set(client_cidrs))]
    ingress: list[dict] = [{"from": clients, "ports": [{"protocol": "TCP", "port": s.port}]}]
    if monitoring_namespace:
        ingress.append(
            {"from": [_namespaces([monitoring_namespace])], "ports": [{"protocol": "TCP", "port": s.metrics_port}]}
        )
    return {"podSelector": {"matchLabels": gateway_selector(name)}, "policyTypes": ["Ingress"], "ingress": ingress}


def _namespaces(names: Sequence[str]) -> dict:
    return {
        "namespaceSelector": {
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(set(names))}]
        }
    }


def selector_matches(selector: Mapping[str, str], pod_labels: Mapping[str, str]) -> bool:
    """0.3.2's PodInfo::matches_selector: a non-empty equality map, every pair present on the pod."""
    return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())
