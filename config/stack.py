"""Typed stack configuration: what a platform team may put under ``sglang-platform:*``.

Field rules live on the fields (types, ranges, patterns, enums); rules that span fields live in
``rules`` so every problem is reported at once. Keys are camelCase in stack files and
snake_case in Python, so other teams can build these models in their own programs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, Field, PrivateAttr, ValidationError, create_model, field_validator, model_validator
from pydantic.alias_generators import to_snake

from ..facts import bom
from ..facts.gateways import GatewayProduct
from ..facts.gpus import GPU_RESOURCE, GPUS, gpu_choices
from ..facts.presets import PRESETS, apply_preset, merge, preset_names
from ..facts.quantization import Scheme
from .addons import GpuOperatorConfig, LwsConfig, VolcanoConfig
from .autoscaling import GroupAutoscaling, KedaConfig
from .base import (
    DNS_LABEL,
    AbsolutePath,
    Base,
    ChartMirror,
    ChartVersion,
    Cidr,
    DnsLabel,
    Image,
    PinnedRequirement,
    Port,
    Quantity,
    RelativePath,
)
from .benchmark import Benchmark
from .errors import Loc, Problem, problems_from_validation
from .gateway import GatewayConfig
from .model_cache import ModelDownload, ModelHubs, Preflight, Pvc
from .monitoring import MonitoringConfig
from .nodes import NodeShape
from .serving import Choice, DeepGemm, ExpertParallel, Speculative
from .webui import OpenWebUIConfig

# LWS names a group's worker StatefulSet "<name>-<replica>" and Kubernetes adds a controller-revision-hash
# label "<statefulset>-<10 chars>" that must fit the 63-character label limit: 40 leaves room for
# 4-digit replica indexes and the "-api" Service suffix.
GROUP_NAME_MAX = 40
# Memory of one GPU when a group names neither gpu nor gpuMemoryGiB (an 80 GB A100/A800/H100/H800).
DEFAULT_GPU_MEMORY_GIB = 80.0
# The pod volume that holds a group's weights: the SGLang containers, the gate init containers, the download
# Job, the staging DaemonSet and the benchmark Job all mount it under this name.
MODEL_VOLUME = "models"


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


def pinned_release(version: str | None, image: str) -> Version | None:
    """The release an image runs: the one its tag names, else ``version`` (versions.sglangVersion or
    gatewayVersion, which is for a digest or a tag that names no release); None when neither says."""
    tagged = release_of_tag(image)
    if tagged is not None or not version:
        return tagged
    try:
        return Version(version)
    except InvalidVersion:
        return None


def release_contradiction(version: str | None, image: str) -> Version | None:
    """The release ``image``'s tag names, when ``version`` names another one (or none): the flags and probes
    would follow the wrong release, so the rules refuse it."""
    tagged = release_of_tag(image)
    if not version or tagged is None:
        return None
    try:
        return None if Version(version) == tagged else tagged
    except InvalidVersion:
        return tagged


def _known_gpu(name: str) -> str:
    if name not in GPUS:
        raise ValueError(f"{name!r} is not a GPU the platform knows: use one of {gpu_choices()} (facts/gpus.py)")
    return name


GpuName = Annotated[str, AfterValidator(_known_gpu)]


def _known_set(name: str) -> str:
    if name not in bom.SETS:
        named = [f"{n} ({bom.SET_PURPOSE[n]})" for n in bom.SETS]
        allowed = ", ".join(named[:-1]) + " or " + named[-1]
        raise ValueError(f"{name!r} is not a version set: use {allowed}, as facts/bom.py defines them")
    return name


class Versions(Base):
    """The pins of the bill of materials in ``facts/bom.py``: a named set, and any single pin overridden.

    The set's pins fill every key the stack does not give (the field defaults are the default set's, for
    ``Versions()`` built in code)."""

    set_name: Annotated[str, AfterValidator(_known_set)] = Field(
        bom.DEFAULT_SET,
        alias="set",
        description="Named set of pins the other keys start from: current (the newest releases that work "
        "together, the default) or reference (the reference deployment's); each other key overrides one pin.",
    )
    sglang_image: Image = Field(bom.SGLANG_IMAGE, description="SGLang container image (pinned tag or digest).")
    sglang_version: str | None = Field(
        None,
        description="SGLang release in the image, for a digest or a tag that names no release (required then); "
        "refused when the tag names another release.",
    )
    kubernetes: str = Field(
        bom.KUBERNETES_VERSION,
        pattern=r"^v?1\.\d+(\.\d+)?$",
        description="Kubernetes version the cluster runs (schemas the render is validated against).",
    )
    open_webui_image: Image = Field(bom.OPEN_WEBUI_IMAGE, description="Open WebUI container image.")
    gateway_image: Image = Field(
        bom.GATEWAY_IMAGE,
        description="Model gateway image: sglang-router's (lmsysorg/sgl-model-gateway) or the Shepherd Model "
        "Gateway's (lightseekorg/smg, docs/gateway.md).",
    )
    gateway_version: str | None = Field(
        None,
        description="Gateway release in the gateway image, for a digest or a tag that names no release "
        "(required then); refused when the tag names another release.",
    )
    gateway_product: GatewayProduct | None = Field(
        None,
        description="Which gateway the image runs, for an image whose name says neither (sglang-router: "
        "lmsysorg/sgl-model-gateway, lmsysorg/sglang-router; smg: lightseekorg/smg); refused when the name says "
        "the other.",
    )
    kube_prometheus_stack: str = Field(
        bom.KUBE_PROMETHEUS_STACK_CHART,
        pattern=r"^\d+\.\d+\.\d+$",
        description="kube-prometheus-stack chart version.",
    )
    keda_chart: str = Field(bom.KEDA_CHART, pattern=r"^\d+\.\d+\.\d+$", description="KEDA chart version.")
    model_downloader_image: Image = Field(
        bom.MODEL_DOWNLOADER_IMAGE, description="Image of the model download Job and the hostPath staging DaemonSet."
    )
    huggingface_hub: PinnedRequirement = Field(bom.HUGGINGFACE_HUB, description="pip requirement for Hugging Face.")
    modelscope: PinnedRequirement = Field(bom.MODELSCOPE, description="pip requirement for ModelScope downloads.")
    modelscope_hub: PinnedRequirement = Field(
        bom.MODELSCOPE_HUB,
        description="pip requirement for modelscope-hub, installed beside modelscope (which requires it unpinned).",
    )
    boto3: PinnedRequirement = Field(bom.BOTO3, description="pip requirement for S3 downloads.")
    gpu_operator_chart: ChartVersion = Field(bom.GPU_OPERATOR_CHART, description="NVIDIA gpu-operator chart.")
    volcano_chart: ChartVersion = Field(bom.VOLCANO_CHART, description="Volcano chart.")
    lws_chart: ChartVersion = Field(
        bom.LWS_CHART,
        description="LeaderWorkerSet chart installed, or the release the cluster runs (lws.mode present).",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_from_set(cls, data: Any) -> Any:
        """The named set's pin for every key the stack leaves out (an unknown set: the field's refusal says so,
        and the defaults stand in meanwhile)."""
        if not isinstance(data, Mapping):
            return data
        name = data.get("set", data.get("set_name", bom.DEFAULT_SET))
        pins = bom.SETS.get(name) if isinstance(name, str) else None
        if pins is None:
            return data
        out = dict(data)
        for key, pin in pins.items():
            if key not in out and to_snake(key) not in out:
                out[key] = pin
        return out

    @property
    def sglang_release(self) -> Version | None:
        return pinned_release(self.sglang_version, self.sglang_image)

    @property
    def gateway_release(self) -> Version | None:
        return pinned_release(self.gateway_version, self.gateway_image)


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
    quantization: Scheme | None = Field(
        None,
        description="Quantization of the checkpoint; checked against its config.json at preview. Required for "
        "schemes SGLang selects only by flag (w8a8-int8, w8a8-fp8: passes --quantization).",
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


def _known_preset(value: str | None) -> str | None:
    if value is not None and value not in PRESETS:
        raise ValueError(f"unknown preset {value!r}; the presets are: {preset_names()} (docs/deepseek.md)")
    return value


class InferenceGroup(Base):
    preset: Annotated[str | None, AfterValidator(_known_preset)] = Field(
        None,
        description="Named serving profile (docs/deepseek.md): its model, topology and levers, under the "
        "group's own keys.",
    )
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
    gpu: GpuName | None = Field(
        None,
        description="GPU model of the nodes (facts/gpus.py: " + gpu_choices() + "): sets gpuMemoryGiB and is "
        "checked against the weights' quantization.",
    )
    gpu_memory_gib: float | None = Field(
        None,
        gt=0,
        le=1024,
        alias="gpuMemoryGiB",
        description="Memory of one GPU in GiB (capacity check) when gpu is not set; 80 when neither is.",
    )
    tensor_parallel: int | None = Field(None, ge=1, description="--tp-size; must equal nodes x gpusPerNode.")
    context_length: int | None = Field(None, ge=1, le=10_000_000, description="--context-length.")
    mem_fraction_static: float | None = Field(None, gt=0, lt=1, description="--mem-fraction-static.")
    kv_cache_dtype: Literal["auto", "fp8_e5m2", "fp8_e4m3"] | None = Field(None, description="--kv-cache-dtype.")
    dist_timeout_seconds: int | None = Field(
        None, ge=60, le=24 * 3600, description="--dist-timeout (SGLang >= 0.4.3.post3): NCCL init timeout."
    )
    dp_attention_size: int | None = Field(
        None,
        ge=2,
        le=1024,
        description="Data-parallel attention groups (DeepSeek MLA): --attn-dp-size (0.5.22 and later), "
        "--enable-dp-attention --dp-size (before); divides tensorParallel, and up to 0.4.4 must equal it.",
    )
    expert_parallel: ExpertParallel | None = Field(None, description="MoE expert parallelism (DeepEP).")
    speculative: Speculative | None = Field(
        None, description="Speculative decoding: DeepSeek multi-token prediction (MTP) with EAGLE."
    )
    chunked_prefill_size: int | None = Field(
        None, ge=-1, le=1 << 20, description="--chunked-prefill-size: prompt tokens per prefill chunk; -1 disables."
    )
    max_running_requests: int | None = Field(
        None, ge=1, le=1 << 20, description="--max-running-requests (speculative decoding caps it at 48 unless set)."
    )
    cuda_graph_max_bs: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Largest decode batch captured in a CUDA graph: --cuda-graph-max-bs-decode (0.5.20 and "
        "later), --cuda-graph-max-bs (before).",
    )
    cuda_graph_batch_sizes: list[Annotated[int, Field(ge=1, le=4096)]] | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="Decode batch sizes captured in CUDA graphs: --cuda-graph-bs-decode (0.5.20 and later), "
        "--cuda-graph-bs (before).",
    )
    torch_compile_max_bs: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="--enable-torch-compile --torch-compile-max-bs: torch.compile the decode step up to this batch.",
    )
    reasoning_parser: Choice | None = Field(
        None, description="--reasoning-parser (e.g. deepseek-r1): reasoning_content apart from the answer."
    )
    tool_call_parser: Choice | None = Field(
        None, description="--tool-call-parser (e.g. deepseekv3): OpenAI tool calls from the model's output."
    )
    enable_metrics: bool = Field(True, description="--enable-metrics (Prometheus /metrics).")
    metrics_for_all_schedulers: bool = Field(
        False,
        description="--enable-metrics-for-all-schedulers (0.4.10 and later): every TP rank records its scheduler "
        "metrics, not only the first of each attention-TP group.",
    )
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
    benchmark: Benchmark | None = Field(
        None,
        description="Run SGLang's bench_serving against the group (through its model's gateway when one fronts it) "
        "whenever it serves a new revision and judge it against monitoring.slo (set {} for the defaults; unset: no "
        "benchmark). A disaggregated service has one, through its gateway, once both roles serve the revision.",
    )
    node_shape: NodeShape | None = Field(
        None, description="The GPU node this group runs on, when it differs from sglang-platform:gpuNodes."
    )

    deep_gemm: DeepGemm | None = Field(
        None,
        description="Keep DeepGEMM's JIT kernels (FP8 on Hopper and newer) in a volume the pods reuse, compiled "
        "once by sglang.compile_deep_gemm (SGLang 0.4.6 and later).",
    )
    page_size: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="--page-size (SGLang 0.4.4 and later): tokens per KV-cache page. Shared by both roles of a "
        "disaggregated service: the KV cache moves from prefill to decode page by page.",
    )
    disaggregation: Disaggregation | None = Field(
        None,
        description="Serve the model as separate prefill and decode groups (docs/disaggregation.md): each role "
        "its own LeaderWorkerSet, the KV cache moved over RDMA, the gateway in PD mode in front.",
    )

    # What the stack said before the preset was merged in: the roles of a disaggregated service start from it.
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    # A role of a disaggregated service (set on the groups ``roles`` derives, never from a stack key).
    _pd: PdContext | None = PrivateAttr(None)
    # The two role groups of a disaggregated service, and the problems deriving them met.
    _roles: dict[str, InferenceGroup] = PrivateAttr(default_factory=dict)
    _role_problems: tuple[Problem, ...] = PrivateAttr(())

    @model_validator(mode="wrap")
    @classmethod
    def _preset(cls, data: Any, handler: Any) -> Any:
        if isinstance(data, InferenceGroup):
            return handler(data)
        group = handler(apply_preset(data))
        if isinstance(data, Mapping):
            group._raw = dict(data)
        if group.disaggregation is not None:
            group._derive_roles()
        return group

    def _derive_roles(self) -> None:
        """Each role's group: the service's own keys (as the stack gave them), the role's keys over them, and
        the role's preset (else the service's) under both; named ``<service>-<role>``."""
        pd = self.disaggregation
        assert pd is not None
        problems: list[Problem] = []
        longest = max(len(f"-{role}") for role in PD_ROLES)
        if len(self.name) + longest > GROUP_NAME_MAX:
            # The roles' LeaderWorkerSets are <name>-prefill and <name>-decode, group names like any other.
            self._role_problems = (
                Problem(
                    ("name",),
                    f"{self.name!r} is too long for a disaggregated service: its roles run as {self.name}-prefill "
                    f"and {self.name}-decode, group names of at most {GROUP_NAME_MAX} characters; use at most "
                    f"{GROUP_NAME_MAX - longest}",
                ),
            )
            return
        # The service's keys in camelCase, so a role's key replaces the service's however a caller spelt it. The
        # benchmark is the service's alone: it measures the pair through the gateway, not each role.
        service = {_camel_of(k): v for k, v in self._raw.items() if to_snake(k) not in SERVICE_ONLY_KEYS}
        for role in PD_ROLES:
            overrides = self.role_overrides(role)
            raw = merge(service, {k: v for k, v in overrides.items() if k != "preset"})
            preset = overrides.get("preset", self.preset)
            raw |= {"name": f"{self.name}-{role}", "preset": preset}
            try:
                group = InferenceGroup.model_validate(raw)
            except ValidationError as error:
                for p in problems_from_validation(error, InferenceGroup):
                    problems.append(Problem(self.role_key(role, p.loc), p.message))
                continue
            group._pd = PdContext(self.name, role, pd, pd_ib_devices(pd, group.network))
            self._roles[role] = group
        prefill, decode = self._roles.get("prefill"), self._roles.get("decode")
        if prefill is not None and decode is not None and prefill._pd is not None:
            prefill._pd = dataclasses.replace(
                prefill._pd, decode_tp=decode.tp_size, decode_dp=decode.dp_attention_size or 1
            )
        self._role_problems = tuple(dict.fromkeys(problems))

    def role_overrides(self, role: str) -> dict[str, Any]:
        """The keys the stack sets on one role of the disaggregated service (camelCase, as given)."""
        pd = self.disaggregation
        if pd is None:
            return {}
        settings: PdRole = getattr(pd, role)
        return settings.model_dump(by_alias=True, exclude_unset=True)

    def role_key(self, role: str, loc: Loc) -> Loc:
        """Where a key of a role's group is set: on the role when the role sets it, else on the service."""
        overrides = self.role_overrides(role)
        if loc and isinstance(loc[0], str) and (loc[0] in overrides or _camel_of(loc[0]) in overrides):
            return ("disaggregation", role, *loc)
        return loc

    @property
    def roles(self) -> Mapping[str, InferenceGroup]:
        """prefill and decode: the groups a disaggregated service runs (empty for a colocated group, or when a
        role's keys are invalid: ``role_problems`` says why)."""
        return dict(self._roles)

    @property
    def role_problems(self) -> tuple[Problem, ...]:
        """Problems of the roles' groups, located from the service (``disaggregation.prefill.nodes``)."""
        return self._role_problems

    @property
    def pd(self) -> PdContext | None:
        """The disaggregated service and role this group is, or None for a colocated group."""
        return self._pd

    @field_validator("chunked_prefill_size")
    @classmethod
    def _chunk_not_zero(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("0 is not a chunk size: give the prompt tokens per chunk, or -1 to disable chunking")
        return value

    @property
    def attention_tp_size(self) -> int:
        """GPUs that share one attention computation: tensorParallel, divided among DP-attention groups."""
        dp = self.dp_attention_size or 1
        return max(self.tp_size // dp, 1)

    @property
    def gpu_memory(self) -> float:
        """Memory of one GPU in GiB: gpuMemoryGiB, else the gpu's, else DEFAULT_GPU_MEMORY_GIB."""
        if self.gpu_memory_gib is not None:
            return self.gpu_memory_gib
        if self.gpu is not None:
            return GPUS[self.gpu].memory_gib
        return DEFAULT_GPU_MEMORY_GIB

    @property
    def gpu_memory_origin(self) -> str:
        """Where gpu_memory comes from, as the messages name it."""
        if self.gpu_memory_gib is not None:
            return f"gpuMemoryGiB {self.gpu_memory_gib:g}"
        if self.gpu is not None:
            return f"gpu {self.gpu}: {self.gpu_memory:g} GiB"
        return f"gpuMemoryGiB unset: {DEFAULT_GPU_MEMORY_GIB:g}"

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
        return self.volume_path(self.model.path)

    def volume_path(self, relative: str) -> str:
        """Where a directory of the model volume is inside the pods."""
        return f"{self.model_volume.mount_path.rstrip('/')}/{relative}"

    @property
    def creates_claim(self) -> bool:
        """The stack creates the claim this group mounts (and a ModelCache owns it)."""
        vol = self.model_volume
        return vol.type == "pvc" and vol.pvc is not None and vol.pvc.create and bool(vol.claim_name)

    @property
    def stages_per_node(self) -> bool:
        """Every node keeps its own copy of the weights, fetched by ModelCache's staging DaemonSet, and each pod
        waits for its node's copy in its wait-for-weights init container."""
        return self.model.download is not None and self.model_volume.type == "hostPath"

    @property
    def needs_model_cache(self) -> bool:
        """The group has weights to download or a claim to create: a ModelCache serves it."""
        return self.model.download is not None or self.creates_claim

    @property
    def pod_quantities(self) -> dict[str, str]:
        """What each pod of the group requests (and limits), by resource name: the container's resources, the
        Volcano queue's sums and the node-fit rules all read this one mapping."""
        quantities = {
            "cpu": self.resources.cpu,
            "memory": self.resources.memory,
            GPU_RESOURCE: str(self.gpus_per_node),
        }
        if self.network.fabric == "infiniband":
            quantities[self.network.rdma_resource] = str(self.network.rdma_devices_per_node)
        return quantities


PD_ROLES: tuple[Literal["prefill", "decode"], ...] = ("prefill", "decode")
# Keys of a disaggregated service its roles' groups do not inherit.
SERVICE_ONLY_KEYS = ("disaggregation", "preset", "name", "benchmark")
# The keys a role of a disaggregated service may set for itself; everything else (the model, its volume, the
# network, ports, the KV-cache dtype and page size, the parsers) is the service's, shared by both roles, which
# must agree on them to hand the KV cache over.
ROLE_KEYS = (
    "preset",
    "replicas",
    "nodes",
    "gpus_per_node",
    "gpu",
    "gpu_memory_gib",
    "tensor_parallel",
    "mem_fraction_static",
    "dp_attention_size",
    "expert_parallel",
    "chunked_prefill_size",
    "max_running_requests",
    "cuda_graph_max_bs",
    "cuda_graph_batch_sizes",
    "torch_compile_max_bs",
    "extra_args",
    "resources",
    "node_selector",
    "tolerations",
    "node_shape",
    "autoscaling",
    "rollout",
    "probes",
    "deep_gemm",
)


def _camel_of(key: str) -> str:
    field = InferenceGroup.model_fields.get(to_snake(key))
    return field.alias if field is not None and field.alias else key


def _role_field(name: str) -> tuple[Any, Any]:
    """The group's own field as a role override: the same type and limits, unset by default."""
    field = InferenceGroup.model_fields[name]
    return (
        field.rebuild_annotation() | None,
        Field(None, alias=field.alias, description=f"The role's own {field.alias}, over the service's."),
    )


PdRole = create_model(  # type: ignore[call-overload]
    "PdRole",
    __base__=Base,
    __doc__="The keys of one role of a disaggregated service that differ from the service's: each is the "
    "group key of the same name, merged over the service's (mappings key by key, lists whole), with the role's "
    "preset (else the service's) under both.",
    **{name: _role_field(name) for name in ROLE_KEYS},
)


_ROLE_KEYS_TEXT = (
    ", ".join(InferenceGroup.model_fields[k].alias or k for k in ROLE_KEYS)
    + " (each the group key of that name; mappings merge key by key, lists replace)."
)


class DecodePerPrefill(Base):
    """Bounds of the ratio decode groups : prefill groups."""

    min: float = Field(gt=0, le=1000, description="Fewest decode groups per prefill group.")
    max: float = Field(gt=0, le=1000, description="Most decode groups per prefill group.")


_IB_DEVICE = r"^[A-Za-z0-9_.-]+$"


class Disaggregation(Base):
    transfer_backend: Literal["mooncake", "nixl"] = Field(
        "mooncake",
        description="--disaggregation-transfer-backend: moves the KV cache from prefill to decode (mooncake: "
        "Mooncake's transfer engine over RDMA; nixl: NVIDIA's NIXL over UCX).",
    )
    bootstrap_port: Port = Field(
        8998,
        description="--disaggregation-bootstrap-port: where decode finds a prefill server's KV sender (on the "
        "prefill leader; the gateway reads it from the pod annotation sglang.ai/bootstrap-port).",
    )
    ib_devices: list[Annotated[str, Field(pattern=_IB_DEVICE)]] = Field(
        default_factory=list,
        description="--disaggregation-ib-device: the RDMA devices the KV cache moves over; unset: network.hcas "
        "without their port suffixes.",
    )
    decode_per_prefill: DecodePerPrefill | None = Field(
        None,
        description="Bounds of decode groups per prefill group: the roles' replicas (or autoscaling ranges) must "
        "keep the ratio inside them whatever each role's autoscaler does.",
    )
    tokens_per_request: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="Prompt plus answer tokens a typical request holds in decode's KV cache: the capacity check "
        "wants decode to hold its maxRunningRequests of them (unset: contextLength each).",
    )
    prefill: PdRole = Field(
        default_factory=PdRole,
        description="The keys the prefill role sets for itself, over the service's: " + _ROLE_KEYS_TEXT,
    )
    decode: PdRole = Field(
        default_factory=PdRole,
        description="The keys the decode role sets for itself, over the service's: " + _ROLE_KEYS_TEXT,
    )


@dataclass(frozen=True)
class PdContext:
    """What a role's group knows of its disaggregated service."""

    service: str
    role: Literal["prefill", "decode"]
    settings: Disaggregation
    # --disaggregation-ib-device, resolved (empty: none could be derived).
    ib_devices: tuple[str, ...]
    # The decode role's tensor-parallel size and DP-attention groups (1 without): a prefill server of 0.4.10 to
    # 0.5.1 must be told them when they are not its own (--disaggregation-decode-tp, --disaggregation-decode-dp).
    decode_tp: int | None = None
    decode_dp: int | None = None


def pd_ib_devices(pd: Disaggregation, network: Network) -> tuple[str, ...]:
    """The devices the KV cache moves over: ``ibDevices``, else the fabric's HCAs as NCCL names them
    (``mlx5_0:1`` is device mlx5_0, port 1); none when an HCA entry is an exclusion (``^mlx5_1``), which
    names no device to use."""
    if pd.ib_devices:
        return tuple(pd.ib_devices)
    if network.fabric != "infiniband" or any(h.startswith("^") for h in network.hcas):
        return ()
    return tuple(dict.fromkeys(h.lstrip("=").split(":", 1)[0] for h in network.hcas))


InferenceGroup.model_rebuild()


@dataclass(frozen=True)
class ServingUnit:
    """A group that runs pods: a colocated inference group, or one role of a disaggregated service."""

    index: int  # of the stack entry in inferenceGroups
    service: InferenceGroup  # the stack entry
    group: InferenceGroup  # what runs (the entry itself, or its role's group)

    @property
    def role(self) -> str | None:
        return self.group.pd.role if self.group.pd is not None else None

    def loc(self, loc: Loc) -> Loc:
        """A key of the group, from the root of the stack: on the role when the role sets it."""
        role = self.role
        return ("inferenceGroups", self.index, *(self.service.role_key(role, loc) if role else loc))


class ApiAccess(Base):
    allowed_namespaces: list[DnsLabel] = Field(
        default_factory=list, description="Namespaces whose pods may call the inference APIs."
    )
    allowed_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="Networks (CIDR) outside the cluster's pods that may call the API: needed for NodePort or "
        "LoadBalancer Services, whose traffic the NetworkPolicy would otherwise drop.",
    )


class PlatformConfig(Base):
    namespace: DnsLabel = Field("sglang", description="Namespace of the serving objects.")
    require_api_key: bool = Field(
        False, description="Refuse to deploy without the secret sglang-platform:apiKey (--api-key)."
    )
    api_access: ApiAccess = Field(default_factory=ApiAccess)
    versions: Versions = Field(default_factory=Versions)
    inference_groups: list[InferenceGroup] = Field(min_length=1, description="Served models.")
    gateway: GatewayConfig = Field(
        default_factory=GatewayConfig, description="SGLang model gateway in front of the groups (docs/gateway.md)."
    )
    open_webui: OpenWebUIConfig = Field(default_factory=OpenWebUIConfig, description="Chat front end (Open WebUI).")
    monitoring: MonitoringConfig = Field(
        default_factory=MonitoringConfig, description="Prometheus, Grafana, SGLang and GPU dashboards and alerts."
    )
    keda: KedaConfig = Field(default_factory=KedaConfig, description="KEDA, which runs the group autoscalers.")
    model_hubs: ModelHubs = Field(
        default_factory=ModelHubs,
        description="Hugging Face and ModelScope endpoints (a mirror, a proxy, an internal hub) every group of that "
        "source downloads from unless its model.download.endpoint says otherwise (docs/model-weights.md).",
    )
    preflight: Preflight = Field(
        default_factory=Preflight,
        description="Checks at pulumi preview: S3 model prefixes, model hub endpoints, capacity, add-on compatibility.",
    )
    gpu_operator: GpuOperatorConfig = Field(
        default_factory=GpuOperatorConfig, description="NVIDIA GPU Operator add-on (docs/add-ons.md)."
    )
    volcano: VolcanoConfig = Field(
        default_factory=VolcanoConfig, description="Volcano add-on and the inference Queue (docs/add-ons.md)."
    )
    lws: LwsConfig = Field(
        default_factory=LwsConfig, description="LeaderWorkerSet controller add-on (docs/add-ons.md)."
    )
    chart_mirror: ChartMirror = Field(
        "",
        description="Where every Helm chart comes from instead of its project's repository: a Helm repository "
        "(https://...), an OCI path (oci://...) or a directory of unpacked <chart>-<version>/ charts, relative "
        "to the project (docs/add-ons.md, Air-gapped clusters). Empty: each chart's own repository.",
    )
    gpu_nodes: NodeShape = Field(
        default_factory=NodeShape,
        description="The GPU nodes as Kubernetes allocates them (cpu, memory, gpus, rdma): pods that cannot fit one "
        "are refused. Unset: not checked.",
    )

    @property
    def serving_units(self) -> list[ServingUnit]:
        """What runs, in stack order: each colocated group, and the prefill and decode groups of each
        disaggregated service (none of a service whose roles are invalid: the rules report why)."""
        out: list[ServingUnit] = []
        for i, g in enumerate(self.inference_groups):
            if g.disaggregation is None:
                out.append(ServingUnit(i, g, g))
            else:
                out += [ServingUnit(i, g, role) for role in g.roles.values()]
        return out

    @property
    def gateway_routes(self) -> dict[str, InferenceGroup]:
        """Served model name -> the group behind the gateway that serves it, in stack order (one gateway per
        model; a served name belongs to one group, the rules refuse two); empty when the gateway is off."""
        if not self.gateway.enabled:
            return {}
        chosen = set(self.gateway.groups)
        return {g.model.served_name: g for g in self.inference_groups if not chosen or g.name in chosen}


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
