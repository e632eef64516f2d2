"""SglangInferenceGroup: one served model as a LeaderWorkerSet plus its API Service and guards."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
from packaging.version import InvalidVersion, Version

from ..config.errors import refusal
from ..config.stack import InferenceGroup, pinned_release, release_contradiction, release_of_tag
from ..facts.lws import LWS_API_VERSION, LWS_NAME_LABEL, LWS_WORKER_INDEX_LABEL
from ..facts.sglang import load_table, missing_table_message, shipped_releases
from ..render.k8s import skip_await
from ..render.server_args import typed_args
from ..render.sglang_pods import (
    API_KEY_SECRET_KEY,
    DEEP_GEMM_SCRIPT,
    GROUP_GATE_SCRIPT,
    PodExtras,
    Spec,
    deep_gemm_config_map_name,
    group_gate_account,
    group_gate_needed,
    group_gate_rules,
    group_labels,
    lws_spec,
    network_policy_spec,
    pd_labels,
    pdb_spec,
)
from ..rules.groups import check_group
from .k8s import child_opts, meta, workload_rbac


@dataclass
class ServingArgs:
    """What an inference group and a disaggregated service are given alike: SglangInferenceGroupArgs and
    SglangDisaggregatedServiceArgs are these fields and a few of their own."""

    config: InferenceGroup
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    # The SGLang release in the image, when its tag does not say (a digest; one that contradicts the tag is
    # refused); the flags are checked against its table when the release is known (here, or from the tag of a
    # plain string image).
    sglang_version: str | None = None
    # Secret value for --api-key (a pulumi secret); None serves without authentication.
    api_key: pulumi.Input[str] | None = None
    # Namespaces (besides the group's own labelled clients) whose pods may reach the API port.
    client_namespaces: Sequence[str] = ()
    # Networks outside the pod network (node ports, load balancers) that may reach the API port.
    client_cidrs: Sequence[str] = ()
    # Extra pod annotations (e.g. the Volcano queue).
    pod_annotations: dict[str, str] = field(default_factory=dict)
    # Extra annotations on the LeaderWorkerSet itself (LWS gang scheduling reads the Volcano queue there).
    annotations: dict[str, str] = field(default_factory=dict)
    # Resources that must exist first (LWS controller, scheduler, GPU operator, model cache).
    depends_on: Sequence[pulumi.Resource] = ()
    # Init containers run before SGLang in every pod (e.g. ModelCache's download gate), and the volumes they
    # mount besides the model volume and /dev/shm.
    init_containers: Sequence[dict] = ()
    extra_volumes: Sequence[dict] = ()
    # Node labels the pods require on top of config.node_selector (e.g. ModelCache's staged nodes).
    node_selector: Mapping[str, str] = field(default_factory=dict)
    # Image of the group gate of a multi-node group staged per node (python3, standard library; the stack
    # passes versions.modelDownloaderImage, which its staging DaemonSet already pulled onto the node); None:
    # the SGLang image.
    group_gate_image: str | None = None


@dataclass
class SglangInferenceGroupArgs(ServingArgs):
    # Startup probe budget in minutes; None: the group's probes.startupTimeoutMinutes.
    startup_timeout_minutes: int | None = None
    # An existing Secret (key "api-key") holding the key, instead of one this group creates from api_key: the
    # roles of a disaggregated service share their service's.
    api_key_secret_name: str | None = None
    # Labels on every pod besides the group's own (a disaggregated service's revision).
    pod_labels: pulumi.Input[dict[str, str]] | None = None


def api_key_secret(resource_name: str, args: ServingArgs, opts: pulumi.ResourceOptions) -> str | None:
    """The Secret holding ``args.api_key`` for the pods of ``args.config`` (a group, or a disaggregated service
    whose roles share it), and its name; None without a key."""
    if args.api_key is None:
        return None
    g = args.config
    name = f"{g.name}-api-key"
    k8s.core.v1.Secret(
        resource_name,
        metadata=meta(name, args.namespace, group_labels(g)),
        type="Opaque",
        string_data={API_KEY_SECRET_KEY: pulumi.Output.secret(args.api_key)},
        opts=opts,
    )
    return name


def group_spec(
    args: SglangInferenceGroupArgs, image: str, secret_name: str | None, pod_labels: Mapping[str, str]
) -> Spec:
    """The LeaderWorkerSet spec of a group from its args: the one place its pods are assembled (a disaggregated
    service hashes its roles' templates from here too, so its revision label is the roles' own)."""
    extras = PodExtras(
        list(args.init_containers),
        list(args.extra_volumes),
        args.startup_timeout_minutes,
        dict(args.node_selector),
        group_gate_image=args.group_gate_image,
        labels=dict(pod_labels),
    )
    return lws_spec(args.config, image, secret_name, args.pod_annotations, extras, _release(args, image))


class SglangInferenceGroup(pulumi.ComponentResource):
    # What the group serves: a hash of its pod templates (image, model, revision of the weights, flags). The
    # replica count is not part of it: scaling serves the same revision.
    revision: pulumi.Output[str]
    base_url: pulumi.Output[str]
    service_name: pulumi.Output[str]
    port: pulumi.Output[int]
    served_model_name: pulumi.Output[str]
    api_key_secret_name: pulumi.Output[str | None]

    def __init__(self, name: str, args: SglangInferenceGroupArgs, opts: pulumi.ResourceOptions | None = None):
        g = args.config
        # Before registering: a refused component leaves nothing behind, not even itself.
        _refuse_invalid(name, g, args)
        super().__init__("sglang-platform:index:SglangInferenceGroup", name, None, opts)
        child = child_opts(self, opts, *args.depends_on)
        ns = args.namespace
        group_meta = group_labels(g)

        secret_name = args.api_key_secret_name
        if secret_name is None:
            secret_name = api_key_secret(f"{name}-api-key", args, child)

        lws_deps: list[pulumi.Resource] = []
        if g.deep_gemm is not None and g.deep_gemm.precompile:
            # The script of the pods' compile-deep-gemm init container (pod_scripts).
            lws_deps.append(
                k8s.core.v1.ConfigMap(
                    f"{name}-deep-gemm",
                    metadata=meta(deep_gemm_config_map_name(g), ns, group_meta),
                    data={DEEP_GEMM_SCRIPT.name: DEEP_GEMM_SCRIPT.read_text()},
                    opts=child,
                )
            )

        if group_gate_needed(g):
            lws_deps += group_gate_resources(name, g, ns, child)

        spec = pulumi.Output.all(args.image, args.pod_labels or {}).apply(
            lambda v: group_spec(args, v[0], secret_name, v[1])
        )
        self.leader_worker_set = k8s.apiextensions.CustomResource(
            f"{name}-lws",
            api_version=LWS_API_VERSION,
            kind="LeaderWorkerSet",
            metadata=meta(g.name, ns, group_meta, args.annotations),
            spec=spec,
            # With an autoscaler, KEDA owns spec.replicas; a later `pulumi up` must not reset it.
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    ignore_changes=["spec.replicas"] if g.autoscaling else None, depends_on=lws_deps or None
                ),
            ),
        )

        service_name = f"{g.name}-api"
        service_spec: Spec = {
            "type": g.service.type,
            "selector": {LWS_NAME_LABEL: g.name, LWS_WORKER_INDEX_LABEL: "0"},
            "ports": [{"name": "http", "port": g.ports.http, "targetPort": "http", "protocol": "TCP"}],
        }
        k8s.core.v1.Service(
            f"{name}-api",
            # Pulumi would wait for ready endpoints, and the leader is not ready until its weights are loaded
            # (an hour for DeepSeek-R1): the up would time out and everything after the group would not exist.
            # A role's Service answers health and metrics only (a completion needs the gateway's pairing): its
            # labels say so to tools/smoke_test.py.
            metadata=meta(service_name, ns, group_meta | pd_labels(g), skip_await()),
            spec=service_spec,
            opts=child,
        )
        if g.pod_disruption_budget:
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb", metadata=meta(f"{g.name}-pdb", ns, group_meta), spec=pdb_spec(g), opts=child
            )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta(f"{g.name}-ingress", ns, group_meta),
            spec=network_policy_spec(g, args.client_namespaces, args.client_cidrs),
            opts=child,
        )

        self.revision = spec.apply(template_revision)
        self.service_name = pulumi.Output.from_input(service_name)
        self.port = pulumi.Output.from_input(g.ports.http)
        self.base_url = pulumi.Output.concat(
            "http://", service_name, ".", ns, ".svc.cluster.local:", str(g.ports.http), "/v1"
        )
        self.served_model_name = pulumi.Output.from_input(g.model.served_name)
        self.api_key_secret_name = pulumi.Output.from_input(secret_name)
        self.register_outputs(
            {
                "revision": self.revision,
                "base_url": self.base_url,
                "service_name": self.service_name,
                "port": self.port,
                "served_model_name": self.served_model_name,
                "api_key_secret_name": self.api_key_secret_name,
            }
        )


def group_gate_resources(
    name: str, g: InferenceGroup, ns: pulumi.Input[str], child: pulumi.ResourceOptions
) -> list[pulumi.Resource]:
    """What the pods' wait-for-group init container needs: its script, and a ServiceAccount that may read the
    namespace's pods and nothing else. The pods mount its token only into that container (sglang_pods)."""
    account = group_gate_account(g)
    labels = group_labels(g)
    script = k8s.core.v1.ConfigMap(
        f"{name}-group-gate-script",
        metadata=meta(account, ns, labels),
        data={GROUP_GATE_SCRIPT.name: GROUP_GATE_SCRIPT.read_text()},
        opts=child,
    )
    # No token in pods by default: the one container that calls the API mounts a projected one.
    service_account, role, binding = workload_rbac(f"{name}-group-gate", account, ns, labels, group_gate_rules(), child)
    # Before the LeaderWorkerSet: a pod naming a missing ServiceAccount is refused, and a gate without its Role
    # would wait on an error.
    return [script, service_account, role, binding]


def _spellings(g: InferenceGroup) -> set[tuple[str, ...]]:
    """The leader's typed flags as each shipped release spells them (reads every shipped flag table: only for a
    group whose release is not known)."""
    return {tuple(typed_args(g, leader=True, api_key=False, table=load_table(r))) for r in shipped_releases()}


def _release(args: SglangInferenceGroupArgs, image: str) -> str | None:
    return release_of(args.sglang_version, image)


def release_of(sglang_version: str | None, image: str) -> str | None:
    """The release whose flag spellings and probe paths the pods get: the image tag's, else sglang_version
    (for a digest; one that contradicts the tag is refused before)."""
    found = pinned_release(sglang_version, image)
    return str(found) if found is not None else None


def template_revision(spec: dict) -> str:
    """A short hash of a LeaderWorkerSet's group template: what its groups run, whatever their number."""
    return hashlib.sha256(json.dumps(spec["leaderWorkerTemplate"], sort_keys=True).encode()).hexdigest()[:12]


def _refuse_invalid(name: str, g: InferenceGroup, args: SglangInferenceGroupArgs) -> None:
    """The cross-field rules of one group, for programs that build an InferenceGroup themselves (the stack's
    own groups were checked with the whole configuration already): refuse before any child exists. The flags
    are checked as for a stack whenever the release is known; an image given as an Output, without
    ``sglang_version``, leaves them unchecked."""
    problems: list[str] = []
    if g.disaggregation is not None:
        problems.append("config: has disaggregation: serve it with SglangDisaggregatedService, which runs its roles")
    # The image's tag names the release when it can; sglang_version is for a digest (or an Output).
    release = release_of_tag(args.image) if isinstance(args.image, str) else None
    release_key = "sglang_version" if args.sglang_version and release is None else "image"
    if release is not None and args.sglang_version:
        if release_contradiction(args.sglang_version, str(args.image)) is not None:
            problems.append(
                f"sglang_version: {args.sglang_version} contradicts image {args.image!r}, whose tag names "
                f"{release}: remove sglang_version (it is only for digests and tags that name no release)"
            )
    elif args.sglang_version:
        try:
            release = Version(args.sglang_version)
        except InvalidVersion:
            problems.append(f"{release_key}: {args.sglang_version!r} is not an SGLang release (e.g. 0.4.3.post2)")
    if release is not None and load_table(release) is None:
        problems.append(f"{release_key}: {missing_table_message(release)}")
    found = check_group(g, allowed_cidrs=args.client_cidrs, sglang_release=release, release_key=release_key)
    problems = [p.local for p in found] + problems
    if release is None and not problems and len(_spellings(g)) > 1:
        # Flags spelled differently per release, and an image whose release this cannot read (an Output).
        problems.append(
            "sglang_version: this group's flags are spelled differently per SGLang release and the image does not "
            "say which it runs: set sglang_version"
        )
    if problems:
        raise ValueError(refusal(f"SglangInferenceGroup {name!r}: invalid config", problems))
