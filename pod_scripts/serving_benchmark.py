#!/usr/bin/env python3
"""Benchmark an SGLang group with SGLang's own bench_serving once it serves its current revision, judge the
result against the stack's SLO, and publish it in a ConfigMap.

Shipped by sglang-platform in a ConfigMap; runs in the group's own SGLang image (so ``python -m
sglang.bench_serving`` is the release the group serves), standard library only.

  serving_benchmark.py -- <bench_serving arguments>

1. With BENCH_WEIGHTS_DIR set (a ModelCache stages the weights), waits until that directory's completion
   marker names BENCH_WEIGHTS_IDENTITY, as the group's wait-for-weights gate does: on a host path this node's
   copy, from which it reads the tokenizer. Then waits until the LeaderWorkerSet BENCH_GROUP (a disaggregated
   service: each of BENCH_LEADERWORKERSETS, its prefill and decode roles) has every group updated and ready
   (its status), then until BENCH_BASE_URL/v1/models lists BENCH_MODEL (with the API key): the benchmark
   measures the revision the stack deploys, not the one it replaces. All three waits share one clock,
   READY_TIMEOUT_SECONDS from the start, so the script (not the Job's activeDeadlineSeconds) ends a wait that
   is too long, and says why.
2. For ``--dataset-name random``, writes the prompts' source text to ``--dataset-path`` (bench_serving would
   otherwise download ShareGPT, and the Job has no egress): one entry per prompt, seeded by ``--seed``.
3. Runs ``python -m sglang.bench_serving`` with exactly the arguments it was given, stopping it after
   BENCH_RUN_TIMEOUT_SECONDS, reads the JSON line it appends to ``--output-file``, and compares TTFT, ITL and
   end-to-end p99 and the request throughput with BENCH_SLO; every request must succeed.
4. Writes ``result.json`` (the numbers and the verdict), ``summary.txt``, ``passed`` and ``status`` (waiting,
   running, done or error, with a ``message``) into the ConfigMap BENCH_CONFIGMAP, and prints the summary.
   Exit 0 once a benchmark ran, passed or not (a failed SLO is a result, not a reason to run again); 1 when
   it could not run. Terminated (SIGTERM: the Job's deadline passed, or the Job was deleted), it writes
   that as the error, unless the ConfigMap already holds another revision (a newer Job's).

Environment: BENCH_BASE_URL, BENCH_MODEL, BENCH_SLO (JSON: ttftP99Seconds, minRequestThroughput,
itlP99Seconds, e2eP99Seconds), BENCH_REVISION, BENCH_GROUP, BENCH_LEADERWORKERSETS, BENCH_NAMESPACE,
BENCH_CONFIGMAP, BENCH_WEIGHTS_DIR, BENCH_WEIGHTS_IDENTITY (JSON), BENCH_WEIGHTS_HINT, BENCH_NODE,
READY_TIMEOUT_SECONDS, BENCH_RUN_TIMEOUT_SECONDS, POLL_SECONDS, OPENAI_API_KEY, KUBERNETES_API_URL (default:
the in-cluster API), SERVICEACCOUNT_DIR, BENCH_PYTHON.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import random
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

SERVICEACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
# The completion marker download_model.py writes last, after verifying the files (the same name there).
WEIGHTS_MARKER = ".sglang-platform-complete.json"
# Words the random dataset's prompts are made of: any text works (bench_serving cuts or repeats its tokens to
# the requested length); distinct prompts keep the prefix cache from answering them all.
WORDS = (
    "the a of and to in is it that for on with as was by at be this from or have an they which one you were her "
    "all she there would their we him been has when who will more no if out so said what up its about into than "
    "them can only other new some could time these two may then do first any my now such like our over man me "
    "even most made after also did many before must through back years where much your way well down should "
    "because each just those people how too little state good very make world still own see men work long get "
    "here between both life being under never day same another know while last might us great old year off come "
    "since against go came right used take three"
).split()


class BenchmarkError(Exception):
    pass


class StoppedError(BenchmarkError):
    """SIGTERM: the kubelet stops the pod (the Job's activeDeadlineSeconds passed, or the Job was deleted)."""


def stop(signum: int, frame: object) -> None:
    # As PID 1 the script would ignore SIGTERM and be killed after the grace period without a word; raised
    # here, it ends the wait or the run (subprocess.run kills bench_serving on the way out) and is published.
    raise StoppedError(
        "stopped by SIGTERM: the Job's activeDeadlineSeconds passed (the pod waited too long to be scheduled or "
        "to pull its image) or the Job was deleted"
    )


def log(message: str) -> None:
    print(f"{now()} {message}", flush=True)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017 (3.10)


def arg(args: Sequence[str], flag: str, default: str | None = None) -> str | None:
    """The value of ``flag`` in an argument list (``--flag value`` or ``--flag=value``)."""
    for i, word in enumerate(args):
        if word == flag and i + 1 < len(args):
            return args[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return default


# --- the Kubernetes API (the Job's ServiceAccount: get its LeaderWorkerSet, patch its ConfigMap) -----------


class KubeApi:
    def __init__(self, env: Mapping[str, str]):
        sa = Path(env.get("SERVICEACCOUNT_DIR", SERVICEACCOUNT))
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
        self.url = env.get("KUBERNETES_API_URL") or f"https://{host}:{port}"
        self.token = (sa / "token").read_text().strip() if (sa / "token").exists() else ""
        ca = sa / "ca.crt"
        self.context = ssl.create_default_context(cafile=str(ca)) if ca.exists() else None

    def request(self, method: str, path: str, body: dict | None = None, content_type: str = "application/json"):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=30, context=self.context) as response:
            return json.loads(response.read() or b"{}")

    def leader_worker_set(self, namespace: str, name: str) -> dict:
        return self.request("GET", f"/apis/leaderworkerset.x-k8s.io/v1/namespaces/{namespace}/leaderworkersets/{name}")

    def publish(
        self, namespace: str, name: str, data: Mapping[str, str | None], if_revision: str | None = None
    ) -> bool:
        """Merge ``data`` into the ConfigMap. With ``if_revision``, only while its ``revision`` is that one: the
        patch carries the resourceVersion read, so a write by another Job in between makes it fail (409)."""
        path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        body: dict = {"data": dict(data)}
        if if_revision is not None:
            current = self.request("GET", path)
            if (current.get("data") or {}).get("revision") != if_revision:
                return False
            body["metadata"] = {"resourceVersion": current.get("metadata", {}).get("resourceVersion")}
        try:
            self.request("PATCH", path, body, "application/merge-patch+json")
        except urllib.error.HTTPError as error:
            if if_revision is not None and error.code == 409:
                return False
            raise
        return True


def group_serving(lws: Mapping) -> tuple[bool, str]:
    """Whether every group of a LeaderWorkerSet runs its current template and is ready, and what it is at."""
    meta, spec, status = lws.get("metadata", {}), lws.get("spec", {}), lws.get("status", {})
    wanted = int(spec.get("replicas", 1))
    counts = {k: int(status.get(k) or 0) for k in ("replicas", "updatedReplicas", "readyReplicas")}
    observed = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    serving = observed and counts == {"replicas": wanted, "updatedReplicas": wanted, "readyReplicas": wanted}
    state = f"{counts['readyReplicas']} of {wanted} groups ready, {counts['updatedReplicas']} updated"
    return serving, state + ("" if observed else ", spec change not yet observed")


def model_listed(base_url: str, model: str, key: str | None) -> tuple[bool, str]:
    req = urllib.request.Request(base_url.rstrip("/") + "/v1/models")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            ids = [m.get("id") for m in json.loads(response.read()).get("data", [])]
    except (urllib.error.URLError, OSError, ValueError) as error:
        return False, f"{base_url}/v1/models: {error}"
    return model in ids, f"{base_url}/v1/models lists {ids}"


def lws_serving(api: KubeApi, namespace: str, name: str) -> tuple[bool, str]:
    try:
        ready, state = group_serving(api.leader_worker_set(namespace, name))
    except urllib.error.HTTPError as error:
        return False, f"leaderworkerset {name}: HTTP {error.code}"
    return ready, f"leaderworkerset {name}: {state}"


def weights_state(model_dir: Path, identity: Mapping[str, str]) -> tuple[bool, str]:
    """Whether the directory's completion marker names the identity (download_model.py's marker_matches), and
    what it holds."""
    try:
        marker = json.loads((model_dir / WEIGHTS_MARKER).read_text())
    except (OSError, ValueError):
        return False, f"{model_dir} has no completion marker yet"
    if isinstance(marker, dict) and all(marker.get(k) == v for k, v in identity.items()):
        return True, f"{model_dir} holds {dict(identity)}"
    return False, f"{model_dir} holds {marker}"


def ready_deadline(env: Mapping[str, str], clock: Callable[[], float] = time.monotonic) -> float:
    """When the waits for the weights and for the group give up: one clock for both."""
    return clock() + float(env.get("READY_TIMEOUT_SECONDS", "14400"))


def wait_for_weights(
    env: Mapping[str, str],
    publish: Callable[..., None],
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Wait, as the group's wait-for-weights gate does, for BENCH_WEIGHTS_DIR to hold BENCH_WEIGHTS_IDENTITY
    (nothing to wait for without it: no ModelCache, the weights are the operator's). Whether it waited."""
    if not env.get("BENCH_WEIGHTS_DIR"):
        return False
    model_dir, identity = Path(env["BENCH_WEIGHTS_DIR"]), json.loads(env.get("BENCH_WEIGHTS_IDENTITY") or "{}")
    poll = float(env.get("POLL_SECONDS", "15"))
    where = f" on node {env['BENCH_NODE']}" if env.get("BENCH_NODE") else ""
    hint = f"; {env['BENCH_WEIGHTS_HINT']}" if env.get("BENCH_WEIGHTS_HINT") else ""
    last = ""
    while True:
        complete, state = weights_state(model_dir, identity)
        if complete:
            log(f"weights complete: {state}")
            return bool(last)
        if state != last:
            log(f"waiting for the weights{where}: {state}{hint}")
            publish("waiting", message=f"waiting for the weights{where}: {state}{hint}")
            last = state
        if clock() >= deadline:
            raise BenchmarkError(
                f"the weights were not complete{where} after {env.get('READY_TIMEOUT_SECONDS', '14400')} s: "
                f"{state}{hint}"
            )
        sleep(poll)


def wait_until_serving(
    env: Mapping[str, str],
    api: KubeApi | None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    deadline: float | None = None,
) -> None:
    deadline = ready_deadline(env, clock) if deadline is None else deadline
    poll = float(env.get("POLL_SECONDS", "15"))
    namespace = env.get("BENCH_NAMESPACE", "")
    # A disaggregated service: both roles' LeaderWorkerSets; otherwise the group's own.
    waited = [n for n in (env.get("BENCH_LEADERWORKERSETS") or env.get("BENCH_GROUP") or "").split(",") if n]
    last = ""
    while True:
        ready, state = True, ""
        if api is not None:
            for name in waited:
                ready, state = lws_serving(api, namespace, name)
                if not ready:
                    break
        if ready:
            ready, state = model_listed(env["BENCH_BASE_URL"], env["BENCH_MODEL"], env.get("OPENAI_API_KEY"))
        if ready:
            log(f"serving: {state}")
            return
        if state != last:
            log(f"waiting: {state}")
            last = state
        if clock() >= deadline:
            raise BenchmarkError(f"not serving after {env.get('READY_TIMEOUT_SECONDS', '14400')} s: {state}")
        sleep(poll)


# --- the run ----------------------------------------------------------------------------------------------


def write_random_dataset(path: Path, entries: int, seed: int) -> None:
    """ShareGPT-shaped prompts for ``--dataset-name random``: bench_serving tokenizes each with the model's
    tokenizer and cuts or repeats it to the requested input length, one prompt per entry."""
    rng = random.Random(seed)
    rows = [
        {
            "id": str(i),
            "conversations": [
                {"from": "human", "value": " ".join(rng.choice(WORDS) for _ in range(96))},
                {"from": "gpt", "value": "ok"},
            ],
        }
        for i in range(entries)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))


def run_bench(args: Sequence[str], python: str, timeout: float | None = None) -> None:
    cmd = [python, "-m", "sglang.bench_serving", *args]
    log("running: " + " ".join(cmd))
    try:
        # On the timeout subprocess.run kills bench_serving: the script, not the Job's deadline, ends the run.
        proc = subprocess.run(cmd, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchmarkError(
            f"bench_serving did not finish within {timeout:g} s and was stopped (its output is above)"
        ) from None
    if proc.returncode != 0:
        raise BenchmarkError(f"bench_serving exited with {proc.returncode} (its output is above)")


def read_result(path: Path) -> dict:
    """The JSON line bench_serving appended to its ``--output-file`` (the last one)."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError as error:
        raise BenchmarkError(f"bench_serving wrote no result to {path}: {error}") from None
    if not lines:
        raise BenchmarkError(f"bench_serving wrote no result to {path}")
    try:
        return json.loads(lines[-1])  # Infinity for an unlimited request rate is read as float('inf')
    except ValueError as error:
        raise BenchmarkError(f"{path}: not a JSON line: {error}") from None


def _num(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _stats(raw: Mapping, name: str) -> dict[str, float | None]:
    """mean/median/p90/p95/p99 of a latency in ms, as the release reports them (p90/p95 only in 0.5.x)."""
    out = {}
    for stat in ("mean", "median", "p90", "p95", "p99"):
        key = f"{stat}_{name}_ms"
        if key in raw:
            out[stat] = _num(raw[key])
    return out


def summarize(raw: Mapping, num_prompts: int, slo: Mapping, context: Mapping[str, str]) -> dict:
    """bench_serving's result as the platform publishes it, with the verdict against the SLO."""
    completed = int(raw.get("completed") or 0)
    rate = raw.get("request_rate")
    result: dict = dict(context)
    result["workload"] = {
        "backend": raw.get("backend"),
        "dataset": raw.get("dataset_name"),
        "numPrompts": num_prompts,
        "randomInputLen": raw.get("random_input_len"),
        "randomOutputLen": raw.get("random_output_len"),
        "randomRangeRatio": raw.get("random_range_ratio"),
        "requestRate": "inf" if rate is None or math.isinf(float(rate)) else float(rate),
        "maxConcurrency": raw.get("max_concurrency"),
    }
    result |= {
        "completed": completed,
        "failed": num_prompts - completed,
        "durationSeconds": _num(raw.get("duration")),
        "throughput": {
            "requestsPerSecond": _num(raw.get("request_throughput")),
            "inputTokensPerSecond": _num(raw.get("input_throughput")),
            "outputTokensPerSecond": _num(raw.get("output_throughput")),
        },
        "ttftMs": _stats(raw, "ttft"),
        "itlMs": _stats(raw, "itl"),
        "tpotMs": _stats(raw, "tpot"),
        "e2eLatencyMs": _stats(raw, "e2e_latency"),
        "concurrency": _num(raw.get("concurrency")),
    }
    checks = [
        {
            "name": "allRequestsSucceeded",
            "target": num_prompts,
            "measured": completed,
            "passed": completed == num_prompts,
        }
    ]
    for key, stats in (("ttftP99Seconds", "ttftMs"), ("itlP99Seconds", "itlMs"), ("e2eP99Seconds", "e2eLatencyMs")):
        target = slo.get(key)
        if target is None:
            continue
        p99 = result[stats].get("p99")
        measured = round(p99 / 1000, 6) if p99 is not None else None
        checks.append(
            {"name": key, "target": target, "measured": measured, "passed": measured is not None and measured <= target}
        )
    if slo.get("minRequestThroughput") is not None:
        target, measured = slo["minRequestThroughput"], result["throughput"]["requestsPerSecond"]
        checks.append(
            {
                "name": "minRequestThroughput",
                "target": target,
                "measured": measured,
                "passed": measured is not None and measured >= target,
            }
        )
    result["slo"] = {"passed": all(c["passed"] for c in checks), "checks": checks}
    result["passed"] = result["slo"]["passed"]
    return result


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


CHECK_TEXT = {
    "allRequestsSucceeded": ("requests succeeded", "{measured} of {target}"),
    "ttftP99Seconds": ("TTFT p99", "{measured_ms} ms <= {target_ms} ms"),
    "itlP99Seconds": ("ITL p99", "{measured_ms} ms <= {target_ms} ms"),
    "e2eP99Seconds": ("end-to-end p99", "{measured_ms} ms <= {target_ms} ms"),
    "minRequestThroughput": ("request throughput", "{measured:.1f} req/s >= {target:g} req/s"),
}


def summary_text(result: Mapping) -> str:
    """The verdict and the numbers, as the Job's log and the ConfigMap's summary.txt show them."""
    w, t = result["workload"], result["throughput"]
    verdict = "PASSED" if result["passed"] else "FAILED"
    lines = [
        f"SLO {verdict}: {result.get('group', '')} revision {result.get('revision', '')} "
        f"({result.get('finishedAt', '')}, bench_serving {result.get('benchServing') or 'unknown'})",
        f"  workload  {w['numPrompts']} requests, {w['dataset']} {w['randomInputLen']}/{w['randomOutputLen']} tokens, "
        f"rate {w['requestRate']}, max concurrency {w['maxConcurrency'] or 'none'}, "
        f"{(result['durationSeconds'] or 0):.1f} s",
        f"  throughput  {t['requestsPerSecond'] or 0:.1f} req/s, {t['outputTokensPerSecond'] or 0:.0f} output tok/s",
        "  latency (ms)    mean   median      p99",
    ]
    for label, key in (("TTFT", "ttftMs"), ("ITL", "itlMs"), ("TPOT", "tpotMs"), ("end-to-end", "e2eLatencyMs")):
        s = result[key]
        lines.append(f"    {label:<11}{_ms(s.get('mean')):>8} {_ms(s.get('median')):>8} {_ms(s.get('p99')):>8}")
    for check in result["slo"]["checks"]:
        label, template = CHECK_TEXT[check["name"]]
        measured, target = check["measured"], check["target"]
        text = template.format(
            measured=measured if measured is not None else float("nan"),
            target=target,
            measured_ms=_ms(measured * 1000 if measured is not None else None),
            target_ms=_ms(target * 1000),
        )
        lines.append(f"  {'ok  ' if check['passed'] else 'FAIL'}  {label}: {text}")
    return "\n".join(lines) + "\n"


def bench_serving_version(python: str) -> str | None:
    proc = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('sglang'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def main(argv: list[str], env: Mapping[str, str] = os.environ) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    args = argv[argv.index("--") + 1 :]
    namespace, configmap = env.get("BENCH_NAMESPACE", ""), env.get("BENCH_CONFIGMAP", "")
    api = KubeApi(env) if configmap or env.get("BENCH_GROUP") else None
    python = env.get("BENCH_PYTHON") or sys.executable
    context = {
        "group": env.get("BENCH_GROUP", ""),
        "model": env.get("BENCH_MODEL", ""),
        "revision": env.get("BENCH_REVISION", ""),
        "target": env.get("BENCH_BASE_URL", ""),
    }

    def publish(status: str, only_if_ours: bool = False, /, **data: str | None) -> None:
        if api is None or not configmap:
            return
        revision = context["revision"]
        try:
            written = api.publish(
                namespace,
                configmap,
                {"status": status, "revision": revision, **data},
                if_revision=revision if only_if_ours else None,
            )
        except (urllib.error.URLError, OSError, ValueError) as error:  # the result is in the log all the same
            log(f"could not write ConfigMap {namespace}/{configmap}: {error}")
            return
        if not written:
            log(f"ConfigMap {namespace}/{configmap} holds another revision now: not writing {status}")

    signal.signal(signal.SIGTERM, stop)
    try:
        # A result of the revision before is not this revision's: it goes (null removes a key in a merge patch).
        serving_message = f"waiting for {context['group'] or context['target']} to serve its revision"
        publish(
            "waiting",
            message=serving_message,
            passed=None,
            startedAt=None,
            **{"result.json": None, "summary.txt": None},
        )
        deadline = ready_deadline(env)
        if wait_for_weights(env, publish, deadline):
            publish("waiting", message=serving_message)
        wait_until_serving(env, api, deadline=deadline)
        output = Path(arg(args, "--output-file") or "result.jsonl")
        output.unlink(missing_ok=True)
        num_prompts = int(arg(args, "--num-prompts", "1000") or 1000)
        if arg(args, "--dataset-name") == "random":
            write_random_dataset(
                Path(arg(args, "--dataset-path") or "dataset.json"), num_prompts, int(arg(args, "--seed", "1") or 1)
            )
        started = now()
        publish("running", startedAt=started, message=None)
        run_timeout = env.get("BENCH_RUN_TIMEOUT_SECONDS")
        run_bench(args, python, float(run_timeout) if run_timeout else None)
        slo = json.loads(env.get("BENCH_SLO") or "{}")
        context |= {"startedAt": started, "finishedAt": now(), "benchServing": bench_serving_version(python) or ""}
        result = summarize(read_result(output), num_prompts, slo, context)
    except BenchmarkError as error:
        # Whatever ends the run, its last word is written whole: a SIGTERM now would cut the write short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log(f"error: {error}")
        # A SIGTERM may come from a newer Job replacing this one, whose pod already writes the ConfigMap.
        publish("error", isinstance(error, StoppedError), message=str(error))
        return 1
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    text = summary_text(result)
    print(text, end="", flush=True)
    publish(
        "done",
        passed=str(result["passed"]).lower(),
        **{"result.json": json.dumps(result, indent=2, sort_keys=True) + "\n", "summary.txt": text},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
