"""The whole-notebook reading: code in any cell that reaches the grader or changes graded code.

The library rule (``forbidden.py``) reads what a graded definition refers to; this reading
reads *every* cell, because a cell that nothing graded refers to can still, while it runs,
reach the worker's own recorder (``sys.modules``, the garbage collector, stack frames), switch
off torch's dispatch modes, or swap the code of a graded function after it was read
(``conv2d.__code__ = ...``, ``MyConv2d.forward = F.conv2d``).

Each thing seen is :class:`Evidence` with its cell, line and the line itself, and is either

- **decisive**: an explicit reach of the grader (the ``autograder`` modules, the dispatch-mode
  and audit-hook machinery the recorder relies on, ``torch._C``'s private functions). No honest
  solution does it, so it zeroes every question whose rules the recorder serves; or
- **ambiguous**: what a student might do innocently (``gc``, frames, ``__code__``, a method
  set on a class, interpreter internals, code that hides what it calls). It becomes a review
  flag: it changes no score.

Module objects that lead anywhere (``sys``, ``gc``, ``builtins``, ``inspect``, ...) count when
used as anything but a direct read of a known harmless attribute: ``m = sys; m.modules`` is
flagged at ``m = sys``. The reading is one walk over each cell's tree (parsed once, see
``code_index.py``).
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..core.catalogue import N_, _
from .code_index import (
    NotebookIndex,
    ParsedCell,
    Write,
    dotted,
    is_dunder,
    notebook_index,
    safe_computed_name,
)
from .forbidden import REASONS as HIDING_REASONS
from .forbidden import installed_modules, writes_code_file
from .submission import CodeCell

_AUTOGRADER = re.compile(r"autograder\w*", re.IGNORECASE)
# What the worker's recorder rests on: torch's dispatch-mode stack, audit hooks, the global
# forward pre-hooks. Attribute names, whatever object they are read from.
RECORDER_ATTRIBUTES = frozenset({
    "_python_dispatch", "_disable_current_modes", "_pop_mode", "_push_mode",
    "_pop_mode_temporarily", "DisableTorchDispatch", "_DisableTorchDispatch",
    "_get_current_dispatch_mode", "_get_current_dispatch_mode_stack", "_get_dispatch_mode",
    "_set_dispatch_mode", "_unset_dispatch_mode", "_len_torch_dispatch_stack",
    "_get_dispatch_stack_at", "TorchDispatchMode", "_ExcludeDispatchKeyGuard",
    "addaudithook", "_global_forward_pre_hooks", "_start_new_thread",
})
_RECORDER_PREFIXES = ("torch._C._", "torch.utils._python_dispatch", "sys.audit")
FRAME_ATTRIBUTES = frozenset({
    "_getframe", "_current_frames", "currentframe", "getouterframes", "getinnerframes",
    "getframeinfo", "tb_frame", "tb_next", "f_back", "f_globals", "f_locals", "f_builtins",
    "f_code", "gi_frame", "cr_frame", "ag_frame", "__traceback__", "settrace", "setprofile",
    "gettrace", "getprofile", "_getframemodulename",
})
_FRAME_NAMES = frozenset({"inspect.stack", "inspect.trace", "sys.exc_info", "sys.exception",
                          "sys.last_traceback", "sys.monitoring"})
GC_ATTRIBUTES = frozenset({"get_objects", "get_referrers", "get_referents"})
# What leads from an ordinary object to any other one. Reading a class's bases or MRO is left
# out on purpose (students print ``Net.__mro__``): from a class, a further step listed here
# (``__subclasses__``, a function's ``__globals__``) or a ``__dict__`` is needed.
INTERNAL_ATTRIBUTES = frozenset({
    "__subclasses__", "__globals__", "__closure__",
    "__self__", "__func__", "__reduce__", "__reduce_ex__", "__getattribute__", "__code__",
    "__wrapped__", "cell_contents", "__loader__", "__spec__", "__setattr__", "__delattr__",
    "__import__",
})
# Module objects that lead to any object, and what of each may be read without a flag.
_HARMLESS: dict[str, frozenset[str]] = {
    "sys": frozenset({
        "version", "version_info", "platform", "path", "stdout", "stderr", "stdin", "argv",
        "exit", "maxsize", "float_info", "int_info", "hash_info", "executable", "getsizeof",
        "getrecursionlimit", "setrecursionlimit", "byteorder", "float_repr_style",
        "implementation", "flags", "prefix", "base_prefix", "exec_prefix", "maxunicode",
        "getdefaultencoding", "getfilesystemencoding", "api_version", "dont_write_bytecode",
        "stdlib_module_names", "builtin_module_names", "copyright", "__stdout__",
        "__stderr__"}),
    "gc": frozenset({
        "collect", "enable", "disable", "isenabled", "get_count", "get_threshold",
        "set_threshold", "get_stats", "freeze", "unfreeze", "get_freeze_count", "is_tracked",
        "is_finalized"}),
    "builtins": frozenset(),
    "inspect": frozenset({
        "signature", "getsource", "getdoc", "cleandoc", "isclass", "isfunction", "ismethod",
        "ismodule", "Parameter", "Signature"}),
    "importlib": frozenset(),
    "types": frozenset({"SimpleNamespace", "MappingProxyType", "GeneratorType", "NoneType"}),
    "ctypes": frozenset(),
    "_ctypes": frozenset(),
    "cffi": frozenset(),
    "marshal": frozenset(),
    "_thread": frozenset(),
}
# The kind a flagged use of each module is filed under (default: "internals").
_MODULE_KINDS = {
    "sys": "internals", "gc": "walks_objects", "builtins": "builtins_lookup",
    "inspect": "introspection", "importlib": "dynamic_import", "types": "introspection",
    "ctypes": "native_code", "_ctypes": "native_code", "cffi": "native_code",
    "marshal": "introspection", "_thread": "internals",
}
_FLAGGED_ON_IMPORT = {
    "ctypes": "native_code", "_ctypes": "native_code", "cffi": "native_code",
    "marshal": "introspection", "_thread": "internals", "imp": "dynamic_import",
    "runpy": "dynamic_import", "pkgutil": "dynamic_import", "zipimport": "dynamic_import",
}
_QUALIFIED_KINDS = {
    "sys.modules": "sys_modules", "types.MethodType": "code_swap",
    "functools.update_wrapper": "code_swap", "functools.partialmethod": "code_swap",
    "operator.attrgetter": "computed_attribute", "operator.methodcaller": "computed_attribute",
}
_BUILTIN_KINDS = {
    "eval": "dynamic_code", "exec": "dynamic_code", "compile": "dynamic_code",
    "vars": "namespace_lookup", "globals": "namespace_lookup", "locals": "namespace_lookup",
    "__import__": "dynamic_import", "__builtins__": "builtins_lookup",
    "getattr": "computed_attribute", "setattr": "computed_attribute",
    "delattr": "computed_attribute",
}
_ATTRIBUTE_CALLS = {"getattr", "setattr", "delattr", "hasattr"}
_MODULE_ATTRIBUTES = {"sys", "gc", "builtins", "inspect", "importlib", "ctypes"}

# Every name that can make a dotted name notable (the fast path of _kind_of_parts).
_NOTABLE = (RECORDER_ATTRIBUTES | FRAME_ATTRIBUTES | GC_ATTRIBUTES | INTERNAL_ATTRIBUTES
            | _MODULE_ATTRIBUTES | {"__builtins__", "__dict__"})

DECISIVE_KINDS = frozenset({"grader_reach", "recorder_patch"})
REASONS = {  # English, marked for the catalogue: translated where read (Evidence.reason)
    **HIDING_REASONS,
    "grader_reach": N_("the code reaches into the modules of the grading system itself "
                       "(autograder): an honest solution has no need for this"),
    "recorder_patch": N_("the code touches the machinery the grader records calls with "
                         "(torch dispatch modes, private torch._C functions, audit hooks, "
                         "global module hooks): an honest solution has no need for this"),
    "code_swap": N_("the code changes an object's code or methods after it was defined "
                    "(__code__, a method of a class, setattr, __class__, types.MethodType): "
                    "the grader read one definition, but another one may be what runs"),
    "walks_objects": N_("the code walks the interpreter's objects (gc.get_objects, "
                        "get_referrers): that way any object can be reached, the grader's "
                        "own included"),
    "walks_frames": N_("the code reads stack frames (sys._getframe, inspect.currentframe, "
                       "f_back, f_globals, tb_frame, settrace): that way the grader's objects "
                       "can be reached"),
    "internals": N_("the code uses interpreter internals (__subclasses__, __globals__, "
                    "__closure__, __self__, __reduce__, private parts of sys) through which "
                    "any object can be reached"),
    "unreadable_cell": N_("the cell could not be parsed (nested too deeply or too large): the "
                          "grader did not read its code"),
    "module_object": N_("the module sys, gc, builtins, inspect, importlib or ctypes is used as "
                        "a value (assigned, passed, reached through another module) rather "
                        "than through a known safe attribute: the text does not show what is "
                        "done with it"),
}


@dataclass(frozen=True)
class Evidence:
    """One thing the reading saw: where, what, and whether it decides a score alone.

    ``target``: the top-level definition of the notebook that a write changes (None: what
    was seen can touch any graded call).
    """

    kind: str
    cell: int  # 1-based, as a person counts cells
    line: int
    seen: str
    target: str | None = None

    @property
    def decisive(self) -> bool:
        """Zeroes the questions the recorder serves (else: a review flag)."""
        return self.kind in DECISIVE_KINDS

    @property
    def reason(self) -> str:
        """Why this was noted, for the student and the reviewer (the run's language)."""
        return _(REASONS[self.kind])

    def describe(self) -> str:
        """Where and what was seen, for feedback (``cell 3, line 2: `sys.modules[...]` ``)."""
        return _("cell {cell}, line {line}: `{seen}`").format(
            cell=self.cell, line=self.line, seen=self.seen)


@dataclass(frozen=True)
class NotebookReading:
    """Everything the whole-notebook reading saw, in notebook order."""

    evidence: tuple[Evidence, ...] = ()

    @property
    def decisive(self) -> tuple[Evidence, ...]:
        """What zeroes the recorder's questions."""
        return tuple(e for e in self.evidence if e.decisive)

    def flags_for(self, reached: Iterable[str]) -> tuple[Evidence, ...]:
        """The ambiguous evidence that concerns a question reading ``reached`` names."""
        names = frozenset(reached)
        return tuple(e for e in self.evidence
                     if not e.decisive and (e.target is None or e.target in names))


class _Reader:
    """One walk over every cell."""

    def __init__(self, index: NotebookIndex, known_modules: frozenset[str]):
        self.index = index
        self.known = known_modules
        self.seen: dict[tuple[int, int, str], Evidence] = {}

    def note(self, kind: str, parsed: ParsedCell, node: ast.AST,
             target: str | None = None) -> None:
        line = getattr(node, "lineno", 0)
        key = (parsed.index, line, kind)
        if key not in self.seen:
            self.seen[key] = Evidence(kind, parsed.index + 1, line, parsed.seen(node), target)

    # ------------------------------------------------------------------ cells

    def read_cell(self, parsed: ParsedCell) -> None:
        nodes = parsed.nodes
        bases = {id(n.value) for n in nodes if isinstance(n, ast.Attribute)}
        called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
        bases |= _membership_tests(nodes)
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                self.read_import(parsed, node)
            elif isinstance(node, ast.Attribute) and id(node) not in bases:
                self.read_chain(parsed, node)
            elif isinstance(node, ast.Name) and id(node) not in bases:
                self.read_name(parsed, node, called=id(node) in called)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                self.read_string(parsed, node)
            elif isinstance(node, ast.Call):
                self.read_call(parsed, node)

    def read_import(self, parsed: ParsedCell, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [f"{module}.{alias.name}" for alias in node.names] or [module]
            top = module.split(".")[0] if node.level == 0 else ""
        else:
            names = [alias.name for alias in node.names]
            top = ""
        for name in names:
            self.read_parts(parsed, node, name.split("."), name)
            head = top or name.split(".")[0]
            if head in _FLAGGED_ON_IMPORT:
                self.note(_FLAGGED_ON_IMPORT[head], parsed, node)
            elif not head or head not in self.known:
                self.note("unknown_module", parsed, node)

    def read_chain(self, parsed: ParsedCell, node: ast.Attribute) -> None:
        parts = dotted(node)
        if parts is not None:
            self.read_parts(parsed, node, parts, self.qualify(parts))
            return
        attributes = []
        inner: ast.AST = node
        while isinstance(inner, ast.Attribute):
            attributes.append(inner.attr)
            inner = inner.value
        self.read_parts(parsed, node, ["", *attributes[::-1]], None)

    def read_name(self, parsed: ParsedCell, node: ast.Name, *, called: bool) -> None:
        qualified = self.qualify([node.id])
        self.read_parts(parsed, node, [node.id], qualified)
        if qualified in _HARMLESS:
            self.note("module_object", parsed, node)  # `m = sys`, `f(gc)`: used as a value
        kind = _BUILTIN_KINDS.get(node.id)
        if kind is not None and not (called and node.id in _ATTRIBUTE_CALLS):
            self.note(kind, parsed, node)  # getattr & co. are read at their call

    def read_string(self, parsed: ParsedCell, node: ast.Constant) -> None:
        text: str = node.value
        if len(text) > 200:
            return  # prose, not a name
        parts = text.split(".")
        if any(_AUTOGRADER.fullmatch(part) for part in parts):
            self.note("grader_reach", parsed, node)
        elif any(part in RECORDER_ATTRIBUTES for part in parts):
            self.note("recorder_patch", parsed, node)
        elif text in FRAME_ATTRIBUTES:
            self.note("walks_frames", parsed, node)
        elif text in GC_ATTRIBUTES:
            self.note("walks_objects", parsed, node)
        elif text in INTERNAL_ATTRIBUTES:
            self.note("internals", parsed, node)

    def read_call(self, parsed: ParsedCell, node: ast.Call) -> None:
        func = node.func
        if not (isinstance(func, ast.Name) and func.id in _ATTRIBUTE_CALLS) or (
                len(node.args) < 2):
            return
        name = node.args[1]
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
            if func.id != "hasattr" and not safe_computed_name(name, _NOTABLE):  # hasattr: bool
                self.note("computed_attribute", parsed, node)
            return
        target = dotted(node.args[0])
        parts = [*(target or [""]), name.value]
        self.read_parts(parsed, node, parts, self.qualify(parts))

    # ------------------------------------------------------------------ names

    def qualify(self, parts: list[str]) -> str | None:
        """The module path of a name that starts from an import (None: a local name)."""
        return self.index.qualify(parts) if parts[0] in self.index.aliases else None

    def read_parts(self, parsed: ParsedCell, node: ast.AST, parts: list[str],
                   qualified: str | None) -> None:
        """One dotted name (``a.b.c``; ``""`` first when it starts from an expression)."""
        kind = _kind_of_parts(parts, qualified)
        if kind is not None:
            self.note(kind, parsed, node)

    # ------------------------------------------------------------------ writes

    def read_write(self, write: Write) -> None:
        index = self.index
        if index.in_own_body(write) and not is_dunder(write.attr):
            return  # `self.x = ...` in a method: read with the class by the library rule
        target = index.target_of(write)
        if write.computed:
            self.note("computed_attribute", write.parsed, write.node, target)
        if target is not None:
            swap = index.is_swap(write) or index.is_code(target)
        else:
            swap = index.swaps_elsewhere_of(write) or is_dunder(write.attr)
        if swap:
            self.note("code_swap", write.parsed, write.node, target)


def _kind_of_parts(parts: list[str], qualified: str | None) -> str | None:
    """The kind of evidence a dotted name is, or None for an ordinary name."""
    if qualified is None and _NOTABLE.isdisjoint(parts):
        if "utograder" not in "".join(parts).lower():
            return None  # the common case, `x.shape`, decided at once
    if any(_AUTOGRADER.fullmatch(part) for part in parts):
        return "grader_reach"
    attributes = qualified.split(".")[1:] if qualified is not None else parts[1:]
    if any(a in RECORDER_ATTRIBUTES for a in parts) or (
            qualified is not None and qualified.startswith(_RECORDER_PREFIXES)):
        return "recorder_patch"
    if any(a in FRAME_ATTRIBUTES for a in attributes) or (
            qualified is not None and qualified.startswith(tuple(_FRAME_NAMES))):
        return "walks_frames"
    if any(a in GC_ATTRIBUTES for a in attributes):
        return "walks_objects"
    if any(a in INTERNAL_ATTRIBUTES for a in attributes):
        return "internals"
    if any(a == "__builtins__" for a in parts):
        return "builtins_lookup"
    if any(a == "__dict__" for a in attributes) and parts[0] != "self":
        return "namespace_lookup"
    if any(a in _MODULE_ATTRIBUTES for a in attributes):
        return "module_object"  # `os.sys`: a module reached through another one
    if qualified is None:
        return None
    return _kind_of_module_name(qualified)


def _kind_of_module_name(qualified: str) -> str | None:
    for name, kind in _QUALIFIED_KINDS.items():
        if qualified == name or qualified.startswith(name + "."):
            return kind
    module, _, rest = qualified.partition(".")
    harmless = _HARMLESS.get(module)
    if harmless is None or not rest:
        return None
    if rest.split(".")[0] in harmless:
        return None
    return _MODULE_KINDS.get(module, "internals")


def _membership_tests(nodes: Iterable[ast.AST]) -> set[int]:
    """``"google.colab" in sys.modules``: the dict is only asked whether it holds a name."""
    return {id(node.comparators[0]) for node in nodes
            if isinstance(node, ast.Compare) and len(node.ops) == 1
            and isinstance(node.ops[0], ast.In | ast.NotIn)
            and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)
            and not _AUTOGRADER.search(node.left.value)}


def _can_import_local_code(index: NotebookIndex, kinds: set[str]) -> bool:
    """Whether an import of an unknown module can load anything: the worker runs with the
    current folder off ``sys.path``, so only a notebook that changes the path, imports at run
    time, runs built code or writes a code file can import a module of its own."""
    if kinds & {"dynamic_import", "dynamic_code", "sys_modules", "internals"}:
        return True
    for parsed in index.cells:
        for node in parsed.nodes:
            parts = dotted(node) if isinstance(node, ast.Attribute) else None
            if parts and index.qualify(parts).startswith(("sys.path.", "site.")):
                return True
            if writes_code_file(node):
                return True
    return False


@functools.lru_cache(maxsize=8)
def _read(cells: tuple[CodeCell, ...], known_modules: frozenset[str]) -> NotebookReading:
    index = notebook_index(cells)
    reader = _Reader(index, known_modules)
    for parsed in index.cells:
        reader.read_cell(parsed)
    for write in index.writes:
        reader.read_write(write)
    for cell in index.unreadable:
        reader.seen[(cell.index, 0, "unreadable_cell")] = Evidence(
            "unreadable_cell", cell.index + 1, 0, cell.source[:80].replace("\n", " "))
    kinds = {e.kind for e in reader.seen.values()}
    if "unknown_module" in kinds and not _can_import_local_code(index, kinds):
        reader.seen = {k: e for k, e in reader.seen.items() if e.kind != "unknown_module"}
        kinds.discard("unknown_module")  # such an import just fails in the worker
    if kinds & {"unknown_module", "dynamic_import"}:
        for parsed in index.cells:  # what such an import may load
            for node in parsed.nodes:
                if writes_code_file(node):
                    reader.note("writes_module", parsed, node)
    evidence = sorted(reader.seen.values(), key=lambda e: (e.cell, e.line, e.kind))
    return NotebookReading(tuple(evidence))


def read_notebook(cells: Iterable[CodeCell],
                  known_modules: frozenset[str] | None = None) -> NotebookReading:
    """Read every cell for code that reaches the grader or changes graded code."""
    known = installed_modules() if known_modules is None else known_modules
    return _read(tuple(cells), known)
