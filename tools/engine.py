"""The real engine for the end-to-end tests: the sandbox's simulated cluster (tools/simulation/cluster.py, the
same one ``tools/sandbox.py`` starts) and Pulumi projects run against it.

Safety: every process that talks to the cluster (pulumi, kubectl, the program, its live checks) runs through
``Sandbox.exec_argv``, inside the network namespace whose only interface is loopback; the cluster's daemons run
there too. Nothing here starts a process against the cluster any other way.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from tools.simulation import binaries
from tools.simulation.cluster import Options, Sandbox

ROOT = Path(__file__).resolve().parent.parent
BINARIES = binaries.CLUSTER + binaries.ENGINE
CHART_MIRROR_ENV = "SGLANG_PLATFORM_CHART_MIRROR"
# Guard against a hung command (a chart's Helm wait is at most 15 minutes); not a measurement.
COMMAND_TIMEOUT = 1200
PASSPHRASE = "e2e-passphrase"
# Copied into each project under test: what `pulumi up` runs, and nothing of the developer's caches.
PROJECT_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "venv", ".cache", ".ci", "out", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"
)


class EngineMissingError(Exception):
    """Why the e2e suite cannot run here (no engine binaries, no root)."""


@dataclass(frozen=True)
class Engine:
    """The sandbox's binaries (tools/simulation/binaries.py: ENGINE_BIN, else the project's cache) and the chart
    mirror the stacks install from in the simulation."""

    bin: Path
    charts: Path

    @classmethod
    def find(cls) -> Engine:
        if os.geteuid() != 0:
            raise EngineMissingError("the simulated cluster needs root (ip netns); CI runs the suite as root")
        if not shutil.which("ip"):
            raise EngineMissingError("iproute2 (`ip`) is not installed: `apt-get install iproute2`")
        try:
            bin_dir = binaries.bin_dir(BINARIES)
        except binaries.FetchError as exc:
            raise EngineMissingError(str(exc)) from None
        from tools import chart_source

        charts, what = chart_source.source_dir()
        if not any(charts.glob("*/Chart.yaml")):
            raise EngineMissingError(
                f"no charts in {what}: the stacks install Helm charts, and the simulation reaches no chart "
                f"repository; run `python tools/chart_source.py pull`, or set {CHART_MIRROR_ENV} to a chart mirror"
            )
        return cls(bin_dir, charts)


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


class CommandError(AssertionError):
    pass


def _clip(text: str, keep: int = 12000) -> str:
    """Long output: its start (the resources and their errors) and its end (the summary)."""
    if len(text) <= 2 * keep:
        return text
    return f"{text[:keep]}\n[... {len(text) - 2 * keep} characters ...]\n{text[-keep:]}"


class Cluster:
    """One simulated cluster (the sandbox, with kwok's GPU nodes) in its own run directory."""

    def __init__(
        self, engine: Engine, run_dir: Path, env: dict[str, str] | None = None, netns: str | None = None
    ) -> None:
        self.engine = engine
        self.run_dir = run_dir
        self.sandbox = Sandbox(run_dir, netns)
        self.extra_env = dict(env or {})
        self.started = False
        self.spawned: list[tuple[subprocess.Popen, Any]] = []

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            # The project's own test settings stay out of the programs the engine runs, and so does a shell's
            # PYTHONDONTWRITEBYTECODE: a user's program keeps its bytecode, and without it every run recompiles
            # the program's hundred-odd modules (0.07 s a run, which the one-module floor of bench_preview would
            # not pay).
            if k
            not in ("SGLANG_PLATFORM_OFFLINE", "PYTHONPATH", "VIRTUAL_ENV", "PULUMI_HOME", "PYTHONDONTWRITEBYTECODE")
        }
        env |= {"ENGINE_BIN": str(self.engine.bin)}
        return env | self.extra_env | (extra or {})

    def _run(self, args: list[str], cwd: Path | None, env: dict[str, str], timeout: float, stdin: str | None):
        # A process group of its own, so a hung command is stopped with everything it started (by its id).
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
            raise CommandError(f"{' '.join(args)} did not finish in {timeout}s\n{out}\n{err}") from None
        return Result(args, proc.returncode, out, err)

    def stop_component(self, name: str) -> None:
        """Stop one daemon the sandbox started, by its recorded id, after checking it is still that binary in the
        namespace: a test that runs its own version of it (tests/e2e/test_gang.py)."""
        if not self.sandbox.alive(name):
            raise CommandError(f"{name} is not running in {self.run_dir}: not stopped")
        self.sandbox.stop_components([name])

    def spawn(self, name: str, *cmd: str) -> subprocess.Popen:
        """A daemon of the test's own, inside the network namespace, logging to the run dir's
        logs/<name>.test.log; stopped (by its id) before the cluster."""
        log = open(self.run_dir / "logs" / f"{name}.test.log", "w")  # closed in stop()
        proc = subprocess.Popen(
            self.sandbox.exec_argv(cmd),
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.spawned.append((proc, log))
        return proc

    def start(self, *options: str) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.sandbox.start(Options.parse(["--sim", "--fresh", *options]))
        self.started = True

    def stop(self) -> None:
        for proc, log in reversed(self.spawned):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()
        self.spawned.clear()
        if self.started:
            self.sandbox.stop()
            self.started = False

    def exec(
        self,
        *cmd: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
        stdin: str | None = None,
    ) -> Result:
        """CMD inside the cluster's network namespace."""
        result = self._run(self.sandbox.exec_argv(cmd), cwd, self.env(env), timeout, stdin)
        if check and result.returncode != 0:
            raise CommandError(f"{' '.join(cmd)} failed ({result.returncode}):\n{_clip(result.output)}")
        return result

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> Result:
        return self.exec("kubectl", *args, check=check, stdin=stdin, timeout=180)

    def get(self, *args: str) -> Any:
        return self.kubectl("get", *args, "-o", "json").json()

    def apply(self, documents: list[dict]) -> None:
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))

    def wait_for(self, what: str, condition, timeout: float = 180, interval: float = 1.0) -> Any:
        """Poll until ``condition()`` returns a truthy value (a guard against a stuck controller)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = condition()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"{what}: not reached within {timeout}s (last: {last!r})")


@dataclass
class Project:
    """A copy of a Pulumi project with one stack, run by the engine against the cluster."""

    cluster: Cluster
    source: Path
    dir: Path
    stack: str
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def copy(cls, cluster: Cluster, source: Path, dest: Path, stack: str, env: dict[str, str] | None = None):
        shutil.copytree(source, dest, ignore=PROJECT_IGNORE)
        # The program's virtualenv is the one running these tests (requirements.txt is installed in it, before
        # the network namespace: that has no network, so nothing may need PyPI in there).
        (dest / "venv").symlink_to(Path(sys.prefix))
        backend = dest.parent / f"{dest.name}-state"
        backend.mkdir()
        project_env = {"PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE}
        return cls(cluster, source, dest, stack, project_env | (env or {}))

    @property
    def stack_file(self) -> Path:
        return self.dir / f"Pulumi.{self.stack}.yaml"

    def pulumi(self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> Result:
        return self.cluster.exec(
            "pulumi", *args, "--non-interactive", cwd=self.dir, env=self.env, check=check, timeout=timeout
        )

    def init(self, values: dict[str, Any], secrets: dict[str, str]) -> None:
        """Create the stack from its file, with ``values`` (stack keys without the project prefix) merged in,
        then set the secrets."""
        self.write_values(values)
        self.pulumi("stack", "init", self.stack)
        for key, value in secrets.items():
            self.pulumi("config", "set", "--secret", f"sglang-platform:{key}", value)

    def write_values(self, values: dict[str, Any]) -> None:
        doc = yaml.safe_load(self.stack_file.read_text()) if self.stack_file.exists() else {}
        config = doc.setdefault("config", {}) or {}
        doc["config"] = config
        for key, value in values.items():
            full = key if ":" in key else f"sglang-platform:{key}"
            if value is None:
                config.pop(full, None)
            else:
                config[full] = value
        self.stack_file.write_text(yaml.safe_dump(doc, sort_keys=False))

    def stack_values(self) -> dict[str, Any]:
        """The sglang-platform keys of the stack file (without the prefix; secrets left out)."""
        doc = yaml.safe_load(self.stack_file.read_text()) or {}
        return {
            k.split(":", 1)[1]: v
            for k, v in (doc.get("config") or {}).items()
            if k.startswith("sglang-platform:") and not (isinstance(v, dict) and set(v) == {"secure"})
        }

    def set_path(self, path: str, value: Any) -> None:
        """`pulumi config set --path` (a structured value as JSON)."""
        text = value if isinstance(value, str) else json.dumps(value)
        args = ["config", "set", "--path", f"sglang-platform:{path}", text]
        if not isinstance(value, str):
            args.append("--json" if isinstance(value, dict | list) else "--type=" + _type(value))
        self.pulumi(*args)

    def preview(self, *extra: str, check: bool = True) -> Preview:
        result = self.pulumi("preview", "--json", "--diff", *extra, check=False)
        preview = Preview.parse(result)
        if check and result.returncode != 0:
            raise CommandError(f"pulumi preview failed:\n{preview.error_text or result.output[-20000:]}")
        return preview

    def refresh(self) -> tuple[dict[str, int], dict[str, list[str]]]:
        """`pulumi refresh`: its summary ({same: n, update: m, ...}) and what it found changed, by resource name
        (the properties that differ)."""
        result = self.pulumi("refresh", "--yes", "--skip-preview", "--json")
        summary: dict[str, int] = {}
        drifted: dict[str, list[str]] = {}
        for line in result.stdout.splitlines():
            event = json.loads(line)
            if "summaryEvent" in event:
                summary = event["summaryEvent"].get("resourceChanges") or {}
            meta = (event.get("resOutputsEvent") or {}).get("metadata") or {}
            if (meta and meta.get("op") not in ("same", "refresh", None)) or meta.get("diffs"):
                drifted[meta["urn"].rsplit("::", 1)[-1]] = sorted(meta.get("diffs") or [meta.get("op")])
        return summary, drifted

    def outputs(self) -> dict[str, Any]:
        return self.pulumi("stack", "output", "--json", "--show-secrets").json()


def _state(pid: int) -> str:
    try:
        return next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:"))
    except (OSError, StopIteration):
        return "Z"


def _type(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float"}[type(value)]


@dataclass
class Preview:
    result: Result
    steps: list[dict]
    summary: dict[str, int]
    diagnostics: list[dict]

    @classmethod
    def parse(cls, result: Result) -> Preview:
        try:
            data = result.json()
        except ValueError:
            data = {}
        return cls(result, data.get("steps", []), data.get("changeSummary", {}), data.get("diagnostics", []))

    @property
    def error_text(self) -> str:
        return "\n".join(d.get("message", "") for d in self.diagnostics if d.get("severity") == "error")

    def changed(self) -> dict[str, dict]:
        """Steps that change something, by resource name (the URN's last part)."""
        return {s["urn"].rsplit("::", 1)[-1]: s for s in self.steps if s.get("op") not in ("same", "read")}


# --- render and reality -------------------------------------------------------------------------------


def rendered_objects(result: Any) -> list[dict]:
    """Every Kubernetes object of a mock run, secrets revealed (what the API server should hold)."""
    objects = []
    for res in result.resources:
        if not res.custom or not res.type.startswith("kubernetes:") or res.type.startswith("kubernetes:helm.sh/"):
            continue
        obj = res.plain
        if "kind" in obj and "apiVersion" in obj:
            objects.append(obj)
    return objects


def as_stored(obj: dict) -> dict:
    """A Secret's stringData as the API server keeps it (base64 under data)."""
    if obj.get("kind") != "Secret" or "stringData" not in obj:
        return obj
    out = {k: v for k, v in obj.items() if k != "stringData"}
    data = dict(out.get("data") or {})
    for key, value in obj["stringData"].items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    out["data"] = data
    return out


def mismatches(want: Any, have: Any, path: str = "") -> list[str]:
    """Where ``have`` (a live object) does not hold ``want`` (the render): every rendered field must be there
    with its value; the API server may add defaults. Quantities compare by value ("1024Gi" == "1Ti")."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [f"{path or '.'}: live {have!r}, rendered a mapping"]
        out = []
        for key, value in want.items():
            if key not in have:
                if value in ({}, [], None):
                    continue  # the API server drops empty values
                out.append(f"{path}.{key}: absent live, rendered {value!r}")
                continue
            out += mismatches(value, have[key], f"{path}.{key}")
        return out
    if isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            return [f"{path}: live {have!r}, rendered {want!r}"]
        return [m for i, (w, h) in enumerate(zip(want, have, strict=True)) for m in mismatches(w, h, f"{path}[{i}]")]
    if want == have or _same_quantity(want, have):
        return []
    return [f"{path}: live {have!r}, rendered {want!r}"]


def _same_quantity(a: Any, b: Any) -> bool:
    if not (isinstance(a, str) and isinstance(b, str)):
        return False
    from sglang_platform.facts.quantity import parse_quantity

    try:
        return parse_quantity(a) == parse_quantity(b)
    except (ValueError, InvalidOperation, ArithmeticError):
        return False


def live_objects(cluster: Cluster, objects: list[dict]) -> list[dict]:
    """The live object of each rendered one (kubectl get -f: one call, same order)."""
    names = [
        {
            "apiVersion": o["apiVersion"],
            "kind": o["kind"],
            "metadata": {k: v for k, v in o["metadata"].items() if k in ("name", "namespace")},
        }
        for o in objects
    ]
    listed = cluster.kubectl("get", "-f", "-", "-o", "json", stdin=yaml.safe_dump_all(names)).json()
    return listed["items"] if listed.get("kind") == "List" else [listed]


def decimal(text: str) -> Decimal:
    from sglang_platform.facts.quantity import parse_quantity

    return parse_quantity(text)
