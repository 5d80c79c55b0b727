"""Other correct solutions, written in other styles (``tests/variants/<name>.toml``).

A hidden test must give full marks to every correct answer, not only to the reference's
way of writing it. A variant rewrites the reference solution the way another student would
(an ``nn.Sequential`` for a ``ModuleList``, a vectorised loop, im2col, another initialisation,
float64): each ``[[variant.define]]`` replaces one top-level definition of the master
notebook's code cells by its own source, each ``[[variant.edit]]`` replaces a text that occurs
exactly once. The seed sweep (:mod:`.sweep`) grades every variant under many draws.

    [[variant]]
    id = "mlp_sequential"
    style = "MLP as one nn.Sequential built with a list comprehension"
    [[variant.define]]
    name = "MLP"
    source = '''
    class MLP(nn.Module):
        ...
    '''
"""

from __future__ import annotations

import ast
import copy
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..core.assignments import PROJECT_ROOT
from .mutants import apply_edits

VARIANTS_DIR = PROJECT_ROOT / "tests" / "variants"


@dataclass(frozen=True)
class Variant:
    """A correct solution in another style, as changes to the reference solution."""

    assignment: str
    id: str
    style: str
    definitions: tuple[tuple[str, str], ...]  # (top-level name, its new source)
    edits: tuple[tuple[str, str], ...] = ()  # (old text, new text)


def load_variants(name: str, folder: Path = VARIANTS_DIR) -> list[Variant]:
    """The variants of assignment ``name``, in file order (none when it has no file)."""
    path = folder / f"{name}.toml"
    if not path.is_file():
        return []
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [
        Variant(
            assignment=name,
            id=entry["id"],
            style=entry["style"],
            definitions=tuple(
                (d["name"], textwrap.dedent(d["source"]).strip("\n"))
                for d in entry.get("define", [])
            ),
            edits=tuple((e["old"], e["new"]) for e in entry.get("edit", [])),
        )
        for entry in data.get("variant", [])
    ]


def apply_variant(nb: nbformat.NotebookNode, variant: Variant) -> nbformat.NotebookNode:
    """The notebook with the variant's definitions put in place, then its edits applied."""
    result = copy.deepcopy(nb)
    for name, source in variant.definitions:
        _replace_definition(result, name, source, variant.id)
    return apply_edits(result, variant.edits, f"variant {variant.id}")


def _replace_definition(nb: nbformat.NotebookNode, name: str, source: str, who: str) -> None:
    """Replace the one top-level def/class/assignment of ``name`` in the notebook's code."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        found += [(cell, node) for node in tree.body if name in _defined_names(node)]
    if len(found) != 1:
        raise ValueError(f"variant {who}: {name!r} is defined {len(found)} times at the top "
                         "level of the notebook's code cells, not once")
    cell, node = found[0]
    lines = cell.source.splitlines()
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    cell.source = "\n".join(lines[:first - 1] + source.splitlines() + lines[node.end_lineno:])


def _defined_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    return set()
