"""The simulated cluster: etcd, kube-apiserver, the controllers, kube-scheduler, kwok's GPU nodes and the
LeaderWorkerSet controller, every process inside a network namespace whose only interface is ``lo``.

Safety is the point of this module. Nothing started here can send a packet off the machine:
- the namespace is created here and checked before every start and every command run in it: ``lo`` is its only
  interface, and every route of every table (IPv4 and IPv6) goes through ``lo`` (the Service range may be routed
  there for kube-proxy; nothing may name another device);
- each daemon is started by ``ip netns exec`` and then checked: its ``/proc/PID/ns/net`` must be the namespace;
- daemons are stopped by the PID recorded at start, only after checking that PID still runs that binary in that
  namespace;
- a start that fails stops what it started and deletes the namespace it made.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools.simulation import binaries

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CRDS = ROOT / "third_party" / "crds"
DEFAULT_RUN = Path(os.environ.get("SGLANG_SIM_RUN") or "/tmp/sglang-sim")
DEFAULT_NETNS = os.environ.get("SGLANG_SIM_NETNS") or "sglang-sim"
# Inside the namespace nothing else listens, so fixed ports cannot clash.
ETCD_PORT = 2379
API_PORT = 6443
LWS_WEBHOOK_PORT = 19443
LWS_HEALTH_PORT = 18081
SERVICE_CIDR = "10.0.0.0/24"
ADMIN_TOKEN = "sglang-sim-admin-token"
# Start order; stop goes the other way.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "lws-controller",
    "node-agent",
    "kube-proxy",
    "coredns",
)
# With --serve the API server advertises an address on lo (the `kubernetes` Service's endpoint: the API server
# refuses 127.0.0.0/8 in Endpoints, and pods reach it at 10.0.0.1 through kube-proxy).
APISERVER_ADDRESS = "10.246.0.2"
# The node agent's pods get addresses from here (a /24 per node, each a /32 on lo).
POD_CIDR = "10.245.0.0/16"
# The LWS v0.10.0 controller also watches DisaggregatedSets: without their CRDs it exits after two minutes.
LWS_CRDS = ("lws-v0.10.0.yaml", "lws-v0.10.0-disaggregatedsets.yaml", "lws-v0.10.0-disaggregatedsetrolescalers.yaml")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy")
STATE = "sandbox.json"
MARK = ".sglang-sim"


class SandboxError(Exception):
    """The sandbox cannot do what was asked; the message says why."""


class SafetyError(SandboxError):
    """The network namespace is not loopback-only: nothing is started or run in it."""


@dataclass
class Options:
    """How ``start`` shapes the simulated cluster (``tools/sandbox.py start --help``)."""

    sim: bool = True
    controllers: bool = True
    nodes: int = 2
    gpus: int = 8
    rdma: int = 4
    cpu: str = "192"
    memory: str = "2Ti"
    node_labels: dict[str, str] = field(default_factory=dict)
    node_taints: list[str] = field(default_factory=list)
    pvs: int = 8
    pv_size: str = "1Ti"
    pv_class: str = ""
    crds: list[str] = field(default_factory=list)
    fresh: bool = False
    # Serve: the GPU nodes are the node agent's (their pods really run: tools/simulation/agent.py), not kwok's.
    serve: bool = False
    # Where the agent finds the prepared virtualenvs of venv images (the gateway's), made before the namespace.
    image_dir: str = ""

    @classmethod
    def parse(cls, argv: Sequence[str]) -> Options:
        """The option words ``cluster.sh start`` took (the e2e suite's SIM tables are written in them)."""
        opts = cls()
        words = list(argv)
        while words:
            word = words.pop(0)
            if word == "--sim":
                opts.sim = opts.controllers = True
            elif word == "--fresh":
                opts.fresh = True
            elif word == "--controllers":
                opts.controllers = True
            elif word == "--serve":
                opts.serve = True
            elif word in _VALUED:
                if not words:
                    raise SandboxError(f"start: {word} needs a value")
                _VALUED[word](opts, words.pop(0))
            else:
                raise SandboxError(f"start: unknown option {word}")
        return opts


def _labels(opts: Options, text: str) -> None:
    for pair in filter(None, text.split(",")):
        key, _, value = pair.partition("=")
        opts.node_labels[key] = value


_VALUED: dict[str, Any] = {
    "--nodes": lambda o, v: setattr(o, "nodes", int(v)),
    "--gpus": lambda o, v: setattr(o, "gpus", int(v)),
    "--rdma": lambda o, v: setattr(o, "rdma", int(v)),
    "--cpu": lambda o, v: setattr(o, "cpu", v),
    "--memory": lambda o, v: setattr(o, "memory", v),
    "--node-labels": _labels,
    "--node-taints": lambda o, v: o.node_taints.extend(filter(None, v.split(","))),
    "--pvs": lambda o, v: setattr(o, "pvs", int(v)),
    "--pv-size": lambda o, v: setattr(o, "pv_size", v),
    "--pv-class": lambda o, v: setattr(o, "pv_class", v),
    "--crd": lambda o, v: o.crds.append(str(Path(v).resolve())),
    "--image-dir": lambda o, v: setattr(o, "image_dir", str(Path(v).resolve())),
}


def log(message: str) -> None:
    # stderr: a command's stdout carries only its result (`up` prints the stack outputs as JSON).
    print(f"[sandbox {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Sandbox:
    """One simulated cluster: its run directory (pids, logs, kubeconfig, state) and its network namespace."""

    def __init__(self, run: Path | None = None, netns: str | None = None):
        self.run = Path(run or DEFAULT_RUN).resolve()
        self.netns = netns or DEFAULT_NETNS
        state = self._state()
        self.netns = state.get("netns", self.netns)
        self._bin = Path(state["bin"]) if state.get("bin") else None

    # --- state ------------------------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.run / "kubeconfig"

    @property
    def bin(self) -> Path:
        if self._bin is None:
            self._bin = binaries.bin_dir(binaries.CLUSTER + binaries.ENGINE)
        return self._bin

    def _state(self) -> dict[str, Any]:
        try:
            return json.loads((self.run / STATE).read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self, **extra: Any) -> None:
        state = self._state() | {"netns": self.netns, "bin": str(self.bin)} | extra
        (self.run / STATE).write_text(json.dumps(state, indent=1))

    # --- the safety rule ----------------------------------------------------------------------------------

    @property
    def netns_etc(self) -> Path:
        return Path("/etc/netns") / self.netns

    def netns_exists(self) -> bool:
        return Path(f"/run/netns/{self.netns}").exists()

    def _netns_inode(self) -> int:
        return os.stat(f"/run/netns/{self.netns}").st_ino

    def check_netns(self) -> None:
        """Refuse unless the namespace exists, ``lo`` is its only interface and no route leaves through any other
        device."""
        if not self.netns_exists():
            raise SandboxError(f"network namespace {self.netns} does not exist (the sandbox is not started)")
        problems = netns_problems(
            _ip_json(["-n", self.netns, "link", "show"]),
            _ip_json(["-n", self.netns, "-4", "route", "show", "table", "all"])
            + _ip_json(["-n", self.netns, "-6", "route", "show", "table", "all"]),
        )
        if problems:
            raise SafetyError(f"REFUSED: network namespace {self.netns}: {'; '.join(problems)}")

    def _create_netns(self) -> bool:
        if os.geteuid() != 0:
            raise SandboxError("the sandbox needs root for its network namespace (ip netns): run it with sudo -E")
        created = False
        if not self.netns_exists():
            _ip(["netns", "add", self.netns])
            created = True
        _ip(["-n", self.netns, "link", "set", "lo", "up"])
        self.check_netns()
        strangers = [p for p in self._netns_pids() if not self._owned(p)]
        if strangers:
            raise SandboxError(
                f"network namespace {self.netns} is in use by processes not of {self.run} ({strangers}): "
                "choose another with --netns"
            )
        return created

    def _netns_pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True, check=False)
        return [int(p) for p in out.stdout.split()]

    def in_netns(self, argv: Sequence[str], env: dict[str, str] | None = None) -> list[str]:
        """The command line that runs ``argv`` inside the namespace, without proxy settings, with ``env`` added."""
        self.check_netns()
        unset = [w for v in PROXY_VARIABLES for w in ("-u", v)]
        assignments = [f"{k}={v}" for k, v in (env or {}).items()]
        return ["ip", "netns", "exec", self.netns, "env", *unset, *assignments, *argv]

    # --- daemons ------------------------------------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        return self.run / "pids" / name

    def _exe(self, name: str) -> Path:
        exes = self._state().get("exes", {})
        return Path(exes[name]) if name in exes else (self.bin / name).resolve()

    def alive(self, name: str) -> bool:
        """The component's recorded PID runs its binary, inside the namespace."""
        try:
            pid = int(self._pid_file(name).read_text())
        except (OSError, ValueError):
            return False
        return _runs(pid, self._exe(name)) and self.netns_exists() and _netns_of(pid) == self._netns_inode()

    def send_signal(self, name: str, sig: int) -> None:
        """Send ``sig`` to a running component (a test's fault: SIGSTOP freezes CoreDNS, SIGCONT thaws it), after
        checking the recorded PID is still that binary inside the namespace."""
        if not self.alive(name):
            raise SandboxError(f"{name} is not running in {self.run}")
        os.kill(int(self._pid_file(name).read_text()), sig)

    def _owned(self, pid: int) -> bool:
        for f in (self.run / "pids").glob("*") if (self.run / "pids").is_dir() else ():
            if f.read_text().strip() == str(pid) and self.alive(f.name):
                return True
        return False

    def start_daemon(self, name: str, exe: Path, args: Sequence[str], env: dict[str, str] | None = None) -> int:
        """Start ``exe`` inside the namespace as component ``name``; its PID recorded once it is checked there.
        ``exe`` runs as given (a virtualenv's python must be called by its own path); the checks compare the
        binary it resolves to."""
        command = str(Path(exe).absolute())
        exe = Path(exe).resolve()
        if self.alive(name):
            log(f"{name} already running (pid {self._pid_file(name).read_text().strip()})")
            return int(self._pid_file(name).read_text())
        exes = self._state().get("exes", {}) | {name: str(exe)}
        self._save_state(exes=exes)
        logfile = open(self.run / "logs" / f"{name}.log", "ab")
        proc = subprocess.Popen(
            self.in_netns([command, *args], env),
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        logfile.close()
        deadline = time.monotonic() + 10
        # `ip netns exec` enters the namespace, then `env` execs the binary: same PID throughout.
        while time.monotonic() < deadline and not _runs(proc.pid, exe) and proc.poll() is None:
            time.sleep(0.05)
        self._pid_file(name).write_text(str(proc.pid))
        if not self.alive(name):
            if proc.poll() is None:
                proc.kill()
            raise SandboxError(f"{name} did not start inside {self.netns}:\n{self.tail(name)}")
        log(f"{name} started (pid {proc.pid}, netns {self.netns})")
        return proc.pid

    def tail(self, name: str, lines: int = 20) -> str:
        try:
            return "\n".join((self.run / "logs" / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop_components(self, names: Iterable[str], grace: float = 30) -> None:
        """TERM each (only a PID still running its binary in the namespace), wait, then KILL what is left."""
        pids = {}
        for name in names:
            f = self._pid_file(name)
            if not f.exists():
                continue
            if self.alive(name):
                pid = int(f.read_text())
                os.kill(pid, signal.SIGTERM)
                pids[name] = pid
            else:
                log(f"{name}: not running (or not ours): nothing to stop")
                f.unlink()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_running(p) for p in pids.values()):
            time.sleep(0.2)
        for name, pid in pids.items():
            if _running(pid) and self.alive(name):
                os.kill(pid, signal.SIGKILL)
                log(f"{name} killed (pid {pid})")
            else:
                log(f"{name} stopped (pid {pid})")
            self._pid_file(name).unlink(missing_ok=True)

    def components(self) -> list[str]:
        """Every component with a PID file, in start order (the known ones first)."""
        present = {f.name for f in (self.run / "pids").glob("*")} if (self.run / "pids").is_dir() else set()
        return [c for c in COMPONENTS if c in present] + sorted(present - set(COMPONENTS))

    # --- kubectl ------------------------------------------------------------------------------------------

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            self.in_netns([str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]),
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        if check and result.returncode != 0:
            raise SandboxError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def apply(self, documents: Iterable[dict] | str) -> None:
        text = documents if isinstance(documents, str) else yaml.safe_dump_all(list(documents))
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=text)

    # --- start ----------------------------------------------------------------------------------------------

    def start(self, opts: Options) -> None:
        if missing := missing_host_tools(opts):
            raise SandboxError("; ".join(missing))
        needed = ["etcd", "kube-apiserver", "kubectl"]
        if opts.controllers:
            needed.append("kube-controller-manager")
        if opts.sim:
            needed += ["kube-scheduler", "kwok", "lws-controller"]
        if opts.serve:
            needed += list(binaries.NETWORK)
        # The engine, and the language hosts of programs in other languages when present (tests/e2e/test_consumers.py).
        self._bin = binaries.bin_dir(needed + [n for n in binaries.ENGINE + binaries.LANGS if binaries.locate(n)])
        if opts.fresh and self.run.exists():
            running = [c for c in COMPONENTS if self.alive(c)]
            if running:
                raise SandboxError(f"--fresh: {', '.join(running)} still running in {self.run} (stop it first)")
            if any(self.run.iterdir()) and not (self.run / MARK).exists():
                raise SandboxError(f"--fresh: {self.run} is not a sandbox run directory; refusing to wipe it")
            shutil.rmtree(self.run)
        for d in ("pids", "logs", "certs"):
            (self.run / d).mkdir(parents=True, exist_ok=True)
        (self.run / MARK).touch()
        started = time.monotonic()
        created = False
        try:
            created = self._create_netns()
            self._save_state(options=asdict(opts))
            self._start_control_plane(opts)
            if opts.sim:
                self._start_sim(opts)
        except BaseException:
            log(f"start failed: stopping what it started (logs: {self.run / 'logs'})")
            self.stop_components(reversed(self.components()), grace=10)
            if created and self.netns_exists() and not self._netns_pids():
                _ip(["netns", "delete", self.netns])
                shutil.rmtree(self.netns_etc, ignore_errors=True)
            raise
        log(f"sandbox up in {time.monotonic() - started:.0f}s; run commands in it with: tools/sandbox.py exec -- CMD")

    def _start_control_plane(self, opts: Options) -> None:
        run = self.run
        if opts.serve:
            from tools.simulation import net

            net.address_setup(self.netns, [APISERVER_ADDRESS, net.COREDNS_ADDRESS])
            net.service_route_setup(self.netns)
            self.check_netns()
        self.start_daemon(
            "etcd",
            self.bin / "etcd",
            [
                "--name=sglang-sim",
                f"--data-dir={run / 'etcd-data'}",
                f"--listen-client-urls=http://127.0.0.1:{ETCD_PORT}",
                f"--advertise-client-urls=http://127.0.0.1:{ETCD_PORT}",
                f"--listen-peer-urls=http://127.0.0.1:{ETCD_PORT + 1}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PORT + 1}",
                f"--initial-cluster=sglang-sim=http://127.0.0.1:{ETCD_PORT + 1}",
                "--listen-metrics-urls=",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        sa_key = run / "sa.key"
        if not sa_key.exists():
            _openssl(["genrsa", "-out", str(sa_key), "2048"])
        tokens = run / "tokens.csv"
        if not tokens.exists():
            tokens.write_text(f"{ADMIN_TOKEN},admin,admin,system:masters\n")
        self.start_daemon(
            "kube-apiserver",
            self.bin / "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
                # Inside the namespace 0.0.0.0 is lo's addresses only.
                f"--bind-address={'0.0.0.0' if opts.serve else '127.0.0.1'}",
                f"--advertise-address={APISERVER_ADDRESS if opts.serve else '127.0.0.1'}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--secure-port={API_PORT}",
                f"--cert-dir={run / 'certs'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        self.kubeconfig.write_text(yaml.safe_dump(kubeconfig()))
        waited = self._wait(
            "kube-apiserver /readyz", lambda: self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0, 120
        )
        log(f"kube-apiserver ready after {waited:.0f}s: https://127.0.0.1:{API_PORT} inside {self.netns}")
        files = [CRDS / f for f in (LWS_CRDS if opts.sim else LWS_CRDS[:1])]
        for extra in opts.crds:
            path = Path(extra)
            files += sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
        for f in files:
            if not f.is_file():
                raise SandboxError(f"CRD file {f} not found")
            self.apply(f.read_text())
        self._wait(
            "CRDs established",
            lambda: (
                self.kubectl(
                    "wait", "--for=condition=established", "--timeout=20s", "crd", "--all", check=False
                ).returncode
                == 0
            ),
            60,
        )
        if opts.controllers:
            # The garbage collector (pulumi destroy deletes in the foreground), Namespaces, ReplicaSets, Jobs.
            self.start_daemon(
                "kube-controller-manager",
                self.bin / "kube-controller-manager",
                [
                    f"--kubeconfig={self.kubeconfig}",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    "--secure-port=0",
                    "--controllers=*",
                    f"--service-account-private-key-file={sa_key}",
                    f"--root-ca-file={run / 'certs' / 'apiserver.crt'}",
                    "--use-service-account-credentials=false",
                    "--v=1",
                ],
            )

    def _start_sim(self, opts: Options) -> None:
        run = self.run
        (run / "scheduler-config.yaml").write_text(yaml.safe_dump(scheduler_config(self.kubeconfig)))
        self.start_daemon(
            "kube-scheduler",
            self.bin / "kube-scheduler",
            [f"--config={run / 'scheduler-config.yaml'}", "--bind-address=127.0.0.1", "--secure-port=0", "--v=1"],
        )
        self.start_daemon(
            "kwok",
            self.bin / "kwok",
            [
                f"--kubeconfig={self.kubeconfig}",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--cidr=10.244.0.0/16",
                "--node-ip=127.0.0.1",
                "-c",
                str(HERE / "kwok-stages.yaml"),
            ],
        )
        nodes = gpu_nodes(opts)
        # Kept for a test that adds one more node of the same shape (tests/e2e/test_gang.py).
        (run / "nodes.yaml").write_text(yaml.safe_dump_all(nodes))
        self.apply(nodes)
        if opts.serve:
            self._start_agent(opts)
            self._start_network(opts)
        if opts.pvs > 0:
            for i in range(opts.pvs):
                (run / "pv" / f"sim-pv-{i}").mkdir(parents=True, exist_ok=True)
            self.apply(pool_volumes(opts, run / "pv"))
        certs = run / "lws-certs"
        if not (certs / "tls.crt").exists():
            certs.mkdir(exist_ok=True)
            _openssl(
                [
                    *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=127.0.0.1"),
                    *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(certs / "tls.key")),
                    *("-out", str(certs / "tls.crt")),
                ]
            )
        (run / "lws-config.yaml").write_text(yaml.safe_dump(lws_config(certs)))
        self.start_daemon(
            "lws-controller",
            self.bin / "lws-controller",
            [f"--config={run / 'lws-config.yaml'}", f"--kubeconfig={self.kubeconfig}", "--zap-log-level=info"],
            env={"KUBECONFIG": str(self.kubeconfig)},
        )
        self._wait(
            "LWS webhooks serving",
            lambda: (
                self._curl(f"https://127.0.0.1:{LWS_WEBHOOK_PORT}/", insecure=True)
                and self._curl(f"http://127.0.0.1:{LWS_HEALTH_PORT}/readyz")
            ),
            120,
            component="lws-controller",
        )
        # Registered before any LeaderWorkerSet exists: pods created without the pod webhook make the controller loop.
        self.apply(lws_webhooks(base64.b64encode((certs / "tls.crt").read_bytes()).decode()))
        self.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=120s")
        log(f"{opts.nodes} GPU nodes Ready ({opts.gpus} GPUs each), LWS webhooks at 127.0.0.1:{LWS_WEBHOOK_PORT}")

    def _start_agent(self, opts: Options) -> None:
        """The node agent for every GPU node: their pods run as processes in this namespace."""
        nodes = [n["metadata"]["name"] for n in gpu_nodes(opts)]
        args = ["-m", "tools.simulation.agent", f"--kubeconfig={self.kubeconfig}", f"--run-dir={self.run / 'agent'}"]
        args += [f"--node={n}" for n in nodes]
        args += [f"--pod-cidr={POD_CIDR}", "--placeholders", "--cluster-dns=10.0.0.10"]
        if opts.image_dir:
            args.append(f"--image-dir={opts.image_dir}")
        (self.run / "agent").mkdir(exist_ok=True)
        self.start_daemon("node-agent", Path(sys.executable), args, env={"PYTHONPATH": str(ROOT)})
        self._wait(
            "the node agent's nodes Ready",
            lambda: (
                self.kubectl("wait", "--for=condition=Ready", "node", *nodes, "--timeout=5s", check=False).returncode
                == 0
            ),
            120,
            component="node-agent",
        )

    def _start_network(self, opts: Options) -> None:
        """kube-proxy (ClusterIPs to pod addresses on lo, nftables inside this namespace only) and CoreDNS (the
        cluster zone; every other name NXDOMAIN): docs/sandbox-network.md."""
        from tools.simulation import net

        node = gpu_nodes(opts)[0]["metadata"]["name"]  # one kube-proxy serves every node: they share the namespace
        self.apply(net.kube_dns_objects())
        self.start_daemon(
            "kube-proxy",
            self.bin / "kube-proxy",
            net.kube_proxy_args(self.run / "kube-proxy", self.kubeconfig, node)[1:],
        )
        self._wait(
            "kube-proxy healthz", lambda: self._curl(f"http://{net.KUBE_PROXY_HEALTHZ}/healthz"), 60, "kube-proxy"
        )
        self.start_daemon("coredns", self.bin / "coredns", net.coredns_args(self.run / "coredns", self.kubeconfig)[1:])
        self._wait("CoreDNS ready", lambda: self._curl(f"http://{net.COREDNS_READY}/ready"), 60, "coredns")
        # `ip netns exec` binds /etc/netns/<netns>/resolv.conf over /etc/resolv.conf for what it runs: commands run
        # with `exec` then resolve Service names as a pod does (and never ask the host's resolver).
        self.netns_etc.mkdir(parents=True, exist_ok=True)
        (self.netns_etc / "resolv.conf").write_text(
            f"search svc.cluster.local cluster.local\nnameserver {net.DNS_SERVICE_IP}\noptions ndots:5\n"
        )
        log(f"Services routed by kube-proxy ({net.PROXY_MODE}), cluster DNS at {net.DNS_SERVICE_IP}")

    def _curl(self, url: str, insecure: bool = False) -> bool:
        argv = ["curl", "-s", "-o", "/dev/null", "-m", "3", *(["-k"] if insecure else ["-f"]), url]
        return subprocess.run(self.in_netns(argv), capture_output=True, check=False).returncode == 0

    def _wait(self, what: str, ready, timeout: float, component: str = "kube-apiserver") -> float:
        start = time.monotonic()
        while not ready():
            if not self.alive(component):
                raise SandboxError(f"{component} exited while waiting for {what}:\n{self.tail(component)}")
            if time.monotonic() - start > timeout:
                raise SandboxError(f"{what}: not after {timeout:.0f}s:\n{self.tail(component)}")
            time.sleep(0.5)
        return time.monotonic() - start

    # --- stop / status / exec -----------------------------------------------------------------------------

    def stop(self) -> None:
        if not self.run.exists():
            log(f"no sandbox in {self.run}")
            return
        order = self.components()
        control = [c for c in ("kube-apiserver", "etcd") if c in order]
        self.stop_components([c for c in reversed(order) if c not in control])
        for c in control:
            self.stop_components([c])
        if self.netns_exists():
            others = self._netns_pids()
            if others:
                log(f"warning: processes not started by the sandbox are still in {self.netns} (left alone): {others}")
            else:
                _ip(["netns", "delete", self.netns])
                log(f"network namespace {self.netns} deleted")
        shutil.rmtree(self.netns_etc, ignore_errors=True)

    def status(self) -> tuple[bool, list[str]]:
        lines, ok = [], True
        if self.netns_exists():
            links = [link["ifname"] for link in _ip_json(["-n", self.netns, "link", "show"])]
            lines.append(f"netns {self.netns}: interfaces {' '.join(links)}")
        else:
            lines.append(f"netns {self.netns}: absent")
            ok = False
        for c in self.components():
            if self.alive(c):
                lines.append(f"{c}: running (pid {self._pid_file(c).read_text().strip()})")
            else:
                lines.append(f"{c}: DEAD (log {self.run / 'logs' / (c + '.log')})")
                ok = False
        return ok, lines

    def exec_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """What a command run in the sandbox gets: kubectl configured, the engine first on PATH, Pulumi kept local."""
        (self.run / "pulumi-home").mkdir(parents=True, exist_ok=True)
        env = {
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PULUMI_HOME": os.environ.get("PULUMI_HOME") or str(self.run / "pulumi-home"),
            "PULUMI_SKIP_UPDATE_CHECK": os.environ.get("PULUMI_SKIP_UPDATE_CHECK", "true"),
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": os.environ.get(
                "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true"
            ),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "SGLANG_SIM_RUN": str(self.run),
            "SGLANG_SIM_NETNS": self.netns,
        }
        return env | (extra or {})

    def exec_argv(self, argv: Sequence[str], env: dict[str, str] | None = None) -> list[str]:
        if os.geteuid() != 0:
            raise SandboxError("running a command in the sandbox needs root (ip netns): use sudo -E")
        if not self.alive("kube-apiserver"):
            log(f"warning: kube-apiserver is not running in {self.run}")
        return self.in_netns(list(argv), self.exec_env(env))


# --- pure parts (tested without root) ----------------------------------------------------------------------


# Programs of this machine (not pinned binaries) that a serving sandbox's daemons run: (program, Debian package,
# who needs it). Checked before anything starts: kube-proxy without nft fails only once the control plane is up,
# with the cause deep in its log.
SERVE_HOST_TOOLS = (("nft", "nftables", "kube-proxy's nftables mode, which routes the Services (sandbox-network.md)"),)


def missing_host_tools(opts: Options, which: Callable[[str], str | None] | None = None) -> list[str]:
    if not opts.serve:
        return []
    return [
        f"{tool} is not installed (apt-get install {package}): {why}"
        for tool, package, why in SERVE_HOST_TOOLS
        if not (which or shutil.which)(tool)
    ]


def netns_problems(links: list[dict], routes: list[dict]) -> list[str]:
    """Why a namespace with these interfaces and routes (``ip -j`` output) is not loopback-only; [] if it is."""
    problems = []
    others = sorted({link.get("ifname", "?") for link in links} - {"lo"})
    if others:
        problems.append(f"interfaces besides lo ({', '.join(others)}): traffic could leave the machine")
    for route in routes:
        dev = route.get("dev")
        if dev is not None and dev != "lo":
            problems.append(f"route {route.get('dst', '?')} goes through {dev}, not lo")
        elif dev is None and route.get("type") not in ("unreachable", "prohibit", "blackhole", "throw"):
            problems.append(f"route {route.get('dst', '?')} names no device ({json.dumps(route, sort_keys=True)})")
    return problems


def kubeconfig() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "sglang-sim",
                "cluster": {"server": f"https://127.0.0.1:{API_PORT}", "insecure-skip-tls-verify": True},
            }
        ],
        "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
        "contexts": [{"name": "sglang-sim", "context": {"cluster": "sglang-sim", "user": "admin"}}],
        "current-context": "sglang-sim",
    }


def scheduler_config(kubeconfig_path: Path, profiles: Sequence[str] = ("default-scheduler", "volcano")) -> dict:
    """kube-scheduler with a second profile named ``volcano``, so pods that ask for Volcano are placed even when
    Volcano's own scheduler does not run: node fit only (GPUs, RDMA, CPU, memory), no gang, no queues."""
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "leaderElection": {"leaderElect": False},
        "clientConnection": {"kubeconfig": str(kubeconfig_path)},
        "profiles": [{"schedulerName": p} for p in profiles],
    }


def gpu_nodes(opts: Options) -> list[dict]:
    """kwok's nodes (annotated for it): each with the GPUs, RDMA devices, CPU and memory asked for."""
    resources: dict[str, str] = {"cpu": opts.cpu, "memory": opts.memory, "pods": "110", "ephemeral-storage": "1Ti"}
    if opts.gpus > 0:
        resources["nvidia.com/gpu"] = str(opts.gpus)
    if opts.rdma > 0:
        resources["rdma/ib"] = str(opts.rdma)
    nodes = []
    for i in range(opts.nodes):
        name = f"gpu-node-{i}"
        labels = {
            "type": "kwok",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
        }
        if opts.gpus > 0:
            labels["nvidia.com/gpu.present"] = "true"
        labels |= opts.node_labels
        spec: dict[str, Any] = {}
        if opts.node_taints:
            spec["taints"] = [_taint(t) for t in opts.node_taints]
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    # kwok runs the nodes annotated for it; the node agent the others (their pods really run).
                    "annotations": {"node.alpha.kubernetes.io/ttl": "0"}
                    | ({} if opts.serve else {"kwok.x-k8s.io/node": "fake"}),
                    "labels": labels,
                },
                "spec": spec,
                "status": {"allocatable": dict(resources), "capacity": dict(resources)},
            }
        )
    return nodes


def _taint(text: str) -> dict[str, str]:
    """``key[=value]:Effect``."""
    key, _, effect = text.rpartition(":")
    if not key or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise SandboxError(f"--node-taints: {text!r} is not key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
    key, _, value = key.partition("=")
    return {"key": key, "value": value, "effect": effect}


def pool_volumes(opts: Options, base: Path) -> list[dict]:
    """Unclaimed hostPath volumes (Retain) that claims of class ``pv_class`` bind to: no provisioner runs here."""
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"sim-pv-{i}", "labels": {"sglang-sim/pool": "true"}},
            "spec": {
                "capacity": {"storage": opts.pv_size},
                "accessModes": ["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": opts.pv_class,
                "hostPath": {"path": str(base / f"sim-pv-{i}")},
            },
        }
        for i in range(opts.pvs)
    ]


def lws_config(cert_dir: Path) -> dict[str, Any]:
    """The LeaderWorkerSet controller outside a cluster: no leader election, no cert rotation (the sandbox makes a
    certificate for 127.0.0.1), everything bound to 127.0.0.1 inside the namespace."""
    return {
        "apiVersion": "config.lws.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "webhook": {"host": "127.0.0.1", "port": LWS_WEBHOOK_PORT, "certDir": str(cert_dir)},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{LWS_HEALTH_PORT}"},
        "metrics": {"bindAddress": "0"},
    }


def lws_webhooks(ca_bundle: str) -> list[dict]:
    """LWS v0.10.0's admission webhooks (its config/webhook/manifests.yaml), called by URL on 127.0.0.1: the pod
    hooks only for LeaderWorkerSet pods, as the release's manifests scope them."""

    def hook(name: str, path: str, group: str, resource: str, operations: list[str], pods: bool) -> dict:
        entry: dict[str, Any] = {
            "name": name,
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": f"https://127.0.0.1:{LWS_WEBHOOK_PORT}{path}", "caBundle": ca_bundle},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "rules": [{"apiGroups": [group], "apiVersions": ["v1"], "operations": operations, "resources": [resource]}],
        }
        if pods:
            entry["objectSelector"] = {
                "matchExpressions": [{"key": "leaderworkerset.sigs.k8s.io/name", "operator": "Exists"}]
            }
        return entry

    lws_group, upd = "leaderworkerset.x-k8s.io", ["CREATE", "UPDATE"]
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "lws-mutating-webhook-configuration"},
            "webhooks": [
                hook(
                    "mleaderworkerset.kb.io",
                    "/mutate-leaderworkerset-x-k8s-io-v1-leaderworkerset",
                    lws_group,
                    "leaderworkersets",
                    upd,
                    False,
                ),
                hook("mpod.kb.io", "/mutate--v1-pod", "", "pods", ["CREATE"], True),
            ],
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "lws-validating-webhook-configuration"},
            "webhooks": [
                hook(
                    "vleaderworkerset.kb.io",
                    "/validate-leaderworkerset-x-k8s-io-v1-leaderworkerset",
                    lws_group,
                    "leaderworkersets",
                    upd,
                    False,
                ),
                hook("vpod.kb.io", "/validate--v1-pod", "", "pods", upd, True),
            ],
        },
    ]


# --- small helpers ----------------------------------------------------------------------------------------


def _ip(args: list[str]) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SandboxError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _ip_json(args: list[str]) -> list[dict]:
    result = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SandboxError(f"ip -j {' '.join(args)}: {result.stderr.strip()}")
    return json.loads(result.stdout or "[]")


def _openssl(args: list[str]) -> None:
    if not shutil.which("openssl"):
        raise SandboxError("openssl is not installed (apt-get install openssl)")
    subprocess.run(["openssl", *args], capture_output=True, check=True)


def _runs(pid: int, exe: Path) -> bool:
    try:
        path = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return False
    return Path(path) == exe and _running(pid)


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line for line in status.splitlines() if line.startswith("State:")), "State: Z")
    return "Z" not in state.split()[1]


def _netns_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None
