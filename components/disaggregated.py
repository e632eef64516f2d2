"""SglangDisaggregatedService: one model served as separate prefill and decode groups (docs/disaggregation.md).

Each role is an ``SglangInferenceGroup`` of its own (``<service>-prefill``, ``<service>-decode``: a
LeaderWorkerSet, its Service, PodDisruptionBudget and NetworkPolicy), with the role's flags
(``--disaggregation-mode``, the transfer backend, the bootstrap port, the RDMA devices) and labels. Both roles
share the service's API-key Secret and carry one revision label, a hash of both roles' pod templates: the model
gateway in PD mode selects on it, so it only ever pairs a prefill and a decode server of the same revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

import pulumi

from ..config.errors import refusal
from ..config.stack import InferenceGroup
from ..render.sglang_pods import PD_REVISION_LABEL, pd_revision
from .k8s import child_opts
from .sglang_group import ServingArgs, SglangInferenceGroup, SglangInferenceGroupArgs, api_key_secret, group_spec


@dataclass
class SglangDisaggregatedServiceArgs(ServingArgs):
    """``config`` is the service: an InferenceGroup with ``disaggregation`` (its roles are derived from it); the
    other fields are what each role's group gets (ServingArgs). ModelCache's gate, volumes and node labels are
    the service's: one cache (both roles serve the same weights), its gate in every pod of either role."""

    # Startup probe budget in minutes by role group name (<service>-prefill); missing: the role's own.
    startup_timeout_minutes: Mapping[str, int] = field(default_factory=dict)


class SglangDisaggregatedService(pulumi.ComponentResource):
    prefill: SglangInferenceGroup
    decode: SglangInferenceGroup
    revision: pulumi.Output[str]
    served_model_name: pulumi.Output[str]
    api_key_secret_name: pulumi.Output[str | None]

    def __init__(self, name: str, args: SglangDisaggregatedServiceArgs, opts: pulumi.ResourceOptions | None = None):
        service = args.config
        # Before registering: a refused component leaves nothing behind, not even itself.
        _refuse_invalid(name, service)
        super().__init__("sglang-platform:index:SglangDisaggregatedService", name, None, opts)
        child = child_opts(self, opts, *args.depends_on)
        # One Secret for both roles, from the service's own name.
        secret_name = api_key_secret(f"{name}-api-key", args, child)
        shared = {f.name: getattr(args, f.name) for f in fields(ServingArgs)}
        roles = {
            role_name: SglangInferenceGroupArgs(
                **shared | {"config": role},
                api_key_secret_name=secret_name,
                startup_timeout_minutes=args.startup_timeout_minutes.get(role.name),
            )
            for role_name, role in service.roles.items()
        }

        def revision(image: str) -> str:
            # The roles' own templates (group_spec, as each role's group builds them), before the label itself.
            return pd_revision([group_spec(r, image, secret_name, {})["leaderWorkerTemplate"] for r in roles.values()])

        self.revision = pulumi.Output.from_input(args.image).apply(revision)
        labels = self.revision.apply(lambda rev: {PD_REVISION_LABEL: rev})
        made = {
            role_name: SglangInferenceGroup(role.config.name, replace(role, pod_labels=labels), opts=child)
            for role_name, role in roles.items()
        }
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
