"""The notebook's cells as Python, read once: parsed as the worker runs them, and indexed.

Both static readings work from this index: the library rule (``forbidden.py``: what a graded
definition refers to) and the whole-notebook reading (``tampering.py``: code anywhere that
reaches the grader or changes graded code). Each cell is parsed once per notebook, the way the
worker compiles it (IPython ``%`` / ``!`` lines become ``pass``, so such a cell is read too),
and the index is kept for the next question of the same notebook.

Besides the top-level definitions and import aliases, the index lists every *write into an
object*: ``a.b = v``, ``a[k] = v``, ``del a.b``, ``for a.b in ...``, ``setattr(a, "b", v)``,
``type.__setattr__(a, "b", v)``, ``a.__dict__.update(...)``, ``functools.update_wrapper(a, v)``.
A write into a notebook definition from outside its own body is part of what that definition
is, so the library rule reads it with the definition.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from ..sandbox.worker import Refused, strip_magics
from .submission import CodeCell

MAX_SEEN_CHARS = 160
# Attribute writes that replace what an object runs, whatever value is written.
SWAP_ATTRIBUTES = frozenset({"forward", "_conv_forward"})
# Calls whose result is code bound to something else: written into an object, they swap code.
_REBINDERS = frozenset({
    "types.MethodType", "functools.partial", "functools.partialmethod", "staticmethod",
    "classmethod", "property",
})
_DICT_WRITERS = frozenset({"update", "__setitem__", "setdefault"})
# Methods that put something into a container (read with the container, never flagged).
_CONTAINER_WRITERS = _DICT_WRITERS | {"append", "extend", "insert", "add"}
_NAMESPACES = frozenset({"globals", "vars", "locals"})
# Calls that return an existing object rather than make a new one.
_FINDERS = frozenset({
    "type", "getattr", "vars", "globals", "locals", "eval", "exec", "__import__",
    "import_module", "reload", "get_objects", "get_referrers", "_getframe", "currentframe",
    "super",
})


@dataclass(frozen=True)
class ParsedCell:
    """One cell the worker runs, with its syntax tree (magic lines read as ``pass``)."""

    cell: CodeCell
    tree: ast.Module

    @property
    def index(self) -> int:
        """The cell's position in the notebook (0-based)."""
        return self.cell.index

    @functools.cached_property
    def nodes(self) -> tuple[ast.AST, ...]:
        """Every node of the tree, walked once for all the readings."""
        return tuple(ast.walk(self.tree))

    def seen(self, node: ast.AST) -> str:
        """The stripped source line of ``node`` (what a person reviewing needs to see)."""
        line = getattr(node, "lineno", 0)
        lines = self.cell.source.splitlines()
        return lines[line - 1].strip()[:MAX_SEEN_CHARS] if 0 < line <= len(lines) else ""


@dataclass(frozen=True)
class Definition:
    """A top-level ``def`` / ``class`` / assignment, or a write attached to one."""

    node: ast.AST
    parsed: ParsedCell

    @property
    def cell_index(self) -> int:
        """The cell it is in (0-based)."""
        return self.parsed.index

    def source_segment(self) -> str:
        """The definition's text as written in its cell ("" when it cannot be cut out)."""
        return ast.get_source_segment(self.parsed.cell.source, self.node) or ""


@dataclass(frozen=True)
class Write:
    """A write into an object's attributes or items (see the module docstring).

    ``root``: the name the written expression starts from (None: a call or other expression);
    ``attr``: the attribute written (None: an item, or a name computed at run time);
    ``computed``: the attribute's name is computed (``setattr(a, name, v)``);
    ``owner``: the top-level definition whose body holds the write (None: top-level code);
    ``local_instance``: the root was made in the same function by calling a class or
    function (``net = Net(); net.act = F.relu``), so the write changes that object only.
    """

    node: ast.AST
    parsed: ParsedCell
    root: str | None
    attr: str | None
    value: ast.AST | None
    owner: str | None
    computed: bool = False
    local_instance: bool = False  # root: an object the enclosing function made by a call


def is_dunder(attr: str | None) -> bool:
    """``__code__``, ``__class__``, ... (not ``__doc__``, which changes nothing that runs)."""
    return attr is not None and len(attr) > 4 and attr.startswith("__") and (
        attr.endswith("__")) and attr != "__doc__"


def safe_computed_name(node: ast.AST, avoid: Iterable[str] = ()) -> bool:
    """A computed attribute name that starts with a literal letter (``f"conv{i}"``,
    ``"layer" + str(i)``): it can name no dunder and no private attribute, nor any name of
    ``avoid`` that starts with that literal (``"f_" + x`` could be ``f_back``)."""
    while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        node = node.left
    if isinstance(node, ast.JoinedStr) and node.values:
        node = node.values[0]
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return False
    prefix = node.value
    return prefix[:1].isalpha() and not any(name.startswith(prefix) for name in avoid)


def dotted(node: ast.AST) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; None when the chain does not start from a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def root_name(node: ast.AST) -> str | None:
    """The name an attribute / item chain starts from (``a`` of ``a.b[0].c``), or None."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _chain_attributes(node: ast.AST) -> list[str]:
    names = []
    while isinstance(node, ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Attribute):
            names.append(node.attr)
        node = node.value
    return names


class Unreadable(Exception):
    """A cell the parser gave up on (nested too deep, too large): not read, so flagged."""


def parse_cell(source: str) -> ast.Module | None:
    """The tree the worker will run for ``source`` (None: the worker will not run it).

    Raises :class:`Unreadable` when the parser runs out of stack or memory."""
    try:
        return ast.parse(source)
    except ValueError:
        return None  # null bytes: the worker refuses the cell
    except SyntaxError:
        pass
    except (RecursionError, MemoryError) as exc:
        raise Unreadable(type(exc).__name__) from None
    try:
        stripped, notes = strip_magics(source)
    except Refused:
        return None
    if not notes:
        return None
    try:
        return ast.parse(stripped)
    except (SyntaxError, ValueError):
        return None
    except (RecursionError, MemoryError) as exc:
        raise Unreadable(type(exc).__name__) from None


class NotebookIndex:
    """Parsed cells, top-level definitions, import aliases and writes into objects."""

    def __init__(self, cells: Iterable[CodeCell]):
        self.cells: list[ParsedCell] = []
        self.definitions: dict[str, Definition] = {}
        self.aliases: dict[str, str] = {}
        self.writes: list[Write] = []
        self.unreadable: list[CodeCell] = []  # cells the parser gave up on
        self.every_definition: dict[str, list[Definition]] = {}  # earlier ones too
        self.function_names: set[str] = set()  # every def / class, at any depth
        for cell in cells:
            try:
                tree = parse_cell(cell.source)
            except Unreadable:
                self.unreadable.append(cell)
                continue
            if tree is None:
                continue  # such a cell cannot run, so it cannot define anything either
            parsed = ParsedCell(cell, tree)
            self.cells.append(parsed)
            self._index_cell(parsed)

    def _index_cell(self, parsed: ParsedCell) -> None:
        for node in parsed.tree.body:
            owner = None
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.definitions[node.name] = Definition(node, parsed)
                self.every_definition.setdefault(node.name, []).append(self.definitions[node.name])
                owner = node.name
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.definitions[target.id] = Definition(node, parsed)
            writes = list(_writes_in(node, parsed, owner))
            if any(w.root not in (None, "self") for w in writes):  # else none can be local
                made = _instances_made(node)
                writes = [replace(w, local_instance=w.root in made.get(id(w.node), ()))
                          for w in writes]
            self.writes.extend(writes)
        for node in parsed.nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.function_names.add(node.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    local = alias.asname or alias.name.split(".")[0]
                    self.aliases[local] = alias.name if alias.asname else local
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def all_definitions(self, name: str) -> list[Definition]:
        """Every top-level ``def`` / ``class`` of ``name``, in notebook order."""
        return self.every_definition.get(name, [])

    def qualify(self, parts: list[str]) -> str:
        """The dotted name with its first part's import alias resolved."""
        head = self.aliases.get(parts[0], parts[0])
        return ".".join([head, *parts[1:]])

    def is_code(self, name: str) -> bool:
        """True for a top-level ``def`` or ``class`` of the notebook."""
        entry = self.definitions.get(name)
        return entry is not None and isinstance(
            entry.node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)

    def resolve(self, name: str | None) -> str | None:
        """Follow top-level ``alias = Name`` assignments to the definition they name."""
        seen: set[str] = set()
        while name is not None and name not in seen:
            seen.add(name)
            entry = self.definitions.get(name)
            node = entry.node if entry is not None else None
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Name)
                    and node.value.id in self.definitions):
                return name
            name = node.value.id
        return name

    def target_of(self, write: Write) -> str | None:
        """The top-level definition a write goes into, from outside its body (else None)."""
        name = self.resolve(write.root)
        if name is None or name not in self.definitions or name == write.owner:
            return None
        node = self.definitions[name].node
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign) and not (
                _makes_object(node.value) or _is_literal(node.value)):
            return None  # `R = sys.modules[...]`: an object found, not one the notebook made
        return name

    def is_swap(self, write: Write) -> bool:
        """A write that replaces code: a dunder, ``forward``, or a value that is code."""
        if is_dunder(write.attr) or write.attr in SWAP_ATTRIBUTES:
            return True
        return self.is_code_value(write.value)

    def is_code_value(self, value: ast.AST | None) -> bool:
        """A lambda, a notebook function or class, an imported name, or code rebound."""
        if isinstance(value, ast.Lambda):
            return True
        if isinstance(value, ast.Call):
            parts = dotted(value.func)
            return parts is not None and self.qualify(parts) in _REBINDERS
        parts = dotted(value) if value is not None else None
        if parts is None:
            return False
        head = self.resolve(parts[0])
        return (head is not None and self.is_code(head)) or parts[0] in self.aliases or (
            len(parts) == 1 and parts[0] in self.function_names)

    def in_own_body(self, write: Write) -> bool:
        """``self.x = ...`` in a method, or a definition writing into itself."""
        return write.owner is not None and (
            write.root == "self" or self.resolve(write.root) == write.owner)

    @functools.cached_property
    def attached(self) -> dict[str, list[Write]]:
        """Top-level name -> the writes into it from outside its own body."""
        attached: dict[str, list[Write]] = {}
        for write in self.writes:
            target = self.target_of(write)
            if target is not None:
                attached.setdefault(target, []).append(write)
        return attached

    def swaps_elsewhere_of(self, write: Write) -> bool:
        """A write that swaps code into something that is no top-level name of the notebook
        (an imported module's object, a helper's parameter, ``type(x)``)."""
        if self.target_of(write) is not None or self.in_own_body(write):
            return False
        if write.local_instance:  # a fresh object: only a swap of what it runs counts
            return is_dunder(write.attr) or write.attr in SWAP_ATTRIBUTES
        return self.is_swap(write)

    @functools.cached_property
    def swaps_elsewhere(self) -> list[Write]:
        """Every write :meth:`swaps_elsewhere_of` accepts: any graded call may run them."""
        return [w for w in self.writes if self.swaps_elsewhere_of(w)]


def _writes_in(statement: ast.AST, parsed: ParsedCell, owner: str | None) -> Iterator[Write]:
    for node in ast.walk(statement):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                yield from _targets(target, node, node.value, parsed, owner)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
            yield from _targets(node.target, node, node.value, parsed, owner)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                yield from _targets(target, node, None, parsed, owner)
        elif isinstance(node, ast.For | ast.AsyncFor):
            yield from _targets(node.target, node, node.iter, parsed, owner)
        elif isinstance(node, ast.comprehension):
            yield from _targets(node.target, node.iter, node.iter, parsed, owner)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            yield from _targets(node.optional_vars, node.context_expr, node.context_expr,
                                parsed, owner)
        elif isinstance(node, ast.Call):
            write = _call_write(node, parsed, owner)
            if write is not None:
                yield write
            elif _is_namespace_update(node):
                for keyword in node.keywords:
                    yield Write(node, parsed, keyword.arg, None, keyword.value, owner)


def _targets(target: ast.AST, node: ast.AST, value: ast.AST | None, parsed: ParsedCell,
             owner: str | None) -> Iterator[Write]:
    if isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _targets(element, node, value, parsed, owner)
    elif isinstance(target, ast.Starred):
        yield from _targets(target.value, node, value, parsed, owner)
    elif isinstance(target, ast.Attribute):
        yield Write(node, parsed, root_name(target), target.attr, value, owner)
    elif isinstance(target, ast.Subscript) and _is_namespace(target.value) and (
            isinstance(target.slice, ast.Constant) and isinstance(target.slice.value, str)):
        # globals()["conv2d"] = g: the name itself rebound, out of the reading's sight
        yield Write(node, parsed, target.slice.value, None, value, owner)
    elif isinstance(target, ast.Subscript):
        inner = _chain_attributes(target.value)
        attr = "__dict__" if "__dict__" in inner else None
        yield Write(node, parsed, root_name(target), attr, value, owner)


def _call_write(node: ast.Call, parsed: ParsedCell, owner: str | None) -> Write | None:
    """setattr / delattr / X.__setattr__ / a __dict__ update / functools.update_wrapper."""
    func, args = node.func, node.args
    name = func.id if isinstance(func, ast.Name) else (
        func.attr if isinstance(func, ast.Attribute) else None)
    if name in ("setattr", "delattr", "__setattr__", "__delattr__") and args:
        bound = isinstance(func, ast.Attribute) and name.startswith("__") and len(args) < 3 and (
            not (name == "__delattr__" and len(args) == 2))
        target = func.value if bound else args[0]
        rest = args if bound else args[1:]
        key = rest[0] if rest else None
        constant = isinstance(key, ast.Constant) and isinstance(key.value, str)
        value = rest[1] if len(rest) > 1 else None
        computed = not constant and not (key is not None and safe_computed_name(key))
        return Write(node, parsed, root_name(target), key.value if constant else None,
                     value, owner, computed=computed)
    if _is_namespace_update(node):
        return None  # globals().update(conv2d=g): one write per name, see _writes_in
    if name in _DICT_WRITERS and isinstance(func, ast.Attribute) and (
            "__dict__" in _chain_attributes(func.value) or _is_namespace(func.value)):
        # X.__dict__.update(...), globals().update(conv2d=g): the whole call is the value
        return Write(node, parsed, root_name(func.value), "__dict__", node, owner)
    if name in _CONTAINER_WRITERS and isinstance(func, ast.Attribute):
        return Write(node, parsed, root_name(func.value), None, node, owner)  # OPS.append(f)
    if name == "update_wrapper" and len(args) >= 2:
        return Write(node, parsed, root_name(args[0]), "__wrapped__", args[1], owner)
    return None


def _is_namespace(node: ast.AST) -> bool:
    """``globals()``, ``vars(x)``, ``locals()``: a namespace written as a dict."""
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
        node.func.id in _NAMESPACES)


def _is_namespace_update(node: ast.Call) -> bool:
    func = node.func
    return isinstance(func, ast.Attribute) and func.attr == "update" and (
        _is_namespace(func.value)) and not node.args and all(k.arg for k in node.keywords)


def _instances_made(statement: ast.AST) -> dict[int, frozenset[str]]:
    """id(node) -> the names the innermost function around it binds to a new object."""
    made: dict[int, frozenset[str]] = {}
    for function in ast.walk(statement):  # outer functions first, inner ones override
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        names = frozenset(
            target.id for node in ast.walk(function)
            if isinstance(node, ast.Assign) and _makes_object(node.value)
            for target in node.targets if isinstance(target, ast.Name))
        for node in ast.walk(function):
            made[id(node)] = names
    return made


def _makes_object(value: ast.AST) -> bool:
    if not isinstance(value, ast.Call):
        return False
    parts = dotted(value.func)
    return parts is not None and parts[-1] not in _FINDERS and not is_dunder(parts[-1])


@functools.lru_cache(maxsize=8)
def _cached_index(cells: tuple[CodeCell, ...]) -> NotebookIndex:
    return NotebookIndex(cells)


def notebook_index(cells: Iterable[CodeCell]) -> NotebookIndex:
    """The index of ``cells``, built once per notebook (every question reads the same one)."""
    return _cached_index(tuple(cells))


def _is_literal(value: ast.AST | None) -> bool:
    """A constant or a display of constants (``[1, 2]``, ``{"a": 0.5}``, ``np.array`` aside)."""
    return value is not None and all(
        isinstance(n, ast.Constant | ast.List | ast.Tuple | ast.Dict | ast.Set | ast.Load
                   | ast.UnaryOp | ast.USub | ast.UAdd)
        for n in ast.walk(value))
