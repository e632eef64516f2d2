#!/usr/bin/env python3
"""The upstream CRDs the render is validated against (``third_party/crds/``): which release of which project each
file is, where upstream publishes it, the release every stack pins, and a refresh for a new pin.

    python tools/crds.py refresh lws 0.11.0        # or: volcano 1.16.0, keda 2.21.0, prometheus-operator 0.94.0
    python tools/crds.py check                     # every file has its README row with its sha256, and back

``refresh`` downloads the release's files from the project's repository at its tag (raw.githubusercontent.com),
refuses anything that is not the CRD it should be, asks GitHub's API for the tag's commit, writes the files and
rewrites the table in ``third_party/crds/README.md``. Nothing else here touches the network; the tests run
``refresh`` against a server on 127.0.0.1.

A file is ``<project>-v<release>-<plural>.yaml``, byte for byte what upstream serves; LeaderWorkerSet's own CRD
is ``lws-v<release>.yaml`` (no plural: the e2e suite and the sandbox read it by that name).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.harness import CRDS, ROOT

RAW_URL = "https://raw.githubusercontent.com"
API_URL = "https://api.github.com"
README = CRDS / "README.md"
TABLE_BEGIN = "<!-- crds table: tools/crds.py refresh rewrites the rows below -->"
TABLE_END = "<!-- crds table end -->"
HEADER = (
    "| file | release | upstream file at the tag | commit of the tag | license | sha256 |",
    "|---|---|---|---|---|---|",
)
TIMEOUT_SECONDS = 60
# LeaderWorkerSet's CRDs are 1.2-1.5 MB each: the C loader reads them in a fraction of the pure-Python one's time.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NO_COMMIT = "not recorded"


@dataclass(frozen=True)
class CrdFile:
    """One CRD a release publishes: its plural (the file's suffix), its path in the repository at the tag, and
    the first release that has it."""

    plural: str
    group: str
    path: str
    since: str | None = None
    # LeaderWorkerSet's own CRD keeps the name the e2e suite and the sandbox read (no plural suffix).
    bare: bool = False


@dataclass(frozen=True)
class Project:
    key: str  # file prefix and the refresh command's name
    title: str
    repo: str  # owner/name on GitHub
    stack_key: str  # the stack's versions.* key that pins it (prometheus-operator: through the chart)
    files: tuple[CrdFile, ...]

    def file_name(self, crd: CrdFile, version: str) -> str:
        return f"{self.key}-v{version}.yaml" if crd.bare else f"{self.key}-v{version}-{crd.plural}.yaml"

    def files_of(self, version: str) -> list[CrdFile]:
        return [f for f in self.files if f.since is None or Version(version) >= Version(f.since)]

    def raw_url(self, crd: CrdFile, version: str, base: str = RAW_URL) -> str:
        return f"{base.rstrip('/')}/{self.repo}/v{version}/{crd.path}"

    def license_url(self, version: str) -> str:
        return f"https://github.com/{self.repo}/blob/v{version}/LICENSE"


PROJECTS: Mapping[str, Project] = {
    p.key: p
    for p in (
        Project(
            "lws",
            "LeaderWorkerSet",
            "kubernetes-sigs/lws",
            "lwsChart",
            (
                CrdFile(
                    "leaderworkersets",
                    "leaderworkerset.x-k8s.io",
                    "config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml",
                    bare=True,
                ),
                # KEP-766; checked at the tags: absent in v0.8.0, in v0.9.0; the role scaler from v0.10.0.
                CrdFile(
                    "disaggregatedsets",
                    "disaggregatedset.x-k8s.io",
                    "config/crd/bases/disaggregatedset.x-k8s.io_disaggregatedsets.yaml",
                    since="0.9.0",
                ),
                CrdFile(
                    "disaggregatedsetrolescalers",
                    "disaggregatedset.x-k8s.io",
                    "config/crd/bases/disaggregatedset.x-k8s.io_disaggregatedsetrolescalers.yaml",
                    since="0.10.0",
                ),
            ),
        ),
        Project(
            "volcano",
            "Volcano",
            "volcano-sh/volcano",
            "volcanoChart",
            tuple(
                CrdFile(plural, group, f"config/crd/volcano/bases/{group}_{plural}.yaml")
                for group in ("scheduling.volcano.sh",)
                for plural in ("queues", "podgroups")
            ),
        ),
        Project(
            "keda",
            "KEDA",
            "kedacore/keda",
            "kedaChart",
            (CrdFile("scaledobjects", "keda.sh", "config/crd/bases/keda.sh_scaledobjects.yaml"),),
        ),
        Project(
            "prom",
            "prometheus-operator",
            "prometheus-operator/prometheus-operator",
            "kubePrometheusStack",
            tuple(
                CrdFile(plural, group, f"example/prometheus-operator-crd/{group}_{plural}.yaml")
                for group in ("monitoring.coreos.com",)
                for plural in ("podmonitors", "servicemonitors", "prometheusrules")
            ),
        ),
    )
}
ALIASES = {"prometheus-operator": "prom", "leaderworkerset": "lws"}

# kube-prometheus-stack pins the operator through its chart: the chart's appVersion (Chart.yaml), whose CRDs its
# crds subchart carries (charts/crds/crds/crd-*.yaml name the operator's file at that tag).
KUBE_PROMETHEUS_STACK_OPERATOR: Mapping[str, str] = {"88.3.0": "0.93.0", "88.5.3": "0.93.1"}

# Every release a stack of this project can pin, with the reason it is here. tests/test_crds.py checks that the
# BOM, every stack file and the simulation's overrides pin only these, and that each has its files here.
SUPPORTED: Mapping[str, Mapping[str, str]] = {
    "lws": {
        "0.5.1": "the reference deployment's release",
        "0.7.0": "the first with gang scheduling (facts.compat FEATURES)",
        "0.10.0": "the BOM's",
    },
    "volcano": {
        "1.9.0": "the BOM's, the reference cluster's",
        "1.10.2": "prod's, the first line for Kubernetes 1.30",
        "1.15.1": "the newest release (Kubernetes 1.24-1.35)",
    },
    "keda": {"2.17.2": "prod's, the line for Kubernetes 1.30-1.32", "2.20.2": "the BOM's (1.33-1.35)"},
    "prom": {"0.93.0": "kube-prometheus-stack 88.3.0, the BOM's", "0.93.1": "kube-prometheus-stack 88.5.3"},
}


def project_of(name: str) -> Project:
    key = ALIASES.get(name, name)
    if key not in PROJECTS:
        raise KeyError(f"unknown project {name!r}: one of {', '.join([*PROJECTS, *ALIASES])}")
    return PROJECTS[key]


def release(text: str) -> str:
    """``v0.10.0`` or ``0.10.0`` -> ``0.10.0``; refuses what is not a release number."""
    try:
        return str(Version(text.strip().removeprefix("v")))
    except InvalidVersion as exc:
        raise ValueError(f"{text!r} is not a release version") from exc


def files_for(project: str, version: str, crd_dir: Path = CRDS) -> list[Path]:
    """The CRD files of one release, in the order of the project's table; FileNotFoundError naming the refresh
    command when any is missing."""
    p = project_of(project)
    version = release(version)
    paths = [crd_dir / p.file_name(f, version) for f in p.files_of(version)]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{crd_dir} has no {', '.join(missing)} ({p.title} {version}): run `python tools/crds.py refresh "
            f"{p.key} {version}` and commit what it writes"
        )
    return paths


def pinned(versions: Any) -> dict[str, str]:
    """Project -> release a stack's ``versions`` (the Versions model, or a mapping of its stack keys) pins;
    kube-prometheus-stack's chart maps to its operator (KeyError for a chart not in the table)."""
    from sglang_platform.facts import bom

    if versions is None:
        raw: dict[str, Any] = dict(bom.DEFAULTS)
    elif isinstance(versions, Mapping):
        raw = {**bom.DEFAULTS, **versions}
    else:
        raw = {**bom.DEFAULTS, **versions.model_dump(by_alias=True)}
    out: dict[str, str] = {}
    for p in PROJECTS.values():
        value = str(raw[p.stack_key])
        if p.key == "prom":
            if value not in KUBE_PROMETHEUS_STACK_OPERATOR:
                raise KeyError(
                    f"kube-prometheus-stack {value}: its prometheus-operator release is not in "
                    "tools/crds.py KUBE_PROMETHEUS_STACK_OPERATOR (the chart's appVersion)"
                )
            value = KUBE_PROMETHEUS_STACK_OPERATOR[value]
        out[p.key] = release(value)
    return out


# --- the README's table ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    file: str
    project: str
    version: str
    crd: CrdFile
    commit: str
    sha256: str

    def render(self) -> str:
        p = PROJECTS[self.project]
        url = p.raw_url(self.crd, self.version)
        commit = f"`{self.commit}`" if self.commit != NO_COMMIT else NO_COMMIT
        return (
            f"| `{self.file}` | {p.title} v{self.version} | [{p.repo} `{self.crd.path}`]({url}) | {commit} | "
            f"Apache-2.0 ([LICENSE]({p.license_url(self.version)})) | `{self.sha256}` |"
        )


_FILE = re.compile(r"^(?P<key>[a-z]+)-v(?P<version>\d+\.\d+\.\d+)(?:-(?P<plural>[a-z]+))?\.yaml$")


def identify(name: str) -> tuple[Project, str, CrdFile]:
    """The project, release and CRD a file name stands for (ValueError when it follows no project's naming)."""
    m = _FILE.match(name)
    if not m or m["key"] not in PROJECTS:
        raise ValueError(f"{name}: not <project>-v<release>[-<plural>].yaml of a known project")
    p = PROJECTS[m["key"]]
    for crd in p.files:
        if p.file_name(crd, m["version"]) == name:
            return p, m["version"], crd
    raise ValueError(f"{name}: {p.title} publishes no such CRD")


def parse_table(text: str) -> list[Row]:
    """The rows between the table markers: file, commit and sha256 are read, the rest follows from the file."""
    try:
        body = text.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0]
    except IndexError:
        raise ValueError(f"{README.name}: no table between {TABLE_BEGIN!r} and {TABLE_END!r}") from None
    rows = []
    for line in body.strip().splitlines():
        if line in HEADER:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(HEADER[0].strip("|").split("|")):
            raise ValueError(f"{README.name}: not a row of the table: {line!r}")
        name = cells[0].strip("`")
        p, version, crd = identify(name)
        rows.append(Row(name, p.key, version, crd, cells[3].strip("`"), cells[5].strip("`")))
    return rows


def render_table(rows: Iterable[Row]) -> str:
    def order(row: Row) -> tuple[int, Version, int]:
        return list(PROJECTS).index(row.project), Version(row.version), PROJECTS[row.project].files.index(row.crd)

    ordered = sorted(rows, key=order)
    return "\n".join([TABLE_BEGIN, *HEADER, *(r.render() for r in ordered), TABLE_END])


def rewrite_readme(text: str, rows: Iterable[Row]) -> str:
    head, rest = text.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    return head + render_table(rows) + tail


def documents(path: Path) -> list[Any]:
    """The YAML documents of a CRD file (empty ones dropped)."""
    return [d for d in yaml.load_all(path.read_text(), Loader=LOADER) if d]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check(crd_dir: Path = CRDS) -> list[str]:
    """What does not agree between the files and the README's table (empty: all is recorded)."""
    readme = crd_dir / README.name
    problems = []
    rows = parse_table(readme.read_text())
    listed = {r.file: r for r in rows}
    for path in sorted(crd_dir.glob("*.yaml")):
        row = listed.pop(path.name, None)
        if row is None:
            problems.append(f"{path.name}: no row in {readme.name}")
        elif row.sha256 != sha256(path):
            problems.append(f"{path.name}: sha256 {sha256(path)}, the table says {row.sha256}")
    problems += [f"{name}: in {readme.name}, but no such file" for name in listed]
    if readme.read_text() != rewrite_readme(readme.read_text(), rows):
        problems.append(f"{readme.name}: the table is not as `refresh` writes it (links, order)")
    return problems


# --- refresh ---------------------------------------------------------------------------------------------------


def _get(url: str, accept: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        return response.read()


def _is_the_crd(data: bytes, project: Project, crd: CrdFile) -> str | None:
    """Why ``data`` is not the CRD expected (None when it is)."""
    try:
        docs = [d for d in yaml.load_all(data.decode("utf-8"), Loader=LOADER) if d]
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        return f"not YAML ({exc.__class__.__name__})"
    if len(docs) != 1 or not isinstance(docs[0], dict) or docs[0].get("kind") != "CustomResourceDefinition":
        return "not a single CustomResourceDefinition"
    spec = docs[0].get("spec") or {}
    found = (spec.get("group"), (spec.get("names") or {}).get("plural"))
    if found != (crd.group, crd.plural):
        return f"defines {found[1]}.{found[0]}, not {crd.plural}.{crd.group}"
    return None


def refresh(
    project: str, version: str, crd_dir: Path = CRDS, raw_url: str = RAW_URL, api_url: str = API_URL
) -> list[Path]:
    """Fetch one release's CRDs from upstream into ``crd_dir`` and rewrite its README's rows for them. Every file
    is downloaded and checked before anything is written: a failure leaves the directory as it was."""
    p = project_of(project)
    version = release(version)
    fetched: dict[str, tuple[CrdFile, bytes]] = {}
    for crd in p.files_of(version):
        url = p.raw_url(crd, version, raw_url)
        try:
            data = _get(url)
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError(f"{url}: {exc}") from exc
        why = _is_the_crd(data, p, crd)
        if why is not None:
            raise RuntimeError(f"{url}: {why}; nothing written")
        fetched[p.file_name(crd, version)] = (crd, data)
    try:
        commit = _get(f"{api_url.rstrip('/')}/repos/{p.repo}/commits/v{version}", "application/vnd.github.sha")
        tag_commit = commit.decode().strip()
        if not re.fullmatch(r"[0-9a-f]{40}", tag_commit):
            tag_commit = NO_COMMIT
    except (urllib.error.URLError, OSError):
        # The files are what matters (their sha256 is recorded); the commit is provenance a later refresh can add.
        tag_commit = NO_COMMIT
    readme = crd_dir / README.name
    rows = {r.file: r for r in parse_table(readme.read_text())}
    written = []
    for name, (crd, data) in fetched.items():
        path = crd_dir / name
        path.write_bytes(data)
        written.append(path)
        rows[name] = Row(name, p.key, version, crd, tag_commit, hashlib.sha256(data).hexdigest())
    readme.write_text(rewrite_readme(readme.read_text(), rows.values()))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fresh = sub.add_parser("refresh", help="fetch a release's CRDs from upstream and record them")
    fresh.add_argument("project", help=", ".join([*PROJECTS, *ALIASES]))
    fresh.add_argument("version", help="the release, e.g. 0.11.0 or v0.11.0")
    fresh.add_argument("--raw-url", default=RAW_URL, help="where the repositories' files are served (a mirror)")
    fresh.add_argument("--api-url", default=API_URL, help="GitHub's API, for the tag's commit")
    fresh.add_argument("--dir", type=Path, default=CRDS, help="the CRD directory (third_party/crds)")
    checker = sub.add_parser("check", help="the files and the README's table agree")
    checker.add_argument("--dir", type=Path, default=CRDS)
    args = parser.parse_args(argv)
    if args.command == "check":
        problems = check(args.dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    try:
        written = refresh(args.project, args.version, args.dir, args.raw_url, args.api_url)
    except (KeyError, ValueError, RuntimeError) as exc:
        print(f"refresh failed: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    print(f"rewrote {(args.dir / README.name)}; add the release to SUPPORTED in tools/crds.py if a stack pins it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
