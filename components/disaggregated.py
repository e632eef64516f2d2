"""SglangDisaggregatedService: one model served as separate prefill and decode groups (docs/disaggregation.md).

Each role is an ``SglangInferenceGroup`` of its own (``<service>-prefill``, ``<service>-decode``: a
LeaderWorkerSet, its Service, PodDisruptionBudget and NetworkPolicy), with the role's flags
(``--disaggregation-mode``, the transfer backend, the bootstrap port, the RDMA devices) and labels. Both roles
share the service's API-key Secret and carry one revision label, a hash of both roles' pod templates: the model
gateway in PD mode selects on it, so it only ever pairs a prefill and a decode server of the same revision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from ..config.errors import refusal
from ..config.stack import InferenceGroup
from ..render.sglang_pods import API_KEY_SECRET_KEY, PD_REVISION_LABEL, PodExtras, group_labels, lws_spec, pd_revision
from .k8s import child_opts, meta
from .sglang_group import SglangInferenceGroup, SglangInferenceGroupArgs, release_of


@dataclass
class SglangDisaggregatedServiceArgs:
    # The service: an InferenceGroup with ``disaggregation`` (its roles are derived from it).
    config: InferenceGroup
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    sglang_version: str | None = None
    api_key: pulumi.Input[str] | None = None
    client_namespaces: Sequence[str] = ()
    client_cidrs: Sequence[str] = ()
    pod_annotations: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    depends_on: Sequence[pulumi.Resource] = ()
    # ModelCache's gate and volumes, and the node labels of the nodes it stages the weights on: one cache for the
    # service (both roles serve the same weights), its gate in every pod of either role.
    init_containers: Sequence[dict] = ()
    extra_volumes: Sequence[dict] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    # Startup probe budget in minutes by role group name (<service>-prefill); missing: the role's own.
    startup_timeout_minutes: Mapping[str, int] = field(default_factory=dict)
    # Image of the group gate of a multi-node role staged per node (SglangInferenceGroupArgs.group_gate_image).
    group_gate_image: str | None = None


class SglangDisaggregatedService(pulumi.ComponentResource):
    prefill: SglangInferenceGroup
    decode: SglangInferenceGroup
    revision: pulumi.Output[str]
    served_model_name: pulumi.Output[str]
    api_key_secret_name: pulumi.Output[str | None]

    def __init__(self, name: str, args: SglangDisaggregatedServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sglang-platform:index:SglangDisaggregatedService", name, None, opts)
        service = args.config
        _refuse_invalid(name, service)
        roles = service.roles
        child = child_opts(self, opts, *args.depends_on)

        secret_name = None
        if args.api_key is not None:
            secret_name = f"{service.name}-api-key"
            k8s.core.v1.Secret(
                f"{name}-api-key",
                metadata=meta(secret_name, args.namespace, group_labels(service)),
                type="Opaque",
                string_data={API_KEY_SECRET_KEY: pulumi.Output.secret(args.api_key)},
                opts=child,
            )

        def extras(role: InferenceGroup) -> PodExtras:
            return PodExtras(
                list(args.init_containers),
                list(args.extra_volumes),
                args.startup_timeout_minutes.get(role.name),
                dict(args.node_selector),
                group_gate_image=args.group_gate_image,
            )

        def revision(image: str) -> str:
            release = release_of(args.sglang_version, image)
            return pd_revision(
                [
                    lws_spec(role, image, secret_name, args.pod_annotations, extras(role), release)[
                        "leaderWorkerTemplate"
                    ]
                    for role in roles.values()
                ]
            )

        self.revision = pulumi.Output.from_input(args.image).apply(revision)
        made = {}
        for role_name, role in roles.items():
            made[role_name] = SglangInferenceGroup(
                role.name,
                SglangInferenceGroupArgs(
                    config=role,
                    namespace=args.namespace,
                    image=args.image,
                    sglang_version=args.sglang_version,
                    api_key=args.api_key,
                    api_key_secret_name=secret_name,
                    client_namespaces=args.client_namespaces,
                    client_cidrs=args.client_cidrs,
                    pod_annotations=args.pod_annotations,
                    annotations=args.annotations,
                    init_containers=args.init_containers,
                    extra_volumes=args.extra_volumes,
                    node_selector=args.node_selector,
                    startup_timeout_minutes=args.startup_timeout_minutes.get(role.name),
                    group_gate_image=args.group_gate_image,
                    pod_labels=self.revision.apply(lambda rev: {PD_REVISION_LABEL: rev}),
                ),
                opts=child,
            )
        self.prefill = made["prefill"]
        self.decode = made["decode"]
        self.served_model_name = pulumi.Output.from_input(service.model.served_name)
        self.api_key_secret_name = pulumi.Output.from_input(secret_name)
        self.register_outputs(
            {
                "revision": self.revision,
                "served_model_name": self.served_model_name,
                "api_key_secret_name": self.api_key_secret_name,
            }
        )


def _refuse_invalid(name: str, service: InferenceGroup) -> None:
    """For programs that build the service themselves (a stack's was checked with the whole configuration):
    a config without roles, or with roles that do not validate, before any child exists. Each role's own group
    rules run in its SglangInferenceGroup."""
    problems: list[str] = []
    if service.disaggregation is None:
        problems.append("config has no disaggregation: serve it with SglangInferenceGroup")
    problems += [p.local for p in service.role_problems]
    if service.disaggregation is not None and not problems and len(service.roles) != 2:
        problems.append("disaggregation: the prefill and decode roles could not be derived")
    if problems:
        raise ValueError(refusal(f"SglangDisaggregatedService {name!r}: invalid config", problems))
