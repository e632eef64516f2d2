"""Kubernetes helpers every component uses: labels and metadata, the await switch, namespaces with their
pod-security level, Helm releases with pinned charts (from their repository or a chart mirror), checkov skip
annotations, and child options."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from config.charts import chart_source

# Labels of every object the platform creates.
PART_OF = {"app.kubernetes.io/part-of": "sglang-platform", "app.kubernetes.io/managed-by": "pulumi"}
# pulumi-kubernetes annotation: register the object without waiting for it to become ready.
SKIP_AWAIT = "pulumi.com/skipAwait"
# The label the GPU Operator's feature discovery sets to "true" on every node with an NVIDIA GPU.
GPU_NODE_LABEL = "nvidia.com/gpu.present"
# Specs are camelCase dicts, as the API server reads them; pulumi-kubernetes' TypedDicts spell the same
# fields in snake_case, so the type checker sees them as opaque.
Spec = Any


def labels(name: str, instance: str | None = None, component: str | None = None) -> dict[str, str]:
    """The recommended app.kubernetes.io labels plus the platform's own."""
    out = {"app.kubernetes.io/name": name}
    if instance is not None:
        out["app.kubernetes.io/instance"] = instance
    if component is not None:
        out["app.kubernetes.io/component"] = component
    return out | PART_OF


def meta(
    name: str,
    namespace: pulumi.Input[str] | None,
    labels: Mapping[str, str],
    annotations: Mapping[str, pulumi.Input[str]] | None = None,
) -> k8s.meta.v1.ObjectMetaArgsDict:
    out: k8s.meta.v1.ObjectMetaArgsDict = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        out["namespace"] = namespace
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def away_from_gpu_nodes() -> dict[str, Any]:
    """A pod affinity (``spec.affinity``) preferring nodes that are not GPU nodes, for the platform's CPU-only
    pods (the gateway, Open WebUI, the monitoring and controller charts): a group pod asks for nearly a whole
    GPU node (prod: 124 of 128 CPUs), and a CPU-only pod that lands there first keeps it Pending. Preferred,
    not required: a cluster of GPU nodes only still runs them. ``NotIn`` also matches nodes without the label."""
    return {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [{"key": GPU_NODE_LABEL, "operator": "NotIn", "values": ["true"]}]
                    },
                }
            ]
        }
    }


def with_defaults(defaults: Mapping[tuple[str, ...], Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    """The stack's raw chart values, with each default (by its path of keys) where the raw values do not set
    that key. A raw value replaces the default whole (an affinity of the stack's own is not merged with the
    platform's) and silently, as the stack's choice; ``null`` drops it, and Helm then removes the key from the
    chart's own defaults too.
    Typed values still go on top of both (``chart_values``)."""
    out = copy.deepcopy(dict(raw))
    for path, value in defaults.items():
        *parents, last = path
        into = out
        for key in parents:
            if not isinstance(into.get(key, {}), dict):
                break
            into = into.setdefault(key, {})
        else:
            if last not in into:
                into[last] = copy.deepcopy(value)
    return out


def skip_await(annotations: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {SKIP_AWAIT: "true", **(annotations or {})}


def workload_rbac(
    prefix: str,
    account: str,
    ns: pulumi.Input[str],
    labels: Mapping[str, str],
    rules: Spec,
    opts: pulumi.ResourceOptions,
    account_suffix: str = "account",
) -> tuple[k8s.core.v1.ServiceAccount, k8s.rbac.v1.Role, k8s.rbac.v1.RoleBinding]:
    """One workload's rights in its namespace: a ServiceAccount ``account`` whose token is not mounted by default
    (only the containers that call the API get one), a Role of that name with ``rules`` and its RoleBinding.
    Resources are named ``<prefix>-<account_suffix>``, ``<prefix>-role`` and ``<prefix>-rolebinding``."""
    service_account = k8s.core.v1.ServiceAccount(
        f"{prefix}-{account_suffix}",
        metadata=meta(account, ns, labels),
        automount_service_account_token=False,
        opts=opts,
    )
    role = k8s.rbac.v1.Role(f"{prefix}-role", metadata=meta(account, ns, labels), rules=rules, opts=opts)
    role_ref: Spec = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account}
    subjects: Spec = [{"kind": "ServiceAccount", "name": account, "namespace": ns}]
    binding = k8s.rbac.v1.RoleBinding(
        f"{prefix}-rolebinding",
        metadata=meta(account, ns, labels),
        role_ref=role_ref,
        subjects=subjects,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[role, service_account])),
    )
    return service_account, role, binding


def child_opts(
    parent: pulumi.Resource, opts: pulumi.ResourceOptions | None, *depends_on: pulumi.Input[pulumi.Resource]
) -> pulumi.ResourceOptions:
    """Options of a component's child: parented to the component (providers follow the parent), and waiting
    for what the caller's ``opts.depends_on`` and the component's args name, which Pulumi does not pass on
    to children by itself."""
    inherited: Any = (opts.depends_on if opts is not None else None) or []
    if not isinstance(inherited, list | tuple):
        inherited = [inherited]
    return pulumi.ResourceOptions(parent=parent, depends_on=[*inherited, *depends_on])


def namespace(
    resource_name: str, name: str, pod_security: str, opts: pulumi.ResourceOptions, retain: bool = False
) -> k8s.core.v1.Namespace:
    """A namespace whose Pod Security Standard level is enforced (and warned about) explicitly."""
    return k8s.core.v1.Namespace(
        resource_name,
        metadata={
            "name": name,
            "labels": {
                **PART_OF,
                "pod-security.kubernetes.io/enforce": pod_security,
                "pod-security.kubernetes.io/warn": pod_security,
            },
        },
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=retain)) if retain else opts,
    )


def merge_values(raw: Mapping[str, Any], typed: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Raw chart values with the typed ones on top, and the dotted keys where the typed value replaced a
    different raw one (so the caller can say so)."""
    merged = copy.deepcopy(dict(raw))
    conflicts: list[str] = []

    def walk(into: dict[str, Any], over: Mapping[str, Any], path: str) -> None:
        for key, value in over.items():
            here = f"{path}.{key}" if path else key
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                walk(into[key], value, here)
                continue
            if key in into and into[key] != value:
                conflicts.append(here)
            into[key] = copy.deepcopy(value)

    walk(merged, typed, "")
    return merged, conflicts


def chart_values(
    component: pulumi.Resource, stack_key: str, raw: Mapping[str, Any], typed: Mapping[str, Any]
) -> dict[str, Any]:
    """``merge_values``, warning (on the component) about every raw value a typed key overrode."""
    values, conflicts = merge_values(raw, typed)
    for path in conflicts:
        pulumi.log.warn(
            f"sglang-platform:{stack_key}.values.{path} is also set by a typed key; the typed value wins",
            resource=component,
        )
    return values


def helm_release(
    resource_name: str,
    *,
    release_name: str,
    namespace: str,
    chart: str,
    version: str,
    repository: str,
    mirror: str | None,
    values: Mapping[str, Any],
    timeout: int,
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """A Helm v3 release of a pinned chart from its project's ``repository`` (a Helm repository, or an ``oci://``
    path holding ``<chart>``) or from the stack's chart ``mirror`` (config/charts.py: https://, oci:// or a
    directory of unpacked charts); a failed install or upgrade is rolled back instead of leaving half a release
    behind."""
    source = chart_source(chart, version, repository, mirror)
    return k8s.helm.v3.Release(
        resource_name,
        name=release_name,
        namespace=namespace,
        chart=source.chart,
        version=source.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=source.repository) if source.repository else None,
        values=dict(values),
        cleanup_on_fail=True,
        timeout=timeout,
        opts=opts,
    )


def release_outputs(release: k8s.helm.v3.Release | None) -> tuple[pulumi.Output, pulumi.Output, pulumi.Output]:
    """(release name, namespace, status) of a release, or three None outputs without one."""
    if release is None:
        none = pulumi.Output.from_input(None)
        return none, none, none
    status = release.status.apply(lambda s: s.status if s is not None else None)
    return release.name, release.namespace, status


def skip_annotations(skips: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``checkov.io/skipN: ID=reason`` annotations (checkov splits on '=', so reasons may not contain one).
    Each documents a checkov finding that does not fit the workload, with the reason a reviewer sees."""
    if any("=" in reason for _, reason in skips):
        raise ValueError("a checkov skip reason may not contain '='")
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(skips, 1)}


def image_skips(image: str, version_key: str) -> list[tuple[str, str]]:
    """Pull policy and digest findings on a pinned image: CKV_K8S_43 only while the pin is a tag."""
    skips = [
        (
            "CKV_K8S_15",
            "the image is pinned by tag or digest; pulling on every start ties each restart to the "
            "registry (private clusters mirror it)",
        )
    ]
    if "@sha256:" not in image:
        skips.append(
            ("CKV_K8S_43", f"the tag is pinned in config/bom.py; set versions.{version_key} to a @sha256 digest")
        )
    return skips
