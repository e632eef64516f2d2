#!/usr/bin/env python3
"""The two commands the README opens with, as it writes them: ``render`` (the main job) and ``test`` (what CI
runs). ``.ci/run`` runs the test command from a lone clone with this, so the README cannot drift from what is
checked.

    python tools/readme_commands.py render|test
"""

from __future__ import annotations

import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def commands(text: str) -> dict[str, str]:
    """The first fenced bash block's commands: the one after a comment line starting ``# 1.`` is ``render``, the
    one after ``# 2.`` is ``test``."""
    start = text.index("```bash\n") + len("```bash\n")
    block = text[start : text.index("```", start)]
    out: dict[str, str] = {}
    label = None
    for line in block.splitlines():
        if line.startswith("# 1."):
            label = "render"
        elif line.startswith("# 2."):
            label = "test"
        elif line.strip() and label and label not in out:
            out[label] = line.strip()
    if set(out) != {"render", "test"}:
        raise ValueError(f"README's first bash block lacks '# 1.' and '# 2.' commands (found {sorted(out)})")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("render", "test"):
        print(__doc__, file=sys.stderr)
        return 2
    print(commands(README.read_text())[argv[0]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
