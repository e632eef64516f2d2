"""The sandbox's binaries: one pinned list, and how each is obtained, verified and cached.

    python tools/sandbox.py binaries list            # the pins, and where each would come from
    python tools/sandbox.py binaries fetch [NAME...] # download, verify and cache (official releases)
    python tools/sandbox.py binaries check           # which binaries the sandbox would use, and their versions

A binary is taken, in this order, from ``ENGINE_BIN`` (one directory, or several separated by ``:``; a directory
that already holds binaries of these versions, e.g. an offline build), then from the project's cache, which
``fetch`` fills. ``fetch`` downloads the official release where upstream publishes one and checks it against a
sha256: the one pinned here, or the one upstream publishes beside the download (its checksum file). A download
whose digest differs is refused and nothing is cached. Where upstream publishes only source (LeaderWorkerSet,
Volcano), ``fetch`` builds the pinned Go module with ``go build`` (the Go checksum database verifies it).

``SGLANG_SANDBOX_DOWNLOAD_MIRROR=URL`` replaces the scheme and host of every download (an internal mirror of the
release sites, or a test's local server).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

KUBERNETES = "v1.36.3"
PULUMI = "v3.276.0"
ETCD = "v3.6.8"
PULUMI_HOSTS = "v3.260.0"
PULUMI_YAML = "v1.38.1"

MIRROR_ENV = "SGLANG_SANDBOX_DOWNLOAD_MIRROR"
# Download size cap: the largest binary here is ~200 MB unpacked; nothing legitimate needs more.
MAX_DOWNLOAD_BYTES = 400 * 1024 * 1024


@dataclass(frozen=True)
class Pin:
    """One binary of the sandbox: what it is, the release, and how a user obtains it."""

    name: str
    version: str
    # Which component of the sandbox needs it (a user running only part of it needs only that part).
    role: str
    # The official release download: a file, or an archive holding the binary at ``member``.
    url: str | None = None
    member: str | None = None
    # The download's sha256, pinned here; else read from ``sha256_url`` (upstream's checksum file, whose
    # line for the download's file name, or whose only hash, is taken).
    sha256: str | None = None
    sha256_url: str | None = None
    # Where upstream publishes no binary: ``go build`` of this package of the pinned module.
    go_module: str | None = None
    go_package: str | None = None
    go_ldflags: str = "-s -w"
    # How to ask the binary its version, and the text its answer must contain.
    version_args: tuple[str, ...] = ("--version",)
    version_text: str | None = None

    @property
    def source(self) -> str:
        if self.url:
            digest = f"sha256 {self.sha256}" if self.sha256 else f"sha256 from {self.sha256_url}"
            where = f"{self.url}" + (f" ({self.member})" if self.member else "")
            return f"{where}, {digest}"
        return f"go build {self.go_module}@{self.version} {self.go_package}"


def _k8s(name: str, role: str) -> Pin:
    base = f"https://dl.k8s.io/release/{KUBERNETES}/bin/linux/amd64/{name}"
    if name == "kubectl":
        version: tuple[tuple[str, ...], str] = (("version", "--client"), f"Client Version: {KUBERNETES}")
    else:
        version = (("--version",), f"Kubernetes {KUBERNETES}")
    return Pin(
        name, KUBERNETES, role, url=base, sha256_url=f"{base}.sha256", version_args=version[0], version_text=version[1]
    )


def _pulumi(
    name: str, role: str, version_args: tuple[str, ...] = (), text: str | None = None, release: str = PULUMI
) -> Pin:
    archive = f"pulumi-{release}-linux-x64.tar.gz"
    return Pin(
        name,
        release,
        role,
        url=f"https://get.pulumi.com/releases/sdk/{archive}",
        member=f"pulumi/{name}",
        sha256_url=f"https://get.pulumi.com/releases/sdk/pulumi-{release.lstrip('v')}-checksums.txt",
        version_args=version_args,
        version_text=text,
    )


# The one pinned list. Versions move together with what the simulation's tests were run against; bump them here
# (and the offline build that fills ENGINE_BIN on machines without release downloads).
PINS: tuple[Pin, ...] = (
    Pin(
        "etcd",
        ETCD,
        "cluster",
        url=f"https://github.com/etcd-io/etcd/releases/download/{ETCD}/etcd-{ETCD}-linux-amd64.tar.gz",
        member=f"etcd-{ETCD}-linux-amd64/etcd",
        sha256_url=f"https://github.com/etcd-io/etcd/releases/download/{ETCD}/SHA256SUMS",
        version_text=f"etcd Version: {ETCD.lstrip('v')}",
    ),
    _k8s("kube-apiserver", "cluster"),
    _k8s("kubectl", "cluster"),
    _k8s("kube-controller-manager", "cluster"),
    _k8s("kube-scheduler", "cluster"),
    _k8s("kube-proxy", "network"),
    Pin(
        "coredns",
        "v1.15.0",
        "network",
        url="https://github.com/coredns/coredns/releases/download/v1.15.0/coredns_1.15.0_linux_amd64.tgz",
        member="coredns",
        sha256_url="https://github.com/coredns/coredns/releases/download/v1.15.0/coredns_1.15.0_linux_amd64.tgz.sha256",
        version_args=("-version",),
        version_text="CoreDNS-1.15.0",
    ),
    Pin(
        "kwok",
        "v0.8.0",
        "cluster",
        # kwok's releases publish binaries without checksums: build the module instead (sum.golang.org checks it).
        go_module="sigs.k8s.io/kwok",
        go_package="./cmd/kwok",
        version_text="v0.8.0",
    ),
    Pin(
        "lws-controller",
        "v0.10.0",
        "cluster",
        go_module="sigs.k8s.io/lws",
        go_package="./cmd",
        go_ldflags="-s -w -X sigs.k8s.io/lws/pkg/version.GitVersion=v0.10.0",
        version_args=(),
        version_text=None,
    ),
    Pin(
        "vc-scheduler",
        "v1.10.0",
        "gang",
        # Volcano publishes images only. The Go proxy refuses v1.9.0 (the reference's chart), so the gang test runs
        # the nearest release; it reads the same scheduling.volcano.sh/v1beta1 PodGroups and Queues.
        go_module="volcano.sh/volcano",
        go_package="./cmd/scheduler",
        go_ldflags="-s -w -X volcano.sh/volcano/pkg/version.Version=v1.10.0",
    ),
    _pulumi("pulumi", "engine", ("version",), PULUMI),
    _pulumi("pulumi-language-python", "engine"),
    _pulumi("pulumi-language-python-exec", "engine"),
    Pin(
        "pulumi-resource-kubernetes",
        "v4.34.2",
        "engine",
        url="https://github.com/pulumi/pulumi-kubernetes/releases/download/v4.34.2/"
        "pulumi-resource-kubernetes-v4.34.2-linux-amd64.tar.gz",
        member="pulumi-resource-kubernetes",
        sha256_url="https://github.com/pulumi/pulumi-kubernetes/releases/download/v4.34.2/"
        "pulumi-kubernetes_4.34.2_checksums.txt",
        # A provider plugin has no version flag: the engine asks it over gRPC.
        version_text=None,
    ),
    # The language hosts of programs in TypeScript, Go and YAML that use the component package (provider/,
    # tests/e2e/test_consumers.py); the official CLI release ships them. The Node.js and Go hosts are those of
    # v3.260.0, the release the offline build's sources are (Pulumi's Go proxy refuses both host modules at every
    # version, v3.276.0 included); the engine of v3.276.0 runs them. The YAML host is pulumi-yaml's own release
    # (a CLI release bundles one): v1.38.1 is the one run here; v1.25.0, the newest that proxy lists, lacks what
    # `pulumi package add` asks of it.
    _pulumi("pulumi-language-nodejs", "langs", ("-version",), PULUMI_HOSTS.lstrip("v"), PULUMI_HOSTS),
    _pulumi("pulumi-language-go", "langs", ("-version",), PULUMI_HOSTS.lstrip("v"), PULUMI_HOSTS),
    Pin(
        "pulumi-language-yaml",
        PULUMI_YAML,
        "langs",
        url=f"https://github.com/pulumi/pulumi-yaml/releases/download/{PULUMI_YAML}/"
        f"pulumi-language-yaml-{PULUMI_YAML}-linux-amd64.tar.gz",
        member="pulumi-language-yaml",
        sha256_url=f"https://github.com/pulumi/pulumi-yaml/releases/download/{PULUMI_YAML}/"
        f"pulumi-yaml-{PULUMI_YAML.lstrip('v')}-checksums.txt",
        # It has no version flag (it answers the engine over gRPC).
        version_text=None,
    ),
)
BY_NAME = {p.name: p for p in PINS}
# What `tools/sandbox.py start` and the end-to-end suite need.
CLUSTER = tuple(p.name for p in PINS if p.role == "cluster")
# What `start --serve` adds: Services and cluster DNS for the pods that really run.
NETWORK = tuple(p.name for p in PINS if p.role == "network")
ENGINE = tuple(p.name for p in PINS if p.role == "engine")
# What programs in other languages add (the component package's consumers).
LANGS = tuple(p.name for p in PINS if p.role == "langs")


class FetchError(Exception):
    """A binary could not be obtained or verified (the message says which and why)."""


def cache_root() -> Path:
    base = os.environ.get("SGLANG_PLATFORM_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(base) / "sglang-platform" / "sandbox"


def pin_dir(pin: Pin, root: Path | None = None) -> Path:
    """Where ``fetch`` keeps one pinned binary: a directory per name and version, so a bump fetches anew."""
    return (root or cache_root()) / f"{pin.name}-{pin.version}"


def _search_dirs() -> list[Path]:
    return [Path(d) for d in (os.environ.get("ENGINE_BIN") or "").split(os.pathsep) if d]


def locate(name: str, root: Path | None = None) -> Path | None:
    """The binary the sandbox runs for ``name``: from ENGINE_BIN, else from the project's cache."""
    for d in _search_dirs():
        if (d / name).is_file() and os.access(d / name, os.X_OK):
            return (d / name).resolve()
    cached = pin_dir(BY_NAME[name], root) / name
    return cached if cached.is_file() else None


def missing(names: Iterable[str], root: Path | None = None) -> list[str]:
    return [n for n in names if locate(n, root) is None]


def bin_dir(names: Iterable[str], root: Path | None = None) -> Path:
    """One directory holding (links to) every binary named: what PATH and the daemons use."""
    names = list(names)
    absent = missing(names, root)
    if absent:
        raise FetchError(
            f"sandbox binaries missing: {', '.join(absent)}. Run `python tools/sandbox.py binaries fetch` "
            "(official releases, verified), or set ENGINE_BIN to a directory that holds them"
        )
    located = {n: p for n in names if (p := locate(n, root)) is not None}
    key = hashlib.sha256(json.dumps({n: str(p) for n, p in sorted(located.items())}).encode()).hexdigest()[:12]
    out = (root or cache_root()) / f"bin-{key}"
    out.mkdir(parents=True, exist_ok=True)
    for n, path in located.items():
        link = out / n
        if not (link.is_symlink() and Path(os.readlink(link)) == path):
            tmp = out / f".{n}.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(path)
            tmp.replace(link)
    return out


# --- fetching ------------------------------------------------------------------------------------------------


def _mirrored(url: str) -> str:
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return mirror.rstrip("/") + "/" + parts.netloc + parts.path


def _download(url: str) -> bytes:
    url = _mirrored(url)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read(MAX_DOWNLOAD_BYTES + 1)
    except OSError as exc:
        raise FetchError(f"could not download {url}: {exc}") from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise FetchError(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes: refused")
    return data


def expected_sha256(pin: Pin) -> str:
    if pin.sha256:
        return pin.sha256.lower()
    if not pin.sha256_url or not pin.url:
        raise FetchError(
            f"{pin.name} {pin.version}: no pinned sha256 and no checksum file: refusing an unchecked download"
        )
    listing = _download(pin.sha256_url).decode(errors="replace")
    return checksum_from_listing(listing, Path(urllib.parse.urlsplit(pin.url).path).name, pin.sha256_url)


def checksum_from_listing(listing: str, filename: str, origin: str) -> str:
    """The sha256 of ``filename`` in a checksum file: ``HASH  NAME`` lines (sha256sum's format), or a file that
    holds one bare hash (dl.k8s.io's ``NAME.sha256``)."""
    hashes = []
    for line in listing.splitlines():
        words = line.split()
        if not words:
            continue
        digest = words[0].lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            continue
        if len(words) == 1:
            hashes.append(digest)
        elif words[-1].lstrip("*").rsplit("/", 1)[-1] == filename:
            return digest
    if len(hashes) == 1:
        return hashes[0]
    raise FetchError(f"{origin} lists no sha256 for {filename}")


def fetch(pin: Pin, root: Path | None = None) -> Path:
    """Obtain one pinned binary into the cache (a no-op when it is there) and return its path."""
    dest_dir = pin_dir(pin, root)
    dest = dest_dir / pin.name
    if dest.is_file():
        return dest
    if pin.url:
        data = _download(pin.url)
        want = expected_sha256(pin)
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            raise FetchError(
                f"{pin.name} {pin.version}: sha256 of {_mirrored(pin.url)} is {got}, expected {want}: refused, "
                "nothing cached"
            )
        content = _extract(data, pin.member) if pin.member else data
        _install(content, dest_dir, pin.name)
    else:
        _go_build(pin, dest_dir)
    return dest


def _extract(archive: bytes, member: str) -> bytes:
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            entry = tar.getmember(member)
            handle = tar.extractfile(entry)
            if handle is None:
                raise KeyError(member)
            return handle.read()
    except (tarfile.TarError, KeyError) as exc:
        raise FetchError(f"the archive holds no {member}: {exc}") from None


def _install(content: bytes, dest_dir: Path, name: str) -> None:
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest_dir, delete=False, prefix=f".{name}.") as tmp:
        tmp.write(content)
    path = Path(tmp.name)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    path.replace(dest_dir / name)


def _go_build(pin: Pin, dest_dir: Path) -> None:
    if not shutil.which("go"):
        raise FetchError(f"{pin.name} {pin.version} is built from {pin.go_module}: install Go >= 1.26")
    env = os.environ | {"GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly", "CGO_ENABLED": "0"}
    try:
        info = subprocess.run(
            ["go", "mod", "download", "-json", f"{pin.go_module}@{pin.version}"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        src = Path(json.loads(info.stdout)["Dir"])
        with tempfile.TemporaryDirectory() as work:
            tree = Path(work) / "src"
            shutil.copytree(src, tree)
            for p in tree.rglob("*"):
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
            dest_dir.mkdir(parents=True, exist_ok=True)
            out = dest_dir / f".{pin.name}.tmp"
            subprocess.run(
                ["go", "build", "-trimpath", "-ldflags", pin.go_ldflags, "-o", str(out), pin.go_package or "."],
                cwd=tree,
                check=True,
                env=env,
                capture_output=True,
                text=True,
            )
            out.replace(dest_dir / pin.name)
    except subprocess.CalledProcessError as exc:
        raise FetchError(f"go build of {pin.go_module}@{pin.version} failed:\n{exc.stderr[-3000:]}") from None


def version_of(pin: Pin, path: Path) -> str:
    if not pin.version_text:
        return "(no version flag)"
    try:
        out = subprocess.run([str(path), *pin.version_args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(does not run: {exc})"
    return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr).strip() else "(silent)"


def check(names: Iterable[str] = tuple(BY_NAME)) -> list[str]:
    """Problems with the binaries the sandbox would use: absent, or not the pinned release."""
    problems = []
    for name in names:
        pin = BY_NAME[name]
        path = locate(name)
        if path is None:
            problems.append(f"{name}: absent (fetch it, or set ENGINE_BIN)")
            continue
        if pin.version_text:
            answer = version_of(pin, path)
            if pin.version_text not in answer:
                problems.append(f"{name} at {path} says {answer!r}; the pin is {pin.version} ({pin.version_text!r})")
    return problems


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "list"
    names = argv[1:] or list(BY_NAME)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        print(f"unknown binaries: {', '.join(unknown)}; pinned: {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    if command == "list":
        for pin in PINS:
            print(f"{pin.name:30} {pin.version:9} {pin.role:8} {pin.source}")
        return 0
    if command == "fetch":
        failed = 0
        for name in names:
            try:
                print(f"{name}: {fetch(BY_NAME[name])}")
            except FetchError as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                failed += 1
        return 1 if failed else 0
    if command == "check":
        for name in names:
            print(f"{name:30} {locate(name) or 'ABSENT'}")
        problems = check(names)
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
        return 1 if problems else 0
    print(f"unknown command {command!r}: list, fetch, check", file=sys.stderr)
    return 2


BEGIN = "<!-- binaries: generated by tools/simulation/binaries.py table() -->"
END = "<!-- /binaries -->"


def table() -> str:
    """The pinned list as docs/sandbox.md shows it (a test keeps the two equal)."""
    rows = [BEGIN, "| binary | version | used for | how a user obtains it |", "|---|---|---|---|"]
    for pin in PINS:
        if pin.url:
            check = "sha256 pinned here" if pin.sha256 else f"sha256 from [upstream's checksums]({pin.sha256_url})"
            how = f"[release download]({pin.url})" + (f", `{pin.member}`" if pin.member else "") + f"; {check}"
        else:
            how = f"`go build` of `{pin.go_module}@{pin.version}` (`{pin.go_package}`), checked by the Go checksum db"
        rows.append(f"| `{pin.name}` | {pin.version} | {pin.role} | {how} |")
    return "\n".join([*rows, END])
