"""Run inside the sandbox's namespace: send chat completions at once (one thread each) and print their HTTP
status codes as JSON.

    python3 send_chats.py BASE_URL MODEL MAX_TOKENS < prompts.json     (a JSON list of user messages)
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    base, model, max_tokens = argv[0], argv[1], int(argv[2])
    prompts = json.load(sys.stdin)
    codes: list[int] = [0] * len(prompts)

    def send(i: int) -> None:
        body = {"model": model, "messages": [{"role": "user", "content": prompts[i]}], "max_tokens": max_tokens}
        request = urllib.request.Request(
            f"{base}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                codes[i] = response.status
        except urllib.error.HTTPError as error:
            codes[i] = error.code

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(codes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
