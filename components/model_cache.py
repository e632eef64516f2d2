"""ModelCache: the volume a group's weights live on, the download that fills it, and the init containers
that keep the group's pods from starting before the weights are complete.

- ``modelVolume.type: pvc``: an optional PersistentVolumeClaim (kept on destroy unless ``pvc.retain`` is
  false) and one download Job; each SGLang pod waits in an init container for the Job's completion marker.
- ``modelVolume.type: hostPath``: every node holds its own copy (as in the reference deployment). A staging
  DaemonSet fills it on every node the group may use, before and independently of the group: each revision
  in a directory of its own, switched in by renaming a symlink once it is verified; its pods report progress
  as Prometheus metrics. The SGLang pods only wait, in an init container, for the marker of their revision.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .. import pod_scripts
from ..config.model_cache import HUBS, STAGER_REQUESTS, ModelDownload, Pvc, Staging
from ..config.stack import MODEL_VOLUME, InferenceGroup
from ..render.k8s import COMPONENT_LABEL, NAME_LABEL, Spec, image_skips, skip_annotations, skip_await
from ..render.sglang_pods import WEIGHTS_GATE, group_labels
from .k8s import child_opts, meta

SCRIPT = pod_scripts.DIRECTORY / "download_model.py"
SCRIPT_DIR = "/opt/sglang-platform"
SCRIPT_VOLUME = "model-download-script"
TMP_VOLUME = "model-download-tmp"
MARKER = ".sglang-platform-complete.json"
# Stack secret -> environment variable of the download container, by source.
CREDENTIAL_ENV: Mapping[str, Mapping[str, str]] = {
    "huggingface": {"hfToken": "HF_TOKEN"},
    "modelscope": {"modelscopeToken": "MODELSCOPE_API_TOKEN"},
    "s3": {"s3AccessKeyId": "AWS_ACCESS_KEY_ID", "s3SecretAccessKey": "AWS_SECRET_ACCESS_KEY"},
}
# requests == limits keeps the SGLang pods in the Guaranteed QoS class (init containers count too); a pod's
# request is the larger of its init and app containers, so these cost the GPU nodes nothing extra.
DOWNLOAD_RESOURCES = {"cpu": "2", "memory": "4Gi"}
GATE_RESOURCES = {"cpu": "100m", "memory": "128Mi"}
# The download Job's user: not root, and above the UIDs a node's own accounts use (checkov CKV_K8S_40).
DOWNLOAD_UID = 65532
# The staging DaemonSet runs on GPU nodes for good (it serves its metrics after the fetch): a small request so
# it never stands in the way of an SGLang pod (the node-fit rules count the request beside the group's pod),
# room to burst while it downloads and verifies.
STAGER_RESOURCES = {"requests": dict(STAGER_REQUESTS), "limits": {"cpu": "2", "memory": "4Gi"}}
STAGER_PORT = 9400
STAGER_PORT_NAME = "metrics"
STAGER_COMPONENT = "weights-stager"


@dataclass
class ModelCacheArgs:
    config: InferenceGroup
    namespace: pulumi.Input[str]
    # Runs the download (python >= 3.10).
    downloader_image: str
    # Runs the gate; the SGLang image, already on the GPU nodes.
    gate_image: str
    # pip requirement of the source's client library, installed when the downloader image lacks it.
    requirement: str
    # Stack secrets by key (hfToken, modelscopeToken, s3AccessKeyId, s3SecretAccessKey); unused ones ignored.
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # The endpoint of the group's hub (a Hugging Face mirror, an internal ModelScope: the stack's modelHubs) for
    # a huggingface or modelscope group; the group's own model.download.endpoint wins. None: the public hub.
    hub_endpoint: str | None = None
    # Namespaces whose pods may scrape the staging DaemonSet's metrics (the monitoring stack's).
    metrics_namespaces: Sequence[str] = ()
    depends_on: Sequence[pulumi.Resource] = ()


class ModelCache(pulumi.ComponentResource):
    # Plain values for the group's pod templates (needed while building them, so not Outputs).
    init_containers: list[dict]
    volumes: list[dict]
    # Node labels the group's pods must also require: the nodes the staging DaemonSet covers.
    node_selector: dict[str, str]
    # What the gate waits for (MODEL_DIR, MODEL_IDENTITY, WAIT_HINT), for a pod that waits in its own process
    # instead (the benchmark: on the clock of its own timeout); empty without a download.
    gate: dict[str, str]
    claim_name: pulumi.Output[str | None]
    job_name: pulumi.Output[str | None]
    daemon_set_name: pulumi.Output[str | None]
    marker_path: pulumi.Output[str | None]

    def __init__(self, name: str, args: ModelCacheArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sglang-platform:index:ModelCache", name, None, opts)
        g, ns = args.config, args.namespace
        vol, download = g.model_volume, g.model.download
        labels = cache_labels(g)
        child = child_opts(self, opts, *args.depends_on)

        claim = None
        if g.creates_claim and vol.pvc is not None and vol.claim_name:
            claim = vol.claim_name
            k8s.core.v1.PersistentVolumeClaim(
                f"{name}-pvc",
                # A WaitForFirstConsumer class binds the claim only once a pod mounts it, and the pods come
                # after it: awaiting Bound here would stall the up.
                metadata=meta(claim, ns, labels, skip_await()),
                spec=pvc_spec(g),
                # Weights take hours to fetch: a destroy keeps them unless the stack opts out.
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(retain_on_delete=vol.pvc.retain)),
            )

        self.init_containers, self.volumes, self.node_selector = [], [], {}
        self.gate = gate_env(g) if download is not None else {}
        job_name = daemon_set_name = None
        if download is not None:
            k8s.core.v1.ConfigMap(
                f"{name}-script",
                metadata=meta(script_config_map_name(g), ns, labels),
                data={SCRIPT.name: SCRIPT.read_text()},
                opts=child,
            )
            secret_env = credential_env(g, args.secrets)
            if secret_env and not download.credentials_secret:
                k8s.core.v1.Secret(
                    f"{name}-credentials",
                    metadata=meta(credentials_secret_name(g), ns, labels),
                    type="Opaque",
                    string_data={env: pulumi.Output.secret(value) for env, value in secret_env.items()},
                    opts=child,
                )
            endpoint = hub_endpoint(g, args.hub_endpoint)
            container = download_container(g, args.downloader_image, args.requirement, sorted(secret_env), endpoint)
            self.volumes = [script_volume(g)]
            if not g.stages_per_node:  # a claim: one download Job; else a stager per node
                job_name = download_job_name(g)
                k8s.batch.v1.Job(
                    f"{name}-download",
                    metadata=meta(
                        job_name,
                        ns,
                        labels,
                        skip_await(skip_annotations(image_skips(args.downloader_image, "modelDownloaderImage"))),
                    ),
                    spec=job_spec(g, container),
                    # A Job's pod template is immutable and its name fixed: a changed template (a new hub
                    # endpoint, image or client pin) is a replacement, which must delete the old Job first or the
                    # API server refuses the update as "field is immutable" (found by `tools/sandbox.py up`).
                    opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(delete_before_replace=True)),
                )
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-download-netpol",
                    metadata=meta(job_name, ns, labels),
                    spec=download_network_policy_spec(g),
                    opts=child,
                )
                self.init_containers = [gate_container(g, args.gate_image)]
            else:
                daemon_set_name = stager_name(g)
                k8s.apps.v1.DaemonSet(
                    f"{name}-stager",
                    metadata=meta(
                        daemon_set_name, ns, stager_labels(g), skip_await(stager_skips(args.downloader_image))
                    ),
                    spec=stager_spec(g, args.downloader_image, args.requirement, sorted(secret_env), endpoint),
                    opts=child,
                )
                k8s.networking.v1.NetworkPolicy(
                    f"{name}-stager-netpol",
                    metadata=meta(daemon_set_name, ns, stager_labels(g)),
                    spec=stager_network_policy_spec(g, args.metrics_namespaces),
                    opts=child,
                )
                self.init_containers = [gate_container(g, args.gate_image)]
                self.node_selector = dict(download.staging.node_selector)

        self.claim_name = pulumi.Output.from_input(claim)
        self.job_name = pulumi.Output.from_input(job_name)
        self.daemon_set_name = pulumi.Output.from_input(daemon_set_name)
        self.marker_path = pulumi.Output.from_input(f"{g.model_path}/{MARKER}" if download is not None else None)
        self.register_outputs(
            {
                "claim_name": self.claim_name,
                "job_name": self.job_name,
                "daemon_set_name": self.daemon_set_name,
                "marker_path": self.marker_path,
            }
        )


def stager_name(g: InferenceGroup) -> str:
    return f"{g.name}-weights"


def stager_labels(g: InferenceGroup) -> dict[str, str]:
    return cache_labels(g) | {COMPONENT_LABEL: STAGER_COMPONENT}


def stager_network_policy_spec(g: InferenceGroup, metrics_namespaces: Sequence[str]) -> Spec:
    """Only Prometheus connects to a stager, on its metrics port; it calls out to its hub, store or PyPI."""
    ingress = []
    if metrics_namespaces:
        ingress.append(
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/metadata.name",
                                    "operator": "In",
                                    "values": sorted(set(metrics_namespaces)),
                                }
                            ]
                        }
                    }
                ],
                "ports": [{"protocol": "TCP", "port": STAGER_PORT}],
            }
        )
    return {"podSelector": {"matchLabels": stager_labels(g)}, "policyTypes": ["Ingress"], "ingress": ingress}


def placed_groups(g: InferenceGroup) -> list[InferenceGroup]:
    """The groups whose pods read the weights: the group itself, or both roles of a disaggregated service (one
    DaemonSet stages for both: they serve the same weights from the same host path)."""
    roles = list(g.roles.values()) if g.disaggregation is not None else []
    return roles or [g]


def staging_node_selector(g: InferenceGroup) -> dict[str, str]:
    """Where copies are kept: the nodes the group's nodeSelector admits, narrowed to the staging labels. The
    roles of a disaggregated service that select different nodes are covered by ``staging_affinity`` instead."""
    selectors = [dict(p.node_selector) for p in placed_groups(g)]
    common = {k: v for k, v in selectors[0].items() if all(s.get(k) == v for s in selectors)}
    return common | dict(_staging(g).node_selector)


def staging_affinity(g: InferenceGroup) -> Spec | None:
    """The nodes of either role, when the roles of a disaggregated service select different ones (a
    nodeSelector can only intersect): one node selector term per role, ORed. None when one nodeSelector says
    it all, or when a role selects no labels (it may run anywhere the staging labels admit)."""
    staged = dict(_staging(g).node_selector)
    common = staging_node_selector(g)
    terms: list[dict] = []
    for p in placed_groups(g):
        own = {k: v for k, v in p.node_selector.items() if k not in common and k not in staged}
        if not own:
            return None
        expressions = [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(own.items())]
        if expressions not in [t["matchExpressions"] for t in terms]:
            terms.append({"matchExpressions": expressions})
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def staging_tolerations(g: InferenceGroup) -> list[dict]:
    """The taints any pod reading the weights tolerates (both roles' of a disaggregated service)."""
    out: list[dict] = []
    for p in placed_groups(g):
        for t in p.tolerations:
            dumped = t.model_dump(by_alias=True, exclude_none=True)
            if dumped not in out:
                out.append(dumped)
    return out


def _staging(g: InferenceGroup) -> Staging:
    return _download(g).staging


def stager_spec(
    g: InferenceGroup, image: str, requirement: str, secret_envs: Sequence[str], endpoint: str | None = None
) -> Spec:
    """One pod per node the group may use: fetch, verify, switch in, then serve metrics until replaced. A new
    node gets its pod (and its copy) as soon as it joins; a changed revision rolls every pod at once
    (maxUnavailable 100%), each fetching beside the revision its node already serves."""
    container = download_container(g, image, requirement, secret_envs, endpoint)
    container |= {
        "name": "stage-weights",
        "command": ["python3", f"{SCRIPT_DIR}/{SCRIPT.name}", "stage"],
        "ports": [{"name": STAGER_PORT_NAME, "containerPort": STAGER_PORT, "protocol": "TCP"}],
        # Ready once this node's copy is in place: `kubectl rollout status daemonset/<group>-weights` waits for
        # every node, and the DaemonSet's READY column counts the nodes that have the weights.
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": STAGER_PORT_NAME},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 1,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": STAGER_PORT_NAME},
            "periodSeconds": 30,
            "timeoutSeconds": 10,
            "failureThreshold": 5,
        },
        "resources": {k: dict(v) for k, v in STAGER_RESOURCES.items()},
    }
    container["env"] = [
        *container["env"],
        {"name": "STAGE_GROUP", "value": g.name},
        {"name": "STAGE_KEEP_REVISIONS", "value": str(_staging(g).keep_revisions)},
        {"name": "METRICS_PORT", "value": str(STAGER_PORT)},
    ]
    d = _download(g)
    pod: dict[str, Any] = {
        "containers": [container],
        "volumes": [
            {"name": MODEL_VOLUME, "hostPath": {"path": g.model_volume.host_path, "type": "DirectoryOrCreate"}},
            script_volume(g),
            tmp_volume(),
        ],
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # Root, as the reference staged the host directory (and as the SGLang pods read it), every capability
        # dropped: it writes only under the model directory and /tmp.
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 30,
    }
    if d.service_account_name:
        pod["serviceAccountName"] = d.service_account_name
    if selector := staging_node_selector(g):
        pod["nodeSelector"] = selector
    if affinity := staging_affinity(g):
        pod["affinity"] = affinity
    if tolerations := staging_tolerations(g):
        pod["tolerations"] = tolerations
    labels = stager_labels(g)
    return {
        "selector": {"matchLabels": labels},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}},
        "template": {
            "metadata": {"labels": labels},
            "spec": pod,
        },
    }


def stager_skips(image: str) -> dict[str, str]:
    root = (
        "writes the weights into the node's model directory, which root owns (the SGLang pods read it as root); "
        "all capabilities are dropped"
    )
    return skip_annotations([*image_skips(image, "modelDownloaderImage"), ("CKV_K8S_23", root), ("CKV_K8S_40", root)])


def download_network_policy_spec(g: InferenceGroup) -> Spec:
    """Nothing connects to the download Job's pod; it calls out to its hub, store or PyPI."""
    return {"podSelector": {"matchLabels": cache_labels(g)}, "policyTypes": ["Ingress"], "ingress": []}


def cache_labels(g: InferenceGroup) -> dict[str, str]:
    return group_labels(g) | {
        NAME_LABEL: "sglang-model-cache",
        COMPONENT_LABEL: "model-download",
    }


def script_config_map_name(g: InferenceGroup) -> str:
    return f"{g.name}-model-download"


def credentials_secret_name(g: InferenceGroup) -> str:
    download = g.model.download
    if download is not None and download.credentials_secret:
        return download.credentials_secret
    return f"{g.name}-model-credentials"


def download_job_name(g: InferenceGroup) -> str:
    return f"{g.name}-model-download"


def credential_env(g: InferenceGroup, secrets: Mapping[str, Any]) -> dict[str, Any]:
    """Environment variable -> secret value for the group's source. A group naming its own Secret
    (credentialsSecret) gets every variable of its source from there."""
    wanted = CREDENTIAL_ENV.get(g.model.source, {})
    download = g.model.download
    if download is not None and download.credentials_secret:
        return dict.fromkeys(wanted.values())
    return {env: secrets[key] for key, env in wanted.items() if key in secrets}


def _download(g: InferenceGroup) -> ModelDownload:
    """The group's download settings; only called for groups that have them (the caller checked)."""
    d = g.model.download
    if d is None:
        raise ValueError(f"{g.name}: model.download is not set")
    return d


def _pvc(g: InferenceGroup) -> Pvc:
    pvc = g.model_volume.pvc
    if pvc is None:
        raise ValueError(f"{g.name}: modelVolume.pvc is not set")
    return pvc


def pvc_spec(g: InferenceGroup) -> Spec:
    pvc = _pvc(g)
    spec: dict[str, Any] = {"accessModes": [pvc.access_mode], "resources": {"requests": {"storage": pvc.size}}}
    if pvc.storage_class:
        spec["storageClassName"] = pvc.storage_class
    return spec


def identity(g: InferenceGroup) -> dict[str, str]:
    return _download(g).identity(g.model.source)


def _env(values: Mapping[str, str | None]) -> list[dict]:
    return [{"name": k, "value": v} for k, v in values.items() if v is not None]


def hub_endpoint(g: InferenceGroup, platform_endpoint: str | None) -> str | None:
    """The hub endpoint a huggingface or modelscope group downloads from: its own model.download.endpoint, else
    the platform's (modelHubs); None for the public hub, and for s3 (its endpoint is S3_ENDPOINT)."""
    if g.model.source not in HUBS:
        return None
    return _download(g).endpoint or platform_endpoint


def hub_env(source: str, endpoint: str | None) -> dict[str, str]:
    """The endpoint as each client's own setting, so the script and anything it runs use it unchanged.
    huggingface_hub reads HF_ENDPOINT. modelscope 1.40.2 delegates to modelscope-hub, whose HubConfig reads
    MODELSCOPE_ENDPOINT (then the deprecated MODELSCOPE_DOMAIN); modelscope before 1.38, as an image may have it
    installed, reads only MODELSCOPE_DOMAIN and puts https:// in front of it, so it gets the https endpoint
    without its scheme (an http endpoint cannot be given to it at all)."""
    if endpoint is None:
        return {}
    if source == "huggingface":
        return {"HF_ENDPOINT": endpoint}
    if source == "modelscope":
        legacy = {"MODELSCOPE_DOMAIN": endpoint.removeprefix("https://")} if endpoint.startswith("https://") else {}
        return {"MODELSCOPE_ENDPOINT": endpoint} | legacy
    return {}


def download_container(
    g: InferenceGroup, image: str, requirement: str, secret_envs: Sequence[str], endpoint: str | None = None
) -> dict:
    """The container that fetches (the Job's, and the stager's before it adds its own settings); ``endpoint``:
    the group's hub endpoint (``hub_endpoint``)."""
    d = _download(g)
    env = _env(
        {
            "MODEL_DIR": g.model_path,
            "MODEL_SOURCE": g.model.source,
            "MODEL_IDENTITY": json.dumps(identity(g), sort_keys=True),
            "MODEL_REPO": d.repo,
            "MODEL_REVISION": d.revision,
            "S3_BUCKET": d.bucket,
            "S3_PREFIX": d.prefix if g.model.source == "s3" else None,
            "S3_ENDPOINT": d.endpoint,
            "AWS_REGION": d.region,
            "MAX_WORKERS": str(d.max_workers),
            "DOWNLOAD_REQUIREMENT": requirement,
            "DEPS_DIR": "/tmp/sglang-platform-deps",
            "HOME": "/tmp",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
        }
        | hub_env(g.model.source, endpoint)
    )
    secret = credentials_secret_name(g)
    env += [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": name}}} for name in secret_envs]
    return {
        "name": "download-weights",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", f"{SCRIPT_DIR}/{SCRIPT.name}", "download"],
        "env": env,
        "resources": {"requests": dict(DOWNLOAD_RESOURCES), "limits": dict(DOWNLOAD_RESOURCES)},
        "securityContext": _container_security(),
        "volumeMounts": [
            # Read-write here only; the SGLang container mounts the same volume read-only.
            {"name": MODEL_VOLUME, "mountPath": g.model_volume.mount_path},
            {"name": SCRIPT_VOLUME, "mountPath": SCRIPT_DIR, "readOnly": True},
            {"name": TMP_VOLUME, "mountPath": "/tmp"},
        ],
    }


def gate_env(g: InferenceGroup) -> dict[str, str]:
    """The directory the gate waits for, the identity its completion marker must name, and where to look."""
    source = f"daemonset/{stager_name(g)}" if g.model_volume.type == "hostPath" else f"job/{download_job_name(g)}"
    return {
        "MODEL_DIR": g.model_path,
        "MODEL_IDENTITY": json.dumps(identity(g), sort_keys=True),
        "WAIT_HINT": f"{source} fetches them (kubectl logs {source})",
    }


def gate_container(g: InferenceGroup, image: str) -> dict:
    env = gate_env(g)
    return {
        "name": WEIGHTS_GATE,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", f"{SCRIPT_DIR}/{SCRIPT.name}", "wait"],
        "env": _env(env),
        "resources": {"requests": dict(GATE_RESOURCES), "limits": dict(GATE_RESOURCES)},
        "securityContext": _container_security(),
        "volumeMounts": [
            {"name": MODEL_VOLUME, "mountPath": g.model_volume.mount_path, "readOnly": True},
            {"name": SCRIPT_VOLUME, "mountPath": SCRIPT_DIR, "readOnly": True},
        ],
    }


def _container_security() -> dict:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}


def script_volume(g: InferenceGroup) -> dict:
    return {"name": SCRIPT_VOLUME, "configMap": {"name": script_config_map_name(g), "defaultMode": 0o444}}


def tmp_volume() -> dict:
    return {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "2Gi"}}


def job_spec(g: InferenceGroup, container: dict) -> Spec:
    d = _download(g)
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [
            {"name": MODEL_VOLUME, "persistentVolumeClaim": {"claimName": g.model_volume.claim_name}},
            script_volume(g),
            tmp_volume(),
        ],
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # The downloader image needs no root: HOME, pip's target and temporary files are under /tmp.
        # fsGroup makes the claim writable to that user where the volume supports ownership management.
        "securityContext": {
            "seccompProfile": {"type": "RuntimeDefault"},
            "runAsNonRoot": True,
            "runAsUser": DOWNLOAD_UID,
            "runAsGroup": DOWNLOAD_UID,
            "fsGroup": DOWNLOAD_UID,
            "fsGroupChangePolicy": "OnRootMismatch",
        },
    }
    if d.service_account_name:
        pod["serviceAccountName"] = d.service_account_name
    if g.tolerations:
        # The Job may run on any node that mounts the claim; on clusters of tainted GPU nodes only those exist.
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in g.tolerations]
    if g.node_selector:
        # Where the group runs is where the claim is reachable (zonal or node-local storage).
        pod["nodeSelector"] = dict(g.node_selector)
    return {
        # Each retry resumes where the last one stopped; a flaky hub or store gets many chances.
        "backoffLimit": 20,
        "template": {"metadata": {"labels": cache_labels(g)}, "spec": pod},
    }
