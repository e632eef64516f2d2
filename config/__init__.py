"""Typed, validated stack configuration for sglang-platform. Importing it has no side effects."""

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
