"""Typed, validated stack configuration for sglang-platform. Importing it has no side effects and loads
only what is used: ``from config.models import InferenceGroup`` does not pull in the rules, the loader or
the S3 preflight."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'config' has no attribute {name!r}")
    if name == module.rsplit(".", 1)[1]:
        return importlib.import_module(module)
    return getattr(importlib.import_module(module), name)
