"""The sandbox's node agent (tools/simulation/agent.py, docs/node-agent.md): its pure parts (environment and
$(VAR) expansion, the volume plan, probe results, pod status transitions, the image table, container logs) as
unit tests, and one integration test against a real API server in a loopback-only network namespace (marker
``sandbox``; it needs root and the engine of ../shared/engine)."""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import yaml
from conftest import ROOT, unavailable

from tools.setup_tests import Capability
from tools.simulation import agent_env, agent_images, agent_logs, agent_probes, agent_status, agent_volumes
from tools.simulation.agent_status import ContainerRecord, PodView

# --- environment ------------------------------------------------------------------------------------------


def lookup(**values: str):
    return agent_env.mapping_lookup(values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "a"),
        ("x-$(A)-$(B)-y", "x-a-b-y"),
        ("$$(A)", "$(A)"),  # escaped: the kubelet writes it literally
        ("$(MISSING)", "$(MISSING)"),  # undefined: left as written
        ("$$", "$"),
        ("cost: $5", "cost: $5"),  # a $ before anything else stays
        ("$(A", "$(A"),  # unclosed
        ("end$", "end$"),
        ("$(A)$(A)", "aa"),
    ],
)
def test_expansion_follows_kubernetes(text: str, expected: str) -> None:
    assert agent_env.expand(text, lookup(A="a", B="b")) == expected


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-0",
            "namespace": "serving",
            "uid": "u-1",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": 'say "hi"'},
        },
        "spec": {"nodeName": "agent-node-0", "serviceAccountName": "gate", **spec},
        "status": {"podIP": "10.245.0.7", "podIPs": [{"ip": "10.245.0.7"}], "hostIP": "10.245.0.1"},
    }


SOURCES = agent_env.Sources(
    configmap=lambda ns, name: {"greeting": "hello", "PORT": "8080", "bad key": "x"} if name == "cfg" else None,
    secret=lambda ns, name: {"token": "s3cr3t"} if name == "sec" else None,
)
NODE = {"cpu": "192", "memory": "2Ti"}


def test_env_resolves_value_from_and_expands_in_order() -> None:
    container = {
        "name": "c",
        "resources": {"limits": {"cpu": "1500m", "memory": "256Mi"}, "requests": {"cpu": "250m"}},
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "sec"}}],
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
            {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}}},
            {"name": "URL", "value": "http://$(POD_IP):$(CFG_PORT)/$(NAME)"},
            {"name": "LATER", "value": "$(DEFINED_BELOW)"},
            {"name": "DEFINED_BELOW", "value": "x"},
            {"name": "API", "value": "$(KUBERNETES_SERVICE_HOST)"},
            {"name": "token", "value": "lower case is another name"},
        ],
    }
    services = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "TOKEN": "from a service, overridden"}
    env = agent_env.container_env(pod(), container, SOURCES, services, NODE)
    assert env["POD_IP"] == "10.245.0.7"
    assert (env["NAME"], env["NS"], env["TIER"], env["SA"]) == ("web-0", "serving", "front", "gate")
    assert env["NOTE"] == 'say "hi"'
    assert env["CPU"] == "2"  # ceil(1.5 cores)
    assert env["CPU_M"] == "250"
    assert env["MEM"] == "256"
    assert (env["GREETING"], env["TOKEN"]) == ("hello", "s3cr3t")
    assert env["CFG_greeting"] == "hello" and env["CFG_PORT"] == "8080"
    assert "CFG_bad key" not in env  # not a valid variable name: skipped, as the kubelet does
    assert env["URL"] == "http://10.245.0.7:8080/web-0"
    assert env["LATER"] == "$(DEFINED_BELOW)"  # only what is defined above expands
    assert env["API"] == "10.0.0.1"
    assert env["token"] == "lower case is another name"


def test_resource_field_ref_defaults_to_node_allocatable() -> None:
    container = {"name": "c", "resources": {}}
    assert agent_env.resource_value(container, "limits.cpu", None, NODE) == "192"
    assert agent_env.resource_value(container, "limits.memory", "1Gi", NODE) == str(2 * 1024)
    assert agent_env.resource_value({"resources": {"limits": {"memory": "1G"}}}, "requests.memory", "1M", NODE) == (
        "1000"
    )


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ({"configMapKeyRef": {"name": "nope", "key": "k"}}, 'configmap "nope" not found'),
        ({"configMapKeyRef": {"name": "cfg", "key": "k"}}, "couldn't find key k in ConfigMap serving/cfg"),
        ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
    ],
)
def test_missing_references_stop_the_container(ref: dict, message: str) -> None:
    container = {"name": "c", "env": [{"name": "X", "valueFrom": ref}]}
    with pytest.raises(agent_env.EnvError, match=re.escape(message)):
        agent_env.container_env(pod(), container, SOURCES, {}, NODE)
    optional = {k: dict(v, optional=True) for k, v in ref.items()}
    container = {"name": "c", "env": [{"name": "X", "valueFrom": optional}]}
    assert "X" not in agent_env.container_env(pod(), container, SOURCES, {}, NODE)


def service(name: str, ns: str, ip: str, *ports: tuple[str, int]) -> dict:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]},
    }


def test_service_links_like_the_kubelet() -> None:
    services = [
        service("kubernetes", "default", "10.0.0.1", ("https", 443)),
        service("qwen-gateway", "serving", "10.0.0.20", ("http", 8000), ("metrics", 29000)),
        service("qwen-leader", "serving", "None", ("http", 8000)),  # headless: no variables
        service("other", "elsewhere", "10.0.0.30", ("http", 80)),
    ]
    env = agent_env.service_env(services, "serving", enable_links=True)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.0.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT"] == "tcp://10.0.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.0.0.1"
    assert env["QWEN_GATEWAY_SERVICE_HOST"] == "10.0.0.20"
    assert env["QWEN_GATEWAY_SERVICE_PORT_METRICS"] == "29000"
    assert env["QWEN_GATEWAY_PORT_29000_TCP_PROTO"] == "tcp"
    assert not any(k.startswith(("QWEN_LEADER_", "OTHER_")) for k in env)
    no_links = agent_env.service_env(services, "serving", enable_links=False)
    assert {k.split("_")[0] for k in no_links} == {"KUBERNETES"}  # the master service always


@pytest.mark.parametrize(
    ("container", "entrypoint", "cmd", "argv"),
    [
        ({}, ["python3", "-m", "router"], ["--help"], ["python3", "-m", "router", "--help"]),
        (
            {"args": ["--port", "$(PORT)"]},
            ["python3", "-m", "router"],
            ["--help"],
            ["python3", "-m", "router", "--port", "8080"],
        ),
        ({"command": ["sh", "-c"], "args": ["echo $(PORT) $$(PORT)"]}, ["x"], ["y"], ["sh", "-c", "echo 8080 $(PORT)"]),
        ({"command": ["python3"]}, ["x"], ["y"], ["python3"]),  # command drops the image's CMD too
    ],
)
def test_command_line(container: dict, entrypoint: list[str], cmd: list[str], argv: list[str]) -> None:
    assert agent_env.command_line(container, entrypoint, cmd, {"PORT": "8080"}) == argv


def test_quantities() -> None:
    assert agent_env.quantity("500m") == agent_env.quantity("0.5")
    assert agent_env.quantity("64Gi") == 64 * 1024**3
    assert agent_env.quantity("1e3") == 1000
    with pytest.raises(ValueError, match="not a quantity"):
        agent_env.quantity("12 apples")


# --- volumes ---------------------------------------------------------------------------------------------


def fake_api(objects: dict[str, Any] | None = None, tokens: list | None = None) -> agent_volumes.Api:
    objects = objects or {}

    def token(p: Mapping[str, Any], audience: str | None, expiration: int) -> str:
        if tokens is not None:
            tokens.append((p["metadata"]["name"], audience, expiration))
        return f"token-for-{audience or 'api'}"

    return agent_volumes.Api(
        configmap=lambda ns, n: objects.get(f"cm/{n}"),
        secret=lambda ns, n: objects.get(f"secret/{n}"),
        pvc=lambda ns, n: objects.get(f"pvc/{n}"),
        pv=lambda n: objects.get(f"pv/{n}"),
        token=token,
        node_allocatable=NODE,
    )


CM = {"data": {"a.conf": "A", "b.conf": "B"}, "binaryData": {"blob": base64.b64encode(b"\0\1").decode()}}
SECRET = {"data": {"key": base64.b64encode(b"k3y").decode()}}


def plan(vol: dict, tmp_path: Path, api: agent_volumes.Api | None = None, roots: list[Path] | None = None):
    return agent_volumes.plan_volume(
        pod(), vol, tmp_path / "pod", tmp_path / "nodes" / "n0", tmp_path, roots or [tmp_path], api or fake_api()
    )


def test_configmap_and_secret_files(tmp_path: Path) -> None:
    api = fake_api({"cm/cfg": CM, "secret/sec": SECRET})
    whole = plan({"name": "cfg", "configMap": {"name": "cfg"}}, tmp_path, api)
    assert whole.files == {"a.conf": (b"A", 0o644), "b.conf": (b"B", 0o644), "blob": (b"\0\1", 0o644)}
    assert whole.readonly and not whole.tmpfs
    items = plan(
        {
            "name": "cfg",
            "configMap": {
                "name": "cfg",
                "defaultMode": 0o600,
                "items": [{"key": "a.conf", "path": "conf/a"}, {"key": "b.conf", "path": "b", "mode": 0o444}],
            },
        },
        tmp_path,
        api,
    )
    assert items.files == {"conf/a": (b"A", 0o600), "b": (b"B", 0o444)}
    sec = plan({"name": "s", "secret": {"secretName": "sec", "defaultMode": 0o400}}, tmp_path, api)
    assert sec.files == {"key": (b"k3y", 0o400)} and sec.tmpfs  # kept in memory, like the kubelet's
    with pytest.raises(agent_volumes.VolumeError, match='configmap "nope" not found'):
        plan({"name": "x", "configMap": {"name": "nope"}}, tmp_path, api)
    assert plan({"name": "x", "configMap": {"name": "nope", "optional": True}}, tmp_path, api).files == {}
    with pytest.raises(agent_volumes.VolumeError, match="non-existent config key: zz"):
        plan({"name": "x", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}}, tmp_path, api)
    with pytest.raises(agent_volumes.VolumeError, match="must be relative"):
        plan({"name": "x", "configMap": {"name": "cfg", "items": [{"key": "a.conf", "path": "../up"}]}}, tmp_path, api)


def test_projected_service_account_volume(tmp_path: Path) -> None:
    """What the ServiceAccount admission plugin adds to an automounting pod: token, ca.crt, namespace."""
    tokens: list = []
    api = fake_api({"cm/kube-root-ca.crt": {"data": {"ca.crt": "PEM"}}}, tokens)
    vol = {
        "name": "kube-api-access-abcde",
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
                {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "vault/token"}},
            ],
        },
    }
    planned = plan(vol, tmp_path, api)
    assert planned.files == {
        "token": (b"token-for-api", 420),
        "ca.crt": (b"PEM", 420),
        "namespace": (b"serving", 420),
        "vault/token": (b"token-for-vault", 420),
    }
    assert tokens == [("web-0", None, 3607), ("web-0", "vault", 600)]
    assert planned.tmpfs and planned.readonly


def test_downward_api_volume(tmp_path: Path) -> None:
    vol = {
        "name": "info",
        "downwardAPI": {
            "items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}},
                {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu"}},
            ]
        },
    }
    planned = agent_volumes.plan_volume(
        pod(containers=[{"name": "c", "resources": {"limits": {"cpu": "3"}}}]),
        vol,
        tmp_path / "pod",
        tmp_path / "n",
        tmp_path,
        [tmp_path],
        fake_api(),
    )
    assert planned.files is not None
    assert planned.files["labels"][0] == b'app="web"\ntier="front"'
    assert planned.files["annotations"][0] == b'note="say \\"hi\\""'
    assert planned.files["ip"][0] == b"10.245.0.7"
    assert planned.files["cpu"][0] == b"3"


def test_empty_dir_host_path_and_claims(tmp_path: Path) -> None:
    shm = plan({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}, tmp_path)
    assert shm.tmpfs and shm.size == "16Gi" and shm.path == tmp_path / "pod" / "volumes" / "empty-dir" / "shm"
    disk = plan({"name": "scratch", "emptyDir": {}}, tmp_path)
    assert not disk.tmpfs
    models = plan({"name": "m", "hostPath": {"path": "/mnt/models", "type": "DirectoryOrCreate"}}, tmp_path)
    assert models.path == tmp_path / "nodes" / "n0" / "hostpath" / "mnt" / "models"  # per node, under the run dir
    agent_volumes.check_hostpath(models)
    assert models.path.is_dir()
    must = plan({"name": "m", "hostPath": {"path": "/srv/absent", "type": "Directory"}}, tmp_path)
    with pytest.raises(agent_volumes.VolumeError, match="is not a directory"):
        agent_volumes.check_hostpath(must)
    with pytest.raises(agent_volumes.VolumeError, match="Socket"):
        plan({"name": "s", "hostPath": {"path": "/run/x.sock", "type": "Socket"}}, tmp_path)

    pool = tmp_path / "pv" / "sim-pv-0"
    bound = {"spec": {"volumeName": "sim-pv-0"}, "status": {"phase": "Bound"}}
    api = fake_api(
        {
            "pvc/models": bound,
            "pv/sim-pv-0": {"spec": {"hostPath": {"path": str(pool)}}},
            "pvc/nfs": {"spec": {"volumeName": "nfs-1"}, "status": {"phase": "Bound"}},
            "pv/nfs-1": {"spec": {"nfs": {"server": "10.1.1.1", "path": "/export"}}},
            "pvc/pending": {"spec": {}, "status": {"phase": "Pending"}},
            "pvc/outside": {"spec": {"volumeName": "host-1"}, "status": {"phase": "Bound"}},
            "pv/host-1": {"spec": {"hostPath": {"path": "/var/lib/models"}}},
        }
    )
    claim = plan({"name": "m", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}, tmp_path, api)
    assert claim.path == pool and claim.readonly
    nfs = plan({"name": "m", "persistentVolumeClaim": {"claimName": "nfs"}}, tmp_path, api)
    assert nfs.path == tmp_path / "volumes" / "pv" / "nfs-1"
    outside = plan({"name": "m", "persistentVolumeClaim": {"claimName": "outside"}}, tmp_path, api)
    assert outside.path == tmp_path / "volumes" / "pv" / "host-1"  # never a host path outside the run dir
    with pytest.raises(agent_volumes.VolumeError, match='"pending" is not bound'):
        plan({"name": "m", "persistentVolumeClaim": {"claimName": "pending"}}, tmp_path, api)
    with pytest.raises(agent_volumes.VolumeError, match='"absent" not found'):
        plan({"name": "m", "persistentVolumeClaim": {"claimName": "absent"}}, tmp_path, api)
    with pytest.raises(agent_volumes.VolumeError, match="csi volumes are not supported"):
        plan({"name": "c", "csi": {"driver": "x"}}, tmp_path)


def test_container_mounts(tmp_path: Path) -> None:
    volumes = {
        "cfg": agent_volumes.Volume("cfg", "configMap", tmp_path / "cfg", files={}, readonly=True),
        "data": agent_volumes.Volume("data", "emptyDir", tmp_path / "data"),
        "token": agent_volumes.Volume("token", "projected", tmp_path / "tok", readonly=True),
    }
    (tmp_path / "data").mkdir()
    agent_volumes.write_atomic(tmp_path / "cfg", {"app.conf": (b"x", 0o644)})
    container = {
        "volumeMounts": [
            {"name": "token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
            {"name": "data", "mountPath": "/var/run", "readOnly": True},
            {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
            {"name": "data", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)"},
        ]
    }
    env = {"POD_NAME": "web-0"}
    agent_volumes.prepare_subpaths(container, volumes, env)
    mounts = agent_volumes.container_mounts(container, volumes, env)
    targets = [m.target for m in mounts]
    # shallower paths first (a parent before what is mounted inside it), otherwise the pod's order
    assert targets == ["/logs", "/var/run", "/etc/app.conf", "/var/run/secrets/kubernetes.io/serviceaccount"]
    by_target = {m.target: m for m in mounts}
    assert by_target["/var/run"].readonly and by_target["/var/run/secrets/kubernetes.io/serviceaccount"].readonly
    assert by_target["/etc/app.conf"].readonly  # API data volumes are read-only whatever the mount says
    assert not by_target["/logs"].readonly
    # a subPath of an API volume binds the file of the moment (the symlink resolved), as the kubelet does
    assert Path(by_target["/etc/app.conf"].source).read_bytes() == b"x"
    assert not Path(by_target["/etc/app.conf"].source).is_symlink()
    assert by_target["/logs"].source == str(tmp_path / "data" / "web-0") and (tmp_path / "data" / "web-0").is_dir()
    with pytest.raises(agent_volumes.VolumeError, match="must be relative"):
        agent_volumes.container_mounts(
            {"volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "../../etc"}]}, volumes, env
        )
    with pytest.raises(agent_volumes.VolumeError, match="no such volume"):
        agent_volumes.container_mounts({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, volumes, env)


def test_atomic_writer_layout_and_updates(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert agent_volumes.write_atomic(target, {"a": (b"1", 0o600), "dir/b": (b"2", 0o644)})
    assert os.readlink(target / "a") == "..data/a" and os.readlink(target / "dir") == "..data/dir"
    first = os.readlink(target / "..data")
    assert (target / "a").read_bytes() == b"1" and stat.S_IMODE((target / first / "a").stat().st_mode) == 0o600
    assert not agent_volumes.write_atomic(target, {"a": (b"1", 0o600), "dir/b": (b"2", 0o644)})  # unchanged
    assert agent_volumes.write_atomic(target, {"a": (b"3", 0o600)})
    assert os.readlink(target / "..data") != first and not (target / first).exists()
    assert (target / "a").read_bytes() == b"3" and not (target / "dir").exists()


def test_nested_mount_points_are_made_in_the_parent_volume() -> None:
    """NFD's worker mounts a ConfigMap at /etc/kubernetes/node-feature-discovery and a host path beneath it: the
    kubelet makes source.d in the ConfigMap's volume (the runtime cannot, the parent is mounted read-only)."""
    spec = {
        "initContainers": [{"name": "i", "volumeMounts": [{"name": "conf", "mountPath": "/other"}]}],
        "containers": [
            {
                "name": "worker",
                "volumeMounts": [
                    {"name": "conf", "mountPath": "/etc/kubernetes/node-feature-discovery/"},
                    {"name": "source-d", "mountPath": "/etc/kubernetes/node-feature-discovery/source.d"},
                    {"name": "features-d", "mountPath": "/etc/kubernetes/node-feature-discovery/features.d/x"},
                    {"name": "escape", "mountPath": "/etc/kubernetes/node-feature-discovery/../x"},
                    {"name": "sibling", "mountPath": "/etc/kubernetes/node-feature-discovery-2"},
                ],
            }
        ],
    }
    assert agent_volumes.nested_mountpoints(spec, "conf") == ["features.d/x", "source.d"]
    assert agent_volumes.nested_mountpoints(spec, "source-d") == []


def test_a_pod_of_placeholders_gets_what_kwok_gives_it(tmp_path: Path) -> None:
    """KEDA 2.17's metrics server mounts a Secret its (placeholder) operator would make: a pod whose every image is
    kept off agent nodes reads neither its volumes nor its environment's references; a pod with one image that
    runs does."""
    from types import SimpleNamespace

    from tools.simulation.agent import PodWorker

    r = resolver(tmp_path, [])
    r.placeholders = True
    agent = SimpleNamespace(run_dir=tmp_path, images=r)
    node = SimpleNamespace(ip="10.245.0.1", name="gpu-node-0")

    def pod(*images: str) -> dict:
        containers = [
            {
                "name": f"c{i}",
                "image": image,
                "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "kedaorg-certs", "key": "k"}}}],
                "volumeMounts": [{"name": "certs", "mountPath": "/certs"}],
            }
            for i, image in enumerate(images)
        ]
        return {
            "metadata": {"name": "p", "namespace": "keda", "uid": "u", "ownerReferences": []},
            "spec": {
                "containers": containers,
                "volumes": [{"name": "certs", "secret": {"secretName": "kedaorg-certs"}}],
            },
        }

    keda = PodWorker(agent, pod("ghcr.io/kedacore/keda-metrics-apiserver:2.17.2"), node)  # type: ignore[arg-type]
    assert keda.placeholder_pod
    runtime = r.resolve("ghcr.io/kedacore/keda-metrics-apiserver:2.17.2")
    env, argv, mounts = keda.placeholder_process(keda.containers[0], runtime)
    assert (argv, mounts, "K" in env) == (["sleep", "infinity"], [], False)
    mixed = PodWorker(agent, pod("ghcr.io/kedacore/keda:2.17.2", "python:3.12.8-slim-bookworm"), node)  # type: ignore[arg-type]
    assert not mixed.placeholder_pod


# --- probes ----------------------------------------------------------------------------------------------


def test_probe_results_follow_thresholds() -> None:
    readiness = agent_probes.ProbeState.for_probe("readiness", {"successThreshold": 2, "failureThreshold": 3})
    assert readiness.result is False  # not ready until it succeeds
    assert readiness.record(True) is False
    assert readiness.record(True) is True
    assert [readiness.record(False) for _ in range(3)] == [True, True, False]
    assert not readiness.fatal  # readiness never kills
    liveness = agent_probes.ProbeState.for_probe("liveness", {"failureThreshold": 2})
    assert liveness.result is True
    liveness.record(False)
    assert not liveness.fatal
    liveness.record(False)
    assert liveness.fatal
    startup = agent_probes.ProbeState.for_probe("startup", {})
    assert startup.result is None
    assert startup.record(True) is True
    assert agent_probes.timing({"periodSeconds": 2}) == {
        "initialDelaySeconds": 0,
        "periodSeconds": 2,
        "timeoutSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 3,
    }


class _Health(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("X-Probe"), self.headers.get("User-Agent")))
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()
        self.wfile.write(b"starting")

    def log_message(self, *args: Any) -> None:
        pass


def test_http_and_tcp_probes_on_loopback() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    container = {"ports": [{"name": "http", "containerPort": port}]}
    try:
        ok, _ = agent_probes.run_probe(
            {"httpGet": {"path": "/health", "port": "http", "httpHeaders": [{"name": "X-Probe", "value": "1"}]}},
            "127.0.0.1",
            container,
            None,
            {},
        )
        assert ok
        assert _Health.seen[-1] == ("/health", "1", agent_probes.KUBE_PROBE_AGENT)
        ok, message = agent_probes.run_probe(
            {"httpGet": {"path": "/ready", "port": port}}, "127.0.0.1", container, None, {}
        )
        assert not ok and "statuscode: 503" in message
        ok, message = agent_probes.run_probe({"httpGet": {"port": "metrics"}}, "127.0.0.1", container, None, {})
        assert not ok and "port 'metrics' not found" in message
        assert agent_probes.run_probe({"tcpSocket": {"port": port}}, "127.0.0.1", container, None, {})[0]
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert not agent_probes.run_probe({"tcpSocket": {"port": closed}}, "127.0.0.1", {}, None, {})[0]


# --- status ------------------------------------------------------------------------------------------------


def rec(name: str, state: str = "waiting", exit_code: int | None = None, **kw: Any) -> ContainerRecord:
    r = ContainerRecord(name, "python:3.12", state=state, exit_code=exit_code, **kw)
    if state != "waiting":
        r.started_at = "2026-01-01T00:00:00Z"
    return r


@pytest.mark.parametrize(
    ("policy", "inits", "containers", "terminal", "phase"),
    [
        ("Always", [rec("i", init=True)], [rec("c")], False, "Pending"),
        ("Always", [rec("i", "running", init=True)], [rec("c")], False, "Pending"),
        ("Always", [rec("i", "terminated", 0, init=True)], [rec("c", "running")], False, "Running"),
        ("Never", [rec("i", "terminated", 1, init=True)], [rec("c")], False, "Failed"),
        ("OnFailure", [rec("i", "terminated", 1, init=True)], [rec("c")], False, "Pending"),  # init restarts
        ("OnFailure", [], [rec("c", "terminated", 0)], False, "Succeeded"),
        ("OnFailure", [], [rec("c", "terminated", 1)], False, "Running"),  # it will restart
        ("Never", [], [rec("c", "terminated", 1)], False, "Failed"),
        ("Never", [], [rec("c", "terminated", 0), rec("d", "running")], False, "Running"),
        ("Always", [], [rec("c", "terminated", 0)], False, "Running"),  # restarts, even after success
        ("Always", [], [rec("c", last_terminated={"exitCode": 1})], False, "Running"),  # CrashLoopBackOff
        ("Always", [], [rec("c", "terminated", 0)], True, "Succeeded"),  # deleted: terminal whatever the policy
        ("Always", [], [rec("c", "terminated", 137)], True, "Failed"),
        (
            "Always",
            [rec("s", "running", init=True, sidecar=True, started=True)],
            [rec("c", "running")],
            False,
            "Running",
        ),
        ("Always", [rec("s", "running", init=True, sidecar=True)], [rec("c")], False, "Pending"),
    ],
)
def test_phase(policy: str, inits: list, containers: list, terminal: bool, phase: str) -> None:
    assert agent_status.phase(policy, inits, containers, terminal) == phase


def conditions(status: dict) -> dict[str, tuple[str, str | None]]:
    return {c["type"]: (c["status"], c.get("reason")) for c in status["conditions"]}


def test_status_conditions_and_container_statuses() -> None:
    p = pod(restartPolicy="Always", readinessGates=[{"conditionType": "example.com/gate"}])
    p["status"] = {"conditions": [{"type": "PodScheduled", "status": "True"}]}
    view = PodView(pod_ip="10.245.0.7", host_ip="10.245.0.1", start_time="2026-01-01T00:00:00Z", sandbox_ready=True)
    init = rec("init", init=True)
    main = rec("main", reason="PodInitializing")
    s = agent_status.pod_status(p, [init], [main], view)
    assert s["phase"] == "Pending"
    assert conditions(s)["Initialized"] == ("False", "ContainersNotInitialized")
    assert conditions(s)["Ready"] == ("False", "ContainersNotReady")
    assert "PodScheduled" not in conditions(s)  # the scheduler's, left to the merge patch
    assert s["podIP"] == "10.245.0.7" and s["podIPs"] == [{"ip": "10.245.0.7"}] and s["hostIP"] == "10.245.0.1"
    assert s["initContainerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}

    init.state, init.exit_code, init.reason, init.container_id = "terminated", 0, "Completed", "sandbox://1"
    main.state, main.started, main.ready, main.container_id = "running", True, True, "sandbox://2"
    s = agent_status.pod_status(p, [init], [main], view)
    assert s["phase"] == "Running"
    assert conditions(s)["Initialized"] == ("True", None)  # reason cleared explicitly (null in the merge patch)
    assert conditions(s)["ContainersReady"] == ("True", None)
    assert conditions(s)["Ready"] == ("False", "ReadinessGatesNotReady")  # the gate is someone else's
    init_status = s["initContainerStatuses"][0]
    assert init_status["ready"] and not init_status["started"]
    assert init_status["state"]["terminated"]["reason"] == "Completed"
    p["status"]["conditions"].append({"type": "example.com/gate", "status": "True"})
    assert conditions(agent_status.pod_status(p, [init], [main], view))["Ready"] == ("True", None)

    main.last_terminated = main.terminated() | {"exitCode": 1, "reason": "Error"}
    main.state, main.reason, main.ready, main.restart_count = "waiting", "CrashLoopBackOff", False, 3
    s = agent_status.pod_status(p, [init], [main], view)
    c = s["containerStatuses"][0]
    assert c["state"] == {"waiting": {"reason": "CrashLoopBackOff"}} and c["restartCount"] == 3
    assert c["lastState"]["terminated"]["exitCode"] == 1
    assert s["phase"] == "Running"

    main.state, main.exit_code, main.reason = "terminated", 0, "Completed"
    s = agent_status.pod_status(dict(p, spec=dict(p["spec"], restartPolicy="Never")), [init], [main], view)
    assert s["phase"] == "Succeeded" and conditions(s)["Ready"] == ("False", "PodCompleted")


def test_transition_times_stay_while_a_condition_holds() -> None:
    p = pod()
    p["status"] = {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
    s = agent_status.pod_status(p, [], [rec("c")], PodView())
    ready = next(c for c in s["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2020-01-01T00:00:00Z"


# --- images ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "repository", "tag", "release"),
    [
        ("python:3.12.8-slim-bookworm", "python", "3.12.8-slim-bookworm", "3.12.8"),
        ("docker.io/library/python:3.12", "python", "3.12", "3.12"),
        ("docker.io/lmsysorg/sglang:v0.4.4-cu124", "lmsysorg/sglang", "v0.4.4-cu124", "0.4.4"),
        ("lmsysorg/sglang:v0.4.3.post2-cu124", "lmsysorg/sglang", "v0.4.3.post2-cu124", "0.4.3.post2"),
        ("lmsysorg/sglang:v0.5.23-cu130", "lmsysorg/sglang", "v0.5.23-cu130", "0.5.23"),
        ("lmsysorg/sgl-model-gateway:v0.3.2", "lmsysorg/sgl-model-gateway", "v0.3.2", "0.3.2"),
        ("localhost:5000/team/img", "localhost:5000/team/img", "latest", None),
        ("ghcr.io/x/y@sha256:abcd", "ghcr.io/x/y", None, None),
    ],
)
def test_image_references(image: str, repository: str, tag: str | None, release: str | None) -> None:
    ref = agent_images.parse_image(image)
    assert (ref.repository, ref.tag) == (repository, tag)
    assert agent_images.release_of(ref.tag) == release


def test_the_table_is_reviewable() -> None:
    """Every entry says what it was checked for, where the pod goes and why; the platform's images resolve."""
    table = agent_images.load_table()
    for entry in table:
        assert entry.checked and entry.placement and entry.why.strip(), entry.repository
    bom = (ROOT / "facts" / "bom.py").read_text()
    for image in re.findall(r'_IMAGE: Final = "([^"]+)"', bom):
        assert agent_images.lookup(table, image) is not None, image
    runs = {e.repository: e.run for e in table}
    assert runs["python"] == "python" and runs["lmsysorg/sglang"] == "sglang"
    assert runs["lmsysorg/sgl-model-gateway"] == "venv"
    for addon in (
        "nvcr.io/nvidia/k8s-device-plugin:v0.17.0",
        "volcanosh/vc-scheduler:v1.9.0",
        "ghcr.io/kedacore/keda:2.20.2",
        "quay.io/prometheus/prometheus:v3.5.0",
        "registry.k8s.io/lws/lws:v0.10.0",
        "docker.io/grafana/grafana:12.1.0",
    ):
        found = agent_images.lookup(table, addon)
        assert found is not None and found.run == "none", addon


def test_table_rejects_unknown_keys(tmp_path: Path) -> None:
    bad = tmp_path / "images.yaml"
    bad.write_text(yaml.safe_dump({"images": [{"repository": "x", "run": "python", "comand": ["typo"]}]}))
    with pytest.raises(ValueError, match="unknown keys"):
        agent_images.load_table(bad)
    bad.write_text(yaml.safe_dump({"images": [{"repository": "x", "run": "docker"}]}))
    with pytest.raises(ValueError, match="one of python, sglang, standin, venv, none"):
        agent_images.load_table(bad)
    bad.write_text(yaml.safe_dump({"images": [{"repository": "x", "run": "sglang", "venv": "bench"}]}))
    with pytest.raises(ValueError, match="entry x: venv and requirements go together"):
        agent_images.load_table(bad)


def test_prepare_makes_the_benchmarks_venv_and_the_releases_package(tmp_path: Path, monkeypatch) -> None:
    """For an SGLang image: a venv with bench_serving's dependencies, and the release's package from the cached
    wheel (no dependencies) where the overlay finds it; nothing for images that run as they are."""
    calls: list[list[str]] = []

    def run(argv: list[str], check: bool) -> None:
        calls.append(argv)
        if argv[1:3] == ["-m", "venv"]:
            (Path(argv[3]) / "bin").mkdir(parents=True)
            (Path(argv[3]) / "bin" / "python3").touch()

    monkeypatch.setattr(agent_images.subprocess, "run", run)
    made = agent_images.prepare(
        ["lmsysorg/sglang:v0.4.4-cu124", "python:3.12.8-slim-bookworm"], tmp_path, agent_images.load_table(), "py"
    )
    assert made == [tmp_path / "sglang-bench-0.4.4"]
    package, venv, pip = calls
    from tools.sglang_flags import wheel_for

    source = str(wheel_for("0.4.4") or "sglang==0.4.4")
    assert package == [
        "py",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--target",
        str(tmp_path / "sglang" / "0.4.4"),
        source,
    ]
    assert venv == ["py", "-m", "venv", str(tmp_path / "sglang-bench-0.4.4")]
    assert pip[:4] == [str(tmp_path / "sglang-bench-0.4.4" / "bin" / "python3"), "-m", "pip", "install"]
    assert "transformers==4.48.3" in pip and "torch" not in " ".join(pip)


def resolver(tmp_path: Path, builds: list) -> agent_images.Resolver:
    def build_overlay(release: str, dest: Path, real_sglang: Path | None = None) -> Path:  # standins/overlay.py's
        builds.append((release, real_sglang))
        (dest / "sglang").mkdir(parents=True, exist_ok=True)
        return dest

    return agent_images.Resolver(
        table=agent_images.load_table(),
        python_prefix=Path("/opt/project-venv"),
        venv_dir=tmp_path / "venvs",
        overlay_dir=tmp_path / "overlays",
        overlay_builder=build_overlay,
    )


def test_images_resolve_to_processes(tmp_path: Path) -> None:
    builds: list = []
    r = resolver(tmp_path, builds)
    py = r.resolve("python:3.12.8-slim-bookworm")
    assert py.env["PATH"].startswith("/opt/project-venv/bin:") and py.cmd == ["python3"]
    sg = r.resolve("lmsysorg/sglang:v0.4.4-cu124")
    overlay = str(tmp_path / "overlays" / "0.4.4")
    assert sg.release == "0.4.4" and sg.pythonpath == [overlay, str(ROOT)]  # the overlay, then the stand-in's code
    assert sg.binds == ["/opt/project-venv", overlay, str(ROOT)]  # visible in the container
    r.resolve("docker.io/lmsysorg/sglang:v0.4.4-cu121")
    assert builds == [("0.4.4", None)]  # one overlay per release
    env = agent_images.container_env(sg, {"PYTHONPATH": "/app", "A": "1"})
    assert env["PYTHONPATH"] == f"{overlay}:{ROOT}:/app"  # the stand-in first, the pod's after
    wheel = tmp_path / "venvs" / "sglang" / "0.5.23"
    (wheel / "sglang").mkdir(parents=True)
    (wheel / "sglang" / "__init__.py").touch()
    real = r.resolve("lmsysorg/sglang:v0.5.23-cu130")
    assert builds[-1] == ("0.5.23", wheel)  # the release's real package, when prepared, for bench_serving
    # ... and its metadata findable (the overlay's sglang comes first on the path, the project last)
    assert real.pythonpath == [str(tmp_path / "overlays" / "0.5.23"), str(wheel), str(ROOT)]
    # A release whose bench_serving venv was prepared runs in it (the stand-in too); others in the project's.
    bench = tmp_path / "venvs" / "sglang-bench-0.4.4" / "bin"
    bench.mkdir(parents=True)
    (bench / "python3").touch()
    prepared = r.resolve("lmsysorg/sglang:v0.4.4-cu124")
    assert prepared.env["PATH"].startswith(f"{bench}:") and prepared.binds[0] == str(bench.parent)
    assert r.resolve("lmsysorg/sglang:v0.5.23-cu130").env["PATH"].startswith("/opt/project-venv/bin:")
    with pytest.raises(agent_images.ImageError, match="needs the SGLang release"):
        r.resolve("lmsysorg/sglang:latest")
    with pytest.raises(agent_images.ImageError, match="agent_images prepare"):
        r.resolve("lmsysorg/sgl-model-gateway:v0.3.2")
    venv = tmp_path / "venvs" / "sglang-router-0.3.2" / "bin"
    venv.mkdir(parents=True)
    (venv / "python3").touch()
    gw = r.resolve("lmsysorg/sgl-model-gateway:v0.3.2")
    assert gw.env["PATH"].startswith(f"{venv}:") and gw.entrypoint[:3] == [
        "python3",
        "-m",
        "sglang_router.launch_router",
    ]
    with pytest.raises(agent_images.ImageError, match="not in the sandbox's image table"):
        r.resolve("nginx:1.27")
    with pytest.raises(agent_images.ImageError, match=r"not run on agent nodes \(kwok\).*GPU node"):
        r.resolve("nvcr.io/nvidia/gpu-operator:v24.9.1")


def test_placeholders_stand_for_the_images_kept_off_agent_nodes(tmp_path: Path) -> None:
    r = resolver(tmp_path, [])
    r.placeholders = True
    op = r.resolve("nvcr.io/nvidia/gpu-operator:v24.9.1")
    assert (op.entry.run, op.entry.placement, op.entrypoint, op.pythonpath) == ("placeholder", "kwok", [], [])
    # Only placement kwok: an image the table does not know is still refused.
    with pytest.raises(agent_images.ImageError, match="not in the sandbox's image table"):
        r.resolve("nginx:1.27")


def test_a_stand_in_that_refuses_its_release_is_an_image_error(tmp_path: Path) -> None:
    def refuse(release: str, dest: Path, real_sglang: Path | None = None) -> Path:
        raise ValueError(f"no flag table for {release}")

    r = resolver(tmp_path, [])
    r.overlay_builder = refuse
    with pytest.raises(agent_images.ImageError, match=re.escape("could not be built: no flag table for 0.1.0")):
        r.resolve("lmsysorg/sglang:v0.1.0-cu118")


# --- logs -------------------------------------------------------------------------------------------------


def test_logs_in_cri_format(tmp_path: Path) -> None:
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    writer = agent_logs.LogWriter(tmp_path / "c" / "0.log")
    writer.start(os.fdopen(r_out, "rb"), os.fdopen(r_err, "rb"))
    os.write(w_err, b"oops\n")
    os.close(w_err)
    deadline = time.monotonic() + 5  # the streams are copied by a thread each: order stdout after stderr
    while b"oops" not in (tmp_path / "c" / "0.log").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.write(w_out, b"one\ntwo\n")
    os.write(w_out, b"x" * (agent_logs.MAX_LINE + 10) + b"\n")
    os.close(w_out)
    assert writer.closed.wait(5)
    data = (tmp_path / "c" / "0.log").read_bytes()
    recs = list(agent_logs.records(data))
    assert {(r[1], r[3]) for r in recs} >= {("stdout", b"one"), ("stdout", b"two"), ("stderr", b"oops")}
    assert [r[2] for r in recs if r[1] == "stdout"][-2:] == [False, True]  # a long line: partial, then full
    text, used = agent_logs.render(data, {})
    assert used == len(data)
    assert text.count(b"\n") == 4 and b"x" * (agent_logs.MAX_LINE + 10) + b"\n" in text
    tail, _ = agent_logs.render(data, {"tailLines": 1})
    assert tail == b"x" * (agent_logs.MAX_LINE + 10) + b"\n"  # the two records of the last line
    stamped, _ = agent_logs.render(data, {"timestamps": True, "tailLines": 2})
    assert re.match(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ", stamped)
    assert agent_logs.render(data, {"since": time.time() + 60})[0] == b""


def test_log_query_options() -> None:
    opts = agent_logs.options_from_query({"follow": ["true"], "tailLines": ["10"], "previous": ["false"]})
    assert opts == {"follow": True, "previous": False, "timestamps": False, "tailLines": 10}
    assert abs(agent_logs.options_from_query({"sinceSeconds": ["5"]})["since"] - (time.time() - 5)) < 1


# --- a pod's files -------------------------------------------------------------------------------------------


def worker(tmp_path: Path, cluster_dns: str = "10.0.0.10", **spec: Any):
    from tools.simulation import agent

    fake_agent = SimpleNamespace(run_dir=tmp_path, cluster_domain="cluster.local", cluster_dns=cluster_dns, events=[])
    fake_agent.event = lambda w, t, reason, message, c=None: fake_agent.events.append(reason)
    node = agent.Node("agent-node-0", agent.ipaddress.IPv4Network("10.245.3.0/24"), "10.245.3.1")
    p = pod(containers=[{"name": "c", "image": "python:3"}], **spec)
    w = agent.PodWorker(fake_agent, p, node)  # type: ignore[arg-type]
    w.pod_ip, w.hostname = "10.245.3.2", (spec.get("hostname") or "web-0")
    return w, fake_agent


def test_hosts_and_resolv_conf(tmp_path: Path) -> None:
    w, _ = worker(tmp_path, hostname="leader", subdomain="qwen")
    hosts = w.hosts_file()
    assert "10.245.3.2\tleader.qwen.serving.svc.cluster.local\tleader" in hosts
    assert hosts.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert w.resolv_conf(False) == (
        "nameserver 10.0.0.10\nsearch serving.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
    )
    w, _ = worker(tmp_path, dnsConfig={"searches": ["corp.example"], "options": [{"name": "ndots", "value": "2"}]})
    assert w.resolv_conf(False).splitlines()[1:] == [
        "search serving.svc.cluster.local svc.cluster.local cluster.local corp.example",
        "options ndots:2",
    ]
    w, fake = worker(tmp_path, cluster_dns="")
    assert "nameserver" not in w.resolv_conf(False) and fake.events == ["MissingClusterDNS"]
    w, _ = worker(tmp_path, dnsPolicy="Default")
    assert "nameserver" not in w.resolv_conf(False)  # this machine's resolver lies outside the namespace


def test_node_ranges_hand_out_pod_addresses(tmp_path: Path) -> None:
    from tools.simulation import agent

    node = agent.Node("n", agent.ipaddress.IPv4Network("10.245.3.0/29"), "10.245.3.1")
    got = [node.allocate() for _ in range(5)]
    assert got == [f"10.245.3.{i}" for i in range(2, 7)]
    with pytest.raises(RuntimeError, match="no free pod address"):
        node.allocate()
    node.release("10.245.3.4")
    assert node.allocate("10.245.3.4") == "10.245.3.4"  # a pod keeps its address across agent restarts
    node.release("10.245.3.5")
    assert node.allocate("10.9.9.9") == "10.245.3.5"  # an address outside the range is not taken


# --- the container shim, as root (no API server needed) ---------------------------------------------------


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nsenter"), reason="needs root (namespaces)")


@needs_root
def test_shim_gives_a_container_its_own_view(tmp_path: Path) -> None:
    """Run the shim directly: hostname, volumes (read-only where asked), /etc/hosts, a private writable root
    whose writes land in the upper dir, /dev/shm, exit code; nothing written to the host's files."""
    for d in ("upper", "work", "merged", "tmp", "vol"):
        (tmp_path / d).mkdir()
    (tmp_path / "vol" / "x").write_text("hello\n")
    (tmp_path / "hosts").write_text("10.245.0.9\tpod-a\n")
    marker = f"/etc/agent-test-{uuid.uuid4().hex}"
    script = (
        f"hostname; cat /etc/hosts; cat /data/x; touch /data/y 2>/dev/null || echo ro; touch {marker} && echo rw;"
        " df -k /dev/shm | tail -1 | awk '{print $2}'; echo $$; exit 7"
    )
    spec = {
        "argv": ["sh", "-c", script],
        "env": {"PATH": "/usr/bin:/bin"},
        "workdir": "/app",
        "hostname": "pod-a",
        "rootfs": {k: str(tmp_path / k) for k in ("upper", "work", "merged")},
        "tmp": str(tmp_path / "tmp"),
        "files": [{"source": str(tmp_path / "hosts"), "target": "/etc/hosts"}],
        "mounts": [{"source": str(tmp_path / "vol"), "target": "/data", "readonly": True}],
        "pidfile": str(tmp_path / "pid"),
        "errfile": str(tmp_path / "err"),
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    shim = ROOT / "tools" / "simulation" / "agent_shim.py"
    out = subprocess.run(
        [sys.executable, str(shim), str(tmp_path / "spec.json")], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 7, out.stderr
    assert out.stdout.split("\n") == ["pod-a", "10.245.0.9\tpod-a", "hello", "ro", "rw", "65536", "1", ""]
    assert (tmp_path / "upper" / marker.lstrip("/")).exists() and not Path(marker).exists()
    assert (tmp_path / "upper" / "app").is_dir()  # the workdir was made inside the container's root

    spec["argv"] = ["no-such-binary"]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    failed = subprocess.run([sys.executable, str(shim), str(tmp_path / "spec.json")], capture_output=True, timeout=30)
    assert failed.returncode == 128  # StartError
    assert (tmp_path / "err").read_text().startswith('exec: "no-such-binary": executable file not found in $PATH')


# --- integration: a real API server, the agent in the loopback-only namespace ----------------------------


NODE_NAME = "agent-node-0"
MANIFESTS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {greeting: hello, app.conf: "port=8080\\n"}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {token: s3cr3t}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader}
rules: [{apiGroups: [""], resources: [pods], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: pod-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {tier: front}}
spec:
  nodeSelector: {kubernetes.io/hostname: agent-node-0}
  hostname: web-0
  subdomain: websvc
  terminationGracePeriodSeconds: 3
  initContainers:
  - name: init
    image: python:3.12.8-slim-bookworm
    command: [sh, -c, 'echo init ran > /work/index.html; cat /etc/config/app.conf >> /work/index.html']
    volumeMounts: [{name: work, mountPath: /work}, {name: cfg, mountPath: /etc/config}]
  containers:
  - name: server
    image: python:3.12.8-slim-bookworm
    command:
    - sh
    - -c
    - >-
      echo "env $GREETING $TOKEN $TIER $(cat /etc/secret/token) $(hostname)";
      exec python3 -m http.server 8080 --bind $(POD_IP) --directory /work
    env:
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}
    - {name: TOKEN, valueFrom: {secretKeyRef: {name: sec, key: token}}}
    - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /index.html, port: http}, periodSeconds: 1}
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: sec, mountPath: /etc/secret, readOnly: true}
  volumes:
  - {name: work, emptyDir: {}}
  - {name: cfg, configMap: {name: cfg}}
  - {name: sec, secret: {secretName: sec}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: flaky}
spec:
  backoffLimit: 3
  template:
    spec:
      nodeSelector: {kubernetes.io/hostname: agent-node-0}
      restartPolicy: OnFailure
      containers:
      - name: main
        image: python:3.12.8-slim-bookworm
        command:
        - sh
        - -c
        - if [ -f /state/ran ]; then echo second run; exit 0; fi; touch /state/ran; echo first run; exit 1
        volumeMounts: [{name: state, mountPath: /state}]
      volumes: [{name: state, emptyDir: {}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: twins}
spec:
  replicas: 2
  selector: {matchLabels: {app: twins}}
  template:
    metadata: {labels: {app: twins}}
    spec:
      nodeSelector: {kubernetes.io/hostname: agent-node-0}
      terminationGracePeriodSeconds: 1
      containers:
      - name: server
        image: python:3.12.8-slim-bookworm
        # both replicas listen on 0.0.0.0:8080, as in a pod network of their own
        command:
        - python3
        - -c
        - |
          import http.server, socket
          class H(http.server.BaseHTTPRequestHandler):
              def do_GET(self):
                  self.send_response(200); self.end_headers(); self.wfile.write(socket.gethostname().encode())
          http.server.HTTPServer(("0.0.0.0", 8080), H).serve_forever()
        readinessProbe: {httpGet: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: lister}
spec:
  nodeSelector: {kubernetes.io/hostname: agent-node-0}
  restartPolicy: Never
  containers:
  - name: main
    image: python:3.12.8-slim-bookworm
    command:
    - python3
    - -c
    - |
      import json, os, ssl, urllib.request
      d = "/var/run/secrets/kubernetes.io/serviceaccount/"
      ns = open(d + "namespace").read()
      ctx = ssl.create_default_context(cafile=d + "ca.crt")
      ctx.check_hostname = False
      host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
      req = urllib.request.Request(f"https://{host}:{port}/api/v1/namespaces/{ns}/pods",
                                   headers={"Authorization": "Bearer " + open(d + "token").read()})
      pods = json.load(urllib.request.urlopen(req, context=ctx))["items"]
      print("listed", sorted(p["metadata"]["name"] for p in pods if p["metadata"]["name"] in ("web", "lister")))
"""


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A simulated cluster (the project's sandbox, --sim, one kwok node) in a namespace of its own, and the agent
    running one node in it; everything stopped (by PID) and the namespace deleted afterwards."""
    from tools.engine import Cluster, Engine
    from tools.simulation import binaries
    from tools.simulation.cluster import Sandbox

    if os.geteuid() != 0 or not shutil.which("ip"):
        unavailable(Capability.SANDBOX, "node agent integration test: needs root and iproute2 (a network namespace)")
    try:
        bin_dir = binaries.bin_dir(binaries.CLUSTER)
    except binaries.FetchError as exc:
        unavailable(Capability.SANDBOX, f"node agent integration test: {exc}")
    netns = f"agent-test-{os.getpid()}"
    base = tmp_path_factory.mktemp("node-agent")
    cluster = Cluster(Engine(bin_dir, ROOT), base / "run")  # no charts here
    cluster.sandbox = Sandbox(base / "run", netns)
    cluster.start("--nodes", "1", "--pvs", "0")
    try:
        agent_run = base / "agent"
        cluster.spawn(
            "node-agent",
            "env",
            f"PYTHONPATH={ROOT}",
            sys.executable,
            "-m",
            "tools.simulation.agent",
            "--kubeconfig",
            str(cluster.run_dir / "kubeconfig"),
            "--run-dir",
            str(agent_run),
            "--node",
            NODE_NAME,
            "--cluster-dns",
            "10.0.0.10",
            "--kubernetes-service",
            "127.0.0.1:6443",
        )
        cluster.wait_for(
            "agent node Ready",
            lambda: ready(cluster.get("node", NODE_NAME)) if node_exists(cluster) else None,
            timeout=60,
        )
        yield SimpleNamespace(cluster=cluster, netns=netns, agent_run=agent_run)
    finally:
        cluster.stop()
    assert not Path(f"/run/netns/{netns}").exists()


def node_exists(cluster) -> bool:
    return cluster.kubectl("get", "node", NODE_NAME, check=False).returncode == 0


def ready(obj: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions", []))


@pytest.mark.sandbox
def test_pods_run_on_the_agent_node(sandbox) -> None:
    cluster = sandbox.cluster
    node = cluster.get("node", NODE_NAME)
    ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    assert ip.startswith("10.245.") and node["spec"]["podCIDR"].startswith("10.245.")
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    lease = cluster.get("lease", NODE_NAME, "-n", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == NODE_NAME

    cluster.kubectl("apply", "-f", "-", stdin=MANIFESTS)
    web = cluster.wait_for(
        "web Ready", lambda: (lambda p: p if ready(p) else None)(cluster.get("pod", "web")), timeout=90
    )
    status = web["status"]
    assert status["phase"] == "Running" and status["podIP"].startswith("10.245.") and status["hostIP"] == ip
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types == {
        "PodScheduled": "True",
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    init = status["initContainerStatuses"][0]
    assert init["state"]["terminated"]["reason"] == "Completed" and init["state"]["terminated"]["exitCode"] == 0
    server = status["containerStatuses"][0]
    assert server["ready"] and server["started"] and "running" in server["state"]
    page = cluster.exec("curl", "-sf", f"http://{status['podIP']}:8080/index.html").stdout
    assert page == "init ran\nport=8080\n"

    logs = cluster.kubectl("logs", "web").stdout
    assert logs.startswith("env hello s3cr3t front s3cr3t web-0\n")
    assert "GET /index.html" in logs  # the readiness probe's requests, served over the pod IP
    assert cluster.kubectl("logs", "web", "-c", "init").stdout == ""

    def job_done():
        job = cluster.get("job", "flaky")
        return job if (job.get("status") or {}).get("succeeded") == 1 else None

    cluster.wait_for("Job flaky complete", job_done, timeout=90)
    (job_pod,) = cluster.get("pods", "-l", "job-name=flaky")["items"]
    main = job_pod["status"]["containerStatuses"][0]
    assert job_pod["status"]["phase"] == "Succeeded" and main["restartCount"] == 1
    assert main["lastState"]["terminated"]["exitCode"] == 1
    name = job_pod["metadata"]["name"]
    assert cluster.kubectl("logs", name).stdout == "second run\n"
    assert cluster.kubectl("logs", name, "--previous").stdout == "first run\n"

    lister = cluster.wait_for(
        "lister done",
        lambda: (lambda p: p if p["status"].get("phase") in ("Succeeded", "Failed") else None)(
            cluster.get("pod", "lister")
        ),
        timeout=60,
    )
    out = cluster.kubectl("logs", "lister").stdout
    assert lister["status"]["phase"] == "Succeeded", out
    assert out.strip() == "listed ['lister', 'web']"

    def twins_available():
        dep = cluster.get("deployment", "twins")
        return dep if (dep.get("status") or {}).get("availableReplicas") == 2 else None

    cluster.wait_for("both twins Ready", twins_available, timeout=60)
    twins = cluster.get("pods", "-l", "app=twins")["items"]
    answers = {cluster.exec("curl", "-sf", f"http://{p['status']['podIP']}:8080/").stdout for p in twins}
    assert answers == {p["metadata"]["name"] for p in twins}  # each on its own address, same port

    t0 = time.monotonic()
    cluster.kubectl("delete", "pod", "web", "--wait=true", "--timeout=60s")
    assert time.monotonic() - t0 < 30  # SIGTERM, the 3 s grace period, SIGKILL (http.server as PID 1 ignores TERM)
    links = subprocess.run(["ip", "-n", sandbox.netns, "-o", "link"], capture_output=True, text=True).stdout
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]
    addrs = subprocess.run(["ip", "-n", sandbox.netns, "-o", "-4", "addr"], capture_output=True, text=True).stdout
    assert status["podIP"] + "/32" not in addrs  # the deleted pod's address went with it
    assert "Traceback" not in (sandbox.agent_run / "agent.log").read_text()


# --- a pod's own addresses (LD_PRELOAD) -----------------------------------------------------------------------


NET_PROBE = """
import socket, sys
port = int(sys.argv[1])
srv = socket.socket(); srv.bind(("0.0.0.0", port)); srv.listen()
own = socket.socket(); own.bind(("127.0.0.1", port + 1)); own.listen()
c = socket.create_connection(("127.0.0.1", port)); peer, _ = srv.accept()   # localhost reaches the 0.0.0.0 server
d = socket.create_connection(("127.0.0.1", port + 1)); own.accept()        # and the pod's own loopback server
print(srv.getsockname()[0], own.getsockname()[0], c.getpeername()[0], d.getpeername()[0])
"""


def test_pods_get_their_own_addresses(tmp_path: Path) -> None:
    """Two "pods" bind 0.0.0.0:P and 127.0.0.1:P+1 at once: each gets its own address (pod IPs from 127/8 here, so
    no root is needed), and connecting to localhost finds the pod's own listener."""
    from tools.simulation import agent_net

    lib = agent_net.build(tmp_path)
    if lib is None:
        unavailable(Capability.SANDBOX, "no C compiler (gcc) to build the sandbox's LD_PRELOAD library")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for ip in ("127.77.0.2", "127.77.0.3"):
        env = agent_net.pod_env(lib, ip, {"PATH": os.environ["PATH"]})
        assert env["SANDBOX_LOOPBACK"] == "127." + ".".join(ip.split(".")[1:]) and env["LD_PRELOAD"] == str(lib)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", NET_PROBE, str(port)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=30) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0].split() == ["127.77.0.2", "127.77.0.2", "127.77.0.2", "127.77.0.2"]
    assert outs[1][0].split() == ["127.77.0.3", "127.77.0.3", "127.77.0.3", "127.77.0.3"]
    assert agent_net.pod_env(None, "10.245.0.2", {"A": "1"}) == {"A": "1"}  # no library: nothing changes
