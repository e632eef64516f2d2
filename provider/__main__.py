"""The plugin's entry point: the Python language host runs ``python <this folder> <engine address>``."""

import sys
from pathlib import Path

# The folder itself is sys.path[0]; the library is the repository around it (sglang_platform/ at its root),
# imported by its one name so that nothing here shadows a top-level module.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from sglang_platform.provider.host import serve  # noqa: E402

if __name__ == "__main__":
    serve()
