"""Stand-in for ``python3 -m sglang.launch_server`` of one SGLang release (docs/standin.md).

    SGLANG_STANDIN_RELEASE=0.4.4 python -m tools.simulation.standins.sglang_server --model-path ... [SGLang flags]

(or ``python3 -m sglang.launch_server ...`` with an overlay of ``overlay.build_overlay`` first on PYTHONPATH).
It reads the command line with the release's own options (argparse, exit 2 on a refusal), forms the group of
``--nnodes`` like torch.distributed, "loads weights" for ``SGLANG_STANDIN_LOAD_SECONDS``, and then node rank 0
serves the release's HTTP API on ``--host:--port`` from a simulated engine while other ranks serve the stand-in
``/health`` SGLang's workers serve. Environment (all optional except the release):

- ``SGLANG_STANDIN_RELEASE``: the SGLang release (set by the overlay).
- ``SGLANG_STANDIN_POD_IP``: the address a wildcard ``--host`` binds (default 127.0.0.1; loopback only).
- ``SGLANG_STANDIN_POD_LABELS``: the pod's labels as JSON (its PD revision, ``sglang-platform.io/pd-revision``).
- ``SGLANG_STANDIN_LOAD_SECONDS`` (3), ``SGLANG_STANDIN_WARMUP_SECONDS`` (0.5): weight load, then warmup.
- ``SGLANG_STANDIN_DEFAULT_DIST_TIMEOUT``: the dist timeout when ``--dist-timeout`` is not given (600, torch's).
- cost model: ``SGLANG_STANDIN_PREFILL_TPS``, ``_DECODE_TPS``, ``_DECODE_BATCH_COST``, ``_MAX_RUNNING_REQUESTS``,
  ``_MAX_TOTAL_TOKENS``, ``_CONTEXT_LENGTH``, ``_NATURAL_TOKENS``, ``_KV_TRANSFER_S_PER_TOKEN`` (engine.py).
- faults: ``SGLANG_STANDIN_FAIL_LOAD`` (exit 1 during the load with this message), ``SGLANG_STANDIN_EXIT_AFTER``
  (exit 1 this many seconds after ready); at run time ``POST /stand-in/fault``.
- SGLang's own: ``SGLANG_HEALTH_CHECK_TIMEOUT`` (20), ``SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION`` (0.5.23),
  ``SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT`` / ``_WAITING_TIMEOUT`` (300), the release's DeepGEMM cache
  variable; ``SGLANG_STANDIN_DEEP_GEMM_JIT_SECONDS`` (0) is the warmup's extra time when its kernels are missing.

Control endpoints (same API key rule as every non-health path): ``GET /stand-in/stats`` (what this replica
served: requests, tokens, cached tokens, the prompt prefixes it saw, its PD partners) and ``POST
/stand-in/fault`` with ``{"fault": "exit", "code": 1}``, ``{"fault": "hang"}`` (the scheduler stops: nothing
comes out), ``{"fault": "unresponsive"}`` (HTTP stops answering), ``{"fault": "slow", "factor": 10}``,
``{"fault": "clear"}``. Workers serve both on their stand-in health port.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.simulation.standins import cli
from tools.simulation.standins.engine import (
    CostModel,
    Engine,
    EngineObserver,
    Output,
    Req,
    chat_prompt,
    encode,
    env_float,
    env_int,
    outputs,
    prefix_digest,
    seed_of,
)
from tools.simulation.standins.group import TORCH_DEFAULT_TIMEOUT, Group, GroupError, log
from tools.simulation.standins.httpd import (
    HttpServer,
    NotLoopbackError,
    Request,
    Response,
    StreamResponse,
    bind_address,
    method_not_allowed,
    not_found,
    resolve_loopback,
)
from tools.simulation.standins.metrics import Metrics
from tools.simulation.standins.pd import FAKE_BOOTSTRAP_HOST, NO_ROOM, BootstrapServer, PDError, fetch_kv
from tools.simulation.standins.releases import Behaviour, UnknownReleaseError, behaviour

PD_REVISION_LABEL = "sglang-platform.io/pd-revision"
WARMUP_PROMPT = "The capital city of France is"


def now_s() -> int:
    return int(time.time())


def to_int(value: Any) -> int | None:
    """An int option's value; 0.5.23 reads some with human_readable_int ("32k", "1M")."""
    if value is None:
        return None
    text = str(value).strip().lower()
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:], 1)
    try:
        return int(float(text[:-1] if scale != 1 else text) * scale)
    except ValueError:
        return None


class RequestError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------------------
# Configuration from the parsed command line and the environment
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Config:
    b: Behaviour
    args: cli.Args
    compile: bool = False

    def __post_init__(self) -> None:
        a = self.args
        self.model_path: str = a["--model-path"]
        self.served_name: str = a["--served-model-name"] or self.model_path
        self.host: str = a.get("--host", "127.0.0.1")
        self.port: int = int(a.get("--port", 30000))
        self.nnodes: int = int(a.get("--nnodes", 1))
        self.node_rank: int = int(a.get("--node-rank", 0))
        self.api_key: str | None = a["--api-key"]
        self.enable_metrics: bool = bool(a["--enable-metrics"])
        self.mode: str = a.get("--disaggregation-mode", "null") or "null"
        self.bootstrap_port: int = int(a.get("--disaggregation-bootstrap-port", 8998))
        self.tp: int = int(a.get("--tp-size", 1))
        self.pp: int = int(a.get("--pp-size", 1)) if a.has("--pp-size") else 1
        self.dist_timeout_flag: int | None = a["--dist-timeout"] if a.has("--dist-timeout") else None
        default_timeout = env_float("SGLANG_STANDIN_DEFAULT_DIST_TIMEOUT", TORCH_DEFAULT_TIMEOUT)
        self.dist_timeout: float = float(self.dist_timeout_flag) if self.dist_timeout_flag else default_timeout
        self.context_length: int = to_int(a["--context-length"]) or env_int("SGLANG_STANDIN_CONTEXT_LENGTH", 32768)
        self.load_seconds = env_float("SGLANG_STANDIN_LOAD_SECONDS", 3.0)
        self.warmup_seconds = env_float("SGLANG_STANDIN_WARMUP_SECONDS", 0.5)
        self.natural_tokens = env_int("SGLANG_STANDIN_NATURAL_TOKENS", 64)
        self.stats_prefix_tokens = env_int("SGLANG_STANDIN_STATS_PREFIX_TOKENS", 32)
        labels = os.environ.get("SGLANG_STANDIN_POD_LABELS", "").strip()
        self.pod_labels: dict[str, str] = json.loads(labels) if labels else {}
        self.pod: str = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or f"standin-{os.getpid()}"

    @property
    def dist_init(self) -> tuple[str, int] | None:
        addr = self.args["--dist-init-addr"]
        if not addr:
            return None
        host, _, port = str(addr).rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def identity(self) -> dict:
        return {
            "pod": self.pod,
            "revision": self.pod_labels.get(PD_REVISION_LABEL),
            "mode": self.mode,
            "served_model_name": self.served_name,
            "model_path": self.model_path,
            "release": self.b.release,
        }

    def cost(self) -> CostModel:
        a = self.args

        def opt(flag: str) -> int | None:
            return to_int(a[flag]) if a.has(flag) else None

        return CostModel.from_env(
            max_running=opt("--max-running-requests"),
            max_total_tokens=opt("--max-total-tokens"),
            chunk_tokens=opt("--chunked-prefill-size"),
            page_size=opt("--page-size"),
            radix=not a["--disable-radix-cache"],
        )

    def bucket_flags(self) -> dict[str, list[float] | None]:
        a = self.args
        return {
            "ttft": a["--bucket-time-to-first-token"],
            "itl": a["--bucket-inter-token-latency"],
            "e2e": a["--bucket-e2e-request-latency"],
        }

    # -- DeepGEMM ---------------------------------------------------------------------------------------------

    @property
    def deep_gemm_cache(self) -> Path | None:
        facts = self.b.facts
        if not facts.deep_gemm_compile:
            return None
        variable = facts.deep_gemm_cache_env
        given = os.environ.get(variable) if variable else None
        return Path(given) if given else self.b.deep_gemm_cache_dir_default

    @property
    def kernel_key(self) -> str:
        """What the kernels depend on (the shapes): model, release and parallelism, not host or port."""
        a = self.args
        parts = [self.b.release, self.model_path, str(self.tp), str(self.pp)]
        for flag in ("--dp-size", "--ep-size", "--enable-dp-attention", "--moe-a2a-backend", "--quantization"):
            if a.has(flag):
                parts.append(f"{flag}={a[flag]}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def kernel_dir(self) -> Path | None:
        cache = self.deep_gemm_cache
        return cache / "cache" / f"kernel.sglang-standin.{self.kernel_key}" if cache is not None else None

    def write_kernels(self) -> Path | None:
        where = self.kernel_dir()
        if where is None:
            return None
        where.mkdir(parents=True, exist_ok=True)
        (where / "kernel.json").write_text(
            json.dumps({"release": self.b.release, "model_path": self.model_path, "tp_size": self.tp}) + "\n"
        )
        return where


# ---------------------------------------------------------------------------------------------------------
# Stats: what this replica served, for tests that look through the gateway
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Stats(EngineObserver):
    prefix_tokens: int
    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generation_tokens: int = 0
    prefixes: dict[str, dict] = field(default_factory=dict)
    served_with: dict[str, int] = field(default_factory=dict)
    refused: list[dict] = field(default_factory=list)
    bootstrap_failures: int = 0

    def finished(self, req: Req) -> None:
        if not req.log_metrics or req.warmup:
            return
        self.requests += 1
        self.prompt_tokens += len(req.prompt_ids)
        self.cached_tokens += req.cached_tokens
        self.generation_tokens += len(req.generated)
        digest = prefix_digest(req.prompt_ids, self.prefix_tokens)
        entry = self.prefixes.setdefault(digest, {"requests": 0, "text": req.head})
        entry["requests"] += 1

    def refuse(self, partner: dict, why: str) -> None:
        self.refused.append({"partner": partner, "reason": why})
        del self.refused[:-50]


class Observers(EngineObserver):
    def __init__(self, *observers: EngineObserver):
        self.observers = observers

    def admitted(self, req: Req) -> None:
        for o in self.observers:
            o.admitted(req)

    def prefill_batch(self, batch: list[Req]) -> None:
        for o in self.observers:
            o.prefill_batch(batch)

    def token(self, req: Req, now: float, previous: float | None) -> None:
        for o in self.observers:
            o.token(req, now, previous)

    def finished(self, req: Req) -> None:
        for o in self.observers:
            o.finished(req)


# ---------------------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------------------


class Server:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.b = cfg.b
        self.phase = "starting"  # starting -> loading -> warmup -> up | unhealthy
        self.stats = Stats(cfg.stats_prefix_tokens)
        self.metrics = Metrics(self.b, cfg.served_name, cfg.mode, cfg.bucket_flags())
        self.engine: Engine | None = None
        self.servers: list[HttpServer] = []
        self.answering = asyncio.Event()
        self.answering.set()
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.bootstrap: BootstrapServer | None = None
        self.group: Group | None = None
        self.tasks: set[asyncio.Task] = set()
        self.bootstrap_timeout = env_float("SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT", 300)
        self.waiting_timeout = env_float("SGLANG_DISAGGREGATION_WAITING_TIMEOUT", 300)

    # -- lifecycle --------------------------------------------------------------------------------------------

    def finish(self, code: int, message: str | None = None) -> None:
        if message:
            log(message)
        if not self.done.done():
            self.done.set_result(code)

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            self.finish(1, f"[stand-in] internal error: {error!r}")

    async def run(self) -> int:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.finish, 0, f"[stand-in] signal {sig.name}: shutting down")
        program = "compile_deep_gemm" if cfg.compile else "launch_server"
        log(f"[stand-in] SGLang {self.b.release} {program}: server_args={cfg.args.argv}")
        try:
            main = self.spawn(self._start())
            code = await self.done
            main.cancel()
            return code
        finally:
            for task in list(self.tasks):
                task.cancel()
            for server in self.servers:
                await server.close()
            if self.group is not None:
                self.group.close()

    async def _start(self) -> None:
        cfg = self.cfg
        try:
            if cfg.node_rank == 0 and cfg.mode == "prefill" and not cfg.compile:
                await self._start_bootstrap()
            await self._form_group()
            self.phase = "loading"
            await self._load()
            if cfg.compile:
                await self._compile()
                return
            if cfg.node_rank == 0:
                await self._serve_leader()
            else:
                await self._serve_worker()
            exit_after = env_float("SGLANG_STANDIN_EXIT_AFTER", 0)
            if exit_after > 0:
                await asyncio.sleep(exit_after)
                self.finish(1, f"[stand-in] exiting {exit_after:g} s after ready (SGLANG_STANDIN_EXIT_AFTER)")
        except GroupError as error:
            self.finish(1, str(error))
        except (NotLoopbackError, OSError) as error:
            self.finish(1, f"[stand-in] {error}")

    async def _form_group(self) -> None:
        cfg = self.cfg
        if cfg.dist_timeout_flag is not None and cfg.dist_timeout_flag <= 0:
            # parallel_state.init_distributed_environment of every release with the flag.
            raise GroupError("AssertionError: timeout must be positive")
        if cfg.nnodes <= 1:
            return
        dist = cfg.dist_init
        if dist is None:
            raise GroupError("--dist-init-addr is required with --nnodes > 1 (the nodes have no address to meet at)")
        per_node = max(1, cfg.tp * cfg.pp // cfg.nnodes)

        def lost(who: str) -> None:
            if cfg.compile and cfg.node_rank != 0 and who == "node 0":
                # compile_deep_gemm: node 0 ends the run when its compile is done; the others follow it.
                self.finish(0, "[stand-in] node 0 finished: DeepGEMM compile done on this node")
                return
            self.finish(
                1,
                f"[rank{cfg.node_rank * per_node}] NCCL error: remote process exited or there was a network error "
                f"({who} left the group); this node exits with its group",
            )

        self.group = Group(cfg.nnodes, cfg.node_rank, per_node, cfg.dist_timeout, lost)
        host, port = dist
        if cfg.node_rank == 0:
            # torch's store listens on every address of the node: here the pod's, else the loopback address the
            # dist-init name resolves to (the leader's own, inside the simulation), else 127.0.0.1.
            bind = os.environ.get("SGLANG_STANDIN_POD_IP", "").strip()
            if not bind:
                try:
                    bind = await resolve_loopback(host, port)
                except OSError:
                    bind = "127.0.0.1"
            await self.group.lead(bind_address(bind), port)
        else:
            await self.group.join(host, port)

    async def _load(self) -> None:
        failure = os.environ.get("SGLANG_STANDIN_FAIL_LOAD", "").strip()
        if failure:
            await asyncio.sleep(self.cfg.load_seconds / 2)
            raise GroupError(failure)
        log(f"[stand-in] loading weights from {self.cfg.model_path} ({self.cfg.load_seconds:g} s)")
        await asyncio.sleep(self.cfg.load_seconds)

    async def _compile(self) -> None:
        """compile_deep_gemm: every node compiles the kernels its ranks use into its own cache; node 0 then ends
        the run, and the other nodes end when it goes."""
        seconds = env_float("SGLANG_STANDIN_COMPILE_SECONDS", 1.0)
        log(f"[stand-in] Begin DeepGEMM Kernels compilation ({seconds:g} s)")
        await asyncio.sleep(seconds)
        where = self.cfg.write_kernels()
        log(f"[stand-in] DeepGEMM kernels written to {where}")
        if self.cfg.node_rank == 0 or self.group is None:
            print("\nDeepGEMM Kernels compilation finished successfully.", flush=True)
            self.finish(0)

    # -- rank 0 -----------------------------------------------------------------------------------------------

    async def _start_bootstrap(self) -> None:
        cfg = self.cfg
        layout = {"attn_tp_size": cfg.tp, "attn_cp_size": 1, "dp_size": 1, "pp_size": cfg.pp}
        self.bootstrap = BootstrapServer(
            cfg.identity, layout, self.bootstrap_timeout, self.waiting_timeout, self._refused
        )
        server = HttpServer(self.bootstrap.handle, bind_address(cfg.host), cfg.bootstrap_port, self.answering)
        await server.start()
        self.servers.append(server)
        log(f"[stand-in] bootstrap server on {server.host}:{server.port}")

    def _refused(self, partner: dict, why: str) -> None:
        self.stats.refuse(partner, why)
        self.stats.bootstrap_failures += 1
        self.metrics.inc("sglang:num_bootstrap_failed_reqs_total")
        log(f"[stand-in] refused a pair: {why}")

    async def _serve_leader(self) -> None:
        cfg = self.cfg
        self.engine = Engine(cfg.cost(), Observers(self.metrics, self.stats))
        decode_log_interval = cfg.args["--decode-log-interval"]
        if decode_log_interval:
            self.engine.decode_log_interval = int(decode_log_interval)
        self.metrics.engine = self.engine
        self.spawn(self.engine.run())
        server = HttpServer(self.handle, bind_address(cfg.host), cfg.port, self.answering)
        await server.start()
        self.servers.append(server)
        self.phase = "warmup"
        log(f"[stand-in] Uvicorn running on http://{server.host}:{server.port}")
        await self._warmup()

    async def _warmup(self) -> None:
        cfg = self.cfg
        seconds = cfg.warmup_seconds
        jit = env_float("SGLANG_STANDIN_DEEP_GEMM_JIT_SECONDS", 0.0)
        kernels = cfg.kernel_dir()
        if jit > 0 and kernels is not None and not (kernels / "kernel.json").exists():
            log(f"[stand-in] DeepGEMM kernels not in {cfg.deep_gemm_cache}: JIT-compiling them ({jit:g} s)")
            seconds += jit
            cfg.write_kernels()
        await asyncio.sleep(seconds)
        assert self.engine is not None
        req = Req(encode(WARMUP_PROMPT), 8, seed=0, warmup=True)
        self.engine.submit(req)
        async for _ in outputs(req):
            pass
        if self.bootstrap is not None:
            self.bootstrap.ready = True
        self.phase = "up"
        log("[stand-in] The server is fired up and ready to roll!")

    # -- the API ----------------------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        key = self.cfg.api_key
        if not key or request.method == "OPTIONS" or self.b.exempt_from_api_key(request.path):
            return True
        return self.b.key_matches(request.headers.get("authorization"), key)

    async def handle(self, request: Request) -> Response | StreamResponse:
        if not self._authorized(request):
            return Response.json({"error": "Unauthorized"}, 401)
        path, method = request.path, request.method
        b = self.b
        if path.startswith("/metrics") and self.cfg.enable_metrics:
            return Response.text(self.metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")
        routes: dict[str, tuple[tuple[str, ...], Any]] = {
            "/health": (("GET",), lambda: self.health(path)),
            "/health_generate": (("GET",), lambda: self.health(path)),
            "/get_model_info": (("GET",), self.model_info),
            "/get_server_info": (("GET",), self.server_info),
            "/v1/models": (("GET",), self.models),
            "/generate": (("POST", "PUT"), lambda: self.generate(request)),
            "/v1/completions": (("POST",), lambda: self.openai(request, chat=False)),
            "/v1/chat/completions": (("POST",), lambda: self.openai(request, chat=True)),
            "/flush_cache": (b.flush_cache_methods, self.flush_cache),
            "/stand-in/stats": (("GET",), self.stats_response),
            "/stand-in/fault": (("POST",), lambda: self.fault(request)),
        }
        if b.ready_endpoint:
            routes["/ready"] = (("GET",), self.ready)
        if b.new_info_routes:
            routes["/model_info"] = (("GET",), self.model_info)
            routes["/server_info"] = (("GET",), self.server_info)
        if b.get_load:
            routes["/get_load"] = (("GET",), self.get_load)
        if path not in routes:
            return not_found()
        methods, action = routes[path]
        if method not in methods:
            return method_not_allowed()
        return await action()

    # -- health -----------------------------------------------------------------------------------------------

    async def health(self, path: str) -> Response:
        b = self.b
        if b.health_generates:
            if self.phase in ("starting", "loading", "warmup"):
                return Response.empty(503)
            generation = os.environ.get("SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION", "true").lower()
            if path == "/health" and b.ready_endpoint and generation in ("0", "false", "no"):
                return Response.empty(200)
            return await self.health_generate()
        if path == "/health":
            return Response.empty(200)
        return await self.health_generate()

    async def health_generate(self) -> Response:
        engine = self.engine
        assert engine is not None
        req = Req([0], 1, log_metrics=False)
        tic = time.monotonic()
        engine.submit(req)
        if not self.b.health_generate_polls:
            # 0.4.3.post2 awaits its own token, however long it takes.
            async for _ in outputs(req):
                pass
            return Response.empty(200)
        timeout = env_float("SGLANG_HEALTH_CHECK_TIMEOUT", 20)
        while time.monotonic() < tic + timeout:
            await asyncio.sleep(1)
            if engine.last_output > tic:
                engine.abort(req)
                if self.b.health_generates:
                    self.phase = "up"
                return Response.empty(200)
        engine.abort(req)
        log(f"[stand-in] Health check failed. Server couldn't get a response from detokenizer for last {timeout:g} s.")
        if self.b.health_generates:
            self.phase = "unhealthy"
        return Response.empty(503)

    async def ready(self) -> Response:
        return Response.empty(200 if self.phase == "up" else 503)

    # -- information ------------------------------------------------------------------------------------------

    async def model_info(self) -> Response:
        ns = self.cfg.args.as_dict()
        return Response.json(self.b.model_info(self.cfg.model_path, self.cfg.served_name, self.cfg.mode, ns))

    async def server_info(self) -> Response:
        cfg = self.cfg
        info = cfg.args.as_dict()
        # ServerArgs' field names, whichever option string argparse took the dest from.
        info |= {
            "model_path": cfg.model_path,
            "served_model_name": cfg.served_name,
            "tp_size": cfg.tp,
            "dp_size": int(cfg.args.get("--dp-size", 1)),
            "disaggregation_mode": cfg.mode,
            "version": self.b.release,
        }
        if self.engine is not None:
            info["max_total_num_tokens"] = self.engine.cost.max_total_tokens
            info["internal_states"] = [{"last_gen_throughput": self.engine.gen_throughput}]
        return Response.json(info)

    async def models(self) -> Response:
        card: dict[str, Any] = {
            "id": self.cfg.served_name,
            "object": "model",
            "created": now_s(),
            "owned_by": "sglang",
            "root": self.cfg.served_name,
        }
        if self.b.models_list_max_len:
            card["max_model_len"] = self.cfg.context_length
        return Response.json({"object": "list", "data": [card]})

    async def get_load(self) -> Response:
        engine = self.engine
        assert engine is not None
        return Response.json({"load": engine.used_tokens + sum(len(r.prompt_ids) for r in engine.waiting)})

    async def flush_cache(self) -> Response:
        engine = self.engine
        assert engine is not None
        flushed = engine.flush_cache()
        text = (
            "Cache flushed.\nPlease check backend logs for more details. "
            "(When there are running or waiting requests, the operation will not be performed.)\n"
        )
        status = 400 if not flushed and self.b.flush_cache_refuses_when_busy else 200
        return Response.text(text, status)

    async def stats_response(self) -> Response:
        return Response.json(self.stats_json())

    def stats_json(self) -> dict:
        cfg, s = self.cfg, self.stats
        engine = self.engine
        return {
            **cfg.identity,
            "node_rank": cfg.node_rank,
            "role": "leader" if cfg.node_rank == 0 else "worker",
            "phase": self.phase,
            "requests": s.requests,
            "prompt_tokens": s.prompt_tokens,
            "cached_tokens": s.cached_tokens,
            "generation_tokens": s.generation_tokens,
            "running": len(engine.running) if engine else 0,
            "queued": len(engine.waiting) if engine else 0,
            "prefix_tokens": s.prefix_tokens,
            "prefixes": s.prefixes,
            "pd": {"served_with": s.served_with, "refused": s.refused, "bootstrap_failures": s.bootstrap_failures},
        }

    async def fault(self, request: Request) -> Response:
        body = request.json() or {}
        kind = body.get("fault")
        if kind == "exit":
            code = int(body.get("code", 1))
            asyncio.get_running_loop().call_later(0.05, self.finish, code, f"[stand-in] fault: exit {code}")
        elif kind == "hang":
            if self.engine is not None:
                self.engine.hang(True)
        elif kind == "unresponsive":
            asyncio.get_running_loop().call_later(0.05, self.answering.clear)
        elif kind == "slow":
            if self.engine is not None:
                self.engine.slowdown = float(body.get("factor", 10))
        elif kind == "clear":
            self.answering.set()
            if self.engine is not None:
                self.engine.hang(False)
                self.engine.slowdown = 1.0
        else:
            return Response.json({"error": f"unknown fault {kind!r}: exit, hang, unresponsive, slow, clear"}, 400)
        return Response.json({"fault": kind})

    # -- requests ---------------------------------------------------------------------------------------------

    def _check_length(self, prompt: int, max_new: int | None) -> None:
        ctx = self.cfg.context_length
        if prompt >= ctx:
            raise RequestError(f"The input ({prompt} tokens) is longer than the model's context length ({ctx} tokens).")
        if max_new is not None and prompt + max_new >= ctx:
            raise RequestError(
                f"Requested token count exceeds the model's maximum context length of {ctx} tokens. You requested "
                f"a total of {prompt + max_new} tokens: {prompt} tokens from the input messages and {max_new} "
                "tokens for the completion. Please reduce the number of tokens in the input messages or the "
                "completion to fit within the limit."
            )

    async def start_request(
        self, ids: list[int], max_new: int, body: dict, head: str
    ) -> tuple[Req, AsyncIterator[Output]]:
        """Start one request as this server's role does it; its outputs as they come."""
        engine = self.engine
        assert engine is not None
        mode = self.cfg.mode
        req = Req(ids, max_new, seed=seed_of(ids), head=head)
        if mode == "null":
            engine.submit(req)
            return req, outputs(req)
        room, host, port = body.get("bootstrap_room"), body.get("bootstrap_host"), body.get("bootstrap_port")
        if isinstance(room, list):
            room, host, port = room[0], (host or [None])[0], (port or [None])[0]
        if room is None:
            raise RequestError(f"{NO_ROOM} req.rid='{req.rid}'", 400)
        if host == FAKE_BOOTSTRAP_HOST:
            engine.submit(req)  # health checks and warmups pair with no one
            return req, outputs(req)
        if mode == "prefill":
            return req, self._prefill(req, int(room))
        return req, self._decode(req, int(room), str(host), port)

    async def _prefill(self, req: Req, room: int) -> AsyncIterator[Output]:
        engine, bootstrap = self.engine, self.bootstrap
        assert engine is not None and bootstrap is not None
        req.max_new_tokens = 1
        first: list[Output] = []

        async def prefill(decode: dict) -> dict:
            engine.submit(req)
            async for out in outputs(req):
                first.append(out)
            tic = time.monotonic()
            await asyncio.sleep(len(req.prompt_ids) * engine.cost.kv_transfer_s_per_token)
            self.metrics.observe("sglang:kv_transfer_latency_ms", (time.monotonic() - tic) * 1000)
            return {
                "room": room,
                "prompt_tokens": len(req.prompt_ids),
                "cached_tokens": req.cached_tokens,
                "first_token": first[0].token,
                "prefill": self.cfg.identity,
            }

        try:
            decode = await bootstrap.serve_room(room, prefill)
        except PDError as error:
            engine.abort(req)
            if not error.refused:  # a refused pair was counted when it was refused
                self.metrics.inc("sglang:num_bootstrap_failed_reqs_total")
                self.stats.bootstrap_failures += 1
            raise RequestError(str(error), error.status) from None
        partner = f"{decode.get('pod')}@{decode.get('revision')}"
        self.stats.served_with[partner] = self.stats.served_with.get(partner, 0) + 1
        for out in first:
            yield out

    async def _decode(self, req: Req, room: int, host: str, port: Any) -> AsyncIterator[Output]:
        engine = self.engine
        assert engine is not None
        if port is None:
            if self.b.release == "0.4.6":
                raise RequestError("bootstrap_port is required: this release's decode has no default", 400)
            port = self.cfg.bootstrap_port
        try:
            prefill, kv = await fetch_kv(
                host,
                int(port),
                room,
                self.cfg.identity,
                self.b.route_query,
                self.bootstrap_timeout,
                self.waiting_timeout,
            )
        except PDError as error:
            self.metrics.inc("sglang:num_bootstrap_failed_reqs_total")
            if error.refused:
                self.stats.refuse({"bootstrap": f"{host}:{port}"}, str(error))
            self.stats.bootstrap_failures += 1
            raise RequestError(str(error), error.status) from None
        partner = f"{prefill.get('pod')}@{prefill.get('revision')}"
        self.stats.served_with[partner] = self.stats.served_with.get(partner, 0) + 1
        req.prefilled = True
        req.cached_tokens = int(kv.get("cached_tokens", 0))
        engine.submit(req)
        async for out in outputs(req):
            yield out

    # -- /generate --------------------------------------------------------------------------------------------

    async def generate(self, request: Request) -> Response | StreamResponse:
        try:
            body = request.json()
        except ValueError:
            return Response.json({"detail": [{"type": "json_invalid", "msg": "JSON decode error"}]}, 422)
        if not isinstance(body, dict):
            detail = [{"type": "model_attributes_type", "msg": "Input should be an object"}]
            return Response.json({"detail": detail}, 422)
        params = body.get("sampling_params") or {}
        max_new = int(params.get("max_new_tokens", 128) if params.get("max_new_tokens") is not None else 128)
        prompts: list[tuple[list[int], str]]
        text, ids = body.get("text"), body.get("input_ids")
        if text is not None:
            texts = text if isinstance(text, list) else [text]
            prompts = [(encode(t), t[:80]) for t in texts]
        elif ids is not None:
            batches = ids if ids and isinstance(ids[0], list) else [ids]
            prompts = [([int(i) for i in b], "") for b in batches]
        else:
            return Response.json({"error": {"message": "Either text or input_ids should be provided."}}, 400)
        batch = isinstance(text, list) or (ids is not None and bool(ids) and isinstance(ids[0], list))
        try:
            for prompt, _ in prompts:
                self._check_length(len(prompt), max_new)
            started = [await self.start_request(p, max_new, body, head) for p, head in prompts]
        except RequestError as error:
            return Response.json({"error": {"message": str(error)}}, error.status)
        if body.get("stream"):
            return StreamResponse(self._generate_stream(started), on_disconnect=lambda: self._abort(started))
        results = []
        for req, stream in started:
            pieces = []
            try:
                async for out in stream:
                    pieces.append(out.text)
            except RequestError as error:
                return Response.json({"error": {"message": str(error)}}, error.status)
            results.append({"text": "".join(pieces), "meta_info": self._meta(req)})
        return Response.json(results if batch else results[0])

    def _abort(self, started: list[tuple[Req, AsyncIterator[Output]]]) -> None:
        if self.engine is not None:
            for req, _ in started:
                self.engine.abort(req)
                self.metrics.inc("sglang:num_aborted_requests_total")

    async def _generate_stream(self, started: list[tuple[Req, AsyncIterator[Output]]]) -> AsyncIterator[bytes]:
        try:
            for index, (req, stream) in enumerate(started):
                text = ""
                async for out in stream:
                    text += out.text
                    chunk = {"text": text, "meta_info": self._meta(req), "index": index}
                    yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        except RequestError as error:
            yield b"data: " + json.dumps({"error": {"message": str(error)}}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    def _meta(self, req: Req) -> dict:
        finished = req.finished_at is not None
        return {
            "id": req.rid,
            "finish_reason": {"type": "length", "length": len(req.generated)} if finished else None,
            "prompt_tokens": len(req.prompt_ids),
            "completion_tokens": len(req.generated),
            "cached_tokens": req.cached_tokens,
            "e2e_latency": round((req.finished_at or time.monotonic()) - req.created, 6),
        }

    # -- OpenAI -----------------------------------------------------------------------------------------------

    @staticmethod
    def _openai_error(message: str, status: int) -> Response:
        kind = "BadRequestError" if status == 400 else "InternalServerError"
        error = {"object": "error", "message": message, "type": kind, "param": None, "code": status}
        return Response.json(error, status)

    async def openai(self, request: Request, chat: bool) -> Response | StreamResponse:
        try:
            body = request.json()
        except ValueError:
            return self._openai_error("Invalid request body: JSON decode error", 400)
        if not isinstance(body, dict):
            return self._openai_error("Invalid request body", 400)
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return self._openai_error("messages: a non-empty list is required", 400)
            rendered = chat_prompt(messages)
            ids = encode(rendered)
            head = rendered[:80]
            requested = body.get("max_tokens", body.get("max_completion_tokens"))
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
                ids, head = [int(i) for i in prompt], ""
            elif isinstance(prompt, list):
                head = str(prompt[0]) if prompt else ""
                ids = encode(head)
            elif isinstance(prompt, str):
                ids, head = encode(prompt), prompt[:80]
            else:
                return self._openai_error("prompt: a string or a list of token ids is required", 400)
            requested = body.get("max_tokens", 16)
        natural = requested is None
        max_new = self.cfg.natural_tokens if requested is None else int(requested)
        try:
            self._check_length(len(ids), None if natural else max_new)
            req, stream = await self.start_request(ids, max_new, body, head)
        except RequestError as error:
            return self._openai_error(str(error), error.status)
        model = body.get("model") or self.cfg.served_name
        rid = uuid.uuid4().hex
        finish = "stop" if natural else "length"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = self._openai_stream(req, stream, chat, model, rid, finish, include_usage)
            return StreamResponse(chunks, on_disconnect=lambda: self._abort([(req, stream)]))
        pieces = []
        try:
            async for out in stream:
                pieces.append(out.text)
        except RequestError as error:
            return self._openai_error(str(error), error.status)
        text = "".join(pieces)
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": None},
                "logprobs": None,
                "finish_reason": finish,
                "matched_stop": None,
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "matched_stop": None}
        return Response.json(
            {
                "id": rid,
                "object": "chat.completion" if chat else "text_completion",
                "created": now_s(),
                "model": model,
                "choices": [choice],
                "usage": self._usage(req),
            }
        )

    def _usage(self, req: Req) -> dict:
        usage: dict[str, Any] = {
            "prompt_tokens": len(req.prompt_ids),
            "total_tokens": len(req.prompt_ids) + len(req.generated),
            "completion_tokens": len(req.generated),
            "prompt_tokens_details": None,
        }
        if self.cfg.args["--enable-cache-report"]:
            usage["prompt_tokens_details"] = {"cached_tokens": req.cached_tokens}
        return usage

    async def _openai_stream(
        self,
        req: Req,
        stream: AsyncIterator[Output],
        chat: bool,
        model: str,
        rid: str,
        finish: str,
        include_usage: bool,
    ) -> AsyncIterator[bytes]:
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choices: list[dict], usage: dict | None = None) -> bytes:
            data = {"id": rid, "object": kind, "created": now_s(), "model": model, "choices": choices, "usage": usage}
            return b"data: " + json.dumps(data).encode() + b"\n\n"

        def choice(finish_reason: str | None, **content: Any) -> list[dict]:
            return [{"index": 0, **content, "logprobs": None, "finish_reason": finish_reason, "matched_stop": None}]

        try:
            if chat:
                yield chunk(choice(None, delta={"role": "assistant", "content": ""}))
            async for out in stream:
                if chat:
                    yield chunk(choice(None, delta={"content": out.text}))
                else:
                    yield chunk(choice(finish if out.finished else None, text=out.text))
            if chat:
                yield chunk(choice(finish, delta={}))
            if include_usage:
                yield chunk([], self._usage(req))
        except RequestError as error:
            payload = {"message": str(error), "type": "InternalServerError", "param": None, "code": error.status}
            yield b"data: " + json.dumps({"error": {"object": "error", **payload}}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    # -- ranks >= 1 -------------------------------------------------------------------------------------------

    async def _serve_worker(self) -> None:
        server = HttpServer(self.handle_worker, bind_address(self.cfg.host), self.cfg.port, self.answering)
        await server.start()
        self.servers.append(server)
        self.phase = "up"
        log(f"[stand-in] node {self.cfg.node_rank}: stand-in health server on {server.host}:{server.port}")

    async def handle_worker(self, request: Request) -> Response:
        """SGLang's launch_dummy_health_check_server: /health and /health_generate (and /ping in 0.5.23, /metrics
        with --enable-metrics where the release serves them there); no API, no API key."""
        path = request.path
        if path in ("/health", "/health_generate") or (path == "/ping" and self.b.new_info_routes):
            return Response.empty(200) if request.method == "GET" else method_not_allowed()
        if path.startswith("/metrics") and self.cfg.enable_metrics and self.b.facts.worker_metrics:
            return Response.text("", content_type="text/plain; version=0.0.4; charset=utf-8")
        if path == "/stand-in/stats":
            return Response.json(self.stats_json())
        if path == "/stand-in/fault" and request.method == "POST":
            return await self.fault(request)
        return not_found()


# ---------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------


def release_from_env(release: str | None) -> str | None:
    return release or os.environ.get("SGLANG_STANDIN_RELEASE", "").strip() or None


def chosen_behaviour(release: str | None) -> Behaviour | None:
    """The release to stand in for (the argument, else SGLANG_STANDIN_RELEASE), or None once the reason is printed:
    what both stood-in modules check before they parse their command line."""
    chosen = release_from_env(release)
    if chosen is None:
        print("stand-in: set SGLANG_STANDIN_RELEASE to the SGLang release to stand in for", file=sys.stderr)
        return None
    try:
        return behaviour(chosen)
    except UnknownReleaseError as error:
        print(f"stand-in: {error}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None, release: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    b = chosen_behaviour(release)
    if b is None:
        return 1
    if "--config" in argv and b.table.option("--config") is not None:
        print("stand-in: --config (a YAML of server arguments) is not stood in; pass the flags", file=sys.stderr)
        return 1
    args = cli.parse(b.table, b.prog, argv)  # argparse exits 2 on what the release refuses
    return serve(Config(b, args))


def serve(cfg: Config) -> int:
    async def go() -> int:
        return await Server(cfg).run()

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        return 130
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
