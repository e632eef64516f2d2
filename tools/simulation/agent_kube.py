"""The agent's API client: raw JSON over the official client's connection handling (kubeconfig, TLS, auth), so
objects stay as the API server sends them (camelCase dicts), and patches say their content type."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("agent.kube")
SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class KubeError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


class Kube:
    def __init__(self, kubeconfig: str):
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        cfg.connection_pool_maxsize = 64
        self.api = client.ApiClient(cfg)
        self.host = cfg.host

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            resp = self.api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except ApiException as exc:
            message = exc.reason or ""
            try:
                message = json.loads(exc.body).get("message", message)
            except (TypeError, ValueError):
                pass
            raise KubeError(exc.status or 0, message) from None
        data = resp.data
        return json.loads(data) if data else None

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", path, query=query)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def watch(self, path: str, query: dict[str, Any], timeout: int = 300) -> Iterator[dict[str, Any]]:
        """Watch events ({type, object}) until the server closes the stream (timeoutSeconds)."""
        q = dict(query, watch="true", timeoutSeconds=str(timeout), allowWatchBookmarks="true")
        try:
            resp = self.api.call_api(
                path,
                "GET",
                query_params=list(q.items()),
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=(10, timeout + 30),
            )
        except ApiException as exc:
            raise KubeError(exc.status or 0, exc.reason or "") from None
        buffer = b""
        try:
            for chunk in resp.stream(65536, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            resp.release_conn()


def pods_path(namespace: str | None = None) -> str:
    return f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
