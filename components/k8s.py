"""Pulumi helpers every component uses: metadata, a workload's RBAC, child options, namespaces with their
pod-security level, and Helm releases with pinned charts (from their repository or a chart mirror)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..render.charts import chart_source
from ..render.k8s import PART_OF, Spec, merge_values


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
    path holding ``<chart>``) or from the stack's chart ``mirror`` (render/charts.py: https://, oci:// or a
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
