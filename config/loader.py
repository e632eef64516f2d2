"""Reads the stack's ``sglang-platform:*`` keys once, validates them, and hands back typed config.

Only this module touches ``pulumi.Config``; components get everything through their args.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..live.config_json import ModelConfigs
from ..live.s3 import OFFLINE_ENV, S3Credentials, S3Preflight
from ..rules.model_cache import check_model_cache, startup_budget_minutes, weights_gib
from ..rules.quantization import check_weights, resolve
from ..rules.stack import check_platform
from ..rules.stack_keys import check_namespaces
from .errors import PROJECT, ConfigError, Problem, problems_from_validation
from .stack import SECRET_KEYS, PlatformConfig


@dataclass(frozen=True)
class LoadedConfig:
    platform: PlatformConfig
    # pulumi.Output[str] secrets by stack key (without the project prefix); absent when not set.
    secrets: dict[str, Any] = field(default_factory=dict)
    # Weight size in GiB by group name (measured in S3, declared, or known).
    weights_gib: dict[str, float] = field(default_factory=dict)
    # Startup probe budget in minutes by group name: the configured one, raised to what the weights need.
    startup_minutes: dict[str, int] = field(default_factory=dict)
    # Checks that could not run (e.g. S3 preflight without credentials), for the user to see.
    notes: list[str] = field(default_factory=list)


def validate(
    raw: dict[str, Any],
    secrets_present: AbstractSet[str] = frozenset(),
    preflight: S3Preflight | None = None,
    *,
    model_configs: ModelConfigs | None = None,
    other_keys: Iterable[str] = (),
    notes: list[str] | None = None,
) -> PlatformConfig:
    """Validate plain stack values (keys without the project prefix); ConfigError lists every problem.
    With ``preflight``, s3 model prefixes are listed too (network) and their sizes kept on it; with
    ``model_configs``, every group's config.json is read (network) and judged. ``other_keys``: the stack's
    keys of other namespaces (``namespace:key``), refused when the namespace is a typo of this project's.
    Warnings are appended to ``notes``."""
    problems: list[Problem] = check_namespaces(other_keys)
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
    problems += check_platform(cfg, set(secrets_present), notes)
    if preflight is not None and cfg.preflight.s3:
        problems += preflight.run(cfg)
    if model_configs is not None:
        problems += model_configs.run(cfg)
    read = model_configs.read if model_configs is not None else {}
    weights = {g.name: resolve(g, read.get(g.name)) for g in cfg.inference_groups}
    problems += check_weights(cfg, weights)
    problems += check_model_cache(cfg, preflight.measured_gib if preflight is not None else {}, weights)
    if problems:
        raise ConfigError(problems)
    return cfg


def _with_secret_keys(problem: Problem) -> Problem:
    if len(problem.loc) == 1 and problem.message.startswith("unknown key"):
        return Problem(problem.loc, problem.message + ", and the secrets " + ", ".join(SECRET_KEYS))
    return problem


def raw_stack_values() -> tuple[dict[str, Any], set[str], list[str]]:
    """Every ``sglang-platform:*`` value of the running stack (JSON decoded), the secret keys set, and the
    stack's keys of every other namespace (``namespace:key``, for the typo'd-namespace rule)."""
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    raw: dict[str, Any] = {}
    secrets: set[str] = set()
    others: list[str] = []
    for full_key, value in merged.items():
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT or not key:
            others.append(full_key)
            continue
        if key in SECRET_KEYS and runtime_config.is_config_secret(full_key):
            secrets.add(key)
            continue
        raw[key] = decode_value(value)
    return raw, secrets, others


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

    raw, secret_keys, other_keys = raw_stack_values()

    def plain(key: str) -> str | None:
        # Credentials in plain text, only for the preflight reads here; they reach the cluster as Secrets.
        return runtime_config.get_config(f"{PROJECT}:{key}") if key in secret_keys else None

    config = pulumi.Config(PROJECT)
    secrets = {key: config.require_secret(key) for key in sorted(secret_keys)}
    return load_values(raw, secrets, plain, other_keys)


def load_values(
    raw: dict[str, Any],
    secrets: Mapping[str, Any],
    plain: Callable[[str], str | None] = lambda key: None,
    other_keys: Iterable[str] = (),
) -> LoadedConfig:
    """``load`` of stack values given by the caller (the Platform component of the package gets them as its
    inputs): ``secrets`` by stack key (Outputs, kept as they are), ``plain`` a secret's text for the preflight
    reads (None: the reads go without it). The checks are the stack's, the live ones included: the cluster is
    the one the Kubernetes provider's stack config (else $KUBECONFIG) names."""
    from pulumi.runtime import config as runtime_config

    offline = os.environ.get(OFFLINE_ENV) == "1"
    credentials = S3Credentials(plain("s3AccessKeyId"), plain("s3SecretAccessKey"))
    preflight = S3Preflight(credentials, offline=offline)
    model_configs = ModelConfigs(plain("hfToken"), plain("modelscopeToken"), credentials, offline=offline)
    notes: list[str] = []
    platform = validate(raw, set(secrets), preflight, model_configs=model_configs, other_keys=other_keys, notes=notes)
    if not offline:
        # Imported here: an offline render (tools/render.py, the tests) never reads a cluster, and need not load
        # the checks that do and their rules.
        from ..live.cluster import ClusterAccess, live_problems

        # The cluster the Kubernetes provider deploys to (its stack config, else $KUBECONFIG).
        access = ClusterAccess(
            runtime_config.get_config("kubernetes:kubeconfig"), runtime_config.get_config("kubernetes:context")
        )
        live, live_notes = live_problems(platform, access=access)
        notes += live_notes
        if live:
            raise ConfigError(live)
    # By the name of what runs: each colocated group, each role of a disaggregated service.
    running = [u.group for u in platform.serving_units]
    sizes = {g.name: weights_gib(g, preflight.measured_gib)[0] for g in running}
    budgets = {g.name: startup_budget_minutes(g, sizes[g.name]) for g in running}
    known = {k: v for k, v in sizes.items() if v is not None}
    return LoadedConfig(platform, dict(secrets), known, budgets, notes + preflight.notes + model_configs.notes)
