"""The one mock run of the real program, shared by tools/render.py and the tests.

It runs ``__main__.py`` under ``pulumi.runtime.set_mocks`` with a stack's configuration and records
every resource the program registers: type, name, parent, dependencies, options and inputs exactly as
they would reach the engine (secrets still marked secret).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The upstream CRDs the render is validated against, committed with their sources (third_party/crds/README.md,
# tools/crds.py refreshes them): the tests and tools read them here, so a lone clone checks what CI checks.
CRDS = ROOT / "third_party" / "crds"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_MARK = "1b47061264138c4ac30d75fd1eb44270"
PLACEHOLDER = "[secret]"
# The logger Pulumi's mocks send the program's pulumi.log messages to.
MOCK_LOGGER = "sglang-platform.mockrun"


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_MARK


def reveal(value: Any) -> Any:
    """Inputs with secrets unwrapped to their plain values (for assertions on what a secret holds)."""
    if is_secret(value):
        return reveal(value["value"])
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return _number(value)


def conceal(value: Any, hidden: bool = False) -> Any:
    """Inputs as a reviewer may see them: every value under a secret replaced by a placeholder, the
    structure kept; mapping keys sorted so the output is stable whatever order the engine used."""
    if is_secret(value):
        return conceal(value["value"], hidden=True)
    if isinstance(value, dict):
        return {k: conceal(value[k], hidden) for k in sorted(value)}
    if isinstance(value, list):
        return [conceal(v, hidden) for v in value]
    return PLACEHOLDER if hidden else _number(value)


def _number(value: Any) -> Any:
    # The engine protocol carries every number as a double; Kubernetes wants integers back.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class Registered:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    dependencies: list[str]
    inputs: dict[str, Any]
    retain_on_delete: bool = False
    protect: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False

    @property
    def spec(self) -> dict[str, Any]:
        """Inputs with secrets concealed: what the render shows."""
        return conceal(self.inputs)

    @property
    def plain(self) -> dict[str, Any]:
        return reveal(self.inputs)


@dataclass
class RunResult:
    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def of_type(self, type_token: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> Registered:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}; have {[r.name for r in self.resources]}")
        return matches[0]

    def k8s_object(self, kind: str, name: str) -> dict[str, Any]:
        """The rendered Kubernetes object of ``kind`` with ``metadata.name`` ``name``."""
        found = [o for o in kubernetes_objects(self) if o["kind"] == kind and o["metadata"]["name"] == name]
        if len(found) != 1:
            raise KeyError(f"{len(found)} {kind} objects named {name!r}")
        return found[0]

    def urn_of(self, name: str) -> str:
        return self.named(name).urn


@dataclass
class StackConfig:
    values: dict[str, str]
    secret_keys: list[str]
    placeholders: list[str]


def stack_config(
    stack_file: Path, project_file: Path = ROOT / "Pulumi.yaml", fill_missing_secrets: bool = True
) -> StackConfig:
    """Config as the CLI would hand it to the program: project defaults, then the stack file.

    Encrypted values (``secure:``) and the secrets the stack requires but the file lacks become
    placeholders, so the render needs no passphrase; the caller is told which."""
    from sglang_platform.config import PROJECT

    project = yaml.safe_load(project_file.read_text()) or {}
    values: dict[str, str] = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            values[_full(key, PROJECT)] = _encode(decl["default"])
    stack = yaml.safe_load(stack_file.read_text()) or {}
    if not isinstance(stack, dict):
        raise ValueError(f"{stack_file}: not a Pulumi stack file (expected a mapping)")
    secret_keys, placeholders = [], []
    for key, value in (stack.get("config") or {}).items():
        full = _full(key, PROJECT)
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[full] = f"placeholder-for-{full}"
            secret_keys.append(full)
            placeholders.append(full)
        else:
            values[full] = _encode(value)
    if fill_missing_secrets:
        for key in _required_missing_secrets(values, secret_keys):
            full = _full(key, PROJECT)
            values[full] = f"placeholder-for-{full}"
            secret_keys.append(full)
            placeholders.append(full)
    return StackConfig(values, secret_keys, placeholders)


def _required_missing_secrets(values: dict[str, str], secret_keys: list[str]) -> list[str]:
    """The secrets `pulumi up` would refuse to run without (rules.secrets decides): only those get
    placeholders, so the render shows no object that an optional, unset secret would not create."""
    from pydantic import ValidationError

    from sglang_platform.config import PROJECT, SECRET_KEYS, PlatformConfig
    from sglang_platform.config.loader import decode_value
    from sglang_platform.rules.secrets import required_secrets

    prefix = f"{PROJECT}:"
    present = {k.removeprefix(prefix) for k in secret_keys}
    raw = {
        k.removeprefix(prefix): decode_value(v)
        for k, v in values.items()
        if k.startswith(prefix) and k.removeprefix(prefix) not in SECRET_KEYS
    }
    try:
        cfg = PlatformConfig.model_validate(raw)
    except ValidationError:
        return []  # the run reports the invalid stack itself
    return sorted(s.key for s in required_secrets(cfg) if s.key not in present)


def _full(key: str, project: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def _encode(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def run(
    config_values: dict[str, str],
    secret_keys: list[str] | None = None,
    stack: str = "dev",
    program: Path = ROOT / "__main__.py",
) -> RunResult:
    """Run the program under mocks with these config values; never raises for a RunError."""
    # A mock run is an offline render: no hub, S3 or cluster is read (nothing leaves the machine), unless a
    # caller asks for the network with SGLANG_PLATFORM_OFFLINE=0 (the preview-path tests, against local fakes).
    if os.environ.get("SGLANG_PLATFORM_OFFLINE") != "0":
        os.environ["SGLANG_PLATFORM_OFFLINE"] = "1"
    import pulumi
    from pulumi.runtime import mocks as pmocks
    from pulumi.runtime import settings as psettings
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

    result = RunResult()
    thread_loops: set[asyncio.AbstractEventLoop] = set()

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            return f"{args.name}-id", args.inputs

        def call(self, args: pulumi.runtime.MockCallArgs):
            return {}

    class Monitor(pmocks.MockMonitor):
        def RegisterResource(self, request):  # noqa: N802 - gRPC method name
            if _ensure_event_loop().is_closed():  # closed by an earlier run in this executor thread
                asyncio.set_event_loop(asyncio.new_event_loop())
            response = super().RegisterResource(request)
            # The mock monitor gives each executor thread its own event loop; close them after the run
            # instead of leaving them to a noisy garbage collection at interpreter exit.
            thread_loops.add(_ensure_event_loop())
            if request.type != "pulumi:pulumi:Stack":
                from pulumi.runtime import rpc

                inputs = rpc.deserialize_properties(request.object, keep_unknowns=False)
                result.resources.append(
                    Registered(
                        type=request.type,
                        name=request.name,
                        urn=response.urn,
                        parent=request.parent,
                        custom=request.custom,
                        dependencies=list(request.dependencies),
                        inputs=inputs,
                        retain_on_delete=request.retainOnDelete,
                        protect=request.protect,
                        ignore_changes=list(request.ignoreChanges),
                        delete_before_replace=request.deleteBeforeReplace,
                    )
                )
            return response

    mocks = Mocks()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from sglang_platform.config import PROJECT

    # A fresh root stack for every run (the SDK types the argument as a Resource but accepts None).
    psettings.set_root_resource(None)  # type: ignore[arg-type]

    pulumi.runtime.set_mocks(
        mocks,
        project=PROJECT,
        stack=stack,
        preview=False,
        monitor=Monitor(mocks),
        logger=logging.getLogger(MOCK_LOGGER),
    )
    set_all_config(dict(config_values), list(secret_keys or []))

    def program_main():
        runpy.run_path(str(program), run_name="__main__")

    try:
        _sync_await(run_pulumi_func(program_main))
        root = psettings.get_root_resource()
        for key, value in (getattr(root, "outputs", None) or {}).items():
            result.outputs[key] = reveal(_sync_await(pulumi.Output.from_input(value).future()))
    except pulumi.RunError as error:
        result.error = str(error)
    finally:
        main_loop = _ensure_event_loop()
        for loop in thread_loops - {main_loop}:
            if not loop.is_running() and not loop.is_closed():
                loop.close()
    return result


EXAMPLE_STACKS = ROOT / "examples" / "stacks"


def stack_path(name: str) -> Path:
    """``Pulumi.<name>.yaml`` of the project, else of ``examples/stacks`` (stacks that show a setup, such as
    docs/deepseek.md's, which the conformance tests render like the shipped ones)."""
    own = ROOT / f"Pulumi.{name}.yaml"
    example = EXAMPLE_STACKS / f"Pulumi.{name}.yaml"
    return example if not own.exists() and example.exists() else own


def run_stack(
    name: str | None = None,
    stack_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
) -> tuple[RunResult, StackConfig]:
    """Run a named stack (``Pulumi.<name>.yaml``) or any stack file, with optional key overrides."""
    from sglang_platform.config import PROJECT

    path = stack_file or stack_path(str(name))
    cfg = stack_config(path, fill_missing_secrets=secrets is None)
    for key, value in (overrides or {}).items():
        full = _full(key, PROJECT)
        if value is None:
            cfg.values.pop(full, None)
        else:
            cfg.values[full] = _encode(value)
    for key, value in (secrets or {}).items():
        full = _full(key, PROJECT)
        cfg.values[full] = value
        cfg.secret_keys.append(full)
    stack = name or path.stem.removeprefix("Pulumi.")
    return run(cfg.values, cfg.secret_keys, stack=stack), cfg


KIND_ORDER = [
    "Namespace",
    "CustomResourceDefinition",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
]


def kubernetes_objects(result: RunResult) -> list[dict[str, Any]]:
    """Every Kubernetes object the program declares, as it would be sent, in a stable order."""
    objects = []
    for res in result.resources:
        if (
            not res.custom
            or not res.type.startswith("kubernetes:")
            or res.type.startswith(("kubernetes:helm.sh/", "pulumi:providers:"))
        ):
            continue
        spec = res.spec
        if "kind" not in spec or "apiVersion" not in spec:
            continue
        ordered = {"apiVersion": spec["apiVersion"], "kind": spec["kind"], "metadata": spec.get("metadata", {})}
        ordered |= {k: v for k, v in spec.items() if k not in ordered}
        objects.append(ordered)

    def key(obj: dict[str, Any]) -> tuple:
        kind = obj["kind"]
        rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
        meta = obj["metadata"]
        return (rank, kind, meta.get("namespace", ""), meta.get("name", ""))

    return sorted(objects, key=key)


def releases(result: RunResult) -> list[dict[str, Any]]:
    """Every Helm release (and remote manifest) the program installs, with its pinned version."""
    out = []
    for res in result.resources:
        if res.type == "kubernetes:helm.sh/v3:Release":
            spec = res.spec
            out.append(
                {
                    "name": spec.get("name"),
                    "namespace": spec.get("namespace"),
                    "chart": spec.get("chart"),
                    "repository": (spec.get("repositoryOpts") or {}).get("repo"),
                    "version": spec.get("version"),
                    "values": spec.get("values") or {},
                }
            )
    return sorted(out, key=lambda r: (r["namespace"] or "", r["name"] or ""))
