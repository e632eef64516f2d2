#!/usr/bin/env python3
"""Wait until every pod of this pod's LeaderWorkerSet group has passed its own weights gate.

Shipped by sglang-platform in a ConfigMap; the ``wait-for-group`` init container of a multi-node group whose
weights are staged per node runs it after ``wait-for-weights`` (docs/model-weights.md, "The group gate").
Standard library only.

Why: each pod's ``wait-for-weights`` waits only for its own node's copy. Without this, the pod on a node that
has the weights starts SGLang while a peer on a node still staging waits at its gate; the started ranks wait
for the missing ones until --dist-timeout, the group fails, LeaderWorkerSet recreates it whole and the weights
are loaded again, cycle after cycle. Here every pod holds until all ``GROUP_SIZE`` pods of the group are past
their local gate, so they start SGLang together. A pod only ever waits for its peers' *local* gates, never for
their group gates, so no two pods wait for each other.

Lists the pods labelled with this pod's group (``leaderworkerset.sigs.k8s.io/name`` = GROUP_NAME,
``leaderworkerset.sigs.k8s.io/group-key`` = GROUP_KEY and, when set, ``template-revision-hash`` = GROUP_REVISION)
every WAIT_POLL_SECONDS (15), logging what it waits
for every LOG_EVERY_SECONDS (60). A peer is through when its WEIGHTS_GATE init container
(``wait-for-weights``) terminated with exit code 0, when the pod is already initialized, or when it has no such
init container. Pods being deleted do not count (the group is being recreated; their replacements will).
Exits 0 once the group is complete and through; waits as long as the local gate would (without limit).

A 403 (the ServiceAccount or its Role missing) is logged and polled again, like any other API error: exiting
would restart the init container, and LeaderWorkerSet's RecreateGroupOnPodRestart recreates the whole group on
any container restart, the log with it; waiting keeps the pod in ``Init`` with the cause in its log.

Environment: GROUP_NAME, GROUP_KEY, GROUP_REVISION, GROUP_INDEX, GROUP_SIZE, POD_NAMESPACE, POD_NAME, WEIGHTS_GATE,
WAIT_POLL_SECONDS, LOG_EVERY_SECONDS, SERVICEACCOUNT_DIR (token, ca.crt), KUBERNETES_API_URL (default: the
in-cluster API from KUBERNETES_SERVICE_HOST/PORT).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

SERVICEACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
GROUP_KEY_LABEL = "leaderworkerset.sigs.k8s.io/group-key"
# The group key is a hash of the leader pod's name, the same for a group recreated by a rolling update; the
# revision tells the new pods from the old ones still terminating (LWS puts it on leader and workers alike).
REVISION_LABEL = "leaderworkerset.sigs.k8s.io/template-revision-hash"


class ForbiddenError(Exception):
    pass


def log(message: str) -> None:
    print(f"{now()} {message}", flush=True)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017 (3.10)


class KubeApi:
    def __init__(self, env: Mapping[str, str]):
        self.sa = Path(env.get("SERVICEACCOUNT_DIR", SERVICEACCOUNT))
        host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "443")
        # An IPv6 service address needs brackets in a URL.
        host = f"[{host}]" if ":" in host else host
        self.url = env.get("KUBERNETES_API_URL") or f"https://{host}:{port}"
        ca = self.sa / "ca.crt"
        self.context = ssl.create_default_context(cafile=str(ca)) if ca.exists() else None

    def token(self) -> str:
        # Read at every call: the projected token is rotated by the kubelet (it expires within the hour), and
        # this may wait for hours.
        path = self.sa / "token"
        return path.read_text().strip() if path.exists() else ""

    def group_pods(self, namespace: str, name: str, key: str, revision: str = "") -> list[dict]:
        terms = [f"{LWS_NAME_LABEL}={name}", f"{GROUP_KEY_LABEL}={key}"]
        if revision:
            terms.append(f"{REVISION_LABEL}={revision}")
        selector = urllib.parse.quote(",".join(terms))
        req = urllib.request.Request(f"{self.url}/api/v1/namespaces/{namespace}/pods?labelSelector={selector}")
        req.add_header("Accept", "application/json")
        if token := self.token():
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.context) as response:
                return list(json.loads(response.read()).get("items") or [])
        except urllib.error.HTTPError as error:
            if error.code == 403:
                raise ForbiddenError(f"listing pods in {namespace} is forbidden: {error.read()[:300]!r}") from error
            raise


def blocker(pod: Mapping, gate: str) -> str | None:
    """None when the pod is past its local weights gate, else what it is doing."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if not any(c.get("name") == gate for c in spec.get("initContainers") or []):
        return None
    if any(c.get("type") == "Initialized" and c.get("status") == "True" for c in status.get("conditions") or []):
        return None
    for s in status.get("initContainerStatuses") or []:
        if s.get("name") != gate:
            continue
        state = s.get("state") or {}
        terminated = state.get("terminated")
        if terminated is not None and terminated.get("exitCode") == 0:
            return None
        if terminated is not None:
            return f"failed its {gate} (exit code {terminated.get('exitCode')})"
        reason = (state.get("waiting") or {}).get("reason")
        return "is still waiting for weights" + (f" ({reason})" if reason else "")
    if not spec.get("nodeName"):
        return "is not scheduled yet"
    return "is still waiting for weights"


def group_state(pods: list[dict], size: int, gate: str) -> tuple[int, list[str]]:
    """How many of the group's ``size`` pods are not through their local gate yet (missing ones included),
    and what each of them is doing."""
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    waiting = []
    for pod in sorted(live, key=lambda p: p["metadata"]["name"]):
        if (why := blocker(pod, gate)) is not None:
            node = (pod.get("spec") or {}).get("nodeName") or "no node"
            waiting.append(f"{pod['metadata']['name']} on {node} {why}")
    pending = len(waiting)
    if (missing := size - len(live)) > 0:
        waiting.append(f"{missing} pod{'s' if missing != 1 else ''} not created yet")
        pending += missing
    return pending, waiting


def wait(
    env: Mapping[str, str],
    api: KubeApi | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    max_polls: int | None = None,
) -> bool:
    api = api or KubeApi(env)
    namespace, name, key = env["POD_NAMESPACE"], env["GROUP_NAME"], env["GROUP_KEY"]
    size, gate = int(env["GROUP_SIZE"]), env.get("WEIGHTS_GATE", "wait-for-weights")
    poll, every = float(env.get("WAIT_POLL_SECONDS", "15")), float(env.get("LOG_EVERY_SECONDS", "60"))
    group = f"{name}-{env['GROUP_INDEX']}" if env.get("GROUP_INDEX") else f"{name} ({key})"
    last_log: float | None = None
    polls = 0
    while True:
        try:
            pods = api.group_pods(namespace, name, key, env.get("GROUP_REVISION", ""))
            pending, waiting = group_state(pods, size, gate)
        except ForbiddenError as error:
            pending, waiting = size, [f"error: {error}: its ServiceAccount or Role is missing"]
        except (urllib.error.URLError, OSError, ValueError) as error:
            # The API server restarting or a network blip: the next poll retries.
            pending, waiting = size, [f"cannot list the group's pods ({type(error).__name__}: {error})"]
        if pending == 0:
            log(f"all {size} pods of group {group} are past their weights gate")
            return True
        if last_log is None or clock() - last_log >= every:
            log(f"waiting for {pending} of {size} pods of group {group}: {'; '.join(waiting)}")
            last_log = clock()
        polls += 1
        if max_polls is not None and polls >= max_polls:
            return False
        sleep(poll)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    # As PID 1 in a container, SIGTERM would be ignored without a handler: the pod would wait out its grace.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    wait(os.environ)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
