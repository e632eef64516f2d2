"""Builds the simulation's Go binaries from their Go modules: the network's (kube-proxy, CoreDNS), the monitoring
stack's (Prometheus, Alertmanager, the Prometheus Operator and its config reloader, kube-state-metrics) and KEDA's
(operator, metrics API server).

    python -m tools.simulation.gobuild BIN_DIR [NAME ...]     (every recipe when none is named; a role, e.g.
                                                              `monitoring`, names its binaries)
    python -m tools.simulation.gobuild --stamp [NAME ...]     (the recipe stamp, for a cache key)

Each binary's recipe is a Go module of the project, ``tools/simulation/go/<name>/`` (go.mod, go.sum, tools.go),
whose go.sum is complete: the build runs with ``-mod=readonly`` and changes nothing in the repository. It builds in
a scratch copy, so a checkout that is read-only, or shared by concurrent builds, is never written to.

- kube-proxy is ``k8s.io/kubernetes/cmd/kube-proxy`` of the simulation's Kubernetes release, required with the
  staging modules replaced by their tag of the same release. The module selects the same version of every module
  the other Kubernetes binaries of the simulation are built from, with the same flags (``-trimpath -pgo=off``,
  ``CGO_ENABLED=0``): their packages come from the Go build cache, and only kube-proxy's own (nftables,
  iptables, ipvs, netlink) compile.
- CoreDNS is ``github.com/coredns/coredns`` (its main package, default plugin set, ``kubernetes`` included). The
  module requires CoreDNS alone, so the build list is CoreDNS's own go.mod: the build ``go install
  github.com/coredns/coredns@<version>`` makes.
- The monitoring stack is one module (``go/monitoring``) for the five binaries of the releases
  kube-prometheus-stack 88.5.3 runs: they share client-go and the rest of k8s.io (v0.36.3, like the
  simulation's Kubernetes), prometheus/common, gRPC and OpenTelemetry, which compile once. Each dependency is at
  the highest version any of the five requires (Go's minimal version selection): patch and minor steps above what
  one of them requires alone (Prometheus itself asks for k8s.io v0.35.3), listed by the tests. Prometheus is built
  with upstream's build tags that keep only the Kubernetes service discovery (``remove_all_sd,
  enable_kubernetes_sd``: the operator generates nothing else), which leaves out the cloud SDKs. Alertmanager's
  web UI is compiled by npm at release time and is not in its Go module; the build gives it a one-page stand-in
  (``OVERLAYS``), its API is the release's.
- KEDA is its own module (``go/keda``): its go.mod pins k8s.io v0.35.5 and controller-runtime v0.23.3 with
  replace directives, repeated there, so the build list is KEDA's own.

A binary already in BIN_DIR with a marker (``.built-<name>``) holding its recipe stamp is not built again; any change
of its recipe (its module folder, its entry here, the build procedure's ``BUILD_FORMAT``) builds it again, and
nothing else: each binary has its own stamp, so a bump of KEDA leaves Prometheus cached. Needs Go >= 1.26
(``GOTOOLCHAIN=local``: the build uses the installed Go, never downloads one) and the Go module proxy (GOPROXY) for
modules not yet in the module cache; nothing else is downloaded.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = HERE / "go"

# The simulation's Kubernetes release: the API server and controllers run this one, and kube-proxy follows it.
KUBE_VERSION = "v1.36.3"
# The newest CoreDNS release the Go module proxy lists (`go list -m -versions github.com/coredns/coredns`).
COREDNS_VERSION = "v1.15.0"
# kube-prometheus-stack 88.5.3's images (values.yaml; its Chart.yaml appVersion is the operator's) and its
# kube-state-metrics subchart's appVersion.
PROMETHEUS_VERSION = "v3.14.0"
# Prometheus 3.x.y is tagged v0.3xx.y for Go (its go.mod's module has no /v3).
PROMETHEUS_MODULE_VERSION = "v0.314.0"
ALERTMANAGER_VERSION = "v0.34.0"
PROMETHEUS_OPERATOR_VERSION = "v0.93.1"
PROMETHEUS_OPERATOR_COMMIT = "51cc33a31bf3bd83dd22b1ae6efaf26e199194d9"  # proxy.golang.org's .info of the tag
KUBE_STATE_METRICS_VERSION = "v2.20.0"
# KEDA of the BOM (config/bom.py KEDA_CHART; the chart's appVersion is the same).
KEDA_VERSION = "v2.20.2"
# The build procedure's version: part of every stamp, bumped when build() changes how a binary is made.
BUILD_FORMAT = "2"
# The oldest Go these go.mod files accept (all say `go 1.26.0`); GOTOOLCHAIN=local turns an older one into an
# error instead of a toolchain download.
MIN_GO = (1, 26)


def default_bin_dir() -> Path:
    """Where the sandbox and the tests take the binaries from: SGLANG_SIM_NET_BIN, else beside the engine's cache
    (one directory for every recipe version: each binary's marker says which recipe built it)."""
    if os.environ.get("SGLANG_SIM_NET_BIN"):
        return Path(os.environ["SGLANG_SIM_NET_BIN"])
    cache = os.environ.get("SGLANG_ENGINE_CACHE") or (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sglang-engine"
    )
    return Path(cache) / "simulation" / "bin"


def kube_ldflags(version: str = KUBE_VERSION) -> str:
    """What Kubernetes' own build stamps (hack/lib/version.sh), so `kube-proxy --version` names the release; the
    same values as the engine's binaries. A fixed build date keeps the binary reproducible."""
    minor = version.split(".")[1]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor=1",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=2026-01-01T00:00:00Z",
        ]
    return " ".join(flags)


@dataclass(frozen=True)
class Recipe:
    name: str  # the binary's file name, and the target name on the command line
    module: str  # the folder under go/
    package: str  # what `go build` builds
    version: str  # the upstream release
    upstream_module: str  # the module whose version go.mod pins (checked by the tests)
    ldflags: str
    # Kubernetes' binaries are built with -pgo=off by the engine too; the same flag keeps the shared packages'
    # build cache keys equal (a profile, were one found, would change every package's key).
    extra_flags: tuple[str, ...] = ()
    # Build tags (upstream's own, e.g. Prometheus' service discovery selection).
    tags: tuple[str, ...] = ()
    # The sandbox role that needs it (binaries.py's roles): what `gobuild BIN_DIR monitoring` builds.
    role: str = "network"
    # The module's version as go.mod requires it, where it is not the release's name (Prometheus 3.14.0 is the Go
    # module v0.314.0).
    module_version: str = ""
    # Runs as a pod on the node agent's nodes: Go's net package gets the pods' own addresses (POD_NETWORK).
    pod_network: bool = False

    @property
    def module_dir(self) -> Path:
        return MODULES / self.module

    @property
    def required_version(self) -> str:
        return self.module_version or self.version


@dataclass(frozen=True)
class Overlay:
    """A dependency built from a copy of its module with files added: what its release pipeline generates
    before ``go build`` and its Go module lacks."""

    module: str
    version: str
    files: tuple[tuple[str, str], ...]  # (path in the module, content)
    why: str


# Alertmanager's ui/web.go embeds ui/app/dist (`//go:embed app/dist`), which npm builds at release time and the
# module zip does not hold: without it, nothing that imports the ui package compiles.
ALERTMANAGER_UI_STANDIN = """<!DOCTYPE html>
<html><head><title>Alertmanager</title></head>
<body><p>Alertmanager ALERTMANAGER_VERSION of the sglang-platform sandbox: the web UI is not built here (its
assets come from npm at release time); the API is the release's: <a href="api/v2/alerts">api/v2/alerts</a>,
<a href="api/v2/status">api/v2/status</a>.</p></body></html>
""".replace("ALERTMANAGER_VERSION", ALERTMANAGER_VERSION)
OVERLAYS: dict[str, tuple[Overlay, ...]] = {
    "monitoring": (
        Overlay(
            module="github.com/prometheus/alertmanager",
            version=ALERTMANAGER_VERSION,
            files=(("ui/app/dist/index.html", ALERTMANAGER_UI_STANDIN),),
            why="the web UI's compiled assets (npm, at release time) are not in the Go module",
        ),
    )
}


# Every pod of the sandbox shares one network namespace; the node agent's LD_PRELOAD library gives each pod its own
# addresses, which a static Go binary never sees (it calls no libc). The binaries that run as pods are built with
# this file added to Go's net package and one call to it at the top of net.socket (an -overlay of the installed
# Go's own sock_posix.go, made at build time): the same rewriting, read from the same variables (docs/node-agent.md).
POD_NETWORK = MODULES / "podnet" / "sandbox_addrs.go"
SOCKET_ANCHOR = "ctrlCtxFn func(context.Context, string, string, syscall.RawConn) error) (fd *netFD, err error) {\n"
SOCKET_CALL = "\tladdr, raddr = sandboxAddrs(laddr, raddr)\n"


def pod_network_overlay(dest: Path) -> Path:
    """The -overlay file that adds POD_NETWORK to the installed Go's net package and calls it from net.socket."""
    goroot = Path(subprocess.run(["go", "env", "GOROOT"], capture_output=True, text=True, check=True).stdout.strip())
    original = goroot / "src" / "net" / "sock_posix.go"
    source = original.read_text()
    start = source.find("\nfunc socket(")
    at = source.find(SOCKET_ANCHOR, start)
    if start < 0 or at < 0:
        raise SystemExit(
            f"gobuild: {original} has no `func socket(... {SOCKET_ANCHOR.strip()}`: this Go is not one "
            "the pod network patch knows; see tools/simulation/go/podnet"
        )
    at += len(SOCKET_ANCHOR)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "sock_posix.go").write_text(source[:at] + SOCKET_CALL + source[at:])
    shutil.copy(POD_NETWORK, dest / "sandbox_addrs.go")
    replace = {
        str(original): str(dest / "sock_posix.go"),
        str(goroot / "src" / "net" / "sandbox_addrs.go"): str(dest / "sandbox_addrs.go"),
    }
    (dest / "overlay.json").write_text(json.dumps({"Replace": replace}, indent=1))
    return dest / "overlay.json"


def prometheus_common_ldflags(version: str, revision: str = "") -> str:
    """What the Prometheus projects' Makefiles (promu) stamp: github.com/prometheus/common/version, which their
    --version and build_info metric report. The revision only where the module proxy names the tag's commit."""
    pkg = "github.com/prometheus/common/version"
    flags = ["-s", "-w", f"-X {pkg}.Version={version}", f"-X {pkg}.Branch=HEAD", f"-X {pkg}.BuildUser=sglang-platform"]
    flags.append(f"-X {pkg}.BuildDate=20260101-00:00:00")
    if revision:
        flags.append(f"-X {pkg}.Revision={revision}")
    return " ".join(flags)


def _operator(name: str, cmd: str) -> Recipe:
    """The operator and its config reloader: one release, one commit (the tag's, as the module proxy records it).
    Its Makefile stamps the VERSION file (0.93.1); the operator names the reloader image `...:v` + that."""
    module = "github.com/prometheus-operator/prometheus-operator"
    return Recipe(
        name=name,
        module="monitoring",
        package=f"{module}/cmd/{cmd}",
        version=PROMETHEUS_OPERATOR_VERSION,
        upstream_module=module,
        ldflags=prometheus_common_ldflags(PROMETHEUS_OPERATOR_VERSION.lstrip("v"), PROMETHEUS_OPERATOR_COMMIT),
        role="monitoring",
        pod_network=True,
    )


def _keda(name: str, cmd: str) -> Recipe:
    """KEDA's Makefile: -X version.Version=$(VERSION), the image tag (2.20.2); its commit is not recorded."""
    module = "github.com/kedacore/keda/v2"
    return Recipe(
        name=name,
        module="keda",
        package=f"{module}/cmd/{cmd}",
        version=KEDA_VERSION,
        upstream_module=module,
        ldflags=f"-s -w -X {module}/version.Version={KEDA_VERSION.lstrip('v')}",
        role="autoscaling",
        pod_network=True,
    )


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="kube-proxy",
            module="kube-proxy",
            package="k8s.io/kubernetes/cmd/kube-proxy",
            version=KUBE_VERSION,
            upstream_module="k8s.io/kubernetes",
            ldflags=kube_ldflags(),
            extra_flags=("-pgo=off",),
        ),
        Recipe(
            name="coredns",
            module="coredns",
            package="github.com/coredns/coredns",
            version=COREDNS_VERSION,
            upstream_module="github.com/coredns/coredns",
            # CoreDNS reports its release from coremain.CoreVersion (in the source). Its Makefile also stamps
            # coremain.GitCommit from `git describe`; a module build has no git tree, and the proxy's .info
            # carries no commit, so it stays empty rather than naming a commit that was not checked.
            ldflags="-s -w",
        ),
        Recipe(
            name="prometheus",
            module="monitoring",
            package="github.com/prometheus/prometheus/cmd/prometheus",
            version=PROMETHEUS_VERSION,
            module_version=PROMETHEUS_MODULE_VERSION,
            upstream_module="github.com/prometheus/prometheus",
            ldflags=prometheus_common_ldflags(PROMETHEUS_VERSION.lstrip("v")),
            # plugins/plugin_*.go: `//go:build !remove_all_sd || enable_<name>_sd`.
            tags=("remove_all_sd", "enable_kubernetes_sd"),
            role="monitoring",
            pod_network=True,
        ),
        Recipe(
            name="alertmanager",
            module="monitoring",
            package="github.com/prometheus/alertmanager/cmd/alertmanager",
            version=ALERTMANAGER_VERSION,
            upstream_module="github.com/prometheus/alertmanager",
            ldflags=prometheus_common_ldflags(ALERTMANAGER_VERSION.lstrip("v")),
            role="monitoring",
            pod_network=True,
        ),
        _operator("prometheus-operator", "operator"),
        _operator("prometheus-config-reloader", "prometheus-config-reloader"),
        Recipe(
            name="kube-state-metrics",
            module="monitoring",
            package="k8s.io/kube-state-metrics/v2",
            version=KUBE_STATE_METRICS_VERSION,
            upstream_module="k8s.io/kube-state-metrics/v2",
            # Its Makefile stamps the tag itself (v2.20.0).
            ldflags=prometheus_common_ldflags(KUBE_STATE_METRICS_VERSION),
            role="monitoring",
            pod_network=True,
        ),
        _keda("keda", "operator"),
        _keda("keda-adapter", "adapter"),
    )
}
ROLES = sorted({r.role for r in RECIPES.values()})


def recipe_files(recipe: Recipe) -> list[Path]:
    """What a build depends on, besides the Go toolchain, the module cache and the recipe's entry: the module
    folder."""
    return sorted(p for p in recipe.module_dir.rglob("*") if p.is_file() and not p.name.startswith("."))


def stamp(recipe: Recipe) -> str:
    """First 16 hex digits of a sha256 over the recipe's files (names relative to this folder, and contents), its
    entry (every field: flags, tags, version), its module's overlays and the build procedure's BUILD_FORMAT."""
    h = hashlib.sha256()
    h.update(f"format {BUILD_FORMAT}\n{recipe!r}\n{OVERLAYS.get(recipe.module, ())!r}\n".encode())
    if recipe.pod_network:
        h.update(f"{SOCKET_ANCHOR}{SOCKET_CALL}".encode() + POD_NETWORK.read_bytes())
    for f in recipe_files(recipe):
        h.update(str(f.relative_to(HERE)).encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).hexdigest().encode() + b"\n")
    return h.hexdigest()[:16]


def marker(bin_dir: Path, recipe: Recipe) -> Path:
    return bin_dir / f".built-{recipe.name}"


def up_to_date(bin_dir: Path, recipe: Recipe) -> bool:
    binary = bin_dir / recipe.name
    m = marker(bin_dir, recipe)
    return binary.is_file() and os.access(binary, os.X_OK) and m.is_file() and m.read_text().strip() == stamp(recipe)


def go_env() -> dict[str, str]:
    """The environment of every go command here: the installed toolchain only, go.sum as committed (a missing
    entry is an error, not a download that edits it), static binaries, and no VCS stamping of a scratch copy."""
    env = dict(os.environ)
    env.update(GOTOOLCHAIN="local", GOFLAGS="-mod=readonly -buildvcs=false", CGO_ENABLED="0")
    return env


def check_go() -> str:
    go = shutil.which("go")
    if not go:
        raise SystemExit(f"gobuild: Go not found (need Go >= {MIN_GO[0]}.{MIN_GO[1]})")
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()
    m = re.match(r"go(\d+)\.(\d+)", version)
    if not m or (int(m[1]), int(m[2])) < MIN_GO:
        raise SystemExit(f"gobuild: {version} is too old (need Go >= {MIN_GO[0]}.{MIN_GO[1]})")
    return version


def build_command(recipe: Recipe, output: Path, overlay: Path | None = None) -> list[str]:
    return [
        "go",
        "build",
        "-trimpath",
        *recipe.extra_flags,
        *([f"-overlay={overlay}"] if overlay else []),
        *(["-tags", ",".join(recipe.tags)] if recipe.tags else []),
        "-ldflags",
        recipe.ldflags,
        "-o",
        str(output),
        recipe.package,
    ]


@contextlib.contextmanager
def locked(bin_dir: Path) -> Iterator[None]:
    """One build per BIN_DIR at a time: two CI steps sharing a cache directory must not interleave installs."""
    with open(bin_dir / ".lock-gobuild", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(bin_dir: Path, recipe: Recipe, log=print) -> float | None:
    """Builds one binary into bin_dir (atomically: a failed or interrupted build leaves the old one, if any).
    Returns the seconds it took, or None when it was up to date."""
    if up_to_date(bin_dir, recipe):
        log(f"UP TO DATE {recipe.name} {recipe.version} ({stamp(recipe)})")
        return None
    want = stamp(recipe)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"gobuild-{recipe.name}-") as scratch:
        work = Path(scratch) / recipe.module
        shutil.copytree(recipe.module_dir, work)
        for overlay in OVERLAYS.get(recipe.module, ()):
            apply_overlay(work, overlay)
        net = pod_network_overlay(Path(scratch) / "podnet") if recipe.pod_network else None
        # On the same filesystem as bin_dir, so the final rename is atomic.
        tmp = bin_dir / f".tmp-{recipe.name}"
        try:
            subprocess.run(build_command(recipe, tmp, net), cwd=work, env=go_env(), check=True)
            os.replace(tmp, bin_dir / recipe.name)
        finally:
            tmp.unlink(missing_ok=True)
    marker(bin_dir, recipe).write_text(want + "\n")
    took = time.monotonic() - start
    size = (bin_dir / recipe.name).stat().st_size
    log(f"BUILT {recipe.name} {recipe.version} in {took:.0f}s: {size / 2**20:.0f} MiB ({want})")
    return took


def apply_overlay(work: Path, overlay: Overlay) -> None:
    """The overlay's module copied into the scratch module (from the module cache, checked against go.sum by `go
    mod download`), its files added, and go.mod replacing the module by the copy: only the scratch copy changes."""
    info = subprocess.run(
        ["go", "mod", "download", "-json", f"{overlay.module}@{overlay.version}"],
        cwd=work,
        env=go_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    dest = work / "_overlay" / overlay.module.replace("/", "_")
    shutil.copytree(Path(json.loads(info.stdout)["Dir"]), dest)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    for relative, content in overlay.files:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    subprocess.run(
        ["go", "mod", "edit", f"-replace={overlay.module}=./{dest.relative_to(work)}"],
        cwd=work,
        env=go_env(),
        check=True,
    )


def expand(names: Sequence[str]) -> list[str]:
    """Binary names, a role standing for its binaries (``monitoring``); every recipe when none is named."""
    if not names:
        return list(RECIPES)
    out: list[str] = []
    for name in names:
        members = [r.name for r in RECIPES.values() if r.role == name] if name in ROLES else [name]
        out += [m for m in members if m not in out]
    unknown = [n for n in out if n not in RECIPES]
    if unknown:
        raise SystemExit(
            f"gobuild: unknown binary {', '.join(unknown)} (known: {', '.join(RECIPES)}; roles: {', '.join(ROLES)})"
        )
    return out


def build_all(bin_dir: Path, names: Sequence[str] = (), log=print) -> dict[str, float | None]:
    """Builds the named binaries (all when none) into bin_dir; what the sandbox's setup and .ci/run call."""
    recipes = [RECIPES[n] for n in expand(names)]
    bin_dir.mkdir(parents=True, exist_ok=True)
    with locked(bin_dir):
        if not all(up_to_date(bin_dir, r) for r in recipes):
            check_go()
        return {r.name: build(bin_dir, r, log) for r in recipes}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.simulation.gobuild", description=__doc__.split("\n")[0])
    parser.add_argument("--stamp", action="store_true", help="print the recipe stamp of the named binaries")
    parser.add_argument("bin_dir", nargs="?", help="where the binaries go (created if absent)")
    parser.add_argument(
        "names", nargs="*", help=f"binaries to build: {', '.join(RECIPES)}, or roles: {', '.join(ROLES)} (default: all)"
    )
    args = parser.parse_args(argv)
    if args.stamp:
        # With --stamp the positional arguments are binary names (bin_dir takes the first one).
        try:
            names = expand([n for n in (args.bin_dir, *args.names) if n])
        except SystemExit as exc:
            parser.error(str(exc))
        if len(names) == 1:
            print(stamp(RECIPES[names[0]]))
        else:
            # One key over several: a change of any of them moves it.
            print(hashlib.sha256(" ".join(stamp(RECIPES[n]) for n in names).encode()).hexdigest()[:16])
        return 0
    if not args.bin_dir:
        parser.error("BIN_DIR is required")
    start = time.monotonic()
    build_all(Path(args.bin_dir).resolve(), args.names)
    print(f"DONE in {time.monotonic() - start:.0f}s: {Path(args.bin_dir).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
