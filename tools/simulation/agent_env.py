"""A container's environment, resolved the way the kubelet resolves it (pkg/kubelet/kubelet_pods.go
makeEnvironmentVariables, third_party/forked/golang/expansion): pure functions, so the unit tests cover them.

Order, as the kubelet builds it: the Service link variables of the pod's namespace (and the master ``kubernetes``
Service's) first, then ``envFrom`` sources in order, then ``env`` entries in order, a later name replacing an
earlier one; ``$(VAR)`` in a value refers to what is defined above it (and to the Service variables), ``$$`` is a
literal ``$``, and a reference to an undefined name stays as written. The command and args are expanded against
the final environment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

# --- $(VAR) expansion -------------------------------------------------------------------------------------


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes' expansion: ``$(NAME)`` -> lookup(NAME) when defined, else left as ``$(NAME)``; ``$$`` -> ``$``;
    a ``$`` before anything else, or an unclosed ``$(``, is kept literally."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            value = lookup(name)
            out.append(value if value is not None else f"$({name})")
            i = end + 1
        else:
            out.append("$")
            out.append(nxt)
            i += 2
    return "".join(out)


def mapping_lookup(*maps: Mapping[str, str]) -> Callable[[str], str | None]:
    """A lookup over maps, the first holding the name wins."""

    def lookup(name: str) -> str | None:
        for m in maps:
            if name in m:
                return m[name]
        return None

    return lookup


# --- quantities (resourceFieldRef) --------------------------------------------------------------------------

_SUFFIXES = {
    "Ki": Decimal(1024),
    "Mi": Decimal(1024**2),
    "Gi": Decimal(1024**3),
    "Ti": Decimal(1024**4),
    "Pi": Decimal(1024**5),
    "Ei": Decimal(1024**6),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def quantity(value: Any) -> Decimal:
    """A Kubernetes resource quantity ("500m", "64Gi", "1e3", 2) as a Decimal."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:
        raise ValueError(f"not a quantity: {value!r}") from exc
    return number * _SUFFIXES[match.group(2) or ""]


def resource_value(
    container: Mapping[str, Any], resource: str, divisor: Any, node_allocatable: Mapping[str, Any]
) -> str:
    """resourceFieldRef: ``limits.cpu`` etc. of the container, divided by ``divisor`` and rounded up (the
    kubelet's ExtractResourceValueByContainerName); a limit the container does not set is the node's allocatable
    (MergeContainerResourceLimits). CPU defaults its divisor to 1 (a whole core, at least 1 when non-zero)."""
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not name:
        raise ValueError(f"unsupported resource: {resource}")
    resources = container.get("resources") or {}
    raw = (resources.get(kind) or {}).get(name)
    if raw is None and kind == "requests":
        raw = (resources.get("limits") or {}).get(name)  # a request defaults to the limit (API defaulting)
    if raw is None and kind == "limits":
        raw = node_allocatable.get(name)
    if raw is None:
        return "0"
    div = quantity(divisor) if divisor not in (None, "", 0, "0") else Decimal(1)
    if div <= 0:
        raise ValueError(f"invalid divisor {divisor!r}")
    value = quantity(raw)
    if name == "cpu":
        # convertResourceCPUToString: ceil(milli value / milli divisor)
        return str(math.ceil(math.ceil(value * 1000) / (div * 1000)))
    return str(math.ceil(value / div))


# --- fieldRef -----------------------------------------------------------------------------------------------

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def format_map(m: Mapping[str, str]) -> str:
    """metadata.labels / metadata.annotations as a downwardAPI file holds them: ``key="value"`` lines, sorted."""
    return "\n".join(f"{k}={_go_quote(v)}" for k, v in sorted(m.items()))


def _go_quote(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def field_value(pod: Mapping[str, Any], path: str, *, volume: bool = False) -> str:
    """A fieldRef's value (the kubelet's podFieldSelectorRuntimeValue + fieldpath.ExtractFieldPathAsString).
    ``volume``: whole ``metadata.labels``/``metadata.annotations`` are allowed (downwardAPI volumes only)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    match = _SUBSCRIPT.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations") and volume:
        return format_map(meta.get(path.split(".")[1]) or {})
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.hostIPs": ",".join(i.get("ip", "") for i in status.get("hostIPs") or []),
        "status.podIP": status.get("podIP", ""),
        "status.podIPs": ",".join(i.get("ip", "") for i in status.get("podIPs") or []),
    }
    if path not in simple:
        raise ValueError(f"unsupported fieldPath {path!r}")
    return str(simple[path] or "")


# --- Service links ------------------------------------------------------------------------------------------


def _env_name(service: str) -> str:
    return service.upper().replace("-", "_")


def service_env(services: Sequence[Mapping[str, Any]], namespace: str, enable_links: bool) -> dict[str, str]:
    """The Docker-link variables the kubelet gives a pod (getServiceEnvVarMap + envvars.FromServices): for every
    Service of its namespace with a cluster IP when ``enableServiceLinks``, and always for ``kubernetes`` of
    ``default``. Headless Services and those without a cluster IP give none."""
    env: dict[str, str] = {}
    chosen: dict[str, Mapping[str, Any]] = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        ip = (svc.get("spec") or {}).get("clusterIP")
        if not ip or ip == "None":
            continue
        name, ns = meta.get("name", ""), meta.get("namespace", "")
        if ns == "default" and name == "kubernetes":
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_links:
            chosen[name] = svc
    for name in sorted(chosen):
        spec = chosen[name].get("spec") or {}
        ports = spec.get("ports") or []
        if not ports:
            continue
        prefix, ip = _env_name(name), spec["clusterIP"]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(p['name'])}"] = str(p["port"])
        first = ports[0]
        proto = first.get("protocol", "TCP")
        env[f"{prefix}_PORT"] = f"{proto.lower()}://{ip}:{first['port']}"
        for p in ports:
            pp = p.get("protocol", "TCP")
            base = f"{prefix}_PORT_{p['port']}_{pp.upper()}"
            env[base] = f"{pp.lower()}://{ip}:{p['port']}"
            env[f"{base}_PROTO"] = pp.lower()
            env[f"{base}_PORT"] = str(p["port"])
            env[f"{base}_ADDR"] = ip
    return env


# --- the whole environment ----------------------------------------------------------------------------------


class EnvError(Exception):
    """A reference the container cannot start without (the kubelet's CreateContainerConfigError)."""


@dataclass
class Sources:
    """What env resolution reads from the API: ``configmap(ns, name)`` / ``secret(ns, name)`` return the object's
    string data (Secret values decoded) or None when absent."""

    configmap: Callable[[str, str], Mapping[str, str] | None]
    secret: Callable[[str, str], Mapping[str, str] | None]


_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    sources: Sources,
    services: Mapping[str, str],
    node_allocatable: Mapping[str, Any],
) -> dict[str, str]:
    """The container's variables (not yet the image's, nor the runtime's HOSTNAME), raising EnvError for a
    missing ConfigMap, Secret or key that is not optional."""
    ns = (pod.get("metadata") or {}).get("namespace", "default")
    env: dict[str, str] = {}

    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        ref_kind = "configMapRef" if "configMapRef" in source else "secretRef" if "secretRef" in source else None
        if ref_kind is None:
            continue
        ref = source[ref_kind]
        data = (sources.configmap if ref_kind == "configMapRef" else sources.secret)(ns, ref.get("name", ""))
        if data is None:
            if ref.get("optional"):
                continue
            what = "configmap" if ref_kind == "configMapRef" else "secret"
            raise EnvError(f'{what} "{ref.get("name")}" not found')
        for key, value in data.items():
            name = prefix + key
            if _ENV_NAME.match(name):  # invalid names are skipped (the kubelet records an event)
                env[name] = value

    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(item.get("value", ""), mapping_lookup(env, services))
            continue
        value_from = item["valueFrom"]
        if "fieldRef" in value_from:
            env[name] = field_value(pod, value_from["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in value_from:
            ref = value_from["resourceFieldRef"]
            target = container
            if ref.get("containerName"):
                target = _find_container(pod, ref["containerName"]) or container
            env[name] = resource_value(target, ref["resource"], ref.get("divisor"), node_allocatable)
        elif "configMapKeyRef" in value_from or "secretKeyRef" in value_from:
            is_cm = "configMapKeyRef" in value_from
            ref = value_from["configMapKeyRef" if is_cm else "secretKeyRef"]
            data = (sources.configmap if is_cm else sources.secret)(ns, ref.get("name", ""))
            kind = "ConfigMap" if is_cm else "Secret"
            if data is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'{kind.lower()} "{ref.get("name")}" not found')
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise EnvError(f"couldn't find key {ref['key']} in {kind} {ns}/{ref.get('name')}")
            env[name] = data[ref["key"]]
        else:
            raise EnvError(f"env {name}: unsupported valueFrom {sorted(value_from)}")

    merged = dict(services)
    merged.update(env)  # the container's own variables win over the Service links
    return merged


def _find_container(pod: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    spec = pod.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if c.get("name") == name:
            return c
    return None


def command_line(
    container: Mapping[str, Any], entrypoint: list[str], cmd: list[str], env: Mapping[str, str]
) -> list[str]:
    """What the runtime executes: ``command`` replaces the image's ENTRYPOINT (and drops its CMD), ``args``
    replaces CMD; both expanded against the environment."""
    lookup = mapping_lookup(env)
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = [expand(c, lookup) for c in command] + [expand(a, lookup) for a in args or []]
    elif args:
        argv = list(entrypoint) + [expand(a, lookup) for a in args]
    else:
        argv = list(entrypoint) + list(cmd)
    return argv
