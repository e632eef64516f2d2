"""Rules over what the cluster already runs against what the stack pins: the in-place upgrades the platform takes,
and the ones it refuses before anything changes (docs/upgrades.md).

Refused at preview (and at ``up``), whatever ``preflight.compatibility`` says (that key is about Kubernetes
windows; these are about the path from what runs):
- the GPU Operator more than one major ahead of the release the cluster runs: NVIDIA supports upgrading it one
  major at a time (its upgrade docs), so the message names the release of the major in between to apply first;
- any add-on chart older than the release the cluster runs: Helm never downgrades the CRDs of a chart's crds/
  directory (GPU Operator, node-feature-discovery, kube-prometheus-stack, LWS), and an older chart's templated
  CRDs (KEDA's, Volcano's) would replace the newer ones the live objects are stored with;
- an Open WebUI image older than the one its Deployment runs: Open WebUI migrates its database forward when it
  starts and has no migration back.
An SGLang or gateway image older than the running one is not refused: they keep no state, their pods roll as for
any new image.

Pure: Helm's release records (the Secrets its storage driver writes: ``sh.helm.release.v1.<name>.v<revision>``,
labels ``owner=helm``, ``name``, ``status``, ``version``; ``data.release`` is base64 of gzip of the release's JSON)
and Deployments as the API server returns them in JSON; ``config.live`` reads them.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

from config.charts import installed_charts
from config.compat import ADDON_KEYS, ADDON_NAMES
from config.errors import Problem
from config.models import PlatformConfig

# The release of each GPU Operator major an upgrade goes through (NVIDIA: one major at a time): the newest of that
# major the chart mirror holds. A jump from 24.x to 26.x applies v25.10.1 first.
GPU_OPERATOR_STEPS: dict[int, str] = {25: "v25.10.1", 26: "v26.7.0"}
DOCS = "docs/upgrades.md"


@dataclass(frozen=True)
class Release:
    """Where a chart the stack installs lives as a Helm release (the names components/ give it)."""

    addon: str  # config.compat's add-on key, also the chart's name
    namespace: str
    name: str
    pinned: str  # the chart version the stack pins

    @property
    def where(self) -> str:
        return f"Helm release {self.namespace}/{self.name}"


# The release name each component gives its chart (components/addons.py, autoscaling.py, monitoring.py;
# tests/test_upgrades.py checks them against the render).
RELEASE_NAMES = {
    "gpu-operator": "gpu-operator",
    "volcano": "volcano",
    "lws": "lws",
    "keda": "keda",
    "kube-prometheus-stack": "kube-prometheus-stack",
}
LWS_NAMESPACE = "lws-system"
# The Deployment components/open_webui.py runs (metadata.name) and its container.
WEBUI_DEPLOYMENT = "open-webui"


def releases(cfg: PlatformConfig) -> list[Release]:
    """The Helm releases the stack installs, with the chart version each pins."""
    namespaces = {
        "gpu-operator": cfg.gpu_operator.namespace,
        "volcano": cfg.volcano.namespace,
        "lws": LWS_NAMESPACE,
        "keda": cfg.keda.namespace,
        "kube-prometheus-stack": cfg.monitoring.namespace,
    }
    return [Release(c.chart, namespaces[c.chart], RELEASE_NAMES[c.chart], c.version) for c in installed_charts(cfg)]


@dataclass(frozen=True)
class Deployed:
    """The newest revision of a Helm release and what it runs."""

    revision: int
    status: str  # deployed, failed, pending-upgrade, ...
    chart_version: str | None


def decode_release(secret: dict[str, Any]) -> dict[str, Any] | None:
    """The release JSON of one of Helm's Secrets (None when it is not one Helm wrote)."""
    data = (secret.get("data") or {}).get("release")
    if not data:
        return None
    try:
        body = base64.b64decode(base64.b64decode(data))
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        out = json.loads(body)
    except (binascii.Error, ValueError, OSError, EOFError, zlib.error):
        return None
    return out if isinstance(out, dict) else None


def newest_revision(secrets: Sequence[dict[str, Any]]) -> Deployed | None:
    """The newest revision among a release's Secrets, and the chart version of the newest one Helm marked
    deployed (a failed or interrupted upgrade leaves the older revision running)."""
    revisions: list[tuple[int, str, dict[str, Any]]] = []
    for secret in secrets:
        labels = (secret.get("metadata") or {}).get("labels") or {}
        if labels.get("owner") != "helm":
            continue
        try:
            revisions.append((int(labels.get("version", "")), str(labels.get("status", "")), secret))
        except ValueError:
            continue
    if not revisions:
        return None
    revisions.sort(key=lambda r: r[0])
    revision, status, _ = revisions[-1]
    version = None
    for _, state, secret in reversed(revisions):
        if state == "deployed":
            release = decode_release(secret) or {}
            version = ((release.get("chart") or {}).get("metadata") or {}).get("version")
            break
    return Deployed(revision, status, str(version) if version else None)


def _version(text: str) -> Version | None:
    try:
        return Version(text.strip().removeprefix("v"))
    except InvalidVersion:
        return None


def check_release(release: Release, deployed: Deployed) -> tuple[list[Problem], list[str]]:
    """(problems, notes) of one chart upgrade, from the release the cluster runs to the pinned version."""
    loc, _ = ADDON_KEYS[release.addon]
    name = ADDON_NAMES[release.addon]
    notes: list[str] = []
    if deployed.status.startswith("pending-"):
        notes.append(
            f"{release.where} is {deployed.status} at revision {deployed.revision}: a Helm operation on it was "
            f"interrupted, and Helm refuses another until it is rolled back ({DOCS}, Troubleshooting)"
        )
    running = _version(deployed.chart_version or "")
    pinned = _version(release.pinned)
    if running is None or pinned is None or running == pinned:
        return [], notes
    was = f"{deployed.chart_version}, which the cluster runs ({release.where})"
    if pinned < running:
        return [
            Problem(
                loc,
                f"{release.pinned} is older than {was}; a chart downgrade is refused: Helm leaves the newer CRDs of a "
                f"chart's crds/ directory in place and an older chart's templated CRDs would replace the ones live "
                f"objects are stored with. Keep {deployed.chart_version} or set a newer one ({DOCS}, Downgrades)",
            )
        ], notes
    if release.addon == "gpu-operator" and pinned.major - running.major >= 2:
        step = running.major + 1
        middle = GPU_OPERATOR_STEPS.get(step, f"the newest {step}.x release")
        majors = "two majors" if pinned.major - running.major == 2 else f"{pinned.major - running.major} majors"
        return [
            Problem(
                loc,
                f"{release.pinned} is {majors} after {was}; NVIDIA supports upgrading {name} one major at a time: set "
                f"{middle} first and `pulumi up`, then {release.pinned} ({DOCS}, GPU Operator)",
            )
        ], notes
    return [], notes


def image_tag_version(image: str) -> Version | None:
    """The release an image's tag names (``ghcr.io/open-webui/open-webui:v0.12.4`` -> 0.12.4); None for a digest
    or a tag that is no version."""
    if "@" in image:
        return None
    _, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return None
    return _version(tag)


def check_webui(pinned: str, deployment: dict[str, Any], namespace: str) -> list[Problem]:
    """An Open WebUI image older than the one its Deployment runs is refused (its database migrates one way)."""
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    running = next((c.get("image") for c in containers if c.get("name") == WEBUI_DEPLOYMENT), None)
    if not running:
        return []
    have, want = image_tag_version(running), image_tag_version(pinned)
    if have is None or want is None or want >= have:
        return []
    return [
        Problem(
            ("versions", "openWebuiImage"),
            f"{pinned} is older than {running}, which Deployment {namespace}/{WEBUI_DEPLOYMENT} runs; Open WebUI "
            f"migrates its database forward when it starts and has no way back, so a downgrade is refused: keep "
            f"{running} or a newer one (going back means restoring the data volume saved before the upgrade, "
            f"{DOCS}, Downgrades)",
        )
    ]
