"""Where each Helm chart comes from: its project's repository, or a mirror (``sglang-platform:chartMirror``, or
``<addon>.chartMirror`` for one chart) for clusters that cannot reach the internet.

A mirror is a Helm repository that serves every chart (``https://...``), an OCI registry path that holds every
chart (``oci://host/path``, the chart is ``oci://host/path/<chart>``), or a local directory of unpacked charts
named ``<chart>-<version>/`` (what ``helm pull --untar`` of each pinned version gives, the layout
``tools/chart_source.py pull`` writes into ``.cache/charts/``). A relative directory is resolved against the project
root.

``helm.v3.Release`` resolves its chart already at ``pulumi preview``, so a stack whose charts cannot be reached
cannot even preview: a directory mirror is checked here, before anything is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ..config.base import REMOTE_SCHEMES
from ..config.errors import Loc, Problem
from ..facts import bom

if TYPE_CHECKING:
    from ..config.stack import PlatformConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ChartSource:
    """What a helm.v3.Release is given: ``chart`` (a name, an ``oci://`` reference or a local directory),
    ``repository`` (a Helm repository URL, or None) and ``version`` (None for a local directory, whose
    Chart.yaml is the version)."""

    chart: str
    repository: str | None
    version: str | None


def mirror_directory(mirror: str, root: Path = PROJECT_ROOT) -> Path | None:
    """The local directory a mirror names (relative to ``root``), or None for a remote mirror."""
    if mirror.startswith(REMOTE_SCHEMES):
        return None
    path = Path(mirror).expanduser()
    return path if path.is_absolute() else (root / path).resolve()


def chart_source(
    chart: str, version: str, default_repo: str, mirror: str | None, root: Path = PROJECT_ROOT
) -> ChartSource:
    """Resolve one chart. ``default_repo`` is the project's repository (``https://...``) or OCI path
    (``oci://registry.k8s.io/lws/charts``); ``mirror`` replaces it when set (empty or None: no mirror)."""
    repo = mirror or default_repo
    directory = mirror_directory(repo, root)
    if directory is not None:
        return ChartSource(str(directory / f"{chart}-{version}"), None, None)
    if repo.startswith("oci://"):
        return ChartSource(f"{repo.rstrip('/')}/{chart}", None, version)
    return ChartSource(chart, repo, version)


@dataclass(frozen=True)
class InstalledChart:
    """A chart the stack installs, with the stack key of its mirror override."""

    key: str  # the add-on's stack key: gpuOperator, volcano, lws, keda, monitoring
    chart: str
    version: str
    default_repo: str
    mirror_override: str


def installed_charts(cfg: PlatformConfig) -> list[InstalledChart]:
    v = cfg.versions
    out: list[InstalledChart] = []
    if cfg.gpu_operator.mode == "install":
        out.append(
            InstalledChart(
                "gpuOperator",
                "gpu-operator",
                v.gpu_operator_chart,
                bom.GPU_OPERATOR_REPO,
                cfg.gpu_operator.chart_mirror,
            )
        )
    if cfg.volcano.mode == "install":
        out.append(InstalledChart("volcano", "volcano", v.volcano_chart, bom.VOLCANO_REPO, cfg.volcano.chart_mirror))
    if cfg.lws.mode == "install":
        out.append(InstalledChart("lws", "lws", v.lws_chart, bom.LWS_REPO, cfg.lws.chart_mirror))
    if cfg.keda.mode == "install":
        out.append(InstalledChart("keda", "keda", v.keda_chart, bom.KEDA_REPO, cfg.keda.chart_mirror))
    if cfg.monitoring.enabled:
        out.append(
            InstalledChart(
                "monitoring",
                "kube-prometheus-stack",
                v.kube_prometheus_stack,
                bom.KUBE_PROMETHEUS_STACK_REPO,
                cfg.monitoring.chart_mirror,
            )
        )
    return out


def mirror_for(cfg: PlatformConfig, key: str) -> str | None:
    """The mirror of one add-on's chart: its own chartMirror, else the stack's, else none."""
    override = {
        "gpuOperator": cfg.gpu_operator.chart_mirror,
        "volcano": cfg.volcano.chart_mirror,
        "lws": cfg.lws.chart_mirror,
        "keda": cfg.keda.chart_mirror,
        "monitoring": cfg.monitoring.chart_mirror,
    }[key]
    return override or cfg.chart_mirror or None


def pull_command(chart: str, version: str, repo: str) -> str:
    """The `helm pull` that fetches one pinned chart from its project (to fill a mirror)."""
    if repo.startswith("oci://"):
        return f"helm pull {repo.rstrip('/')}/{chart} --version {version}"
    return f"helm pull {chart} --repo {repo} --version {version}"


def check_charts(cfg: PlatformConfig, root: Path = PROJECT_ROOT) -> list[Problem]:
    """Every chart a directory mirror must serve is there, at the pinned version; the monitoring chart's
    settings only with the monitoring stack (the add-ons' are checked with their modes)."""
    out: list[Problem] = []
    for key in ("values", "chartMirror"):
        if getattr(cfg.monitoring, "values" if key == "values" else "chart_mirror") and not cfg.monitoring.enabled:
            out.append(Problem(("monitoring", key), "only used when monitoring.enabled is true"))
    absent: dict[tuple[Loc, Path], list[str]] = {}
    for c in installed_charts(cfg):
        mirror = mirror_for(cfg, c.key)
        if not mirror:
            continue
        directory = mirror_directory(mirror, root)
        if directory is None:
            continue
        loc: Loc = (c.key, "chartMirror") if c.mirror_override else ("chartMirror",)
        chart_dir = directory / f"{c.chart}-{c.version}"
        chart_yaml = chart_dir / "Chart.yaml"
        if not directory.is_dir():
            absent.setdefault((loc, directory), []).append(f"{chart_dir.name}/")
            continue
        if not chart_yaml.is_file():
            out.append(
                Problem(
                    loc,
                    f"{chart_dir} is not an unpacked chart (no Chart.yaml): on a machine with access run "
                    f"`{pull_command(c.chart, c.version, c.default_repo)} --untar --untardir <tmp>`, then copy "
                    f"<tmp>/{c.chart} to {chart_dir} (docs/add-ons.md, Air-gapped clusters)",
                )
            )
            continue
        try:
            meta = yaml.safe_load(chart_yaml.read_text()) or {}
        except yaml.YAMLError as exc:
            out.append(Problem(loc, f"{chart_yaml} is not valid YAML: {exc}"))
            continue
        found = str(meta.get("version", ""))
        if meta.get("name") != c.chart or found.removeprefix("v") != c.version.removeprefix("v"):
            out.append(
                Problem(
                    loc,
                    f"{chart_yaml} is chart {meta.get('name')!r} version {found!r}, not {c.chart} {c.version}",
                )
            )
    for (loc, directory), names in absent.items():
        out.append(Problem(loc, f"directory {directory} does not exist (it should hold {', '.join(names)})"))
    return out
