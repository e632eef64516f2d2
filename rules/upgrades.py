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
  starts and has no migration back;
- an upgrade whose new chart brings CRDs in its crds/ directories that the cluster holds in an older form (or, for
  the chart's own crds/, not at all): Helm installs those on the first install only and never upgrades them, so
  the operator applies them first (the message gives the command; docs/upgrades.md). Checked where the chart is
  read from a directory mirror; for a chart from a repository the notes give the command instead.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

from ..config.errors import Problem
from ..config.stack import PlatformConfig
from ..facts.compat import ADDON_KEYS, ADDON_NAMES
from ..render.charts import installed_charts

# The release of each GPU Operator major an upgrade goes through (NVIDIA: one major at a time): the newest of that
# major the chart mirror holds. A jump from 24.x to 26.x applies v25.10.1 first.
GPU_OPERATOR_STEPS: dict[int, str] = {25: "v25.10.1", 26: "v26.7.0"}
DOCS = "docs/upgrades.md"


@dataclass(frozen=True)
class Release:
    """Where a chart the stack installs lives as a Helm release (the names components/ give it)."""

    addon: str  # config.compat's add-on key, also the chart's name
    key: str  # the add-on's stack key (config.charts.InstalledChart.key)
    namespace: str
    name: str
    pinned: str  # the chart version the stack pins
    repository: str  # the chart's project repository (config/bom.py)

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
    return [
        Release(c.chart, c.key, namespaces[c.chart], RELEASE_NAMES[c.chart], c.version, c.default_repo)
        for c in installed_charts(cfg)
    ]


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


def upgrading(release: Release, deployed: Deployed) -> bool:
    """The stack pins a newer chart than the release the cluster runs."""
    running, pinned = _version(deployed.chart_version or ""), _version(release.pinned)
    return running is not None and pinned is not None and pinned > running


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


# --- the CRDs a new chart brings in crds/ --------------------------------------------------------------------------


class _CrdLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The C loader where PyYAML has it (kube-prometheus-stack's crds/ are 4.4 MB), reading a lone ``=`` as the
    string Go's YAML makes of it: PyYAML resolves it to the ``value`` tag, which nothing constructs (the
    prometheus-operator CRDs list ``=`` among their enum values)."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


@dataclass(frozen=True)
class ChartCrd:
    directory: str  # relative to the chart: crds/ or charts/<subchart>/crds/
    own: bool  # in the chart's own crds/ (a subchart's may be turned off by the chart's values)
    crd: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.crd["metadata"]["name"])


def chart_crds(chart_dir: Path) -> list[ChartCrd]:
    """Each CRD in the crds/ directory of an unpacked chart and of its subcharts (charts/<name>/crds/)."""
    out: list[ChartCrd] = []
    dirs = [("crds/", chart_dir / "crds", True)] + [
        (f"charts/{sub.name}/crds/", sub / "crds", False) for sub in sorted((chart_dir / "charts").glob("*"))
    ]
    for where, directory, own in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix not in (".yaml", ".yml", ".json"):
                continue
            for doc in yaml.load_all(path.read_text(), Loader=_CrdLoader):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    out.append(ChartCrd(where, own, doc))
    return out


def crd_differences(want: Mapping[str, Any], have: Mapping[str, Any] | None) -> list[str]:
    """Where the cluster's CRD is not the chart's: absent, another group or scope, names the chart gives missing
    (the API server fills in the rest), another set of versions, or a version's served, storage or schema."""
    if have is None:
        return ["absent"]
    spec, held_spec = want.get("spec") or {}, have.get("spec") or {}
    out = [f"spec.{key}" for key in ("group", "scope") if spec.get(key) != held_spec.get(key)]
    names = held_spec.get("names") or {}
    if any(names.get(k) != v for k, v in (spec.get("names") or {}).items()):
        out.append("spec.names")
    wanted = {v["name"]: v for v in spec.get("versions") or []}
    held = {v["name"]: v for v in held_spec.get("versions") or []}
    if set(wanted) != set(held):
        out.append(f"versions {sorted(held)} (the chart's: {sorted(wanted)})")
    for name in sorted(set(wanted) & set(held)):
        out += [
            f"{name}.{key}" for key in ("served", "storage", "schema") if wanted[name].get(key) != held[name].get(key)
        ]
    return out


def check_chart_crds(
    release: Release, chart_dir: Path, crds: Sequence[ChartCrd], held: Mapping[str, Mapping[str, Any] | None]
) -> list[Problem]:
    """The CRDs of the new chart's crds/ directories against the cluster's (``held``: by name, None if absent): one
    the cluster holds in another form, or one of the chart's own it lacks, must be applied before the upgrade."""
    stale: dict[str, list[str]] = {}
    for c in crds:
        have = held.get(c.name)
        if have is None and not c.own:
            continue  # a subchart turned off at install brought none; the chart's values decide, not this check
        if crd_differences(c.crd, have):
            stale.setdefault(c.directory, []).append(c.name)
    if not stale:
        return []
    loc, _ = ADDON_KEYS[release.addon]
    files = " ".join(f"-f {chart_dir}/{d}" for d in stale)
    names = ", ".join(n for d in stale for n in stale[d])
    return [
        Problem(
            loc,
            f"{release.pinned} brings CRDs the cluster does not hold as the chart has them ({names}); Helm installs a "
            f"chart's crds/ on the first install only and never upgrades them: apply them first, `kubectl apply "
            f"--server-side --force-conflicts {files}`, then preview again ({DOCS}, CRDs)",
        )
    ]


def crds_note(release: Release, command: str) -> str:
    """What to do where the new chart cannot be read at preview (a chart repository, not a directory mirror)."""
    return (
        f"{release.where} goes to {release.addon} {release.pinned}: Helm does not upgrade the CRDs of its crds/ "
        f"directories; apply them before `pulumi up`: `{command} | kubectl apply --server-side --force-conflicts "
        f"-f -` ({DOCS}, CRDs)"
    )
