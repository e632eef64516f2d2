#!/usr/bin/env python3
"""Fill a model directory from Hugging Face, ModelScope or S3, or wait until it is complete.

Shipped by sglang-platform in a ConfigMap. Python >= 3.10 (the SGLang image runs the gate), standard library
only: the source's client library is imported when needed and, if the image lacks it, pip-installed at the
pinned DOWNLOAD_REQUIREMENT into DEPS_DIR.

  download_model.py download   the download Job (PVC) or the first init container of each pod (hostPath)
  download_model.py wait       the init container that holds an SGLang pod until the weights are complete

A download is complete once ``.sglang-platform-complete.json`` exists in MODEL_DIR: written last, after the
files were verified, holding MODEL_IDENTITY (source, repository or bucket/prefix, revision) plus the file
count and bytes. A matching marker means nothing to do; a different identity (changed revision) removes the
marker first, so the gates close, then fetches again. Fetches resume: Hugging Face and ModelScope keep their
own per-file state in the directory, S3 objects already present with the right size are kept.

Environment: MODEL_DIR, MODEL_SOURCE (huggingface, modelscope, s3), MODEL_IDENTITY (JSON), MODEL_REPO,
MODEL_REVISION, S3_BUCKET, S3_PREFIX, S3_ENDPOINT, AWS_REGION, HF_TOKEN, MODELSCOPE_API_TOKEN,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, MAX_WORKERS, DOWNLOAD_REQUIREMENT, DEPS_DIR, WAIT_POLL_SECONDS.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import importlib
import json
import os
import subprocess
import sys
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
def locked(model_dir: Path) -> Iterator[None]:
    """One downloader per directory: a retried Job pod, or two pods of one node sharing a hostPath."""
    with open(model_dir / LOCK, "a") as handle:
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
        raise DownloadError(f"{model_dir} has no config.json after the download")
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


def write_marker(model_dir: Path, identity: Mapping[str, str], files: Mapping[str, int]) -> dict:
    marker = dict(identity) | {
        "files": len(files),
        "bytes": sum(files.values()),
        "completedAt": now(),
    }
    tmp = model_dir / (MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, model_dir / MARKER)
    return marker


def require(module: str, env: Mapping[str, str]):
    """Import ``module``; if the image lacks it, pip-install the pinned requirement first."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pass
    requirement = env.get("DOWNLOAD_REQUIREMENT")
    if not requirement:
        raise DownloadError(f"python module {module} is missing and DOWNLOAD_REQUIREMENT is not set")
    deps = env.get("DEPS_DIR", "/tmp/sglang-platform-deps")
    log(f"installing {requirement} into {deps}")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-cache-dir", "--target", deps, requirement],
        check=True,
    )
    sys.path.insert(0, deps)
    importlib.invalidate_caches()
    return importlib.import_module(module)


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


def fetch_s3(env: Mapping[str, str], model_dir: Path) -> dict[str, int]:
    boto3 = require("boto3", env)
    from botocore.config import Config

    endpoint = env.get("S3_ENDPOINT") or None
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=env.get("AWS_REGION") or None,
        config=Config(
            retries={"max_attempts": 10, "mode": "adaptive"}, s3={"addressing_style": "path"} if endpoint else None
        ),
    )
    bucket, prefix = env["S3_BUCKET"], env.get("S3_PREFIX", "")
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
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
        expected = FETCHERS[identity["source"]](env, model_dir)
        files = verify(model_dir, expected)
        marker = write_marker(model_dir, identity, files)
        log(
            f"{model_dir}: verified {marker['files']} files, {marker['bytes']} bytes "
            f"in {time.monotonic() - started:.0f}s"
        )
        return marker


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
            log(f"waiting for {identity} in {model_dir}: it {state}")
        polls += 1
        sleep(poll)
    log(f"{model_dir}: weights complete")
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ("download", "wait"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[1] == "download":
            download(os.environ)
        else:
            wait(os.environ)
    except DownloadError as error:
        log(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
