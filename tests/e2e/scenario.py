"""Checks through the Kubernetes API that the e2e modules share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools import harness
from tools.engine import Cluster, Project, as_stored, live_objects, mismatches, rendered_objects
from tools.sim_stacks import SECRETS

LWS = "leaderworkerset.leaderworkerset.x-k8s.io"
NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"


def render(project: Project) -> harness.RunResult:
    """The offline render (mocks) of the stack file the engine runs, with the same secrets."""
    result, _ = harness.run_stack(stack_file=project.stack_file, secrets=SECRETS[project.stack])
    assert result.error is None, result.error
    return result


def plans_exactly_the_render(project: Project, preview: Any) -> None:
    """A preview of a new stack creates what the offline render registers, and nothing else but the stack."""
    assert {s["op"] for s in preview.steps} == {"create"}
    planned = {type_and_name(s["urn"]) for s in preview.steps}
    rendered = {(r.type, r.name) for r in render(project).resources}
    assert planned - rendered == {("pulumi:pulumi:Stack", f"sglang-platform-{project.stack}")}
    assert rendered <= planned


def planned_charts(preview: Any) -> dict[str, str]:
    """The chart each Helm release of a preview resolves to, by release resource name."""
    return {
        s["urn"].rsplit("::", 1)[1]: s["newState"]["inputs"]["chart"]
        for s in preview.steps
        if s["urn"].split("::")[2].endswith("helm.sh/v3:Release")
    }


def render_and_reality(project: Project, cluster: Cluster) -> tuple[int, list[str]]:
    """Every object of the render exists with the spec the render shows; the differences, if any."""
    rendered = [as_stored(o) for o in rendered_objects(render(project))]
    live = live_objects(cluster, rendered)
    assert len(live) == len(rendered)
    problems = []
    for want, have in zip(rendered, live, strict=True):
        where = f"{want['kind']} {want['metadata'].get('namespace', '')}/{want['metadata']['name']}"
        problems += [f"{where}: {m}" for m in mismatches(want, have)]
    return len(rendered), problems


def lws_ready(cluster: Cluster, namespace: str, name: str) -> dict | None:
    obj = cluster.get(LWS, name, "-n", namespace)
    status = obj.get("status") or {}
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    ready = conditions.get("Available") == "True" and status.get("readyReplicas") == obj["spec"]["replicas"]
    return obj if ready else None


def group_pods(cluster: Cluster, namespace: str, name: str) -> dict[str, list[dict]]:
    """The pods of each group (replica) of a LeaderWorkerSet, by group index."""
    pods = cluster.get("pods", "-n", namespace, "-l", f"{NAME_LABEL}={name}")["items"]
    groups: dict[str, list[dict]] = {}
    for pod in pods:
        groups.setdefault(pod["metadata"]["labels"][GROUP_INDEX_LABEL], []).append(pod)
    return groups


def pod_states(cluster: Cluster, namespace: str, name: str) -> list[str]:
    """Each pod of a LeaderWorkerSet with its phase, node and why it is not scheduled (for failure messages)."""
    out = []
    for pods in group_pods(cluster, namespace, name).values():
        for pod in pods:
            status = pod.get("status") or {}
            why = [c.get("message", "") for c in status.get("conditions") or [] if c.get("status") == "False"]
            out.append(f"{pod['metadata']['name']} {status.get('phase')} on {pod['spec'].get('nodeName')} {why}")
    return out


def nodes_of(pods: list[dict]) -> list[str]:
    return sorted(p["spec"].get("nodeName") or "" for p in pods)


def running_on_distinct_nodes(cluster: Cluster, namespace: str, name: str, size: int) -> dict[str, list[str]]:
    """Every group of the LeaderWorkerSet is Ready with ``size`` Running pods, each on its own node."""
    try:
        obj = cluster.wait_for(
            f"LeaderWorkerSet {namespace}/{name} Available", lambda: lws_ready(cluster, namespace, name)
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; its pods: {pod_states(cluster, namespace, name)}") from None
    groups = group_pods(cluster, namespace, name)
    assert len(groups) == obj["spec"]["replicas"], groups.keys()
    placement = {}
    for index, pods in groups.items():
        assert len(pods) == size, [p["metadata"]["name"] for p in pods]
        assert {p["status"]["phase"] for p in pods} == {"Running"}
        nodes = nodes_of(pods)
        assert len(set(nodes)) == size, f"group {index} of {name}: pods share a node: {nodes}"
        placement[index] = nodes
    return placement


def deployment_ready(cluster: Cluster, namespace: str, name: str) -> dict | None:
    obj = cluster.get("deployment", name, "-n", namespace)
    status = obj.get("status") or {}
    return obj if status.get("readyReplicas") == obj["spec"]["replicas"] else None


def job_complete(cluster: Cluster, namespace: str, name: str) -> dict | None:
    obj = cluster.get("job", name, "-n", namespace)
    conditions = {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}
    return obj if conditions.get("Complete") == "True" else None


def diff_kinds(step: dict) -> dict[str, str]:
    """A step's detailed diff as {property path: add | update | delete}."""
    return {path: d["kind"] for path, d in (step.get("detailedDiff") or {}).items()}


def not_a_server_error(text: str) -> None:
    """A refusal must be the program's own message, never the API server's."""
    for marker in ("is invalid", "is immutable", "Internal error", "the server"):
        assert marker not in text, text


def changed_paths(before: Any, after: Any, path: str = "") -> set[str]:
    """The property paths where two renders of one object differ, spelled as Pulumi's detailed diff spells
    them (``spec.template.spec.containers[0].image``)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: set[str] = set()
        for key in before.keys() | after.keys():
            sub = f"{path}.{key}" if path else key
            if key not in before or key not in after:
                out.add(sub)
            else:
                out |= changed_paths(before[key], after[key], sub)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        pairs = enumerate(zip(before, after, strict=True))
        return {p for i, (b, a) in pairs for p in changed_paths(b, a, f"{path}[{i}]")}
    return set() if before == after else {path}


def rendered_spec(project: Project, kind: str, name: str, values: dict[str, Any]) -> dict:
    """One object of the render of the project's stack with ``values`` (stack keys) changed."""
    from tools.sim_stacks import merged

    current = project.stack_values()
    result, _ = harness.run_stack(
        stack_file=project.stack_file,
        overrides={k: v for k, v in merged(current, values).items() if k in values},
        secrets=SECRETS[project.stack],
    )
    assert result.error is None, result.error
    (obj,) = [o for o in rendered_objects(result) if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def type_and_name(urn: str) -> tuple[str, str]:
    """``urn:pulumi:<stack>::<project>::<parent types$>type::name`` -> (type, name)."""
    _, _, types, name = urn.split("::", 3)
    return types.rsplit("$", 1)[-1], name


def can_i(cluster: Cluster, account: str, namespace: str, *request: str) -> bool:
    """``kubectl auth can-i`` as a ServiceAccount: the API server's own RBAC decision."""
    result = cluster.kubectl(
        "auth", "can-i", *request, "-n", namespace, f"--as=system:serviceaccount:{namespace}:{account}", check=False
    )
    answer = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert answer in ("yes", "no"), result.output
    return answer == "yes"


def flag_selectors(args: list[str]) -> dict[str, str]:
    """The gateway's discovery selectors from its arguments: ``--selector k=v ...`` (or prefill/decode), as
    comma-joined label selectors by flag."""
    out: dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg in ("--selector", "--prefill-selector", "--decode-selector"):
            pairs = []
            for value in args[i + 1 :]:
                if value.startswith("--"):
                    break
                pairs.append(value)
            out[arg] = ",".join(pairs)
    return out


def gateway_discovery(cluster: Cluster, namespace: str, name: str) -> dict[str, list[str]]:
    """The gateway Deployment is Ready, and its ServiceAccount may do exactly what its discovery does (LIST and
    WATCH pods in its namespace, nothing else): the API server answers its selector's LIST, made as that
    ServiceAccount, with the leader pods it should route to. Returns those pods' names by selector flag."""
    deployment = cluster.wait_for(
        f"gateway {namespace}/{name} ready", lambda: deployment_ready(cluster, namespace, name)
    )
    pod_spec = deployment["spec"]["template"]["spec"]
    account = pod_spec["serviceAccountName"]
    assert can_i(cluster, account, namespace, "list", "pods")
    assert can_i(cluster, account, namespace, "watch", "pods")
    for request in (("get", "secrets"), ("list", "services"), ("delete", "pods"), ("list", "leaderworkersets")):
        assert not can_i(cluster, account, namespace, *request), request
    assert not can_i(cluster, account, "default", "list", "pods")
    (container,) = [c for c in pod_spec["containers"] if c["name"] == "gateway"]
    found = {}
    for flag, selector in flag_selectors(container["args"]).items():
        listed = cluster.get(
            "pods", "-n", namespace, "-l", selector, f"--as=system:serviceaccount:{namespace}:{account}"
        )["items"]
        found[flag] = sorted(p["metadata"]["name"] for p in listed)
        # Leaders only: workers serve no API.
        assert {p["metadata"]["labels"].get("role") for p in listed} <= {"leader"}, found
    return found


def daemon_set_on_gpu_nodes(cluster: Cluster, namespace: str, name: str) -> list[str]:
    """The DaemonSet has a Running pod on every node labelled nvidia.com/gpu.present=true, and only there;
    returns those nodes."""
    gpu_nodes = sorted(
        n["metadata"]["name"] for n in cluster.get("nodes", "-l", "nvidia.com/gpu.present=true")["items"]
    )
    assert gpu_nodes

    def ready():
        obj = cluster.get("daemonset", name, "-n", namespace)
        status = obj.get("status") or {}
        if status.get("desiredNumberScheduled") != len(gpu_nodes) or status.get("numberReady") != len(gpu_nodes):
            return None
        return obj

    obj = cluster.wait_for(f"DaemonSet {namespace}/{name} ready on the GPU nodes", ready)
    selector = ",".join(f"{k}={v}" for k, v in obj["spec"]["selector"]["matchLabels"].items())
    pods = cluster.get("pods", "-n", namespace, "-l", selector)["items"]
    assert {p["status"]["phase"] for p in pods} == {"Running"}
    assert nodes_of(pods) == gpu_nodes
    return gpu_nodes


# --- in-place upgrades (tests/e2e/test_upgrade.py) ------------------------------------------------------------------

# The kinds an in-place upgrade must keep: the same objects (UIDs) before and after. Their loss is what lws#880 did
# (a chart upgrade deleted the LWS CRD and with it every LeaderWorkerSet); a claim or Secret lost is data lost.
KEPT_KINDS = {
    "LeaderWorkerSet": LWS,
    "PodGroup": "podgroups.scheduling.volcano.sh",
    "Queue": "queues.scheduling.volcano.sh",
    "ScaledObject": "scaledobjects.keda.sh",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Secret": "secrets",
    "CustomResourceDefinition": "customresourcedefinitions.apiextensions.k8s.io",
}
# The workloads whose pods roll when their template changes. LWS runs each group as StatefulSets (the leaders',
# and one per group for its workers), so the group pods are among these too.
WORKLOAD_KINDS = {"Deployment": "deployments", "DaemonSet": "daemonsets", "StatefulSet": "statefulsets"}


def listed(cluster: Cluster, resource: str) -> list[dict]:
    """Every object of a resource in every namespace; none where the cluster has no such type (Volcano's kinds in a
    stack without Volcano)."""
    # With managedFields (kubectl hides them): their times say when each writer last changed the object.
    result = cluster.kubectl("get", resource, "-A", "-o", "json", "--show-managed-fields", check=False)
    if result.returncode != 0:
        assert "doesn't have a resource type" in result.stderr, result.output
        return []
    return result.json()["items"]


def object_key(obj: dict) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


def kept_uids(cluster: Cluster) -> dict[str, dict[str, str]]:
    """The UID of every object of the kept kinds, by kind and namespace/name."""
    return {
        kind: {object_key(o): o["metadata"]["uid"] for o in listed(cluster, resource)}
        for kind, resource in KEPT_KINDS.items()
    }


def lost_or_replaced(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> list[str]:
    """Objects of ``before`` that are gone or another object (a new UID) in ``after``."""
    out = []
    for kind, objects in before.items():
        for key, uid in objects.items():
            now = after[kind].get(key)
            if now != uid:
                out.append(f"{kind} {key}: {'deleted' if now is None else 'replaced'}")
    return out


@dataclass
class Workload:
    uid: str
    template: Any
    pods: dict[str, str] = field(default_factory=dict)  # pod name -> UID


def workloads(cluster: Cluster) -> dict[str, Workload]:
    """Every Deployment, DaemonSet and StatefulSet with its pod template and the pods it runs (a Deployment's
    through its ReplicaSets)."""
    out: dict[str, Workload] = {}
    owner: dict[str, str] = {}
    for kind, resource in WORKLOAD_KINDS.items():
        for obj in listed(cluster, resource):
            key = f"{kind} {object_key(obj)}"
            out[key] = Workload(obj["metadata"]["uid"], obj["spec"]["template"])
            owner[obj["metadata"]["uid"]] = key
    for rs in listed(cluster, "replicasets"):
        for ref in rs["metadata"].get("ownerReferences") or []:
            if ref["uid"] in owner:
                owner[rs["metadata"]["uid"]] = owner[ref["uid"]]
    for pod in listed(cluster, "pods"):
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref["uid"] in owner:
                out[owner[ref["uid"]]].pods[pod["metadata"]["name"]] = pod["metadata"]["uid"]
    return out


def unsettled(cluster: Cluster) -> list[str]:
    """Workloads whose rollout is not finished (not every replica updated and ready) and pods still terminating."""
    out = []
    for obj in listed(cluster, "deployments") + listed(cluster, "statefulsets"):
        spec, status = obj["spec"], obj.get("status") or {}
        want = spec.get("replicas", 1)
        done = status.get("observedGeneration") == obj["metadata"]["generation"] and want == status.get(
            "updatedReplicas", 0
        ) == status.get("readyReplicas", 0)
        if obj["kind"] == "StatefulSet":
            done = done and status.get("currentRevision") == status.get("updateRevision")
        if not done:
            out.append(f"{obj['kind']} {object_key(obj)}")
    for obj in listed(cluster, "daemonsets"):
        status = obj.get("status") or {}
        want = status.get("desiredNumberScheduled", 0)
        if not (
            status.get("observedGeneration") == obj["metadata"]["generation"]
            and want == status.get("updatedNumberScheduled", 0) == status.get("numberReady", 0)
        ):
            out.append(f"DaemonSet {object_key(obj)}")
    pods = listed(cluster, "pods")
    out += [f"pod {object_key(p)} terminating" for p in pods if p["metadata"].get("deletionTimestamp")]
    return out


def settle(cluster: Cluster) -> None:
    """Wait until every rollout is finished (kwok's pods are Ready as soon as they are bound)."""
    cluster.wait_for("every rollout finished", lambda: not unsettled(cluster) or None, timeout=300, interval=2)


@dataclass(frozen=True)
class HelmRevision:
    release: str  # namespace/name
    revision: int
    status: str
    chart: str  # name-version
    written: str  # when Helm wrote the record (the operation's start)
    updated: str  # its last change (marked deployed, superseded, failed)
    manifest: str


def helm_revisions(cluster: Cluster) -> dict[str, list[HelmRevision]]:
    """Every Helm release's revisions, oldest first, from the Secrets its storage driver writes."""
    from sglang_platform.rules.upgrades import decode_release

    out: dict[str, list[HelmRevision]] = {}
    for secret in listed(cluster, "secrets"):
        labels = secret["metadata"].get("labels") or {}
        if labels.get("owner") != "helm":
            continue
        release = decode_release(secret) or {}
        meta = (release.get("chart") or {}).get("metadata") or {}
        name = f"{secret['metadata']['namespace']}/{labels['name']}"
        times = [f["time"] for f in secret["metadata"].get("managedFields") or [] if f.get("time")]
        out.setdefault(name, []).append(
            HelmRevision(
                name,
                int(labels["version"]),
                labels.get("status", ""),
                f"{meta.get('name')}-{meta.get('version')}",
                secret["metadata"]["creationTimestamp"],
                max(times, default=secret["metadata"]["creationTimestamp"]),
                release.get("manifest") or "",
            )
        )
    return {k: sorted(v, key=lambda r: r.revision) for k, v in out.items()}


def manifest_crds(manifest: str) -> list[str]:
    """The CRDs a Helm release's rendered templates hold (KEDA's and Volcano's are templates, not crds/)."""
    return sorted(
        d["metadata"]["name"]
        for d in yaml.safe_load_all(manifest)
        if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"
    )


@dataclass
class Snapshot:
    """What the upgrade checks compare: the kept objects, the workloads and their pods, the Helm releases, the
    CRDs as stored (generation and last write)."""

    uids: dict[str, dict[str, str]]
    workloads: dict[str, Workload]
    helm: dict[str, list[HelmRevision]]
    crds: dict[str, dict]
    groups: dict[str, dict]  # the LeaderWorkerSets

    @classmethod
    def take(cls, cluster: Cluster) -> Snapshot:
        crds = {o["metadata"]["name"]: o for o in listed(cluster, KEPT_KINDS["CustomResourceDefinition"])}
        groups = {object_key(o): o for o in listed(cluster, LWS)}
        return cls(kept_uids(cluster), workloads(cluster), helm_revisions(cluster), crds, groups)

    def releases(self) -> dict[str, tuple[int, str]]:
        """Each release's newest revision and the chart it runs."""
        return {name: (revs[-1].revision, revs[-1].chart) for name, revs in self.helm.items()}


def last_write(obj: dict) -> str:
    """When the object itself (not its status, which its controller keeps writing) was last changed."""
    fields = obj["metadata"].get("managedFields") or []
    return max((f["time"] for f in fields if f.get("time") and not f.get("subresource")), default="")


def upgrade_events(cluster: Cluster, before: Snapshot, after: Snapshot) -> list[tuple[str, str]]:
    """What changed between two snapshots, each with the API server's time (RFC 3339, seconds): each Helm
    release's new revisions (written, then marked deployed), each CRD written anew, each workload whose template
    changed (its first new pod created, its last new pod Ready). Sorted by time."""
    events: list[tuple[str, str]] = []
    seen = {(r.release, r.revision) for revs in before.helm.values() for r in revs}
    for revs in after.helm.values():
        for r in revs:
            if (r.release, r.revision) not in seen:
                events.append((r.written, f"Helm release {r.release} revision {r.revision} ({r.chart}) started"))
                events.append((r.updated, f"Helm release {r.release} revision {r.revision} {r.status}"))
    for name, crd in after.crds.items():
        old = before.crds.get(name)
        if old is None or old["metadata"]["generation"] != crd["metadata"]["generation"]:
            events.append((last_write(crd), f"CRD {name} {'created' if old is None else 'updated'}"))
    for key, lws in after.groups.items():
        old = before.groups.get(key)
        if old is None or old["metadata"]["generation"] != lws["metadata"]["generation"]:
            events.append((last_write(lws), f"LeaderWorkerSet {key} {'created' if old is None else 'updated'}"))
    pods = {p["metadata"]["uid"]: p for p in listed(cluster, "pods")}
    for key, work in after.workloads.items():
        old_work = before.workloads.get(key)
        if old_work is not None and old_work.template == work.template:
            continue
        new = [pods[uid] for uid in work.pods.values() if uid in pods]
        if not new:
            events.append(("", f"{key} template changed, no pods"))
            continue
        created = min(p["metadata"]["creationTimestamp"] for p in new)
        ready = [
            c["lastTransitionTime"]
            for p in new
            for c in (p.get("status") or {}).get("conditions") or []
            if c["type"] == "Ready" and c["status"] == "True"
        ]
        what = "created" if old_work is None else "rolled"
        events.append((created, f"{key}: first new pod ({what})"))
        if len(ready) == len(new):
            events.append((max(ready), f"{key}: all {len(new)} pods Ready"))
    return sorted(events)


def crd_gaps(chart_dir: Path, live: dict[str, dict]) -> list[str]:
    """The CRDs of a chart's crds/ directories (its own and its subcharts') that the cluster lacks or holds in
    another form than the chart's."""
    from sglang_platform.rules.upgrades import chart_crds, crd_differences

    out = []
    for crd in chart_crds(chart_dir):
        differences = crd_differences(crd.crd, live.get(crd.name))
        if differences:
            out.append(f"{crd.name} ({chart_dir.name}/{crd.directory}): {', '.join(differences)}")
    return out


def gang_lws_controller(cluster: Cluster) -> None:
    """The sandbox's LWS controller restarted with its Volcano provider (gangSchedulingManagement), as the lws
    chart configures it under lws.gangScheduling: it gives each group a PodGroup. Its config is published where
    the chart keeps it (lws-system/lws-manager-config), which the live check at preview reads."""
    run = cluster.run_dir
    lws = yaml.safe_load((run / "lws-config.yaml").read_text())
    lws["gangSchedulingManagement"] = {"schedulerProvider": "volcano"}
    (run / "lws-config-gang.yaml").write_text(yaml.safe_dump(lws))
    cluster.stop_component("lws-controller")
    cluster.spawn(
        "lws-controller",
        "lws-controller",
        "--config",
        str(run / "lws-config-gang.yaml"),
        "--kubeconfig",
        str(run / "kubeconfig"),
        "--zap-log-level=info",
    )
    cluster.wait_for(
        "gang-scheduling LWS controller ready",
        lambda: cluster.exec("curl", "-sf", "http://127.0.0.1:18081/readyz", check=False).returncode == 0,
    )
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "lws-manager-config", "namespace": "lws-system"},
        "data": {"controller_manager_config.yaml": (run / "lws-config-gang.yaml").read_text()},
    }
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lws-system"}}, config_map])
