"""Which stack secrets a configuration needs, in one place: the rules refuse a stack without them, and the
offline render fills exactly these with placeholders."""

from __future__ import annotations

from dataclasses import dataclass

from ..config.errors import PROJECT, Problem
from ..config.stack import PlatformConfig


@dataclass(frozen=True)
class RequiredSecret:
    key: str
    # The boolean stack key that makes the secret required, and what the user should put in it.
    switch: str
    placeholder: str = "value"


def required_secrets(cfg: PlatformConfig) -> list[RequiredSecret]:
    needed = []
    if cfg.require_api_key:
        needed.append(RequiredSecret("apiKey", "requireApiKey", "key"))
    if cfg.open_webui.enabled:
        needed.append(RequiredSecret("webuiSecretKey", "openWebui.enabled"))
    if cfg.monitoring.enabled:
        needed.append(RequiredSecret("grafanaAdminPassword", "monitoring.enabled"))
    return needed


def check_secrets(cfg: PlatformConfig, present: set[str]) -> list[Problem]:
    return [
        Problem(
            (s.key,),
            f"required secret is not set ({s.switch} is true): run `pulumi config set --secret {PROJECT}:{s.key} "
            f"<{s.placeholder}>` or set {PROJECT}:{s.switch} to false",
        )
        for s in required_secrets(cfg)
        if s.key not in present
    ]
