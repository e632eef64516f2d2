"""Probes as the kubelet runs them (pkg/kubelet/prober): the result logic is pure (ProbeState), the actions
(httpGet, tcpSocket, exec, grpc) are small functions the agent calls from one thread per probe.

Timing, per probe: nothing before ``initialDelaySeconds`` after the container started, then one run every
``periodSeconds`` with ``timeoutSeconds``; the result flips to success after ``successThreshold`` consecutive
successes and to failure after ``failureThreshold`` consecutive failures. Readiness starts as failure (not ready),
liveness as success, startup as unknown; liveness and readiness do not run until the startup probe succeeded.
A failed startup or liveness probe kills the container (with the probe's terminationGracePeriodSeconds, else the
pod's), and restartPolicy decides what comes next.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULTS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "successThreshold": 1,
    "failureThreshold": 3,
}
KUBE_PROBE_AGENT = "kube-probe/1.36"


def timing(probe: Mapping[str, Any]) -> dict[str, int]:
    """The probe's timings with the API's defaults (a 0 or absent value is the default)."""
    return {k: int(probe.get(k) or v) for k, v in DEFAULTS.items()}


@dataclass
class ProbeState:
    """Consecutive-result bookkeeping of one probe of one container instance."""

    kind: str  # startup | readiness | liveness
    success_threshold: int = 1
    failure_threshold: int = 3
    result: bool | None = None
    successes: int = 0
    failures: int = 0
    last_message: str = ""

    @classmethod
    def for_probe(cls, kind: str, probe: Mapping[str, Any]) -> ProbeState:
        t = timing(probe)
        initial = {"readiness": False, "liveness": True, "startup": None}[kind]
        return cls(kind, t["successThreshold"], t["failureThreshold"], result=initial)

    def record(self, ok: bool, message: str = "") -> bool | None:
        """One probe's outcome; returns the (possibly new) result."""
        self.last_message = message
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.success_threshold:
                self.result = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= self.failure_threshold:
                self.result = False
        return self.result

    @property
    def fatal(self) -> bool:
        """Startup and liveness: a failure result means the container is killed."""
        return self.kind in ("startup", "liveness") and self.result is False


def resolve_port(port: Any, container: Mapping[str, Any]) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} not found in the container's ports")


def http_get(action: Mapping[str, Any], pod_ip: str, container: Mapping[str, Any], timeout: float) -> tuple[bool, str]:
    """httpGet: success for 200 <= status < 400 (redirects are not followed, and count as success)."""
    try:
        port = resolve_port(action.get("port"), container)
    except ValueError as exc:
        return False, str(exc)
    host = action.get("host") or pod_ip
    path = action.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    scheme = (action.get("scheme") or "HTTP").upper()
    headers = {"User-Agent": KUBE_PROBE_AGENT, "Accept": "*/*"}
    for h in action.get("httpHeaders") or []:
        headers[h["name"]] = h.get("value", "")
    conn: http.client.HTTPConnection
    if scheme == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    url = f"{scheme.lower()}://{host}:{port}{path}"
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read(10240)
    except (OSError, http.client.HTTPException) as exc:
        return False, f'Get "{url}": {exc}'
    finally:
        conn.close()
    if 200 <= resp.status < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {resp.status}" + (
        f" body: {body[:200].decode(errors='replace')}" if body else ""
    )


def tcp_socket(
    action: Mapping[str, Any], pod_ip: str, container: Mapping[str, Any], timeout: float
) -> tuple[bool, str]:
    try:
        port = resolve_port(action.get("port"), container)
    except ValueError as exc:
        return False, str(exc)
    host = action.get("host") or pod_ip
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, f"dial tcp {host}:{port}: {exc}"


def exec_in(pid: int, argv: list[str], env: Mapping[str, str], timeout: float) -> tuple[int | None, str]:
    """Run argv inside the container's view (its mount, UTS and PID namespaces, root and cwd: nsenter), with the
    container's environment; returns (exit code or None on timeout, output)."""
    cmd = ["nsenter", "-t", str(pid), "-m", "-u", "-p", "-r", "-w", "--", *argv]
    proc = subprocess.Popen(
        cmd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out.decode(errors="replace")
    return proc.returncode, out.decode(errors="replace")


def run_probe(
    probe: Mapping[str, Any], pod_ip: str, container: Mapping[str, Any], pid: int | None, env: Mapping[str, str]
) -> tuple[bool, str]:
    """One run of a probe's action: (success, message as the kubelet words it)."""
    timeout = float(timing(probe)["timeoutSeconds"])
    if "httpGet" in probe:
        return http_get(probe["httpGet"], pod_ip, container, timeout)
    if "tcpSocket" in probe:
        return tcp_socket(probe["tcpSocket"], pod_ip, container, timeout)
    if "exec" in probe:
        if pid is None:
            return False, "container not running"
        code, out = exec_in(pid, list(probe["exec"].get("command") or []), env, timeout)
        if code is None:
            return False, f"command timed out after {timeout:g}s"
        return code == 0, "" if code == 0 else f"command failed with exit code {code}: {out.strip()[:400]}"
    if "grpc" in probe:
        # No gRPC client in the agent: report it loudly rather than pass silently or kill the pod.
        return True, "grpc probes are not run by the sandbox agent (counted as success)"
    return False, "probe has no action"
