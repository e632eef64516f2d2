"""The sandbox's node agent: a small kubelet that really runs the pods bound to its nodes (docs/node-agent.md).

    python -m tools.simulation.agent --kubeconfig KC --run-dir DIR --node NAME [--node NAME ...]
        [--images tools/simulation/images.yaml] [--cluster-dns IP] [--cluster-domain cluster.local]
        [--pod-cidr 10.245.0.0/16] [--kubelet-port 10250] [--kubernetes-service HOST:PORT]

Run it inside the simulation's network namespace (only ``lo``; it refuses to start anywhere else), as root. It
keeps its nodes Ready (status and a Lease in kube-node-lease), gives each node a /24 of ``--pod-cidr`` (its
``spec.podCIDR``; the first address is the node's InternalIP, the others go to pods, all added to ``lo``), and
runs each pod's init containers in order and then its containers as processes (tools/simulation/agent_shim.py:
a mount, UTS and PID namespace each, an overlay of this machine's root whose writes land under the run dir), with
the pod's environment, volumes, /etc/hosts, /etc/resolv.conf, probes, restartPolicy and termination, writing the
pod's status as the kubelet does. It serves container logs on each node's InternalIP:kubelet-port (HTTPS).
Everything it starts is stopped by PID when it gets SIGTERM (or at its next start, if it was killed).
"""

from __future__ import annotations

import argparse
import base64
import calendar
import ctypes
import ctypes.util
import ipaddress
import json
import logging
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.simulation import agent_env, agent_images, agent_logs, agent_net, agent_probes, agent_status, agent_volumes
from tools.simulation.agent_kube import MERGE, SMP, Kube, KubeError
from tools.simulation.agent_status import ContainerRecord, PodView, now

log = logging.getLogger("agent")
SHIM = Path(__file__).with_name("agent_shim.py")
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET = 10.0, 300.0, 600.0
MIN_GRACE = 2  # the kubelet's minimum grace period
LEASE_SECONDS = 40
HEARTBEAT = 10.0
VOLUME_RESYNC = 60.0
AGENT_VERSION = "v1.36.3-sandbox-agent"

CLONE_NEWNS = 0x00020000
MS_REC, MS_SLAVE = 16384, 1 << 19


# --- process-level setup ----------------------------------------------------------------------------------


def private_mounts() -> None:
    """Give the agent a mount namespace of its own (slave of the host's), so the tmpfs it mounts for Memory
    emptyDirs and Secret volumes are never seen outside it and vanish with it. Must run before any thread."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise SystemExit(f"agent: unshare(CLONE_NEWNS) failed: {os.strerror(ctypes.get_errno())} (run as root)")
    if libc.mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_SLAVE), None) != 0:
        raise SystemExit(f"agent: making / a slave mount failed: {os.strerror(ctypes.get_errno())}")


def links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip()]


def check_netns() -> None:
    """The safety rule: the agent only runs where loopback is the only interface (the simulation's netns)."""
    names = links()
    if names != ["lo"]:
        raise SystemExit(
            f"agent: REFUSED: this network namespace has interfaces besides lo ({', '.join(names)}): run the agent "
            "inside the simulation's namespace (tools/sandbox.py exec), where nothing can leave the machine"
        )


def lo_addresses() -> set[str]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
    return {line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3}


def add_ip(ip: str) -> None:
    """A pod or node address, on lo only (never another device)."""
    if ip not in lo_addresses():
        subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"], check=True, capture_output=True)


def del_ip(ip: str) -> None:
    subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", "lo"], capture_output=True)


def mount_tmpfs(path: Path, size: str | None) -> None:
    if os.path.ismount(path):
        return
    path.mkdir(parents=True, exist_ok=True)
    opts = ["mode=0755"] + ([f"size={int(agent_env.quantity(size))}"] if size else [])
    subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(opts), "tmpfs", str(path)], check=True, capture_output=True)


def umount(path: Path) -> None:
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def micro_time() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"


# --- nodes ------------------------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    cidr: ipaddress.IPv4Network
    ip: str
    allocatable: dict[str, Any] = field(default_factory=dict)
    uid: str = ""
    used: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def allocate(self, wanted: str | None = None) -> str:
        with self.lock:
            if wanted and wanted not in self.used and wanted != self.ip and ipaddress.ip_address(wanted) in self.cidr:
                self.used.add(wanted)
                return wanted
            for host in self.cidr.hosts():
                ip = str(host)
                if ip != self.ip and ip not in self.used:
                    self.used.add(ip)
                    return ip
        raise RuntimeError(f"node {self.name}: no free pod address in {self.cidr}")

    def release(self, ip: str) -> None:
        with self.lock:
            self.used.discard(ip)


def machine_capacity() -> dict[str, str]:
    mem_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{mem_kib}Ki", "pods": "110", "ephemeral-storage": "100Gi"}


# --- containers -------------------------------------------------------------------------------------------


@dataclass
class Container:
    spec: dict[str, Any]
    rec: ContainerRecord
    proc: subprocess.Popen | None = None
    instance_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    log: agent_logs.LogWriter | None = None
    stopped: threading.Event = field(default_factory=threading.Event)  # set when the current instance ended
    stopping: bool = False
    kill_reason: str = ""
    kill_grace: int | None = None
    backoff: float = 0.0
    last_start: float = 0.0  # monotonic
    retry_at: float = 0.0  # monotonic: a start that failed before the process (image, config) is retried then
    probes: dict[str, agent_probes.ProbeState] = field(default_factory=dict)
    post_start: threading.Event = field(default_factory=threading.Event)  # set while its postStart hook runs
    # Its image is one the sandbox does not run (images.yaml placement kwok): a placeholder process, probes passed.
    placeholder: bool = False

    @property
    def name(self) -> str:
        return self.rec.name

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pid(self) -> int | None:
        """The container's PID 1 (host PID), as the shim wrote it."""
        if self.instance_dir is None:
            return None
        try:
            return int((self.instance_dir / "pid").read_text())
        except (OSError, ValueError):
            return None

    def restart_policy(self, pod_policy: str) -> str:
        return "Always" if self.rec.sidecar else pod_policy


class PodWorker(threading.Thread):
    """One pod's lifecycle, like the kubelet's pod worker: sandbox, volumes, init containers, containers, probes,
    restarts, status, termination."""

    def __init__(self, agent: Agent, pod: dict[str, Any], node: Node):
        meta = pod["metadata"]
        super().__init__(name=f"pod {meta['namespace']}/{meta['name']}", daemon=True)
        self.agent = agent
        self.pod = pod
        self.node = node
        self.uid: str = meta["uid"]
        self.ns: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.dir = agent.run_dir / "pods" / f"{self.ns}_{self.pod_name}_{self.uid}"
        self.log_dir = agent.run_dir / "logs" / "pods" / f"{self.ns}_{self.pod_name}_{self.uid}"
        self.wake = threading.Event()
        self.removed = False
        self.lock = threading.RLock()
        spec = pod["spec"]
        self.inits = [self._container(c, init=True) for c in spec.get("initContainers") or []]
        self.containers = [self._container(c) for c in spec.get("containers") or []]
        self.view = PodView(host_ip=node.ip, start_time=(pod.get("status") or {}).get("startTime") or now())
        self.pod_ip = ""
        self.hostname = ""
        self.volumes: dict[str, agent_volumes.Volume] = {}
        self.volumes_ready = False
        self.volume_error = ""
        self.volume_retry = 0.0
        self.volume_synced = 0.0
        self.written: dict[str, Any] | None = None
        self.conditions: dict[str, dict[str, Any]] = {}
        self.init_complete = not self.inits
        self._placeholder_pod: bool | None = None
        self.cleaned = False
        self.winding_down = False  # the pod has completed: nothing (re)starts, sidecars are stopped
        self._restore(pod)

    def _container(self, spec: dict[str, Any], init: bool = False) -> Container:
        sidecar = init and spec.get("restartPolicy") == "Always"
        reason = "PodInitializing" if (self.pod["spec"].get("initContainers") and not init) else "ContainerCreating"
        rec = ContainerRecord(spec["name"], spec.get("image", ""), init=init, sidecar=sidecar, reason=reason)
        return Container(spec, rec)

    def _restore(self, pod: dict[str, Any]) -> None:
        """An agent restart: the containers of the previous agent were stopped with it; keep their restart counts
        (the pod's processes start again, as after a node reboot)."""
        status = pod.get("status") or {}
        old = {
            s["name"]: s for s in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
        }
        for c in self.inits + self.containers:
            prev = old.get(c.name)
            if prev and (prev.get("state") or {}).get("running"):
                c.rec.restart_count = int(prev.get("restartCount", 0)) + 1
            elif prev:
                c.rec.restart_count = int(prev.get("restartCount", 0))

    # --- events from the agent ---------------------------------------------------------------------------

    def update(self, pod: dict[str, Any]) -> None:
        with self.lock:
            self.pod = pod
        self.wake.set()

    def gone(self) -> None:
        self.removed = True
        self.wake.set()

    # --- main loop -----------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.loop()
        except Exception:
            log.exception("pod worker failed; stopping its containers")
            self.kill_all(MIN_GRACE)
        finally:
            self.cleanup()
            self.agent.worker_done(self)

    @property
    def spec(self) -> dict[str, Any]:
        return self.pod["spec"]

    def loop(self) -> None:
        while True:
            pod = self.pod
            meta = pod["metadata"]
            if self.agent.stopping.is_set():
                self.kill_all(min(self.grace(), 5))
                return
            if self.removed:  # gone from the API (a forced delete): its deletion grace period if it had one
                grace = meta.get("deletionGracePeriodSeconds")
                self.kill_all(self.grace() if grace is None else max(MIN_GRACE, int(grace)))
                return
            if meta.get("deletionTimestamp"):
                grace = meta.get("deletionGracePeriodSeconds")
                self.terminate(self.grace() if grace is None else int(grace))
                self.write_status(force=True)
                self.cleanup()  # the sandbox goes before the object, as the kubelet removes it before deleting
                self.agent.delete_pod(self.ns, self.pod_name, self.uid)
                return
            deadline = self.spec.get("activeDeadlineSeconds")
            if deadline is not None and self.elapsed() > int(deadline):
                self.agent.event(
                    self, "Normal", "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
                )
                self.terminate(self.grace())
                self.view.reason, self.view.message = (
                    "DeadlineExceeded",
                    "Pod was active on the node longer than the specified deadline",
                )
                self.write_status(force=True)
                self.agent.finish(self.uid)
                return
            try:
                self.sync()
            except Exception as exc:  # one pod's trouble never stops the agent
                log.exception("sync failed")
                self.agent.event(self, "Warning", "FailedSync", f"error syncing pod: {exc}")
            phase = self.write_status()
            if phase in ("Succeeded", "Failed"):
                self.winding_down = True
                running = [c for c in self.inits + self.containers if c.running]
                if not running:
                    self.agent.finish(self.uid)
                    return
                for c in running:  # sidecars (and nothing else) outlive the pod's completion: stop them
                    if not c.stopping:
                        self.stop_async(c, self.grace())
                self.reap()
            self.wake.wait(0.5)
            self.wake.clear()

    def elapsed(self) -> float:
        try:
            started = calendar.timegm(time.strptime(self.view.start_time, "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            return 0.0
        return time.time() - started

    def grace(self) -> int:
        return max(MIN_GRACE, int(self.spec.get("terminationGracePeriodSeconds", 30)))

    # --- sync: sandbox, volumes, containers -------------------------------------------------------------------

    @property
    def placeholder_pod(self) -> bool:
        """Every container's image is one the table keeps on kwok nodes: the pod gets what kwok gives it, so
        neither its volumes nor its environment's references are resolved (nothing of the images runs to read
        them; e.g. a Secret the add-on's own operator would have made)."""
        if self._placeholder_pod is None:
            runs = []
            for c in self.inits + self.containers:
                try:
                    runs.append(self.agent.images.resolve(c.rec.image).entry.run)
                except agent_images.ImageError:
                    runs.append("")
            self._placeholder_pod = all(run == "placeholder" for run in runs)
        return self._placeholder_pod

    def sync(self) -> None:
        if not self.view.sandbox_ready:
            self.setup_sandbox()
        if not self.volumes_ready and self.placeholder_pod:
            self.volumes_ready = True
        if not self.volumes_ready:
            if time.monotonic() < self.volume_retry:
                return
            try:
                self.setup_volumes()
            except agent_volumes.VolumeError as exc:
                self.volume_retry = time.monotonic() + 5
                if str(exc) != self.volume_error:
                    self.volume_error = str(exc)
                    self.agent.event(self, "Warning", "FailedMount", f"MountVolume.SetUp failed: {exc}")
                    log.warning("%s", exc)
                for c in self.inits + self.containers:
                    if c.rec.state == "waiting" and c.rec.reason in ("ContainerCreating", "PodInitializing"):
                        c.rec.message = ""
                return
            self.volumes_ready = True
        elif time.monotonic() - self.volume_synced > VOLUME_RESYNC and not self.placeholder_pod:
            self.resync_volumes()
        self.reap()
        if not self.init_complete:
            if not self.step_inits():
                return
            self.init_complete = True
        for c in self.inits:
            if c.rec.sidecar:
                self.keep_running(c)
        for c in self.containers:
            self.keep_running(c)
            if c.post_start.is_set():
                break  # the kubelet starts the next container once this one's postStart hook returned
        self.handle_kills()

    def setup_sandbox(self) -> None:
        spec = self.spec
        host_network = bool(spec.get("hostNetwork"))
        if host_network:
            self.pod_ip = self.node.ip
            self.hostname = self.node.name
        else:
            self.pod_ip = self.node.allocate((self.pod.get("status") or {}).get("podIP"))
            add_ip(self.pod_ip)
            self.hostname = (spec.get("hostname") or self.pod_name)[:63]
        self.view.pod_ip = self.pod_ip
        etc = self.dir / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hostname").write_text(self.hostname + "\n")
        (etc / "hosts").write_text(self.hosts_file())
        (etc / "resolv.conf").write_text(self.resolv_conf(host_network))
        self.view.sandbox_ready = True
        log.info("sandbox ready, IP %s on lo", self.pod_ip)

    def hosts_file(self) -> str:
        lines = [
            "# Kubernetes-managed hosts file.",
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            "fe00::0\tip6-localnet",
            "fe00::0\tip6-mcastprefix",
            "fe00::1\tip6-allnodes",
            "fe00::2\tip6-allrouters",
        ]
        sub = self.spec.get("subdomain")
        if sub and not self.spec.get("hostNetwork"):
            fqdn = f"{self.hostname}.{sub}.{self.ns}.svc.{self.agent.cluster_domain}"
            lines.append(f"{self.pod_ip}\t{fqdn}\t{self.hostname}")
        else:
            lines.append(f"{self.pod_ip}\t{self.hostname}")
        aliases = self.spec.get("hostAliases") or []
        if aliases:
            lines.append("")
            lines.append("# Entries added by HostAliases.")
            for a in aliases:
                lines.append(f"{a.get('ip')}\t{chr(9).join(a.get('hostnames') or [])}")
        return "\n".join(lines) + "\n"

    def resolv_conf(self, host_network: bool) -> str:
        policy = self.spec.get("dnsPolicy", "ClusterFirst")
        cfg = self.spec.get("dnsConfig") or {}
        domain = self.agent.cluster_domain
        servers: list[str] = []
        searches: list[str] = []
        options: list[str] = []
        cluster = policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_network)
        if cluster and self.agent.cluster_dns:
            servers = [self.agent.cluster_dns]
            searches = [f"{self.ns}.svc.{domain}", f"svc.{domain}", domain]
            options = ["ndots:5"]
        elif cluster:
            self.agent.event(
                self,
                "Warning",
                "MissingClusterDNS",
                "pod: kubelet does not have ClusterDNS IP configured and cannot create Pod using "
                '"ClusterFirst" policy. Falling back to "Default" policy.',
            )
        # "Default" would be this machine's resolver, which lies outside the namespace: nothing is written for it.
        servers += list(cfg.get("nameservers") or [])
        searches += [s for s in cfg.get("searches") or [] if s not in searches]
        for o in cfg.get("options") or []:
            options = [x for x in options if x.split(":")[0] != o["name"]]
            options.append(o["name"] + (f":{o['value']}" if o.get("value") else ""))
        out = [f"nameserver {s}" for s in servers]
        if searches:
            out.append("search " + " ".join(searches))
        if options:
            out.append("options " + " ".join(options))
        return "\n".join(out) + "\n"

    def api_sources(self) -> agent_volumes.Api:
        a = self.agent
        return agent_volumes.Api(
            configmap=lambda ns, n: a.kube.get(f"/api/v1/namespaces/{ns}/configmaps/{n}"),
            secret=lambda ns, n: a.kube.get(f"/api/v1/namespaces/{ns}/secrets/{n}"),
            pvc=lambda ns, n: a.kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{n}"),
            pv=lambda n: a.kube.get(f"/api/v1/persistentvolumes/{n}"),
            token=a.token,
            node_allocatable=self.node.allocatable,
        )

    def plan_volumes(self) -> dict[str, agent_volumes.Volume]:
        api = self.api_sources()
        pod = self.pod_for_fields()
        node_dir = self.agent.run_dir / "nodes" / self.node.name
        return {
            v["name"]: agent_volumes.plan_volume(
                pod, v, self.dir, node_dir, self.agent.run_dir, self.agent.pv_roots, api
            )
            for v in self.spec.get("volumes") or []
        }

    def setup_volumes(self) -> None:
        planned = self.plan_volumes()
        for vol in planned.values():
            if vol.kind == "hostPath":
                agent_volumes.check_hostpath(vol)
            elif vol.tmpfs:
                mount_tmpfs(vol.path, vol.size)
            else:
                vol.path.mkdir(parents=True, exist_ok=True)
            if vol.files is not None:
                agent_volumes.write_atomic(vol.path, vol.files)
                for rel in agent_volumes.nested_mountpoints(self.spec, vol.name):
                    if not (vol.path / rel).exists():
                        (vol.path / rel).mkdir(parents=True, exist_ok=True)
        self.volumes = planned
        self.volume_synced = time.monotonic()
        self.volume_error = ""

    def resync_volumes(self) -> None:
        """ConfigMap, Secret, downwardAPI and projected volumes follow their sources (and tokens get renewed)."""
        self.volume_synced = time.monotonic()
        try:
            planned = self.plan_volumes()
        except agent_volumes.VolumeError as exc:
            log.info("volume resync: %s", exc)
            return
        for name, vol in planned.items():
            if vol.files is not None and name in self.volumes:
                agent_volumes.write_atomic(self.volumes[name].path, vol.files)

    def pod_for_fields(self) -> dict[str, Any]:
        """The pod as fieldRefs see it: with the IPs this agent gave it (status may not be written yet)."""
        pod = dict(self.pod)
        status = dict(pod.get("status") or {})
        status.update(
            {
                "podIP": self.pod_ip,
                "podIPs": [{"ip": self.pod_ip}],
                "hostIP": self.node.ip,
                "hostIPs": [{"ip": self.node.ip}],
            }
        )
        pod["status"] = status
        return pod

    # --- containers ----------------------------------------------------------------------------------------------

    def step_inits(self) -> bool:
        """Run init containers in order; True once all completed (sidecars: started)."""
        policy = self.spec.get("restartPolicy", "Always")
        for c in self.inits:
            if c.rec.sidecar:
                self.keep_running(c)
                if not c.rec.started:
                    return False
                continue
            if c.rec.succeeded():
                continue
            if c.running or (c.rec.state == "waiting" and time.monotonic() < c.retry_at):
                return False
            if c.rec.state == "terminated" or c.rec.last_terminated is not None:
                if policy == "Never":
                    return False  # the pod has failed (phase Failed)
                self.restart_when_due(c)
                return False
            self.launch(c)
            return False
        return True

    def keep_running(self, c: Container) -> None:
        """Start a container that has not run, restart one that exited when its policy says so."""
        if c.running or c.stopping or self.winding_down:
            return
        if c.proc is None and c.rec.state == "waiting" and c.rec.last_terminated is None:
            if time.monotonic() >= c.retry_at:
                self.launch(c)
            return
        policy = c.restart_policy(self.spec.get("restartPolicy", "Always"))
        last = c.rec.terminated() if c.rec.state == "terminated" else c.rec.last_terminated
        if last is None:
            return
        if policy == "Always" or (policy == "OnFailure" and last.get("exitCode") != 0):
            self.restart_when_due(c)

    def restart_when_due(self, c: Container) -> None:
        """The kubelet's crash-loop back-off: the first restart at once, then 10 s, doubling to 5 minutes; reset
        after 10 minutes of running."""
        due = c.last_start + c.backoff
        if time.monotonic() < due:
            if c.rec.state != "waiting":
                c.rec.last_terminated = c.rec.terminated()
                c.rec.state = "waiting"
            c.rec.reason = "CrashLoopBackOff"
            c.rec.message = (
                f"back-off {int(c.backoff)}s restarting failed container={c.name} "
                f"pod={self.pod_name}_{self.ns}({self.uid})"
            )
            self.agent.event(self, "Warning", "BackOff", "Back-off restarting failed container " + c.name, c)
            return
        c.backoff = BACKOFF_START if c.backoff == 0 else min(c.backoff * 2, BACKOFF_MAX)
        self.launch(c, restart=True)

    def launch(self, c: Container, restart: bool = False) -> None:
        rec = c.rec
        try:
            runtime = self.agent.images.resolve(rec.image)
        except agent_images.ImageError as exc:
            self.waiting(c, "ImageNotInSandbox", str(exc), retry=20)
            self.agent.event(self, "Warning", "Failed", f'Failed to pull image "{rec.image}": {exc}', c)
            return
        try:
            if runtime.entry.run == "placeholder" and self.placeholder_pod:
                env, argv, mounts = self.placeholder_process(c, runtime)
            else:
                env, argv, mounts = self.container_process(c, runtime)
        except (agent_env.EnvError, agent_volumes.VolumeError, ValueError) as exc:
            self.waiting(c, "CreateContainerConfigError", str(exc), retry=10)
            self.agent.event(self, "Warning", "Failed", f"Error: {exc}", c)
            return
        self.start_process(c, runtime, env, argv, mounts, restart)

    def placeholder_process(
        self, c: Container, runtime: agent_images.Runtime
    ) -> tuple[dict[str, str], list[str], list[agent_volumes.Mount]]:
        """What kwok gives a pod of images kept off agent nodes: a container that runs (an init container or a
        Job's pod completes), without its volumes or environment."""
        c.placeholder = True
        job = any(o.get("kind") == "Job" for o in self.pod["metadata"].get("ownerReferences") or [])
        argv = ["true"] if (c.rec.init and not c.rec.sidecar) or job else ["sleep", "infinity"]
        return dict(runtime.env), argv, []

    def container_process(
        self, c: Container, runtime: agent_images.Runtime
    ) -> tuple[dict[str, str], list[str], list[agent_volumes.Mount]]:
        """The container's environment, command line and mounts, as a runtime would give them."""
        env = agent_env.container_env(
            self.pod_for_fields(),
            c.spec,
            self.agent.env_sources(),
            self.agent.service_env(self.pod),
            self.node.allocatable,
        )
        env = agent_images.container_env(runtime, env)
        env.setdefault("HOSTNAME", self.hostname)
        if not self.spec.get("hostNetwork"):
            env = agent_net.pod_env(self.agent.netlib, self.pod_ip, env)
        if runtime.entry.run in ("sglang", "standin"):  # what the stand-ins read (docs/standin.md)
            env.setdefault("SGLANG_STANDIN_POD_IP", self.pod_ip)
            env.setdefault("SGLANG_STANDIN_POD_LABELS", json.dumps(self.pod["metadata"].get("labels") or {}))
        argv = agent_env.command_line(c.spec, runtime.entrypoint, runtime.cmd, env)
        c.placeholder = runtime.entry.run == "placeholder"
        if c.placeholder:
            # A placeholder beside containers that run: the pod's volumes are there, its command is not.
            job = any(o.get("kind") == "Job" for o in self.pod["metadata"].get("ownerReferences") or [])
            argv = ["true"] if (c.rec.init and not c.rec.sidecar) or job else ["sleep", "infinity"]
        agent_volumes.prepare_subpaths(c.spec, self.volumes, env)
        mounts = agent_volumes.container_mounts(c.spec, self.volumes, env)
        return env, argv, mounts

    def start_process(
        self,
        c: Container,
        runtime: agent_images.Runtime,
        env: dict[str, str],
        argv: list[str],
        mounts: list[agent_volumes.Mount],
        restart: bool,
    ) -> None:
        rec = c.rec
        if restart or rec.state == "terminated" or rec.last_terminated is not None:
            if rec.state == "terminated":
                rec.last_terminated = rec.terminated()
            if rec.last_terminated is not None:
                rec.restart_count += 1
        index = rec.restart_count
        inst = self.dir / "containers" / c.name / str(index)
        if inst.exists():
            subprocess.run(["rm", "-rf", str(inst)], check=False)
        for d in ("upper", "work", "merged", "tmp"):
            (inst / d).mkdir(parents=True, exist_ok=True)
        os.chmod(inst / "tmp", 0o1777)
        security = c.spec.get("securityContext") or {}
        netlib = self.agent.netlib if not self.spec.get("hostNetwork") else None
        shm = self.volumes_at("/dev/shm", c.spec)
        spec = {
            "argv": argv,
            "env": env,
            "workdir": c.spec.get("workingDir") or runtime.workdir or "/",
            "hostname": self.hostname,
            "rootfs": {"upper": str(inst / "upper"), "work": str(inst / "work"), "merged": str(inst / "merged")},
            "tmp": str(inst / "tmp"),
            "readonly_root": bool(security.get("readOnlyRootFilesystem")),
            "shm_size": None if shm else "65536k",
            "files": [
                {"source": str(self.dir / "etc" / "hosts"), "target": "/etc/hosts"},
                {"source": str(self.dir / "etc" / "hostname"), "target": "/etc/hostname"},
                {"source": str(self.dir / "etc" / "resolv.conf"), "target": "/etc/resolv.conf"},
            ],
            "mounts": [{"source": m.source, "target": m.target, "readonly": m.readonly} for m in mounts]
            + [{"source": p, "target": p, "readonly": True} for p in runtime.binds]
            + ([{"source": str(netlib), "target": str(netlib), "readonly": True}] if netlib else []),
            "pidfile": str(inst / "pid"),
            "errfile": str(inst / "start-error"),
        }
        (inst / "spec.json").write_text(json.dumps(spec, indent=1))
        writer = agent_logs.LogWriter(self.log_dir / c.name / f"{index}.log")
        proc = subprocess.Popen(
            [sys.executable, str(SHIM), str(inst / "spec.json")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={"PATH": os.environ.get("PATH", agent_images.BASE_PATH)},
            cwd="/",
        )
        assert proc.stdout is not None and proc.stderr is not None
        writer.start(proc.stdout, proc.stderr)
        # The shim writes PID 1's host PID right after its fork: wait for it, so exec probes have a target.
        waited = time.monotonic() + 5
        while not (inst / "pid").exists() and proc.poll() is None and time.monotonic() < waited:
            time.sleep(0.01)
        self.agent.track(proc.pid, inst / "spec.json")
        c.proc, c.instance_dir, c.env, c.log = proc, inst, env, writer
        c.stopped = threading.Event()
        c.stopping, c.kill_reason, c.kill_grace = False, "", None
        c.last_start = time.monotonic()
        rec.state, rec.reason, rec.message = "running", "", ""
        rec.started_at, rec.finished_at, rec.exit_code = now(), "", None
        rec.container_id = "sandbox://" + secrets.token_hex(32)
        probes = {k: c.spec.get(f"{k}Probe") for k in ("startup", "readiness", "liveness")}
        rec.started = probes["startup"] is None
        rec.ready = rec.started and probes["readiness"] is None and not rec.init
        if rec.init and not rec.sidecar:
            rec.ready = False
        c.probes = {}
        for kind, probe in probes.items():
            if probe and (not rec.init or rec.sidecar):
                c.probes[kind] = agent_probes.ProbeState.for_probe(kind, probe)
                threading.Thread(
                    target=self.probe_loop,
                    args=(c, kind, probe, c.stopped),
                    daemon=True,
                    name=f"{kind} probe {self.name}/{c.name}",
                ).start()
        post_start = (c.spec.get("lifecycle") or {}).get("postStart")
        if post_start:
            c.post_start.set()
            threading.Thread(
                target=self.post_start_hook, args=(c, post_start, c.stopped), daemon=True, name=f"postStart {c.name}"
            ).start()
        what = "stood in" if runtime.entry.run in ("sglang", "standin") else "runs"
        self.agent.event(
            self,
            "Normal",
            "Pulled",
            f'Container image "{rec.image}" {what} as {runtime.entry.run} (tools/simulation/images.yaml)',
            c,
        )
        self.agent.event(self, "Normal", "Created", f"Created container {c.name}", c)
        self.agent.event(self, "Normal", "Started", f"Started container {c.name}", c)
        log.info("started %s (shim pid %d): %s", c.name, proc.pid, " ".join(argv)[:300])

    def volumes_at(self, path: str, spec: Mapping[str, Any]) -> bool:
        return any(vm.get("mountPath", "").rstrip("/") == path for vm in spec.get("volumeMounts") or [])

    def waiting(self, c: Container, reason: str, message: str, retry: float) -> None:
        if c.rec.state == "terminated":
            c.rec.last_terminated = c.rec.terminated()
        c.rec.state, c.rec.reason, c.rec.message = "waiting", reason, message
        c.retry_at = time.monotonic() + retry
        c.proc = None

    def reap(self) -> None:
        """Record containers whose process ended."""
        for c in self.inits + self.containers:
            if c.proc is None or c.rec.state != "running":
                continue
            code = c.proc.poll()
            if code is None:
                continue
            if code < 0:
                code = 128 - code
            c.stopped.set()
            c.stopping, c.kill_reason = False, ""
            self.agent.untrack(c.proc.pid)
            rec = c.rec
            rec.state, rec.exit_code, rec.finished_at = "terminated", code, now()
            rec.ready = False
            rec.started = False
            rec.message = ""
            err = c.instance_dir / "start-error" if c.instance_dir else None
            start_error = err.read_text().strip() if code == 128 and err is not None and err.exists() else ""
            if start_error:
                rec.reason, rec.message = "StartError", start_error[:1000]
                self.agent.event(self, "Warning", "Failed", f"Error: {rec.message}", c)
            else:
                rec.reason = "Completed" if code == 0 else "Error"
            if c.last_start and time.monotonic() - c.last_start > BACKOFF_RESET:
                c.backoff = 0.0
            log.info("container %s exited %d (%s)", c.name, code, rec.reason)
            self.wake.set()

    def handle_kills(self) -> None:
        for c in self.inits + self.containers:
            if c.kill_reason and c.running and not c.stopping:
                self.agent.event(self, "Normal", "Killing", c.kill_reason, c)
                self.stop_async(c, c.kill_grace if c.kill_grace is not None else self.grace())

    def stop_async(self, c: Container, grace: int) -> threading.Thread:
        c.stopping = True
        t = threading.Thread(target=self.stop_container, args=(c, grace), daemon=True, name=f"stop {c.name}")
        t.start()
        return t

    def stop_container(self, c: Container, grace: int) -> None:
        """preStop, SIGTERM, wait out the grace period, SIGKILL: the kubelet's killContainer."""
        proc = c.proc
        if proc is None or proc.poll() is not None:
            return
        deadline = time.monotonic() + max(grace, MIN_GRACE)
        hook = ((c.spec.get("lifecycle") or {}).get("preStop")) or None
        if hook:
            self.run_hook(c, hook, max(1, grace))
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        capped = False
        while proc.poll() is None and time.monotonic() < deadline:
            if self.agent.stopping.is_set() and not capped:  # the agent itself is stopping: 5 s at most
                deadline, capped = min(deadline, time.monotonic() + 5), True
            time.sleep(0.1)
        if proc.poll() is None:
            pid = c.pid()
            for target in [p for p in (pid, proc.pid) if p]:
                try:
                    os.kill(target, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.wake.set()

    def run_hook(self, c: Container, hook: Mapping[str, Any], timeout: int, kind: str = "PreStop") -> bool:
        if "sleep" in hook:
            time.sleep(min(timeout, int(hook["sleep"].get("seconds", 0))))
            return True
        probe = dict(hook, timeoutSeconds=timeout)
        ok, message = agent_probes.run_probe(probe, self.pod_ip, c.spec, c.pid(), c.env)
        if not ok:
            self.agent.event(self, "Warning", f"Failed{kind}Hook", f"{kind}Hook failed: {message}", c)
        return ok

    def post_start_hook(self, c: Container, hook: Mapping[str, Any], stopped: threading.Event) -> None:
        """postStart: the container counts as started, but the next one waits for it; a failure kills it."""
        try:
            if not self.run_hook(c, hook, self.grace(), "PostStart") and not stopped.is_set():
                c.kill_reason = f"FailedPostStartHook: container {c.name}"
                c.kill_grace = self.grace()
        finally:
            c.post_start.clear()
            self.wake.set()

    def probe_loop(self, c: Container, kind: str, probe: dict[str, Any], stopped: threading.Event) -> None:
        t = agent_probes.timing(probe)
        state = c.probes[kind]
        if stopped.wait(t["initialDelaySeconds"]):
            return
        label = kind.capitalize()
        while not stopped.is_set():
            if kind != "startup" and not c.rec.started:
                stopped.wait(min(1, t["periodSeconds"]))
                continue
            if kind == "startup" and c.rec.started:
                return
            try:
                if c.placeholder:  # nothing of the image runs to answer it
                    ok, message = True, ""
                else:
                    ok, message = agent_probes.run_probe(probe, self.pod_ip, c.spec, c.pid(), c.env)
            except Exception as exc:  # a probe's own failure is a failed probe
                ok, message = False, f"probe error: {exc}"
            if stopped.is_set():
                return
            result = state.record(ok, message)
            if not ok:
                self.agent.event(self, "Warning", "Unhealthy", f"{label} probe failed: {message}", c)
            elif message:
                self.agent.event(self, "Warning", "ProbeNotRun", message, c)
            if kind == "startup" and result:
                c.rec.started = True
                c.rec.ready = "readiness" not in c.probes
                self.wake.set()
                return
            if kind == "readiness" and bool(result) != c.rec.ready:
                c.rec.ready = bool(result)
                self.wake.set()
            if state.fatal:
                c.kill_reason = f"Container {c.name} failed {kind} probe, will be restarted"
                c.kill_grace = probe.get("terminationGracePeriodSeconds")
                self.wake.set()
                return
            stopped.wait(t["periodSeconds"])

    # --- termination ---------------------------------------------------------------------------------------------

    def kill_all(self, grace: int) -> None:
        threads = [self.stop_async(c, grace) for c in self.inits + self.containers if c.running]
        for t in threads:
            t.join()
        self.reap()

    def terminate(self, grace: int) -> None:
        """Stop the pod for good: containers first, then sidecars (reverse order), then mark what never ran."""
        if any(c.running for c in self.containers):
            self.agent.event(self, "Normal", "Killing", "Stopping pod containers")
        threads = [
            self.stop_async(c, grace)
            for c in self.containers + [i for i in self.inits if not i.rec.sidecar]
            if c.running
        ]
        for t in threads:
            t.join()
        for c in reversed([i for i in self.inits if i.rec.sidecar]):
            if c.running:
                self.stop_async(c, MIN_GRACE).join()
        self.reap()
        for c in self.inits + self.containers:
            if c.rec.state == "waiting":
                if c.rec.last_terminated is not None:
                    last = c.rec.last_terminated
                    c.rec.state, c.rec.exit_code = "terminated", last.get("exitCode", 137)
                    c.rec.reason, c.rec.message = last.get("reason", "Error"), last.get("message", "")
                    c.rec.started_at, c.rec.finished_at = last.get("startedAt") or "", last.get("finishedAt") or ""
                elif not c.rec.init or c.rec.sidecar or not self.init_complete:
                    c.rec.state, c.rec.exit_code = "terminated", 137
                    c.rec.reason = "ContainerStatusUnknown"
                    c.rec.message = "The container could not be located when the pod was terminated"
            c.rec.ready = False
        self.view.terminal = True

    def cleanup(self) -> None:
        if self.cleaned:
            return
        self.cleaned = True
        for c in self.inits + self.containers:
            c.stopped.set()
            if c.running and c.proc is not None:
                c.proc.kill()
        for vol in self.volumes.values():
            if vol.tmpfs:
                umount(vol.path)
        if self.pod_ip and not self.spec.get("hostNetwork"):
            del_ip(self.pod_ip)
            self.node.release(self.pod_ip)
        subprocess.run(["rm", "-rf", str(self.dir / "containers")], check=False)
        for sub in ("empty-dir", "secret", "projected"):
            d = self.dir / "volumes" / sub
            if d.exists() and not any(os.path.ismount(p) for p in d.iterdir()):
                subprocess.run(["rm", "-rf", str(d)], check=False)

    # --- status -----------------------------------------------------------------------------------------------

    def write_status(self, force: bool = False) -> str:
        with self.lock:
            pod = dict(self.pod)
        status = dict(pod.get("status") or {})
        remembered = {c["type"]: c for c in status.get("conditions") or []}
        remembered.update(self.conditions)
        status["conditions"] = list(remembered.values())
        pod["status"] = status
        new = agent_status.pod_status(pod, [c.rec for c in self.inits], [c.rec for c in self.containers], self.view)
        if new == self.written and not force:
            return str(new["phase"])
        try:
            self.agent.kube.request(
                "PATCH",
                f"/api/v1/namespaces/{self.ns}/pods/{self.pod_name}/status",
                body={"metadata": {"uid": self.uid}, "status": new},
                content_type=SMP,
            )
            self.written = new
            self.conditions = {c["type"]: c for c in new["conditions"]}
        except KubeError as exc:
            if exc.status == 404:
                self.removed = True
            log.warning("status not written: %s", exc)
        except Exception as exc:  # the API server away for a moment: the containers go on, the status follows
            log.warning("status not written: %s", exc)
        return str(new["phase"])


# --- the agent ---------------------------------------------------------------------------------------------


class Agent:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.run_dir: Path = args.run_dir.resolve()
        self.kube = Kube(str(args.kubeconfig))
        self.cluster_dns: str = args.cluster_dns or ""
        self.cluster_domain: str = args.cluster_domain
        self.pod_cidr = ipaddress.ip_network(args.pod_cidr)
        self.pv_roots = [self.run_dir, *[Path(p) for p in args.pv_root]]
        if os.environ.get("SGLANG_SIM_RUN"):
            self.pv_roots.append(Path(os.environ["SGLANG_SIM_RUN"]))
        self.images = agent_images.Resolver(
            table=agent_images.load_table(args.images),
            python_prefix=Path(sys.prefix),
            venv_dir=args.image_dir.resolve(),
            overlay_dir=self.run_dir / "images" / "sglang",
            placeholders=args.placeholders,
        )
        self.netlib = agent_net.build(self.run_dir / "lib")
        self.nodes: dict[str, Node] = {}
        self.workers: dict[str, PodWorker] = {}
        self.finished: set[str] = set()
        self.deleting: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.servers: list[Any] = []
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.event_seen: dict[tuple[str, str, str], float] = {}
        self.tokens: dict[tuple, tuple[str, float]] = {}
        self.services: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self.kubernetes_service: tuple[str, int] | None = None
        if args.kubernetes_service:
            host, _, port = args.kubernetes_service.rpartition(":")
            self.kubernetes_service = (host, int(port))

    # --- start / stop ----------------------------------------------------------------------------------------

    def run(self) -> None:
        (self.run_dir / "pids").mkdir(parents=True, exist_ok=True)
        self.stop_leftovers()
        for name in self.args.node:
            delay = 1.0
            while True:  # the starter may start the agent before the API server answers
                try:
                    self.register(name)
                    break
                except Exception as exc:
                    log.warning("node %s: cannot register yet (%s); retrying", name, exc)
                    if self.stopping.wait(delay):
                        self.shutdown()
                        return
                    delay = min(delay * 2, 10)
        cert, key = self.run_dir / "pki" / "kubelet.crt", self.run_dir / "pki" / "kubelet.key"
        agent_logs.self_signed(cert, key, [n.ip for n in self.nodes.values()], "sandbox-agent")
        for node in self.nodes.values():
            self.servers.append(
                agent_logs.serve(node.ip, self.args.kubelet_port, cert, key, self.locate_log, self.args.client_ca)
            )
        threads = [
            threading.Thread(target=self.heartbeat, daemon=True, name="heartbeat"),
            threading.Thread(target=self.send_events, daemon=True, name="events"),
        ]
        threads += [
            threading.Thread(target=self.watch_pods, args=(n,), daemon=True, name=f"watch {n}") for n in self.nodes
        ]
        for t in threads:
            t.start()
        log.info("agent up: nodes %s", ", ".join(f"{n.name} ({n.ip}, pods {n.cidr})" for n in self.nodes.values()))
        self.stopping.wait()
        self.shutdown()

    def shutdown(self) -> None:
        log.info("agent stopping: stopping every container it started")
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.wake.set()
        for w in workers:
            w.join(timeout=20)
        for w in workers:  # anything a stuck worker left: by PID
            for c in w.inits + w.containers:
                if c.proc is not None and c.proc.poll() is None:
                    c.proc.kill()
        for s in self.servers:
            s.shutdown()
        self.stop_leftovers()
        for node in self.nodes.values():
            del_ip(node.ip)
        self.events.put(None)
        log.info("agent stopped")

    def track(self, pid: int, spec: Path) -> None:
        (self.run_dir / "pids" / f"{pid}.json").write_text(json.dumps({"pid": pid, "spec": str(spec)}))

    def untrack(self, pid: int) -> None:
        (self.run_dir / "pids" / f"{pid}.json").unlink(missing_ok=True)

    def stop_leftovers(self) -> None:
        """Shims of this run dir still running (a previous agent that was killed, or a stuck worker): by PID, after
        checking their command line; and pod addresses of our nodes' ranges still on lo."""
        for f in (self.run_dir / "pids").glob("*.json"):
            try:
                info = json.loads(f.read_text())
                cmdline = Path(f"/proc/{info['pid']}/cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError, KeyError):
                f.unlink(missing_ok=True)
                continue
            if str(SHIM).encode() in cmdline and info["spec"].encode() in cmdline:
                try:
                    os.kill(info["pid"], signal.SIGKILL)
                    log.info("stopped leftover container shim %d (%s)", info["pid"], info["spec"])
                except ProcessLookupError:
                    pass
            f.unlink(missing_ok=True)
        for ip in lo_addresses():
            addr = ipaddress.ip_address(ip)
            if any(addr in n.cidr and ip != n.ip for n in self.nodes.values()):
                del_ip(ip)

    # --- nodes ---------------------------------------------------------------------------------------------

    def register(self, name: str) -> None:
        node = self.kube.get(f"/api/v1/nodes/{name}")
        if node is None:
            node = self.kube.request(
                "POST",
                "/api/v1/nodes",
                body={
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "sandbox-agent",
                        },
                    },
                },
            )
            log.info("node %s registered", name)
        meta = node["metadata"]
        if (meta.get("annotations") or {}).get(KWOK_ANNOTATION) == "fake":
            raise SystemExit(f"agent: node {name} is annotated {KWOK_ANNOTATION}=fake: kwok manages it, not this agent")
        cidr_text = (node.get("spec") or {}).get("podCIDR")
        if not cidr_text:
            cidr_text = self.free_cidr()
            self.kube.request(
                "PATCH",
                f"/api/v1/nodes/{name}",
                content_type=MERGE,
                body={"spec": {"podCIDR": cidr_text, "podCIDRs": [cidr_text]}},
            )
        cidr = ipaddress.ip_network(cidr_text)
        if not isinstance(cidr, ipaddress.IPv4Network) or not cidr.subnet_of(self.pod_cidr):  # type: ignore[arg-type]
            raise SystemExit(f"agent: node {name} has podCIDR {cidr} outside --pod-cidr {self.pod_cidr}")
        ip = str(next(cidr.hosts()))
        add_ip(ip)
        status = node.get("status") or {}
        capacity = status.get("capacity") or machine_capacity()
        allocatable = status.get("allocatable") or capacity
        self.nodes[name] = Node(name, cidr, ip, dict(allocatable), meta["uid"])
        self.renew_lease(name)
        self.patch_node_status(name, capacity if not status.get("capacity") else None)

    def free_cidr(self) -> str:
        """The first /24 of --pod-cidr no node uses (KCM's range allocator, which this cluster does not run)."""
        used = {(n.get("spec") or {}).get("podCIDR") for n in self.kube.request("GET", "/api/v1/nodes")["items"]}
        used |= {str(n.cidr) for n in self.nodes.values()}
        prefix = max(self.pod_cidr.prefixlen, min(24, self.pod_cidr.max_prefixlen - 2))
        for subnet in self.pod_cidr.subnets(new_prefix=prefix):
            if str(subnet) not in used:
                return str(subnet)
        raise SystemExit(f"agent: no free node range left in {self.pod_cidr}")

    def patch_node_status(self, name: str, capacity: dict[str, str] | None = None) -> None:
        node = self.nodes[name]
        t = now()
        conditions = [
            {
                "type": "MemoryPressure",
                "status": "False",
                "reason": "KubeletHasSufficientMemory",
                "message": "kubelet has sufficient memory available",
            },
            {
                "type": "DiskPressure",
                "status": "False",
                "reason": "KubeletHasNoDiskPressure",
                "message": "kubelet has no disk pressure",
            },
            {
                "type": "PIDPressure",
                "status": "False",
                "reason": "KubeletHasSufficientPID",
                "message": "kubelet has sufficient PID available",
            },
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "sandbox agent is posting ready status",
            },
        ]
        for c in conditions:
            c["lastHeartbeatTime"] = t
            c.setdefault("lastTransitionTime", t)
        status: dict[str, Any] = {
            "conditions": conditions,
            # No Hostname address: the API server dials the first of its --kubelet-preferred-address-types it
            # finds, Hostname by default, and node names do not resolve in the namespace.
            "addresses": [{"type": "InternalIP", "address": node.ip}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.args.kubelet_port}},
            "nodeInfo": {
                "kubeletVersion": AGENT_VERSION,
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "sandbox://agent-shim",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "sglang-platform sandbox",
                "kernelVersion": os.uname().release,
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
        if capacity:
            status["capacity"] = capacity
            status["allocatable"] = capacity
        existing = self.kube.get(f"/api/v1/nodes/{name}")
        old = {c["type"]: c for c in ((existing or {}).get("status") or {}).get("conditions") or []}
        for c in conditions:
            prev = old.get(c["type"])
            if prev and prev.get("status") == c["status"]:
                c["lastTransitionTime"] = prev.get("lastTransitionTime", t)
        self.kube.request("PATCH", f"/api/v1/nodes/{name}/status", body={"status": status}, content_type=SMP)

    def renew_lease(self, name: str) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
        spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_time()}
        if self.kube.get(path) is None:
            self.kube.request(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                body={
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": name,
                        "namespace": "kube-node-lease",
                        "ownerReferences": [
                            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.nodes[name].uid}
                        ],
                    },
                    "spec": spec,
                },
            )
        else:
            self.kube.request("PATCH", path, body={"spec": spec}, content_type=MERGE)

    def heartbeat(self) -> None:
        last_status = -1e9
        while not self.stopping.is_set():
            for name in self.nodes:
                try:
                    self.renew_lease(name)
                    if time.monotonic() - last_status > 4 * HEARTBEAT:
                        self.patch_node_status(name)
                except Exception as exc:
                    log.warning("node %s: heartbeat failed: %s", name, exc)
            if time.monotonic() - last_status > 4 * HEARTBEAT:
                last_status = time.monotonic()
            self.stopping.wait(HEARTBEAT)

    # --- pods ----------------------------------------------------------------------------------------------

    def watch_pods(self, node: str) -> None:
        query = {"fieldSelector": f"spec.nodeName={node}"}
        while not self.stopping.is_set():
            try:
                listed = self.kube.request("GET", "/api/v1/pods", query=query)
                seen = set()
                for pod in listed["items"]:
                    seen.add(pod["metadata"]["uid"])
                    self.on_pod(pod, node)
                with self.lock:
                    missing = [w for w in self.workers.values() if w.node.name == node and w.uid not in seen]
                for w in missing:
                    w.gone()
                rv = listed["metadata"]["resourceVersion"]
                for event in self.kube.watch("/api/v1/pods", dict(query, resourceVersion=rv)):
                    if self.stopping.is_set():
                        return
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        break
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        self.on_deleted(obj)
                    else:
                        self.on_pod(obj, node)
            except Exception as exc:
                if not self.stopping.is_set():
                    log.warning("watch of %s's pods: %s (listing again)", node, exc)
                    self.stopping.wait(2)

    def on_pod(self, pod: dict[str, Any], node_name: str) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            if worker is not None:
                worker.update(pod)
                return
            terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if uid in self.finished or terminal:
                self.finished.add(uid)
                if pod["metadata"].get("deletionTimestamp") and uid not in self.deleting:
                    self.deleting.add(uid)
                    threading.Thread(
                        target=self.delete_pod,
                        daemon=True,
                        args=(pod["metadata"]["namespace"], pod["metadata"]["name"], uid),
                    ).start()
                return
            worker = PodWorker(self, pod, self.nodes[node_name])
            self.workers[uid] = worker
        worker.start()

    def on_deleted(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            self.finished.discard(uid)
            self.deleting.discard(uid)
        if worker is not None:
            worker.gone()

    def finish(self, uid: str) -> None:
        with self.lock:
            self.finished.add(uid)

    def worker_done(self, worker: PodWorker) -> None:
        with self.lock:
            self.workers.pop(worker.uid, None)

    def delete_pod(self, ns: str, name: str, uid: str) -> None:
        """The kubelet's last step for a pod being deleted: once stopped, delete it with grace period 0."""
        try:
            self.kube.request(
                "DELETE",
                f"/api/v1/namespaces/{ns}/pods/{name}",
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
            )
        except KubeError as exc:
            if exc.status not in (404, 409):
                log.warning("pod %s/%s: delete failed: %s", ns, name, exc)
        except Exception as exc:
            log.warning("pod %s/%s: delete failed: %s", ns, name, exc)

    # --- what containers read -----------------------------------------------------------------------------------

    def env_sources(self) -> agent_env.Sources:
        def configmap(ns: str, name: str) -> dict[str, str] | None:
            obj = self.kube.get(f"/api/v1/namespaces/{ns}/configmaps/{name}")
            return None if obj is None else dict(obj.get("data") or {})

        def secret(ns: str, name: str) -> dict[str, str] | None:
            obj = self.kube.get(f"/api/v1/namespaces/{ns}/secrets/{name}")
            if obj is None:
                return None
            return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}

        return agent_env.Sources(configmap=configmap, secret=secret)

    def service_env(self, pod: Mapping[str, Any]) -> dict[str, str]:
        ns = pod["metadata"]["namespace"]
        services = list(self.services_of(ns)) if ns != "default" else []
        services += self.services_of("default")
        if self.kubernetes_service:
            host, port = self.kubernetes_service
            services = [
                s
                for s in services
                if not (s["metadata"]["name"] == "kubernetes" and s["metadata"]["namespace"] == "default")
            ]
            services.append(
                {
                    "metadata": {"name": "kubernetes", "namespace": "default"},
                    "spec": {"clusterIP": host, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
                }
            )
        return agent_env.service_env(services, ns, pod["spec"].get("enableServiceLinks", True) is not False)

    def services_of(self, ns: str) -> list[dict[str, Any]]:
        cached = self.services.get(ns)
        if cached and time.monotonic() - cached[0] < 10:
            return cached[1]
        items = self.kube.request("GET", f"/api/v1/namespaces/{ns}/services")["items"]
        self.services[ns] = (time.monotonic(), items)
        return items

    def token(self, pod: Mapping[str, Any], audience: str | None, expiration: int) -> str:
        """A bound ServiceAccount token (TokenRequest), renewed once 80% of its life has passed or after 24 h."""
        meta, spec = pod["metadata"], pod["spec"]
        sa = spec.get("serviceAccountName") or "default"
        key = (meta["namespace"], sa, audience, expiration, meta["uid"])
        cached = self.tokens.get(key)
        if cached and time.time() < cached[1]:
            return cached[0]
        body: dict[str, Any] = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": expiration,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
            },
        }
        if audience:
            body["spec"]["audiences"] = [audience]
        try:
            out = self.kube.request(
                "POST", f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{sa}/token", body=body
            )
        except KubeError as exc:
            raise agent_volumes.VolumeError(f"failed to fetch token: {exc}") from exc
        token = out["status"]["token"]
        expires = out["status"].get("expirationTimestamp")
        life = float(expiration)
        if expires:
            life = calendar.timegm(time.strptime(expires, "%Y-%m-%dT%H:%M:%SZ")) - time.time()
        self.tokens[key] = (token, time.time() + min(0.8 * life, 86400))
        return str(token)

    def locate_log(self, ns: str, pod: str, container: str, previous: bool):
        with self.lock:
            worker = next((w for w in self.workers.values() if w.ns == ns and w.pod_name == pod), None)
        if worker is not None:
            c = next((x for x in worker.inits + worker.containers if x.name == container), None)
            if c is None:
                return f'container "{container}" in pod "{pod}" is not found'
            index = c.rec.restart_count - (1 if previous else 0)
            path = worker.log_dir / container / f"{index}.log"
            closed = c.log.closed if (c.log is not None and not previous and c.log.path == path) else None
            if not path.exists():
                return (
                    f'previous terminated container "{container}" in pod "{pod}" not found'
                    if previous
                    else f'container "{container}" in pod "{pod}" is waiting to start'
                )
            return path, closed
        # a finished pod: its last (or previous) log file
        dirs = sorted(
            (self.run_dir / "logs" / "pods").glob(f"{ns}_{pod}_*/{container}"), key=lambda d: d.stat().st_mtime
        )
        if not dirs:
            return f'pod "{pod}" not found on this node'
        files = sorted(dirs[-1].glob("*.log"), key=lambda p: int(p.stem))
        if previous:
            files = files[:-1]
        if not files:
            return f'previous terminated container "{container}" in pod "{pod}" not found'
        return files[-1], None

    # --- events ---------------------------------------------------------------------------------------------

    def event(self, worker: PodWorker, etype: str, reason: str, message: str, c: Container | None = None) -> None:
        key = (worker.uid, reason, message if reason != "BackOff" else "")
        t = time.monotonic()
        if t - self.event_seen.get(key, -1e9) < 60:
            return
        self.event_seen[key] = t
        field_path = ""
        if c is not None:
            field_path = f"spec.{'initContainers' if c.rec.init else 'containers'}{{{c.name}}}"
        ts = now()
        self.events.put(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{worker.pod_name}.{secrets.token_hex(8)}", "namespace": worker.ns},
                "involvedObject": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": worker.pod_name,
                    "namespace": worker.ns,
                    "uid": worker.uid,
                    **({"fieldPath": field_path} if field_path else {}),
                },
                "reason": reason,
                "message": message[:1000],
                "type": etype,
                "source": {"component": "kubelet", "host": worker.node.name},
                "reportingComponent": "kubelet",
                "reportingInstance": worker.node.name,
                "firstTimestamp": ts,
                "lastTimestamp": ts,
                "count": 1,
            }
        )

    def send_events(self) -> None:
        while True:
            ev = self.events.get()
            if ev is None:
                return
            try:
                self.kube.request("POST", f"/api/v1/namespaces/{ev['metadata']['namespace']}/events", body=ev)
            except Exception as exc:
                log.debug("event not written: %s", exc)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.simulation.agent", description=__doc__.split("\n\n")[0])
    p.add_argument("--kubeconfig", required=True, type=Path)
    p.add_argument("--run-dir", required=True, type=Path, help="pods, volumes, logs, the agent's own log")
    p.add_argument("--node", action="append", required=True, help="a node this agent runs (repeatable)")
    p.add_argument("--images", type=Path, default=agent_images.TABLE, help="the image table")
    p.add_argument(
        "--image-dir",
        type=Path,
        default=Path(os.environ.get("SGLANG_SIM_IMAGES", "") or Path.home() / ".cache" / "sglang-sim" / "images"),
        help="where `agent_images prepare` put the venv images (env SGLANG_SIM_IMAGES)",
    )
    p.add_argument("--cluster-dns", default="", help="the cluster DNS Service IP for resolv.conf")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--pod-cidr", default="10.245.0.0/16", help="node ranges (/24 each) are taken from here")
    p.add_argument("--kubelet-port", type=int, default=10250, help="the log endpoint's port on each node's IP")
    p.add_argument(
        "--client-ca",
        type=Path,
        default=None,
        help="require API server client certificates signed by this CA on the log endpoint",
    )
    p.add_argument(
        "--kubernetes-service",
        default="",
        help="HOST:PORT given to pods as KUBERNETES_SERVICE_HOST/PORT instead of the kubernetes Service's "
        "ClusterIP (for a sandbox without kube-proxy)",
    )
    p.add_argument(
        "--pv-root",
        action="append",
        default=[],
        help="PV hostPaths under this dir are used as they are (default: the run dir, $SGLANG_SIM_RUN)",
    )
    p.add_argument(
        "--placeholders",
        action="store_true",
        help="run a placeholder for images the table keeps on kwok nodes (they get Running/Ready as on kwok)",
    )
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("agent: needs root (namespaces, mounts, addresses on lo)")
    private_mounts()  # before any thread
    check_netns()
    args.run_dir.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.FileHandler(args.run_dir / "agent.log"), logging.StreamHandler()]
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(threadName)s: %(message)s", handlers=handlers
    )
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")  # the sandbox kubeconfig skips TLS checks
    socket.setdefaulttimeout(None)
    agent = Agent(args)

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d", signum)
        agent.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        agent.run()
    except BaseException:
        agent.stopping.set()
        agent.shutdown()
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
