#!/usr/bin/env python3
"""Prove a deployed model serves: list its models, then one chat completion, with the stack's API key.

    python tools/smoke_test.py --namespace deepseek --service deepseek-r1-gateway --key-secret deepseek-r1-api-key
    python tools/smoke_test.py --namespace deepseek --service deepseek-r1-api --key-secret deepseek-r1-api-key
    python tools/smoke_test.py --base-url http://localhost:8000/v1 --api-key "$KEY"   # already reachable

With --namespace it port-forwards the Service (the model's gateway, or a colocated group's own) with kubectl
(your kubeconfig) and reads the key from the group's Secret; the key is sent in a header and never printed. The
Service of a disaggregated service's role is refused: only the gateway serves that model. Exits non-zero,
saying why, on any failure. Only the standard library: it runs wherever kubectl does.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator


class SmokeError(Exception):
    pass


def _request(url: str, api_key: str | None, body: dict | None = None, timeout: float = 600) -> dict:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        hint = " (wrong or missing API key?)" if error.code == 401 else ""
        raise SmokeError(f"{req.get_method()} {url}: HTTP {error.code}{hint}: {error.read()[:300]!r}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise SmokeError(f"{req.get_method()} {url}: {error}") from None


def smoke(base_url: str, api_key: str | None, prompt: str, max_tokens: int) -> tuple[str, str]:
    """(served model, answer) of one completion; raises SmokeError with the reason otherwise."""
    base = base_url.rstrip("/")
    models = [m.get("id") for m in _request(f"{base}/models", api_key).get("data", [])]
    if not models:
        raise SmokeError(f"GET {base}/models lists no model")
    body = {"model": models[0], "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    reply = _request(f"{base}/chat/completions", api_key, body)
    try:
        answer = reply["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise SmokeError(f"unexpected completion: {json.dumps(reply)[:300]}") from None
    if not answer.strip() and not reply["choices"][0]["message"].get("reasoning_content"):
        raise SmokeError("the completion is empty")
    return models[0], answer


# The labels render/sglang_pods.py puts on a disaggregated role's Service (PD_SERVICE_LABEL, PD_ROLE_LABEL);
# repeated here to keep this script free of the package's dependencies.
PD_SERVICE_LABEL = "sglang-platform.io/pd-service"
PD_ROLE_LABEL = "sglang-platform.io/pd-role"


def refuse_role_service(namespace: str, service: str) -> None:
    """A prefill or decode server answers a completion only with the bootstrap fields the gateway adds to pair
    it with the other role: the smoke test would fail for a reason that is not a fault."""
    labels = json.loads(
        _kubectl("-n", namespace, "get", "service", service, "-o", "jsonpath={.metadata.labels}") or "{}"
    )
    role = labels.get(PD_ROLE_LABEL)
    if role is not None:
        owner = labels.get(PD_SERVICE_LABEL, "?")
        raise SmokeError(
            f"svc/{service} is the {role} role of disaggregated service {owner!r}: it answers health and metrics "
            f"only; test the model through its gateway (--service {owner}-gateway)"
        )


def _kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True).stdout


def secret_key(namespace: str, secret: str, key: str = "api-key") -> str:
    raw = _kubectl("-n", namespace, "get", "secret", secret, "-o", f"jsonpath={{.data.{key}}}")
    return base64.b64decode(raw).decode()


@contextlib.contextmanager
def port_forward(namespace: str, service: str, port: int) -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
    proc = subprocess.Popen(
        ["kubectl", "-n", namespace, "port-forward", f"svc/{service}", f"{local}:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), timeout=1):
                break
            if proc.poll() is not None:
                output = proc.stdout.read() if proc.stdout else ""
                raise SmokeError(f"kubectl port-forward svc/{service} failed: {output}")
            time.sleep(0.3)
        yield local
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--base-url", help="OpenAI-compatible base URL ending in /v1 (skips kubectl)")
    cli.add_argument("--api-key", help="key to send (default: read from --key-secret)")
    cli.add_argument("--namespace", help="serving namespace (port-forward with kubectl)")
    cli.add_argument("--service", help="Service to port-forward, e.g. deepseek-r1-api or the gateway's")
    cli.add_argument("--port", type=int, default=8000, help="Service port (default 8000)")
    cli.add_argument("--key-secret", help="Secret holding the API key under 'api-key', e.g. deepseek-r1-api-key")
    cli.add_argument("--prompt", default="Say hello in one short sentence.")
    cli.add_argument("--max-tokens", type=int, default=64)
    args = cli.parse_args(argv)
    try:
        key = args.api_key
        if args.base_url:
            model, answer = smoke(args.base_url, key, args.prompt, args.max_tokens)
        else:
            if not (args.namespace and args.service):
                cli.error("give --base-url, or --namespace and --service")
            if key is None and args.key_secret:
                key = secret_key(args.namespace, args.key_secret)
            refuse_role_service(args.namespace, args.service)
            with port_forward(args.namespace, args.service, args.port) as local:
                model, answer = smoke(f"http://127.0.0.1:{local}/v1", key, args.prompt, args.max_tokens)
    except (SmokeError, subprocess.CalledProcessError) as error:
        print(f"smoke test FAILED: {error}", file=sys.stderr)
        return 1
    print(f"smoke test passed: {model} answered {answer.strip()[:200]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
