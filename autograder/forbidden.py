"""Find library convolution / pooling routines in the code that a question grades.

Decided in the trusted harness from the submitted source (the notebook's cells as text): the
graded function or class, plus every function or class of the notebook it refers to, is
scanned for references to routines that do the convolution or pooling for the student. Import
aliases anywhere in the notebook are resolved, so ``from torch.nn import functional as Q`` and
``Q.conv2d`` are found too. Code that hides what it calls (eval, exec, __import__, importlib)
counts as forbidden in graded code as well.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass

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
    "numpy.convolve",
    "numpy.correlate",
    "skimage",
    "cv2",
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
# The routine name of a finding that says: no def/class in the cells defines the graded name.
NOT_DEFINED_BY_HAND = "<no def or class in the notebook's cells>"
# Builtins and modules that hide what the code calls.
HIDING_NAMES: frozenset[str] = frozenset({"eval", "exec", "__import__", "compile", "importlib"})


@dataclass(frozen=True)
class Finding:
    """One forbidden reference: what was used, where, and inside which definition."""

    routine: str
    definition: str
    cell_index: int
    line: int

    def describe(self) -> str:
        """A one-line, student-facing description."""
        if self.routine == NOT_DEFINED_BY_HAND:
            return (
                f"`{self.definition}` не определена через def/class в ячейках ноутбука "
                "(создана динамически или это псевдоним чужой функции), поэтому нельзя "
                "проверить, что она написана вручную"
            )
        return (
            f"`{self.definition}` использует `{self.routine}` "
            f"(ячейка {self.cell_index + 1}, строка {self.line})"
        )


@dataclass
class _Definition:
    node: ast.AST
    cell_index: int


def _dotted(node: ast.AST) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


class _NotebookIndex:
    """Top-level definitions and import aliases of all parsable cells."""

    def __init__(self, cells: Iterable[CodeCell]):
        self.definitions: dict[str, _Definition] = {}
        self.aliases: dict[str, str] = {}
        for cell in cells:
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue  # such a cell cannot run, so it cannot define anything either
            self._index_cell(tree, cell.index)

    def _index_cell(self, tree: ast.Module, cell_index: int) -> None:
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.definitions[node.name] = _Definition(node, cell_index)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.definitions[target.id] = _Definition(node, cell_index)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    local = alias.asname or alias.name.split(".")[0]
                    self.aliases[local] = alias.name if alias.asname else local
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def qualify(self, parts: list[str]) -> str:
        head = self.aliases.get(parts[0], parts[0])
        return ".".join([head, *parts[1:]])


def _normalise(name: str) -> str:
    for short, full in (("np.", "numpy."), ("F.", "torch.nn.functional."), ("nn.", "torch.nn.")):
        if name.startswith(short):
            return full + name[len(short) :]
    return name


def _is_forbidden(qualified: str, allowed: frozenset[str]) -> bool:
    last = qualified.rsplit(".", 1)[-1]
    if last in allowed or qualified in allowed:
        return False
    return any(qualified.startswith(prefix) for prefix in FORBIDDEN_PREFIXES)


def _scan(
    definition: str, index: _NotebookIndex, allowed: frozenset[str]
) -> tuple[list[Finding], set[str]]:
    entry = index.definitions[definition]
    findings, referenced = [], set()
    inner = {id(n.value) for n in ast.walk(entry.node) if isinstance(n, ast.Attribute)}
    for node in ast.walk(entry.node):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Name):
            referenced.add(node.id)
        if id(node) in inner:
            continue  # only the whole chain `a.b.c` counts, not its prefixes `a.b` and `a`
        if isinstance(node, ast.Attribute | ast.Name):
            parts = _dotted(node)
            if parts is None:
                if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_METHODS:
                    if node.attr not in allowed:
                        findings.append(
                            Finding(f".{node.attr}()", definition, entry.cell_index, line)
                        )
                continue
            qualified = _normalise(index.qualify(parts))
            if _is_forbidden(qualified, allowed):
                findings.append(Finding(qualified, definition, entry.cell_index, line))
            elif parts[-1] in FORBIDDEN_METHODS and len(parts) > 1 and parts[-1] not in allowed:
                findings.append(Finding(f".{parts[-1]}()", definition, entry.cell_index, line))
            elif parts[0] in HIDING_NAMES or qualified.split(".")[0] in HIDING_NAMES:
                findings.append(Finding(parts[0], definition, entry.cell_index, line))
    return findings, referenced


def find_library_routines(
    cells: Iterable[CodeCell], graded_name: str, allowed: Iterable[str] = ()
) -> list[Finding]:
    """Forbidden references reachable from ``graded_name`` through the notebook's definitions."""
    index = _NotebookIndex(cells)
    allowed_set = frozenset(allowed)
    if graded_name not in index.definitions:
        return [Finding(NOT_DEFINED_BY_HAND, graded_name, -1, 0)]
    findings: list[Finding] = []
    seen: set[str] = set()
    pending = [graded_name]
    while pending:
        name = pending.pop()
        if name in seen or name not in index.definitions:
            continue
        seen.add(name)
        found, referenced = _scan(name, index, allowed_set)
        findings.extend(found)
        pending.extend(sorted(referenced - seen))
    unique = {(f.routine, f.definition, f.cell_index, f.line): f for f in findings}
    return sorted(unique.values(), key=lambda f: (f.cell_index, f.line, f.routine))
