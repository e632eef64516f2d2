"""Stack keys of the chat front end (``sglang-platform:openWebui``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Base, DnsLabel, Quantity

# The claim of the front end's persistence: components.open_webui creates it, live.cluster looks it up.
CLAIM_NAME = "open-webui-data"
CLAIM_ACCESS_MODES = ("ReadWriteOnce",)
# RFC 1123 host name, optionally a single leading wildcard label (what an Ingress rule accepts).
HOST_NAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class WebUiPersistence(Base):
    size: Quantity = Field("10Gi", description="Size of the volume holding users, chats and uploads.")
    storage_class: str | None = Field(None, description="StorageClass of the volume; unset uses the default.")
    retain_on_destroy: bool = Field(
        True, description="Keep the chat-history volume when the stack or the UI is destroyed."
    )


class WebUiResources(Base):
    cpu: Quantity = Field("500m", description="CPU request.")
    cpu_limit: Quantity | None = Field("2", description="CPU limit; unset means none.")
    memory: Quantity = Field("1Gi", description="Memory request.")
    memory_limit: Quantity = Field("4Gi", description="Memory limit (embedding models and uploads need room).")


class WebUiIngress(Base):
    enabled: bool = Field(False, description="Expose the UI through an Ingress.")
    host: str | None = Field(None, pattern=HOST_NAME, max_length=253, description="Host name of the Ingress rule.")
    class_name: str | None = Field(None, description="ingressClassName; unset uses the cluster default.")
    tls_secret_name: DnsLabel | None = Field(
        None, description="Secret holding the TLS certificate for host (kubernetes.io/tls); unset serves plain HTTP."
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Ingress annotations (e.g. cert-manager.io/cluster-issuer)."
    )


class OpenWebUIConfig(Base):
    enabled: bool = Field(False, description="Deploy Open WebUI wired to every inference group.")
    # Open WebUI 0.5.14 refuses every sign-up while ENABLE_SIGNUP is false, the very first one included
    # (routers/auths.py, signup), and has no other way to create its first admin: with it off by default
    # nobody could ever log in. New accounts still wait for an admin (defaultUserRole: pending).
    enable_signup: bool = Field(
        True,
        description="Let anyone reaching the UI create an account (ENABLE_SIGNUP); the first one is the admin, "
        "later ones wait for an admin's approval (defaultUserRole). Read on the UI's first start only: turn "
        "sign-up off afterwards in Admin Settings.",
    )
    default_user_role: Literal["pending", "user"] = Field(
        "pending", description="Role of a new account (DEFAULT_USER_ROLE): pending waits for an admin."
    )
    request_timeout_seconds: int = Field(
        1800,
        ge=60,
        le=24 * 3600,
        description="AIOHTTP_CLIENT_TIMEOUT: how long one answer may stream (DeepSeek-R1 reasons for minutes).",
    )
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field("ClusterIP", description="UI Service type.")
    persistence: WebUiPersistence = Field(default_factory=WebUiPersistence)
    resources: WebUiResources = Field(default_factory=WebUiResources)
    ingress: WebUiIngress = Field(default_factory=WebUiIngress)
