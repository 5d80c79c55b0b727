"""Classic student bugs as edits of a reference solution (``tests/mutants/<name>.toml``).

Used by the test suite (each mutant must lose exactly the questions it breaks), by
``grader.py demo`` (a classic-bug example) and by the speed bench.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..core.assignments import PROJECT_ROOT

MUTANTS_DIR = PROJECT_ROOT / "tests" / "mutants"


@dataclass(frozen=True)
class Mutant:
    """A classic student bug, as an edit of the reference solution."""

    assignment: str
    id: str
    bug: str
    breaks: tuple[str, ...]
    edits: tuple[tuple[str, str], ...]
    # "tests", "no_library_routines" (the static reading), or "run_record" (only what the
    # sandboxed run records: such mutants are checked through the real grader alone)
    caught_by: str = "tests"
    scores_zero: bool = False  # a degenerate answer: the broken questions must score exactly 0
    # Why this mutant may keep its points under a share of the hidden tests' draws (the seed
    # sweep, bench/seed_sweep.py, prints the share); empty: it must lose them under every draw.
    luck: str = ""


def load_mutants(name: str, folder: Path = MUTANTS_DIR) -> list[Mutant]:
    """The mutants of assignment ``name``, in file order (none when it has no file)."""
    path = folder / f"{name}.toml"
    if not path.is_file():
        return []
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [
        Mutant(
            assignment=name,
            id=entry["id"],
            bug=entry["bug"],
            breaks=tuple(entry["breaks"]),
            edits=tuple((edit["old"], edit["new"]) for edit in entry["edit"]),
            caught_by=entry.get("caught_by", "tests"),
            scores_zero=bool(entry.get("scores_zero", False)),
            luck=entry.get("luck", ""),
        )
        for entry in data.get("mutant", [])
    ]


def apply_mutant(nb: nbformat.NotebookNode, mutant: Mutant) -> nbformat.NotebookNode:
    """The notebook with the mutant's edits; each `old` must occur exactly once in code cells."""
    return apply_edits(copy.deepcopy(nb), mutant.edits, f"mutant {mutant.id}")


def apply_edits(nb: nbformat.NotebookNode, edits: tuple[tuple[str, str], ...], who: str
                ) -> nbformat.NotebookNode:
    """Apply (old, new) text edits to ``nb`` in place; each old text must occur exactly once
    in the code cells (``who`` names the edits' owner in the error). Returns ``nb``."""
    for old, new in edits:
        hits = [c for c in nb.cells if c.cell_type == "code" and old in c.source]
        count = sum(c.source.count(old) for c in hits)
        if count != 1:
            raise ValueError(f"{who}: edit text occurs {count} times, not once")
        hits[0].source = hits[0].source.replace(old, new)
    return nb
