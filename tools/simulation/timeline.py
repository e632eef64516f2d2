"""The cold-start timeline of a stack's serving pods in the sandbox, phase by phase.

The dashboard's "Cold-start timeline" (docs/ui-and-monitoring.md, "Cold starts") reads kube-state-metrics' pod
times; the sandbox has the pods themselves, so this reads the same times from their status and adds what only
the logs say: when each node's weights stager fetched, when the group formed and when the weights were loaded.
Every time is seconds after the pod's creation (a stager's: after its own pod's creation; its start in the
group pods' clock is in ``since_first``).

    python tools/sandbox.py timeline [--namespace NS]

Phases of a group pod, in order (a phase the pod has not reached is absent):

| phase | from |
|---|---|
| scheduled | condition PodScheduled |
| weights present | init container `wait-for-weights` terminated (its node's copy is complete) |
| group gate passed | init container `wait-for-group` terminated (every pod of the group is past its weights gate) |
| SGLang started | the `sglang-*` container's startedAt |
| group formed | log: node 0 `group complete`, a worker `joined node 0` (the ranks met at --dist-init-addr) |
| weights loaded | log: node 0 `Uvicorn running` (the HTTP server starts after the load), a worker its health server |
| ready | condition Ready |

The last three come from the SGLang stand-in's log lines (docs/standin.md); SGLang's own are `Load weight end`
and `The server is fired up and ready to roll!`.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

POD_PHASES = (
    "scheduled",
    "weights present",
    "group gate passed",
    "SGLang started",
    "group formed",
    "weights loaded",
    "ready",
)
# Log lines (of the sglang-* container) that mark a phase: node 0's first, a worker's second.
LOG_MARKS = {
    "group formed": ("[stand-in] group complete", "joined node 0 at"),
    "weights loaded": ("[stand-in] Uvicorn running on", "stand-in health server on"),
}
STAGER_PHASES = ("started", "fetching", "in place")
GROUP_LABEL = "leaderworkerset.sigs.k8s.io/name"
STAGER_COMPONENT = "weights-stager"


def parse_time(text: str) -> datetime.datetime:
    """An RFC 3339 time as the API server and `kubectl logs --timestamps` write it (nanoseconds cut to micro)."""
    text = text.strip().replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]:0<6}{zone}"
    return datetime.datetime.fromisoformat(text)


def timestamped(log: str) -> list[tuple[datetime.datetime, str]]:
    """The lines of `kubectl logs --timestamps` output: (time, text)."""
    out = []
    for line in log.splitlines():
        stamp, _, text = line.partition(" ")
        try:
            out.append((parse_time(stamp), text))
        except ValueError:
            continue
    return out


@dataclass
class PodTimeline:
    pod: str
    node: str | None
    role: str  # leader, worker, stager
    created: datetime.datetime
    phases: dict[str, float] = field(default_factory=dict)

    def ordered(self) -> bool:
        """Every phase reached no earlier than the one before it."""
        names = POD_PHASES if self.role != "stager" else STAGER_PHASES
        times = [self.phases[p] for p in names if p in self.phases]
        return times == sorted(times)


def _conditions(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}


def _terminated_at(statuses: Iterable[Mapping[str, Any]], name: str) -> str | None:
    for status in statuses:
        if status.get("name") == name:
            done = (status.get("state") or {}).get("terminated") or {}
            if done.get("exitCode") == 0:
                return done.get("finishedAt")
    return None


def group_pod(pod: Mapping[str, Any], sglang_log: str = "") -> PodTimeline:
    """The phases of one pod of a group, from its status and its SGLang container's timestamped log."""
    meta, status = pod["metadata"], pod.get("status") or {}
    created = parse_time(meta["creationTimestamp"])
    worker_index = (meta.get("labels") or {}).get("leaderworkerset.sigs.k8s.io/worker-index", "0")
    role = "leader" if worker_index == "0" else "worker"
    line = PodTimeline(meta["name"], (pod.get("spec") or {}).get("nodeName"), role, created)

    def at(name: str, stamp: str | None) -> None:
        if stamp:
            line.phases[name] = round((parse_time(stamp) - created).total_seconds(), 3)

    conditions = _conditions(pod)
    scheduled = conditions.get("PodScheduled", {})
    if scheduled.get("status") == "True":
        at("scheduled", scheduled.get("lastTransitionTime"))
    inits = status.get("initContainerStatuses") or []
    at("weights present", _terminated_at(inits, "wait-for-weights"))
    at("group gate passed", _terminated_at(inits, "wait-for-group"))
    for c in status.get("containerStatuses") or []:
        if c.get("name", "").startswith("sglang"):
            at("SGLang started", ((c.get("state") or {}).get("running") or {}).get("startedAt"))
    lines = timestamped(sglang_log)
    for phase, (leader_mark, worker_mark) in LOG_MARKS.items():
        mark = leader_mark if role == "leader" else worker_mark
        found = next((t for t, text in lines if mark in text), None)
        if found is not None:
            line.phases[phase] = round((found - created).total_seconds(), 3)
    ready = conditions.get("Ready", {})
    if ready.get("status") == "True":
        at("ready", ready.get("lastTransitionTime"))
    return line


def stager_pod(pod: Mapping[str, Any], log: str = "") -> PodTimeline:
    """A weights stager's pod: started, fetching (the log line it writes before the fetch), in place (the weights
    complete and MODEL_DIR pointing at them)."""
    meta, status = pod["metadata"], pod.get("status") or {}
    created = parse_time(meta["creationTimestamp"])
    line = PodTimeline(meta["name"], (pod.get("spec") or {}).get("nodeName"), "stager", created)
    for c in status.get("containerStatuses") or []:
        started = ((c.get("state") or {}).get("running") or {}).get("startedAt")
        if started:
            line.phases["started"] = round((parse_time(started) - created).total_seconds(), 3)
    for t, text in timestamped(log):
        if ": fetching {" in text and "fetching" not in line.phases:
            line.phases["fetching"] = round((t - created).total_seconds(), 3)
        if " in place, commit " in text and "in place" not in line.phases:
            line.phases["in place"] = round((t - created).total_seconds(), 3)
    return line


def table(lines: list[PodTimeline]) -> str:
    """A Markdown table: one row per pod, one column per phase, seconds after the first pod's creation (so the
    stagers and the group pods share one clock)."""
    if not lines:
        return "(no pods)"
    zero = min(line.created for line in lines)
    columns = list(STAGER_PHASES) + list(POD_PHASES)
    out = [
        "| pod | node | created | " + " | ".join(columns) + " |",
        "|---|---|---:|" + "---:|" * len(columns),
    ]
    for line in lines:
        offset = (line.created - zero).total_seconds()
        cells = [f"{offset + line.phases[c]:.1f}" if c in line.phases else "" for c in columns]
        out.append(f"| {line.pod} | {line.node or ''} | {offset:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def collect(kubectl, namespace: str) -> list[PodTimeline]:
    """The timelines of every group pod and weights stager in ``namespace``; ``kubectl(*args) -> stdout``."""
    import json

    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
    out = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"]):
        labels = pod["metadata"].get("labels") or {}
        name = pod["metadata"]["name"]
        if labels.get("app.kubernetes.io/component") == STAGER_COMPONENT:
            out.append(stager_pod(pod, kubectl("logs", "-n", namespace, name, "--timestamps")))
        elif GROUP_LABEL in labels:
            container = next(
                (c["name"] for c in pod["spec"]["containers"] if c["name"].startswith("sglang")),
                pod["spec"]["containers"][0]["name"],
            )
            log = kubectl("logs", "-n", namespace, name, "-c", container, "--timestamps")
            out.append(group_pod(pod, log))
    return out
