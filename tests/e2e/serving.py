"""What the serving e2e modules share: `tools/sandbox.py` run as a user runs it, a stack file derived from a
committed one (the changes printed), and reads of what runs inside (pods, the stand-ins' counters, the agent's
container processes and logs)."""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml
from conftest import ROOT

from tools.engine import Cluster, Engine

PASSPHRASE = {"PULUMI_CONFIG_PASSPHRASE": "sandbox-serve"}


def sandbox_argv(run: Path, netns: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "tools" / "sandbox.py"), "--run-dir", str(run), "--netns", netns, *args]


def sandbox(*args: str, run: Path, netns: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        sandbox_argv(run, netns, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | PASSPHRASE,
        check=False,
    )


def derived_stack(source: Path, dest_dir: Path, changes: dict[str, Any], why: dict[str, str]) -> Path:
    """``source`` with ``changes`` (top-level stack keys without the prefix, deep-merged; lists replaced) in a stack
    file of the same name in ``dest_dir``; each change printed with its reason."""
    from tools.sim_stacks import merged

    doc = yaml.safe_load(source.read_text())
    values = {k.split(":", 1)[1]: v for k, v in doc["config"].items() if k.startswith("sglang-platform:")}
    values = merged(values, changes)
    doc["config"] = {f"sglang-platform:{k}": v for k, v in values.items()}
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / source.name
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    print(f"changes to {source.name} for this test:", *(f"{k}: {v}" for k, v in why.items()), sep="\n  ")
    return out


def group_change(source: Path, index: int, **keys: Any) -> dict[str, Any]:
    """The ``inferenceGroups`` value of ``source`` with keys of group ``index`` replaced (None removes one)."""
    doc = yaml.safe_load(source.read_text())
    groups = copy.deepcopy(doc["config"]["sglang-platform:inferenceGroups"])
    for key, value in keys.items():
        if value is None:
            groups[index].pop(key, None)
        else:
            groups[index][key] = value
    return {"inferenceGroups": groups}


@dataclass
class Served:
    """A sandbox serving one stack: its run directory and namespace, a Cluster for kubectl, the `up` command."""

    engine: Engine
    run: Path
    netns: str
    stack_file: Path
    secrets: dict[str, str]
    cluster: Cluster = field(init=False)
    up_proc: subprocess.Popen | None = None
    up_out: IO[str] | None = None
    up_err: IO[str] | None = None

    def __post_init__(self) -> None:
        self.cluster = Cluster(self.engine, self.run, netns=self.netns)

    @classmethod
    @contextlib.contextmanager
    def of(cls, engine: Engine, base: Path, stack_file: Path, secrets: dict[str, str], name: str) -> Iterator[Served]:
        # Named after SGLANG_SIM_NETNS when set, as every sandbox is: sessions sharing a machine keep theirs apart.
        prefix = os.environ.get("SGLANG_SIM_NETNS") or "sbx"
        served = cls(engine, base / "run", f"{prefix}-{name}-{uuid.uuid4().hex[:6]}", stack_file, secrets)
        try:
            yield served
        finally:
            served.stop_up()
            down = sandbox("down", run=served.run, netns=served.netns, timeout=240)
            print(down.stderr[-3000:])
            assert down.returncode == 0, down.stderr
            listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
            assert served.netns not in listed

    def up_args(self, stack_file: Path | None = None, *extra: str) -> list[str]:
        secrets = [f"--secret={k}={v}" for k, v in self.secrets.items()]
        return ["up", "--serve", "--stack-file", str(stack_file or self.stack_file), *secrets, *extra]

    def start_up(self, stack_file: Path | None = None, *extra: str) -> None:
        """`tools/sandbox.py up` in the background (its stdout: the outputs' JSON; its stderr: progress)."""
        self.run.parent.mkdir(parents=True, exist_ok=True)
        self.up_out = open(self.run.parent / f"up-{time.monotonic_ns()}.out", "w+")
        self.up_err = open(self.run.parent / f"up-{time.monotonic_ns()}.err", "w+")
        self.up_proc = subprocess.Popen(
            sandbox_argv(self.run, self.netns, *self.up_args(stack_file, *extra)),
            stdout=self.up_out,
            stderr=self.up_err,
            stdin=subprocess.DEVNULL,
            text=True,
            env=os.environ | PASSPHRASE,
            start_new_session=True,
        )

    def finish_up(self, timeout: float = 1200) -> tuple[int, dict[str, Any], str]:
        """Wait for the background `up`: its exit code, outputs and stderr."""
        assert self.up_proc is not None and self.up_out is not None and self.up_err is not None
        try:
            code = self.up_proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop_up()
            raise
        self.up_out.seek(0)
        self.up_err.seek(0)
        out, err = self.up_out.read(), self.up_err.read()
        self.up_proc = None
        return code, (json.loads(out) if code == 0 and out.strip() else {}), err

    def up_progress(self) -> str:
        if self.up_err is None:
            return ""
        self.up_err.flush()
        return Path(self.up_err.name).read_text()[-4000:]

    def stop_up(self) -> None:
        if self.up_proc is not None and self.up_proc.poll() is None:
            os.killpg(self.up_proc.pid, signal.SIGTERM)
            try:
                self.up_proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.up_proc.pid, signal.SIGKILL)
                self.up_proc.wait()

    def up(self, stack_file: Path | None = None, *extra: str, timeout: float = 1200) -> tuple[dict[str, Any], str]:
        self.start_up(stack_file, *extra)
        code, outputs, err = self.finish_up(timeout)
        assert code == 0, err[-8000:]
        return outputs, err

    def exec(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return sandbox("exec", "--", *argv, run=self.run, netns=self.netns, timeout=timeout)

    def curl(self, *args: str) -> tuple[int, str]:
        """curl inside the namespace: (HTTP status, body)."""
        out = self.exec("curl", "-sS", "-m", "60", "-w", "\n%{http_code}", *args)
        body, _, code = out.stdout.rpartition("\n")
        return int(code or 0), body

    def chat(self, base: str, model: str, key: str | None = None, content: str = "Hello") -> tuple[int, str]:
        """A chat completion through ``base`` (an OpenAI base URL ending in /v1), with ``key`` as the bearer token
        when given: (HTTP status, body)."""
        request = json.dumps({"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 8})
        auth = ["-H", f"Authorization: Bearer {key}"] if key is not None else []
        return self.curl(*auth, "-H", "Content-Type: application/json", "-d", request, f"{base}/chat/completions")

    def pods(self, namespace: str, selector: str | None = None) -> list[dict]:
        args = ["pods", "-n", namespace] + (["-l", selector] if selector else [])
        return self.cluster.get(*args)["items"]

    # --- the node agent's view -----------------------------------------------------------------------------

    def node_dir(self, node: str) -> Path:
        """Where the node agent keeps node ``node``'s host paths (docs/node-agent.md)."""
        return self.run / "agent" / "nodes" / node / "hostpath"

    def container_pid(self, pod: dict, container: str) -> int:
        """The host PID of the container's PID 1 (its current instance), as the agent's shim recorded it."""
        meta = pod["metadata"]
        index = next(
            (s.get("restartCount", 0) for s in pod["status"].get("containerStatuses") or [] if s["name"] == container),
            0,
        )
        pid_file = (
            (self.run / "agent" / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}" / "containers")
            / container
            / str(index)
            / "pid"
        )
        return int(pid_file.read_text())

    def container_log(self, pod: dict, container: str, index: int = 0) -> str:
        """A container instance's log as the agent wrote it (CRI format), also after the pod is gone."""
        meta = pod["metadata"]
        path = self.run / "agent" / "logs" / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
        try:
            return (path / container / f"{index}.log").read_text(errors="replace")
        except OSError:
            return ""


class StagerLocks:
    """Hold each node's staging lock (download_model.py's, beside the model directory): that node's stager waits
    for it, as behind another stager of the same node, so the node stays "still staging" until released."""

    def __init__(self, served: Served, nodes: list[str], model_root: str, model_name: str) -> None:
        self.files: dict[str, IO[str]] = {}
        for node in nodes:
            directory = served.node_dir(node) / model_root.lstrip("/")
            directory.mkdir(parents=True, exist_ok=True)
            handle = open(directory / f".{model_name}.sglang-platform.lock", "a")
            fcntl.flock(handle, fcntl.LOCK_EX)
            self.files[node] = handle

    def release(self, *nodes: str) -> None:
        for node in nodes:
            handle = self.files.pop(node, None)
            if handle is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()

    def release_all(self) -> None:
        self.release(*list(self.files))


def init_state(pod: dict, name: str) -> str:
    """An init container's state: waiting, running, done (exit 0), failed (other exit), or absent."""
    for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if status["name"] == name:
            state = status.get("state") or {}
            if "running" in state:
                return "running"
            if "terminated" in state:
                return "done" if state["terminated"].get("exitCode") == 0 else "failed"
            return "waiting"
    return "absent"


def ready(pod: dict) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or []
    )


def leader_and_worker(pods: list[dict]) -> tuple[dict, dict]:
    by_index = {p["metadata"]["labels"].get("leaderworkerset.sigs.k8s.io/worker-index"): p for p in pods}
    return by_index["0"], by_index["1"]


def stand_in_stats(served: Served, pod: dict, key: str | None, port: int = 8000) -> dict:
    """The SGLang stand-in's counters of one pod (docs/standin.md, `GET /stand-in/stats`)."""
    headers = ["-H", f"Authorization: Bearer {key}"] if key else []
    code, body = served.curl(*headers, f"http://{pod['status']['podIP']}:{port}/stand-in/stats")
    assert code == 200, body
    return json.loads(body)
