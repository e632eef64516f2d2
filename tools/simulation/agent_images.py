"""The image table (tools/simulation/images.yaml): which process stands for which image on an agent node.

``lookup(table, image)`` gives the entry, ``resolve(...)`` what the container runs with (entrypoint, CMD, ENV,
PATH, PYTHONPATH), or ImageError with the reason the pod shows (``ImageNotInSandbox``).

``python -m tools.simulation.agent_images prepare --dir DIR IMAGE...`` makes the virtualenvs of ``run: venv``
images (pip, with the network): the sandbox runs it before it enters the network namespace, where the agent only
looks them up.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TABLE = Path(__file__).with_name("images.yaml")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUN_KINDS = ("python", "sglang", "standin", "venv", "none")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RELEASE = re.compile(r"^v?(\d+(?:\.\d+)+(?:\.post\d+|rc\d+|a\d+|b\d+)?)")


class ImageError(Exception):
    """The image does not run here; the message is the container's waiting message."""


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        out = self.repository + (f":{self.tag}" if self.tag else "")
        return out + (f"@{self.digest}" if self.digest else "")


def parse_image(image: str) -> ImageRef:
    """An image reference as Kubernetes writes it, with Docker Hub's defaults dropped (docker.io/library/python:3
    -> python:3); no tag and no digest means ``latest``."""
    ref, _, digest = image.partition("@")
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    tag = None
    if colon > slash:
        ref, tag = ref[:colon], ref[colon + 1 :]
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
            break
    if ref.startswith("library/") and ref.count("/") == 1:
        ref = ref[len("library/") :]
    if tag is None and not digest:
        tag = "latest"
    return ImageRef(ref, tag, digest or None)


def release_of(tag: str | None) -> str | None:
    """The release a tag names: v0.4.4-cu124 -> 0.4.4, v0.4.3.post2-cu124 -> 0.4.3.post2, 3.12.8-slim -> 3.12.8."""
    if not tag:
        return None
    match = _RELEASE.match(tag)
    return match.group(1) if match else None


@dataclass
class Entry:
    repository: str
    run: str
    tag: str = "*"
    checked: str = ""
    placement: str = ""
    why: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    workdir: str = ""
    env: dict[str, str] = field(default_factory=dict)
    venv: str = ""
    requirements: list[str] = field(default_factory=list)

    def matches(self, ref: ImageRef) -> bool:
        return fnmatch.fnmatchcase(ref.repository, self.repository) and fnmatch.fnmatchcase(ref.tag or "", self.tag)


def load_table(path: Path = TABLE) -> list[Entry]:
    data = yaml.safe_load(path.read_text()) or {}
    entries = []
    for i, raw in enumerate(data.get("images") or []):
        if not isinstance(raw, dict) or "repository" not in raw or raw.get("run") not in RUN_KINDS:
            raise ValueError(f"{path}: entry {i} needs repository and run (one of {', '.join(RUN_KINDS)}): {raw!r}")
        unknown = set(raw) - set(Entry.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: entry {i} ({raw['repository']}): unknown keys {sorted(unknown)}")
        entry = Entry(**{k: v for k, v in raw.items()})
        entry.env = {str(k): str(v) for k, v in (entry.env or {}).items()}
        if entry.run == "venv" and not (entry.venv and entry.requirements):
            raise ValueError(f"{path}: entry {entry.repository}: run venv needs venv and requirements")
        if bool(entry.venv) != bool(entry.requirements):
            raise ValueError(f"{path}: entry {entry.repository}: venv and requirements go together")
        entries.append(entry)
    return entries


def lookup(table: list[Entry], image: str) -> Entry | None:
    ref = parse_image(image)
    return next((e for e in table if e.matches(ref)), None)


@dataclass
class Runtime:
    """What a container of this image runs with."""

    image: str
    entry: Entry
    release: str | None
    entrypoint: list[str]
    cmd: list[str]
    workdir: str
    env: dict[str, str]
    pythonpath: list[str] = field(default_factory=list)  # first on PYTHONPATH, before the pod's own
    # Host directories the runtime lives in (the interpreter's environment, the stand-in overlay): bound read-only
    # at the same path in the container, last, so that no volume (an emptyDir on /tmp, say) hides them.
    binds: list[str] = field(default_factory=list)


OverlayBuilder = Any  # (release: str, dest: Path) -> Path


@dataclass
class Resolver:
    """Resolves images to runtimes. ``python_prefix``: the project's virtualenv (default: the agent's own);
    ``venv_dir``: where ``prepare`` put the venv images; ``overlay_dir``: where stand-in overlays are built."""

    table: list[Entry]
    python_prefix: Path
    venv_dir: Path
    overlay_dir: Path
    overlay_builder: OverlayBuilder | None = None
    project_root: Path = PROJECT_ROOT
    # Images the table keeps off agent nodes (placement kwok) run a placeholder instead of being refused: the pod
    # gets what kwok would give it (Running and Ready, a Job's pod Succeeded) without its program. The sandbox
    # turns this on, since the scheduler cannot know which pods are the add-ons' own.
    placeholders: bool = False
    _overlays: dict[str, Path] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, image: str) -> Runtime:
        ref = parse_image(image)
        entry = next((e for e in self.table if e.matches(ref)), None)
        if entry is None:
            raise ImageError(f"image {image} is not in the sandbox's image table (tools/simulation/images.yaml)")
        if entry.run == "none" and self.placeholders and entry.placement.startswith("kwok"):
            return Runtime(
                image=image,
                entry=Entry(entry.repository, "placeholder", placement=entry.placement, why=entry.why),
                release=release_of(ref.tag),
                entrypoint=[],
                cmd=[],
                workdir="",
                env={"PATH": BASE_PATH},
            )
        if entry.run == "none":
            where = f" ({entry.placement})" if entry.placement else ""
            raise ImageError(f"image {image} is not run on agent nodes{where}: {' '.join(entry.why.split())}")
        release = release_of(ref.tag)
        env = dict(entry.env)
        pythonpath: list[str] = []
        if entry.run in ("python", "standin"):
            bin_dir = self.python_prefix / "bin"
            if entry.run == "standin":  # the stand-in's code is the project's
                pythonpath.append(str(self.project_root))
        elif entry.run == "sglang":
            # The release's bench_serving needs its own dependencies (transformers, numpy...): a venv prepared for
            # the release has them; without one the project's venv runs the stand-in, which needs none.
            bin_dir = self.python_prefix / "bin"
            if entry.venv and release and (self.venv_dir / f"{entry.venv}-{release}" / "bin" / "python3").exists():
                bin_dir = self.venv_dir / f"{entry.venv}-{release}" / "bin"
        else:  # venv
            if not release:
                raise ImageError(f"image {image}: no release in its tag; the sandbox prepares venvs per release")
            venv = self.venv_dir / f"{entry.venv}-{release}"
            if not (venv / "bin" / "python3").exists():
                raise ImageError(
                    f"image {image}: its virtualenv {venv} is not prepared; before entering the network namespace "
                    f"run: python -m tools.simulation.agent_images prepare --dir {self.venv_dir} {image}"
                )
            bin_dir = venv / "bin"
        if entry.run == "sglang":
            if not release:
                raise ImageError(f"image {image}: the stand-in needs the SGLang release in the tag (e.g. v0.4.4-cu124)")
            # docs/standin.md: the overlay first, the project (the stand-in's code) after it. The release's own
            # package, when prepared, comes between them: its `sglang` is shadowed by the overlay's, but its
            # distribution metadata is found (importlib.metadata.version("sglang"), which the benchmark records).
            real = self.venv_dir / "sglang" / release
            prepared = [str(real)] if (real / "sglang" / "__init__.py").is_file() else []
            pythonpath += [str(self.overlay(release)), *prepared, str(self.project_root)]
        env["PATH"] = f"{bin_dir}:{BASE_PATH}"
        return Runtime(
            image=image,
            entry=entry,
            release=release,
            entrypoint=list(entry.entrypoint),
            cmd=list(entry.cmd),
            workdir=entry.workdir,
            env=env,
            pythonpath=pythonpath,
            binds=[str(bin_dir.parent), *pythonpath],
        )

    def overlay(self, release: str) -> Path:
        """The stand-in overlay of a release, built once per agent (tools.simulation.standins.overlay)."""
        with self._lock:
            if release in self._overlays:
                return self._overlays[release]
            builder = self.overlay_builder
            if builder is None:
                try:
                    builder = importlib.import_module("tools.simulation.standins.overlay").build_overlay
                except ImportError as exc:
                    raise ImageError(f"the SGLang stand-in is not available ({exc})") from exc
            dest = self.overlay_dir / release
            dest.mkdir(parents=True, exist_ok=True)
            # The release's real sglang package (pip install --no-deps --target DIR <wheel>), when prepared: the
            # image's other modules (bench_serving) are then the release's own.
            real = self.venv_dir / "sglang" / release
            try:
                if (real / "sglang" / "__init__.py").is_file():
                    path = Path(builder(release, dest, real_sglang=real))
                else:
                    path = Path(builder(release, dest))
            except Exception as exc:  # the stand-in refuses a release it does not know, etc.
                raise ImageError(f"the SGLang stand-in for {release} could not be built: {exc}") from exc
            self._overlays[release] = path
            return path


def container_env(runtime: Runtime, env: Mapping[str, str]) -> dict[str, str]:
    """The image's ENV under the container's (the container's win), and the stand-in overlay first on PYTHONPATH
    even when the pod sets its own."""
    merged = dict(runtime.env)
    merged.update(env)
    if runtime.pythonpath:
        own = env.get("PYTHONPATH")
        merged["PYTHONPATH"] = ":".join([*runtime.pythonpath, *([own] if own else [])])
    return merged


# --- prepare (outside the network namespace) --------------------------------------------------------------


def prepare(images: list[str], dest: Path, table: list[Entry], python: str = sys.executable) -> list[Path]:
    """Make the virtualenv of every ``run: venv`` image (pip install of its requirements at the tag's release),
    and for ``run: sglang`` images the release's bench_serving: a virtualenv with its dependencies and the
    release's own ``sglang`` package beside it (``DIR/sglang/<release>``, no dependencies), which the stand-in's
    overlay extends (docs/standin.md)."""
    made = []
    for image in images:
        entry = lookup(table, image)
        if entry is None or entry.run not in ("venv", "sglang") or not entry.venv:
            print(f"{image}: nothing to prepare ({entry.run if entry else 'not in the table'})")
            continue
        release = release_of(parse_image(image).tag)
        if not release:
            raise SystemExit(f"{image}: no release in its tag")
        venv = dest / f"{entry.venv}-{release}"
        if entry.run == "sglang":
            _prepare_sglang_package(release, dest / "sglang" / release, python)
        if (venv / "bin" / "python3").exists():
            print(f"{image}: {venv} already prepared")
            made.append(venv)
            continue
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        reqs = [r.format(release=release) for r in entry.requirements]
        subprocess.run([str(venv / "bin" / "python3"), "-m", "pip", "install", "--quiet", *reqs], check=True)
        print(f"{image}: prepared {venv} ({', '.join(reqs)})")
        made.append(venv)
    return made


def _prepare_sglang_package(release: str, target: Path, python: str) -> None:
    """The release's ``sglang`` package without its dependencies: the wheel tools/sglang_flags.py cached, else
    the release from PyPI."""
    if (target / "sglang" / "__init__.py").is_file():
        return
    try:
        from tools.sglang_flags import wheel_for

        wheel = wheel_for(release)
    except ImportError:
        wheel = None
    source = str(wheel) if wheel else f"sglang=={release}"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), source], check=True
    )
    print(f"sglang {release}: its package in {target} (from {source})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.simulation.agent_images")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="make the virtualenvs of venv images (needs PyPI: run before the netns)")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--table", type=Path, default=TABLE)
    p.add_argument("images", nargs="+")
    s = sub.add_parser("show", help="how each image would run")
    s.add_argument("--table", type=Path, default=TABLE)
    s.add_argument("images", nargs="+")
    args = parser.parse_args(argv)
    table = load_table(args.table)
    if args.cmd == "prepare":
        args.dir.mkdir(parents=True, exist_ok=True)
        prepare(args.images, args.dir.resolve(), table)
        return 0
    for image in args.images:
        entry = lookup(table, image)
        print(f"{image}: {entry.run + ' (' + entry.placement + ')' if entry else 'not in the table'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
