"""The SGLang stand-in (tools/simulation/standins, docs/standin.md): real processes on 127.0.0.0/8, each test
bounded in time, with short load and warmup delays from the environment.

What is checked is what the simulated cluster relies on: the release's own command line (refusals per release,
cross-checked with the platform's independent flag checker), its health and readiness semantics, the group's
rendezvous and failures, the API key, the OpenAI surface (plain and streamed), the release's metric names, the
cost model's queueing and prefix cache, PD pairing by revision, the overlay and the DeepGEMM cache step.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ROOT, _cached_run, unavailable

from sglang_platform.facts.metrics import SglangMetrics
from sglang_platform.facts.sglang import check_args, load_table
from tools import harness
from tools.simulation.standins import cli
from tools.simulation.standins.engine import chat_prompt, encode, prefix_digest
from tools.simulation.standins.metrics import parse_families, sample
from tools.simulation.standins.overlay import build_overlay
from tools.simulation.standins.releases import behaviour

FAST = {
    "SGLANG_STANDIN_LOAD_SECONDS": "0.3",
    "SGLANG_STANDIN_WARMUP_SECONDS": "0.1",
    "PYTHONUNBUFFERED": "1",
    # Names resolve from this table only: the machine's resolver would ask a DNS server off the loopback.
    "SGLANG_STANDIN_HOSTS": json.dumps({"localhost": "127.0.0.1"}),
}
KEY = "sk-standin-test"
MODEL = "/models/Qwen2.5-1.5B-Instruct"

# ---------------------------------------------------------------------------------------------------------
# Helpers: processes, addresses, HTTP
# ---------------------------------------------------------------------------------------------------------

_next_host = iter(range(10, 250))


def loopback_host() -> str:
    """A fresh 127.0.0.x for one "pod" (every 127/8 address is local on Linux)."""
    return f"127.0.{os.getpid() % 200 + 20}.{next(_next_host)}"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def call(
    method: str, host: str, port: int, path: str, body=None, key: str | None = None, timeout: float = 10.0, auth=None
) -> tuple[int | None, bytes]:
    """(status, body); status None when nothing listens."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if auth is not None:
        headers["Authorization"] = auth
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        return response.status, response.read()
    except (ConnectionRefusedError, ConnectionResetError):
        return None, b""
    finally:
        conn.close()


def sse(host: str, port: int, path: str, body: dict, key: str | None = None) -> list[tuple[float, str]]:
    """The ``data:`` payloads of a streamed answer, each with the seconds since the request was sent."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    conn = http.client.HTTPConnection(host, port, timeout=30)
    start = time.monotonic()
    conn.request("POST", path, json.dumps(body), headers)
    response = conn.getresponse()
    assert response.status == 200, response.read()
    assert response.getheader("content-type", "").startswith("text/event-stream")
    events = []
    for raw in response:
        line = raw.decode().strip()
        if line.startswith("data: "):
            events.append((time.monotonic() - start, line[len("data: ") :]))
    conn.close()
    return events


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s: {what}")


class Standin:
    def __init__(self, proc: subprocess.Popen, host: str, port: int, log: Path):
        self.proc, self.host, self.port, self.log = proc, host, port, log

    def get(self, path: str, key: str | None = None, **kw):
        return call("GET", self.host, self.port, path, key=key, **kw)

    def post(self, path: str, body, key: str | None = None, **kw):
        return call("POST", self.host, self.port, path, body, key=key, **kw)

    def json(self, path: str, key: str | None = None):
        status, body = self.get(path, key)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def wait_status(self, path: str, status: int, timeout: float = 10.0, key: str | None = None) -> None:
        wait_for(
            lambda: self.get(path, key, timeout=3)[0] == status, timeout, what=f"{path} -> {status}\n{self.output}"
        )

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout} s:\n{self.output}") from None

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def launch(tmp_path) -> Iterator[Callable[..., Standin]]:
    """Start stand-ins as their own processes; every one is ended (by its pid) when the test ends."""
    started: list[subprocess.Popen] = []
    count = iter(range(1000))

    def start(
        release: str,
        *args: str,
        host: str | None = None,
        port: int | None = None,
        env: dict | None = None,
        module: str = "tools.simulation.standins.sglang_server",
        command: list[str] | None = None,
    ) -> Standin:
        host = host or loopback_host()
        port = port or free_port(host)
        log = tmp_path / f"standin-{next(count)}.log"
        argv = command or [sys.executable, "-m", module, *args]
        if command is None and "--port" not in args:
            argv += ["--host", host, "--port", str(port)]
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "PYTHONPATH": str(ROOT),
            "SGLANG_STANDIN_RELEASE": release,
            **FAST,
            **(env or {}),
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        started.append(proc)
        return Standin(proc, host, port, log)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def ready(standin: Standin, key: str | None = None, timeout: float = 15) -> Standin:
    """Up and past its warmup: /get_model_info answers (not /health: from 0.5.1 it generates, >= 1 s)."""
    standin.wait_status("/get_model_info", 200, timeout, key=key)
    wait_for(
        lambda: "ready to roll" in standin.output, timeout, what=f"warmup finished\n{standin.output}"
    )  # the warmup request is done: the tests' counters start after it
    return standin


# ---------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------


def rendered_launch_args() -> list[tuple[str, str, list[str]]]:
    """(stack, release, args) of every launch_server container of dev, prod and pd-h200, with the $(VAR)s
    Kubernetes would substitute given values."""
    subst = {"$(LWS_LEADER_ADDRESS)": "leader.example", "$(LWS_WORKER_INDEX)": "1", "$(SGLANG_API_KEY)": KEY}
    out = []
    for stack, release in (("dev", "0.4.3.post2"), ("prod", "0.4.4"), ("pd-h200", "0.5.23")):
        for obj in harness.kubernetes_objects(_cached_run(stack, stack != "dev")):
            if obj["kind"] != "LeaderWorkerSet":
                continue
            for role, template in obj["spec"]["leaderWorkerTemplate"].items():
                if not role.endswith("Template"):
                    continue
                for c in template["spec"]["containers"]:
                    if c.get("command") == ["python3", "-m", "sglang.launch_server"]:
                        args = list(c["args"])
                        for var, value in subst.items():
                            args = [a.replace(var, value) for a in args]
                        out.append((stack, release, args))
    return out


def stand_in_verdict(release: str, argv: list[str], capsys) -> tuple[int, str]:
    """(0 or argparse's exit code, its message) of the stand-in's parser for this release."""
    b = behaviour(release)
    try:
        cli.parse(b.table, b.prog, argv)
    except SystemExit as exit:
        return int(exit.code or 0), capsys.readouterr().err
    return 0, ""


def test_every_rendered_command_line_is_read_as_its_release_reads_it(capsys):
    seen = set()
    for stack, release, args in rendered_launch_args():
        code, message = stand_in_verdict(release, args, capsys)
        assert code == 0, (stack, message)
        b = behaviour(release)
        parsed = cli.parse(b.table, b.prog, args)
        # Values land where SGLang's ServerArgs reads them, whichever option string the platform wrote.
        assert parsed["--tp-size"] == int(args[args.index("--tp-size") + 1])
        assert parsed["--model-path"] == args[args.index("--model-path") + 1]
        seen.add(stack)
    assert seen == {"dev", "prod", "pd-h200"}


# Command lines the stand-in must refuse or accept exactly as argparse of the release does; the platform's own
# checker (facts.sglang.check_args, written separately from the same tables) must agree on each.
VERDICTS = [
    ("0.4.3.post2", ["--dist-timeout", "60"], "unrecognized arguments: --dist-timeout 60"),
    ("0.4.4", ["--dist-timeout", "60"], None),
    ("0.4.4", ["--disaggregation-mode", "prefill"], "unrecognized arguments: --disaggregation-mode prefill"),
    ("0.4.5", ["--disaggregation-mode", "prefill"], None),
    ("0.4.5", ["--disaggregation-mode", "both"], "argument --disaggregation-mode: invalid choice: 'both'"),
    ("0.4.3.post2", ["--tp", "2"], None),  # an unambiguous prefix of --tp-size
    ("0.4.3.post2", ["--d", "1"], "ambiguous option: --d could match"),
    ("0.4.3.post2", ["--port"], "argument --port: expected one argument"),
    ("0.4.3.post2", ["--port", "eighty"], "argument --port: invalid int value: 'eighty'"),
    ("0.4.3.post2", ["--enable-metrics=yes"], "argument --enable-metrics: ignored explicit argument 'yes'"),
    ("0.5.1", ["--moe-a2a-backend", "deepep"], None),
    ("0.4.10", ["--moe-a2a-backend", "deepep"], "unrecognized arguments: --moe-a2a-backend deepep"),
]


@pytest.mark.parametrize(("release", "extra", "refusal"), VERDICTS)
def test_the_release_refuses_what_it_refuses(release, extra, refusal, capsys):
    argv = ["--model-path", MODEL, *extra]
    code, message = stand_in_verdict(release, argv, capsys)
    table = load_table(release)
    assert table is not None
    problems = check_args(argv, table, required=True)
    if refusal is None:
        assert (code, problems) == (0, [])
    else:
        assert code == 2
        assert f"{behaviour(release).prog}: error: {refusal}" in message
        assert problems, f"the platform's checker accepts what SGLang {release} refuses: {argv}"


def test_a_missing_model_path_is_refused_like_argparse(capsys):
    code, message = stand_in_verdict("0.5.23", ["--tp-size", "8"], capsys)
    assert code == 2
    # 0.5.23 names its parser "sglang serve"; before, argparse took launch_server.py from sys.argv[0].
    assert "sglang serve: error: the following arguments are required: --model-path" in message
    assert "usage: sglang serve [-h]" in message


def test_the_process_exits_2_with_argparses_message(launch):
    refused = launch("0.4.3.post2", "--model-path", MODEL, "--dist-timeout", "60")
    assert refused.wait_exit(10) == 2
    assert "launch_server.py: error: unrecognized arguments: --dist-timeout 60" in refused.output
    assert refused.get("/health")[0] is None  # it never served


# ---------------------------------------------------------------------------------------------------------
# Health, readiness, the API key
# ---------------------------------------------------------------------------------------------------------


def observe(standin: Standin, path: str, until: int, timeout: float) -> list[int | None]:
    """Statuses of ``path`` (None: refused) until it answers ``until``, consecutive repeats folded."""
    seen: list[int | None] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = standin.get(path, timeout=5)[0]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == until:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{path}: {seen}\n{standin.output}")


def test_0_5_23_health_is_503_until_warmed_up_then_200(launch):
    s = launch(
        "0.5.23",
        "--model-path",
        MODEL,
        env={"SGLANG_STANDIN_LOAD_SECONDS": "1", "SGLANG_STANDIN_WARMUP_SECONDS": "1"},
    )
    # Loading: nothing listens (SGLang starts its HTTP server after the weights); warmup: 503; then 200.
    assert observe(s, "/health", 200, 15) == [None, 503, 200]
    assert s.get("/ready")[0] == 200


def test_0_4_3_post2_health_answers_200_as_soon_as_it_listens(launch):
    # DESIGN.md: there /health is 200 once the HTTP server is up, which is after the weights are loaded.
    s = launch("0.4.3.post2", "--model-path", MODEL, env={"SGLANG_STANDIN_WARMUP_SECONDS": "1"})
    assert observe(s, "/health", 200, 15) == [None, 200]
    assert s.get("/ready")[0] == 404  # 0.4.3.post2 has no /ready


@pytest.mark.parametrize(("release", "metrics_need_key"), [("0.4.3.post2", True), ("0.5.23", False)])
def test_the_api_key_guards_every_path_but_health(launch, release, metrics_need_key):
    s = ready(launch(release, "--model-path", MODEL, "--enable-metrics", "--api-key", KEY), key=KEY)
    for path in ("/v1/models", "/get_model_info", "/stand-in/stats", "/no-such-path"):
        assert s.get(path)[0] == 401, path
        assert s.get(path, key="wrong")[0] == 401, path
    assert s.get("/v1/models", key=KEY)[0] == 200
    assert s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})[0] == 401
    assert s.get("/health")[0] == 200
    # 0.4.3.post2 mounts /metrics on the same app, behind the key; 0.4.6 on exempts it.
    assert s.get("/metrics")[0] == (401 if metrics_need_key else 200)
    assert s.get("/metrics", key=KEY)[0] == 200
    # 0.5.23 reads the scheme case-insensitively; up to 0.5.1 the header must be exactly "Bearer <key>".
    assert s.get("/v1/models", auth=f"bearer {KEY}")[0] == (200 if release == "0.5.23" else 401)


# ---------------------------------------------------------------------------------------------------------
# Groups
# ---------------------------------------------------------------------------------------------------------


def test_a_group_is_ready_only_once_its_worker_joined_and_dies_with_its_leader(launch):
    leader_host, worker_host = loopback_host(), loopback_host()
    dist = free_port(leader_host)
    group = ["--model-path", MODEL, "--tp", "4", "--nnodes", "2", "--dist-init-addr", f"{leader_host}:{dist}"]
    leader = launch("0.4.4", *group, "--node-rank", "0", "--dist-timeout", "30", host=leader_host)
    wait_for(lambda: "waiting on" in leader.output, 10, what=leader.output)
    time.sleep(1.0)  # far past the load time: a leader alone must still not serve
    assert leader.proc.poll() is None
    assert leader.get("/health")[0] is None
    with socket.create_connection((leader_host, dist), timeout=2):
        pass  # rank 0 listens on the dist-init port meanwhile (this connection says nothing and leaves)
    worker = launch("0.4.4", *group, "--node-rank", "1", "--dist-timeout", "30", host=worker_host)
    leader.wait_status("/health", 200, 10)
    worker.wait_status("/health", 200, 10)
    assert worker.get("/health_generate")[0] == 200
    assert worker.get("/v1/models")[0] == 404  # a worker serves no API
    assert json.loads(leader.get("/v1/models")[1])["data"][0]["id"] == MODEL
    assert "2 node(s), world size 4" in leader.output
    # SGLang's workers die with their group: the leader killed, the worker exits non-zero.
    leader.proc.send_signal(signal.SIGKILL)
    assert worker.wait_exit(10) != 0
    assert "node 0 left the group" in worker.output


def test_the_leader_fails_at_dist_timeout_when_a_worker_never_comes(launch):
    host = loopback_host()
    dist = free_port(host)
    args = ["--model-path", MODEL, "--tp-size", "16", "--nnodes", "2", "--node-rank", "0"]
    leader = launch("0.4.4", *args, "--dist-init-addr", f"{host}:{dist}", "--dist-timeout", "2", host=host)
    start = time.monotonic()
    assert leader.wait_exit(15) != 0
    assert 2 <= time.monotonic() - start < 10
    assert "DistStoreError: Timed out after 3 seconds waiting for clients. 8/16 clients joined." in leader.output
    assert leader.get("/health")[0] is None


@pytest.mark.parametrize("unreachable", ["no-such-leader.invalid", "refused"])
def test_a_worker_that_cannot_reach_its_leader_exits(launch, unreachable):
    host = loopback_host()
    if unreachable == "refused":
        leader, port = loopback_host(), None
        port = free_port(leader)  # nothing listens there
    else:
        leader, port = unreachable, 20000
    args = ["--model-path", MODEL, "--tp", "2", "--nnodes", "2", "--node-rank", "1"]
    # 0.4.3.post2 has no --dist-timeout: torch's default applies, shortened here through the stand-in's env.
    worker = launch(
        "0.4.3.post2",
        *args,
        "--dist-init-addr",
        f"{leader}:{port}",
        host=host,
        env={"SGLANG_STANDIN_DEFAULT_DIST_TIMEOUT": "1.5"},
    )
    assert worker.wait_exit(15) != 0
    assert f"DistNetworkError: The client socket has timed out after 1500ms while trying to connect to ({leader}" in (
        worker.output
    )
    expected = "cannot be retrieved (gai error" if unreachable != "refused" else "Connection refused"
    assert expected in worker.output
    assert worker.get("/health")[0] is None


# ---------------------------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------------------------


def test_chat_and_completions_plain_and_streamed(launch):
    s = ready(launch("0.5.1", "--model-path", MODEL, "--served-model-name", "qwen", "--api-key", KEY), key=KEY)
    assert [m["id"] for m in s.json("/v1/models", KEY)["data"]] == ["qwen"]
    info = s.json("/get_model_info", KEY)
    assert (info["model_path"], info["is_generation"], info["weight_version"]) == (MODEL, True, "default")
    assert s.get("/model_info", KEY)[0] == 404  # 0.5.23 adds it
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    status, body = s.post("/v1/chat/completions", {"model": "qwen", "messages": messages, "max_tokens": 6}, KEY)
    assert status == 200
    plain = json.loads(body)
    assert plain["object"] == "chat.completion"
    assert plain["usage"] == {
        "prompt_tokens": len(encode(chat_prompt(messages))),
        "completion_tokens": 6,
        "total_tokens": len(encode(chat_prompt(messages))) + 6,
        "prompt_tokens_details": None,
    }
    answer = plain["choices"][0]["message"]["content"]
    assert len(answer.split()) == 6
    request = {"model": "qwen", "messages": messages, "max_tokens": 6, "stream": True}
    events = sse(s.host, s.port, "/v1/chat/completions", request | {"stream_options": {"include_usage": True}}, KEY)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(e) for _, e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == answer  # the same request answers the same, streamed or not
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6
    # Completions, streamed the way bench_serving reads them: one text piece per chunk.
    events = sse(s.host, s.port, "/v1/completions", {"prompt": "Once upon", "max_tokens": 4, "stream": True}, KEY)
    texts = [json.loads(e)["choices"][0]["text"] for _, e in events[:-1]]
    assert len(texts) == 4 and all(texts)
    status, body = s.post("/generate", {"text": "Once upon", "sampling_params": {"max_new_tokens": 4}}, KEY)
    generated = json.loads(body)
    assert status == 200 and generated["text"] == "".join(texts)
    assert generated["meta_info"]["completion_tokens"] == 4
    # Past the context length: SGLang's own refusal.
    long_prompt = {"prompt": "word " * 40000, "max_tokens": 1}
    status, body = s.post("/v1/completions", long_prompt, KEY)
    assert status == 400 and b"longer than the model's context length (32768 tokens)" in body


def test_the_metrics_are_the_releases_own_names_driven_by_requests(launch):
    for release in ("0.4.3.post2", "0.5.23"):
        s = ready(launch(release, "--model-path", MODEL, "--served-model-name", "qwen", "--enable-metrics"))
        before = s.get("/metrics")[1].decode()
        expected = SglangMetrics.of(release).kinds
        assert parse_families(before) == expected, release
        # The two releases differ exactly where the lists do (0.4.3.post2: time_per_output_token).
        assert ("sglang:time_per_output_token_seconds" in expected) is (release == "0.4.3.post2")
        prompt = "alpha beta gamma delta"
        assert s.post("/v1/completions", {"prompt": prompt, "max_tokens": 5})[0] == 200
        after = s.get("/metrics")[1].decode()
        for name, delta in (
            ("sglang:prompt_tokens_total", len(encode(prompt))),
            ("sglang:generation_tokens_total", 5),
            ("sglang:num_requests_total", 1),
            ("sglang:time_to_first_token_seconds_count", 1),
            ("sglang:e2e_request_latency_seconds_count", 1),
        ):
            assert sample(after, name) == (sample(before, name) or 0) + delta, (release, name)
        labels = 'model_name="qwen"' if release == "0.4.3.post2" else 'engine_type="unified",tp_rank="0"'
        assert any(line.startswith("sglang:num_running_reqs{") and labels in line for line in after.splitlines())


# ---------------------------------------------------------------------------------------------------------
# The cost model
# ---------------------------------------------------------------------------------------------------------


def test_requests_beyond_max_running_requests_queue(launch):
    s = ready(
        launch(
            "0.5.1",
            "--model-path",
            MODEL,
            "--enable-metrics",
            "--max-running-requests",
            "2",
            env={"SGLANG_STANDIN_DECODE_TPS": "25"},  # 40 ms a token: 10 tokens take 0.4 s
        )
    )
    latencies: list[float] = []
    gauges: list[tuple[float, float]] = []
    done = threading.Event()

    def one() -> None:
        start = time.monotonic()
        status, _ = s.post("/v1/completions", {"prompt": "count to ten", "max_tokens": 10}, timeout=30)
        assert status == 200
        latencies.append(time.monotonic() - start)

    def scrape() -> None:
        while not done.is_set():
            text = s.get("/metrics")[1].decode()
            gauges.append((sample(text, "sglang:num_running_reqs") or 0, sample(text, "sglang:num_queue_reqs") or 0))
            time.sleep(0.02)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    clients = [threading.Thread(target=one) for _ in range(6)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(30)
    done.set()
    scraper.join(5)
    assert len(latencies) == 6
    assert max(r for r, _ in gauges) == 2  # never more than --max-running-requests at once
    assert max(q for _, q in gauges) >= 3  # the rest waited, and the queue gauge showed it
    latencies.sort()
    # Three waves of two: the last pair waited for two others to finish.
    assert latencies[-1] >= latencies[0] + 0.6, latencies


def ttft(s: Standin, prompt: str) -> tuple[float, dict]:
    """Seconds to the first streamed token of a completion, and its final usage."""
    request = {"prompt": prompt, "max_tokens": 2, "stream": True, "stream_options": {"include_usage": True}}
    events = sse(s.host, s.port, "/v1/completions", request)
    first = next(t for t, e in events if e != "[DONE]" and json.loads(e)["choices"])
    return first, json.loads(events[-2][1])["usage"]


@pytest.mark.parametrize("radix", [True, False])
def test_a_prefix_cache_hit_shortens_prefill(launch, radix):
    flags = ["--enable-cache-report", "--enable-metrics"] + ([] if radix else ["--disable-radix-cache"])
    s = ready(launch("0.4.4", "--model-path", MODEL, *flags, env={"SGLANG_STANDIN_PREFILL_TPS": "2000"}))
    prompt = " ".join(f"w{i}" for i in range(1000))  # 1000 tokens: 0.5 s of prefill at 2000 tokens/s
    cold, cold_usage = ttft(s, prompt)
    warm, warm_usage = ttft(s, prompt)
    assert cold >= 0.45 and cold_usage["prompt_tokens_details"] == {"cached_tokens": 0}
    if radix:
        assert warm < cold / 4, (cold, warm)
        # Every token but the last comes from the cache: SGLang always computes the last one.
        assert warm_usage["prompt_tokens_details"] == {"cached_tokens": 999}
        assert sample(s.get("/metrics")[1].decode(), "sglang:cache_hit_rate") == pytest.approx(0.999)
        # A prompt sharing the first 900 tokens hits those.
        _, shared = ttft(s, " ".join(f"w{i}" for i in range(900)) + " other" * 100)
        assert shared["prompt_tokens_details"] == {"cached_tokens": 900}
        # /flush_cache empties it (0.4.4 takes POST only, as its route is declared).
        assert s.get("/flush_cache")[0] == 405
        assert s.post("/flush_cache", None)[0] == 200
        again, again_usage = ttft(s, prompt)
        assert again >= 0.45 and again_usage["prompt_tokens_details"] == {"cached_tokens": 0}
    else:
        assert warm >= 0.45 and warm_usage["prompt_tokens_details"] == {"cached_tokens": 0}


def test_the_stats_say_which_prefixes_a_replica_served(launch):
    s = ready(launch("0.4.4", "--model-path", MODEL))
    system = {"role": "system", "content": "You are a long shared system prompt. " * 10}
    for question in ("one?", "two?", "three?"):
        messages = [system, {"role": "user", "content": question}]
        assert s.post("/v1/chat/completions", {"messages": messages, "max_tokens": 1})[0] == 200
    stats = s.json("/stand-in/stats")
    digest = prefix_digest(encode(chat_prompt([system, {"role": "user", "content": "x"}])), stats["prefix_tokens"])
    assert stats["prefixes"][digest]["requests"] == 3  # the warmup request is not among them
    assert stats["requests"] == 3 and stats["cached_tokens"] > 0


# ---------------------------------------------------------------------------------------------------------
# PD
# ---------------------------------------------------------------------------------------------------------


def labels(revision: str) -> dict:
    return {"SGLANG_STANDIN_POD_LABELS": json.dumps({"sglang-platform.io/pd-revision": revision})}


def through_the_gateway(prefill: Standin, decode: Standin, bootstrap: int, room: int, body: dict):
    """What sglang-router's PD mode does with a request: the same body, with the prefill server's bootstrap
    host and port and one room, to both servers at once; the client gets decode's answer."""
    body = body | {"bootstrap_host": prefill.host, "bootstrap_port": bootstrap, "bootstrap_room": room}
    answers: dict[str, tuple] = {}
    start = time.monotonic()

    def to_prefill() -> None:
        answers["prefill"] = (*prefill.post("/v1/chat/completions", body, KEY, timeout=30), time.monotonic() - start)

    thread = threading.Thread(target=to_prefill)
    thread.start()
    answers["decode"] = (*decode.post("/v1/chat/completions", body, KEY, timeout=30), time.monotonic() - start)
    thread.join(30)
    return answers["prefill"], answers["decode"]


def test_pd_pairs_of_one_revision_serve_and_no_other_pair_does(launch):
    env = {"SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT": "3", "SGLANG_DISAGGREGATION_WAITING_TIMEOUT": "3"}
    bootstrap_host = loopback_host()
    bootstrap = free_port(bootstrap_host)
    common = ["--model-path", MODEL, "--served-model-name", "r1", "--api-key", KEY, "--enable-metrics"]
    prefill = launch(
        "0.5.23",
        *common,
        "--disaggregation-mode",
        "prefill",
        "--disaggregation-bootstrap-port",
        str(bootstrap),
        host=bootstrap_host,
        env=env | labels("rev-a") | {"POD_NAME": "r1-prefill-0"},
    )
    decode = launch(
        "0.5.23", *common, "--disaggregation-mode", "decode", env=env | labels("rev-a") | {"POD_NAME": "r1-decode-0"}
    )
    stale = launch(
        "0.5.23", *common, "--disaggregation-mode", "decode", env=env | labels("rev-b") | {"POD_NAME": "r1-decode-old"}
    )
    for s in (prefill, decode, stale):
        ready(s, key=KEY)
    body = {"model": "r1", "messages": [{"role": "user", "content": "What is PD?"}], "max_tokens": 5}

    (p_status, p_body, _), (d_status, d_body, _) = through_the_gateway(prefill, decode, bootstrap, 7, body)
    assert (p_status, d_status) == (200, 200), (p_body, d_body)
    assert json.loads(p_body)["usage"]["completion_tokens"] == 1  # prefill makes the first token only
    answer = json.loads(d_body)
    assert answer["usage"]["completion_tokens"] == 5
    assert json.loads(decode.get("/stand-in/stats", KEY)[1])["pd"]["served_with"] == {"r1-prefill-0@rev-a": 1}
    assert json.loads(prefill.get("/stand-in/stats", KEY)[1])["pd"]["served_with"] == {"r1-decode-0@rev-a": 1}

    # Straight to decode, not through a prefill: refused, as SGLang refuses a request without a room.
    status, refused = decode.post("/v1/chat/completions", body, KEY)
    assert status == 400 and b"Disaggregated request received without bootstrap room id" in refused

    # A decode of another revision: both halves fail at once (not after the bootstrap timeout), nothing served.
    (p_status, p_body, p_time), (d_status, d_body, _) = through_the_gateway(prefill, stale, bootstrap, 8, body)
    assert (p_status, d_status) == (500, 500)
    assert b"different revisions do not pair" in d_body and b"different revisions do not pair" in p_body
    assert p_time < 2.5
    assert json.loads(stale.get("/stand-in/stats", KEY)[1])["pd"]["served_with"] == {}
    failed = sample(stale.get("/metrics")[1].decode(), "sglang:num_bootstrap_failed_reqs_total")
    assert failed == 1

    # A prefill whose decode never comes gives up after SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT.
    alone = body | {"bootstrap_host": prefill.host, "bootstrap_port": bootstrap, "bootstrap_room": 9}
    start = time.monotonic()
    status, timed_out = prefill.post("/v1/chat/completions", alone, KEY)
    assert status == 500 and b"timed out after" in timed_out and b"KVPoll.Bootstrapping" in timed_out
    assert 2.5 < time.monotonic() - start < 8


# ---------------------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------------------


def test_fault_hooks_hang_the_scheduler_and_exit(launch):
    s = ready(launch("0.4.4", "--model-path", MODEL, env={"SGLANG_HEALTH_CHECK_TIMEOUT": "2"}))
    assert s.get("/health_generate")[0] == 200
    assert s.post("/stand-in/fault", {"fault": "hang"})[0] == 200
    # 0.4.4's /health only says the HTTP server is up; /health_generate sees the scheduler make no progress.
    assert s.get("/health")[0] == 200
    start = time.monotonic()
    assert s.get("/health_generate")[0] == 503
    assert 1.5 < time.monotonic() - start < 5
    assert s.post("/stand-in/fault", {"fault": "clear"})[0] == 200
    assert s.get("/health_generate")[0] == 200
    assert s.post("/stand-in/fault", {"fault": "exit", "code": 7})[0] == 200
    assert s.wait_exit(5) == 7


# ---------------------------------------------------------------------------------------------------------
# The overlay: the pods' own commands
# ---------------------------------------------------------------------------------------------------------


def test_the_overlay_runs_the_stand_in_of_its_release(launch, tmp_path):
    overlay = build_overlay("0.4.4", tmp_path / "overlay-0.4.4")
    host = loopback_host()
    port = free_port(host)
    command = ["python3", "-m", "sglang.launch_server", "--model-path", MODEL, "--served-model-name", "qwen"]
    s = launch(
        "",  # the overlay fixes the release; the environment names none
        host=host,
        port=port,
        command=[*command, "--host", host, "--port", str(port)],
        env={"PYTHONPATH": f"{overlay}{os.pathsep}{ROOT}", "SGLANG_STANDIN_RELEASE": ""},
    )
    ready(s)
    assert s.json("/get_server_info")["version"] == "0.4.4"
    assert s.json("/v1/models")["data"][0]["id"] == "qwen"
    old = build_overlay("0.4.3.post2", tmp_path / "overlay-0.4.3.post2")
    refused = launch(
        "",
        command=[*command, "--dist-timeout", "60"],
        env={"PYTHONPATH": f"{old}{os.pathsep}{ROOT}", "SGLANG_STANDIN_RELEASE": ""},
    )
    assert refused.wait_exit(10) == 2
    assert "launch_server.py: error: unrecognized arguments: --dist-timeout 60" in refused.output
    # 0.4.3.post2 ships no compile_deep_gemm: python -m finds no such module, as in its image.
    missing = launch("", command=["python3", "-m", "sglang.compile_deep_gemm", "--model-path", MODEL],
                     env={"PYTHONPATH": f"{old}{os.pathsep}{ROOT}"})  # fmt: skip
    assert missing.wait_exit(10) == 1
    assert "No module named sglang.compile_deep_gemm" in missing.output
    with pytest.raises(ValueError, match="no flag table"):
        build_overlay("0.3.0", tmp_path / "nope")


def test_deep_gemm_precompile_fills_the_cache_the_server_then_uses(launch, tmp_path):
    """The platform's DeepGEMM step (pod_scripts/deep_gemm_precompile.py) with pd-h200's exact compile
    command: the stand-in compiles into the release's cache variable, exits 0, the step writes its marker; the
    server then starts without the JIT time a missing cache costs."""
    result = _cached_run("pd-h200", True)
    lws = result.k8s_object("LeaderWorkerSet", "deepseek-r1-decode")
    init = {c["name"]: c for c in lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["initContainers"]}
    compile_args = init["compile-deep-gemm"]["args"]
    command = compile_args[compile_args.index("--") + 1 :]
    assert command[:3] == ["python3", "-m", "sglang.compile_deep_gemm"]
    overlay = build_overlay("0.5.23", tmp_path / "overlay")
    cache = tmp_path / "deep-gemm"
    env = {"PYTHONPATH": f"{overlay}{os.pathsep}{ROOT}", "SGLANG_DG_CACHE_DIR": str(cache)}
    script = ROOT / "pod_scripts" / "deep_gemm_precompile.py"
    step = launch(
        "",
        command=[sys.executable, str(script), "--cache", str(cache), "--key", "k1", "--", *command],
        env=env | {"SGLANG_STANDIN_COMPILE_SECONDS": "0.2"},
    )
    assert step.wait_exit(20) == 0, step.output
    assert (cache / ".sglang-platform" / "k1-unknown-gpu.done").exists()  # no GPU here: nvidia-smi is absent
    kernels = list(cache.glob("cache/kernel.sglang-standin.*/kernel.json"))
    assert len(kernels) == 1
    # The decode server of the same configuration finds its kernels: no JIT wait (it would be 30 s).
    serve = next(c for c in lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"])
    args = [a.replace("$(SGLANG_API_KEY)", KEY) for a in serve["args"]]
    host = loopback_host()
    port = free_port(host)
    args[args.index("--host") + 1], args[args.index("--port") + 1] = host, str(port)
    s = launch(
        "", command=["python3", "-m", "sglang.launch_server", *args], host=host, port=port,
        env=env | {"SGLANG_STANDIN_DEEP_GEMM_JIT_SECONDS": "30"},
    )  # fmt: skip
    ready(s, key=KEY, timeout=15)
    # A compile command the release refuses fails the step, which then writes no marker.
    bad = launch(
        "",
        command=[sys.executable, str(script), "--cache", str(cache), "--key", "k2", "--", *command, "--no-such"],
        env=env,
    )
    assert bad.wait_exit(20) == 2
    assert "compile_deep_gemm.py: error: unrecognized arguments: --no-such" in bad.output
    assert not (cache / ".sglang-platform" / "k2-unknown-gpu.done").exists()


# ---------------------------------------------------------------------------------------------------------
# The release's real bench_serving through the overlay
# ---------------------------------------------------------------------------------------------------------


def test_the_releases_own_bench_serving_runs_against_the_stand_in(launch, tmp_path):
    release = "0.4.3.post2"
    bench = ROOT / ".ci" / ".bench-venv"
    wheel_dir = bench / "sglang" / release
    python = bench / "bin" / "python"
    if not python.exists() or not (wheel_dir / "sglang" / "bench_serving.py").exists():
        unavailable(f"bench_serving of sglang {release} is not installed (bash .ci/run installs it into {bench})")
    spec = importlib.util.spec_from_file_location("sb", ROOT / "pod_scripts" / "serving_benchmark.py")
    assert spec is not None and spec.loader is not None
    sb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sb)
    from test_benchmark import tokenizer_dir

    s = ready(launch(release, "--model-path", MODEL, "--served-model-name", "qwen", "--api-key", KEY), key=KEY)
    overlay = build_overlay(release, tmp_path / "overlay", real_sglang=wheel_dir)
    dataset = tmp_path / "dataset.json"
    sb.write_random_dataset(dataset, 8, 1)
    out = tmp_path / "result.jsonl"
    args = [
        "--backend", "sglang-oai", "--base-url", f"http://{s.host}:{s.port}", "--model", "qwen",
        "--tokenizer", str(tokenizer_dir(tmp_path / "tok")), "--dataset-name", "random",
        "--dataset-path", str(dataset), "--num-prompts", "8", "--random-input-len", "16",
        "--random-output-len", "4", "--random-range-ratio", "1", "--request-rate", "inf",
        "--max-concurrency", "4", "--seed", "1", "--output-file", str(out), "--disable-tqdm",
    ]  # fmt: skip
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(overlay),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OPENAI_API_KEY": KEY,
    }
    run = subprocess.run(
        [str(python), "-m", "sglang.bench_serving", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(out.read_text().splitlines()[-1])
    assert result["completed"] == 8
    # A first token came streamed for every request (bench_serving times it only on a chunk with text), and the
    # streamed text, tokenized again with the model's tokenizer, is the 4 words a request asked for.
    assert result["mean_ttft_ms"] > 0
    assert result["total_output_tokens_retokenized"] == 8 * 4
    stats = s.json("/stand-in/stats", KEY)
    # bench_serving's one test request first, then the 8; each generated the 4 tokens asked for.
    assert (stats["requests"], stats["generation_tokens"]) == (9, 9 * 4)
