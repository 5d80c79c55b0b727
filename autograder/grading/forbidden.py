"""Static reading of the code a question grades: library routines it names, code that hides.

Decided in the trusted harness from the submitted source (the notebook's cells as text): the
graded function or class, plus every function, class or top-level value of the notebook it
refers to, is read for references to routines that do the convolution or pooling for the
student. Import aliases anywhere in the notebook are resolved, so ``from torch.nn import
functional as Q`` and ``Q.conv2d`` are found too, and ``getattr(np, "convolve")`` with a
constant name counts as ``np.convolve``.

A reading cannot decide what code will call. Code that hides what it calls (a computed
``getattr``, ``sys.modules``, importlib, ``reload``, ``vars()`` / ``__dict__``, ctypes, a module
the notebook wrote or brought along, eval / exec) is not zeroed here: it becomes a review flag
with cell and line, and the run's own record (see ``sandbox/tracing.py``) decides the score.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..core.catalogue import N_, _
from ..core.results import ReviewFlag
from .code_index import Definition, NotebookIndex, dotted, notebook_index
from .routines import ALIASES
from .submission import CodeCell

# Qualified-name prefixes of routines that do a convolution, a pooling or sliding windows.
FORBIDDEN_PREFIXES: tuple[str, ...] = (
    "torch.nn.functional.conv",
    "torch.nn.functional.max_pool",
    "torch.nn.functional.avg_pool",
    "torch.nn.functional.adaptive_",
    "torch.nn.functional.lp_pool",
    "torch.nn.functional.unfold",
    "torch.nn.functional.fold",
    "torch.nn.Conv",
    "torch.nn.LazyConv",
    "torch.nn.MaxPool",
    "torch.nn.AvgPool",
    "torch.nn.AdaptiveMaxPool",
    "torch.nn.AdaptiveAvgPool",
    "torch.nn.Unfold",
    "torch.nn.grad",
    "torch.nn.modules.conv",
    "torch.nn.modules.pooling",
    "torch.conv",
    "torch.convolution",
    "torch._convolution",
    "torch.cudnn_convolution",
    "torch.max_pool",
    "torch.avg_pool",
    "torch.adaptive_",
    "torch._C",
    "torch.ops",
    "scipy.signal",
    "scipy.ndimage",
    "numpy.lib.stride_tricks",
    "numpy.lib._stride_tricks_impl",
    "numpy.convolve",
    "numpy.correlate",
    "numpy._core.multiarray.correlate",
    "numpy.core.multiarray.correlate",
    "skimage",
    "cv2",
    "PIL.ImageFilter",
)
# Method names that do the same when called on an array or tensor (x.unfold(...)).
FORBIDDEN_METHODS: frozenset[str] = frozenset(
    {
        "as_strided",
        "sliding_window_view",
        "unfold",
        "conv2d",
        "conv1d",
        "max_pool2d",
        "avg_pool2d",
        "convolve",
        "correlate",
        "convolve2d",
        "correlate2d",
        "_conv_forward",
    }
)

# What hides a call, by kind: (qualified-name prefixes or names, the reason: an English
# message marked for the catalogue, translated where a flag is made).
_HIDING: dict[str, tuple[tuple[str, ...], str]] = {
    "dynamic_import": (
        ("importlib", "__import__", "imp", "runpy", "pkgutil", "zipimport"),
        N_("an import at run time (importlib, __import__, reload): the text does not show "
           "what is called"),
    ),
    "dynamic_code": (
        ("eval", "exec", "compile"),
        N_("code is built from a string (eval, exec, compile): the text does not show what "
           "is called"),
    ),
    "sys_modules": (
        ("sys.modules",),
        N_("functions are taken from sys.modules: the text does not show what is called"),
    ),
    "namespace_lookup": (
        ("vars", "globals", "locals"),
        N_("names are looked up in a namespace dictionary (vars, globals, __dict__)"),
    ),
    "builtins_lookup": (
        ("__builtins__", "builtins"),
        N_("functions are taken from builtins: the text does not show what is called"),
    ),
    "native_code": (
        ("ctypes", "cffi", "_ctypes"),
        N_("machine code is called (ctypes, cffi): it cannot be read"),
    ),
    "introspection": (
        ("gc", "inspect", "types.FunctionType", "types.CodeType", "marshal"),
        N_("interpreter internals are used (gc, inspect, __closure__, __wrapped__, "
           "__globals__, __code__)"),
    ),
}
_HIDING_ATTRIBUTES = {
    "__closure__": "introspection",
    "__wrapped__": "introspection",
    "__globals__": "introspection",
    "__code__": "introspection",
    "__dict__": "namespace_lookup",
    "__builtins__": "builtins_lookup",
    "__getattribute__": "computed_attribute",
}
_ATTRIBUTE_CALLS = {"getattr", "setattr", "delattr", "hasattr"}
_OPERATOR_LOOKUPS = {"operator.attrgetter", "operator.methodcaller", "operator.itemgetter"}
_CODE_SUFFIXES = (".py", ".pyc", ".so", ".pyd", ".pyw")
_WRITERS = {"open", "write_text", "write_bytes", "copy", "copy2", "copyfile", "writestr",
            "move", "rename", "symlink_to", "urlretrieve"}
REASONS = {  # English, marked for the catalogue: translate with _() where a flag is made
    **{kind: reason for kind, (_prefixes, reason) in _HIDING.items()},
    "computed_attribute": N_("the attribute's name is computed at run time (getattr / setattr "
                             "with a variable): the text does not show what is called"),
    "unknown_module": N_("code is called from a module that is neither in the standard library "
                         "nor among the installed packages (a file the notebook wrote or "
                         "brought along): the grader cannot see its text"),
    "writes_module": N_("the notebook writes a file of Python code that can then be imported"),
    "not_defined_by_hand": N_("the name is not defined with def/class in the cells (it was "
                              "created by exec, assigned from another object or redefined "
                              "through globals()): its code cannot be read"),
}


@dataclass(frozen=True)
class Finding:
    """One forbidden reference: what was used, where, and inside which definition."""

    routine: str
    definition: str
    cell_index: int
    line: int

    def describe(self) -> str:
        """A one-line, student-facing description."""
        return _("`{definition}` uses `{routine}` (cell {cell}, line {line})").format(
            definition=self.definition, routine=self.routine, cell=self.cell_index + 1,
            line=self.line)


@dataclass(frozen=True)
class StaticReading:
    """What reading the graded code found: forbidden references, and what needs a person."""

    findings: tuple[Finding, ...] = ()
    flags: tuple[ReviewFlag, ...] = ()
    reached: frozenset[str] = frozenset()  # the notebook's names read (the graded one too)


@dataclass
class _Reader:
    """One pass over the definitions reachable from a graded name."""

    question: str
    index: NotebookIndex
    allowed: frozenset[str]
    known_modules: frozenset[str]
    findings: list[Finding] = field(default_factory=list)
    flags: list[ReviewFlag] = field(default_factory=list)

    def flag(self, kind: str, entry: Definition, node: ast.AST) -> None:
        self.flags.append(ReviewFlag(self.question, kind, _(REASONS[kind]), entry.cell_index + 1,
                                     getattr(node, "lineno", 0), entry.parsed.seen(node)))

    def find(self, routine: str, definition: str, entry: Definition, node: ast.AST) -> None:
        self.findings.append(
            Finding(routine, definition, entry.cell_index, getattr(node, "lineno", 0))
        )


def _normalise(name: str) -> str:
    for short, full in (("np.", "numpy."), ("F.", "torch.nn.functional."), ("nn.", "torch.nn.")):
        if name.startswith(short):
            return full + name[len(short) :]
    return name


def _is_forbidden(qualified: str, allowed: frozenset[str]) -> bool:
    last = qualified.rsplit(".", 1)[-1]
    if last in allowed or qualified in allowed:
        return False
    if any(last in ALIASES.get(name, ()) for name in allowed):
        return False  # e.g. nn.Unfold where "unfold" is allowed
    return any(qualified.startswith(prefix) for prefix in FORBIDDEN_PREFIXES)


def _hiding_kind(qualified: str) -> str | None:
    for kind, (prefixes, _reason) in _HIDING.items():
        for prefix in prefixes:
            if qualified == prefix or qualified.startswith(prefix + "."):
                return kind
    return None


@functools.cache
def installed_modules() -> frozenset[str]:
    """Top-level module names Python or an installed distribution provides (harness side)."""
    import importlib.metadata

    names = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    names |= set(importlib.metadata.packages_distributions())
    return frozenset(names | {"__main__", "builtins"})


def _check_chain(reader: _Reader, name: str, entry: Definition, node: ast.AST,
                 parts: list[str]) -> None:
    qualified = _normalise(reader.index.qualify(parts))
    if _is_forbidden(qualified, reader.allowed):
        reader.find(qualified, name, entry, node)
        return
    if parts[-1] in FORBIDDEN_METHODS and len(parts) > 1 and parts[-1] not in reader.allowed:
        reader.find(f".{parts[-1]}()", name, entry, node)
        return
    kind = _hiding_kind(qualified) or _hiding_kind(parts[0])
    if kind is not None:
        reader.flag(kind, entry, node)
    elif parts[-1] in _HIDING_ATTRIBUTES and parts[0] != "self":
        reader.flag(_HIDING_ATTRIBUTES[parts[-1]], entry, node)
    elif parts[0] in reader.index.aliases and qualified.split(".")[0] not in reader.known_modules:
        reader.flag("unknown_module", entry, node)


def _check_call(reader: _Reader, name: str, entry: Definition, node: ast.Call) -> None:
    """getattr-like calls: a constant name is read as an attribute, a computed one flagged."""
    func = dotted(node.func)
    if func is None:
        return
    qualified = _normalise(reader.index.qualify(func))
    if func == [func[0]] and func[0] in _ATTRIBUTE_CALLS and len(node.args) >= 2:
        target, attr = dotted(node.args[0]), node.args[1]
        if isinstance(attr, ast.Constant) and isinstance(attr.value, str):
            if target is not None:
                _check_chain(reader, name, entry, node, [*target, attr.value])
        else:
            reader.flag("computed_attribute", entry, node)
    elif qualified in _OPERATOR_LOOKUPS:
        reader.flag("computed_attribute", entry, node)


def _scan(reader: _Reader, name: str, entry: Definition) -> set[str]:
    """Read one definition (or a write attached to it); return the names it refers to."""
    referenced = set()
    inner = {id(n.value) for n in ast.walk(entry.node) if isinstance(n, ast.Attribute)}
    for node in ast.walk(entry.node):
        if isinstance(node, ast.Name):
            referenced.add(node.id)
        if isinstance(node, ast.Call):
            _check_call(reader, name, entry, node)
        if id(node) in inner or not isinstance(node, ast.Attribute | ast.Name):
            continue  # only the whole chain `a.b.c` counts, not its prefixes `a.b` and `a`
        parts = dotted(node)
        if parts is not None:
            _check_chain(reader, name, entry, node, parts)
        elif isinstance(node, ast.Attribute):
            if node.attr in FORBIDDEN_METHODS and node.attr not in reader.allowed:
                reader.find(f".{node.attr}()", name, entry, node)
            elif node.attr in _HIDING_ATTRIBUTES:
                reader.flag(_HIDING_ATTRIBUTES[node.attr], entry, node)
    return referenced


def _read_definition(reader: _Reader, name: str) -> set[str]:
    """A definition and every write into it from outside its body (``Net.forward = f``)."""
    referenced = _scan(reader, name, reader.index.definitions[name])
    for write in reader.index.attached.get(name, ()):
        if write.value is not None:
            referenced |= _scan(reader, name, Definition(write.value, write.parsed))
    return referenced


def writes_code_file(node: ast.AST) -> bool:
    """A call that writes a file named like Python code (``open("m.py", "w")``, ...)."""
    if not isinstance(node, ast.Call):
        return False
    func = dotted(node.func)
    if func is None or func[-1] not in _WRITERS:
        return False
    texts = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)]
    return any(isinstance(t, str) and t.endswith(_CODE_SUFFIXES) for t in texts)


def _writes_code_files(index: NotebookIndex, question: str) -> list[ReviewFlag]:
    """Calls anywhere in the notebook that write a file named like Python code."""
    return [ReviewFlag(question, "writes_module", _(REASONS["writes_module"]), parsed.index + 1,
                       node.lineno, parsed.seen(node))
            for parsed in index.cells for node in ast.walk(parsed.tree)
            if writes_code_file(node)]


def reached_names(index: NotebookIndex, graded_name: str) -> frozenset[str]:
    """The notebook's top-level names a graded definition refers to, itself included."""
    return read_graded_code(index, graded_name, known_modules=frozenset()).reached


def read_graded_code(
    cells: Iterable[CodeCell] | NotebookIndex,
    graded_name: str,
    allowed: Iterable[str] = (),
    known_modules: frozenset[str] | None = None,
) -> StaticReading:
    """Forbidden references and review flags reachable from ``graded_name``.

    What is read: the definition, everything of the notebook it refers to, the writes into
    those from outside their bodies, and every write anywhere that swaps code into an object
    that is no top-level name of the notebook (``torch.Tensor.__matmul__ = f``,
    ``cls.forward = F.conv2d`` in a helper): graded code may run any of them.
    """
    index = cells if isinstance(cells, NotebookIndex) else notebook_index(cells)
    reader = _Reader(
        graded_name, index, frozenset(allowed),
        installed_modules() if known_modules is None else known_modules,
    )
    if graded_name not in index.definitions:
        reason = _(REASONS["not_defined_by_hand"])
        return StaticReading((), (ReviewFlag(graded_name, "not_defined_by_hand", reason),))
    seen: set[str] = set()
    pending = [graded_name]
    for write in index.swaps_elsewhere:
        if write.value is not None:
            pending.extend(_scan(reader, graded_name, Definition(write.value, write.parsed)))
    while pending:
        name = pending.pop()
        if name in seen or name not in index.definitions:
            continue
        seen.add(name)
        pending.extend(sorted(_read_definition(reader, name) - seen))
    if any(f.kind in ("unknown_module", "dynamic_import") for f in reader.flags):
        reader.flags.extend(_writes_code_files(index, graded_name))  # what it may import
    unique = {(f.routine, f.definition, f.cell_index, f.line): f for f in reader.findings}
    findings = sorted(unique.values(), key=lambda f: (f.cell_index, f.line, f.routine))
    flags = {(f.kind, f.cell, f.line): f for f in reader.flags}
    return StaticReading(
        tuple(findings), tuple(sorted(flags.values(), key=lambda f: (f.cell or 0, f.line or 0))),
        frozenset(seen),
    )


def find_library_routines(
    cells: Iterable[CodeCell], graded_name: str, allowed: Iterable[str] = ()
) -> list[Finding]:
    """Forbidden references reachable from ``graded_name`` (the zeroing part of a reading)."""
    return list(read_graded_code(cells, graded_name, allowed).findings)
