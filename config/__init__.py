"""Typed, validated stack configuration for sglang-platform. Importing it has no side effects and loads
only what is used: ``from config.models import InferenceGroup`` does not pull in the rules, the loader or
the S3 preflight."""

from __future__ import annotations

from typing import TYPE_CHECKING

from config.lazy import lazy_getattr

if TYPE_CHECKING:
    from config import bom
    from config.errors import PROJECT, ConfigError, Problem
    from config.loader import LoadedConfig, load, validate
    from config.models import (
        SECRET_KEYS,
        ApiAccess,
        InferenceGroup,
        Model,
        ModelVolume,
        Network,
        PlatformConfig,
        Ports,
        Probes,
        Resources,
        Versions,
    )

_EXPORTS = {
    "bom": "config.bom",
    "PROJECT": "config.errors",
    "ConfigError": "config.errors",
    "Problem": "config.errors",
    "LoadedConfig": "config.loader",
    "load": "config.loader",
    "validate": "config.loader",
    **dict.fromkeys(
        (
            "SECRET_KEYS",
            "ApiAccess",
            "InferenceGroup",
            "Model",
            "ModelVolume",
            "Network",
            "PlatformConfig",
            "Ports",
            "Probes",
            "Resources",
            "Versions",
        ),
        "config.models",
    ),
}
__all__ = [
    "PROJECT",
    "SECRET_KEYS",
    "ApiAccess",
    "ConfigError",
    "InferenceGroup",
    "LoadedConfig",
    "Model",
    "ModelVolume",
    "Network",
    "PlatformConfig",
    "Ports",
    "Probes",
    "Problem",
    "Resources",
    "Versions",
    "bom",
    "load",
    "validate",
]


__getattr__ = lazy_getattr("config", _EXPORTS)
