"""The library's layout (docs/library.md, "Where things live"): one import name, rooms that import only the rooms
below them, no import circle, a shallow import stack, and a program, tools and tests that use the library by its
one name only."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = "sglang_platform"
# Each room and the rooms its modules may import (besides its own). The order is the floors of the library:
# facts (data) under config (the stack's schema) under render (pure builders) under rules (checks of the
# stack) under live (checks that read the world); the components use everything but live. The loader of
# config is the one module above them all: loading a stack runs the rules and the live checks.
MAY_IMPORT: dict[str, set[str]] = {
    # Run in the pods, where the library is not installed.
    "pod_scripts": set(),
    "facts": set(),
    "config": {"facts"},
    "render": {"facts", "config", "pod_scripts"},
    "rules": {"facts", "config", "render"},
    # The upgrade checks compare the cluster's CRDs with the pinned charts' (render.charts finds their source).
    "live": {"facts", "config", "render", "rules"},
    "components": {"facts", "config", "render", "rules", "pod_scripts"},
    # The component package: the components as other Pulumi languages see them, built through the stack's
    # loading (config.loader) for its Platform.
    "provider": {"facts", "config", "components"},
}
TOP = {"config.loader": {"facts", "config", "render", "rules", "live"}}
# The package's own plumbing, importable from every room.
PLUMBING = {"_lazy"}
# The longest chain of imports between the library's modules (docs/library.md says why it is this deep).
MAX_DEPTH = 9
# What stands on all of that: the composition of every component (components.platform, one floor above the
# components it composes) and the component package (its declarations and builders above the composition, the
# provider above them): each adds its floor to the deepest chain below it.
ON_TOP = {"components.platform": 1, "provider.components": 2, "provider.host": 3}


def _modules() -> dict[str, Path]:
    """Every module of the library by its name under the package (``rules.nodes``), from the rooms' own
    directories."""
    out = {"_lazy": ROOT / PACKAGE / "_lazy.py"}
    for room in MAY_IMPORT:
        for path in sorted((ROOT / room).rglob("*.py")):
            # The plugin's virtualenv (provider/venv) and its entry point, a script Pulumi runs by path.
            if "venv" in path.relative_to(ROOT).parts or path.name == "__main__.py":
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


@functools.cache
def _imports(name: str, *, type_checking: bool = True) -> frozenset[str]:
    """The library modules ``name`` imports, anywhere in its source (functions included); with
    ``type_checking=False``, not those under ``if TYPE_CHECKING``."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped: set[int] = set()
    if not type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(n) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = package.split(".") if package else []
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        module = ".".join([*base, *([node.module] if node.module else [])])
        for alias in node.names:
            candidate = f"{module}.{alias.name}" if module else alias.name
            found.add(candidate if candidate in MODULES else module)
    return frozenset(m for m in found if m and m != name)


def test_every_room_is_reached_through_the_package():
    """In a checkout, ``sglang_platform/<room>`` is a relative symlink to the room at the root: Python, mypy
    and the wheel's build all see the rooms under the one name, and the root keeps the project's shape."""
    linked = {p.name for p in (ROOT / PACKAGE).iterdir() if p.is_symlink()}
    assert linked == set(MAY_IMPORT)
    for room in MAY_IMPORT:
        link = ROOT / PACKAGE / room
        assert str(link.readlink()) == f"../{room}" and (link / "__init__.py").is_file(), room


def test_the_library_imports_itself_relatively():
    """Absolute imports of a room's bare name would claim a generic top-level name again; absolute imports of
    ``sglang_platform`` would tie a module to the installed copy instead of its own."""
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level:
                root = (node.module or "").split(".")[0]
                assert root not in {PACKAGE, *MAY_IMPORT}, f"{path}: from {node.module} import ..."
            elif isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
                assert not roots & {PACKAGE, *MAY_IMPORT}, f"{path}: import {', '.join(sorted(roots))}"


def test_rooms_import_only_the_rooms_below_them():
    wrong = []
    for name in MODULES:
        room = name.split(".")[0]
        allowed = TOP.get(name, MAY_IMPORT.get(room, set())) | {room} | PLUMBING
        for imported in sorted(_imports(name)):
            if imported.split(".")[0] not in allowed:
                wrong.append(f"{name} -> {imported}")
    assert wrong == []


_DEPTHS: dict[str, int] = {}


def _depth(name: str, stack: tuple[str, ...] = ()) -> int:
    """1 + the depth of the deepest module ``name`` imports; fails naming the circle it finds."""
    if name in stack:
        raise AssertionError("import circle: " + " -> ".join([*stack[stack.index(name) :], name]))
    if name not in _DEPTHS:
        below = [_depth(m, (*stack, name)) for m in sorted(_imports(name, type_checking=False))]
        _DEPTHS[name] = 1 + max(below, default=0)
    return _DEPTHS[name]


def _chain(name: str) -> list[str]:
    chain = [name]
    while below := _imports(chain[-1], type_checking=False):
        chain.append(max(sorted(below), key=_depth))
    return chain


def test_no_import_circle_and_a_shallow_stack():
    """Every import a module makes at run time (in functions too), without the parent packages Python loads on
    the way. The deepest chain today is the loader's (docs/library.md)."""
    deepest = max(sorted(set(MODULES) - set(ON_TOP)), key=_depth)
    assert _depth(deepest) <= MAX_DEPTH, " -> ".join(_chain(deepest))
    for name, floors in ON_TOP.items():
        assert _depth(name) <= MAX_DEPTH + floors, " -> ".join(_chain(name))


def test_the_depth_measure_sees_a_circle(tmp_path):
    """The measure above, on two modules that import each other, fails naming the circle."""
    first, second = tmp_path / "zz_first.py", tmp_path / "zz_second.py"
    first.write_text("from .zz_second import x\n")
    second.write_text("from .zz_first import y\n")
    MODULES.update({"facts.zz_first": first, "facts.zz_second": second})
    try:
        _DEPTHS.clear()
        with pytest.raises(AssertionError, match=r"import circle: facts\.zz_first -> facts\.zz_second -> facts\.zz_"):
            _depth("facts.zz_first")
    finally:
        del MODULES["facts.zz_first"], MODULES["facts.zz_second"]
        _DEPTHS.clear()


# `import config`, `from components.k8s import ...`, in code or in a program a test runs from a string.
_BARE = re.compile(r"^\s*(?:from|import)\s+(" + "|".join(MAY_IMPORT) + r")\b", re.MULTILINE)


def _users() -> list[Path]:
    paths = [ROOT / "__main__.py", *ROOT.glob("examples/**/*.py")]
    for folder in ("tools", "tests"):
        paths += [p for p in (ROOT / folder).rglob("*.py") if "torch_stub" not in p.parts]
    return sorted(paths)


def test_the_program_tools_and_tests_import_the_library_by_its_name_only():
    """A room imported by its bare name in a checkout (where the root is on sys.path) would be a second copy of
    every module it loads, with its own classes: an ``isinstance`` or an ``except ConfigError`` across the two
    would fail. A team's own modules of those names (``TEAM_*`` texts, tests/test_package.py) are theirs."""
    found = []
    for path in _users():
        text = path.read_text()
        tree = ast.parse(text)
        team = {
            number
            for a in ast.walk(tree)
            if isinstance(a, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id.startswith("TEAM_") for t in a.targets)
            for number in range(a.lineno, (a.end_lineno or a.lineno) + 1)
        }
        for number, line in enumerate(text.splitlines(), 1):
            if number not in team and (match := _BARE.match(line)):
                found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0).strip()}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.lineno not in team:
                for match in _BARE.finditer(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} (in a string): {match.group(0).strip()}")
    assert found == []
