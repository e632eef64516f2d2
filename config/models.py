"""Typed stack configuration: what a platform team may put under ``sglang-platform:*``.

Field rules live on the fields (types, ranges, patterns, enums); rules that span fields live in
``config.checks`` so every problem is reported at once. Keys are camelCase in stack files and
snake_case in Python, so other teams can build these models in their own programs.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, Field

from config import bom
from config.addons import ChartMirror, GpuOperatorConfig, LwsConfig, VolcanoConfig
from config.autoscaling import GroupAutoscaling, KedaConfig
from config.base import DNS_LABEL, Base, DnsLabel, Quantity
from config.model_cache import ModelDownload, Preflight, Pvc

# LWS names a group's worker StatefulSet "<name>-<replica>" and Kubernetes adds a controller-revision-hash
# label "<statefulset>-<10 chars>" that must fit the 63-character label limit: 40 leaves room for
# 4-digit replica indexes and the "-api" Service suffix.
GROUP_NAME_MAX = 40
CHART_PIN = r"^v?\d+\.\d+\.\d+$"
FLOATING_TAGS = frozenset({"latest", "main", "master", "nightly", "dev", "edge", "stable", "head"})


def _pinned_image(value: str) -> str:
    ref = value.strip()
    if not ref or any(c.isspace() for c in ref):
        raise ValueError(f"{value!r} is not an image reference")
    if "@sha256:" in ref:
        return ref
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        raise ValueError(f"image {value!r} has no tag: pin a version tag or a @sha256 digest")
    if tag.lower() in FLOATING_TAGS or not any(c.isdigit() for c in tag):
        raise ValueError(
            f"image {value!r} uses the floating tag {tag!r}: pin a version tag (e.g. v0.4.3.post2) or a @sha256 digest"
        )
    return ref


def _pinned_chart(value: str) -> str:
    if not re.match(CHART_PIN, value):
        raise ValueError(
            f"chart version {value!r} is not a pinned release: use an exact version such as 1.9.0 "
            "(no ranges, no latest)"
        )
    return value


def _absolute_path(value: str) -> str:
    if not value.startswith("/") or ".." in value.split("/"):
        raise ValueError(f"{value!r} must be an absolute path without '..'")
    return value


def _relative_path(value: str) -> str:
    if not value or value.startswith("/") or ".." in value.split("/"):
        raise ValueError(f"{value!r} must be a relative path inside the volume, without '..'")
    return value


Image = Annotated[str, AfterValidator(_pinned_image)]
ChartVersion = Annotated[str, AfterValidator(_pinned_chart)]
AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]
RelativePath = Annotated[str, AfterValidator(_relative_path)]
# An exact pip pin: the download containers install it when their image lacks the library.
PinnedRequirement = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+$")]
Port = Annotated[int, Field(ge=1, le=65535)]


def release_of_tag(image: str) -> Version | None:
    """The release an image tag names (``lmsysorg/sglang:v0.4.3.post2-cu124`` -> 0.4.3.post2)."""
    tag = image.split("@", 1)[0].rpartition(":")[2]
    match = re.match(r"^v?(\d+\.\d+(?:\.\d+)?(?:\.?post\d+|rc\d+)?)", tag)
    if not match:
        return None
    try:
        return Version(match[1])
    except InvalidVersion:
        return None


class Versions(Base):
    """Overrides of the bill of materials in ``config/bom.py``."""

    sglang_image: Image = Field(bom.SGLANG_IMAGE, description="SGLang container image (pinned tag or digest).")
    sglang_version: str | None = Field(
        None, description="SGLang release in the image; derived from the tag, required for a bare digest."
    )
    kubernetes: str = Field(
        bom.KUBERNETES_VERSION,
        pattern=r"^v?1\.\d+(\.\d+)?$",
        description="Kubernetes version the cluster runs (schemas the render is validated against).",
    )
    open_webui_image: Image = Field(bom.OPEN_WEBUI_IMAGE, description="Open WebUI container image.")
    kube_prometheus_stack: str = Field(
        bom.KUBE_PROMETHEUS_STACK_CHART,
        pattern=r"^\d+\.\d+\.\d+$",
        description="kube-prometheus-stack chart version.",
    )
    keda_chart: str = Field(bom.KEDA_CHART, pattern=r"^\d+\.\d+\.\d+$", description="KEDA chart version.")
    model_downloader_image: Image = Field(
        bom.MODEL_DOWNLOADER_IMAGE, description="Image of the model download Job and hostPath download init containers."
    )
    huggingface_hub: PinnedRequirement = Field(bom.HUGGINGFACE_HUB, description="pip requirement for Hugging Face.")
    modelscope: PinnedRequirement = Field(bom.MODELSCOPE, description="pip requirement for ModelScope downloads.")
    boto3: PinnedRequirement = Field(bom.BOTO3, description="pip requirement for S3 downloads.")
    gpu_operator_chart: ChartVersion = Field(bom.GPU_OPERATOR_CHART, description="NVIDIA gpu-operator chart.")
    volcano_chart: ChartVersion = Field(bom.VOLCANO_CHART, description="Volcano chart.")
    lws_chart: ChartVersion = Field(
        bom.LWS_CHART,
        description="LeaderWorkerSet chart installed, or the release the cluster runs (lws.mode present).",
    )

    @property
    def sglang_release(self) -> Version | None:
        if self.sglang_version:
            try:
                return Version(self.sglang_version)
            except InvalidVersion:
                return None
        return release_of_tag(self.sglang_image)


class Model(Base):
    path: RelativePath = Field(description="Directory of the weights inside the model volume.")
    served_name: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        description="Model name clients send (--served-model-name).",
    )
    source: Literal["huggingface", "modelscope", "s3", "local"] = Field(
        "huggingface", description="Where the weights come from; modelscope sets SGLANG_USE_MODELSCOPE."
    )
    trust_remote_code: bool = Field(True, description="Pass --trust-remote-code (DeepSeek needs it).")
    download: ModelDownload | None = Field(
        None, description="Have the platform download the weights into the volume (unset: staged by hand)."
    )
    size_gib: float | None = Field(
        None,
        gt=0,
        le=100_000,
        alias="sizeGiB",
        description="Size of the weights in GiB; defaults for known models, measured for s3.",
    )


class ModelVolume(Base):
    type: Literal["hostPath", "pvc"] = Field(description="hostPath (a copy on every node) or pvc (one shared claim).")
    host_path: AbsolutePath | None = Field(None, description="Node directory holding the model directories.")
    claim_name: DnsLabel | None = Field(None, description="PersistentVolumeClaim holding the weights.")
    mount_path: AbsolutePath = Field("/models", description="Where the volume is mounted (read-only).")
    pvc: Pvc | None = Field(None, description="Create the claim (type pvc) and check it holds the weights.")


class Network(Base):
    fabric: Literal["infiniband", "tcp"] = Field("tcp", description="Inter-node fabric for NCCL.")
    socket_interface: str = Field(
        "eth0", pattern=r"^[A-Za-z0-9_.:-]{1,15}$", description="NIC for bootstrap (GLOO/NCCL_SOCKET_IFNAME)."
    )
    hcas: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_:.=^-]+$")]] = Field(
        default_factory=list, description="InfiniBand HCAs for NCCL_IB_HCA, e.g. mlx5_0."
    )
    gid_index: int | None = Field(None, ge=0, le=255, description="NCCL_IB_GID_INDEX (RoCE needs it set).")
    gdr_level: int | None = Field(None, ge=0, le=5, description="NCCL_NET_GDR_LEVEL (GPUDirect RDMA).")
    p2p_level: Literal["LOC", "NVL", "PIX", "PXB", "PHB", "SYS"] | None = Field(
        None, alias="p2pLevel", description="NCCL_P2P_LEVEL."
    )
    rdma_resource: str = Field(
        "rdma/ib", pattern=r"^[a-z0-9.-]+/[A-Za-z0-9_.-]+$", description="Device-plugin resource for HCAs."
    )
    rdma_devices_per_node: int = Field(0, ge=0, le=64, description="How many of rdmaResource each pod asks for.")
    nccl_debug: Literal["VERSION", "WARN", "INFO", "TRACE"] = Field("WARN", description="NCCL_DEBUG.")


class Resources(Base):
    cpu: Quantity = Field(description="CPU request and limit per pod.")
    memory: Quantity = Field(description="Memory request and limit per pod.")
    shm_size: Quantity = Field("16Gi", description="Size limit of the memory-backed /dev/shm.")


class Ports(Base):
    http: Port = Field(8000, description="OpenAI-compatible API (leader) and health port (all pods).")
    dist_init: Port = Field(20000, description="Port of --dist-init-addr on the leader.")


class Probes(Base):
    startup_timeout_minutes: int = Field(
        60, ge=1, le=24 * 60, description="How long weight loading may take before the pod is restarted."
    )
    period_seconds: int = Field(10, ge=1, le=300, description="Probe period.")


class ServiceSpec(Base):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field("ClusterIP", description="API Service type.")


class Rollout(Base):
    max_surge: int = Field(0, ge=0, description="Extra groups during a rolling update (each costs GPUs).")
    max_unavailable: int = Field(1, ge=0, description="Groups that may be down during a rolling update.")


class Toleration(Base):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


# Flags the platform sets itself; extraArgs may not repeat them (or an argparse prefix of them).
MANAGED_FLAGS = (
    "--model-path",
    "--served-model-name",
    "--tp-size",
    "--dist-init-addr",
    "--nnodes",
    "--node-rank",
    "--trust-remote-code",
    "--context-length",
    "--mem-fraction-static",
    "--kv-cache-dtype",
    "--dist-timeout",
    "--enable-metrics",
    "--host",
    "--port",
    "--api-key",
)
# First SGLang release that knows a flag the typed settings can produce.
FLAG_SINCE = {"--dist-timeout": Version("0.4.3.post3")}


class InferenceGroup(Base):
    name: str = Field(
        pattern=DNS_LABEL,
        min_length=1,
        max_length=GROUP_NAME_MAX,
        description="Group name: DNS-1123 label; names the LeaderWorkerSet, its pods and its Service.",
    )
    model: Model
    model_volume: ModelVolume
    replicas: int = Field(1, ge=1, le=1000, description="Number of serving groups (each nodes x gpusPerNode).")
    nodes: int = Field(1, ge=1, le=64, description="Pods (nodes) per group: LWS size, --nnodes.")
    gpus_per_node: int = Field(ge=1, le=16, description="nvidia.com/gpu per pod.")
    gpu_memory_gib: float = Field(
        80, gt=0, le=1024, alias="gpuMemoryGiB", description="Memory of one GPU in GiB (capacity check)."
    )
    tensor_parallel: int | None = Field(None, ge=1, description="--tp-size; must equal nodes x gpusPerNode.")
    context_length: int | None = Field(None, ge=1, le=10_000_000, description="--context-length.")
    mem_fraction_static: float | None = Field(None, gt=0, lt=1, description="--mem-fraction-static.")
    kv_cache_dtype: Literal["auto", "fp8_e5m2", "fp8_e4m3"] | None = Field(None, description="--kv-cache-dtype.")
    dist_timeout_seconds: int | None = Field(
        None, ge=60, le=24 * 3600, description="--dist-timeout (SGLang >= 0.4.3.post3): NCCL init timeout."
    )
    enable_metrics: bool = Field(True, description="--enable-metrics (Prometheus /metrics).")
    extra_args: list[str] = Field(default_factory=list, description="Further launch_server flags, validated.")
    network: Network = Field(default_factory=Network)
    resources: Resources
    ports: Ports = Field(default_factory=Ports)
    probes: Probes = Field(default_factory=Probes)
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    scheduler: Literal["default", "volcano"] = Field("default", description="Pod scheduler.")
    restart_policy: Literal["RecreateGroupOnPodRestart", "Default"] = Field(
        "RecreateGroupOnPodRestart", description="LWS restart policy: a failed pod restarts the whole group."
    )
    rollout: Rollout = Field(default_factory=Rollout)
    pod_disruption_budget: bool = Field(True, description="Guard serving groups against voluntary drains.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels the pods require.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints the pods tolerate.")
    autoscaling: GroupAutoscaling | None = Field(
        None, description="Scale whole groups on queue depth and KV-cache usage (KEDA); replicas is then ignored."
    )

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def tp_size(self) -> int:
        return self.tensor_parallel if self.tensor_parallel is not None else self.total_gpus

    @property
    def initial_replicas(self) -> int:
        return self.autoscaling.min_replicas if self.autoscaling else self.replicas

    @property
    def model_path(self) -> str:
        return f"{self.model_volume.mount_path.rstrip('/')}/{self.model.path}"


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network in CIDR notation (e.g. 10.20.0.0/16): {exc}") from None


Cidr = Annotated[str, AfterValidator(_cidr)]


class ApiAccess(Base):
    allowed_namespaces: list[DnsLabel] = Field(
        default_factory=list, description="Namespaces whose pods may call the inference APIs."
    )
    allowed_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="Networks (CIDR) outside the cluster's pods that may call the API: needed for NodePort or "
        "LoadBalancer Services, whose traffic the NetworkPolicy would otherwise drop.",
    )


# The front end and monitoring models live in their own modules; they build on the types above.
from config.monitoring import Monitoring  # noqa: E402
from config.webui import OpenWebUi  # noqa: E402


class PlatformConfig(Base):
    namespace: DnsLabel = Field("sglang", description="Namespace of the serving objects.")
    require_api_key: bool = Field(
        False, description="Refuse to deploy without the secret sglang-platform:apiKey (--api-key)."
    )
    api_access: ApiAccess = Field(default_factory=ApiAccess)
    versions: Versions = Field(default_factory=Versions)
    inference_groups: list[InferenceGroup] = Field(min_length=1, description="Served models.")
    open_webui: OpenWebUi = Field(default_factory=OpenWebUi, description="Chat front end (Open WebUI).")
    monitoring: Monitoring = Field(
        default_factory=Monitoring, description="Prometheus, Grafana, SGLang and GPU dashboards and alerts."
    )
    keda: KedaConfig = Field(default_factory=KedaConfig, description="KEDA, which runs the group autoscalers.")
    preflight: Preflight = Field(
        default_factory=Preflight, description="Checks at pulumi preview: S3 model prefixes, capacity."
    )
    gpu_operator: GpuOperatorConfig = Field(
        default_factory=GpuOperatorConfig, description="NVIDIA GPU Operator add-on (README, Cluster add-ons)."
    )
    volcano: VolcanoConfig = Field(
        default_factory=VolcanoConfig, description="Volcano add-on and the inference Queue (README, Cluster add-ons)."
    )
    lws: LwsConfig = Field(
        default_factory=LwsConfig, description="LeaderWorkerSet controller add-on (README, Cluster add-ons)."
    )
    chart_mirror: ChartMirror = Field(
        "",
        description="Where every Helm chart comes from instead of its project's repository: a Helm repository "
        "(https://...), an OCI path (oci://...) or a directory of unpacked <chart>-<version>/ charts, relative "
        "to the project (README, Air-gapped clusters). Empty: each chart's own repository.",
    )


# Stack keys that hold secrets: set with `pulumi config set --secret`, never part of PlatformConfig.
SECRET_KEYS = {
    "apiKey": "API key SGLang requires on every request (--api-key).",
    "webuiSecretKey": "Key Open WebUI signs sessions with (WEBUI_SECRET_KEY); required when openWebui.enabled.",
    "grafanaAdminPassword": "Password of Grafana's admin user; required when monitoring.enabled.",
    "hfToken": "Hugging Face token for model downloads (gated or private repositories).",
    "modelscopeToken": "ModelScope access token for model downloads (private repositories).",
    "s3AccessKeyId": "S3 access key id for model downloads and the preflight listing.",
    "s3SecretAccessKey": "S3 secret access key for model downloads and the preflight listing.",
}
