"""Reads the stack's ``sglang-platform:*`` keys once, validates them, and hands back typed config.

Only this module touches ``pulumi.Config``; components get everything through their args.
"""

from __future__ import annotations

import json
import os
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from config.checks import check_platform
from config.errors import PROJECT, ConfigError, Problem, problems_from_validation
from config.live import ClusterAccess, live_problems
from config.model_cache import check_model_cache, weights_gib
from config.models import SECRET_KEYS, PlatformConfig
from config.preflight import OFFLINE_ENV, S3Credentials, S3Preflight


@dataclass(frozen=True)
class LoadedConfig:
    platform: PlatformConfig
    # pulumi.Output[str] secrets by stack key (without the project prefix); absent when not set.
    secrets: dict[str, Any] = field(default_factory=dict)
    # Weight size in GiB by group name (measured in S3, declared, or known), for the startup budget.
    weights_gib: dict[str, float] = field(default_factory=dict)
    # Checks that could not run (e.g. S3 preflight without credentials), for the user to see.
    notes: list[str] = field(default_factory=list)


def validate(
    raw: dict[str, Any], secrets_present: AbstractSet[str] = frozenset(), preflight: S3Preflight | None = None
) -> PlatformConfig:
    """Validate plain stack values (keys without the project prefix); ConfigError lists every problem.
    With ``preflight``, s3 model prefixes are listed too (network) and their sizes kept on it."""
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
    if preflight is not None and cfg.preflight.s3:
        problems += preflight.run(cfg)
    problems += check_model_cache(cfg, preflight.measured_gib if preflight is not None else {})
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
        raw[key] = decode_value(value)
    return raw, secrets


def decode_value(value: Any) -> Any:
    """A stack value as the CLI hands it over: structured values arrive as JSON text."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def load() -> LoadedConfig:
    """Load and validate the current stack; raises ConfigError before anything is registered."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw, secret_keys = raw_stack_values()
    # The S3 keys in plain text, only for the preflight listing here; they reach the cluster as a Secret.
    credentials = S3Credentials(
        *(
            runtime_config.get_config(f"{PROJECT}:{key}") if key in secret_keys else None
            for key in ("s3AccessKeyId", "s3SecretAccessKey")
        )
    )
    preflight = S3Preflight(credentials, offline=os.environ.get(OFFLINE_ENV) == "1")
    platform = validate(raw, secret_keys, preflight)
    notes = list(preflight.notes)
    if os.environ.get(OFFLINE_ENV) != "1":
        # The cluster the Kubernetes provider deploys to (its stack config, else $KUBECONFIG).
        access = ClusterAccess(
            runtime_config.get_config("kubernetes:kubeconfig"), runtime_config.get_config("kubernetes:context")
        )
        live, live_notes = live_problems(platform, access=access)
        notes += live_notes
        if live:
            raise ConfigError(live)
    config = pulumi.Config(PROJECT)
    secrets = {key: config.require_secret(key) for key in sorted(secret_keys)}
    sizes = {g.name: weights_gib(g, preflight.measured_gib)[0] for g in platform.inference_groups}
    return LoadedConfig(platform, secrets, {k: v for k, v in sizes.items() if v is not None}, notes)
