"""Validate rendered Kubernetes objects as an API server would: built-in kinds strictly against the
OpenAPI schemas of the stack's Kubernetes version (``kubernetes-validate``), custom resources against the
upstream CRDs of the releases the stack pins (``third_party/crds/``, ``tools/crds.py``): structural schema,
required fields, enums, and fields the CRD does not declare, which an API server silently prunes.

Not checked: CEL rules (``x-kubernetes-validations``), formats, and admission webhooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

from tools import crds
from tools.harness import CRDS

CRD_DIR = CRDS


@dataclass(frozen=True)
class CustomSchema:
    source: str  # the CRD file, for messages
    schema: dict[str, Any]


def strict_schema(node: Any, *, root: bool = True, junction: bool = False) -> Any:
    """A CRD's openAPIV3Schema as a JSON Schema that rejects what the API server would prune: an object
    with ``properties`` (or with none at all) accepts no other field unless it preserves unknown fields."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {
                # ObjectMeta of the resource itself is the API server's, checked separately.
                name: {"type": "object"} if root and name == "metadata" else strict_schema(sub, root=False)
                for name, sub in value.items()
            }
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = strict_schema(value, root=False, junction=junction)
        elif key in ("allOf", "anyOf", "oneOf"):
            # Structural schemas only constrain values inside junctions; they never declare fields there.
            out[key] = [strict_schema(v, root=False, junction=True) for v in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-embedded-resource"):
        props = out.setdefault("properties", {})
        for name in ("apiVersion", "kind"):
            props.setdefault(name, {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    preserves = node.get("x-kubernetes-preserve-unknown-fields") is True
    is_object = node.get("type") == "object" or "properties" in node
    if is_object and not junction and not preserves and "additionalProperties" not in node:
        out["additionalProperties"] = False
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def pins(platform: Any) -> dict[str, str]:
    """Project (tools/crds.py: lws, volcano, keda, prom) -> the release the stack pins, the BOM's where it pins
    none; ``platform`` is a validated PlatformConfig, or None for the BOM alone."""
    return crds.pinned(getattr(platform, "versions", None))


def stack_crd_files(platform: Any, crd_dir: Path = CRD_DIR) -> list[Path]:
    """Every CRD file of the releases the stack pins (FileNotFoundError naming the refresh for a pin without)."""
    return [path for project, version in pins(platform).items() for path in crds.files_for(project, version, crd_dir)]


def load_custom_schemas(files: Iterable[Path]) -> dict[tuple[str, str], CustomSchema]:
    """(apiVersion, kind) -> strict schema, for every served version of every CRD in ``files`` (the releases of
    one stack: two files of one kind, say two Volcano releases, are refused rather than one silently winning)."""
    schemas: dict[tuple[str, str], CustomSchema] = {}
    for path in files:
        for doc in crds.documents(path):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if not version.get("served", False):
                    continue
                raw = (version.get("schema") or {}).get("openAPIV3Schema")
                if raw is None:
                    continue
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                if key in schemas and schemas[key].source != path.name:
                    raise ValueError(f"{key[0]} {key[1]} is in both {schemas[key].source} and {path.name}")
                schemas[key] = CustomSchema(path.name, strict_schema(raw))
    return schemas


def _where(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')} {ns}{meta.get('name')}"


def _path(error: jsonschema.ValidationError) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".") or "(root)"


def _explain(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        schema = error.schema if isinstance(error.schema, dict) else {}
        instance = error.instance if isinstance(error.instance, dict) else {}
        unknown = sorted(set(instance) - set(schema.get("properties", {})))
        return f"unknown field(s) {', '.join(unknown)} (an API server would reject or silently prune them)"
    return error.message


def validate_builtin(obj: dict[str, Any], kubernetes: str) -> list[str] | None:
    """Problems of a built-in object under the strict schemas of ``kubernetes`` (the nearest release
    the package ships at or below it); None when the kind is not built in."""
    try:
        kubernetes_validate.validate(obj, kubernetes, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return None
    except kubernetes_validate.ValidationError as error:
        # The package stops at the first error (it copies the jsonschema error's fields onto its own).
        return [f"{_where(obj)}: {_path(error)}: {_explain(error)} (Kubernetes {error.version} schema)"]
    return []


def validate_custom(obj: dict[str, Any], schemas: dict[tuple[str, str], CustomSchema], kubernetes: str) -> list[str]:
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    found = schemas.get(key)
    if found is None:
        return [
            f"{_where(obj)}: no schema for {key[0]} {key[1]}: neither a built-in kind of Kubernetes {kubernetes} "
            "nor a CRD of a release the stack pins (third_party/crds; tools/crds.py refresh adds one)"
        ]
    validator = jsonschema.Draft4Validator(found.schema)
    problems = [
        f"{_where(obj)}: {_path(e)}: {_explain(e)} ({found.source})"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    ]
    # The resource's own ObjectMeta is validated by the API server for every kind: borrow a ConfigMap's.
    meta_problems = validate_builtin(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata")}, kubernetes
    )
    return problems + [p.replace("ConfigMap", str(obj.get("kind")), 1) for p in meta_problems or []]


def validate_all(
    objects: Iterable[dict[str, Any]], kubernetes: str, schemas: dict[tuple[str, str], CustomSchema] | None
) -> list[str]:
    """Every problem of every object; custom resources need ``schemas`` (None: report them unchecked)."""
    problems: list[str] = []
    for obj in objects:
        builtin = validate_builtin(obj, kubernetes)
        if builtin is not None:
            problems += builtin
        elif schemas is None:
            problems.append(f"{_where(obj)}: custom resource not checked (no CRDs available)")
        else:
            problems += validate_custom(obj, schemas, kubernetes)
    return problems
