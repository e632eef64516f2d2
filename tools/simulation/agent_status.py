"""A pod's status as the kubelet writes it (pkg/kubelet/kubelet_pods.go generateAPIPodStatus, getPhase;
pkg/kubelet/status/generate.go): pure functions over the agent's records of each container, so the unit tests
pin the transitions (Pending -> Running -> Succeeded/Failed, Initialized, ContainersReady, Ready, restarts)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OWN_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class ContainerRecord:
    """What the agent knows of one container (across its restarts)."""

    name: str
    image: str
    init: bool = False
    sidecar: bool = False  # an init container with restartPolicy Always
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int | None = None
    container_id: str = ""
    last_terminated: dict[str, Any] | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False

    def terminated(self) -> dict[str, Any]:
        t: dict[str, Any] = {
            "exitCode": self.exit_code if self.exit_code is not None else 0,
            "reason": self.reason,
            "startedAt": self.started_at or None,
            "finishedAt": self.finished_at or None,
        }
        if self.message:
            t["message"] = self.message
        if self.container_id:
            t["containerID"] = self.container_id
        return t

    def api(self) -> dict[str, Any]:
        state: dict[str, Any]
        if self.state == "running":
            state = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            state = {"terminated": self.terminated()}
        else:
            waiting: dict[str, Any] = {"reason": self.reason}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        out: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
            # a completed init container reports ready, as the kubelet's prober manager sets it
            "ready": self.succeeded() if self.init and not self.sidecar else self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
        }
        if self.container_id:
            out["containerID"] = self.container_id
            out["imageID"] = f"sandbox://{self.image}"
        return out

    def succeeded(self) -> bool:
        return self.state == "terminated" and self.exit_code == 0


def phase(
    restart_policy: str, inits: list[ContainerRecord], containers: list[ContainerRecord], terminal: bool = False
) -> str:
    """getPhase: the pod's phase from its containers' states. ``terminal``: the pod was shut down for good
    (deleted, or past its deadline): once everything stopped it is Succeeded or Failed whatever its restartPolicy
    (the agent has turned containers that never ran into terminated ContainerStatusUnknown, exit 137, first)."""
    started_any = any(c.state != "waiting" or c.last_terminated is not None for c in containers)
    pending_init = failed_init = 0
    for c in inits:
        if c.sidecar:
            if not c.started and not started_any:
                pending_init += 1
            continue
        if c.state == "running":
            pending_init += 1
        elif c.state == "terminated":
            if c.exit_code != 0:
                failed_init += 1
        elif c.last_terminated is not None:
            if c.last_terminated.get("exitCode") != 0:
                failed_init += 1
        else:
            pending_init += 1
    running = waiting = stopped = succeeded = 0
    for c in containers:
        if c.state == "running":
            running += 1
        elif c.state == "terminated":
            stopped += 1
            if c.exit_code == 0:
                succeeded += 1
        elif c.last_terminated is not None:
            stopped += 1
        else:
            waiting += 1
    if failed_init > 0 and restart_policy == "Never":
        return "Failed"
    if pending_init > 0 or waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def initialized(inits: list[ContainerRecord], containers: list[ContainerRecord]) -> list[str]:
    """The init containers that keep the pod from Initialized (none once a regular container has run)."""
    if any(c.state != "waiting" or c.last_terminated is not None for c in containers):
        return []
    return [c.name for c in inits if not (c.started if c.sidecar else c.succeeded())]


def _condition(old: Mapping[str, Mapping[str, Any]], ctype: str, ok: bool, reason: str = "", message: str = "") -> dict:
    status = "True" if ok else "False"
    prev = old.get(ctype)
    since = prev.get("lastTransitionTime") if prev and prev.get("status") == status else now()
    # reason and message are always written (null when none): a strategic merge patch keeps keys it is not given,
    # so a condition turning True would otherwise keep the reason it had while False.
    cond: dict[str, Any] = {
        "type": ctype,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": since,
        "reason": reason if (not ok and reason) or reason == "PodCompleted" else None,
        "message": message if (not ok and reason and message) else None,
    }
    return cond


@dataclass
class PodView:
    """The pod-level facts the status needs besides the containers."""

    pod_ip: str = ""
    host_ip: str = ""
    start_time: str = ""
    sandbox_ready: bool = False
    terminal: bool = False
    reason: str = ""  # e.g. DeadlineExceeded
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def pod_status(
    pod: Mapping[str, Any], inits: list[ContainerRecord], containers: list[ContainerRecord], view: PodView
) -> dict[str, Any]:
    """The status the agent writes (a strategic merge patch: conditions merge by type, so the scheduler's
    PodScheduled, DisruptionTarget and readiness-gate conditions stay as others wrote them)."""
    spec = pod.get("spec") or {}
    old_status = pod.get("status") or {}
    old = {c["type"]: c for c in old_status.get("conditions") or []}
    restart_policy = spec.get("restartPolicy", "Always")
    ph = phase(restart_policy, inits, containers, view.terminal)
    if old_status.get("phase") in ("Succeeded", "Failed"):
        ph = old_status["phase"]  # terminal phases never change

    conditions = [_condition(old, "PodReadyToStartContainers", view.sandbox_ready)]
    incomplete = initialized(inits, containers)
    conditions.append(
        _condition(
            old,
            "Initialized",
            not incomplete,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(incomplete)}]",
        )
    )
    unready = [c.name for c in containers if not c.ready] + [c.name for c in inits if c.sidecar and not c.ready]
    completed = ph == "Succeeded"
    if completed:
        conditions.append(_condition(old, "ContainersReady", False, "PodCompleted"))
        conditions.append(_condition(old, "Ready", False, "PodCompleted"))
    else:
        containers_ready = not unready and bool(containers)
        conditions.append(
            _condition(
                old,
                "ContainersReady",
                containers_ready,
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
            )
        )
        gates = [g["conditionType"] for g in spec.get("readinessGates") or []]
        missing = [g for g in gates if (old.get(g) or {}).get("status") != "True"]
        if not containers_ready:
            conditions.append(
                _condition(
                    old, "Ready", False, "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
                )
            )
        elif missing:
            conditions.append(
                _condition(
                    old,
                    "Ready",
                    False,
                    "ReadinessGatesNotReady",
                    f'corresponding condition of pod readiness gate "{missing[0]}" does not exist.',
                )
            )
        else:
            conditions.append(_condition(old, "Ready", True))

    status: dict[str, Any] = {
        "phase": ph,
        "conditions": conditions,
        "hostIP": view.host_ip or None,
        "hostIPs": [{"ip": view.host_ip}] if view.host_ip else None,
        "podIP": view.pod_ip or None,
        "podIPs": [{"ip": view.pod_ip}] if view.pod_ip else None,
        "startTime": view.start_time or None,
        "containerStatuses": [c.api() for c in containers],
    }
    if inits:
        status["initContainerStatuses"] = [c.api() for c in inits]
    if view.reason:
        status["reason"] = view.reason
        status["message"] = view.message
    generation = (pod.get("metadata") or {}).get("generation")
    if generation:
        status["observedGeneration"] = generation
    status.update(view.extra)
    return status
