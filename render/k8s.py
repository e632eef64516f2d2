"""Kubernetes values every rendered object shares, without Pulumi: the platform's labels, the await switch,
the affinity away from GPU nodes, chart values with their defaults, and checkov skip annotations."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from ..facts.gpus import GPU_NODE_LABEL

# Labels of every object the platform creates.
PART_OF = {"app.kubernetes.io/part-of": "sglang-platform", "app.kubernetes.io/managed-by": "pulumi"}


# pulumi-kubernetes annotation: register the object without waiting for it to become ready.
SKIP_AWAIT = "pulumi.com/skipAwait"


# Specs are camelCase dicts, as the API server reads them; pulumi-kubernetes' TypedDicts spell the same
# fields in snake_case, so the type checker sees them as opaque.
Spec = Any


# Kubernetes' recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"


def labels(name: str, instance: str | None = None, component: str | None = None) -> dict[str, str]:
    """The recommended app.kubernetes.io labels plus the platform's own."""
    out = {NAME_LABEL: name}
    if instance is not None:
        out[INSTANCE_LABEL] = instance
    if component is not None:
        out[COMPONENT_LABEL] = component
    return out | PART_OF


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
