"""Reads the stack's ``sglang-platform:*`` keys once, validates them, and hands back typed config.

Only this module touches ``pulumi.Config``; components get everything through their args.
"""

from __future__ import annotations

import json
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from config.checks import check_platform
from config.errors import PROJECT, ConfigError, Problem, problems_from_validation
from config.models import SECRET_KEYS, PlatformConfig


@dataclass(frozen=True)
class LoadedConfig:
    platform: PlatformConfig
    # pulumi.Output[str] secrets by stack key (without the project prefix); absent when not set.
    secrets: dict[str, Any] = field(default_factory=dict)


def validate(raw: dict[str, Any], secrets_present: AbstractSet[str] = frozenset()) -> PlatformConfig:
    """Validate plain stack values (keys without the project prefix); ConfigError lists every problem."""
    problems: list[Problem] = []
    for key in sorted(set(raw) & set(SECRET_KEYS)):
        problems.append(
            Problem(
                (key,),
                f"is a secret but is stored in plaintext: run `pulumi config rm {PROJECT}:{key}` and "
                f"`pulumi config set --secret {PROJECT}:{key} <value>`",
            )
        )
    plain = {k: v for k, v in raw.items() if k not in SECRET_KEYS}
    try:
        cfg = PlatformConfig.model_validate(plain)
    except ValidationError as exc:
        found = problems_from_validation(exc, PlatformConfig)
        raise ConfigError(problems + [_with_secret_keys(p) for p in found]) from None
    problems += check_platform(cfg, set(secrets_present))
    if problems:
        raise ConfigError(problems)
    return cfg


def _with_secret_keys(problem: Problem) -> Problem:
    if len(problem.loc) == 1 and problem.message.startswith("unknown key"):
        return Problem(problem.loc, problem.message + ", and the secrets " + ", ".join(SECRET_KEYS))
    return problem


def raw_stack_values() -> tuple[dict[str, Any], set[str]]:
    """Every ``sglang-platform:*`` value of the running stack (JSON decoded) and the secret keys set."""
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    raw: dict[str, Any] = {}
    secrets: set[str] = set()
    for full_key, value in merged.items():
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT or not key:
            continue
        if key in SECRET_KEYS and runtime_config.is_config_secret(full_key):
            secrets.add(key)
            continue
        raw[key] = _decode(value)
    return raw, secrets


def _decode(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def load() -> LoadedConfig:
    """Load and validate the current stack; raises ConfigError before anything is registered."""
    import pulumi

    raw, secret_keys = raw_stack_values()
    platform = validate(raw, secret_keys)
    config = pulumi.Config(PROJECT)
    secrets = {key: config.require_secret(key) for key in sorted(secret_keys)}
    return LoadedConfig(platform, secrets)
