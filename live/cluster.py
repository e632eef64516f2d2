"""Checks against the live cluster, run at ``pulumi preview`` (and ``up``) before any resource is registered.

Some mistakes only the cluster can show, and the API server reports them late and badly: a claim of a
StorageClass that does not exist stays Pending (and the pod that mounts it with it), a claim whose size
changed fails the preview with ``spec is immutable after creation except resources.requests ... for bound
claims``, a group too large for the GPU nodes stays Pending after ``up`` returned. Here each becomes a Problem
naming its stack key, reported with the other configuration problems; what is only worth knowing (room for
``maxReplicas``, nodes with other GPUs) becomes a note.

What is read, and which rules judge it:
- StorageClasses and the claims the stack creates (``_missing_classes``, ``_claim_changes`` here);
- Nodes (GPU feature discovery labels: product, memory, NVIDIA driver; allocatable) and the DaemonSet pods on
  them, judged per serving unit (each colocated group, each role of a disaggregated service) by
  ``rules.cluster.check_gpu_nodes``;
- the CRDs of the add-ons the stack trusts the cluster to run (``mode: present``), with the LWS release they
  imply and the LWS controller's gang-scheduling config (``check_crds``, ``lws_floor``, ``check_lws_gang``);
- the server's ``/version`` against ``versions.kubernetes`` (``check_server_version``);
- the Helm releases of the charts the stack installs and Open WebUI's Deployment, against the pins: the upgrade
  paths and downgrades ``rules.upgrades`` refuses (``_upgrades``).
The rules in ``rules.cluster`` are pure (API JSON in, Problems out); this module reads the JSON.

The cluster is the one the Kubernetes provider uses: stack config ``kubernetes:kubeconfig`` (a path or the
kubeconfig itself) and ``kubernetes:context``, else ``$KUBECONFIG`` / ``~/.kube/config``, else the pod's service
account. An unreachable cluster (or none configured, or no ``kubernetes`` client installed) is a note, not an
error: the checks are skipped and the preview goes on. ``tools/render.py`` and the tests
(``SGLANG_PLATFORM_OFFLINE=1``) never call this.

The official client is loaded without its generated API and model classes (``_client``): the reads are plain GETs
of JSON, which the rules take as it comes, and importing those classes cost 0.3 s of every preview.

Extending: read what a check needs through one more method on ``Cluster`` (the protocol the tests fake) and
``KubernetesCluster``, and add the check to ``live_problems``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

from packaging.version import Version

from ..config.benchmark import BENCH_RESOURCES
from ..config.errors import Loc, Problem
from ..config.webui import CLAIM_ACCESS_MODES, CLAIM_NAME
from ..facts.cuda import MIN_DRIVER, image_cuda
from ..facts.gpus import GPUS
from ..facts.quantity import parse_quantity
from ..rules import cluster as rules
from ..rules.flags import release_loc

if TYPE_CHECKING:
    from ..config.stack import PlatformConfig, ServingUnit
    from ..rules.upgrades import Release

# Seconds to connect and to read one answer: a preview must not hang on a cluster that is down.
TIMEOUT = (3.0, 10.0)
# Where the lws chart (release "lws", the namespace its CRD's conversion webhook names) keeps the controller's
# config; a cluster that runs LWS some other way is told the gang-scheduling check could not run.
LWS_CONFIG_MAP = ("lws-system", "lws-manager-config")


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
    read; PermissionError when the credentials may not read it (that check is skipped with a note). Objects are
    the API's JSON (camelCase, as ``kubectl get -o json`` prints them)."""

    def storage_classes(self) -> dict[str, StorageClassInfo]: ...

    def claim(self, namespace: str, name: str) -> ClaimInfo | None: ...

    def nodes(self) -> list[dict[str, Any]]: ...

    def running_pods(self) -> list[dict[str, Any]]: ...

    def crd(self, name: str) -> dict[str, Any] | None: ...

    def config_map(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def version(self) -> dict[str, Any]: ...

    def helm_release_secrets(self, namespace: str, name: str) -> list[dict[str, Any]]: ...

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None: ...


def _client() -> types.SimpleNamespace:
    """The parts of the official ``kubernetes`` client the reads use: its kubeconfig and in-cluster loaders
    (exec plugins, OIDC, client certificates, token files), its Configuration and its REST client. Importing
    ``kubernetes`` runs its package ``__init__``, which imports every API and model class (0.3 s); the reads
    need none of them, so the packages are entered without their ``__init__`` when nothing imported them yet."""
    if "kubernetes.client" not in sys.modules:
        try:
            spec = importlib.util.find_spec("kubernetes")
        except (ImportError, ValueError):  # a broken or blocked installation reads as none
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("the kubernetes client is not installed")
        root = next(iter(spec.submodule_search_locations))
        for name, path in (
            ("kubernetes", root),
            ("kubernetes.client", f"{root}/client"),
            ("kubernetes.config", f"{root}/config"),
        ):
            package = types.ModuleType(name)
            package.__path__ = [path]
            package.__package__ = name
            sys.modules[name] = package
        configuration = importlib.import_module("kubernetes.client.configuration")
        # kube_config imports these two names from the package; ApiClient only for new_client_from_config.
        sys.modules["kubernetes.client"].Configuration = configuration.Configuration  # type: ignore[attr-defined]
        sys.modules["kubernetes.client"].ApiClient = None  # type: ignore[attr-defined]
    return types.SimpleNamespace(
        Configuration=importlib.import_module("kubernetes.client.configuration").Configuration,
        rest=importlib.import_module("kubernetes.client.rest"),
        ApiException=importlib.import_module("kubernetes.client.exceptions").ApiException,
        kube_config=importlib.import_module("kubernetes.config.kube_config"),
        incluster=importlib.import_module("kubernetes.config.incluster_config"),
        ConfigException=importlib.import_module("kubernetes.config.config_exception").ConfigException,
    )


def connect(access: ClusterAccess = ClusterAccess()) -> KubernetesCluster:
    """The one client factory: a client for the provider's cluster, short timeouts, no retries."""
    try:
        k = _client()
    except ImportError as exc:
        raise ClusterUnavailableError(f"the kubernetes client is not installed ({exc})") from None
    configuration = k.Configuration()
    try:
        if access.kubeconfig and "\n" in access.kubeconfig:
            import yaml

            k.kube_config.load_kube_config_from_dict(
                yaml.safe_load(access.kubeconfig), context=access.context, client_configuration=configuration
            )
        elif access.kubeconfig or _kubeconfig_files() or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            k.kube_config.load_kube_config(
                config_file=access.kubeconfig, context=access.context, client_configuration=configuration
            )
        else:
            k.incluster.load_incluster_config(client_configuration=configuration)
    except (k.ConfigException, OSError, ValueError, TypeError) as exc:
        raise ClusterUnavailableError(f"no usable kubeconfig ({exc})") from None
    configuration.retries = False
    return KubernetesCluster(configuration, k)


def _kubeconfig_files() -> list[str]:
    paths = os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)
    return [p for p in paths if p and os.path.exists(os.path.expanduser(p))]


class KubernetesCluster:
    """``Cluster`` read with plain GETs through the official client's configuration and REST client."""

    def __init__(self, configuration: Any, k: types.SimpleNamespace):
        self._configuration = configuration
        self._k = k
        self._rest = k.rest.RESTClientObject(configuration)

    def _get(
        self, path: str, action: str, missing_ok: bool = False, query: dict[str, str] | None = None
    ) -> dict[str, Any] | None:
        headers = {"Accept": "application/json"}
        for auth in self._configuration.auth_settings().values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[auth["key"]] = auth["value"]
        url = self._configuration.host.rstrip("/") + path + (f"?{urlencode(query)}" if query else "")
        with _errors(action, self._k.ApiException, missing_ok) as found:
            response = self._rest.request("GET", url, headers=headers, _request_timeout=TIMEOUT)
            found.append(json.loads(response.data))
        return found[0] if found else None

    def _list(self, path: str, action: str, query: dict[str, str] | None = None) -> list[dict[str, Any]]:
        return list((self._get(path, action, query=query) or {}).get("items") or [])

    def storage_classes(self) -> dict[str, StorageClassInfo]:
        out = {}
        for sc in self._list("/apis/storage.k8s.io/v1/storageclasses", "list StorageClasses"):
            meta = sc.get("metadata") or {}
            default = (meta.get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
            name = meta.get("name", "")
            out[name] = StorageClassInfo(name, sc.get("provisioner", ""), bool(sc.get("allowVolumeExpansion")), default)
        return out

    def claim(self, namespace: str, name: str) -> ClaimInfo | None:
        pvc = self._get(
            f"/api/v1/namespaces/{quote(namespace)}/persistentvolumeclaims/{quote(name)}",
            f"read PersistentVolumeClaim {namespace}/{name}",
            missing_ok=True,
        )
        if pvc is None:
            return None
        spec = pvc.get("spec") or {}
        requests = (spec.get("resources") or {}).get("requests") or {}
        return ClaimInfo(
            namespace,
            name,
            str(requests.get("storage", "")),
            str((pvc.get("status") or {}).get("phase") or ""),
            spec.get("storageClassName") or None,
            tuple(spec.get("accessModes") or ()),
        )

    def nodes(self) -> list[dict[str, Any]]:
        return self._list("/api/v1/nodes", "list Nodes")

    def running_pods(self) -> list[dict[str, Any]]:
        return self._list(
            "/api/v1/pods", "list Pods", query={"fieldSelector": "status.phase!=Succeeded,status.phase!=Failed"}
        )

    def crd(self, name: str) -> dict[str, Any] | None:
        return self._get(
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{quote(name)}",
            f"read CustomResourceDefinition {name}",
            missing_ok=True,
        )

    def config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(
            f"/api/v1/namespaces/{quote(namespace)}/configmaps/{quote(name)}",
            f"read ConfigMap {namespace}/{name}",
            missing_ok=True,
        )

    def version(self) -> dict[str, Any]:
        return self._get("/version", "read the server version") or {}

    def helm_release_secrets(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return self._list(
            f"/api/v1/namespaces/{quote(namespace)}/secrets",
            f"list the Secrets of Helm release {namespace}/{name}",
            query={"labelSelector": f"owner=helm,name={name}"},
        )

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(
            f"/apis/apps/v1/namespaces/{quote(namespace)}/deployments/{quote(name)}",
            f"read Deployment {namespace}/{name}",
            missing_ok=True,
        )


@contextmanager
def _errors(action: str, api_exception: type[Exception], missing_ok: bool = False) -> Iterator[list]:
    """Map the client's errors: 404 (when allowed) -> nothing found, 401 -> ClusterUnavailableError,
    403 -> PermissionError, no connection -> ClusterUnavailableError."""
    import urllib3

    found: list = []
    try:
        with warnings.catch_warnings():
            # A kubeconfig with insecure-skip-tls-verify makes urllib3 warn on every request.
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            yield found
    except api_exception as exc:
        status, reason = getattr(exc, "status", None), getattr(exc, "reason", "")
        if status == 404 and missing_ok:
            return
        if status == 403:
            raise PermissionError(f"not allowed to {action} ({reason})") from None
        if status == 401:
            raise ClusterUnavailableError(f"the cluster refused the credentials ({reason})") from None
        raise ClusterUnavailableError(f"cannot {action}: HTTP {status} {reason}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterUnavailableError(f"cannot reach the cluster to {action} ({type(exc).__name__}: {exc})") from None
    except ValueError as exc:  # not JSON: something else answers at that address
        raise ClusterUnavailableError(f"cannot {action}: the answer is not the API's JSON ({exc})") from None


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
                CLAIM_NAME,
                p.size,
                p.storage_class,
                CLAIM_ACCESS_MODES,
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
    """Problems the live cluster shows, and notes: warnings of the rules, and checks that could not run. Never
    raises: without a reachable cluster every check is skipped with one note."""
    problems: list[Problem] = []
    notes: list[str] = []
    try:
        if cluster is None:
            cluster = connect(access)
        # The version first: a wrong versions.kubernetes makes every other rule judge another cluster.
        problems += _read(
            notes,
            "the server version",
            lambda: rules.check_server_version(cfg.versions.kubernetes, cluster.version()),
            [],
        )
        classes: dict[str, StorageClassInfo] | None = _read(notes, "StorageClasses", cluster.storage_classes, None)
        if classes is not None:
            problems += _missing_classes(cfg, classes)
        for want in wanted_claims(cfg):
            have = _read(
                notes, f"claim {want.namespace}/{want.name}", lambda w=want: cluster.claim(w.namespace, w.name), None
            )
            if have is not None:
                problems += _claim_changes(want, have, classes)
        problems += _gpu_nodes(cfg, cluster, notes)
        problems += _add_ons(cfg, cluster, notes)
        problems += _upgrades(cfg, cluster, notes)
    except ClusterUnavailableError as exc:
        notes.append(
            "live cluster checks skipped (server version, StorageClasses, existing claims, GPU nodes, add-on CRDs, "
            f"Helm releases): {exc}. They run at preview once the Kubernetes provider's cluster is reachable"
        )
    return problems, notes


def _read(notes: list[str], what: str, read: Any, default: Any) -> Any:
    """One read (and its rule): on PermissionError that check is skipped with a note."""
    try:
        return read()
    except PermissionError as exc:
        notes.append(f"live check of {what} skipped: {exc}")
        return default


def driver_need(cfg: PlatformConfig) -> rules.DriverNeed | None:
    """What the nodes' driver must be for the pinned SGLang image; None when it is not theirs to check (the stack's
    GPU Operator installs the driver: rules.drivers checks that one) or the image's CUDA build is unknown."""
    if cfg.gpu_operator.mode == "install" and cfg.gpu_operator.driver.managed:
        return None
    versions = cfg.versions
    cuda = image_cuda(versions.sglang_image, versions.sglang_release)
    needed = MIN_DRIVER.get(cuda) if cuda else None
    if cuda is None or needed is None:
        return None
    return rules.DriverNeed(
        versions.sglang_image, cuda, needed, release_loc(versions), refuse=cfg.preflight.compatibility
    )


def group_demands(cfg: PlatformConfig) -> list[tuple[rules.GroupDemand, ServingUnit]]:
    """What each serving unit (colocated group, or role of a disaggregated service) asks of the GPU nodes, in
    stack order. The demand's index is the unit's position: ``_unit_loc`` turns its keys back into stack keys."""
    out = []
    driver = driver_need(cfg)
    for position, unit in enumerate(cfg.serving_units):
        g = unit.group
        selector = dict(g.node_selector)
        if g.model_volume.type == "hostPath" and g.model.download is not None:
            # The pods wait for the weights-staging DaemonSet and select the nodes it covers.
            selector |= dict(g.model.download.staging.node_selector)
        scaled = g.autoscaling
        demand = rules.GroupDemand(
            index=position,
            name=g.name,
            gpu=GPUS.get(g.gpu) if g.gpu else None,
            pods_per_replica=g.nodes,
            replicas=scaled.min_replicas if scaled is not None else g.replicas,
            requests=g.pod_quantities,
            max_replicas=scaled.max_replicas if scaled is not None else None,
            node_selector=selector,
            tolerations=[t.model_dump(by_alias=True, exclude_none=True) for t in g.tolerations],
            driver=driver,
        )
        out.append((demand, unit))
    return out


def _unit_loc(problem: Problem, units: list[ServingUnit]) -> Problem:
    loc = problem.loc
    if len(loc) >= 2 and loc[0] == "inferenceGroups" and isinstance(loc[1], int):
        return Problem(units[loc[1]].loc(tuple(loc[2:])), problem.message)
    return problem


def _gpu_nodes(cfg: PlatformConfig, cluster: Cluster, notes: list[str]) -> list[Problem]:
    """Every serving unit against the GPU nodes: GFD product and memory, whole GPUs, room at replicas (refused)
    and at maxReplicas (a note), after the DaemonSet pods already on each node."""
    demands = group_demands(cfg)
    if not demands:
        return []
    nodes = _read(notes, "Nodes", cluster.nodes, None)
    if nodes is None:
        return []
    if cfg.gpu_operator.mode == "install" and not any(rules.parse_node(n).gpus > 0 for n in nodes):
        notes.append(
            "live check of the GPU nodes skipped: no node advertises nvidia.com/gpu yet, and this stack installs "
            "the GPU Operator, whose device plugin advertises them; the check runs at the next preview"
        )
        return []
    pods = _read(notes, "the DaemonSet pods on the GPU nodes (their room is taken as free)", cluster.running_pods, [])
    units = [u for _, u in demands]
    # After the groups: the benchmark Jobs that must run where the weights are (a host path), in what is left.
    benchmarks = benchmark_demands(cfg, start=len(units))
    result = rules.check_gpu_nodes([d for d, _ in demands] + [d for d, _ in benchmarks], nodes, pods)
    notes += result.warnings
    problems: list[Problem] = []
    unplaced: list[tuple[str, str]] = []
    for problem in result.problems:
        index = problem.loc[1] if len(problem.loc) >= 2 and problem.loc[0] == "inferenceGroups" else None
        if isinstance(index, int) and index >= len(units):
            unplaced.append((benchmarks[index - len(units)][1], problem.message))
        else:
            problems.append(_unit_loc(problem, units))
    # The benchmark is not what serves: a Job that cannot be placed is worth a warning, not a refusal, and only
    # once the groups themselves fit (else their problems say it all).
    for group, message in unplaced if not problems else []:
        if " and they have " in message:
            detail = message.split(" and they have ", 1)[1].split(": add GPU nodes", 1)[0]
            notes.append(
                f"{group}: its benchmark Job asks {BENCH_RESOURCES['cpu']} cpu and {BENCH_RESOURCES['memory']} on a "
                f"node that holds the weights, and with the groups at replicas they have {detail}: it stays Pending "
                "(and the SLO unmeasured) until a node has room; leave it room (gpuNodes.reserved, the groups' "
                "resources) or a node without a group"
            )
        else:
            notes.append(f"{group}: its benchmark Job cannot be placed: {message}")
    return problems


def benchmark_demands(cfg: PlatformConfig, start: int) -> list[tuple[rules.GroupDemand, str]]:
    """The benchmark Job of each group that has one and keeps its weights on the nodes' disks: its pod reads the
    tokenizer there (components/benchmark.py: the decode role's placement for a disaggregated service)."""
    out: list[tuple[rules.GroupDemand, str]] = []
    for g in cfg.inference_groups:
        if g.benchmark is None or g.model_volume.type != "hostPath":
            continue
        placed = g.roles.get("decode", g) if g.disaggregation is not None else g
        selector = dict(placed.node_selector)
        if g.model.download is not None:
            selector |= dict(g.model.download.staging.node_selector)
        demand = rules.GroupDemand(
            index=start + len(out),
            name=f"{g.name}-benchmark",
            gpu=None,
            pods_per_replica=1,
            replicas=1,
            requests=BENCH_RESOURCES,
            node_selector=selector,
            tolerations=[t.model_dump(by_alias=True, exclude_none=True) for t in placed.tolerations],
        )
        out.append((demand, g.name))
    return out


def _add_ons(cfg: PlatformConfig, cluster: Cluster, notes: list[str]) -> list[Problem]:
    """The CRDs (and their fields) of the add-ons the stack trusts the cluster to run, the LWS release they
    imply, and the LWS controller's gang scheduling against lws.gangScheduling."""
    from ..config.addons import LWS_GANG_SINCE

    groups = [u.group for u in cfg.serving_units]
    needs = rules.crd_needs(
        lws_present=cfg.lws.mode == "present",
        restart_policies=[g.restart_policy for g in groups],
        keda_present_with_autoscaling=cfg.keda.mode == "present" and any(g.autoscaling for g in groups),
        volcano_present_with_groups=cfg.volcano.mode == "present"
        and (cfg.volcano.queue.create or any(g.scheduler == "volcano" for g in groups)),
    )
    if not needs:
        return []
    crds: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(n.crd for n in needs):
        crd = _read(notes, f"CRD {name}", lambda n=name: cluster.crd(n), False)
        if crd is False:
            needs = [n for n in needs if n.crd != name]
        elif crd is not None:
            crds[name] = crd
    problems = rules.check_crds(list(crds.values()), needs)
    if cfg.lws.mode != "present" or rules.LWS_CRD not in crds:
        return problems
    floor = rules.lws_floor(crds[rules.LWS_CRD])
    if cfg.lws.gang_scheduling and (floor is None or Version(floor) < Version(str(LWS_GANG_SINCE))):
        problems.append(
            Problem(
                ("lws", "gangScheduling"),
                f"true, but the cluster's LeaderWorkerSet CRD is of a release older than {LWS_GANG_SINCE} "
                f"({'before 0.6.0' if floor is None else f'at least {floor}'}), which has no gang scheduling: "
                f"upgrade LWS to {LWS_GANG_SINCE} or later, or set lws.gangScheduling to false",
            )
        )
    namespace, name = LWS_CONFIG_MAP
    config_map = _read(
        notes, f"the LWS controller's ConfigMap {namespace}/{name}", lambda: cluster.config_map(namespace, name), False
    )
    if config_map is False:  # not readable: the note says so already
        return problems
    gang = rules.check_lws_gang(cfg.lws.gang_scheduling, config_map, f"ConfigMap {namespace}/{name}")
    notes += gang.warnings
    return problems + gang.problems


def _upgrades(cfg: PlatformConfig, cluster: Cluster, notes: list[str]) -> list[Problem]:
    """The path from what the cluster runs to what the stack pins (config.rules.upgrades): each Helm release the
    stack installs, and Open WebUI's image."""
    from ..rules import upgrades

    problems: list[Problem] = []
    for release in upgrades.releases(cfg):
        secrets = _read(
            notes,
            f"{release.where} (the chart version it runs)",
            lambda r=release: cluster.helm_release_secrets(r.namespace, r.name),
            [],
        )
        deployed = upgrades.newest_revision(secrets)
        if deployed is None:
            continue
        found, release_notes = upgrades.check_release(release, deployed)
        problems += found
        notes += release_notes
        if not found and upgrades.upgrading(release, deployed):
            problems += _new_chart_crds(cfg, cluster, release, notes)
    if cfg.open_webui.enabled:
        running = _read(
            notes,
            f"Deployment {cfg.namespace}/{upgrades.WEBUI_DEPLOYMENT} (the Open WebUI image it runs)",
            lambda: cluster.deployment(cfg.namespace, upgrades.WEBUI_DEPLOYMENT),
            None,
        )
        if running is not None:
            problems += upgrades.check_webui(cfg.versions.open_webui_image, running, cfg.namespace)
    return problems


def _new_chart_crds(cfg: PlatformConfig, cluster: Cluster, release: Release, notes: list[str]) -> list[Problem]:
    """Before a chart upgrade: the CRDs of the new chart's crds/ directories against the cluster's (the chart read
    from a directory mirror; from a repository, a note with the command that applies them)."""
    from ..render.charts import chart_source, mirror_directory, mirror_for
    from ..rules import upgrades

    mirror = mirror_for(cfg, release.key)
    directory = mirror_directory(mirror) if mirror else None
    if directory is None:
        source = chart_source(release.addon, release.pinned, release.repository, mirror)
        chart = source.chart if source.repository is None else f"{source.chart} --repo {source.repository}"
        notes.append(upgrades.crds_note(release, f"helm show crds {chart} --version {release.pinned}"))
        return []
    chart_dir = directory / f"{release.addon}-{release.pinned}"
    crds = upgrades.chart_crds(chart_dir)
    held = {}
    for crd in crds:
        have = _read(notes, f"CRD {crd.name}", lambda n=crd.name: cluster.crd(n), False)
        if have is False:
            return []
        held[crd.name] = have
    return upgrades.check_chart_crds(release, chart_dir, crds, held)


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
