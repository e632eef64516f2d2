"""A release's ``sglang.launch_server`` options, read statically from its wheel, as a flag table.

``python tools/sglang_flags.py generate VERSION`` writes the result to ``facts/sglang/<VERSION>.json``; the
program checks every flag a group gets against the table of the pinned release (``facts.sglang``).

The wheel is never imported: ``sglang/srt/server_args.py`` imports torch (and, from 0.5.2x on, a few
hundred modules) at module level. Instead this module reads the sources with ``ast`` and evaluates, with a
small interpreter, exactly the expressions argparse would see:

- releases up to 0.5.1x register every option by hand: ``parser.add_argument(...)`` calls in
  ``ServerArgs.add_cli_args`` (and in any in-wheel helper it passes the parser to), with choices from
  literals, module constants, constants of other modules of the wheel (``from x import CHOICES``),
  ``list(SomeClass.DictAttr.keys())``, enum members, ``A + [B]`` and comprehensions;
- 0.5.2x declares most options as annotated record fields (``A[Optional[int], Arg(...)]``) that
  ``sglang.srt.arg_groups.arg_utils.add_cli_args_from_dataclass`` turns into ``add_argument`` calls; that
  function's rules (Optional, Literal -> choices, List -> nargs '+', bool -> store_true, custom actions,
  required when there is no default) are re-implemented here over the fields' annotations.

What cannot be resolved statically is recorded, never guessed: an option whose ``choices`` expression does
not evaluate gets ``"choices": null`` and an ``"unresolved"`` note, and the checker accepts any value there.
A ``type=`` callable other than int/float/bool/json.loads is recorded as ``"type": "custom"`` (any value
accepted), except functions that return their argument unchanged or raise (recorded as ``str``).
"""

from __future__ import annotations

import ast
import hashlib
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER_ARGS_MODULE = "sglang.srt.server_args"
# The table format: bump when a field's meaning changes (the checker refuses tables it does not know).
FORMAT = 1
# argparse's own actions, by the names add_argument accepts and by their classes.
ARGPARSE_ACTIONS = {
    "store": "store",
    "store_const": "store_const",
    "store_true": "store_true",
    "store_false": "store_false",
    "append": "append",
    "append_const": "append_const",
    "extend": "extend",
    "count": "count",
    "help": "help",
    "version": "version",
    "argparse._StoreAction": "store",
    "argparse._StoreConstAction": "store_const",
    "argparse._StoreTrueAction": "store_true",
    "argparse._StoreFalseAction": "store_false",
    "argparse._AppendAction": "append",
    "argparse._AppendConstAction": "append_const",
    "argparse._ExtendAction": "extend",
    "argparse._CountAction": "count",
    "argparse.BooleanOptionalAction": "boolean_optional",
}
# Actions that never take a value (argparse passes nargs=0 to them).
NO_VALUE_KINDS = {"store_const", "store_true", "store_false", "append_const", "count", "help", "version"}
BUILTIN_TYPES = {"str": "str", "int": "int", "float": "float", "bool": "bool", "json.loads": "json"}


class UnresolvedError(Exception):
    """An expression the static reader cannot evaluate (the message says which and why)."""


# ---------------------------------------------------------------------------------------------------------
# Values of the little interpreter
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ext:
    """Something outside the wheel (``argparse.SUPPRESS``, ``json.loads``, ``typing.Optional``), by name."""

    name: str


@dataclass(frozen=True, eq=False)
class ModuleRef:
    name: str


@dataclass(frozen=True, eq=False)
class ClassRef:
    module: Module
    node: ast.ClassDef

    @property
    def qualname(self) -> str:
        return f"{self.module.name}.{self.node.name}"


@dataclass(frozen=True, eq=False)
class FuncRef:
    module: Module
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
    closure: Scope | None = None

    @property
    def name(self) -> str:
        return getattr(self.node, "name", "<lambda>")


@dataclass(frozen=True)
class EnumMember:
    cls: ClassRef
    name: str

    def __hash__(self) -> int:
        return hash((self.cls.qualname, self.name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EnumMember) and (self.cls.qualname, self.name) == (other.cls.qualname, other.name)


@dataclass(frozen=True)
class Opaque:
    """A value the reader could not evaluate, where only its presence matters (a dict's values)."""

    expr: str


@dataclass(frozen=True)
class Bound:
    """A method of a value (``d.keys``, ``s.lower``)."""

    obj: Any
    name: str


@dataclass
class ParserRef:
    """The ``argparse.ArgumentParser`` (or an argument group of it) that options are added to."""


# Typing constructs, for the record fields of 0.5.2x.
@dataclass(frozen=True)
class TUnion:
    args: tuple[Any, ...]


@dataclass(frozen=True)
class TLiteral:
    values: tuple[Any, ...]


@dataclass(frozen=True)
class TGeneric:
    origin: str  # list, dict, set, tuple, ...
    args: tuple[Any, ...]


@dataclass(frozen=True)
class TAnnotated:
    inner: Any
    metadata: tuple[Any, ...]


@dataclass(frozen=True, eq=False)
class CallMeta:
    """A call in ``Annotated[...]`` metadata (``Arg(...)``, ``NS(...)``), kept unevaluated."""

    func: Any
    node: ast.Call


NONE_TYPE = Ext("NoneType")


# ---------------------------------------------------------------------------------------------------------
# Modules of the wheel
# ---------------------------------------------------------------------------------------------------------


class Wheel:
    """Sources of a wheel, by module name, parsed on demand."""

    def __init__(self, path: Path):
        self.path = path
        self.archive = zipfile.ZipFile(path)
        self.names = set(self.archive.namelist())
        self.modules: dict[str, Module | None] = {}
        self.read: set[str] = set()

    def module(self, name: str) -> Module | None:
        if name not in self.modules:
            self.modules[name] = None
            for candidate in (name.replace(".", "/") + ".py", name.replace(".", "/") + "/__init__.py"):
                if candidate in self.names:
                    source = self.archive.read(candidate).decode("utf-8")
                    self.read.add(candidate)
                    self.modules[name] = Module(self, name, candidate, ast.parse(source))
                    break
        return self.modules[name]

    def is_package(self, name: str) -> bool:
        return name.replace(".", "/") + "/__init__.py" in self.names


class Module:
    def __init__(self, wheel: Wheel, name: str, path: str, tree: ast.Module):
        self.wheel, self.name, self.path, self.tree = wheel, name, path, tree
        self.bindings: dict[str, list[ast.stmt]] = {}
        self._index(tree.body)

    def _index(self, body: list[ast.stmt]) -> None:
        """Every binding of the module's top level, including those under ``if`` and ``try``. A name bound
        only in an ``except`` handler (``except ImportError: X = None``) is a fallback: the main line wins."""
        for stmt in body:
            for name in _bound_names(stmt):
                self.bindings.setdefault(name, []).append(stmt)
            if isinstance(stmt, ast.If):
                self._index(stmt.body)
                self._index(stmt.orelse)
            elif isinstance(stmt, ast.Try):
                self._index(stmt.body)
                self._index(stmt.orelse)
                for handler in stmt.handlers:
                    for inner in handler.body:
                        for name in _bound_names(inner):
                            if name not in self.bindings:
                                self.bindings[name] = [inner]

    def package(self) -> str:
        return self.name if self.wheel.is_package(self.name) else self.name.rpartition(".")[0]

    def absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package()
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        return f"{base}.{node.module}" if node.module else base


def _bound_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, ast.Assign):
        return [t.id for t in stmt.targets if isinstance(t, ast.Name)]
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        return [stmt.target.id]
    if isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return [stmt.name]
    if isinstance(stmt, ast.Import):
        return [(a.asname or a.name.split(".")[0]) for a in stmt.names]
    if isinstance(stmt, ast.ImportFrom):
        return [(a.asname or a.name) for a in stmt.names if a.name != "*"]
    return []


# ---------------------------------------------------------------------------------------------------------
# The interpreter
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Scope:
    """Local names of a function being read: values already known, or statements to evaluate on use."""

    module: Module
    values: dict[str, Any] = field(default_factory=dict)
    statements: dict[str, ast.stmt] = field(default_factory=dict)
    parent: Scope | None = None
    # The class whose body is being read: its earlier names are visible there (``ALL = (FULL, BREAKABLE)``).
    cls: ClassRef | None = None


_BUILTINS = {"list", "tuple", "set", "frozenset", "sorted", "dict", "str", "int", "float", "bool", "reversed"}


class Reader:
    def __init__(self, wheel: Wheel):
        self.wheel = wheel
        self._depth = 0

    # -- names -------------------------------------------------------------------------------------------

    def global_value(self, module: Module, name: str) -> Any:
        stmts = module.bindings.get(name)
        if not stmts:
            if name in _BUILTINS:
                return Ext(name)
            raise UnresolvedError(f"{name} is not defined in {module.name}")
        return self.binding_value(module, stmts[-1], name, Scope(module))

    def binding_value(self, module: Module, stmt: ast.stmt, name: str, scope: Scope) -> Any:
        if isinstance(stmt, ast.Assign | ast.AnnAssign):
            assert stmt.value is not None
            return self.eval(stmt.value, scope)
        if isinstance(stmt, ast.ClassDef):
            return ClassRef(module, stmt)
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            return FuncRef(module, stmt, scope if scope.parent is not None or scope.values else None)
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname == name:
                    return self.module_ref(alias.name)
                if alias.asname is None and alias.name.split(".")[0] == name:
                    return self.module_ref(name)
        if isinstance(stmt, ast.ImportFrom):
            source = module.absolute(stmt)
            for alias in stmt.names:
                if (alias.asname or alias.name) == name:
                    return self.import_from(source, alias.name)
        raise UnresolvedError(f"cannot read the binding of {name} in {module.name}")

    def module_ref(self, name: str) -> Any:
        return ModuleRef(name) if self.wheel.module(name) is not None or self.wheel.is_package(name) else Ext(name)

    def import_from(self, source: str, name: str) -> Any:
        module = self.wheel.module(source)
        if module is None:
            return Ext(f"{source}.{name}")
        if name in module.bindings:
            return self.global_value(module, name)
        if self.wheel.module(f"{source}.{name}") is not None:
            return ModuleRef(f"{source}.{name}")
        raise UnresolvedError(f"{source} does not define {name}")

    def lookup(self, name: str, scope: Scope) -> Any:
        current: Scope | None = scope
        while current is not None:
            if name in current.values:
                return current.values[name]
            if name in current.statements:
                stmt = current.statements.pop(name)  # evaluated once; recursion guard
                value = self.binding_value(current.module, stmt, name, current)
                current.values[name] = value
                return value
            if current.cls is not None and any(name in _bound_names(st) for st in current.cls.node.body):
                return self.class_attribute(current.cls, name, raw=True)
            current = current.parent
        return self.global_value(scope.module, name)

    # -- attributes --------------------------------------------------------------------------------------

    def attribute(self, obj: Any, name: str) -> Any:
        if isinstance(obj, Ext):
            return Ext(f"{obj.name}.{name}")
        if isinstance(obj, ModuleRef):
            module = self.wheel.module(obj.name)
            if module is not None and name in module.bindings:
                return self.global_value(module, name)
            return self.module_ref(f"{obj.name}.{name}")
        if isinstance(obj, ClassRef):
            return self.class_attribute(obj, name)
        if isinstance(obj, EnumMember):
            if name == "name":
                return obj.name
            if name == "value":
                return self.class_attribute(obj.cls, obj.name, raw=True)
            raise UnresolvedError(f"enum member attribute {name}")
        if isinstance(obj, dict | list | tuple | set | frozenset | str):
            return Bound(obj, name)
        raise UnresolvedError(f"attribute {name} of {type(obj).__name__}")

    def class_attribute(self, cls: ClassRef, name: str, raw: bool = False) -> Any:
        for stmt in cls.node.body:
            if name in _bound_names(stmt):
                if not raw and self.is_enum(cls):
                    return EnumMember(cls, name)
                return self.binding_value(cls.module, stmt, name, Scope(cls.module, cls=cls))
        for base in self.bases(cls):
            if isinstance(base, ClassRef):
                try:
                    return self.class_attribute(base, name, raw)
                except UnresolvedError:
                    continue
        raise UnresolvedError(f"{cls.qualname} has no attribute {name} the reader can see")

    def bases(self, cls: ClassRef) -> list[Any]:
        out = []
        for base in cls.node.bases:
            try:
                out.append(self.eval(base, Scope(cls.module)))
            except UnresolvedError:
                out.append(Opaque(ast.unparse(base)))
        return out

    def is_enum(self, cls: ClassRef) -> bool:
        for base in self.bases(cls):
            if isinstance(base, Ext) and base.name.split(".")[-1] in ("Enum", "IntEnum", "StrEnum", "Flag", "IntFlag"):
                return True
            if isinstance(base, ClassRef) and self.is_enum(base):
                return True
        return False

    def enum_members(self, cls: ClassRef) -> list[EnumMember]:
        names = []
        for stmt in cls.node.body:
            if isinstance(stmt, ast.Assign | ast.AnnAssign):
                names += [n for n in _bound_names(stmt) if not n.startswith("_")]
        return [EnumMember(cls, n) for n in dict.fromkeys(names)]

    # -- expressions -------------------------------------------------------------------------------------

    def eval(self, node: ast.expr | None, scope: Scope) -> Any:
        if node is None:
            raise UnresolvedError("no expression")
        self._depth += 1
        try:
            if self._depth > 200:
                raise UnresolvedError("expression nests too deep")
            return self._eval(node, scope)
        finally:
            self._depth -= 1

    def _eval(self, node: ast.expr, scope: Scope) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            items: list[Any] = []
            for elt in node.elts:
                if isinstance(elt, ast.Starred):
                    items += list(self.iterate(self.eval(elt.value, scope)))
                else:
                    items.append(self.eval(elt, scope))
            return items if isinstance(node, ast.List) else tuple(items) if isinstance(node, ast.Tuple) else set(items)
        if isinstance(node, ast.Dict):
            out: dict[Any, Any] = {}
            for key, value in zip(node.keys, node.values, strict=True):
                if key is None:
                    out.update(self.eval(value, scope))
                    continue
                try:
                    out[self.eval(key, scope)] = self.eval(value, scope)
                except UnresolvedError:
                    out[self.eval(key, scope)] = Opaque(ast.unparse(value))
            return out
        if isinstance(node, ast.Name):
            return self.lookup(node.id, scope)
        if isinstance(node, ast.Attribute):
            return self.attribute(self.eval(node.value, scope), node.attr)
        if isinstance(node, ast.BinOp):
            left, right = self.eval(node.left, scope), self.eval(node.right, scope)
            if isinstance(node.op, ast.Add) and type(left) is type(right) and isinstance(left, list | tuple | str):
                return left + right
            if isinstance(node.op, ast.BitOr):
                if isinstance(left, set | frozenset) and isinstance(right, set | frozenset):
                    return left | right
                if isinstance(left, dict) and isinstance(right, dict):
                    return left | right
                return TUnion((left, right))  # X | None in an annotation
            if isinstance(node.op, ast.Mult) and isinstance(left, list | tuple | str | int) and isinstance(right, int):
                return left * right
            if isinstance(left, int | float) and isinstance(right, int | float):
                return _arith(node.op, left, right)
            raise UnresolvedError(f"operator in {ast.unparse(node)}")
        if isinstance(node, ast.UnaryOp):
            operand = self.eval(node.operand, scope)
            if isinstance(node.op, ast.USub) and isinstance(operand, int | float):
                return -operand
            if isinstance(node.op, ast.Not):
                return not operand
            raise UnresolvedError(f"operator in {ast.unparse(node)}")
        if isinstance(node, ast.Call):
            return self.call(node, scope)
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            return self.comprehension(node, scope)
        if isinstance(node, ast.Subscript):
            return self.subscript(node, scope)
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                if isinstance(value, ast.Constant):
                    parts.append(str(value.value))
                elif isinstance(value, ast.FormattedValue) and value.format_spec is None:
                    got = self.eval(value.value, scope)
                    if not isinstance(got, str | int | float | bool):
                        raise UnresolvedError(f"f-string part {ast.unparse(value.value)}")
                    parts.append(repr(got) if value.conversion == ord("r") else str(got))
                else:
                    raise UnresolvedError("formatted f-string part")
            return "".join(parts)
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left, right = self.eval(node.left, scope), self.eval(node.comparators[0], scope)
            return _compare(node.ops[0], left, right)
        if isinstance(node, ast.BoolOp):
            values = [self.eval(v, scope) for v in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.IfExp):
            return self.eval(node.body if self.eval(node.test, scope) else node.orelse, scope)
        if isinstance(node, ast.Lambda):
            return FuncRef(scope.module, node, scope)
        raise UnresolvedError(f"{type(node).__name__} expression {ast.unparse(node)[:60]}")

    def iterate(self, value: Any) -> Iterator[Any]:
        if isinstance(value, dict):
            return iter(list(value))
        if isinstance(value, list | tuple | set | frozenset | str):
            return iter(sorted(value, key=_sort_key) if isinstance(value, set | frozenset) else value)
        if isinstance(value, ClassRef) and self.is_enum(value):
            return iter(self.enum_members(value))
        raise UnresolvedError(f"cannot iterate over {type(value).__name__}")

    def call(self, node: ast.Call, scope: Scope) -> Any:
        func = self.eval(node.func, scope)
        args = [self.eval(a, scope) for a in node.args if not isinstance(a, ast.Starred)]
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise UnresolvedError(f"call with *args: {ast.unparse(node)[:60]}")
        kwargs = {k.arg: self.eval(k.value, scope) for k in node.keywords if k.arg is not None}
        if isinstance(func, Ext) and func.name in _BUILTINS:
            return _builtin(self, func.name, args, kwargs)
        if isinstance(func, Bound):
            return _method(func.obj, func.name, args)
        if isinstance(func, FuncRef):
            return self.call_function(func, args, kwargs)
        if isinstance(func, Ext) and func.name in ("typing.cast",):
            return args[1]
        raise UnresolvedError(f"call of {ast.unparse(node.func)}")

    def call_function(self, func: FuncRef, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """A function of the wheel, called with known arguments: the value of its last top-level ``return``
        (the fallback path: ``_reasoning_parser_choices`` returns a registry's names unless a plugin already
        imported the registry, which a fresh ``launch_server`` has not)."""
        if isinstance(func.node, ast.Lambda):
            scope = Scope(func.module, parent=func.closure)
            _bind(func.node.args, args, kwargs, scope, self)
            return self.eval(func.node.body, scope)
        scope = Scope(func.module, parent=func.closure)
        _bind(func.node.args, args, kwargs, scope, self)
        returns = [s for s in func.node.body if isinstance(s, ast.Return)]
        if not returns or returns[-1].value is None:
            raise UnresolvedError(f"{func.name}() has no top-level return")
        for stmt in func.node.body:
            if stmt is returns[-1]:
                break
            for name in _bound_names(stmt):
                scope.statements[name] = stmt
        return self.eval(returns[-1].value, scope)

    def comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, scope: Scope) -> Any:
        results: list[Any] = []

        def run(generators: list[ast.comprehension], inner: Scope) -> None:
            if not generators:
                if isinstance(node, ast.DictComp):
                    results.append((self.eval(node.key, inner), self.eval(node.value, inner)))
                else:
                    results.append(self.eval(node.elt, inner))
                return
            gen = generators[0]
            for item in self.iterate(self.eval(gen.iter, inner)):
                child = Scope(inner.module, parent=inner)
                _assign_target(gen.target, item, child)
                if all(self.eval(cond, child) for cond in gen.ifs):
                    run(generators[1:], child)

        run(node.generators, scope)
        if isinstance(node, ast.DictComp):
            return dict(results)
        return set(results) if isinstance(node, ast.SetComp) else results

    def subscript(self, node: ast.Subscript, scope: Scope) -> Any:
        base = self.eval(node.value, scope)
        if isinstance(base, Ext):
            return self.typing_subscript(base, node.slice, scope)
        index = self.eval(node.slice, scope)
        try:
            return base[index]
        except (TypeError, KeyError, IndexError) as error:
            raise UnresolvedError(f"subscript {ast.unparse(node)[:60]}") from error

    # -- typing (annotations of 0.5.2x record fields) ----------------------------------------------------

    def annotation(self, node: ast.expr, scope: Scope) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return self.annotation(ast.parse(node.value, mode="eval").body, scope)
        if isinstance(node, ast.Constant) and node.value is None:
            return NONE_TYPE
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return _union([self.annotation(node.left, scope), self.annotation(node.right, scope)])
        if isinstance(node, ast.Subscript):
            base = self.eval(node.value, scope)
            if isinstance(base, Ext):
                return self.typing_subscript(base, node.slice, scope)
            raise UnresolvedError(f"annotation {ast.unparse(node)[:60]}")
        try:
            return self.eval(node, scope)
        except UnresolvedError:
            # A type the reader cannot see (``type``, a class of another package): only its name matters,
            # as add_cli_args_from_dataclass maps every type but str/int/float/bool/list/Literal to str.
            return Ext(ast.unparse(node))

    def typing_subscript(self, base: Ext, index: ast.expr, scope: Scope) -> Any:
        name = base.name.removeprefix("typing.").removeprefix("typing_extensions.")
        elts = index.elts if isinstance(index, ast.Tuple) else [index]
        if name == "Literal":
            values: list[Any] = []
            for elt in elts:
                value = self.eval(elt, scope) if not isinstance(elt, ast.Subscript) else self.annotation(elt, scope)
                values += list(value.values) if isinstance(value, TLiteral) else [value]
            return TLiteral(tuple(dict.fromkeys(values)))
        if name == "Annotated":
            inner = self.annotation(elts[0], scope)
            metadata: list[Any] = []
            for elt in elts[1:]:
                try:
                    if isinstance(elt, ast.Call):
                        metadata.append(CallMeta(self.eval(elt.func, scope), elt))
                    else:
                        metadata.append(self.eval(elt, scope))
                except UnresolvedError as error:
                    metadata.append(Opaque(f"{ast.unparse(elt)[:60]}: {error}"))
            if isinstance(inner, TAnnotated):  # Annotated flattens
                return TAnnotated(inner.inner, inner.metadata + tuple(metadata))
            return TAnnotated(inner, tuple(metadata))
        args = [self.annotation(e, scope) for e in elts]
        if name == "Optional":
            return _union([args[0], NONE_TYPE])
        if name == "Union":
            return _union(args)
        origin = {"List": "list", "Dict": "dict", "Set": "set", "FrozenSet": "frozenset", "Tuple": "tuple"}.get(
            name, name
        )
        return TGeneric(origin, tuple(args))


def _union(args: list[Any]) -> Any:
    flat: list[Any] = []
    for arg in args:
        for item in arg.args if isinstance(arg, TUnion) else (arg,):
            if item is None:
                item = NONE_TYPE
            if item not in flat:
                flat.append(item)
    return flat[0] if len(flat) == 1 else TUnion(tuple(flat))


def _extend(value: Any, extra: Any) -> Any:
    if isinstance(value, set):
        return value | {extra}
    if isinstance(value, list):
        return [*value, extra]
    return value


def _sort_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, str(value))


def _arith(op: ast.operator, left: float, right: float) -> float:
    ops: dict[type, Callable[[float, float], float]] = {
        ast.Add: lambda a, b: a + b,
        ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b,
        ast.Pow: lambda a, b: a**b,
        ast.FloorDiv: lambda a, b: a // b,
        ast.Div: lambda a, b: a / b,
    }
    if type(op) not in ops:
        raise UnresolvedError(f"operator {type(op).__name__}")
    return ops[type(op)](left, right)


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    if isinstance(op, ast.Eq):
        return bool(left == right)
    if isinstance(op, ast.NotEq):
        return bool(left != right)
    if isinstance(op, ast.In):
        return left in right
    if isinstance(op, ast.NotIn):
        return left not in right
    if isinstance(op, ast.Is):
        return left is right
    if isinstance(op, ast.IsNot):
        return left is not right
    raise UnresolvedError(f"comparison {type(op).__name__}")


def _builtin(reader: Reader, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if name in ("str", "int", "float", "bool") and len(args) == 1 and isinstance(args[0], str | int | float | bool):
        return {"str": str, "int": int, "float": float, "bool": bool}[name](args[0])
    if len(args) != 1:
        raise UnresolvedError(f"{name}() with {len(args)} arguments")
    items = list(reader.iterate(args[0]))
    if name == "list":
        return items
    if name == "tuple":
        return tuple(items)
    if name in ("set", "frozenset"):
        return set(items)
    if name == "sorted":
        return sorted(items, reverse=bool(kwargs.get("reverse")))
    if name == "reversed":
        return list(reversed(items))
    if name == "dict" and isinstance(args[0], dict):
        return dict(args[0])
    raise UnresolvedError(f"{name}()")


def _method(obj: Any, name: str, args: list[Any]) -> Any:
    if isinstance(obj, dict) and name in ("keys", "values", "items") and not args:
        return list(getattr(obj, name)())
    if isinstance(obj, str) and name in ("lower", "upper", "strip") and not args:
        return getattr(obj, name)()
    if isinstance(obj, str) and name == "replace" and len(args) == 2:
        return obj.replace(args[0], args[1])
    if isinstance(obj, list | tuple | set | dict) and name == "copy" and not args:
        return obj.copy() if not isinstance(obj, tuple) else obj
    raise UnresolvedError(f"method {name} of {type(obj).__name__}")


def _assign_target(target: ast.expr, value: Any, scope: Scope) -> None:
    if isinstance(target, ast.Name):
        scope.values[target.id] = value
    elif isinstance(target, ast.Tuple | ast.List):
        items = list(value)
        if len(items) != len(target.elts):
            raise UnresolvedError("unpacking of the wrong length")
        for elt, item in zip(target.elts, items, strict=True):
            _assign_target(elt, item, scope)
    else:
        raise UnresolvedError(f"assignment to {ast.unparse(target)}")


def _bind(arguments: ast.arguments, args: list[Any], kwargs: dict[str, Any], scope: Scope, reader: Reader) -> None:
    params = [*arguments.posonlyargs, *arguments.args]
    defaults = [None] * (len(params) - len(arguments.defaults)) + list(arguments.defaults)
    for i, (param, default) in enumerate(zip(params, defaults, strict=True)):
        if i < len(args):
            scope.values[param.arg] = args[i]
        elif param.arg in kwargs:
            scope.values[param.arg] = kwargs[param.arg]
        elif default is not None:
            scope.values[param.arg] = reader.eval(default, Scope(scope.module))
    for param, kw_default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        if param.arg in kwargs:
            scope.values[param.arg] = kwargs[param.arg]
        elif kw_default is not None:
            scope.values[param.arg] = reader.eval(kw_default, Scope(scope.module))


# ---------------------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------------------


@dataclass
class OptionRecord:
    strings: list[str]
    action: str = "store"
    nargs: Any = None
    type: str | None = None
    type_name: str | None = None
    choices: list[Any] | None = None
    default: Any = None
    has_default: bool = False
    required: bool = False
    action_class: str | None = None
    unresolved: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return next((s for s in self.strings if s.startswith("--")), self.strings[0])

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "strings": self.strings, "action": self.action}
        if self.action_class:
            out["action_class"] = self.action_class
        out["nargs"] = self.nargs
        if self.action not in NO_VALUE_KINDS and self.nargs != 0:
            out["type"] = self.type or "str"
            if self.type_name:
                out["type_name"] = self.type_name
            out["choices"] = self.choices
        if self.has_default and _is_literal(self.default):
            out["default"] = _jsonable(self.default)
        if self.required:
            out["required"] = True
        if self.unresolved:
            out["unresolved"] = self.unresolved
        if self.notes:
            out["notes"] = self.notes
        return out


def _is_literal(value: Any) -> bool:
    if isinstance(value, str | int | float | bool) or value is None:
        return not (isinstance(value, float) and value != value) and value != "==SUPPRESS=="
    if isinstance(value, list | tuple):
        return all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_literal(v) for k, v in value.items())
    return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return str(value)
    return value


class TableBuilder:
    """Walks ``ServerArgs.add_cli_args`` the way Python would run it, collecting the options it adds."""

    def __init__(self, wheel: Wheel):
        self.wheel = wheel
        self.reader = Reader(wheel)
        self.options: list[OptionRecord] = []
        self.parser_settings: dict[str, Any] = {"add_help": True, "allow_abbrev": True, "prefix_chars": "-"}
        self.notes: list[str] = []

    # -- entry -------------------------------------------------------------------------------------------

    def build(self) -> None:
        module = self.wheel.module(SERVER_ARGS_MODULE)
        if module is None:
            raise ValueError(f"the wheel has no {SERVER_ARGS_MODULE}")
        self._read_parser_settings(module)
        server_args = self.server_args = self._server_args_class(module)
        add_cli_args = next(
            (s for s in server_args.node.body if isinstance(s, ast.FunctionDef) and s.name == "add_cli_args"), None
        )
        if add_cli_args is None:
            raise ValueError("ServerArgs has no add_cli_args")
        parser_param = add_cli_args.args.args[-1].arg if add_cli_args.args.args else "parser"
        self.run_body(add_cli_args.body, Scope(module, values={parser_param: ParserRef()}), condition=None)
        if self.parser_settings["add_help"]:
            self.options.append(OptionRecord(["-h", "--help"], action="help", nargs=0))
        if not self.options:
            raise ValueError(f"no options found in {SERVER_ARGS_MODULE}")
        seen: dict[str, str] = {}
        for option in self.options:
            for string in option.strings:
                if string in seen:
                    raise ValueError(f"{string} is registered twice ({seen[string]} and {option.name})")
                seen[string] = option.name

    def _server_args_class(self, module: Module) -> ClassRef:
        for stmt in module.tree.body:
            if isinstance(stmt, ast.ClassDef) and stmt.name == "ServerArgs":
                return ClassRef(module, stmt)
        raise ValueError(f"{SERVER_ARGS_MODULE} defines no class ServerArgs")

    def _read_parser_settings(self, module: Module) -> None:
        """``prepare_server_args`` builds the parser ``launch_server`` uses: its allow_abbrev and add_help."""
        func = next(
            (s for s in module.tree.body if isinstance(s, ast.FunctionDef) and s.name == "prepare_server_args"), None
        )
        calls = [
            n
            for n in (ast.walk(func) if func is not None else ())
            if isinstance(n, ast.Call) and ast.unparse(n.func).endswith("ArgumentParser")
        ]
        if len(calls) != 1:
            self.notes.append("prepare_server_args: no single ArgumentParser(...) call; argparse defaults assumed")
            return
        for keyword in calls[0].keywords:
            if keyword.arg in ("add_help", "allow_abbrev", "prefix_chars"):
                self.parser_settings[keyword.arg] = self.reader.eval(keyword.value, Scope(module))

    # -- statements --------------------------------------------------------------------------------------

    def run_body(self, body: list[ast.stmt], scope: Scope, condition: str | None) -> None:
        for stmt in body:
            self.run_statement(stmt, scope, condition)

    def run_statement(self, stmt: ast.stmt, scope: Scope, condition: str | None) -> None:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            self.run_call(stmt.value, scope, condition)
        elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.FunctionDef | ast.ImportFrom | ast.Import):
            value_node = stmt.value if isinstance(stmt, ast.Assign | ast.AnnAssign) else None
            if isinstance(value_node, ast.Call) and ast.unparse(value_node.func).endswith(
                ("add_argument_group", "add_mutually_exclusive_group")
            ):
                for name in _bound_names(stmt):
                    scope.values[name] = ParserRef()
                return
            for name in _bound_names(stmt):
                scope.values.pop(name, None)
                scope.statements[name] = stmt
        elif isinstance(stmt, ast.If):
            text = ast.unparse(stmt.test)
            inner = text if condition is None else f"{condition} and {text}"
            self.run_body(stmt.body, scope, inner)
            self.run_body(stmt.orelse, scope, f"not ({text})" if condition is None else f"{condition} and not ({text})")
        elif isinstance(stmt, ast.For):
            try:
                items = list(self.reader.iterate(self.reader.eval(stmt.iter, scope)))
            except UnresolvedError as error:
                raise ValueError(f"cannot read the loop at line {stmt.lineno}: {error}") from error
            for item in items:
                _assign_target(stmt.target, item, scope)
                self.run_body(stmt.body, scope, condition)
        elif isinstance(stmt, ast.With):
            self.run_body(stmt.body, scope, condition)
        elif isinstance(stmt, ast.Try):
            self.run_body(stmt.body, scope, condition)
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            self._extend_local(stmt.target.id, stmt.value, scope, condition)

    def run_call(self, call: ast.Call, scope: Scope, condition: str | None) -> None:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "add_argument":
            if isinstance(self._maybe(func.value, scope), ParserRef):
                self.add_argument(call, scope, condition)
            return
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.attr in ("add", "append"):
            if len(call.args) == 1:
                self._extend_local(func.value.id, call.args[0], scope, condition, single=True)
            return
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.attr in ("extend", "update"):
            if len(call.args) == 1:
                self._extend_local(func.value.id, call.args[0], scope, condition)
            return
        # A helper that receives the parser: add_cli_args_from_dataclass, or any function of the wheel.
        args = [self._maybe(a, scope) for a in call.args]
        if not any(isinstance(a, ParserRef) for a in args):
            return
        target = self._maybe(func, scope)
        if isinstance(target, FuncRef) and target.name == "add_cli_args_from_dataclass":
            record = args[1] if len(args) > 1 else None
            if record is None and len(call.args) > 1 and ast.unparse(call.args[1]) == "ServerArgs":
                # 0.5.2x rebinds the name to msgspec.defstruct("ServerArgs", <the class's fields>, ...).
                record = self.server_args
            if not isinstance(record, ClassRef):
                raise ValueError(f"add_cli_args_from_dataclass of {ast.unparse(call.args[1])}: not a class")
            keywords = {k.arg: self.reader.eval(k.value, scope) for k in call.keywords if k.arg}
            DataclassFields(self, record, target.module).add(keywords.get("fields"), condition)
        elif isinstance(target, FuncRef) and not isinstance(target.node, ast.Lambda):
            inner = Scope(target.module, parent=target.closure)
            kwargs = {k.arg: self._maybe(k.value, scope) for k in call.keywords if k.arg}
            _bind(target.node.args, args, kwargs, inner, self.reader)
            self.run_body(target.node.body, inner, condition)
        else:
            raise ValueError(f"the parser is passed to {ast.unparse(func)}, which the reader cannot follow")

    def _maybe(self, node: ast.expr, scope: Scope) -> Any:
        try:
            return self.reader.eval(node, scope)
        except UnresolvedError:
            return None

    def _extend_local(self, name: str, node: ast.expr, scope: Scope, condition: str | None, single=False) -> None:
        """``choices.add(x)`` / ``.append`` / ``.extend`` / ``+=`` on a local of add_cli_args. Under an ``if``
        the value may or may not be there at run time: the table takes the union (the checker then accepts
        a value the parser might refuse, never the other way round) and notes the condition."""
        if name not in scope.values and name not in scope.statements:
            return
        try:
            extra = self.reader.eval(node, scope)
            items = [extra] if single else list(self.reader.iterate(extra))
            self.reader.lookup(name, scope)  # evaluate the local now, so the extension applies to it
        except UnresolvedError:
            return
        for item in items:
            scope.values[name] = _extend(scope.values[name], item)
            if condition is not None:
                self.notes.append(f"{name} gains {item!r} only when {condition}")

    # -- one add_argument call ---------------------------------------------------------------------------

    def add_argument(self, call: ast.Call, scope: Scope, condition: str | None) -> None:
        strings = []
        for arg in call.args:
            value = self.reader.eval(arg, scope)
            if not isinstance(value, str):
                raise ValueError(f"add_argument name {ast.unparse(arg)} is not a string")
            strings.append(value)
        if not strings or not all(s.startswith(tuple(self.parser_settings["prefix_chars"])) for s in strings):
            raise ValueError(f"positional argument {strings} in {SERVER_ARGS_MODULE}: not supported by the checker")
        kwargs: dict[str, Any] = {}
        unresolved: list[str] = []
        for keyword in call.keywords:
            if keyword.arg in (None, "help", "metavar"):
                continue
            try:
                kwargs[keyword.arg] = self.reader.eval(keyword.value, scope)
            except UnresolvedError as error:
                kwargs[keyword.arg] = Opaque(ast.unparse(keyword.value))
                if keyword.arg != "default":
                    unresolved.append(f"{keyword.arg}={ast.unparse(keyword.value)}: {error}")
        self.add(strings, kwargs, unresolved, condition)

    def add(self, strings: list[str], kwargs: dict[str, Any], unresolved: list[str], condition: str | None) -> None:
        """What ``parser.add_argument(*strings, **kwargs)`` registers."""
        option = OptionRecord(list(strings), unresolved=list(unresolved))
        if condition is not None:
            option.notes.append(f"registered only when {condition}")
        action = kwargs.get("action", "store")
        kind, nargs = self.action_kind(action, kwargs, option)
        option.action = kind
        option.nargs = nargs
        if kind == "boolean_optional":
            option.strings = []
            for string in strings:
                option.strings.append(string)
                if string.startswith("--"):
                    option.strings.append("--no-" + string[2:])
        if "type" in kwargs:
            option.type, option.type_name = self.type_kind(kwargs["type"])
        choices = kwargs.get("choices")
        if isinstance(choices, Opaque):
            option.choices = None
        elif choices is not None:
            try:
                values = list(self.reader.iterate(choices))
            except UnresolvedError as error:
                option.unresolved.append(f"choices: {error}")
                values = None
            if values is not None:
                values = [v.name if isinstance(v, EnumMember) else v for v in values]
                if not all(_is_literal(v) for v in values):
                    option.unresolved.append("choices: values that are not literals")
                    values = None
            option.choices = values
            if isinstance(choices, set | frozenset) and values is not None:
                option.choices = sorted(values, key=_sort_key)
        if option.type == "custom" and option.choices is not None:
            option.notes.append(f"choices are checked after {option.type_name}() converts the value")
        if "default" in kwargs and not isinstance(kwargs["default"], Opaque):
            option.default, option.has_default = kwargs["default"], True
        option.required = kwargs.get("required") is True
        self.options.append(option)

    def action_kind(self, action: Any, kwargs: dict[str, Any], option: OptionRecord) -> tuple[str, Any]:
        given = kwargs.get("nargs")
        if isinstance(action, str) and action in ARGPARSE_ACTIONS:
            kind = ARGPARSE_ACTIONS[action]
        elif isinstance(action, Ext) and action.name in ARGPARSE_ACTIONS:
            kind = ARGPARSE_ACTIONS[action.name]
        elif isinstance(action, ClassRef):
            option.action_class = action.node.name
            return "custom", self.custom_nargs(action, kwargs)
        else:
            option.unresolved.append(f"action={action!r}")
            return "custom", given
        if kind in NO_VALUE_KINDS or kind == "boolean_optional":
            return kind, 0
        return kind, given

    def custom_nargs(self, cls: ClassRef, kwargs: dict[str, Any]) -> Any:
        """nargs of an ``argparse.Action`` subclass of the wheel: the add_argument keyword, else the default
        of its ``__init__``'s ``nargs`` parameter, else argparse's (one value)."""
        if "nargs" in kwargs:
            return kwargs["nargs"]
        current: ClassRef | None = cls
        while current is not None:
            init = next((s for s in current.node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
            if init is not None:
                params = init.args.args
                defaults = [None] * (len(params) - len(init.args.defaults)) + list(init.args.defaults)
                for param, default in zip(params, defaults, strict=True):
                    if param.arg == "nargs" and default is not None:
                        return self.reader.eval(default, Scope(current.module))
                for stmt in ast.walk(init):
                    if isinstance(stmt, ast.Call) and ast.unparse(stmt.func).endswith("__init__"):
                        for keyword in stmt.keywords:
                            if keyword.arg == "nargs" and isinstance(keyword.value, ast.Constant):
                                return keyword.value.value
                return None
            bases = [b for b in self.reader.bases(current) if isinstance(b, ClassRef)]
            current = bases[0] if bases else None
        return None

    def type_kind(self, value: Any) -> tuple[str, str | None]:
        if isinstance(value, Ext) and value.name in BUILTIN_TYPES:
            return BUILTIN_TYPES[value.name], None
        if isinstance(value, FuncRef):
            if _returns_its_argument(value.node):
                return "str", value.name
            return "custom", value.name
        if isinstance(value, Ext | ClassRef):
            return "custom", value.name if isinstance(value, Ext) else value.node.name
        if isinstance(value, Opaque):
            return "custom", value.expr
        return "custom", repr(value)


def _returns_its_argument(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> bool:
    """A type callable that returns its argument unchanged or raises: argparse then checks the raw string."""
    if isinstance(node, ast.Lambda):
        return isinstance(node.body, ast.Name) and node.body.id == node.args.args[0].arg
    params = node.args.args
    if len(params) != 1:
        return False
    name = params[0].arg
    returns = [n for n in ast.walk(node) if isinstance(n, ast.Return)]
    assigned = any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store) for n in ast.walk(node))
    return bool(returns) and not assigned and all(isinstance(r.value, ast.Name) and r.value.id == name for r in returns)


class DataclassFields:
    """``add_cli_args_from_dataclass(parser, ServerArgs)`` of 0.5.2x, over the record's annotated fields.

    ServerArgs is assembled at import time from the namespace records listed in ``_INPUT_NAMESPACES``
    (``msgspec.defstruct``); each record's fields are ``name: A[T, "help"] = default`` or
    ``name: A[T, Arg(...)] = default``. The rules below are those of ``arg_utils.add_cli_args_from_dataclass``.
    """

    def __init__(self, builder: TableBuilder, record: ClassRef, helper_module: Module):
        self.builder, self.reader, self.record, self.helper_module = builder, builder.reader, record, helper_module
        arg_class = self.reader.global_value(helper_module, "Arg")
        if not isinstance(arg_class, ClassRef):
            raise ValueError("arg_utils.Arg is not a class")
        self.arg_class = arg_class

    def sources(self) -> list[ClassRef]:
        """The records whose fields ServerArgs holds: ``_INPUT_NAMESPACES`` when the module assembles it from
        namespaces (0.5.2x), else ServerArgs and its bases."""
        module = self.record.module
        if "_INPUT_NAMESPACES" in module.bindings:
            namespaces = self.reader.global_value(module, "_INPUT_NAMESPACES")
            if not all(isinstance(n, ClassRef) for n in namespaces):
                raise ValueError("_INPUT_NAMESPACES holds something that is not a class")
            return [*namespaces, self.record]
        chain: list[ClassRef] = []

        def walk(cls: ClassRef) -> None:
            for base in self.reader.bases(cls):
                if isinstance(base, ClassRef):
                    walk(base)
            chain.append(cls)

        walk(self.record)
        return chain

    def add(self, only: Any, condition: str | None) -> None:
        seen: set[str] = set()
        for source in self.sources():
            for stmt in source.node.body:
                if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                    continue
                name = stmt.target.id
                if name in seen or (only is not None and name not in only):
                    continue
                seen.add(name)
                self.field(source, name, stmt, condition)

    def field(self, source: ClassRef, name: str, stmt: ast.AnnAssign, condition: str | None) -> None:
        scope = Scope(source.module)
        if ast.unparse(stmt.annotation).startswith(("ClassVar", "typing.ClassVar")):
            return
        try:
            hint = self.reader.annotation(stmt.annotation, scope)
        except UnresolvedError as error:
            raise ValueError(f"{source.node.name}.{name}: cannot read the annotation: {error}") from error
        if not isinstance(hint, TAnnotated):
            return  # no Arg metadata: not a command-line option
        # arg_utils._unwrap_annotated: the first Arg(...) or bare help string; other metadata is skipped.
        meta: dict[str, Any] | None = None
        for item in hint.metadata:
            if isinstance(item, str):
                meta = {}
                break
            if isinstance(item, CallMeta) and _same_class(item.func, self.arg_class):
                meta = self.arg_keywords(item.node, scope)
                break
        if meta is None:
            return
        if meta.get("no_cli"):
            return
        unresolved = [f"{k}: {v.expr}" for k, v in meta.items() if isinstance(v, Opaque) and k not in ("help",)]
        cli_name = meta.get("cli_name") or "--" + name.replace("_", "-")
        names = [cli_name, *(meta.get("aliases") or [])]
        has_default, default = self.default(stmt, scope)
        kwargs: dict[str, Any] = {}
        if has_default:
            kwargs["default"] = default
        raw = hint.inner
        if meta.get("action") is not None:
            kwargs["action"] = meta["action"]
            kwargs.update(meta.get("action_kwargs") or {})
            self.builder.add(names, kwargs, unresolved, condition)
            return
        inner = raw
        if isinstance(raw, TUnion):
            non_none = [a for a in raw.args if a != NONE_TYPE]
            if len(non_none) == 1:
                inner = non_none[0]
        if isinstance(inner, TLiteral):
            values = list(inner.values)
            kwargs["choices"] = meta.get("choices") or values
            kwargs["type"] = meta.get("type_parser") or _infer(_literal_type(values[0]) if values else Ext("str"))
            self.builder.add(names, kwargs, unresolved, condition)
            return
        if isinstance(inner, TGeneric) and inner.origin == "list" and meta.get("type_parser") is None:
            element = inner.args[0] if inner.args else Ext("str")
            kwargs["type"] = _infer(element)
            kwargs["nargs"] = meta.get("nargs") or "+"
            if meta.get("choices"):
                kwargs["choices"] = meta["choices"]
            self.builder.add(names, kwargs, unresolved, condition)
            return
        if inner == Ext("bool"):
            kwargs["action"] = "store_true"
            self.builder.add(names, kwargs, unresolved, condition)
            return
        kwargs["type"] = meta.get("type_parser") or _infer(inner)
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if meta.get("nargs"):
            kwargs["nargs"] = meta["nargs"]
        required = meta.get("required")
        if (required is True or (required is None and not has_default)) and any(n.startswith("-") for n in names):
            kwargs["required"] = True
        self.builder.add(names, kwargs, unresolved, condition)

    def arg_keywords(self, call: ast.Call, scope: Scope) -> dict[str, Any]:
        """The keywords of a field's ``Arg(...)``, evaluated in the record's module; an expression that does
        not evaluate is kept as Opaque (and recorded as unresolved)."""
        out: dict[str, Any] = {}
        for keyword in call.keywords:
            if keyword.arg in (None, "help"):
                continue
            try:
                out[keyword.arg] = self.reader.eval(keyword.value, scope)
            except UnresolvedError as error:
                out[keyword.arg] = Opaque(f"{ast.unparse(keyword.value)}: {error}")
        return out

    def default(self, stmt: ast.AnnAssign, scope: Scope) -> tuple[bool, Any]:
        if stmt.value is None:
            return False, None
        value = stmt.value
        if isinstance(value, ast.Call) and ast.unparse(value.func).endswith("field"):
            keywords = {k.arg: k.value for k in value.keywords}
            if "default" in keywords:
                value = keywords["default"]
            elif "default_factory" in keywords:
                return True, Opaque(ast.unparse(keywords["default_factory"]))
            else:
                return False, None
        try:
            return True, self.reader.eval(value, scope)
        except UnresolvedError:
            return True, Opaque(ast.unparse(value))


def _same_class(a: Any, b: ClassRef) -> bool:
    return isinstance(a, ClassRef) and a.qualname == b.qualname


def _literal_type(value: Any) -> Ext:
    return (
        Ext(type(value).__name__)
        if isinstance(value, str | int | float) and not isinstance(value, bool)
        else Ext("str")
    )


def _infer(tp: Any) -> Ext:
    """``arg_utils._infer_type_func``: str, int and float map to themselves, anything else to str."""
    return tp if tp in (Ext("str"), Ext("int"), Ext("float")) else Ext("str")


# ---------------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_table(wheel_path: Path, release: str) -> dict[str, Any]:
    wheel = Wheel(wheel_path)
    builder = TableBuilder(wheel)
    builder.build()
    options = sorted((o.to_json() for o in builder.options), key=lambda o: o["name"])
    return {
        "format": FORMAT,
        "release": release,
        "source": {"wheel": wheel_path.name, "sha256": sha256(wheel_path), "files": sorted(wheel.read)},
        "parser": builder.parser_settings,
        "notes": sorted(set(builder.notes)),
        "options": options,
    }


def dumps(table: dict[str, Any]) -> str:
    """Stable, reviewable JSON: one option per line, keys sorted, so a regenerated table diffs by option."""
    head = {k: v for k, v in table.items() if k != "options"}
    lines = json.dumps(head, indent=1, sort_keys=True, ensure_ascii=False).rstrip("}").rstrip().rstrip("\n")
    options = ",\n".join("  " + json.dumps(o, sort_keys=True, ensure_ascii=False) for o in table["options"])
    return f'{lines},\n "options": [\n{options}\n ]\n}}\n'
