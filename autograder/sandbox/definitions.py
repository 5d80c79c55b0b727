"""Inside the worker: the code each cell defined, and whether graded calls still run it.

After a cell runs, each top-level ``def`` and ``class`` it defined is fingerprinted by the
code objects that compiling the cell produced (the cell's ``co_consts``): a function's
``__code__``; a class's methods, bases and the callables in its ``__dict__``. The worker
compares at the end of every recorded call and after every cell: code swapped after the
cell ran (``conv2d.__code__ = g.__code__``, ``MyConv2d.forward = F.conv2d``), a method added,
bases changed, or a name rebound by code that no cell shows (``globals()[...] = ...``) is
reported in the call's record as tampering.

Evidence, not proof: this runs next to the student's code, which can reach and disable it.
The harness's reading of every cell (``grading/tampering.py``) is the layer that decides.
"""

from __future__ import annotations

import ast
import types
from dataclasses import dataclass, field
from typing import Any

MAX_NOTES = 50
# Method decorators whose result still holds the code the cell compiled.
_PLAIN_DECORATORS = {"staticmethod", "classmethod", "property"}


@dataclass
class _Fingerprint:
    """What a cell's ``def`` / ``class`` bound its name to, as compiled."""

    obj: Any
    cell: int
    code: types.CodeType | None = None  # a function's
    methods: dict[str, types.CodeType] = field(default_factory=dict)  # a class's, by name
    bases: tuple = ()
    callables: frozenset[str] = frozenset()  # a class's __dict__ keys bound to code
    size: int = 0  # len(vars(cls)) then: a key added shows here first (cheap to compare)


def _first_line(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([d.lineno for d in decorators] + [node.lineno])


def _codes(code: types.CodeType) -> dict[tuple[str, int], types.CodeType]:
    return {(c.co_name, c.co_firstlineno): c for c in code.co_consts
            if isinstance(c, types.CodeType)}


def _code_of(value: Any) -> types.CodeType | None:
    """The code a class attribute runs (through staticmethod, classmethod, property)."""
    if isinstance(value, staticmethod | classmethod):
        value = value.__func__
    elif isinstance(value, property):
        value = value.fget
    return getattr(value, "__code__", None) if isinstance(value, types.FunctionType) else None


def _is_code(value: Any) -> bool:
    return callable(value) or isinstance(value, staticmethod | classmethod | property)


def _callables(cls: type) -> frozenset[str]:
    return frozenset(k for k, v in vars(cls).items() if _is_code(v))


def _plain(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return all(isinstance(d, ast.Name) and d.id in _PLAIN_DECORATORS
               for d in node.decorator_list)


def _rebound(tree: ast.Module) -> set[str]:
    """Top-level names a cell binds other than by its own top-level def / class."""
    names: set[str] = set()
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
                names.add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.Global | ast.Nonlocal):
                names.update(node.names)
    return names


class DefinedCode:
    """Fingerprints of the notebook's own definitions, and what changed since."""

    def __init__(self) -> None:
        self._known: dict[str, _Fingerprint] = {}
        self.notes: set[str] = set()  # seen after a cell: kept for every later record

    def after_cell(self, tree: ast.Module, code: types.CodeType, namespace: dict, cell: int,
                   *, complete: bool = True) -> None:
        """Fingerprint what the cell just defined; note what changed elsewhere meanwhile.

        ``complete`` False: the cell stopped with an error, so a ``def`` that did not run yet
        is forgotten rather than reported."""
        try:
            self._after_cell(tree, code, namespace, cell, complete)
        except Exception as exc:  # noqa: BLE001 - objects of the notebook can refuse anything
            self._note(f"the definitions of cell {cell} could not be checked "
                       f"({type(exc).__name__})")

    def _after_cell(self, tree: ast.Module, code: types.CodeType, namespace: dict,
                    cell: int, complete: bool) -> None:
        compiled = _codes(code)
        rebound = _rebound(tree)
        for name in rebound:
            self._known.pop(name, None)  # visible in the cell: the harness reads it
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self._known.pop(node.name, None)
                if node.name not in rebound:
                    self._fingerprint(node, compiled, namespace, cell, complete)
        for change in self.changes(namespace):
            self._note(change)

    def _fingerprint(self, node: ast.AST, compiled: dict, namespace: dict, cell: int,
                     complete: bool) -> None:
        name = node.name  # type: ignore[attr-defined]
        expected = compiled.get((name, _first_line(node)))
        obj = namespace.get(name)
        if expected is None or obj is None:
            return
        if isinstance(node, ast.ClassDef):
            if isinstance(obj, type) and obj.__name__ == name:
                self._fingerprint_class(node, expected, obj, cell, complete)
            return
        if node.decorator_list:
            return  # a decorator may return anything: the harness reads the decorator
        current = getattr(obj, "__code__", None)
        if current is not expected:
            if not complete or current is None:
                return
            self._note(f"{name}: its code was replaced in cell {cell}, after its def")
        self._known[name] = _Fingerprint(obj, cell, code=current)

    def _fingerprint_class(self, node: ast.ClassDef, body: types.CodeType, cls: type,
                           cell: int, complete: bool) -> None:
        compiled = _codes(body)
        methods = {}
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _plain(item):
                code = compiled.get((item.name, _first_line(item)))
                if code is not None:
                    methods[item.name] = code
        fingerprint = _Fingerprint(cls, cell, methods=methods, bases=cls.__bases__,
                                   callables=_callables(cls), size=len(vars(cls)))
        changed = self._class_changes(node.name, fingerprint, cls)
        if changed and not complete:
            return  # the class statement did not run: this is an earlier class of that name
        if changed:  # swapped in its own cell: said once, then compared as it is now
            self._note(f"{node.name}: methods were replaced in cell {cell}, after its class "
                       f"statement ({'; '.join(changed)[:300]})")
            fingerprint.methods = {m: c for m in methods
                                   if (c := _code_of(vars(cls).get(m))) is not None}
        self._known[node.name] = fingerprint

    # ------------------------------------------------------------------ comparing

    def changes(self, namespace: dict) -> list[str]:
        """What no longer runs the code its cell defined (empty: nothing seen)."""
        found: list[str] = []
        try:
            for name, fingerprint in self._known.items():
                found.extend(self._changes_of(name, fingerprint, namespace.get(name)))
        except Exception as exc:  # noqa: BLE001 - a namespace or class that refuses reading
            found.append(f"the notebook's definitions could not be checked ({type(exc).__name__})")
        return found[:MAX_NOTES]

    def _changes_of(self, name: str, fingerprint: _Fingerprint, obj: Any) -> list[str]:
        if obj is not fingerprint.obj:
            return [f"{name} was rebound after cell {fingerprint.cell} by code no cell shows"]
        if fingerprint.code is not None:
            if getattr(obj, "__code__", None) is not fingerprint.code:
                return [f"{name}.__code__ was replaced after cell {fingerprint.cell} ran"]
            return []
        return self._class_changes(name, fingerprint, obj)

    @staticmethod
    def _class_changes(name: str, fingerprint: _Fingerprint, cls: type) -> list[str]:
        found = []
        attributes = vars(cls)
        for method, code in fingerprint.methods.items():
            if _code_of(attributes.get(method)) is not code:
                found.append(f"{name}.{method} was replaced after cell {fingerprint.cell} ran")
        if cls.__bases__ != fingerprint.bases:
            found.append(f"the bases of {name} were changed after cell {fingerprint.cell} ran")
        if len(attributes) != fingerprint.size:
            for added in sorted(_callables(cls) - fingerprint.callables)[:10]:
                found.append(f"{name}.{added} was set after cell {fingerprint.cell} ran")
        return found

    def _note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.add(text)
