"""The one model base and the field types every config module shares. A leaf: imports nothing of config
but quantity parsing, so every model module can build on it without an import circle."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..facts.quantity import parse_quantity

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
CHART_PIN = r"^v?\d+\.\d+\.\d+$"
FLOATING_TAGS = frozenset({"latest", "main", "master", "nightly", "dev", "edge", "stable", "head"})


class Base(BaseModel):
    """camelCase keys in stack files, snake_case in Python; unknown keys are errors; values are frozen."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, strict=False
    )


def _quantity(value: str) -> str:
    parse_quantity(value)
    return value


def _pinned_image(value: str) -> str:
    ref = value.strip()
    if not ref or any(c.isspace() for c in ref):
        raise ValueError(f"{value!r} is not an image reference")
    if "@sha256:" in ref:
        return ref
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        raise ValueError(f"image {value!r} has no tag: pin a version tag or a @sha256 digest")
    if tag.lower() in FLOATING_TAGS or not any(c.isdigit() for c in tag):
        raise ValueError(
            f"image {value!r} uses the floating tag {tag!r}: pin a version tag (e.g. v0.4.3.post2) or a @sha256 digest"
        )
    return ref


def _pinned_chart(value: str) -> str:
    if not re.match(CHART_PIN, value):
        raise ValueError(
            f"chart version {value!r} is not a pinned release: use an exact version such as 1.9.0 "
            "(no ranges, no latest)"
        )
    return value


def _absolute_path(value: str) -> str:
    if not value.startswith("/") or ".." in value.split("/"):
        raise ValueError(f"{value!r} must be an absolute path without '..'")
    return value


def _relative_path(value: str) -> str:
    if not value or value.startswith("/") or ".." in value.split("/"):
        raise ValueError(f"{value!r} must be a relative path inside the volume, without '..'")
    return value


# A chart mirror: a Helm repository, an OCI registry path, or a local directory of unpacked charts
# (render/charts.py resolves it).
REMOTE_SCHEMES = ("https://", "oci://")


def validate_mirror(value: str) -> str:
    """Field rule for the chartMirror keys: a remote repository or a directory path."""
    if not value:
        return value
    if any(c.isspace() for c in value):
        raise ValueError(f"{value!r} contains white space")
    if "://" in value and not value.startswith(REMOTE_SCHEMES):
        raise ValueError(
            f"{value!r} is neither a Helm repository (https://...), an OCI registry path (oci://...) nor a "
            "local directory of unpacked charts"
        )
    return value


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network in CIDR notation (e.g. 10.20.0.0/16): {exc}") from None


Quantity = Annotated[str, AfterValidator(_quantity)]
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)]
DnsSubdomain = Annotated[str, Field(pattern=DNS_SUBDOMAIN, max_length=253)]
Image = Annotated[str, AfterValidator(_pinned_image)]
ChartVersion = Annotated[str, AfterValidator(_pinned_chart)]
AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]
RelativePath = Annotated[str, AfterValidator(_relative_path)]
# An exact pip pin: the download containers install it when their image lacks the library.
PinnedRequirement = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+$")]
Port = Annotated[int, Field(ge=1, le=65535)]
Cidr = Annotated[str, AfterValidator(_cidr)]
ChartMirror = Annotated[str, AfterValidator(validate_mirror)]


def values_field() -> Any:
    """The ``values`` key of a chart the stack installs."""
    return Field(default_factory=dict, description="Raw chart values under the typed keys (which win conflicts).")


def mirror_field() -> Any:
    """The ``chartMirror`` key of one chart, over ``sglang-platform:chartMirror``."""
    return Field(
        "",
        description="Where this chart comes from instead of sglang-platform:chartMirror: a Helm repository "
        "(https://...), an OCI path (oci://...) or a directory of unpacked <chart>-<version>/ charts.",
    )
