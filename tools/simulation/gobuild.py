"""Builds the simulation's network binaries, kube-proxy and CoreDNS, from their Go modules.

    python -m tools.simulation.gobuild BIN_DIR [kube-proxy] [coredns]     (both when none is named)
    python -m tools.simulation.gobuild --stamp [NAME]                     (the recipe stamp, for a cache key)

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

A binary already in BIN_DIR with a marker (``.built-<name>``) holding its recipe stamp is not built again; any change
of the recipe (this file or the module folder) builds it again. Needs Go >= 1.26 (``GOTOOLCHAIN=local``: the
build uses the installed Go, never downloads one) and the Go module proxy (GOPROXY) for modules not yet in the
module cache; nothing else is downloaded.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
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
# The oldest Go these go.mod files accept (both say `go 1.26.0`); GOTOOLCHAIN=local turns an older one into an
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

    @property
    def module_dir(self) -> Path:
        return MODULES / self.module


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
    )
}


def recipe_files(recipe: Recipe) -> list[Path]:
    """What a build depends on, besides the Go toolchain and the module cache: this file and the module folder."""
    files = sorted(p for p in recipe.module_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [Path(__file__).resolve(), *files]


def stamp(recipe: Recipe) -> str:
    """First 16 hex digits of a sha256 over the recipe's files (names relative to this folder, and contents)."""
    h = hashlib.sha256()
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


def build_command(recipe: Recipe, output: Path) -> list[str]:
    return [
        "go",
        "build",
        "-trimpath",
        *recipe.extra_flags,
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
        # On the same filesystem as bin_dir, so the final rename is atomic.
        tmp = bin_dir / f".tmp-{recipe.name}"
        try:
            subprocess.run(build_command(recipe, tmp), cwd=work, env=go_env(), check=True)
            os.replace(tmp, bin_dir / recipe.name)
        finally:
            tmp.unlink(missing_ok=True)
    marker(bin_dir, recipe).write_text(want + "\n")
    took = time.monotonic() - start
    size = (bin_dir / recipe.name).stat().st_size
    log(f"BUILT {recipe.name} {recipe.version} in {took:.0f}s: {size / 2**20:.0f} MiB ({want})")
    return took


def build_all(bin_dir: Path, names: Sequence[str] = (), log=print) -> dict[str, float | None]:
    """Builds the named binaries (all when none) into bin_dir; what the sandbox's setup and .ci/run call."""
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"gobuild: unknown binary {', '.join(unknown)} (known: {', '.join(RECIPES)})")
    bin_dir.mkdir(parents=True, exist_ok=True)
    recipes = [RECIPES[n] for n in (names or RECIPES)]
    with locked(bin_dir):
        if not all(up_to_date(bin_dir, r) for r in recipes):
            check_go()
        return {r.name: build(bin_dir, r, log) for r in recipes}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.simulation.gobuild", description=__doc__.split("\n")[0])
    parser.add_argument("--stamp", action="store_true", help="print the recipe stamp of the named binaries")
    parser.add_argument("bin_dir", nargs="?", help="where the binaries go (created if absent)")
    parser.add_argument("names", nargs="*", help=f"binaries to build: {', '.join(RECIPES)} (default: all)")
    args = parser.parse_args(argv)
    if args.stamp:
        # With --stamp the positional arguments are binary names (bin_dir takes the first one).
        names = [n for n in (args.bin_dir, *args.names) if n] or list(RECIPES)
        unknown = [n for n in names if n not in RECIPES]
        if unknown:
            parser.error(f"unknown binary {', '.join(unknown)}")
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
