"""Stack keys of model weights: where a group's weights come from (``inferenceGroups[].model.download``), the
model hubs every group downloads from unless it says otherwise (``modelHubs``), the claim that caches them
(``inferenceGroups[].modelVolume.pvc``) and the top-level ``preflight`` switches. The rules across them live in
``rules.model_cache``."""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from ..facts.gpus import GPU_NODE_LABEL
from .base import Base, DnsSubdomain, Quantity

# A Hugging Face branch (main) moves; only a commit id names fixed weights. The same holds on ModelScope (a
# git host too): branches move, and a tag can be deleted and pushed again, so only a commit is judged fixed.
HF_COMMIT = re.compile(r"^[0-9a-f]{40}$")
REPO_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"
# S3 bucket naming rules (also what S3-compatible stores accept).
BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# What the staging DaemonSet's pod requests on every node it stages (a hostPath volume's). Here, not in the
# component, because the node-fit rules count it beside the group's pod (rules.nodes).
STAGER_REQUESTS = {"cpu": "250m", "memory": "512Mi"}


def endpoint_url(value: str) -> str:
    """Field rule of every endpoint key (an S3-compatible store, a Hugging Face mirror, an internal ModelScope):
    an http(s) URL with a host and, at most, a path prefix. No credentials in it: the URL is rendered into pod
    specs and the state in plaintext, so a token belongs in the stack secrets. Kept as written (the S3 endpoint
    is part of the download's identity: rewriting it would fetch the weights again)."""
    allowed = (
        "give an http:// or https:// URL with a host and, at most, a path prefix, e.g. "
        "https://hf-mirror.example.com or http://modelscope.mirrors.svc:8080/ms"
    )
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an endpoint URL: {allowed}")
    parts = urllib.parse.urlsplit(value)
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number or out of range)
    except ValueError:
        raise ValueError(f"{value!r} is not an endpoint URL (bad port): {allowed}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an endpoint URL: {allowed}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "an endpoint URL may not hold credentials (user:password@): it is stored and rendered in plaintext; "
            "put the token in the stack secret (hfToken, modelscopeToken, s3AccessKeyId/s3SecretAccessKey)"
        )
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError(f"{value!r} has a query or fragment, which the clients cannot use: {allowed}")
    return value


EndpointUrl = Annotated[str, AfterValidator(endpoint_url)]


def _s3_prefix(value: str) -> str:
    if value.startswith("/") or ".." in value.split("/"):
        raise ValueError(f"{value!r} must be a key prefix without a leading '/' or '..'")
    return value


class Staging(Base):
    """The pre-stage DaemonSet of a ``hostPath`` volume: one copy per node, fetched before any group starts."""

    node_selector: dict[str, str] = Field(
        default_factory=lambda: {GPU_NODE_LABEL: "true"},
        description="Node labels, on top of the group's nodeSelector and tolerations, of the nodes that get a copy: "
        f"the GPU nodes (the GPU Operator labels them {GPU_NODE_LABEL}=true). {{}} stages on every node the "
        "group's nodeSelector and tolerations admit.",
    )
    allow_moving_revision: bool = Field(
        False,
        description="Stage a revision that can move (a branch or tag: anything but a 40-character commit id) "
        "anyway. Each node fetches it when its stager starts, so the nodes of one group can hold different "
        "weights; the stager records the commit it got in the completion marker for comparing nodes.",
    )
    keep_revisions: int = Field(
        1,
        ge=0,
        le=10,
        description="Earlier revisions kept on each node after a switch, the most recently served first (going "
        "back needs no fetch); 0 removes the replaced one at once. Each costs the model's size in disk.",
    )


class ModelDownload(Base):
    """How the platform fills the model volume; the keys that apply depend on ``model.source``."""

    repo: Annotated[str, Field(pattern=REPO_ID)] | None = Field(
        None, description="huggingface/modelscope: repository id, e.g. deepseek-ai/DeepSeek-R1."
    )
    revision: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._/-]+$",
        description="Pinned revision: a commit id on Hugging Face; a tag, branch or commit on ModelScope; "
        "for s3 an optional label whose change forces a fresh copy.",
    )
    bucket: Annotated[str, Field(pattern=BUCKET)] | None = Field(None, description="s3: bucket name.")
    prefix: Annotated[str, Field(max_length=1024), AfterValidator(_s3_prefix)] = Field(
        "", description="s3: key prefix of the model directory (config.json lives directly under it)."
    )
    endpoint: EndpointUrl | None = Field(
        None,
        description="Where this group's files come from instead of the source's default: s3, the endpoint URL of an "
        "S3-compatible store (MinIO, Ceph RGW, OSS...); huggingface, a Hugging Face mirror or proxy (HF_ENDPOINT); "
        "modelscope, a ModelScope endpoint (MODELSCOPE_ENDPOINT). For the hubs it overrides modelHubs.",
    )
    region: Annotated[str, Field(pattern=r"^[a-z0-9-]{2,32}$")] | None = Field(None, description="s3: region.")
    credentials_secret: DnsSubdomain | None = Field(
        None,
        description="Existing Secret in the namespace with HF_TOKEN / MODELSCOPE_API_TOKEN / AWS_ACCESS_KEY_ID "
        "and AWS_SECRET_ACCESS_KEY; instead of the stack secrets hfToken, modelscopeToken, s3AccessKeyId, "
        "s3SecretAccessKey.",
    )
    service_account_name: DnsSubdomain | None = Field(
        None,
        description="s3: ServiceAccount of the download Job or staging DaemonSet (IRSA / workload identity) instead "
        "of keys.",
    )
    max_workers: int = Field(8, ge=1, le=64, description="Files downloaded in parallel.")
    staging: Staging = Field(
        default_factory=Staging,
        description="hostPath volumes: the DaemonSet that stages the weights on every node the group may use.",
    )

    def identity(self, source: str) -> dict[str, str]:
        """What the completion marker records and the gates compare: a change means a fresh download."""
        if source == "s3":
            out = {"source": "s3", "bucket": self.bucket or "", "prefix": self.prefix, "endpoint": self.endpoint or ""}
            return out | {"revision": self.revision or ""}
        return {"source": source, "repo": self.repo or "", "revision": self.revision or ""}


HUBS = ("huggingface", "modelscope")


class ModelHubs(Base):
    """Where the platform reaches each model hub, for every group of that source that does not name its own
    ``model.download.endpoint``: the download Job, the weights stagers and the config.json read at preview. A
    cluster behind an internal mirror sets it once here rather than on every group."""

    huggingface: EndpointUrl | None = Field(
        None,
        description="Hugging Face mirror or proxy (huggingface_hub's HF_ENDPOINT), e.g. https://hf-mirror.example.com. "
        "Unset: https://huggingface.co. hfToken is sent to it.",
    )
    modelscope: EndpointUrl | None = Field(
        None,
        description="ModelScope endpoint (the client's MODELSCOPE_ENDPOINT), e.g. an internal ModelScope or "
        "https://www.modelscope.ai. Unset: https://www.modelscope.cn. modelscopeToken is sent to it.",
    )

    def endpoint(self, source: str, download: ModelDownload | None) -> tuple[str | None, tuple[str, ...]]:
        """The endpoint a group of ``source`` downloads from, and the stack key that set it (relative to the
        root for modelHubs, to the group for its own): (None, ()) for the hub's default, and for s3 and local,
        whose endpoint (if any) is the S3 one."""
        if source not in HUBS:
            return None, ()
        if download is not None and download.endpoint:
            return download.endpoint, ("model", "download", "endpoint")
        own: str | None = getattr(self, source)
        return (own, ("modelHubs", source)) if own else (None, ())


class Pvc(Base):
    create: bool = Field(True, description="Create the PersistentVolumeClaim (kept on destroy unless retain is false).")
    storage_class: DnsSubdomain | None = Field(
        None, description="StorageClass (ReadWriteMany: the download Job and every pod mount it); unset: default."
    )
    size: Quantity | None = Field(None, description="Requested size, e.g. 800Gi; must hold the weights plus 10%.")
    access_mode: Literal["ReadWriteMany", "ReadWriteOnce"] = Field(
        "ReadWriteMany", description="Access mode; ReadWriteOnce only works when the Job and pods share one node."
    )
    retain: bool = Field(True, description="Keep the claim (and the weights) when the stack is destroyed.")


class Preflight(Base):
    s3: bool = Field(True, description="List S3 model prefixes at preview (needs credentials; skipped without).")
    hub_endpoints: bool = Field(
        True,
        description="Refuse a model hub endpoint (modelHubs, model.download.endpoint of huggingface and modelscope "
        "groups) that preview cannot reach when it reads the model's config.json; false: only a note, for a mirror "
        "that only the cluster reaches.",
    )
    capacity: bool = Field(True, description="Refuse groups whose weights do not fit their GPUs or PVC.")
    compatibility: bool = Field(
        True,
        description="Refuse add-on versions their project does not support on versions.kubernetes (false: warn "
        "only, e.g. a simulated cluster running older charts).",
    )
