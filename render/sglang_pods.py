"""Pure builders of an inference group's objects: the LeaderWorkerSet spec with its leader and worker pod
templates, probes, the PodDisruptionBudget and NetworkPolicy specs. No Pulumi resources here; the
SglangInferenceGroup component registers what these return, and tests read them directly."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import pod_scripts
from ..config.stack import MODEL_VOLUME, InferenceGroup
from ..facts.lws import (
    LWS_GROUP_INDEX_LABEL,
    LWS_GROUP_KEY_LABEL,
    LWS_NAME_LABEL,
    LWS_REVISION_LABEL,
    LWS_WORKER_INDEX_LABEL,
)
from ..facts.sglang import Table, load_table
from ..facts.sglang.releases import ReleaseFacts, facts
from .k8s import COMPONENT_LABEL, NAME_LABEL, Spec, image_skips, labels, skip_annotations
from .server_args import API_KEY_ENV, LAUNCH, WORKER_INDEX_ENV, launch_args

# DeepGEMM's kernel cache in the pods, and the script that compiles into it (docs/deepseek.md, "DeepGEMM").
DEEP_GEMM_VOLUME = "deep-gemm-cache"
DEEP_GEMM_MOUNT = "/var/cache/sglang-platform/deep-gemm"
DEEP_GEMM_SCRIPT = pod_scripts.DIRECTORY / "deep_gemm_precompile.py"
DEEP_GEMM_SCRIPT_VOLUME = "deep-gemm-script"
DEEP_GEMM_SCRIPT_DIR = "/opt/sglang-platform/deep-gemm"
# The variable every release from 0.4.6 reads (0.5.x copies SGL_* to SGLANG_*), for an image of unknown release.
DEEP_GEMM_CACHE_ENV = "SGL_DG_CACHE_DIR"
# SGLang's own /health verdict takes up to SGLANG_HEALTH_CHECK_TIMEOUT (20 s, http_server.py) where /health
# generates a token: the probe waits for it rather than timing out first.
GENERATING_HEALTH_TIMEOUT = 25

# The group gate (docs/model-weights.md, "The group gate"): in a multi-node group whose weights are staged per
# node, each pod waits after its own weights gate (ModelCache's, named WEIGHTS_GATE) until every pod of its
# group has passed its own, so no pod starts SGLang while a peer still waits for its node's copy.
WEIGHTS_GATE = "wait-for-weights"
GROUP_GATE = "wait-for-group"
GROUP_GATE_SCRIPT = pod_scripts.DIRECTORY / "wait_for_group.py"
GROUP_GATE_SCRIPT_VOLUME = "group-gate-script"
GROUP_GATE_SCRIPT_DIR = "/opt/sglang-platform/group-gate"
GROUP_GATE_TOKEN_VOLUME = "group-gate-token"
# Where the script (and any Kubernetes client) looks for the token and CA; only this container mounts it.
GROUP_GATE_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# requests == limits keeps the SGLang pods Guaranteed; below the SGLang container's, so it costs nothing.
GROUP_GATE_RESOURCES = {"cpu": "100m", "memory": "128Mi"}
# It only reads a token and calls the API: no root needed (above the UIDs a node's own accounts use).
GROUP_GATE_UID = 65532
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
# Pods in the serving namespace carrying this label may call the inference API (Open WebUI does).
API_CLIENT_LABEL = "sglang-platform.io/api-client"
# Key of the group's API-key Secret (and of what Open WebUI and Prometheus read from it).
API_KEY_SECRET_KEY = "api-key"
# Every pod of a group carries the model it serves, so one selector finds the leaders of every group (and of
# every replica the autoscaler adds) serving a model: the gateway's (components/gateway.py).
MODEL_LABEL = "sglang-platform.io/model"
# app.kubernetes.io/name of the gateway's pods, which each group's NetworkPolicy admits for its model.
GATEWAY_APP = "sglang-gateway"
# Every pod of a role of a disaggregated service carries its service, its role and the revision of the pair
# (docs/disaggregation.md): the gateway's prefill and decode selectors name all three, the NetworkPolicy lets
# the two roles of one service reach each other.
PD_SERVICE_LABEL = "sglang-platform.io/pd-service"
PD_ROLE_LABEL = "sglang-platform.io/pd-role"
PD_REVISION_LABEL = "sglang-platform.io/pd-revision"
# sglang-router 0.3.2 reads a prefill pod's bootstrap port from this annotation, and only from it
# (router_args.py: bootstrap_port_annotation is fixed; there is no flag to rename it).
BOOTSTRAP_PORT_ANNOTATION = "sglang.ai/bootstrap-port"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def group_labels(g: InferenceGroup) -> dict[str, str]:
    return labels("sglang", instance=g.name)


def pd_labels(g: InferenceGroup) -> dict[str, str]:
    """The service and role of a role's pods (none for a colocated group)."""
    if g.pd is None:
        return {}
    return {PD_SERVICE_LABEL: g.pd.service, PD_ROLE_LABEL: g.pd.role}


def pd_revision(templates: Sequence[Any]) -> str:
    """The revision of a disaggregated service's pair of roles: a hash of both roles' pod templates (leader
    and worker, everything the pods run: image, flags, environment, resources, volumes), so a change to either
    role is a new revision of both. Replicas are not in it: scaling is not a new revision."""
    text = json.dumps(list(templates), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def model_label_value(served_name: str) -> str:
    """The served model name as a label value: itself when it is one (at most 63 characters of letters,
    digits, '-', '_', '.'), otherwise a readable stem plus a hash of the whole name, so two names never
    share a value (``deepseek-ai/DeepSeek-R1`` -> ``deepseek-ai-DeepSeek-R1-<10 hex>``)."""
    if len(served_name) <= 63 and _LABEL_VALUE.match(served_name):
        return served_name
    digest = hashlib.sha256(served_name.encode()).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", served_name)[:52].strip("-_.")
    return f"{stem}-{digest}" if stem else digest


@dataclass(frozen=True)
class PodExtras:
    """What other components add to every pod of a group."""

    init_containers: list[dict] = field(default_factory=list)
    volumes: list[dict] = field(default_factory=list)
    startup_timeout_minutes: int | None = None
    # Node labels required on top of the group's nodeSelector (e.g. the nodes ModelCache stages weights on).
    node_selector: dict[str, str] = field(default_factory=dict)
    # Labels on every pod (a disaggregated service's revision).
    labels: dict[str, str] = field(default_factory=dict)
    # Runs the group gate (where the group has one); None: the SGLang image.
    group_gate_image: str | None = None


def lws_spec(
    g: InferenceGroup,
    image: str,
    api_key_secret: str | None,
    pod_annotations: dict[str, str],
    extras: PodExtras | None = None,
    release: str | None = None,
) -> dict:
    """``release``: the SGLang release in ``image`` (its flag spellings, probe endpoints); None when unknown."""
    extras = extras or PodExtras()
    leader = pod_template(g, image, api_key_secret, pod_annotations, leader=True, extras=extras, release=release)
    template: dict[str, Any] = {"size": g.nodes, "restartPolicy": g.restart_policy}
    if g.nodes > 1:
        template["leaderTemplate"] = leader
        template["workerTemplate"] = pod_template(
            g, image, api_key_secret, pod_annotations, leader=False, extras=extras, release=release
        )
    else:
        # A group of one is just its leader; LWS uses the worker template for it.
        template["workerTemplate"] = leader
    return {
        "replicas": g.initial_replicas,
        # Workers start once the leader pod exists, so they can resolve LWS_LEADER_ADDRESS.
        "startupPolicy": "LeaderCreated",
        "rolloutStrategy": {
            "type": "RollingUpdate",
            "rollingUpdateConfiguration": {
                "maxSurge": g.rollout.max_surge,
                "maxUnavailable": g.rollout.max_unavailable,
            },
        },
        "leaderWorkerTemplate": template,
    }


def pod_template(
    g: InferenceGroup,
    image: str,
    api_key_secret: str | None,
    annotations: dict[str, str],
    *,
    leader: bool,
    extras: PodExtras | None = None,
    release: str | None = None,
) -> dict:
    extras = extras or PodExtras()
    table = load_table(release) if release is not None else None
    role = "leader" if leader else "worker"
    # Workers serve no API, and SGLang 0.4.3.post2 logs every server argument at start (api_key included):
    # the key goes only where it is needed, the leader.
    api_key_secret = api_key_secret if leader else None
    pod_labels = (
        group_labels(g)
        | {
            "role": role,
            COMPONENT_LABEL: role,
            MODEL_LABEL: model_label_value(g.model.served_name),
        }
        | pd_labels(g)
        | extras.labels
    )
    volumes = [
        model_volume(g),
        # 64 MiB default /dev/shm is too small for NCCL and SGLang's shared-memory IPC.
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": g.resources.shm_size}},
        *extras.volumes,
    ]
    if g.deep_gemm is not None:
        volumes += deep_gemm_volumes(g)
    container = _container(g, image, api_key_secret, leader=leader, table=table)
    init_containers = [dict(c) for c in extras.init_containers]
    gate_image = None
    if group_gate_needed(g):
        # After the weights gate (the extras), before anything that loads the weights.
        gate_image = extras.group_gate_image or image
        init_containers.append(group_gate_container(g, gate_image))
        volumes += group_gate_volumes(g)
    if g.deep_gemm is not None:
        _use_deep_gemm_cache(container, table)
        if g.deep_gemm.precompile:
            # After the weights are in place (the model cache's init containers): the compile loads them.
            init_containers.append(deep_gemm_container(g, image, container, table, leader=leader))
    container |= probes(
        g,
        extras.startup_timeout_minutes,
        leader=leader,
        release=facts(table.release) if table is not None else None,
    )
    spec: dict[str, Any] = {
        **({"initContainers": init_containers} if init_containers else {}),
        "containers": [container],
        "volumes": volumes,
        # SGLang never talks to the Kubernetes API; the group gate, which does, mounts a token of its own.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 60,
    }
    if gate_image is not None:
        spec["serviceAccountName"] = group_gate_account(g)
    if g.scheduler == "volcano":
        spec["schedulerName"] = "volcano"
    if selector := dict(g.node_selector) | extras.node_selector:
        spec["nodeSelector"] = selector
    if g.tolerations:
        spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in g.tolerations]
    if g.nodes > 1:
        spec["affinity"] = one_pod_per_node(g)
    pod_annotations = dict(annotations) | checkov_skips(g, image, api_key_secret is not None, gate_image)
    if leader and g.pd is not None and g.pd.role == "prefill":
        # Where the gateway tells decode to fetch this prefill server's KV cache from (0.4.6's decode has no
        # fallback when the gateway sends none).
        pod_annotations[BOOTSTRAP_PORT_ANNOTATION] = str(g.pd.settings.bootstrap_port)
    return {"metadata": {"labels": pod_labels, "annotations": pod_annotations}, "spec": spec}


def one_pod_per_node(g: InferenceGroup) -> dict:
    """A multi-node group is sized as ``nodes`` machines (--nnodes, one rank per machine, its own RDMA devices
    per pod). Nothing spread its pods: in the engine test the scheduler put both pods of a 2 x 1-GPU group on one
    node, where one node failure takes several ranks down and the fabric settings are not what runs.

    Required pod anti-affinity against every pod of the same LeaderWorkerSet (a role of a disaggregated service
    is its own LeaderWorkerSet), per node. Why not LWS's own annotations (v0.10.0, pkg/webhooks/pod_webhook.go
    SetExclusiveAffinities): ``exclusive-topology`` gives a group one topology domain to itself and pulls all its
    pods INTO that domain (with kubernetes.io/hostname, onto one node); ``subgroup-exclusive-topology`` with
    subGroupSize 1 spreads them, but its anti-affinity matches every subgrouped pod of any LeaderWorkerSet, so no
    two multi-node groups could share a node. A selector per group replica (matchLabelKeys on the group index)
    needs MatchLabelKeysInPodAffinity, alpha and off on Kubernetes 1.30. The price of this selector: two replicas
    of one multi-node group do not share a node either (single-node groups, e.g. 1-GPU groups, get no affinity
    and pack freely). Volcano honours required pod anti-affinity (its predicates plugin), so gang scheduling
    keeps it."""
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {LWS_NAME_LABEL: g.name}}, "topologyKey": HOSTNAME_TOPOLOGY}
            ]
        }
    }


def checkov_skips(g: InferenceGroup, image: str, api_key: bool, gate_image: str | None = None) -> dict[str, str]:
    """checkov findings on the SGLang pods that do not fit GPU inference with this image, each with the
    reason a reviewer sees (``checkov.io/skipN: ID=reason``; checkov splits on '=', so reasons have none).
    Everything else checkov asks for is set above (see docs/conformance.md). ``gate_image``: the group gate's,
    when the pod has one (a tag of its own is a digest finding of its own)."""
    root = "the SGLang image has no non-root user and JIT-compiles kernels (triton, flashinfer) into /root"
    pulls = image_skips(image, "sglangImage")
    if gate_image is not None and gate_image != image and "@sha256:" not in gate_image:
        tags = ("versions.sglangImage and " if len(pulls) > 1 else "") + "versions.modelDownloaderImage"
        pulls = [pulls[0], ("CKV_K8S_43", f"the tags are pinned in config/bom.py; set {tags} to @sha256 digests")]
    skips = [
        *pulls,
        ("CKV_K8S_23", root),
        ("CKV_K8S_40", root),
        (
            "CKV_K8S_22",
            "SGLang writes JIT kernel caches under /root/.cache and /tmp and its file storage in its working "
            "directory; a read-only root is not verified with this image",
        ),
    ]
    if api_key:
        skips.append(
            (
                "CKV_K8S_35",
                "SGLang takes the key only as --api-key; the env var only feeds that argument via $(VAR) "
                "expansion, and a file would need a shell that puts it in argv all the same",
            )
        )
    if g.network.fabric == "infiniband":
        skips.append(
            ("CKV_K8S_25", "IPC_LOCK: RDMA pins memory for registered buffers; without it NCCL falls back to TCP")
        )
    return skip_annotations(skips)


def group_gate_needed(g: InferenceGroup) -> bool:
    """A group of several pods whose nodes each stage their own copy: one pod's node may be ready long before
    another's (a node that just joined fetches for hours), and a pod that started SGLang would wait for the
    others' ranks only until --dist-timeout, after which the whole group is recreated and reloads. On a claim
    every pod waits for the same download, so they pass their gates together."""
    return g.nodes > 1 and g.stages_per_node


def group_gate_account(g: InferenceGroup) -> str:
    """The group's ServiceAccount, its Role and RoleBinding, and the ConfigMap of the gate's script."""
    return f"{g.name}-group-gate"


def group_gate_rules() -> Spec:
    """The gate lists the pods of its group by label; a label selector cannot be narrowed by RBAC, so it may
    read every pod of the namespace (their specs and status: no Secret values, which pods only reference)."""
    return [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]


def group_gate_volumes(g: InferenceGroup) -> list[dict]:
    return [
        {"name": GROUP_GATE_SCRIPT_VOLUME, "configMap": {"name": group_gate_account(g), "defaultMode": 0o444}},
        {
            "name": GROUP_GATE_TOKEN_VOLUME,
            "projected": {
                # Readable by the gate's non-root user: the kubelet makes a token file 0600 for the pod's user
                # only when every container runs as one user, and the SGLang container runs as root.
                "defaultMode": 0o444,
                "sources": [
                    # The kubelet renews it before it expires; the script reads it at every poll.
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                ],
            },
        },
    ]


def group_gate_container(g: InferenceGroup, image: str) -> dict:
    def label(key: str) -> dict:
        return {"valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{key}']"}}}

    env = [
        {"name": "GROUP_NAME", "value": g.name},
        {"name": "GROUP_SIZE", "value": str(g.nodes)},
        # LeaderWorkerSet sets these labels when it creates the pod: the group is only known then.
        {"name": "GROUP_KEY", **label(LWS_GROUP_KEY_LABEL)},
        {"name": "GROUP_INDEX", **label(LWS_GROUP_INDEX_LABEL)},
        {"name": "GROUP_REVISION", **label(LWS_REVISION_LABEL)},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "WEIGHTS_GATE", "value": WEIGHTS_GATE},
        {"name": "SERVICEACCOUNT_DIR", "value": GROUP_GATE_TOKEN_DIR},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    return {
        "name": GROUP_GATE,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", f"{GROUP_GATE_SCRIPT_DIR}/{GROUP_GATE_SCRIPT.name}"],
        "env": env,
        "resources": {"requests": dict(GROUP_GATE_RESOURCES), "limits": dict(GROUP_GATE_RESOURCES)},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": GROUP_GATE_UID,
            "runAsGroup": GROUP_GATE_UID,
        },
        "volumeMounts": [
            {"name": GROUP_GATE_SCRIPT_VOLUME, "mountPath": GROUP_GATE_SCRIPT_DIR, "readOnly": True},
            {"name": GROUP_GATE_TOKEN_VOLUME, "mountPath": GROUP_GATE_TOKEN_DIR, "readOnly": True},
        ],
    }


def model_volume(g: InferenceGroup) -> dict:
    vol = g.model_volume
    if vol.type == "hostPath":
        # A platform-managed download creates the directory on a fresh node; hand-staged weights must exist.
        kind = "DirectoryOrCreate" if g.model.download is not None else "Directory"
        return {"name": MODEL_VOLUME, "hostPath": {"path": vol.host_path, "type": kind}}
    return {"name": MODEL_VOLUME, "persistentVolumeClaim": {"claimName": vol.claim_name, "readOnly": True}}


def _container(g: InferenceGroup, image: str, api_key_secret: str | None, *, leader: bool, table: Table | None) -> dict:
    env: list[dict] = []
    if g.nodes > 1 and not leader:
        env.append(
            {
                "name": WORKER_INDEX_ENV,
                "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{LWS_WORKER_INDEX_LABEL}']"}},
            }
        )
    env.append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    env += fabric_env(g)
    if api_key_secret:
        env.append(
            {
                "name": API_KEY_ENV,
                "valueFrom": {"secretKeyRef": {"name": api_key_secret, "key": API_KEY_SECRET_KEY}},
            }
        )

    quantities = g.pod_quantities
    capabilities: dict[str, list[str]] = {"drop": ["ALL"]}
    if g.network.fabric == "infiniband":
        # RDMA pins (locks) memory for registered buffers; without IPC_LOCK NCCL falls back to sockets.
        capabilities["add"] = ["IPC_LOCK"]

    ports = [{"name": "http", "containerPort": g.ports.http, "protocol": "TCP"}]
    if leader and g.nodes > 1:
        ports.append({"name": "dist-init", "containerPort": g.ports.dist_init, "protocol": "TCP"})
    if leader and g.pd is not None and g.pd.role == "prefill":
        ports.append({"name": "bootstrap", "containerPort": g.pd.settings.bootstrap_port, "protocol": "TCP"})

    return {
        "name": "sglang-leader" if leader else "sglang-worker",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(LAUNCH),
        "args": launch_args(g, leader=leader, api_key=api_key_secret is not None, table=table),
        "env": env,
        "ports": ports,
        "resources": {"requests": dict(quantities), "limits": dict(quantities)},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": capabilities},
        "volumeMounts": [
            {"name": MODEL_VOLUME, "mountPath": g.model_volume.mount_path, "readOnly": True},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
    }


def probes(
    g: InferenceGroup,
    startup_timeout_minutes: int | None = None,
    *,
    leader: bool = True,
    release: ReleaseFacts | None = None,
) -> dict:
    """The leader's API answers only once the weights are loaded, so the startup probe carries the load budget
    and liveness starts after it; the reference's TCP readiness probe passed before the model could serve.

    Which path, per release (``release``; None: /health, which every release serves): up to 0.4.10 the
    leader's /health is a cheap 200 once the server is up. From 0.5.1 it runs a one-token generation (zero
    cost while the server is busy: any output within 20 s answers it, and a server that produces none is
    hung), so startup and readiness use the cheap /ready where the release has it (0.5.23: 200 once warmed
    up and while healthy) and liveness keeps /health, waiting for SGLang's own verdict. Workers always answer
    a stand-in /health (no API, no generation) once their schedulers run."""
    period = g.probes.period_seconds
    minutes = startup_timeout_minutes if startup_timeout_minutes is not None else g.probes.startup_timeout_minutes
    generates = leader and release is not None and release.health_generates
    cheap = "/ready" if leader and release is not None and release.ready_endpoint else "/health"
    return {
        "startupProbe": {
            "httpGet": {"path": cheap, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": GENERATING_HEALTH_TIMEOUT if generates and cheap == "/health" else 5,
            "failureThreshold": math.ceil(minutes * 60 / period),
        },
        "readinessProbe": {
            "httpGet": {"path": cheap, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": GENERATING_HEALTH_TIMEOUT if generates and cheap == "/health" else 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": max(period, 30),
            "timeoutSeconds": GENERATING_HEALTH_TIMEOUT if generates else 10,
            "failureThreshold": 5,
        },
    }


def deep_gemm_config_map_name(g: InferenceGroup) -> str:
    return f"{g.name}-deep-gemm"


def deep_gemm_volumes(g: InferenceGroup) -> list[dict]:
    dg = g.deep_gemm
    if dg is None:
        return []
    cache = dg.cache
    if cache.type == "hostPath":
        volume: dict[str, Any] = {
            "name": DEEP_GEMM_VOLUME,
            "hostPath": {"path": cache.host_path, "type": "DirectoryOrCreate"},
        }
    else:
        volume = {"name": DEEP_GEMM_VOLUME, "persistentVolumeClaim": {"claimName": cache.claim_name}}
    out = [volume]
    if dg.precompile:
        out.append(
            {
                "name": DEEP_GEMM_SCRIPT_VOLUME,
                "configMap": {"name": deep_gemm_config_map_name(g), "defaultMode": 0o444},
            }
        )
    return out


def _use_deep_gemm_cache(container: dict, table: Table | None) -> None:
    """SGLang caches DeepGEMM's JIT kernels where this variable points (default under ~/.cache, gone with the
    container): the volume keeps them across restarts and for the next group on the node or claim."""
    env = facts(table.release).deep_gemm_cache_env if table is not None else None
    container["env"].append({"name": env or DEEP_GEMM_CACHE_ENV, "value": DEEP_GEMM_MOUNT})
    container["volumeMounts"].append({"name": DEEP_GEMM_VOLUME, "mountPath": DEEP_GEMM_MOUNT})


def deep_gemm_compile_args(g: InferenceGroup, table: Table | None, *, leader: bool) -> list[str]:
    """compile_deep_gemm takes the server's flags: the group's own, without the API key (its readiness poll of
    /v1/models sends none) and bound to the pod's loopback (only the pod's own compile polls it), plus its
    timeout."""
    args = launch_args(g, leader=leader, api_key=False, table=table)
    host = args.index("--host")
    args[host + 1] = "127.0.0.1"
    assert g.deep_gemm is not None
    return ["python3", "-m", "sglang.compile_deep_gemm", *args, "--timeout", str(g.deep_gemm.timeout_minutes * 60)]


def deep_gemm_key(g: InferenceGroup, image: str, table: Table | None) -> str:
    """The configuration the kernels are compiled for: the image (its SGLang and CUDA) and every flag, as the
    leader gets them (the pods of a group differ only in --node-rank)."""
    flags = deep_gemm_compile_args(g, table, leader=True)
    digest = hashlib.sha256(json.dumps({"image": image, "flags": flags}).encode()).hexdigest()
    return f"{g.name}-{digest[:16]}"


def deep_gemm_container(g: InferenceGroup, image: str, server: dict, table: Table | None, *, leader: bool) -> dict:
    """Compiles the kernels into the cache, unless it holds them already, with the server container's GPUs,
    environment (less the API key) and volumes."""
    env = [e for e in server["env"] if e["name"] != API_KEY_ENV]
    return {
        "name": "compile-deep-gemm",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", f"{DEEP_GEMM_SCRIPT_DIR}/{DEEP_GEMM_SCRIPT.name}"],
        "args": [
            "--cache",
            DEEP_GEMM_MOUNT,
            "--key",
            deep_gemm_key(g, image, table),
            "--",
            *deep_gemm_compile_args(g, table, leader=leader),
        ],
        "env": env,
        "resources": json.loads(json.dumps(server["resources"])),
        "securityContext": json.loads(json.dumps(server["securityContext"])),
        "volumeMounts": [
            *(dict(m) for m in server["volumeMounts"]),
            {"name": DEEP_GEMM_SCRIPT_VOLUME, "mountPath": DEEP_GEMM_SCRIPT_DIR, "readOnly": True},
        ],
    }


def pdb_spec(g: InferenceGroup) -> Spec:
    """Evicting any pod restarts its whole group (RecreateGroupOnPodRestart). With one group nothing may be
    evicted; with several, one pod at a time, and the restarted group's pods then hold the budget at zero
    until it serves again, so a drain never takes two groups down. An autoscaled group is counted at its
    minimum, the size it may be at when the drain comes. Pods that are not ready (loading, crash-looping)
    serve nothing, so they may always be evicted: a broken group never blocks a node drain."""
    return {
        "maxUnavailable": 0 if g.initial_replicas == 1 else 1,
        "selector": {"matchLabels": {LWS_NAME_LABEL: g.name}},
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


def network_policy_spec(g: InferenceGroup, client_namespaces: Sequence[str], client_cidrs: Sequence[str] = ()) -> Spec:
    # NCCL between the members of a group; for a role of a disaggregated service also everything between its
    # two roles: decode asks the prefill leader's bootstrap server for the KV senders, and each prefill and
    # decode rank exchanges transfer messages with its peers on ports of its own choosing (the KV cache itself
    # moves over RDMA, which a NetworkPolicy does not see).
    peers = {PD_SERVICE_LABEL: g.pd.service} if g.pd is not None else {LWS_NAME_LABEL: g.name}
    members = {"podSelector": {"matchLabels": peers}}
    clients: list[dict] = [
        {"podSelector": {"matchLabels": {API_CLIENT_LABEL: "true"}}},
        # The gateway of this group's model (if the stack runs one): it sends the model's requests here.
        {
            "podSelector": {
                "matchLabels": {
                    NAME_LABEL: GATEWAY_APP,
                    MODEL_LABEL: model_label_value(g.model.served_name),
                }
            }
        },
    ]
    if client_namespaces:
        clients.append(
            {
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "In",
                            "values": sorted(set(client_namespaces)),
                        }
                    ]
                }
            }
        )
    clients += [{"ipBlock": {"cidr": cidr}} for cidr in sorted(set(client_cidrs))]
    return {
        "podSelector": {"matchLabels": {LWS_NAME_LABEL: g.name}},
        "policyTypes": ["Ingress"],
        "ingress": [
            # NCCL opens connections on ephemeral ports between every pair of group members.
            {"from": [members]},
            {"from": clients, "ports": [{"protocol": "TCP", "port": g.ports.http}]},
        ],
    }


def fabric_env(group: InferenceGroup) -> list[dict]:
    """NCCL/GLOO settings for the group's fabric, as container env entries."""
    net = group.network
    env = {
        "GLOO_SOCKET_IFNAME": net.socket_interface,
        "NCCL_SOCKET_IFNAME": net.socket_interface,
        "NCCL_DEBUG": net.nccl_debug,
    }
    if net.fabric == "infiniband":
        env |= {"NCCL_IB_DISABLE": "0", "NCCL_IB_HCA": ",".join(net.hcas), "NCCL_IB_CUDA_SUPPORT": "1"}
        if net.gid_index is not None:
            env["NCCL_IB_GID_INDEX"] = str(net.gid_index)
        if net.gdr_level is not None:
            env["NCCL_NET_GDR_LEVEL"] = str(net.gdr_level)
    else:
        env["NCCL_IB_DISABLE"] = "1"
    ep = group.expert_parallel
    if ep is not None and ep.a2a_backend == "deepep" and net.fabric == "infiniband":
        # DeepEP's internode kernels talk NVSHMEM over the same HCAs, which reads its own variables (SGLang's
        # lws_pd example and OME's deepseek-rdma runtimes set NVSHMEM_IB_GID_INDEX next to NCCL's, and
        # NVSHMEM_HCA_LIST to the HCAs).
        env["NVSHMEM_HCA_LIST"] = ",".join(net.hcas)
        if net.gid_index is not None:
            env["NVSHMEM_IB_GID_INDEX"] = str(net.gid_index)
    pd = group.pd
    if pd is not None and net.fabric == "infiniband" and net.gid_index is not None:
        # The KV transfer reads its own GID index: Mooncake's transfer engine MC_GID_INDEX (it refuses a null
        # GID: "please check your GID index by specifying MC_GID_INDEX"), NIXL's UCX UCX_IB_GID_INDEX.
        name = "MC_GID_INDEX" if pd.settings.transfer_backend == "mooncake" else "UCX_IB_GID_INDEX"
        env[name] = str(net.gid_index)
    if net.p2p_level is not None:
        env["NCCL_P2P_LEVEL"] = net.p2p_level
    if group.model.source == "modelscope":
        env["SGLANG_USE_MODELSCOPE"] = "true"
    return [{"name": k, "value": v} for k, v in env.items()]
