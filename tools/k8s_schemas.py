"""Validate rendered Kubernetes objects as an API server would: built-in kinds strictly against the
OpenAPI schemas of the stack's Kubernetes version (``kubernetes-validate``), custom resources against
the pinned upstream CRD in ``../shared/crds/`` (structural schema, required fields, enums, and fields
the CRD does not declare, which an API server silently prunes).

Not checked: CEL rules (``x-kubernetes-validations``), formats, and admission webhooks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from packaging.version import InvalidVersion, Version

from tools.harness import SHARED

CRD_DIR = SHARED / "crds"
LWS_GROUP = "leaderworkerset.x-k8s.io"
_LWS_FILE = re.compile(r"^lws-v(?P<version>[0-9][0-9A-Za-z.+-]*)\.yaml$")


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


def _lws_files(crd_dir: Path) -> dict[str, Path]:
    return {m["version"]: p for p in crd_dir.glob("lws-v*.yaml") if (m := _LWS_FILE.match(p.name))}


def lws_pin(platform: Any) -> str | None:
    """The LWS version the stack installs: a ``versions`` field or a bill-of-materials constant whose
    name mentions LWS (the add-on component owns the field; this finds it whatever it is called)."""
    from config import bom

    candidates: list[Any] = []
    versions = getattr(platform, "versions", None)
    if versions is not None:
        candidates += [v for k, v in versions.model_dump().items() if "lws" in k.lower()]
    candidates += [v for k, v in vars(bom).items() if "LWS" in k.upper() and "VERSION" in k.upper()]
    for value in candidates:
        if isinstance(value, str):
            try:
                return str(Version(value.removeprefix("v")))
            except InvalidVersion:
                continue
    return None


def lws_crd_file(platform: Any, crd_dir: Path = CRD_DIR) -> tuple[Path, str]:
    """The LWS CRD of the pinned version, and a note on how it was chosen."""
    files = _lws_files(crd_dir)
    pin = lws_pin(platform)
    if pin is not None:
        for version, path in files.items():
            if Version(version) == Version(pin):
                return path, f"LWS {pin} (pinned)"
        raise FileNotFoundError(
            f"the stack pins LWS {pin} but {crd_dir} has no lws-v{pin}.yaml (have: "
            f"{', '.join(sorted(p.name for p in files.values())) or 'none'}); add the upstream CRD of that release"
        )
    if not files:
        raise FileNotFoundError(f"no lws-v*.yaml CRD in {crd_dir}")
    newest = max(files, key=Version)
    return files[newest], f"LWS {newest} (newest CRD available: the stack pins no LWS version)"


def load_custom_schemas(lws_file: Path, crd_dir: Path = CRD_DIR) -> dict[tuple[str, str], CustomSchema]:
    """(apiVersion, kind) -> strict schema, for every served version of every CRD in ``crd_dir``; of the
    LWS CRDs only ``lws_file``."""
    schemas: dict[tuple[str, str], CustomSchema] = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        if _LWS_FILE.match(path.name) and path != lws_file:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if not version.get("served", False):
                    continue
                raw = (version.get("schema") or {}).get("openAPIV3Schema")
                if raw is None:
                    continue
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
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
            "nor a CRD in ../shared/crds (add the upstream CRD of the pinned version)"
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
