"""Module-level ``__getattr__`` for packages that export names lazily (PEP 562): ``sglang_platform.components``
and ``sglang_platform.config`` import a submodule only when one of its names is first used."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """``exports`` maps each exported name to the module that defines it; a name equal to its module's last
    component is the module itself."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the PEP 562 hook's name
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if name == module.rsplit(".", 1)[1]:
            return importlib.import_module(module)
        return getattr(importlib.import_module(module), name)

    return __getattr__
