"""Checks against the live cluster, run at ``pulumi preview`` (and ``up``) before any resource is registered.

Some mistakes only the cluster can show, and the API server reports them late and badly: a claim of a
StorageClass that does not exist stays Pending (and the pod that mounts it with it), a claim whose size
changed fails the preview with ``spec is immutable after creation except resources.requests ... for bound
claims``. Here each becomes a Problem naming its stack key, reported with the other configuration problems.

The cluster is the one the Kubernetes provider uses: stack config ``kubernetes:kubeconfig`` (a path or the
kubeconfig itself) and ``kubernetes:context``, else ``$KUBECONFIG`` / ``~/.kube/config``, else the pod's service
account. An unreachable cluster (or none configured) is a note, not an error: the checks are skipped and the
preview goes on. ``tools/render.py`` and the tests (``SGLANG_PLATFORM_OFFLINE=1``) never call this.

Extending: read what a check needs through one more method on ``Cluster`` (the protocol the tests fake) and
``KubernetesCluster``, and add the check to ``live_problems``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from config.errors import Loc, Problem
from config.quantity import parse_quantity

if TYPE_CHECKING:
    from config.models import PlatformConfig

# Seconds to connect and to read one answer: a preview must not hang on a cluster that is down.
TIMEOUT = (3.0, 10.0)
# The claim components/open_webui.py creates (tests/test_live.py keeps the two equal).
WEBUI_CLAIM = "open-webui-data"
WEBUI_ACCESS_MODES = ("ReadWriteOnce",)


class ClusterUnavailableError(Exception):
    """The cluster cannot be read at all (no kubeconfig, unreachable, credentials refused)."""


@dataclass(frozen=True)
class ClusterAccess:
    """How the Kubernetes provider reaches the cluster (its stack config)."""

    kubeconfig: str | None = None  # kubernetes:kubeconfig, a path or the kubeconfig's YAML
    context: str | None = None  # kubernetes:context


@dataclass(frozen=True)
class StorageClassInfo:
    name: str
    provisioner: str
    allow_volume_expansion: bool
    default: bool = False


@dataclass(frozen=True)
class ClaimInfo:
    namespace: str
    name: str
    size: str  # spec.resources.requests.storage
    phase: str  # Pending, Bound, Lost
    storage_class: str | None
    access_modes: tuple[str, ...]


class Cluster(Protocol):
    """What the checks read. ``None`` where the object does not exist; ClusterUnavailableError when it cannot be
    read; PermissionError when the credentials may not read it (that check is skipped with a note)."""

    def storage_classes(self) -> dict[str, StorageClassInfo]: ...

    def claim(self, namespace: str, name: str) -> ClaimInfo | None: ...


def connect(access: ClusterAccess = ClusterAccess()) -> KubernetesCluster:
    """The one client factory: an API client for the provider's cluster, short timeouts, no retries."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        if access.kubeconfig and "\n" in access.kubeconfig:
            import yaml

            config.load_kube_config_from_dict(
                yaml.safe_load(access.kubeconfig), context=access.context, client_configuration=configuration
            )
        elif access.kubeconfig or _kubeconfig_files() or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_kube_config(
                config_file=access.kubeconfig, context=access.context, client_configuration=configuration
            )
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        raise ClusterUnavailableError(f"no usable kubeconfig ({exc})") from None
    configuration.retries = False
    return KubernetesCluster(client.ApiClient(configuration))


def _kubeconfig_files() -> list[str]:
    paths = os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)
    return [p for p in paths if p and os.path.exists(os.path.expanduser(p))]


class KubernetesCluster:
    """``Cluster`` read through the official ``kubernetes`` client."""

    def __init__(self, api_client: Any):
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self._storage = client.StorageV1Api(api_client)

    def storage_classes(self) -> dict[str, StorageClassInfo]:
        with _errors("list StorageClasses"):
            items = self._storage.list_storage_class(_request_timeout=TIMEOUT).items
        out = {}
        for sc in items:
            annotations = sc.metadata.annotations or {}
            default = annotations.get("storageclass.kubernetes.io/is-default-class") == "true"
            out[sc.metadata.name] = StorageClassInfo(
                sc.metadata.name, sc.provisioner, bool(sc.allow_volume_expansion), default
            )
        return out

    def claim(self, namespace: str, name: str) -> ClaimInfo | None:
        with _errors(f"read PersistentVolumeClaim {namespace}/{name}", missing_ok=True) as found:
            pvc = self._core.read_namespaced_persistent_volume_claim(name, namespace, _request_timeout=TIMEOUT)
            found.append(pvc)
        if not found:
            return None
        pvc = found[0]
        requests = (pvc.spec.resources.requests if pvc.spec.resources else None) or {}
        return ClaimInfo(
            namespace,
            name,
            str(requests.get("storage", "")),
            str(pvc.status.phase if pvc.status else ""),
            pvc.spec.storage_class_name or None,
            tuple(pvc.spec.access_modes or ()),
        )


@contextmanager
def _errors(action: str, missing_ok: bool = False) -> Iterator[list]:
    """Map the client's errors: 404 (when allowed) -> nothing found, 401 -> ClusterUnavailableError,
    403 -> PermissionError, no connection -> ClusterUnavailableError."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    found: list = []
    try:
        with warnings.catch_warnings():
            # A kubeconfig with insecure-skip-tls-verify makes urllib3 warn on every request.
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            yield found
    except ApiException as exc:
        if exc.status == 404 and missing_ok:
            return
        if exc.status == 403:
            raise PermissionError(f"not allowed to {action} ({exc.reason})") from None
        if exc.status == 401:
            raise ClusterUnavailableError(f"the cluster refused the credentials ({exc.reason})") from None
        raise ClusterUnavailableError(f"cannot {action}: HTTP {exc.status} {exc.reason}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterUnavailableError(f"cannot reach the cluster to {action} ({type(exc).__name__}: {exc})") from None


# --- what the stack asks of the cluster -----------------------------------------------------------------


@dataclass(frozen=True)
class ClassUse:
    """A StorageClass a stack key names."""

    loc: Loc
    name: str


@dataclass(frozen=True)
class WantedClaim:
    """A PersistentVolumeClaim the stack creates, as configured."""

    size_loc: Loc
    class_loc: Loc
    modes_loc: Loc
    namespace: str
    name: str
    size: str
    storage_class: str | None
    access_modes: tuple[str, ...]


def class_uses(cfg: PlatformConfig) -> list[ClassUse]:
    uses = []
    if cfg.open_webui.enabled and cfg.open_webui.persistence.storage_class:
        uses.append(ClassUse(("openWebui", "persistence", "storageClass"), cfg.open_webui.persistence.storage_class))
    for i, g in enumerate(cfg.inference_groups):
        pvc = g.model_volume.pvc
        if g.model_volume.type == "pvc" and pvc is not None and pvc.create and pvc.storage_class:
            uses.append(ClassUse(("inferenceGroups", i, "modelVolume", "pvc", "storageClass"), pvc.storage_class))
    if cfg.monitoring.enabled and cfg.monitoring.prometheus.storage_class:
        uses.append(ClassUse(("monitoring", "prometheus", "storageClass"), cfg.monitoring.prometheus.storage_class))
    return uses


def wanted_claims(cfg: PlatformConfig) -> list[WantedClaim]:
    claims = []
    if cfg.open_webui.enabled:
        p = cfg.open_webui.persistence
        base: Loc = ("openWebui", "persistence")
        claims.append(
            WantedClaim(
                (*base, "size"),
                (*base, "storageClass"),
                base,
                cfg.namespace,
                WEBUI_CLAIM,
                p.size,
                p.storage_class,
                WEBUI_ACCESS_MODES,
            )
        )
    for i, g in enumerate(cfg.inference_groups):
        pvc = g.model_volume.pvc
        if g.model_volume.type != "pvc" or pvc is None or not pvc.create or g.model_volume.claim_name is None:
            continue
        base = ("inferenceGroups", i, "modelVolume", "pvc")
        claims.append(
            WantedClaim(
                (*base, "size"),
                (*base, "storageClass"),
                (*base, "accessMode"),
                cfg.namespace,
                g.model_volume.claim_name,
                pvc.size or "",
                pvc.storage_class,
                (pvc.access_mode,),
            )
        )
    return claims


# --- the checks ---------------------------------------------------------------------------------------


def live_problems(
    cfg: PlatformConfig, cluster: Cluster | None = None, access: ClusterAccess = ClusterAccess()
) -> tuple[list[Problem], list[str]]:
    """Problems the live cluster shows, and notes on checks that could not run. Never raises: without a
    reachable cluster every check is skipped with one note."""
    problems: list[Problem] = []
    notes: list[str] = []
    try:
        if cluster is None:
            cluster = connect(access)
        try:
            classes: dict[str, StorageClassInfo] | None = cluster.storage_classes()
        except PermissionError as exc:
            notes.append(f"live check of StorageClasses skipped: {exc}")
            classes = None
        if classes is not None:
            problems += _missing_classes(cfg, classes)
        for want in wanted_claims(cfg):
            try:
                have = cluster.claim(want.namespace, want.name)
            except PermissionError as exc:
                notes.append(f"live check of claim {want.namespace}/{want.name} skipped: {exc}")
                continue
            if have is not None:
                problems += _claim_changes(want, have, classes)
    except ClusterUnavailableError as exc:
        notes.append(
            f"live cluster checks skipped (StorageClasses, existing claims): {exc}. They run at preview once "
            "the Kubernetes provider's cluster is reachable"
        )
    return problems, notes


def _missing_classes(cfg: PlatformConfig, classes: dict[str, StorageClassInfo]) -> list[Problem]:
    have = ", ".join(sorted(classes)) or "none"
    return [
        Problem(use.loc, f"StorageClass {use.name!r} does not exist in the cluster (it has: {have})")
        for use in class_uses(cfg)
        if use.name not in classes
    ]


def _claim_changes(want: WantedClaim, have: ClaimInfo, classes: dict[str, StorageClassInfo] | None) -> list[Problem]:
    """A claim that exists (kept by an earlier destroy, or created by an earlier up) can only change where
    Kubernetes lets it: its size may only grow, only while bound, only on a class that allows expansion; its
    StorageClass and access modes never change."""
    out: list[Problem] = []
    claim = f"claim {have.namespace}/{have.name}"
    keep = "move the data to a new claim (another name) or delete this one with its data"
    if want.storage_class and want.storage_class != have.storage_class:
        was = f"StorageClass {have.storage_class!r}" if have.storage_class else "no StorageClass"
        back = f"set {have.storage_class!r} back" if have.storage_class else "unset it"
        out.append(
            Problem(
                want.class_loc,
                f"{claim} exists with {was}; the StorageClass of a claim cannot change: {back}, or {keep}",
            )
        )
    if set(want.access_modes) != set(have.access_modes):
        out.append(
            Problem(
                want.modes_loc,
                f"{claim} exists with access modes {', '.join(have.access_modes)}; they cannot change: "
                f"keep {', '.join(have.access_modes)}, or {keep}",
            )
        )
    if not want.size or not have.size:
        return out
    wanted, current = parse_quantity(want.size), parse_quantity(have.size)
    if wanted == current:
        return out
    if wanted < current:
        out.append(
            Problem(
                want.size_loc,
                f"{claim} exists with {have.size}, and Kubernetes never shrinks a claim: set {have.size} back, "
                f"or {keep}",
            )
        )
        return out
    grow = f"{claim} exists with {have.size}"
    if have.phase != "Bound":
        why = (
            f"it is {have.phase or 'not bound'}, and the API server lets only a bound claim change its size "
            "(spec is immutable otherwise)"
        )
        out.append(Problem(want.size_loc, f"{grow}; {why}: keep {have.size} until it is Bound"))
    elif not have.storage_class:
        out.append(
            Problem(
                want.size_loc,
                f"{grow} and no StorageClass; only a claim of a StorageClass with allowVolumeExpansion can grow: "
                f"keep {have.size}, or {keep}",
            )
        )
    elif classes is not None and have.storage_class not in classes:
        out.append(
            Problem(
                want.size_loc,
                f"{grow} of StorageClass {have.storage_class!r}, which no longer exists, so it cannot grow: "
                f"keep {have.size}",
            )
        )
    elif classes is not None and not classes[have.storage_class].allow_volume_expansion:
        out.append(
            Problem(
                want.size_loc,
                f"{grow}; its StorageClass {have.storage_class!r} does not allow volume expansion "
                f"(allowVolumeExpansion is not true): keep {have.size}, or have the cluster's admins set "
                "allowVolumeExpansion: true on it (its volume driver must support resizing)",
            )
        )
    # Otherwise the growth is an in-place update of spec.resources.requests.storage; the driver resizes.
    return out
