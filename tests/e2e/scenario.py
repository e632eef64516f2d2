"""Checks through the Kubernetes API that the e2e modules share."""

from __future__ import annotations

from typing import Any

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
