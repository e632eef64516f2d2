"""A tiny stand-in for the Kubernetes API on 127.0.0.1. For the benchmark Job's calls: GET of a
LeaderWorkerSet (answering a scripted sequence of objects, the last one repeated), GET of a ConfigMap, and a
merge PATCH of a ConfigMap's data (null removes a key), refused with 409 when it names a resourceVersion that
is no longer the ConfigMap's. For the group gate's one: a pod list in a namespace filtered by an equality
labelSelector (over a scripted sequence of pod lists, the last one repeated). It checks the bearer token and
records every request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class FakeKube:
    token: str = "sa-token"
    # What GET of the LeaderWorkerSet answers, call after call (the last one repeats).
    leader_worker_sets: list[dict] = field(default_factory=list)
    # ConfigMap data by "namespace/name", and each patch's data in order.
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    patches: list[dict] = field(default_factory=list)
    # Each ConfigMap's resourceVersion, counted up on every write.
    versions: dict[str, int] = field(default_factory=dict)
    # The pods of the cluster, poll after poll (the last list repeats); each answer holds those of the namespace
    # asked for that match the request's labelSelector.
    pod_lists: list[list[dict]] = field(default_factory=list)
    # Answer pod lists with 403, as for a ServiceAccount without the Role.
    forbid_pods: bool = False
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _handler(fake: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _json(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            fake.requests.append((self.command, self.path))
            if self.headers.get("Authorization") == f"Bearer {fake.token}":
                return True
            self._json(401, {"kind": "Status", "code": 401})
            return False

        def do_GET(self) -> None:
            if not self._authorized():
                return
            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if parts[:3] == ["api", "v1", "namespaces"] and parts[4:] == ["pods"]:
                if fake.forbid_pods:
                    self._json(403, {"kind": "Status", "code": 403, "reason": "Forbidden"})
                    return
                pods = fake.pod_lists.pop(0) if len(fake.pod_lists) > 1 else (fake.pod_lists or [[]])[0]
                wanted = dict(
                    term.split("=", 1) for term in parse_qs(url.query).get("labelSelector", [""])[0].split(",") if term
                )
                items = [
                    p
                    for p in pods
                    if p["metadata"]["namespace"] == parts[3]
                    and wanted.items() <= p["metadata"].get("labels", {}).items()
                ]
                self._json(200, {"kind": "PodList", "items": items})
            elif parts[:3] == ["apis", "leaderworkerset.x-k8s.io", "v1"] and fake.leader_worker_sets:
                answer = (
                    fake.leader_worker_sets.pop(0) if len(fake.leader_worker_sets) > 1 else fake.leader_worker_sets[0]
                )
                self._json(200, answer)
            elif parts[:3] == ["api", "v1", "namespaces"] and parts[4:5] == ["configmaps"]:
                key = f"{parts[3]}/{parts[5]}"
                if key not in fake.config_maps:
                    self._json(404, {"kind": "Status", "code": 404})
                    return
                version = str(fake.versions.get(key, 0))
                self._json(200, {"metadata": {"resourceVersion": version}, "data": fake.config_maps[key]})
            else:
                self._json(404, {"kind": "Status", "code": 404})

        def do_PATCH(self) -> None:
            if not self._authorized():
                return
            parts = self.path.strip("/").split("/")
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            if (
                parts[:3] != ["api", "v1", "namespaces"]
                or parts[4] != "configmaps"
                or self.headers.get("Content-Type") != "application/merge-patch+json"
            ):
                self._json(400, {"kind": "Status", "code": 400})
                return
            key = f"{parts[3]}/{parts[5]}"
            expected = (body.get("metadata") or {}).get("resourceVersion")
            if expected is not None and expected != str(fake.versions.get(key, 0)):
                self._json(409, {"kind": "Status", "code": 409, "reason": "Conflict"})
                return
            fake.versions[key] = fake.versions.get(key, 0) + 1
            data = fake.config_maps.setdefault(key, {})
            fake.patches.append(body["data"])
            for k, v in body["data"].items():
                if v is None:
                    data.pop(k, None)
                else:
                    data[k] = v
            self._json(200, {"kind": "ConfigMap", "data": data})

    return Handler


@contextmanager
def serve(fake: FakeKube | None = None) -> Iterator[FakeKube]:
    fake = fake or FakeKube()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
