"""``tools/sandbox.py up``: a stack deployed onto the sandbox by the real Pulumi engine.

The stack file is copied with the project into the sandbox's run directory; only the overrides the simulation
needs are merged in (each printed with its reason: tools/sim_stacks.py); `pulumi up` runs inside the sandbox's
namespace with a local backend there; then it waits until every pod of the cluster is Ready (a Job's pods:
Succeeded) and prints the stack outputs as JSON on stdout. Progress and the overrides go to stderr.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tools.simulation.cluster import Options, Sandbox, SandboxError

ROOT = Path(__file__).resolve().parents[2]
# The model hub stand-in's address on lo inside the sandbox (outside the pod and Service ranges) and its ports.
HUB_ADDRESS = "10.246.0.80"
HUB_PORT = 8090
HUB_CDN_PORT = 8091
PASSPHRASE_ENV = "PULUMI_CONFIG_PASSPHRASE"
# Copied into the sandbox's project: what `pulumi up` runs, and nothing of the developer's caches.
PROJECT_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "venv", ".cache", ".ci", "out", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"
)


def say(message: str) -> None:
    print(f"[sandbox {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stack_name(stack_file: Path) -> str:
    parts = stack_file.name.split(".")
    if len(parts) != 3 or parts[0] != "Pulumi" or parts[2] not in ("yaml", "yml"):
        raise SandboxError(f"{stack_file}: a stack file is named Pulumi.<stack>.yaml")
    return parts[1]


def stack_values(stack_file: Path) -> dict[str, Any]:
    doc = yaml.safe_load(stack_file.read_text()) or {}
    return {k.split(":", 1)[1]: v for k, v in (doc.get("config") or {}).items() if k.startswith("sglang-platform:")}


def parse_secrets(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or ":" in key:
            raise SandboxError(f"--secret {pair.split('=', 1)[0]}=...: give KEY=VALUE, KEY a stack key without prefix")
        out[key] = value
    return out


def not_ready(pods: list[dict]) -> list[str]:
    """Why each pod is not Ready (a Job's pod counts once Succeeded); [] when all are."""
    reasons = []
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status") or {}
        name = f"{meta.get('namespace')}/{meta['name']}"
        phase = status.get("phase")
        if phase == "Succeeded":
            continue
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        # A Job's pod is Ready while it runs (no readiness probe): only its end says the Job did its work (the
        # benchmark's result, the downloaded weights).
        job = any(o.get("kind") == "Job" for o in meta.get("ownerReferences") or [])
        if conditions.get("Ready", {}).get("status") == "True" and not job:
            continue
        why = []
        for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            state = c.get("state") or {}
            if "waiting" in state:
                w = state["waiting"]
                why.append(f"{c['name']} waiting: {w.get('reason', '')} {w.get('message', '')}".strip())
            elif "terminated" in state and state["terminated"].get("exitCode", 0) != 0:
                t = state["terminated"]
                why.append(f"{c['name']} exited {t.get('exitCode')} ({t.get('reason', '')})")
            elif not c.get("ready"):
                why.append(f"{c['name']} not ready")
        if job and not why:
            why.append("its Job has not completed")
        scheduled = conditions.get("PodScheduled", {})
        if scheduled.get("status") == "False":
            why.append(f"unschedulable: {scheduled.get('message', '')}")
        reasons.append(f"{name} ({phase}): {'; '.join(why) or 'not Ready'}")
    return reasons


class Deployment:
    """A stack of this project deployed onto one sandbox."""

    def __init__(self, sandbox: Sandbox, stack_file: Path, charts: Path):
        self.sandbox = sandbox
        self.source = stack_file.resolve()
        self.name = stack_name(stack_file)
        self.charts = charts
        self.project = sandbox.run / "projects" / self.name
        self.backend = sandbox.run / "pulumi-state"

    def env(self) -> dict[str, str]:
        return {
            "PULUMI_BACKEND_URL": f"file://{self.backend}",
            PASSPHRASE_ENV: os.environ.get(PASSPHRASE_ENV, "sandbox"),
        }

    def pulumi(self, *args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
        argv = self.sandbox.exec_argv(["pulumi", *args, "--non-interactive"], self.env())
        # Uncaptured output goes to stderr: stdout carries only the outputs' JSON.
        result = subprocess.run(
            argv,
            cwd=self.project,
            stdout=subprocess.PIPE if capture else sys.stderr,
            stderr=subprocess.PIPE if capture else sys.stderr,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            detail = (result.stdout or "")[-6000:] + (result.stderr or "")[-4000:] if capture else ""
            raise SandboxError(f"pulumi {' '.join(args)} failed ({result.returncode})\n{detail}")
        return result

    def prepare(self, changes: dict[str, Any], secrets: dict[str, str]) -> None:
        """The project copied (its code fresh at every `up`, its state kept), the stack file with the simulation's
        overrides, the stack selected or created, the secrets set."""
        from tools.sim_stacks import merged

        self.project.mkdir(parents=True, exist_ok=True)
        self.backend.mkdir(parents=True, exist_ok=True)
        shutil.copytree(ROOT, self.project, ignore=PROJECT_IGNORE, dirs_exist_ok=True)
        venv = self.project / "venv"
        if not venv.exists():
            # The program's virtualenv is the one running this tool: the namespace has no PyPI.
            venv.symlink_to(Path(sys.prefix))
        values = merged(stack_values(self.source), changes)
        doc = yaml.safe_load(self.source.read_text()) or {}
        config = {k: v for k, v in (doc.get("config") or {}).items() if not k.startswith("sglang-platform:")}
        config |= {f"sglang-platform:{k}": v for k, v in values.items()}
        doc["config"] = config
        (self.project / f"Pulumi.{self.name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        self.pulumi("stack", "select", "--create", self.name)
        for key, value in secrets.items():
            self.pulumi("config", "set", "--secret", f"sglang-platform:{key}", value)

    def up(self, refresh: bool = False) -> None:
        flags = ["--refresh"] if refresh else []
        result = self.pulumi("up", "--yes", "--skip-preview", *flags, check=False, capture=False)
        if result.returncode != 0:
            raise SandboxError(f"pulumi up of {self.name} failed (its output is above)")

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.pulumi("stack", "output", "--json").stdout or "{}")

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        reasons: list[str] = ["no pod listed yet"]
        while time.monotonic() < deadline:
            listed = self.sandbox.kubectl("get", "pods", "-A", "-o", "json", check=False)
            if listed.returncode == 0:
                reasons = not_ready(json.loads(listed.stdout)["items"])
                if not reasons:
                    return
            time.sleep(2)
        raise SandboxError("pods not Ready after {:.0f}s:\n  {}".format(timeout, "\n  ".join(reasons)))


def sim_options(name: str, values: dict[str, Any]) -> list[str]:
    """The cluster's shape for this stack: the committed stacks' own (tools/sim_stacks.SIM), else three 8-GPU
    nodes with an A800's GPU feature discovery labels."""
    from tools.sim_stacks import GFD, SIM

    return list(SIM.get(name, ("--nodes", "3", "--pvs", "6", "--pv-size", "300Gi", *GFD)))


def start_hub(sandbox: Sandbox, stack_file: Path) -> str:
    """The model hub stand-in, serving the stack's models at the revisions it names, on an address on lo."""
    from tools.simulation import net

    net.address_setup(sandbox.netns, [HUB_ADDRESS])
    sandbox.start_daemon(
        "model-hub",
        Path(sys.executable),
        [
            "-m",
            "tools.simulation.standins.hub",
            f"--host={HUB_ADDRESS}",
            f"--port={HUB_PORT}",
            f"--cdn-port={HUB_CDN_PORT}",
            f"--models-dir={sandbox.run / 'hub'}",
            f"--stack-file={stack_file.resolve()}",
        ],
        env={"PYTHONPATH": str(ROOT)},
    )
    url = f"http://{HUB_ADDRESS}:{HUB_PORT}"
    deadline = time.monotonic() + 60
    while not sandbox._curl(f"{url}/stand-in/models"):
        if time.monotonic() > deadline or not sandbox.alive("model-hub"):
            raise SandboxError(f"the model hub stand-in did not start:\n{sandbox.tail('model-hub')}")
        time.sleep(0.5)
    return url


def bench_not_run(values: dict[str, Any]) -> str | None:
    """Why the stack's benchmark Jobs cannot run in the sandbox (their release's bench_serving imports what no
    prepared venv holds: tools/bench_serving_releases.py NOT_RUN), or None."""
    from tools.bench_serving_releases import NOT_RUN
    from tools.sim_stacks import _config

    release = _config(values).versions.sglang_release
    return NOT_RUN.get(str(release)) if release is not None else None


def has_benchmark(values: dict[str, Any]) -> bool:
    return any(g.get("benchmark") is not None for g in values.get("inferenceGroups") or [])


def serve_changes(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What serving for real changes beyond the overrides every simulation needs, and why (printed): a benchmark
    whose release's bench_serving cannot run here is left out, so that `up` is not waiting for a Job that fails."""
    why = bench_not_run(values) if has_benchmark(values) else None
    if why is None:
        return {}, []
    groups = copy.deepcopy(values["inferenceGroups"])
    lines = []
    for i, group in enumerate(groups):
        if group.pop("benchmark", None) is not None:
            lines.append(
                f"sglang-platform:inferenceGroups[{i}].benchmark removed ({group.get('name')}): its release's "
                f"bench_serving cannot run in the sandbox: {why}"
            )
    return {"inferenceGroups": groups}, lines


def prepare_images(values: dict[str, Any], dest: Path) -> None:
    """The virtualenvs of the stack's venv images (the gateway's release) and, when the stack benchmarks, the
    SGLang release's bench_serving; made before the namespace: there is no PyPI inside it."""
    from tools.sim_stacks import _config
    from tools.simulation import agent_images

    cfg = _config(values)
    images = [cfg.versions.gateway_image]
    if has_benchmark(values) and bench_not_run(values) is None:
        images.append(cfg.versions.sglang_image)
    dest.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the outputs' JSON
        agent_images.prepare(images, dest, agent_images.load_table())


def needs_nfs_client(values: dict[str, Any]) -> bool:
    """A claim of the stack asks for StorageClass nfs-client (prod's Open WebUI): the sandbox provides it, as the
    e2e suite does (tools/sim_stacks.NFS_CLIENT)."""
    from sglang_platform.live.cluster import class_uses
    from tools.sim_stacks import _config

    return any(use.name == "nfs-client" for use in class_uses(_config(values)))


def serving(sandbox: Sandbox) -> bool:
    """The running sandbox serves for real (started with --serve: the node agent runs its GPU nodes)."""
    return bool(sandbox._state().get("options", {}).get("serve"))


def up(
    stack_file: Path,
    secrets: dict[str, str],
    sandbox: Sandbox,
    charts: Path,
    timeout: float,
    extra: list[str],
    refresh: bool = False,
) -> dict[str, Any]:
    from tools.sim_stacks import NFS_CLIENT, describe_changes, overrides_for

    name = stack_name(stack_file)
    values = stack_values(stack_file)
    # Kept between sandboxes (one venv per image and release), as the node agent's own default.
    images = Path(os.environ.get("SGLANG_SIM_IMAGES", "") or Path.home() / ".cache" / "sglang-sim" / "images")
    if not sandbox.alive("kube-apiserver"):
        prepare_images(values, images)
        sandbox.start(
            Options.parse(["--sim", "--serve", "--image-dir", str(images), *sim_options(name, values), *extra])
        )
    elif serving(sandbox):
        prepare_images(values, images)  # this stack's releases may differ from the first one's
    if needs_nfs_client(values):
        sandbox.apply(NFS_CLIENT)
    changes = overrides_for(values, charts)
    say(f"overrides the simulation needs for {name}:")
    for line in describe_changes(values):
        say(f"  {line}")
    if serving(sandbox):
        hub = start_hub(sandbox, stack_file)
        changes["modelHubs"] = {"huggingface": hub, "modelscope": hub}
        say(f"  sglang-platform:modelHubs = {hub} (both hubs): the sandbox's model hub stand-in (docs/hub-standin.md)")
        more, lines = serve_changes(values)
        changes |= more
        for line in lines:
            say(f"  {line}")
    deployment = Deployment(sandbox, stack_file, charts)
    deployment.prepare(changes, secrets)
    deployment.up(refresh)
    deployment.wait_ready(timeout)
    return deployment.outputs()
