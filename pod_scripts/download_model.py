#!/usr/bin/env python3
"""Fill a model directory from Hugging Face, ModelScope or S3, or wait until it is complete.

Shipped by sglang-platform in a ConfigMap. Python >= 3.10 (the SGLang image runs the gate), standard library
only: the source's client library is imported when needed and, if the image lacks it, pip-installed at the
pinned DOWNLOAD_REQUIREMENT into DEPS_DIR.

  download_model.py download   the download Job of a PVC: fills MODEL_DIR in place
  download_model.py stage      the staging DaemonSet of a hostPath: one copy per node, revisions side by side
  download_model.py wait       the init container that holds an SGLang pod until the weights are complete

A download is complete once ``.sglang-platform-complete.json`` exists in MODEL_DIR: written last, after the
files were verified, holding MODEL_IDENTITY (source, repository or bucket/prefix, revision) plus the file
count and bytes, and the commit a hub's revision named when it was fetched (``commit``: how the copies of a
moving branch on different nodes are compared). A matching marker means nothing to do. ``download`` handles
a different identity (changed revision) by removing the marker first, so the gates close, then fetching again
over the old files.
``stage`` fetches each revision into a directory of its own beside MODEL_DIR (``<name>.rev-<id>``), verifies
it, marks it complete, and only then points MODEL_DIR at it: MODEL_DIR is a relative symlink, replaced by a
rename, so a reader sees the old revision or the new one, never a mix. Running servers keep the files they
opened; pods started after the switch read the new revision. Earlier revisions beyond the STAGE_KEEP_REVISIONS
most recently served are removed after a switch. While it works, and afterwards, ``stage`` serves Prometheus
metrics (bytes, files, rate, complete) on METRICS_PORT (``/metrics``; ``/ready`` answers 200 once the weights
are in place) and logs its progress. Fetches resume: Hugging Face and ModelScope keep their own per-file state
in the directory, S3 objects already present with the right size are kept.

Environment: MODEL_DIR, MODEL_SOURCE (huggingface, modelscope, s3), MODEL_IDENTITY (JSON), MODEL_REPO,
MODEL_REVISION, S3_BUCKET, S3_PREFIX, S3_ENDPOINT, AWS_REGION, HF_TOKEN, MODELSCOPE_API_TOKEN,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, MAX_WORKERS, DOWNLOAD_REQUIREMENT, DEPS_DIR, WAIT_POLL_SECONDS,
WAIT_HINT;
for ``stage`` also STAGE_GROUP (metric label), STAGE_KEEP_REVISIONS, METRICS_ADDRESS, METRICS_PORT,
PROGRESS_SECONDS, PROGRESS_LOG_SECONDS, RETRY_SECONDS, RETRY_MAX_SECONDS, STAGE_ONCE.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import http.server
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MARKER = ".sglang-platform-complete.json"
LOCK = ".sglang-platform.lock"
INDEX = "model.safetensors.index.json"
# Bookkeeping the fetchers leave in the directory; not part of the model.
IGNORED = {MARKER, LOCK, ".cache", "._____temp", ".mdl", ".msc", ".mv"}


class DownloadError(Exception):
    pass


def log(message: str) -> None:
    print(f"{now()} {message}", flush=True)


def now() -> str:
    # datetime.UTC is Python 3.11+; the SGLang image that runs the gate has 3.10.
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017


def read_marker(model_dir: Path) -> dict | None:
    try:
        return json.loads((model_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None


def marker_matches(model_dir: Path, identity: Mapping[str, str]) -> bool:
    marker = read_marker(model_dir)
    return marker is not None and all(marker.get(k) == v for k, v in identity.items())


@contextlib.contextmanager
def locked(model_dir: Path, lock_file: Path | None = None) -> Iterator[None]:
    """One downloader per directory: a retried Job pod, or two stagers of one node sharing a hostPath."""
    with open(lock_file or model_dir / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def model_files(model_dir: Path) -> dict[str, int]:
    """Relative path -> size of every file of the model, bookkeeping excluded."""
    out = {}
    for path in sorted(model_dir.rglob("*")):
        rel = path.relative_to(model_dir)
        if rel.parts[0] in IGNORED or path.name.endswith(".part") or not path.is_file():
            continue
        out[rel.as_posix()] = path.stat().st_size
    return out


def verify(model_dir: Path, expected: Mapping[str, int] | None) -> dict[str, int]:
    """The files, once they look like a loadable model (and match the source's sizes when known)."""
    files = model_files(model_dir)
    top = {name for name in files if "/" not in name}
    if "config.json" not in top:
        # huggingface_hub does not raise when it cannot reach the repository (gated, private, unreachable) and
        # the directory already holds something (our lock file): it warns and hands the directory back as it is.
        raise DownloadError(
            f"{model_dir} has no config.json after the download (a hub client that cannot reach the repository "
            "only warns and keeps the directory as it was: see its message above)"
        )
    weights = sorted(n for n in top if n.endswith((".safetensors", ".bin")))
    if not weights:
        raise DownloadError(f"{model_dir} has no *.safetensors (or *.bin) weights after the download")
    if INDEX in top:
        try:
            shards = set(json.loads((model_dir / INDEX).read_text())["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DownloadError(f"{model_dir / INDEX} is not a safetensors index") from None
        missing = sorted(s for s in shards if not files.get(s))
        if missing:
            raise DownloadError(f"{len(missing)} shards named in {INDEX} are missing or empty: {missing[:3]}")
    for name, size in (expected or {}).items():
        if files.get(name) != size:
            raise DownloadError(f"{name}: expected {size} bytes, have {files.get(name)}")
    return files


# What a marker holds besides the identity. ``commit``: the commit the revision named when it was fetched
# (a branch or tag resolved; null when the source cannot say), so the copies of a moving revision on
# different nodes can be compared.
MARKER_FIELDS = ("files", "bytes", "completedAt", "commit")
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def write_marker(
    model_dir: Path, identity: Mapping[str, str], files: Mapping[str, int], commit: str | None = None
) -> dict:
    marker = dict(identity) | {
        "files": len(files),
        "bytes": sum(files.values()),
        "completedAt": now(),
        "commit": commit,
    }
    tmp = model_dir / (MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, model_dir / MARKER)
    return marker


# Modules whose version was logged already: the fetchers import them several times (commit, sizes, fetch).
_REPORTED: set[str] = set()


def require(module: str, env: Mapping[str, str]):
    """Import ``module``; if the image lacks it, pip-install the pinned requirement first. An importable module
    is used as it is, whatever its version (an image prepared for clusters without PyPI, or the sandbox's); which
    version ran is logged, next to the pin when they differ."""
    try:
        loaded = importlib.import_module(module)
    except ImportError:
        loaded = None
    requirement = env.get("DOWNLOAD_REQUIREMENT")
    if loaded is not None:
        _report_version(module, requirement)
        return loaded
    if not requirement:
        raise DownloadError(f"python module {module} is missing and DOWNLOAD_REQUIREMENT is not set")
    deps = env.get("DEPS_DIR", "/tmp/sglang-platform-deps")
    log(f"installing {requirement} into {deps}")
    try:
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-cache-dir", "--target", deps]
        subprocess.run([*pip, *requirement.split()], check=True)
    except (subprocess.CalledProcessError, OSError) as error:
        # Without PyPI (an air-gapped cluster, the sandbox) this is where it ends: say what to do about it.
        raise DownloadError(
            f"python module {module} is not in the image and `pip install {requirement}` failed ({error}): without "
            "access to PyPI, use a downloader image that has it installed (versions.modelDownloaderImage)"
        ) from None
    sys.path.insert(0, deps)
    importlib.invalidate_caches()
    return importlib.import_module(module)


def _report_version(module: str, requirement: str | None) -> None:
    if module in _REPORTED:
        return
    _REPORTED.add(module)
    # DOWNLOAD_REQUIREMENT lists the client first, then what it needs pinned beside it (modelscope-hub).
    name, _, pinned = (requirement or module).split()[0].partition("==")
    try:
        have = importlib.metadata.version(name.strip())
    except importlib.metadata.PackageNotFoundError:
        have = "of unknown version"
    differs = f", not the pinned {pinned.strip()}" if pinned and have != pinned.strip() else ""
    log(f"using {name.strip()} {have} from the image{differs}")


def fetch_huggingface(env: Mapping[str, str], model_dir: Path) -> None:
    hub = require("huggingface_hub", env)
    hub.snapshot_download(
        repo_id=env["MODEL_REPO"],
        revision=env["MODEL_REVISION"],
        local_dir=str(model_dir),
        token=env.get("HF_TOKEN") or None,
        max_workers=int(env.get("MAX_WORKERS", "8")),
    )


def fetch_modelscope(env: Mapping[str, str], model_dir: Path) -> None:
    modelscope = require("modelscope", env)
    kwargs = {"token": env["MODELSCOPE_API_TOKEN"]} if env.get("MODELSCOPE_API_TOKEN") else {}
    modelscope.snapshot_download(
        model_id=env["MODEL_REPO"],
        revision=env["MODEL_REVISION"],
        local_dir=str(model_dir),
        max_workers=int(env.get("MAX_WORKERS", "8")),
        **kwargs,
    )


def _s3(env: Mapping[str, str]):
    boto3 = require("boto3", env)
    from botocore.config import Config

    endpoint = env.get("S3_ENDPOINT") or None
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=env.get("AWS_REGION") or None,
        config=Config(
            retries={"max_attempts": 10, "mode": "adaptive"}, s3={"addressing_style": "path"} if endpoint else None
        ),
    )


def _s3_prefix(env: Mapping[str, str]) -> tuple[str, str]:
    bucket, prefix = env["S3_BUCKET"], env.get("S3_PREFIX", "")
    return bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/"


def list_s3(client, env: Mapping[str, str], model_dir: Path) -> dict[str, int]:
    """Relative path -> size of every object of the model under the prefix."""
    bucket, prefix = _s3_prefix(env)
    root = model_dir.resolve()
    expected: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) :]
            if not rel or rel.endswith("/") or rel.split("/")[0] in IGNORED:
                continue
            if not (root / rel).resolve().is_relative_to(root):
                raise DownloadError(f"refusing key {obj['Key']!r}: it would land outside {model_dir}")
            expected[rel] = int(obj["Size"])
    if not expected:
        raise DownloadError(f"s3://{bucket}/{prefix} holds no objects")
    return expected


def fetch_s3(env: Mapping[str, str], model_dir: Path) -> dict[str, int]:
    client = _s3(env)
    bucket, prefix = _s3_prefix(env)
    expected = list_s3(client, env, model_dir)

    def one(rel: str) -> bool:
        dest = model_dir / rel
        if dest.is_file() and dest.stat().st_size == expected[rel]:
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        client.download_file(bucket, prefix + rel, str(part))
        os.replace(part, dest)
        return True

    with ThreadPoolExecutor(max_workers=int(env.get("MAX_WORKERS", "8"))) as pool:
        fetched = sum(pool.map(one, sorted(expected)))
    log(f"s3://{bucket}/{prefix}: {fetched} objects fetched, {len(expected) - fetched} already present")
    return expected


FETCHERS: dict[str, Callable[[Mapping[str, str], Path], dict[str, int] | None]] = {
    "huggingface": fetch_huggingface,
    "modelscope": fetch_modelscope,
    "s3": fetch_s3,
}


def resolve_commit(env: Mapping[str, str], identity: Mapping[str, str]) -> str | None:
    """The commit a hub's revision names now: itself when it is one, else the branch or tag resolved by the
    hub's API. None for s3 (no commits) or when the hub does not say (logged: the marker then records null)."""
    source, revision = identity["source"], identity.get("revision", "")
    if source not in ("huggingface", "modelscope"):
        return None
    if COMMIT.match(revision):
        return revision
    try:
        if source == "huggingface":
            hub = require("huggingface_hub", env)
            sha = hub.HfApi(token=env.get("HF_TOKEN") or None).model_info(env["MODEL_REPO"], revision=revision).sha
            return sha if isinstance(sha, str) and COMMIT.match(sha) else None
        require("modelscope", env)
        api = importlib.import_module("modelscope.hub.api").HubApi()
        detail = api.get_valid_revision_detail(env["MODEL_REPO"], revision=revision)
        # The field's name differs between ModelScope releases (CommitId, Sha): the 40-hex value of a key
        # that names a commit.
        for key, value in sorted((detail or {}).items()):
            if any(w in key.lower() for w in ("commit", "sha")) and isinstance(value, str) and COMMIT.match(value):
                return value
        log(f"{env['MODEL_REPO']}@{revision}: the hub's revision detail names no commit ({detail})")
    except DownloadError:
        raise
    except Exception as error:  # any client or network error: the fetch itself says more if it fails too
        log(f"{env['MODEL_REPO']}@{revision}: commit not resolved ({type(error).__name__}: {error})")
    return None


def fetch_recorded(
    env: Mapping[str, str], identity: Mapping[str, str], directory: Path
) -> tuple[dict[str, int] | None, str | None]:
    """Fetch into ``directory`` and say which commit it is: resolved before and after, and refused (to be
    fetched again) when a moving revision moved in between, since the files may then mix both commits."""
    before = resolve_commit(env, identity)
    expected = FETCHERS[identity["source"]](env, directory)
    after = resolve_commit(env, identity) if before is not None and before != identity.get("revision") else before
    if before is not None and after is not None and before != after:
        raise DownloadError(
            f"{identity.get('repo')}@{identity.get('revision')} moved from commit {before} to {after} during the "
            "fetch; fetching again so the copy is one commit"
        )
    if before is not None:
        log(f"{identity.get('repo')}@{identity.get('revision')} is commit {before}")
    return expected, before


def download(env: Mapping[str, str]) -> dict:
    model_dir = Path(env["MODEL_DIR"])
    identity = json.loads(env["MODEL_IDENTITY"])
    model_dir.mkdir(parents=True, exist_ok=True)
    with locked(model_dir):
        if marker_matches(model_dir, identity):
            marker = read_marker(model_dir) or {}
            log(f"{model_dir}: complete ({marker.get('files')} files, {marker.get('bytes')} bytes); nothing to do")
            return marker
        if (model_dir / MARKER).exists():
            log(f"{model_dir}: holds {read_marker(model_dir)}; fetching {identity}")
        # Gone before the first byte changes: a pod gated on this directory must not start on a mix.
        (model_dir / MARKER).unlink(missing_ok=True)
        started = time.monotonic()
        expected, commit = fetch_recorded(env, identity, model_dir)
        files = verify(model_dir, expected)
        marker = write_marker(model_dir, identity, files, commit)
        log(
            f"{model_dir}: verified {marker['files']} files, {marker['bytes']} bytes "
            f"in {time.monotonic() - started:.0f}s"
        )
        return marker


# --- stage: the DaemonSet of a hostPath volume ------------------------------------------------------------

REVISION_INFIX = ".rev-"


def revision_id(identity: Mapping[str, str]) -> str:
    """Short, stable name of a revision's directory: the identity's hash (the marker inside says what it is)."""
    return hashlib.sha256(json.dumps(dict(identity), sort_keys=True).encode()).hexdigest()[:12]


def revision_dir(model_dir: Path, identity: Mapping[str, str]) -> Path:
    return model_dir.with_name(f"{model_dir.name}{REVISION_INFIX}{revision_id(identity)}")


def source_sizes(env: Mapping[str, str], identity: Mapping[str, str], model_dir: Path) -> dict[str, int] | None:
    """Relative path -> size of every file the source lists, for the progress total; None when the source
    cannot say (progress then shows bytes done without a total)."""
    source = identity["source"]
    try:
        if source == "s3":
            return list_s3(_s3(env), env, model_dir)
        if source == "huggingface":
            hub = require("huggingface_hub", env)
            info = hub.HfApi(token=env.get("HF_TOKEN") or None).model_info(
                env["MODEL_REPO"], revision=env["MODEL_REVISION"], files_metadata=True
            )
            return {s.rfilename: int(s.size) for s in info.siblings if s.size is not None}
        if source == "modelscope":
            require("modelscope", env)
            api = importlib.import_module("modelscope.hub.api").HubApi()
            files = api.get_model_files(env["MODEL_REPO"], revision=env["MODEL_REVISION"], recursive=True)
            return {f["Path"]: int(f["Size"]) for f in files if f.get("Type") != "tree"}
    except DownloadError:
        raise
    except Exception as error:  # any client or network error: the total stays unknown, the fetch says more
        log(f"the source's file list is unavailable ({type(error).__name__}: {error}); progress shows no total")
    return None


class Progress:
    """What the stager has done, for its metrics endpoint and its log. Written by one thread at a time."""

    def __init__(self, group: str, model: str, identity: Mapping[str, str]):
        self.labels = {"group": group, "model": model, "revision": identity.get("revision", "")}
        self.lock = threading.Lock()
        self.done_bytes = 0
        self.done_files = 0
        self.expected_bytes: int | None = None
        self.expected_files: int | None = None
        self.rate = 0.0
        self.complete = False
        self.complete_at: float | None = None
        self.fetch_seconds: float | None = None
        self.errors = 0
        self._last: tuple[float, int] | None = None

    def expect(self, sizes: Mapping[str, int] | None) -> None:
        if sizes is not None:
            with self.lock:
                self.expected_bytes, self.expected_files = sum(sizes.values()), len(sizes)

    def measure(self, directory: Path, clock: Callable[[], float] = time.monotonic) -> None:
        """Bytes on disk under ``directory`` (partial files of the fetchers included) and finished files."""
        total = 0
        for path in directory.rglob("*") if directory.is_dir() else ():
            with contextlib.suppress(OSError):
                if path.is_file() and not path.is_symlink():
                    total += path.stat().st_size
        files = len(model_files(directory)) if directory.is_dir() else 0
        t = clock()
        with self.lock:
            if self._last is not None and t > self._last[0]:
                self.rate = max(0.0, (total - self._last[1]) / (t - self._last[0]))
            self._last = (t, total)
            self.done_bytes, self.done_files = total, files

    def finish(self, marker: Mapping, fetch_seconds: float | None) -> None:
        with self.lock:
            self.complete, self.complete_at, self.fetch_seconds = True, time.time(), fetch_seconds
            self.done_bytes, self.done_files = int(marker.get("bytes", 0)), int(marker.get("files", 0))
            self.expected_bytes, self.expected_files = self.done_bytes, self.done_files
            self.rate = 0.0

    def line(self) -> str:
        with self.lock:
            done = f"{_gib(self.done_bytes)}"
            if self.expected_bytes:
                done += f" of {_gib(self.expected_bytes)} ({100 * self.done_bytes / self.expected_bytes:.1f}%)"
            files = f"{self.done_files}" + (f" of {self.expected_files}" if self.expected_files is not None else "")
            return f"{done}, {files} files, {self.rate / 2**20:.1f} MiB/s"

    def metrics(self) -> str:
        """Prometheus text exposition (format 0.0.4)."""
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in self.labels.items())
        with self.lock:
            rows: list[tuple[str, str, str, float | None]] = [
                ("complete", "gauge", "1 once the weights are verified and in place on this node.", self.complete),
                ("done_bytes", "gauge", "Bytes of the weights on this node, partial files included.", self.done_bytes),
                ("expected_bytes", "gauge", "Bytes the source lists for the weights.", self.expected_bytes),
                ("done_files", "gauge", "Files of the weights finished on this node.", self.done_files),
                ("expected_files", "gauge", "Files the source lists for the weights.", self.expected_files),
                ("download_rate_bytes", "gauge", "Bytes per second written over the last interval.", self.rate),
                (
                    "complete_timestamp_seconds",
                    "gauge",
                    "When the weights were found or put in place.",
                    self.complete_at,
                ),
                (
                    "fetch_duration_seconds",
                    "gauge",
                    "How long the fetch took (0: already on the node).",
                    self.fetch_seconds,
                ),
                ("errors_total", "counter", "Failed staging attempts (each is retried).", self.errors),
            ]
        out = []
        for name, kind, help_text, value in rows:
            if value is None:
                continue
            metric = f"sglang_platform_weights_{name}"
            out += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}", f"{metric}{{{inner}}} {float(value)!r}"]
        return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def serve_metrics(progress: Progress, address: str, port: int) -> http.server.ThreadingHTTPServer:
    """/metrics, /ready (200 once complete, else 503) and /healthz on a daemon thread."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # scrapes every few seconds: not worth a log line
            pass

        def do_GET(self) -> None:
            if self.path == "/metrics":
                code, body, kind = 200, progress.metrics(), "text/plain; version=0.0.4; charset=utf-8"
            elif self.path == "/ready":
                code, body, kind = (200 if progress.complete else 503), progress.line() + "\n", "text/plain"
            elif self.path == "/healthz":
                code, body, kind = 200, "ok\n", "text/plain"
            else:
                code, body, kind = 404, "not found\n", "text/plain"
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


@contextlib.contextmanager
def watching(progress: Progress, directory: Path, interval: float, log_every: float) -> Iterator[None]:
    """Measure ``directory`` every ``interval`` seconds (and log every ``log_every``) while the fetch runs."""
    stop = threading.Event()

    def loop() -> None:
        last_log = time.monotonic()
        while not stop.wait(interval):
            progress.measure(directory)
            if time.monotonic() - last_log >= log_every:
                last_log = time.monotonic()
                log(f"{directory.name}: {progress.line()}")

    thread = threading.Thread(target=loop, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        progress.measure(directory)


def switch(model_dir: Path, target: Path) -> None:
    """Point ``model_dir`` at ``target`` (a sibling) in one rename: readers see the old or the new revision."""
    if model_dir.is_symlink() and os.readlink(model_dir) == target.name:
        if served_order(model_dir)[-1:] != [target.name]:
            # Linked before the order was kept: it is the one served now.
            _write_served(model_dir, [n for n in served_order(model_dir) if n != target.name] + [target.name])
        return
    if model_dir.exists() and not model_dir.is_symlink():
        # A directory from before staging (the per-pod download, or copied in by hand): kept as a revision of
        # its own so it can be pruned like one; running servers keep their open files.
        marker = read_marker(model_dir)
        aside = (
            revision_dir(model_dir, {k: v for k, v in marker.items() if k not in MARKER_FIELDS})
            if marker
            else model_dir.with_name(f"{model_dir.name}{REVISION_INFIX}unmarked-{int(time.time())}")
        )
        if aside.exists():
            aside = aside.with_name(f"{aside.name}-{int(time.time())}")
        os.rename(model_dir, aside)
        log(f"{model_dir}: moved the directory that was there to {aside.name}")
        previous: str | None = aside.name
    else:
        previous = os.readlink(model_dir) if model_dir.is_symlink() else None
    link = model_dir.with_name(f".{model_dir.name}.sglang-platform-link")
    link.unlink(missing_ok=True)
    os.symlink(target.name, link)  # relative: resolves inside any mount of the parent directory
    os.replace(link, model_dir)
    served = [name for name in served_order(model_dir) if name not in (previous, target.name)]
    _write_served(model_dir, [*served, *([previous] if previous else []), target.name])


def served_file(model_dir: Path) -> Path:
    return model_dir.with_name(f".{model_dir.name}.sglang-platform-served.json")


def served_order(model_dir: Path) -> list[str]:
    """The revision directories the model path has pointed at, least recently served first. Kept beside the
    link because a revision's own completedAt says when it was fetched, not when it was last served: after
    a -> b -> a (a already complete) -> c, the one served before c is a."""
    try:
        names = json.loads(served_file(model_dir).read_text())
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _write_served(model_dir: Path, names: list[str]) -> None:
    tmp = served_file(model_dir).with_name(served_file(model_dir).name + ".tmp")
    tmp.write_text(json.dumps(names) + "\n")
    os.replace(tmp, served_file(model_dir))


def prune(model_dir: Path, current: Path, keep: int) -> list[str]:
    """Remove revisions beside ``current`` beyond the ``keep`` most recently served (then most recently
    completed, for revisions no switch recorded); partial ones go too."""
    order = served_order(model_dir)
    complete: list[tuple[int, str, Path]] = []
    partial: list[Path] = []
    for path in model_dir.parent.glob(f"{model_dir.name}{REVISION_INFIX}*"):
        if path == current or not path.is_dir() or path.is_symlink():
            continue
        marker = read_marker(path)
        if marker:
            rank = order.index(path.name) if path.name in order else -1
            complete.append((rank, str(marker.get("completedAt", "")), path))
        else:
            partial.append(path)
    doomed = [p for _, _, p in sorted(complete, reverse=True)[keep:]] + partial
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
        log(f"{model_dir}: removed the earlier revision {path.name}")
    if doomed and order:
        _write_served(model_dir, [n for n in order if n not in {p.name for p in doomed}])
    return sorted(p.name for p in doomed)


def _room(directory: Path, sizes: Mapping[str, int] | None) -> None:
    """Refuse to start a fetch that cannot fit beside the revisions already on the node."""
    if not sizes:
        return
    have = model_files(directory) if directory.is_dir() else {}
    needed = sum(size for name, size in sizes.items() if have.get(name) != size)
    free = shutil.disk_usage(directory if directory.is_dir() else directory.parent).free
    if needed > free:
        raise DownloadError(
            f"{directory.parent} has {_gib(free)} free but the revision needs {_gib(needed)} more: lower "
            "staging.keepRevisions, remove an earlier revision or grow the disk"
        )


def stage(env: Mapping[str, str], progress: Progress) -> dict:
    """Fetch the identity's revision beside the others, verify it, mark it complete, switch MODEL_DIR to it."""
    model_dir = Path(env["MODEL_DIR"])
    identity = json.loads(env["MODEL_IDENTITY"])
    target = revision_dir(model_dir, identity)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    keep = int(env.get("STAGE_KEEP_REVISIONS", "1"))
    with locked(model_dir, model_dir.with_name(f".{model_dir.name}.sglang-platform.lock")):
        started = time.monotonic()
        fetched: float | None = None
        plain = model_dir.is_dir() and not model_dir.is_symlink()
        if plain and marker_matches(model_dir, identity) and not marker_matches(target, identity):
            # The weights the pods downloaded themselves before staging existed: adopt them as this revision.
            shutil.rmtree(target, ignore_errors=True)
            os.rename(model_dir, target)
            log(f"{model_dir}: adopted the complete directory as {target.name}")
        elif plain and read_marker(model_dir) is None and not target.exists():
            # An interrupted download (no marker: no gate ever opened on it): resume it as this revision.
            os.rename(model_dir, target)
            log(f"{model_dir}: resuming the incomplete directory as {target.name}")
        if marker_matches(target, identity):
            log(f"{target}: complete ({read_marker(target)}); nothing to fetch")
        else:
            target.mkdir(exist_ok=True)
            (target / MARKER).unlink(missing_ok=True)
            sizes = source_sizes(env, identity, target)
            progress.expect(sizes)
            _room(target, sizes)
            log(f"{target}: fetching {identity}")
            interval = float(env.get("PROGRESS_SECONDS", "10"))
            with watching(progress, target, interval, float(env.get("PROGRESS_LOG_SECONDS", "60"))):
                expected, commit = fetch_recorded(env, identity, target)
            write_marker(target, identity, verify(target, expected), commit)
            fetched = time.monotonic() - started
            log(f"{target}: verified {progress.line()} in {fetched:.0f}s")
        switch(model_dir, target)
        marker = read_marker(model_dir) or {}
        # The commit this node serves, whether fetched now or before: what to compare across a group's nodes.
        log(f"{model_dir} -> {target.name}: {identity} in place, commit {marker.get('commit') or 'unknown'}")
        prune(model_dir, target, keep)
        progress.finish(marker, fetched if fetched is not None else 0.0)
        return marker


def stage_forever(
    env: Mapping[str, str],
    sleep: Callable[[float], None] = time.sleep,
    max_attempts: int | None = None,
    serve: bool = True,
) -> int:
    """The DaemonSet's container: stage until it works (backing off between attempts), then keep serving the
    metrics until the pod is stopped."""
    identity = json.loads(env["MODEL_IDENTITY"])
    model_dir = Path(env["MODEL_DIR"])
    progress = Progress(env.get("STAGE_GROUP", ""), model_dir.name, identity)
    server = None
    if serve:
        server = serve_metrics(progress, env.get("METRICS_ADDRESS", "0.0.0.0"), int(env.get("METRICS_PORT", "9400")))
        host, port = server.server_address[:2]
        log(f"metrics on {host!s}:{port}/metrics")
    delay, limit = float(env.get("RETRY_SECONDS", "30")), float(env.get("RETRY_MAX_SECONDS", "600"))
    attempt = 0
    while True:
        try:
            stage(env, progress)
            break
        except Exception as error:  # hub, store, network or disk: log it, count it, try again
            attempt += 1
            with progress.lock:
                progress.errors += 1
            wait_for = min(limit, delay * 2 ** (attempt - 1))
            log(f"error: {type(error).__name__}: {error}; attempt {attempt} failed, retrying in {wait_for:.0f}s")
            if max_attempts is not None and attempt >= max_attempts:
                return 1
            sleep(wait_for)
    if env.get("STAGE_ONCE") == "1" or server is None:
        return 0
    # A DaemonSet's pod runs for good: the metrics and /ready stay up; SIGTERM ends it (see main).
    threading.Event().wait()
    return 0


def wait(env: Mapping[str, str], sleep: Callable[[float], None] = time.sleep, max_polls: int | None = None) -> bool:
    model_dir = Path(env["MODEL_DIR"])
    identity = json.loads(env["MODEL_IDENTITY"])
    poll = float(env.get("WAIT_POLL_SECONDS", "15"))
    polls = 0
    while not marker_matches(model_dir, identity):
        if max_polls is not None and polls >= max_polls:
            return False
        if polls % 20 == 0:
            have = read_marker(model_dir)
            state = f"holds {have}" if have else "has no completion marker yet"
            hint = f"; {env['WAIT_HINT']}" if env.get("WAIT_HINT") else ""
            log(f"waiting for {identity} in {model_dir}: it {state}{hint}")
        polls += 1
        sleep(poll)
    log(f"{model_dir}: weights complete")
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ("download", "stage", "wait"):
        print(__doc__, file=sys.stderr)
        return 2
    # As PID 1 in a container, SIGTERM would be ignored without a handler: the pod would wait out its grace.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if argv[1] == "download":
            download(os.environ)
        elif argv[1] == "stage":
            return stage_forever(os.environ)
        else:
            wait(os.environ)
    except DownloadError as error:
        log(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
