"""A pod's volumes, planned (pure) and written (AtomicWriter) the way the kubelet lays them out.

Every volume is a directory under the agent's run dir, bound into each container at its mountPath by the shim:

- configMap, secret, downwardAPI, projected: files computed here (items, defaultMode/mode, optional), written with
  the kubelet's AtomicWriter layout (``..data`` -> ``..<timestamp>``, one symlink per top-level name), refreshed
  by the agent while the pod runs; a subPath mount of one binds the file of the moment (and never updates, like
  the kubelet's). Secret and projected volumes are on tmpfs, as the kubelet keeps them. Always read-only.
- emptyDir: a directory of the pod (tmpfs for ``medium: Memory``, ``sizeLimit`` as its size);
- hostPath: the path under the node's own directory of the run dir (``nodes/<node>/hostpath/<path>``), so two
  pods of one node share it and pods of different nodes do not; ``type`` is checked as the kubelet checks it;
- persistentVolumeClaim (and generic ephemeral volumes): the bound PV's hostPath when it lies under an allowed
  root (the sandbox's PV pool is under its run dir), else a directory of the PV under the run dir.
Anything else (csi, nfs, iscsi, image...) is refused with a clear message: the pod waits in ContainerCreating.
"""

from __future__ import annotations

import base64
import os
import posixpath
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.simulation import agent_env

DEFAULT_MODE = 0o644
API_DATA_KINDS = ("configMap", "secret", "downwardAPI", "projected")


class VolumeError(Exception):
    """A volume that cannot be set up (yet): the pod stays in ContainerCreating with this message."""


@dataclass
class Api:
    """What planning reads: raw API objects (or None when absent), a ServiceAccount token, node allocatable."""

    configmap: Callable[[str, str], Mapping[str, Any] | None]
    secret: Callable[[str, str], Mapping[str, Any] | None]
    pvc: Callable[[str, str], Mapping[str, Any] | None]
    pv: Callable[[str], Mapping[str, Any] | None]
    token: Callable[[Mapping[str, Any], str | None, int], str]  # (pod, audience, expirationSeconds) -> token
    node_allocatable: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Volume:
    name: str
    kind: str  # emptyDir | hostPath | pvc | configMap | secret | downwardAPI | projected
    path: Path
    tmpfs: bool = False
    size: str | None = None
    files: dict[str, tuple[bytes, int]] | None = None  # API data volumes: relative path -> (content, mode)
    readonly: bool = False  # the volume is read-only for every mount
    host_type: str = ""  # hostPath: its type ("" = no check)

    @property
    def api_data(self) -> bool:
        return self.kind in API_DATA_KINDS


@dataclass
class Mount:
    source: str
    target: str
    readonly: bool


# --- API data volumes --------------------------------------------------------------------------------------


def _decoded(obj: Mapping[str, Any], secret: bool) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if secret:
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v)
        for k, v in (obj.get("stringData") or {}).items():
            out[k] = v.encode()
    else:
        for k, v in (obj.get("data") or {}).items():
            out[k] = v.encode()
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(v)
    return out


def _check_path(path: str) -> str:
    if not path or path.startswith("/") or ".." in path.split("/"):
        raise VolumeError(f"invalid file path {path!r}: must be relative and must not contain '..'")
    return posixpath.normpath(path)


def keyed_files(
    kind: str, obj: Mapping[str, Any] | None, source: Mapping[str, Any], ns: str, default_mode: int
) -> dict[str, tuple[bytes, int]]:
    """A configMap/secret source's files: every key, or its ``items`` (key -> path, mode)."""
    name = source.get("name") or source.get("secretName") or ""
    if obj is None:
        if source.get("optional"):
            return {}
        raise VolumeError(f'{kind.lower()} "{name}" not found')
    data = _decoded(obj, kind == "Secret")
    items = source.get("items")
    if not items:
        return {k: (v, default_mode) for k, v in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise VolumeError(
                f"configmap references non-existent config key: {item['key']}"
                if kind == "ConfigMap"
                else f"references non-existent secret key: {item['key']}"
            )
        files[_check_path(item["path"])] = (data[item["key"]], item.get("mode", default_mode))
    return files


def downward_files(
    pod: Mapping[str, Any], items: list[Mapping[str, Any]], default_mode: int, allocatable: Mapping[str, Any]
) -> dict[str, tuple[bytes, int]]:
    files = {}
    for item in items:
        path = _check_path(item["path"])
        mode = item.get("mode", default_mode)
        if "fieldRef" in item:
            try:
                value = agent_env.field_value(pod, item["fieldRef"]["fieldPath"], volume=True)
            except ValueError as exc:
                raise VolumeError(str(exc)) from exc
        elif "resourceFieldRef" in item:
            ref = item["resourceFieldRef"]
            container = next(
                (c for c in (pod.get("spec") or {}).get("containers") or [] if c["name"] == ref.get("containerName")),
                None,
            )
            if container is None:
                raise VolumeError(f"downwardAPI {path}: no container {ref.get('containerName')!r}")
            value = agent_env.resource_value(container, ref["resource"], ref.get("divisor"), allocatable)
        else:
            continue
        files[path] = (value.encode(), mode)
    return files


def projected_files(pod: Mapping[str, Any], source: Mapping[str, Any], api: Api) -> dict[str, tuple[bytes, int]]:
    ns = pod["metadata"]["namespace"]
    default_mode = source.get("defaultMode", DEFAULT_MODE)
    files: dict[str, tuple[bytes, int]] = {}
    for s in source.get("sources") or []:
        if "configMap" in s:
            ref = s["configMap"]
            files |= keyed_files("ConfigMap", api.configmap(ns, ref.get("name", "")), ref, ns, default_mode)
        elif "secret" in s:
            ref = s["secret"]
            files |= keyed_files("Secret", api.secret(ns, ref.get("name", "")), ref, ns, default_mode)
        elif "downwardAPI" in s:
            files |= downward_files(pod, s["downwardAPI"].get("items") or [], default_mode, api.node_allocatable)
        elif "serviceAccountToken" in s:
            ref = s["serviceAccountToken"]
            token = api.token(pod, ref.get("audience"), int(ref.get("expirationSeconds", 3600)))
            # The kubelet writes the token 0600 unless the pod's defaultMode says otherwise (0644 default).
            files[_check_path(ref["path"])] = (token.encode(), default_mode)
        else:
            raise VolumeError(f"projected source {sorted(s)} is not supported by the sandbox agent")
    return files


# --- the plan ---------------------------------------------------------------------------------------------


HOSTPATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File")


def under(path: Path, roots: list[Path]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == r or r in real.parents for r in (Path(os.path.realpath(x)) for x in roots))


def plan_volume(
    pod: Mapping[str, Any],
    vol: Mapping[str, Any],
    pod_dir: Path,
    node_dir: Path,
    run_dir: Path,
    pv_roots: list[Path],
    api: Api,
) -> Volume:
    """One volume of the pod: where it lives on this machine and, for API data, its files."""
    ns = pod["metadata"]["namespace"]
    name = vol["name"]
    vdir = pod_dir / "volumes"
    if "emptyDir" in vol:
        ed = vol["emptyDir"] or {}
        memory = ed.get("medium") == "Memory"
        return Volume(name, "emptyDir", vdir / "empty-dir" / name, tmpfs=memory, size=ed.get("sizeLimit"))
    if "hostPath" in vol:
        hp = vol["hostPath"]
        kind = hp.get("type") or ""
        if kind not in HOSTPATH_TYPES:
            raise VolumeError(f"hostPath type {kind} ({hp['path']}) is not available in the sandbox")
        path = node_dir / "hostpath" / hp["path"].lstrip("/")
        return Volume(name, "hostPath", path, host_type=kind)
    if "persistentVolumeClaim" in vol or "ephemeral" in vol:
        if "ephemeral" in vol:
            claim, readonly = f"{pod['metadata']['name']}-{name}", False
        else:
            claim = vol["persistentVolumeClaim"]["claimName"]
            readonly = bool(vol["persistentVolumeClaim"].get("readOnly"))
        pvc = api.pvc(ns, claim)
        if pvc is None:
            raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        if not pv_name or (pvc.get("status") or {}).get("phase") != "Bound":
            raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound')
        pv = api.pv(pv_name)
        if pv is None:
            raise VolumeError(f'persistentvolume "{pv_name}" not found')
        host = ((pv.get("spec") or {}).get("hostPath") or {}).get("path")
        local = ((pv.get("spec") or {}).get("local") or {}).get("path")
        chosen = host or local
        if chosen and under(Path(chosen), pv_roots):
            path = Path(chosen)
        else:  # any other source (csi, nfs, a hostPath elsewhere): a directory of the PV under the run dir
            path = run_dir / "volumes" / "pv" / pv_name
        return Volume(name, "pvc", path, readonly=readonly)
    if "configMap" in vol:
        src = vol["configMap"]
        files = keyed_files(
            "ConfigMap", api.configmap(ns, src.get("name", "")), src, ns, src.get("defaultMode", DEFAULT_MODE)
        )
        return Volume(name, "configMap", vdir / "configmap" / name, files=files, readonly=True)
    if "secret" in vol:
        src = vol["secret"]
        files = keyed_files(
            "Secret", api.secret(ns, src.get("secretName", "")), src, ns, src.get("defaultMode", DEFAULT_MODE)
        )
        return Volume(name, "secret", vdir / "secret" / name, tmpfs=True, files=files, readonly=True)
    if "downwardAPI" in vol:
        src = vol["downwardAPI"]
        files = downward_files(pod, src.get("items") or [], src.get("defaultMode", DEFAULT_MODE), api.node_allocatable)
        return Volume(name, "downwardAPI", vdir / "downward-api" / name, files=files, readonly=True)
    if "projected" in vol:
        files = projected_files(pod, vol["projected"], api)
        return Volume(name, "projected", vdir / "projected" / name, tmpfs=True, files=files, readonly=True)
    kinds = sorted(k for k in vol if k != "name")
    raise VolumeError(f"volume {name}: {', '.join(kinds)} volumes are not supported by the sandbox agent")


def container_mounts(
    container: Mapping[str, Any], volumes: Mapping[str, Volume], env: Mapping[str, str]
) -> list[Mount]:
    """The container's volumeMounts as binds: subPath (or subPathExpr, expanded against the container's
    environment) below the volume's directory, read-only per mount or per volume."""
    mounts = []
    for vm in container.get("volumeMounts") or []:
        vol = volumes.get(vm["name"])
        if vol is None:
            raise VolumeError(f"volumeMount {vm['name']}: no such volume in the pod")
        source = vol.path
        sub = vm.get("subPath") or ""
        if vm.get("subPathExpr"):
            sub = agent_env.expand(vm["subPathExpr"], agent_env.mapping_lookup(env))
        if sub:
            sub = _check_path(sub)
            source = Path(os.path.realpath(vol.path / sub))
            if not (source == Path(os.path.realpath(vol.path)) or Path(os.path.realpath(vol.path)) in source.parents):
                raise VolumeError(f"subPath {sub!r} of volume {vol.name} points outside the volume")
        if not vm.get("mountPath", "").startswith("/"):
            raise VolumeError(f"mountPath {vm.get('mountPath')!r} is not absolute")
        mounts.append(Mount(str(source), vm["mountPath"], bool(vm.get("readOnly")) or vol.readonly))
    # Parents before children (/var/run before /var/run/secrets/...), otherwise in the pod's order.
    return sorted(mounts, key=lambda m: len(Path(m.target).parts))


def prepare_subpaths(container: Mapping[str, Any], volumes: Mapping[str, Volume], env: Mapping[str, str]) -> None:
    """Create the subPath directories that do not exist yet (the kubelet does, for writable volumes)."""
    for vm in container.get("volumeMounts") or []:
        vol = volumes.get(vm["name"])
        sub = vm.get("subPath") or (
            agent_env.expand(vm["subPathExpr"], agent_env.mapping_lookup(env)) if vm.get("subPathExpr") else ""
        )
        if vol is None or not sub:
            continue
        target = vol.path / _check_path(sub)
        if not target.exists() and not target.is_symlink() and not vol.api_data:
            target.mkdir(parents=True, exist_ok=True)


# --- on disk ----------------------------------------------------------------------------------------------


def check_hostpath(vol: Volume) -> None:
    """hostPath ``type``: create or check, like the kubelet's hostPathTypeChecker (on the node's directory)."""
    kind = vol.host_type
    p = vol.path
    if kind in ("", "DirectoryOrCreate"):
        if kind == "" and p.exists():
            return
        p.mkdir(parents=True, exist_ok=True)
    elif kind == "Directory" and not p.is_dir():
        raise VolumeError(f"hostPath type check failed: {p} is not a directory")
    elif kind == "FileOrCreate":
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch(exist_ok=True)
    elif kind == "File" and not p.is_file():
        raise VolumeError(f"hostPath type check failed: {p} is not a file")


def nested_mountpoints(spec: Mapping[str, Any], volume: str) -> list[str]:
    """The mount points of other volumes beneath a mount of ``volume`` in the same container, relative to it: the
    kubelet makes them in ConfigMap, Secret, downwardAPI and projected volumes (MakeNestedMountpoints), since the
    runtime mounts the volume read-only before it reaches the nested mount."""
    out: set[str] = set()
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        mounts = c.get("volumeMounts") or []
        for m in mounts:
            if m.get("name") != volume:
                continue
            base = m["mountPath"].rstrip("/")
            for other in mounts:
                path = other["mountPath"].rstrip("/")
                rel = path[len(base) + 1 :] if path.startswith(base + "/") else ""
                if rel and ".." not in rel.split("/"):
                    out.add(rel)
    return sorted(out)


def write_atomic(target: Path, files: Mapping[str, tuple[bytes, int]]) -> bool:
    """The kubelet's AtomicWriter: files in a fresh ``..<timestamp>`` dir, ``..data`` swapped to it in one
    rename, a symlink per top-level name into ``..data``; stale names removed. Returns whether anything changed."""
    target.mkdir(parents=True, exist_ok=True)
    data_link = target / "..data"
    if data_link.is_symlink():
        current = target / os.readlink(data_link)
        if _same(current, files):
            return False
    else:
        current = None
    stamp = target / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns() % 10**9}"
    stamp.mkdir()
    for rel, (content, mode) in files.items():
        path = stamp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, mode & 0o7777)
    tmp_link = target / "..data_tmp"
    if tmp_link.is_symlink():
        tmp_link.unlink()
    os.symlink(stamp.name, tmp_link)
    os.replace(tmp_link, data_link)
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        link = target / top
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            os.symlink(f"..data/{top}", link)
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.name not in tops and entry.is_symlink():
            entry.unlink()
    if current is not None and current.exists() and current != stamp:
        shutil.rmtree(current, ignore_errors=True)
    return True


def _same(current: Path, files: Mapping[str, tuple[bytes, int]]) -> bool:
    if not current.is_dir():
        return False
    have = {str(p.relative_to(current)) for p in current.rglob("*") if p.is_file()}
    if have != set(files):
        return False
    for rel, (content, mode) in files.items():
        p = current / rel
        if p.read_bytes() != content or (p.stat().st_mode & 0o7777) != (mode & 0o7777):
            return False
    return True
