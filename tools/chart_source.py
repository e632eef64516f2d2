#!/usr/bin/env python3
"""Helm charts for the tests that read a chart's contents (values keys, subcharts, templates): one directory per
pinned chart, ``<chart>-<version>/`` as ``helm pull --untar`` leaves it, subcharts unpacked under ``charts/``.

    python tools/chart_source.py pull                    # every chart the BOM and the committed stacks pin
    python tools/chart_source.py pull keda@2.17.2 ...    # these only
    python tools/chart_source.py list                    # where each pinned chart comes from here

Where the tests find them: ``SGLANG_PLATFORM_CHART_MIRROR=DIR`` (a directory of unpacked charts, the layout the
program's ``chartMirror`` takes, render/charts.py) when set, and then only there; else ``.cache/charts/``, which
``pull`` fills from each chart's own repository (facts/bom.py): a Helm repository's ``index.yaml`` and the
archive it lists (its digest checked), or an OCI registry through the registry API (manifest, then the chart
layer, its digest checked; anonymous bearer tokens as registry.k8s.io hands them out). Nothing fetches at test
time.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sglang_platform.facts import bom
from tools.harness import ROOT
from tools.setup_tests import NEEDS, Capability

MIRROR_ENV = "SGLANG_PLATFORM_CHART_MIRROR"
CACHE = ROOT / ".cache" / "charts"
# What fills the cache (tools/setup_tests.py runs `pull` for it).
COMMAND = NEEDS[Capability.CHARTS].command
TIMEOUT_SECONDS = 120
HELM_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"

# versions.* key -> (chart, its repository): the program's own resolution (render/charts.py installed_charts).
CHARTS: Mapping[str, tuple[str, str]] = {
    "gpuOperatorChart": ("gpu-operator", bom.GPU_OPERATOR_REPO),
    "volcanoChart": ("volcano", bom.VOLCANO_REPO),
    "lwsChart": ("lws", bom.LWS_REPO),
    "kedaChart": ("keda", bom.KEDA_REPO),
    "kubePrometheusStack": ("kube-prometheus-stack", bom.KUBE_PROMETHEUS_STACK_REPO),
}


@dataclass(frozen=True)
class Chart:
    name: str
    version: str  # as pinned (gpu-operator's keeps its v), which is also the directory's suffix
    repo: str  # https://... Helm repository or oci://host/path

    @property
    def dir_name(self) -> str:
        return f"{self.name}-{self.version}"

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


def pinned_charts() -> list[Chart]:
    """Every chart a committed stack installs or can be given: the BOM's, each stack file's pins (Pulumi.*.yaml,
    examples/stacks), the simulation's overrides (tools/sim_stacks.py), and the Volcano, KEDA and
    kube-prometheus-stack releases whose CRDs the project keeps (tools/crds.py, which tests/test_crds.py compares
    with the charts'), in a stable order."""
    from tools import crds, sim_stacks
    from tools.harness import EXAMPLE_STACKS

    pins: list[Mapping[str, Any]] = [bom.DEFAULTS, *bom.SETS.values()]
    pins += [{"volcanoChart": v} for v in crds.SUPPORTED["volcano"]]
    pins += [{"kedaChart": v} for v in crds.SUPPORTED["keda"]]
    pins += [{"kubePrometheusStack": v} for v in crds.KUBE_PROMETHEUS_STACK_OPERATOR]
    for path in sorted([*ROOT.glob("Pulumi.*.yaml"), *EXAMPLE_STACKS.glob("Pulumi.*.yaml")]):
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        pins.append(config.get("sglang-platform:versions") or {})
    for key, value, _, _ in sim_stacks.OVERRIDES:
        if key.startswith("versions.") and key != "versions.kubernetes":
            pins.append({key.split(".", 1)[1]: value})
    out: dict[tuple[str, str], Chart] = {}
    for versions in pins:
        for key, (name, repo) in CHARTS.items():
            if key in versions:
                chart = Chart(name, str(versions[key]), repo)
                out.setdefault((chart.name, chart.version), chart)
    return sorted(out.values(), key=lambda c: (c.name, Version(c.version.removeprefix("v"))))


def source_dir() -> tuple[Path, str]:
    """The directory the tests read charts from, and what it is (for messages)."""
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return Path(mirror).expanduser().resolve(), f"{MIRROR_ENV}={mirror}"
    return CACHE, f"the project's chart cache ({CACHE.relative_to(ROOT)}/)"


def chart_dir(name: str, version: str) -> Path | None:
    """The unpacked chart, or None when the chart source lacks it."""
    base, _ = source_dir()
    path = base / f"{name}-{version}"
    return path if (path / "Chart.yaml").is_file() else None


def missing(names: Iterable[str]) -> str:
    """Why charts are unavailable, and the command that provides them (never a path outside the project)."""
    _, what = source_dir()
    fix = f"run `{COMMAND}`" + ("" if os.environ.get(MIRROR_ENV) else f", or set {MIRROR_ENV} to a chart mirror")
    return f"{', '.join(names)} not in {what}: {fix}"


# --- pull ------------------------------------------------------------------------------------------------------


class _SameHostAuth(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but carry an Authorization header only to the host it was meant for: registries send blob
    downloads on to storage that refuses (or must not see) the registry's token."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_SameHostAuth)


@dataclass
class Response:
    status: int
    url: str  # after redirects
    headers: Mapping[str, str]  # names in lower case
    body: bytes


def _get(url: str, headers: Mapping[str, str] | None = None) -> Response:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as r:
            return Response(r.status, r.url, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.url or url, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


def _ok(response: Response, what: str) -> bytes:
    if response.status != 200:
        raise RuntimeError(f"{what}: HTTP {response.status} from {response.url}")
    return response.body


def _same_version(a: str, b: str) -> bool:
    return a.removeprefix("v") == b.removeprefix("v")


def _from_helm_repo(chart: Chart) -> bytes:
    index_url = chart.repo.rstrip("/") + "/index.yaml"
    index = yaml.safe_load(_ok(_get(index_url), f"{chart}: index")) or {}
    entries = [
        e for e in (index.get("entries") or {}).get(chart.name) or [] if _same_version(str(e["version"]), chart.version)
    ]
    if not entries:
        raise RuntimeError(f"{chart}: {index_url} lists no version {chart.version} of {chart.name}")
    entry = entries[0]
    url = urllib.parse.urljoin(chart.repo.rstrip("/") + "/", entry["urls"][0])
    data = _ok(_get(url), f"{chart}: archive")
    digest = entry.get("digest")
    if digest and hashlib.sha256(data).hexdigest() != digest:
        raise RuntimeError(f"{chart}: {url} has sha256 {hashlib.sha256(data).hexdigest()}, the index says {digest}")
    return data


def _bearer(challenge: str) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` challenge."""
    if not challenge.lower().startswith("bearer "):
        return {}
    return dict(re.findall(r'(\w+)="([^"]*)"', challenge))


def _registry_get(url: str, accept: str | None, token: dict[str, str]) -> Response:
    """GET from an OCI registry, answering a bearer challenge with an anonymous token (kept in ``token`` for the
    next request to the same realm)."""
    headers = {"Accept": accept} if accept else {}
    if "value" in token:
        headers["Authorization"] = f"Bearer {token['value']}"
    response = _get(url, headers)
    challenge = _bearer(response.headers.get("www-authenticate", ""))
    if response.status == 401 and challenge.get("realm"):
        query = urllib.parse.urlencode({k: v for k, v in challenge.items() if k in ("service", "scope")})
        issued = json.loads(_ok(_get(f"{challenge['realm']}?{query}"), f"token from {challenge['realm']}"))
        token["value"] = issued.get("token") or issued.get("access_token") or ""
        # Retry where the registry sent us: a redirect (registry.k8s.io to its backend) may have changed the host.
        response = _get(response.url, {**headers, "Authorization": f"Bearer {token['value']}"})
    return response


def _from_oci(chart: Chart, plain_http: bool) -> bytes:
    parsed = urllib.parse.urlsplit(chart.repo)
    base = f"{'http' if plain_http else 'https'}://{parsed.netloc}/v2{parsed.path.rstrip('/')}/{chart.name}"
    token: dict[str, str] = {}
    tags = [chart.version] + ([f"v{chart.version}"] if not chart.version.startswith("v") else [chart.version[1:]])
    for tag in tags:
        response = _registry_get(f"{base}/manifests/{tag}", MANIFEST_TYPES, token)
        if response.status != 404:
            break
    manifest = json.loads(_ok(response, f"{chart}: manifest"))
    layers = [layer for layer in manifest.get("layers") or [] if layer.get("mediaType") == HELM_LAYER]
    if len(layers) != 1:
        raise RuntimeError(f"{chart}: the manifest at {response.url} has no single Helm chart layer")
    digest = layers[0]["digest"]
    blob_url = response.url.rsplit("/manifests/", 1)[0] + f"/blobs/{digest}"
    data = _ok(_registry_get(blob_url, None, token), f"{chart}: chart layer")
    algorithm, _, expected = digest.partition(":")
    if algorithm != "sha256" or hashlib.sha256(data).hexdigest() != expected:
        raise RuntimeError(f"{chart}: the layer from {blob_url} does not match its digest {digest}")
    return data


def _unpack(data: bytes, into: Path) -> None:
    """Unpack a chart archive (its one top directory) into ``into``, each subchart archive under charts/ unpacked
    in place as Helm would read it."""
    with tempfile.TemporaryDirectory(dir=into.parent) as tmp:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        (top,) = Path(tmp).iterdir()
        for archive in sorted((top / "charts").glob("*.tgz")):
            with tarfile.open(archive, mode="r:gz") as tar:
                tar.extractall(archive.parent, filter="data")
            archive.unlink()
        if into.exists():
            shutil.rmtree(into)
        top.rename(into)


def pull_one(chart: Chart, dest: Path = CACHE, plain_http: bool = False) -> Path:
    """Download one chart from its repository and unpack it as ``dest/<chart>-<version>/``."""
    data = _from_oci(chart, plain_http) if chart.repo.startswith("oci://") else _from_helm_repo(chart)
    dest.mkdir(parents=True, exist_ok=True)
    into = dest / chart.dir_name
    _unpack(data, into)
    meta = yaml.safe_load((into / "Chart.yaml").read_text()) or {}
    if meta.get("name") != chart.name or not _same_version(str(meta.get("version")), chart.version):
        shutil.rmtree(into)
        raise RuntimeError(f"{chart}: the archive holds {meta.get('name')} {meta.get('version')}")
    return into


def pull(charts: Iterable[Chart], dest: Path = CACHE, plain_http: bool = False) -> list[str]:
    """Pull each chart not already in ``dest``; the problems, one per chart that could not be pulled."""
    problems = []
    for chart in charts:
        if (dest / chart.dir_name / "Chart.yaml").is_file():
            continue
        try:
            path = pull_one(chart, dest, plain_http)
            print(f"pulled {chart} from {chart.repo} into {path}")
        except (RuntimeError, OSError, ValueError, KeyError, tarfile.TarError, yaml.YAMLError) as exc:
            problems.append(f"{chart} from {chart.repo}: {exc}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("pull", help="fill the chart cache from the charts' repositories")
    get.add_argument("charts", nargs="*", help="NAME@VERSION (default: every pinned chart)")
    get.add_argument("--dest", type=Path, default=CACHE)
    sub.add_parser("list", help="every pinned chart and where the tests find it")
    args = parser.parse_args(argv)
    pinned = pinned_charts()
    if args.command == "list":
        for chart in pinned:
            print(f"{chart}\t{chart_dir(chart.name, chart.version) or 'missing: ' + COMMAND}")
        return 0
    chosen = pinned
    if args.charts:
        by_key = {str(c): c for c in pinned}
        unknown = [c for c in args.charts if c not in by_key]
        if unknown:
            print(f"not pinned by the project: {', '.join(unknown)} (pinned: {', '.join(by_key)})", file=sys.stderr)
            return 2
        chosen = [by_key[c] for c in args.charts]
    problems = pull(chosen, args.dest)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
