"""Rules of the chat front end and monitoring: the Ingress settings that only make sense together, and the
monitoring namespace."""

from __future__ import annotations

from ..config.errors import Problem
from ..config.stack import PlatformConfig


def check_front_end(cfg: PlatformConfig) -> list[Problem]:
    """Open WebUI's Ingress settings that only make sense together, and the monitoring namespace."""
    out: list[Problem] = []
    ui = cfg.open_webui
    if ui.ingress.enabled and not ui.ingress.host:
        out.append(Problem(("openWebui", "ingress", "host"), "required when ingress.enabled is true"))
    if not ui.ingress.enabled:
        for key, value in (
            ("host", ui.ingress.host),
            ("className", ui.ingress.class_name),
            ("tlsSecretName", ui.ingress.tls_secret_name),
        ):
            if value:
                out.append(Problem(("openWebui", "ingress", key), "only allowed when ingress.enabled is true"))
    mon = cfg.monitoring
    if mon.enabled and mon.namespace == cfg.namespace:
        out.append(
            Problem(
                ("monitoring", "namespace"),
                f"{mon.namespace!r} is also the serving namespace; monitoring needs its own so the groups' "
                "NetworkPolicy can admit it by namespace",
            )
        )
    return out
