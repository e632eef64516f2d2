"""The components as the package's schema declares them, for programs in other languages: each class names a
component of sglang_platform.components (same name, same type token), its inputs (a TypedDict in camelCase,
with the stack configuration's types from ``inputs``) and its outputs; ``BUILDERS`` turns the inputs a
program sent into the library component, validated as a Python program's would be.

Python programs use sglang_platform.components directly; these classes are read by Pulumi's schema analyzer
(pulumi.provider.experimental) and never instantiated. Annotations here are evaluated (no ``from __future__
import annotations``): the analyzer reads them as objects."""

import inspect
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, NotRequired, TypedDict

import pulumi
from pydantic import BaseModel, ValidationError

from ..config.errors import problems_from_validation, refusal
from ..config.stack import SECRET_KEYS
from ..facts import bom
from .inputs import (
    AddonMode,
    Benchmark,
    GatewayConfig,
    GatewayProduct,
    GpuOperatorConfig,
    GroupAutoscaling,
    InferenceGroup,
    KedaConfig,
    LwsConfig,
    MonitoringConfig,
    OpenWebUIConfig,
    PlatformInputs,
    Slo,
    VolcanoConfig,
)

__all__ = ["BUILDERS", "COMPONENTS", "SECRET_INPUTS", "InvalidInputsError", "plain"]

# Inputs that are secrets, in every component that has them: the schema marks them so (each SDK makes a plain
# value a secret before it leaves the program), and the builders wrap them again.
SECRET_INPUTS = frozenset({"apiKey", "secretKey", "grafanaAdminPassword", *SECRET_KEYS})


class InvalidInputsError(ValueError):
    """A component's inputs are refused: the message lists every problem, as the library's refusal does."""


def _declared(name: str) -> str:
    return (
        f"{name} is the component package's declaration of the schema; in Python, use sglang_platform.components.{name}"
    )


# --- SglangInferenceGroup --------------------------------------------------------------------------------------


class SglangInferenceGroupInputs(TypedDict):
    config: InferenceGroup
    "The group: one entry of the stack's sglang-platform:inferenceGroups, with the same keys."
    namespace: pulumi.Input[str]
    "Namespace of the group's objects (it must exist)."
    image: NotRequired[pulumi.Input[str]]
    "SGLang image; default: the current version set's (facts/bom.py)."
    sglangVersion: NotRequired[str]
    "The SGLang release in the image, for a digest or a tag that names no release (the flags are checked against it)."
    apiKey: NotRequired[pulumi.Input[str]]
    "The key SGLang requires on every request (--api-key), kept in a Secret the group creates. A secret."
    clientNamespaces: NotRequired[list[str]]
    "Namespaces whose pods may call the API (besides pods labelled sglang-platform.io/api-client=true)."
    clientCidrs: NotRequired[list[str]]
    "Networks outside the pod network (node ports, load balancers) that may call the API."
    podAnnotations: NotRequired[dict[str, str]]
    "Extra annotations on every pod (e.g. the Volcano queue)."
    annotations: NotRequired[dict[str, str]]
    "Extra annotations on the LeaderWorkerSet (LWS gang scheduling reads the Volcano queue there)."
    initContainers: NotRequired[list[dict[str, Any]]]
    "Init containers (Kubernetes Container objects) run before SGLang in every pod: a ModelCache's initContainers."
    extraVolumes: NotRequired[list[dict[str, Any]]]
    "Volumes (Kubernetes Volume objects) the init containers mount: a ModelCache's volumes."
    nodeSelector: NotRequired[dict[str, str]]
    "Node labels the pods require besides config.nodeSelector: a ModelCache's nodeSelector."
    startupTimeoutMinutes: NotRequired[int]
    "Startup probe budget in minutes; default: config.probes.startupTimeoutMinutes."
    groupGateImage: NotRequired[str]
    "Image of the group gate of a multi-node group staged per node; default: the SGLang image."


class SglangInferenceGroup(pulumi.ComponentResource):
    """One served model: a LeaderWorkerSet of SGLang pods (one leader, nodes - 1 workers per replica), its API
    Service, PodDisruptionBudget and NetworkPolicy, checked as a stack's group is (flags against the release's
    own parser, capacity, topology)."""

    revision: pulumi.Output[str]
    "A hash of the group's pod template: what it serves (image, model, weights' revision, flags), not how many."
    base_url: pulumi.Output[str]
    "OpenAI-compatible base URL inside the cluster (http://<group>-api.<namespace>.svc.cluster.local:<port>/v1)."
    service_name: pulumi.Output[str]
    "The API Service's name."
    port: pulumi.Output[int]
    "The API port."
    served_model_name: pulumi.Output[str]
    "The model name clients send."
    api_key_secret_name: pulumi.Output[str | None]
    "The Secret holding the API key (key api-key), when the group has one."

    def __init__(self, name: str, args: SglangInferenceGroupInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        raise TypeError(_declared("SglangInferenceGroup"))


def _serving(args: Mapping[str, Any]) -> dict[str, Any]:
    """What a group and a disaggregated service take alike, as the library's args."""
    return {
        "namespace": args["namespace"],
        "image": args.get("image", bom.SGLANG_IMAGE),
        "sglang_version": args.get("sglangVersion"),
        "api_key": _secret(args.get("apiKey")),
        "client_namespaces": list(args.get("clientNamespaces", ())),
        "client_cidrs": list(args.get("clientCidrs", ())),
        "pod_annotations": dict(args.get("podAnnotations", {})),
        "annotations": dict(args.get("annotations", {})),
        "init_containers": list(args.get("initContainers", ())),
        "extra_volumes": list(args.get("extraVolumes", ())),
        "node_selector": dict(args.get("nodeSelector", {})),
        "group_gate_image": args.get("groupGateImage"),
    }


def build_inference_group(name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> Any:
    from ..components.sglang_group import SglangInferenceGroup as Group
    from ..components.sglang_group import SglangInferenceGroupArgs, _refuse_invalid
    from ..config.stack import InferenceGroup as Model

    config = _validated("SglangInferenceGroup", name, {"config": (Model, args["config"])})["config"]
    lib = SglangInferenceGroupArgs(
        config=config, startup_timeout_minutes=args.get("startupTimeoutMinutes"), **_serving(args)
    )
    _refused(_refuse_invalid, name, config, lib)
    return Group(name, lib, opts)


# --- SglangDisaggregatedService --------------------------------------------------------------------------------


class SglangDisaggregatedServiceInputs(TypedDict):
    config: InferenceGroup
    "The service: a stack entry of sglang-platform:inferenceGroups with disaggregation (its roles derive from it)."
    namespace: pulumi.Input[str]
    "Namespace of the service's objects (it must exist)."
    image: NotRequired[pulumi.Input[str]]
    "SGLang image; default: the current version set's (facts/bom.py)."
    sglangVersion: NotRequired[str]
    "The SGLang release in the image, for a digest or a tag that names no release."
    apiKey: NotRequired[pulumi.Input[str]]
    "The key both roles require (--api-key), in one Secret the service creates. A secret."
    clientNamespaces: NotRequired[list[str]]
    "Namespaces whose pods may call the roles' API port (the gateway's namespace needs it)."
    clientCidrs: NotRequired[list[str]]
    "Networks outside the pod network that may call the roles' API port."
    podAnnotations: NotRequired[dict[str, str]]
    "Extra annotations on every pod of either role."
    annotations: NotRequired[dict[str, str]]
    "Extra annotations on both LeaderWorkerSets."
    initContainers: NotRequired[list[dict[str, Any]]]
    "Init containers run before SGLang in every pod of either role: a ModelCache's initContainers."
    extraVolumes: NotRequired[list[dict[str, Any]]]
    "Volumes the init containers mount: a ModelCache's volumes."
    nodeSelector: NotRequired[dict[str, str]]
    "Node labels every pod requires besides the roles' own: a ModelCache's nodeSelector."
    startupTimeoutMinutes: NotRequired[dict[str, int]]
    "Startup probe budget in minutes by role group (<service>-prefill, <service>-decode); default: the role's own."
    groupGateImage: NotRequired[str]
    "Image of the group gate of a multi-node role staged per node; default: the SGLang image."


class SglangDisaggregatedService(pulumi.ComponentResource):
    """One model served as separate prefill and decode groups (each an SglangInferenceGroup of its own,
    <name>-prefill and <name>-decode), sharing one API-key Secret and one revision label, which the gateway in
    PD mode pairs on (docs/disaggregation.md)."""

    revision: pulumi.Output[str]
    "A hash of both roles' pod templates: the label (sglang-platform.io/pd-revision) the gateway pairs on."
    served_model_name: pulumi.Output[str]
    "The model name clients send (to the gateway)."
    api_key_secret_name: pulumi.Output[str | None]
    "The Secret both roles read the API key from, when the service has one."

    def __init__(
        self, name: str, args: SglangDisaggregatedServiceInputs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        raise TypeError(_declared("SglangDisaggregatedService"))


def build_disaggregated_service(name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> Any:
    from ..components.disaggregated import SglangDisaggregatedService as Service
    from ..components.disaggregated import SglangDisaggregatedServiceArgs, _refuse_invalid
    from ..components.sglang_group import SglangInferenceGroupArgs
    from ..components.sglang_group import _refuse_invalid as refuse_group
    from ..config.stack import InferenceGroup as Model

    config = _validated("SglangDisaggregatedService", name, {"config": (Model, args["config"])})["config"]
    minutes = {k: int(v) for k, v in dict(args.get("startupTimeoutMinutes", {})).items()}
    serving = _serving(args)
    lib = SglangDisaggregatedServiceArgs(config=config, startup_timeout_minutes=minutes, **serving)
    _refused(_refuse_invalid, name, config)
    # Each role's group rules too, before the service registers anything (the roles check them again).
    for role in config.roles.values():
        _refused(refuse_group, role.name, role, SglangInferenceGroupArgs(config=role, **serving))
    return Service(name, lib, opts)


# --- SglangGateway ---------------------------------------------------------------------------------------------


class SglangGatewayInputs(TypedDict):
    namespace: pulumi.Input[str]
    "Namespace of the gateway and of the groups it fronts."
    servedModelName: str
    "The model whose groups it fronts: their servedName."
    config: NotRequired[GatewayConfig]
    "The gateway's settings: the stack's sglang-platform:gateway, with the same keys. Default: {}."
    image: NotRequired[pulumi.Input[str]]
    "Gateway image; default: the current version set's (facts/bom.py)."
    product: NotRequired[GatewayProduct]
    "Which gateway the image runs; default: the one its name says, else sglang-router."
    workerPort: NotRequired[int]
    "The port the groups serve on (their ports.http). Default: 8000."
    apiKeySecretName: NotRequired[pulumi.Input[str]]
    "The groups' API-key Secret (their apiKeySecretName): the gateway checks the key and passes it on."
    clientNamespaces: NotRequired[list[str]]
    "Namespaces whose pods may call the gateway (besides pods labelled sglang-platform.io/api-client=true)."
    clientCidrs: NotRequired[list[str]]
    "Networks outside the pod network that may call the gateway."
    monitoringNamespace: NotRequired[str]
    "Namespace of the Prometheus that scrapes the gateway's metrics port; unset: none."
    pdService: NotRequired[str]
    "A disaggregated service's name: the gateway runs in PD mode, pairing its prefill and decode leaders."
    pdRevision: NotRequired[pulumi.Input[str]]
    "The service's revision (SglangDisaggregatedService.revision): only leaders of that revision are paired."
    sglangRelease: NotRequired[str]
    "The SGLang release the groups run: which endpoint the health checks probe; unset: /health."


class SglangGateway(pulumi.ComponentResource):
    """SGLang's model gateway (sglang-router, or its successor smg) in front of every group serving one model:
    it finds their leader pods by label (replicas an autoscaler adds join without an up), routes cache-aware,
    retries and keeps away from failing groups."""

    base_url: pulumi.Output[str]
    "The URL clients use: http://<name>.<namespace>.svc.cluster.local:<port>/v1."
    service_name: pulumi.Output[str]
    "The gateway's Service."
    port: pulumi.Output[int]
    "The gateway's port."
    served_model_name: pulumi.Output[str]
    "The model it serves."
    api_key_secret_name: pulumi.Output[str | None]
    "The Secret it reads the API key from, when the groups have one."

    def __init__(self, name: str, args: SglangGatewayInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        raise TypeError(_declared("SglangGateway"))


def build_gateway(name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> Any:
    from ..components.gateway import SglangGateway as Gateway
    from ..components.gateway import SglangGatewayArgs, _refuse_invalid
    from ..config.gateway import GatewayConfig as Model
    from ..facts.gateways import product_of_image

    config = _validated("SglangGateway", name, {"config": (Model, args.get("config", {}))})["config"]
    image = args.get("image", bom.GATEWAY_IMAGE)
    product = args.get("product") or (product_of_image(image) if isinstance(image, str) else None)
    lib = SglangGatewayArgs(
        config=config,
        namespace=args["namespace"],
        image=image,
        served_model_name=args["servedModelName"],
        worker_port=int(args.get("workerPort", 8000)),
        api_key_secret_name=args.get("apiKeySecretName"),
        client_namespaces=list(args.get("clientNamespaces", ())),
        client_cidrs=list(args.get("clientCidrs", ())),
        monitoring_namespace=args.get("monitoringNamespace"),
        pd_service=args.get("pdService"),
        pd_revision=args.get("pdRevision"),
        sglang_release=args.get("sglangRelease"),
        product=_value(product) or "sglang-router",
    )
    _refused(_refuse_invalid, name, lib)
    return Gateway(name, lib, opts)


# --- the add-ons -----------------------------------------------------------------------------------------------


class GpuOperatorInputs(TypedDict):
    config: NotRequired[GpuOperatorConfig]
    "The stack's sglang-platform:gpuOperator, with the same keys (mode is the Platform's business). Default: {}."
    chartVersion: NotRequired[str]
    "gpu-operator chart version; default: the current version set's."
    chartMirror: NotRequired[str]
    "Where the chart comes from instead of NVIDIA's repository: https://, oci:// or a directory of unpacked charts."


class GpuOperator(pulumi.ComponentResource):
    """NVIDIA's GPU Operator chart in its own namespace (driver, container toolkit, device plugin, DCGM
    exporter, GPU feature discovery)."""

    release_name: pulumi.Output[str]
    "The Helm release's name."
    namespace: pulumi.Output[str]
    "The operator's namespace."
    status: pulumi.Output[str]
    "The Helm release's status (deployed)."

    def __init__(self, name: str, args: GpuOperatorInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        raise TypeError(_declared("GpuOperator"))


def build_gpu_operator(name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> Any:
    from ..components.addons import GpuOperator as Component
    from ..components.addons import GpuOperatorArgs
    from ..config.addons import GpuOperatorConfig as Model

    config = _validated("GpuOperator", name, {"config": (Model, args.get("config", {}))})["config"]
    version = args.get("chartVersion", bom.GPU_OPERATOR_CHART)
    lib = GpuOperatorArgs(config=config, chart_version=version, chart_mirror=args.get("chartMirror") or None)
    return Component(name, lib, opts)


class VolcanoInputs(TypedDict):
    config: NotRequired[VolcanoConfig]
    "The stack's sglang-platform:volcano, with the same keys: its queue, scheduler settings. Default: {}."
    install: NotRequired[bool]
    "Install the chart; false: the cluster runs Volcano and only the queue is created. Default: config.mode is install."
    chartVersion: NotRequired[str]
    "Volcano chart version; default: the current version set's."
    chartMirror: NotRequired[str]
    "Where the chart comes from instead of Volcano's repository."


class Volcano(pulumi.ComponentResource):
    """Volcano (gang scheduling) and the Queue the inference groups are placed in."""

    release_name: pulumi.Output[str | None]
    "The Helm release's name, when installed."
    namespace: pulumi.Output[str | None]
    "Volcano's namespace, when installed."
    status: pulumi.Output[str | None]
    "The Helm release's status, when installed."
    queue_name: pulumi.Output[str]
    "The inference Queue."

    def __init__(self, name: str, args: VolcanoInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        raise TypeError(_declared("Volcano"))


def build_volcano(name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> Any:
    from ..components.addons import Volcano as Component
    from ..components.addons import VolcanoArgs
    from ..config.addons import VolcanoConfig as Model

    config = _validated("Volcano", name, {"config": (Model, args.get("config", {}))})["config"]
    lib = VolcanoArgs(
        config=config,
        chart_version=args.get("chartVersion", bom.VOLCANO_CHART),
        install=bool(args.get("install", config.mode == AddonMode.Install.value)),
        chart_mirror=args.get("chartMirror") or None,
    )
    return Component(name, lib, opts)


class LwsControllerInputs(TypedDict):
    config: NotRequired[LwsConfig]
    "The stack's sglang-platform:lws, with the same keys. Default: {}."
    chartVersion: NotRequired[str]
    "LeaderWorkerSet chart version; default: the current version set's."
    chartMirror: NotRequired[str]
    "Where the chart comes from instead of registry.k8s.io."


class LwsController(pulumi.ComponentResource):
    """The LeaderWorkerSet controller, which runs every inference group."""

    release_name: pulumi.Output[str]
    "The Helm release's name."
    namespace: pulumi.Output[str]
    "The controller's namespace."
    status: pulumi.Output[str]
    "The Helm release's status."

    def __init__(self, name: str, args: LwsControllerInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        raise TypeError(_declared("LwsController"))


def build_lws(name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> Any:
    from ..components.addons import LwsController as Component
    from ..components.addons import LwsControllerArgs
    from ..config.addons import LwsConfig as Model

    config = _validated("LwsController", name, {"config": (Model, args.get("config", {}))})["config"]
    version = args.get("chartVersion", bom.LWS_CHART)
    lib = LwsControllerArgs(config=config, chart_version=version, chart_mirror=args.get("chartMirror") or None)
    return Component(name, lib, opts)


class KedaInputs(TypedDict):
    config: NotRequired[KedaConfig]
    "The stack's sglang-platform:keda, with the same keys: its namespace and raw chart values. Default: {}."
    chartVersion: NotRequired[str]
    "KEDA chart version; default: the current version set's."
    chartMirror: NotRequired[str]
    "Where the chart comes from instead of KEDA's repository."


class Keda(pulumi.ComponentResource):
    """KEDA, which runs the InferenceAutoscalers' ScaledObjects; its CRDs are kept on uninstall."""

    release_name: pulumi.Output[str]
    "The Helm release's name."
    namespace: pulumi.Output[str]
    "KEDA's namespace."
    status: pulumi.Output[str]
    "The Helm release's status."

    def __init__(self, name: str, args: KedaInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        raise TypeError(_declared("Keda"))


def build_keda(name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> Any:
    from ..components.autoscaling import Keda as Component
    from ..components.autoscaling import KedaArgs
    from ..config.autoscaling import KedaConfig as Model

    config = _validated("Keda", name, {"config": (Model, args.get("config", {}))})["config"]
    lib = KedaArgs(
        namespace=config.namespace,
        chart_version=args.get("chartVersion", bom.KEDA_CHART),
        chart_mirror=args.get("chartMirror") or None,
        values=config.values,
    )
    return Component(name, lib, opts)


# --- the weights, the chat front end, monitoring, scaling, benchmarks ------------------------------------------


class ModelCacheInputs(TypedDict):
    config: InferenceGroup
    "The group whose weights it downloads (model.download) or whose claim it creates (modelVolume.pvc)."
    namespace: pulumi.Input[str]
    "The group's namespace."
    downloaderImage: NotRequired[str]
    "Image of the download Job and the staging DaemonSet; default: the current version set's."
    gateImage: NotRequired[str]
    "Image of the init container that waits for the weights; default: the SGLang image of the current set."
    requirement: NotRequired[str]
    "pip requirement of the source's client library; default: the current set's pin for the group's source."
    hubEndpoint: NotRequired[str]
    "The group's hub endpoint (a Hugging Face mirror, an internal ModelScope); model.download.endpoint wins."
    metricsNamespaces: NotRequired[list[str]]
    "Namespaces whose pods may scrape the staging DaemonSet's metrics."
    hfToken: NotRequired[pulumi.Input[str]]
    "Hugging Face token. A secret."
    modelscopeToken: NotRequired[pulumi.Input[str]]
    "ModelScope token. A secret."
    s3AccessKeyId: NotRequired[pulumi.Input[str]]
    "S3 access key id. A secret."
    s3SecretAccessKey: NotRequired[pulumi.Input[str]]
    "S3 secret access key. A secret."


class ModelCache(pulumi.ComponentResource):
    """The weights of one group: its claim (modelVolume.pvc), the download Job (a pvc) or the staging
    DaemonSet (a hostPath copy per node), and what the group's pods need to wait for them."""

    init_containers: pulumi.Output[list[dict[str, Any]]]
    "Init containers for the group's pods (the wait for the weights): the group's initContainers."
    volumes: pulumi.Output[list[dict[str, Any]]]
    "Volumes the init containers mount: the group's extraVolumes."
    node_selector: pulumi.Output[dict[str, str]]
    "Node labels the group's pods must require (the nodes the staging covers): the group's nodeSelector."
    claim_name: pulumi.Output[str | None]
    "The claim it created, if any."
    job_name: pulumi.Output[str | None]
    "The download Job, if any."
    daemon_set_name: pulumi.Output[str | None]
    "The staging DaemonSet, if any."
    marker_path: pulumi.Output[str | None]
    "The completion marker the gate waits for, if any."

    def __init__(self, name: str, args: ModelCacheInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        raise TypeError(_declared("ModelCache"))


def build_model_cache(name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> Any:
    from ..components.model_cache import ModelCache as Component
    from ..components.model_cache import ModelCacheArgs
    from ..config.stack import InferenceGroup as Model

    config = _validated("ModelCache", name, {"config": (Model, args["config"])})["config"]
    pins = {"huggingface": bom.HUGGINGFACE_HUB, "modelscope": bom.MODELSCOPE, "s3": bom.BOTO3}
    keys = ("hfToken", "modelscopeToken", "s3AccessKeyId", "s3SecretAccessKey")
    secrets = {key: _secret(args[key]) for key in keys if args.get(key) is not None}
    lib = ModelCacheArgs(
        config=config,
        namespace=args["namespace"],
        downloader_image=args.get("downloaderImage", bom.MODEL_DOWNLOADER_IMAGE),
        gate_image=args.get("gateImage", bom.SGLANG_IMAGE),
        requirement=args.get("requirement", pins.get(config.model.source, "")),
        secrets=secrets,
        hub_endpoint=args.get("hubEndpoint"),
        metrics_namespaces=list(args.get("metricsNamespaces", ())),
    )
    return Component(name, lib, opts)


class Backend(TypedDict):
    """What Open WebUI talks to: a group's or a gateway's OpenAI-compatible endpoint."""

    name: str
    "A name for it (its connection's)."
    baseUrl: pulumi.Input[str]
    "Its base URL, ending in /v1."
    apiKeySecretName: NotRequired[pulumi.Input[str]]
    "The Secret (key api-key) holding the key it requires, if any."


class OpenWebUIInputs(TypedDict):
    namespace: pulumi.Input[str]
    "Namespace of Open WebUI's objects."
    secretKey: pulumi.Input[str]
    "The key Open WebUI signs sessions with (WEBUI_SECRET_KEY). A secret."
    backends: list[Backend]
    "The endpoints it offers models from."
    config: NotRequired[OpenWebUIConfig]
    "The stack's sglang-platform:openWebui, with the same keys. Default: {}."
    image: NotRequired[str]
    "Open WebUI image; default: the current version set's."


class OpenWebUI(pulumi.ComponentResource):
    """Open WebUI, the chat front end, wired to the given endpoints with their API keys."""

    service_name: pulumi.Output[str]
    "Its Service."
    url: pulumi.Output[str]
    "Its URL: the ingress host's when it has one, else the Service's."

    def __init__(self, name: str, args: OpenWebUIInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        raise TypeError(_declared("OpenWebUI"))


def build_open_webui(name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> Any:
    from ..components.open_webui import Backend as LibBackend
    from ..components.open_webui import OpenWebUI as Component
    from ..components.open_webui import OpenWebUIArgs
    from ..config.webui import OpenWebUIConfig as Model

    config = _validated("OpenWebUI", name, {"config": (Model, args.get("config", {}))})["config"]
    backends = [
        LibBackend(name=b["name"], base_url=b["baseUrl"], api_key_secret_name=b.get("apiKeySecretName"))
        for b in args["backends"]
    ]
    lib = OpenWebUIArgs(
        config=config,
        namespace=args["namespace"],
        image=args.get("image", bom.OPEN_WEBUI_IMAGE),
        secret_key=_secret(args["secretKey"]),
        backends=backends,
    )
    return Component(name, lib, opts)


class ScrapeTarget(TypedDict):
    """An inference group as monitoring sees it."""

    name: str
    "The group's name (a role's: <service>-prefill)."
    metrics: NotRequired[bool]
    "Whether the group runs with --enable-metrics. Default: true."
    apiKeySecretName: NotRequired[pulumi.Input[str]]
    "The Secret holding the group's API key, which /metrics requires up to SGLang 0.4.5."
    pdRole: NotRequired[str]
    "prefill or decode: a role of a disaggregated service."
    startupBudgetMinutes: NotRequired[int]
    "The group's startup budget: a start past it alerts."
    stagesWeights: NotRequired[bool]
    "Whether its pods wait for weights staged on their node."


class MonitoringStackInputs(TypedDict):
    servingNamespace: str
    "The namespace of the groups it scrapes."
    targets: list[ScrapeTarget]
    "The groups it scrapes, alerts on and draws."
    grafanaAdminPassword: pulumi.Input[str]
    "Password of Grafana's admin user. A secret."
    config: NotRequired[MonitoringConfig]
    "The stack's sglang-platform:monitoring, with the same keys. Default: {}."
    sglangRelease: NotRequired[str]
    "The SGLang release the groups run (its metric names); default: the newest known."
    gateways: NotRequired[list[str]]
    "The gateways (their names) whose metrics it scrapes."
    chartVersion: NotRequired[str]
    "kube-prometheus-stack chart version; default: the current version set's."
    chartMirror: NotRequired[str]
    "Where the chart comes from instead of prometheus-community's repository."


class MonitoringStack(pulumi.ComponentResource):
    """kube-prometheus-stack with the SGLang and GPU dashboard, the SLO alerts and the scrape configuration of
    every group, role and gateway."""

    namespace: pulumi.Output[str]
    "The monitoring namespace."
    prometheus_url: pulumi.Output[str]
    "Prometheus' URL inside the cluster."
    grafana_service: pulumi.Output[str]
    "Grafana's Service."

    def __init__(self, name: str, args: MonitoringStackInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        raise TypeError(_declared("MonitoringStack"))


def build_monitoring(name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> Any:
    from ..components.monitoring import MonitoringStack as Component
    from ..components.monitoring import MonitoringStackArgs
    from ..components.monitoring import ScrapeTarget as LibTarget
    from ..config.monitoring import MonitoringConfig as Model

    config = _validated("MonitoringStack", name, {"config": (Model, args.get("config", {}))})["config"]
    targets = [
        LibTarget(
            name=t["name"],
            metrics=bool(t.get("metrics", True)),
            api_key_secret_name=t.get("apiKeySecretName"),
            pd_role=t.get("pdRole"),
            startup_budget_minutes=int(t["startupBudgetMinutes"]) if "startupBudgetMinutes" in t else None,
            stages_weights=bool(t.get("stagesWeights", False)),
        )
        for t in args["targets"]
    ]
    lib = MonitoringStackArgs(
        config=config,
        serving_namespace=args["servingNamespace"],
        targets=targets,
        grafana_admin_password=_secret(args["grafanaAdminPassword"]),
        sglang_release=args.get("sglangRelease"),
        gateways=list(args.get("gateways", ())),
        chart_version=args.get("chartVersion", bom.KUBE_PROMETHEUS_STACK_CHART),
        chart_mirror=args.get("chartMirror") or None,
    )
    return Component(name, lib, opts)


class InferenceAutoscalerInputs(TypedDict):
    lwsName: str
    "The group's LeaderWorkerSet (the group's name)."
    namespace: str
    "The group's namespace."
    servedModelName: str
    "The model the group serves (its metrics' model_name)."
    config: GroupAutoscaling
    "The group's autoscaling: the stack's inferenceGroups[].autoscaling, with the same keys."
    prometheusAddress: pulumi.Input[str]
    "The Prometheus KEDA queries (a MonitoringStack's prometheusUrl)."
    role: NotRequired[str]
    "prefill or decode: a role of a disaggregated service, scaled on its own signals."
    sglangRelease: NotRequired[str]
    "The SGLang release the group runs (its histograms' names); default: the newest known."


class InferenceAutoscaler(pulumi.ComponentResource):
    """A KEDA ScaledObject that sizes one group's LeaderWorkerSet on queue depth and KV-cache usage."""

    scaled_object_name: pulumi.Output[str]
    "The ScaledObject."

    def __init__(self, name: str, args: InferenceAutoscalerInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        raise TypeError(_declared("InferenceAutoscaler"))


def build_autoscaler(name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> Any:
    from ..components.autoscaling import InferenceAutoscaler as Component
    from ..components.autoscaling import InferenceAutoscalerArgs
    from ..config.autoscaling import GroupAutoscaling as Model

    config = _validated("InferenceAutoscaler", name, {"config": (Model, args["config"])})["config"]
    lib = InferenceAutoscalerArgs(
        lws_name=args["lwsName"],
        namespace=args["namespace"],
        served_model_name=args["servedModelName"],
        config=config,
        prometheus_address=args["prometheusAddress"],
        role=args.get("role"),
        sglang_release=args.get("sglangRelease"),
    )
    return Component(name, lib, opts)


class ServingBenchmarkInputs(TypedDict):
    config: Benchmark
    "The benchmark: the stack's inferenceGroups[].benchmark, with the same keys."
    group: InferenceGroup
    "The group it measures (its model, its weights' gate)."
    namespace: pulumi.Input[str]
    "The group's namespace."
    baseUrl: pulumi.Input[str]
    "What it calls, without /v1: the model's gateway, else the group's Service."
    servedModelName: pulumi.Input[str]
    "The model name it sends."
    revision: pulumi.Input[str]
    "The group's revision: a new one runs the benchmark again."
    slo: NotRequired[Slo]
    "The objectives it judges against: the stack's monitoring.slo. Default: {}."
    image: NotRequired[pulumi.Input[str]]
    "The SGLang image (bench_serving); default: the current version set's."
    apiKeySecretName: NotRequired[pulumi.Input[str]]
    "The Secret holding the API key the target requires."


class ServingBenchmark(pulumi.ComponentResource):
    """SGLang's bench_serving against a group once per revision, judged against the SLO; its result lands in a
    ConfigMap (read into the outputs by a refresh)."""

    job_name: pulumi.Output[str]
    "The benchmark Job."
    config_map_name: pulumi.Output[str]
    "The ConfigMap its result is written to."
    base_url: pulumi.Output[str]
    "What it calls."
    revision: pulumi.Output[str]
    "The revision it measures."
    status: pulumi.Output[str | None]
    "pending, passed, failed (after a refresh)."
    passed: pulumi.Output[bool | None]
    "Whether the SLO held (after a refresh)."
    result: pulumi.Output[dict[str, Any] | None]
    "bench_serving's figures (after a refresh)."

    def __init__(self, name: str, args: ServingBenchmarkInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        raise TypeError(_declared("ServingBenchmark"))


def build_benchmark(name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> Any:
    from ..components.benchmark import ServingBenchmark as Component
    from ..components.benchmark import ServingBenchmarkArgs, _refuse_invalid
    from ..config.benchmark import Benchmark as BenchmarkModel
    from ..config.monitoring import Slo as SloModel
    from ..config.stack import InferenceGroup as GroupModel

    found = _validated(
        "ServingBenchmark",
        name,
        {
            "config": (BenchmarkModel, args["config"]),
            "slo": (SloModel, args.get("slo", {})),
            "group": (GroupModel, args["group"]),
        },
    )
    _refused(_refuse_invalid, name, found["group"], found["config"])
    lib = ServingBenchmarkArgs(
        config=found["config"],
        slo=found["slo"],
        group=found["group"],
        namespace=args["namespace"],
        image=args.get("image", bom.SGLANG_IMAGE),
        base_url=args["baseUrl"],
        served_model_name=args["servedModelName"],
        revision=args["revision"],
        api_key_secret_name=args.get("apiKeySecretName"),
    )
    return Component(name, lib, opts)


# --- Platform --------------------------------------------------------------------------------------------------


class GroupEndpoint(TypedDict):
    """A colocated group's API."""

    baseUrl: str
    "Its OpenAI-compatible base URL inside the cluster."
    servedModelName: str
    "The model name clients send."
    service: str
    "Its API Service."


class GatewayEndpoint(TypedDict):
    """The gateway of one served model: the URL clients use."""

    baseUrl: str
    "The gateway's base URL inside the cluster."
    service: str
    "The gateway's Service."
    group: str
    "The stack entry (group or disaggregated service) it fronts."


class RoleService(TypedDict):
    """A role of a disaggregated service: health and metrics only (completions go through the gateway)."""

    service: str
    "The role's Service."
    healthUrl: str
    "Its /health."
    metricsUrl: str
    "Its /metrics."


class DisaggregatedEndpoints(TypedDict):
    """A disaggregated service's revision and its roles."""

    revision: str
    "The revision both roles carry (sglang-platform.io/pd-revision), the one the gateway pairs."
    roles: dict[str, RoleService]
    "<service>-prefill and <service>-decode."


class BenchmarkOutcome(TypedDict):
    """A group's benchmark: where it runs and, after a refresh, its verdict."""

    job: str
    "The benchmark Job."
    configMap: str
    "The ConfigMap holding its result."
    target: str
    "What it calls."
    revision: str
    "The revision it measured."
    status: NotRequired[str]
    "pending, passed, failed."
    passed: NotRequired[bool]
    "Whether the SLO held."
    result: NotRequired[dict[str, Any]]
    "bench_serving's figures."


class WebUiEndpoint(TypedDict):
    """Open WebUI's Service and URL."""

    service: str
    "Its Service."
    url: str
    "Its URL."


class MonitoringEndpoints(TypedDict):
    """Where the monitoring stack answers."""

    namespace: str
    "The monitoring namespace."
    prometheusUrl: str
    "Prometheus' URL inside the cluster."
    grafanaService: str
    "Grafana's Service."


class AddonStatus(TypedDict):
    """An add-on's mode and, when the stack installs it, its Helm release."""

    # A string, not AddonMode: the SDK's provider maps an enum nested in an output object as an object, and the
    # program received {} (tests/test_provider.py); inputs are read by the builders, where AddonMode works.
    mode: str
    "install, present or absent (the add-on's mode)."
    release: NotRequired[str]
    "The Helm release's name."
    namespace: NotRequired[str]
    "Its namespace."
    status: NotRequired[str]
    "The Helm release's status."
    queue: NotRequired[str]
    "Volcano: the inference Queue."
    gangScheduling: NotRequired[bool]
    "LeaderWorkerSet: whether groups are gang-scheduled."


class Addons(TypedDict):
    """The cluster add-ons as the stack found or installed them."""

    gpuOperator: AddonStatus
    "The NVIDIA GPU Operator."
    volcano: AddonStatus
    "Volcano."
    lws: AddonStatus
    "The LeaderWorkerSet controller."
    keda: AddonStatus
    "KEDA."


class Platform(pulumi.ComponentResource):
    """The whole platform from one typed input: what a stack of sglang-platform deploys (add-ons, model caches,
    inference groups and disaggregated services, gateways, benchmarks, Open WebUI, monitoring, autoscalers),
    from the same keys as its configuration (Pulumi.<stack>.yaml's sglang-platform:*) and validated by the same
    rules, every problem at once."""

    namespace: pulumi.Output[str]
    "The serving namespace."
    inference_groups: pulumi.Output[dict[str, GroupEndpoint]]
    "Each colocated group's API, by group name."
    gateway: pulumi.Output[dict[str, GatewayEndpoint] | None]
    "Each served model's gateway, by model name: the URL clients use."
    disaggregated: pulumi.Output[dict[str, DisaggregatedEndpoints] | None]
    "Each disaggregated service, by name."
    benchmarks: pulumi.Output[dict[str, BenchmarkOutcome] | None]
    "Each group's benchmark, by group name."
    open_webui: pulumi.Output[WebUiEndpoint | None]
    "Open WebUI, when enabled."
    monitoring: pulumi.Output[MonitoringEndpoints | None]
    "The monitoring stack, when enabled."
    addons: pulumi.Output[Addons]
    "The cluster add-ons."

    def __init__(self, name: str, args: PlatformInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        raise TypeError(_declared("Platform"))


def build_platform(name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> Any:
    from ..components.platform import Platform as Component
    from ..components.platform import PlatformArgs
    from ..config.errors import ConfigError
    from ..config.loader import load_values

    secrets = {key: _secret(args[key]) for key in SECRET_KEYS if args.get(key) is not None}
    raw = {key: plain(value) for key, value in args.items() if key not in SECRET_KEYS}
    try:
        # The stack's own loading, checks and messages (the secrets' text is not read: no preflight with them).
        loaded = load_values(raw, secrets)
    except ConfigError as error:
        raise InvalidInputsError(f"Platform {name!r}: {error}") from None
    for note in loaded.notes:
        pulumi.log.warn(note)
    lib = PlatformArgs(config=loaded.platform, secrets=loaded.secrets, startup_minutes=loaded.startup_minutes)
    return Component(name, lib, opts)


# --- the package -----------------------------------------------------------------------------------------------

Builder = Callable[[str, Mapping[str, Any], pulumi.ResourceOptions | None], pulumi.ComponentResource]

BUILDERS: dict[str, Builder] = {
    "SglangInferenceGroup": build_inference_group,
    "SglangDisaggregatedService": build_disaggregated_service,
    "SglangGateway": build_gateway,
    "GpuOperator": build_gpu_operator,
    "Volcano": build_volcano,
    "LwsController": build_lws,
    "Keda": build_keda,
    "ModelCache": build_model_cache,
    "OpenWebUI": build_open_webui,
    "MonitoringStack": build_monitoring,
    "InferenceAutoscaler": build_autoscaler,
    "ServingBenchmark": build_benchmark,
    "Platform": build_platform,
}
COMPONENTS: list[type[pulumi.ComponentResource]] = [
    SglangInferenceGroup,
    SglangDisaggregatedService,
    SglangGateway,
    GpuOperator,
    Volcano,
    LwsController,
    Keda,
    ModelCache,
    OpenWebUI,
    MonitoringStack,
    InferenceAutoscaler,
    ServingBenchmark,
    Platform,
]

# The analyzer takes a component's description from its docstring as written; without the source's indentation.
for _component in COMPONENTS:
    _component.__doc__ = inspect.cleandoc(_component.__doc__ or "")


# --- helpers ---------------------------------------------------------------------------------------------------


def _validated(component: str, name: str, models: Mapping[str, tuple[type[BaseModel], Any]]) -> dict[str, Any]:
    """Each input through its pydantic model, the stack's; every problem of every input in one refusal, keyed
    as a Python program's refusal of the component's ``config`` is (``tensorParallel: ...``), other inputs by
    their own name (``slo.ttftSeconds: ...``)."""
    out, problems = {}, []
    for key, (model, value) in models.items():
        try:
            out[key] = model.model_validate(plain(value))
        except ValidationError as error:
            prefix = () if key == "config" else (key,)
            problems += [p.local for p in problems_from_validation(error, model, prefix)]
    if problems:
        raise InvalidInputsError(refusal(f"{component} {name!r}: invalid config", problems))
    return out


def _refused(check: Callable[..., None], *args: Any) -> None:
    """The library's own refusal, run before the component registers: its message as a Python program sees it."""
    try:
        check(*args)
    except ValueError as error:
        raise InvalidInputsError(str(error)) from None


def plain(value: Any) -> Any:
    """An input as the stack's models read it: enums as their values, and whole numbers as integers (the engine
    carries every number as a double)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _secret(value: Any) -> Any:
    """A secret input stays secret, whatever the program sent (a plain string included)."""
    return None if value is None else pulumi.Output.secret(value)


def _value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value
