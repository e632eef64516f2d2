#!/usr/bin/env python3
"""SGLang flag tables (``facts/sglang/<VERSION>.json``) from each release's own wheel.

    python tools/sglang_flags.py generate 0.4.9 ...  # write facts/sglang/0.4.9.json from that release's wheel
    python tools/sglang_flags.py fetch               # download the wheel of every shipped table (CI, before
                                                     # the tests that regenerate each table from its wheel),
                                                     # and of each release facts/quantization.py was read from
    python tools/sglang_flags.py list 0.4.3.post2    # the options of a release, from its table

The program checks every flag against the shipped table of the pinned release (``facts.sglang``,
``rules/flags.py``); a table is exactly what ``generate`` writes from the wheel it records (file
name and sha256), which ``tests/test_sglang_tables.py`` re-checks from the cached wheels. Wheels live in
``.cache/sglang-wheels/``; only ``fetch`` and ``generate`` reach the network, with pip.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_version
from packaging.version import Version

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import sglang_table

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "sglang-wheels"
TABLES = ROOT / "facts" / "sglang"
LAUNCH_MODULE = "sglang.launch_server"
# pip download attempts per wheel, and the pause before the next one (PyPI or a proxy hiccups; CI retries).
ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 5.0


def wheel_for(version: str, cache: Path = CACHE) -> Path | None:
    wanted = canonicalize_version(version)
    for wheel in sorted(cache.glob("sglang-*.whl")):
        if canonicalize_version(wheel.name.split("-")[1]) == wanted:
            return wheel
    return None


def launch_server_args(container: dict[str, Any]) -> list[str] | None:
    """The flags after ``-m sglang.launch_server`` in a container's command + args (or in a ``sh -c``
    script), or None when the container does not run the server."""
    words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
    if LAUNCH_MODULE in words:
        return words[words.index(LAUNCH_MODULE) + 1 :]
    for word in words:
        if LAUNCH_MODULE in word and " " in word:
            inner = shlex.split(word)
            rest = inner[inner.index(LAUNCH_MODULE) + 1 :]
            return rest[: rest.index("&&")] if "&&" in rest else rest
    return None


def shipped_wheels(tables: Path = TABLES) -> dict[str, tuple[str, str]]:
    """release -> (wheel file name, sha256) of every shipped flag table."""
    out = {}
    for path in sorted(tables.glob("*.json"), key=lambda p: Version(p.stem)):
        source = json.loads(path.read_text())["source"]
        out[path.stem] = (source["wheel"], source["sha256"])
    return out


def _tag_options(wheel_name: str) -> list[str]:
    """pip options that select exactly this wheel file on any machine (0.5.11 on ships only CPython
    platform wheels, which pip would otherwise pick by the host's own tags)."""
    python, abi, platform = wheel_name.removesuffix(".whl").split("-")[-3:]
    python, abi, platform = python.split(".")[0], abi.split(".")[0], platform.split(".")[0]
    implementation, digits = python[:2], python[2:]
    # A py3 wheel fits any Python 3, but pip reads "3" as 3.0 and then refuses Requires-Python >= 3.10.
    version = f"{digits[0]}.{digits[1:]}" if len(digits) > 1 else f"{sys.version_info.major}.{sys.version_info.minor}"
    return ["--platform", platform, "--python-version", version, "--implementation", implementation, "--abi", abi]


def _pip_download(version: str, dest: Path, wheel_name: str | None) -> None:
    # --no-deps: only the sources are read; torch and friends are never installed.
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    cmd += ["--timeout", "60", "--retries", "5"]
    cmd += _tag_options(wheel_name) if wheel_name else []
    subprocess.run([*cmd, "--dest", str(dest), f"sglang=={version}"], check=True, env=os.environ.copy())


def download(version: str, cache: Path = CACHE, wheel_name: str | None = None, sha: str | None = None) -> Path:
    """The cached wheel of a release (the named file, with the recorded sha256, when given), downloaded with
    pip when missing or when the cached file is not the recorded one (a partial or replaced download).

    pip writes into a scratch directory next to the cache and the wheel is moved into place whole, so an
    interrupted download never leaves a file that looks cached."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / wheel_name if wheel_name else wheel_for(version, cache)
    if path is not None and path.exists():
        if sha is None or sglang_table.sha256(path) == sha:
            print(f"sglang {version}: {path.name} cached in {cache}")
            return path
        print(f"sglang {version}: cached {path.name} is not the recorded wheel (sha256); downloading it again")
        path.unlink()
    for attempt in range(1, ATTEMPTS + 1):
        with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as scratch:
            try:
                _pip_download(version, Path(scratch), wheel_name)
                found = Path(scratch) / wheel_name if wheel_name else wheel_for(version, Path(scratch))
                if found is None or not found.exists():
                    got = ", ".join(p.name for p in Path(scratch).iterdir()) or "nothing"
                    raise FileNotFoundError(f"pip downloaded {got}, not {wheel_name or f'an sglang {version} wheel'}")
                if sha is not None and (actual := sglang_table.sha256(found)) != sha:
                    raise ValueError(f"{found.name} has sha256 {actual}, not the {sha} its flag table records")
                target = cache / found.name
                shutil.move(str(found), target)
                print(f"sglang {version}: downloaded {target.name} to {cache}")
                return target
            except (subprocess.CalledProcessError, FileNotFoundError, ValueError) as failed:
                if attempt == ATTEMPTS:
                    raise RuntimeError(f"sglang {version}: {failed}") from failed
                print(f"sglang {version}: attempt {attempt} of {ATTEMPTS} failed ({failed}); retrying", file=sys.stderr)
        time.sleep(RETRY_PAUSE_SECONDS * attempt)
    raise AssertionError("unreachable")


def read_releases() -> list[str]:
    """The releases facts/quantization.py was read from that ship no flag table: tests/test_quantization_wheels.py
    re-reads their wheels too."""
    from sglang_platform.facts.quantization import RELEASES_READ

    shipped = {canonicalize_version(v) for v in shipped_wheels()}
    return [str(v) for v in RELEASES_READ if canonicalize_version(str(v)) not in shipped]


def fetch(cache: Path = CACHE, tables: Path = TABLES, also: list[str] | None = None) -> int:
    """Every shipped table's wheel into the cache, then the wheel of each release in ``also`` (no table records
    its file: pip picks this machine's); each release is tried even when another fails, and the run fails at the
    end naming every wheel it could not get."""
    failed = []
    wanted: list[tuple[str, str | None, str | None]] = [(v, n, sha) for v, (n, sha) in shipped_wheels(tables).items()]
    wanted += [(v, None, None) for v in also or []]
    for version, wheel_name, sha in wanted:
        try:
            download(version, cache, wheel_name, sha)
        except (RuntimeError, OSError) as error:
            failed.append(str(error))
    if failed:
        print("fetch: missing wheels, the table tests will fail:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


def table_wheel(version: str, cache: Path = CACHE) -> Path:
    """The wheel a release's table is generated from: the one its shipped table names, else any cached or
    downloadable wheel of the release."""
    shipped = shipped_wheels().get(str(Version(version)))
    if shipped is not None:
        return download(version, cache, shipped[0], shipped[1])
    return download(version, cache)


def generate(versions: list[str], cache: Path = CACHE, out: Path | None = None) -> int:
    out = out or TABLES
    for raw in versions:
        version = str(Version(raw))
        wheel = table_wheel(version, cache)
        table = sglang_table.build_table(wheel, version)
        target = out / f"{version}.json"
        target.write_text(sglang_table.dumps(table))
        unresolved = sum(1 for o in table["options"] if o.get("unresolved"))
        print(
            f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: {len(table['options'])} options"
            f" from {wheel.name}" + (f", {unresolved} with unresolved parts (accepted as is)" if unresolved else "")
        )
        for note in table["notes"]:
            print(f"  note: {note}")
    return 0


def list_options(version: str) -> int:
    from sglang_platform.facts.sglang import load_table, missing_table_message

    table = load_table(version)
    if table is None:
        print(missing_table_message(version), file=sys.stderr)
        return 1
    for option in table.options:
        extra = f" choices={list(option.choices)}" if option.choices else ""
        print(" ".join(option.strings) + f" [{option.action}]" + extra)
    return 0


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = cli.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the wheel of every shipped flag table and of every release read")
    gen = sub.add_parser("generate", help="write facts/sglang/<VERSION>.json from the release's wheel")
    gen.add_argument("versions", nargs="+", metavar="VERSION")
    listing = sub.add_parser("list", help="print the options of a release, from its table")
    listing.add_argument("version")
    args = cli.parse_args(argv)
    if args.command == "fetch":
        return fetch(also=read_releases())
    if args.command == "generate":
        return generate(args.versions)
    return list_options(args.version)


if __name__ == "__main__":
    sys.exit(main())
