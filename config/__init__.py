"""The stack's configuration: its typed schema (``stack`` and the modules of each part) and its loading
(``loader``). Importing it has no side effects and loads only what is used: ``from sglang_platform.config import
InferenceGroup`` does not pull in the rules, the loader or the S3 preflight."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

if TYPE_CHECKING:
    from .errors import PROJECT, ConfigError, Problem
    from .loader import LoadedConfig, load, validate
    from .stack import (
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
    "PROJECT": "sglang_platform.config.errors",
    "ConfigError": "sglang_platform.config.errors",
    "Problem": "sglang_platform.config.errors",
    "LoadedConfig": "sglang_platform.config.loader",
    "load": "sglang_platform.config.loader",
    "validate": "sglang_platform.config.loader",
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
        "sglang_platform.config.stack",
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
    "load",
    "validate",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
