"""Scenarios against the trusted side: names, archives and notebooks that attack the grader's
own process and what it prints or writes, not the sandbox.

- ids that name the grader's own output files (``gradebook.csv``, ``report.html``): graded
  like anyone else, and the batch and its report go on (``extra``'s ``"grader_files"``: those
  files are still the grader's files after the batch);
- a zip bomb (about 200 KB that inflates to 200 MiB) and a notebook nested 200,000 deep: the
  student's error, with a sentence saying which bound was passed, never "internal grader
  error";
- a code cell that exhausts Python's parser (thousands of chained operators): the same;
- ANSI/OSC escapes, C1 controls, carriage returns and bidi overrides in file names and in a
  flagged line of code: the instructor's terminal shows them as escapes (``extra``'s
  ``"terminal": "clean"`` makes :func:`.levels.check_scenario` read the batch's whole output).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import nbformat

from .layers import BYPASSES
from .scenarios import ALL, Context, Scenario, raw_bytes, with_cell

# What a hostile name or line carries: erase the line, set the window title (OSC ... BEL),
# fake green text, CSI as one C1 byte, carriage return, backspace, a right-to-left override.
ESCAPES = "\x1b[2K\x1b]0;pwned\x07\x1b[32mOK\x1b[0m\x9b31m\r\x08\u202e"
IN_CODE = ESCAPES.replace("\r", "").replace("\x08", "")  # a string literal's share of them


def _named(base: str) -> Callable[[Context, Path], Path]:
    """A builder: the base notebook as ``<scenario id>.ipynb`` (the id is the attack)."""

    def build(ctx: Context, folder: Path) -> Path:
        path = folder / f"{folder.name}.ipynb"
        nbformat.write(ctx.copy_of(base), path)
        return path

    return build


def _zip_bomb(ctx: Context, folder: Path) -> Path:
    path = folder.parent / f"{folder.name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("work/01_convolution_pooling.ipynb", nbformat.writes(ctx.reference))
        with zf.open("work/data.bin", "w", force_zip64=True) as entry:
            for _ in range(200):
                entry.write(bytes(2**20))
    return path


def _escaping_names(ctx: Context, folder: Path) -> Path:
    """Two notebooks whose names hold escapes: refused, and the refusal names them."""
    path = folder.parent / f"{folder.name}.zip"
    buffer = nbformat.writes(ctx.reference)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"a{ESCAPES}.ipynb", buffer)
        zf.writestr(f"b{ESCAPES}.ipynb", buffer)
    return path


_FLAGGED = next(s for s in BYPASSES if s.id == "bypass_computed_getattr")


def _flagged_line_with_escapes(ctx: Context, folder: Path) -> Path:
    """The computed-getattr bypass, its flagged call carrying the escapes in a string."""
    path = _FLAGGED.build(ctx, folder)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "'corre' + 'late'" in cell.source:
            cell.source = cell.source.replace("'corre' + 'late'",
                                              f"'corre' + 'late' + '{IN_CODE}'[:0]")
    nbformat.write(nb, path)
    return path


def _deep_json() -> bytes:
    return b"[" * 200_000 + b"]" * 200_000


TRUSTED_SCENARIOS: list[Scenario] = [
    Scenario("gradebook.csv", "a notebook named gradebook.csv.ipynb: its id is the "
             "gradebook's name", _named("reference"), full_marks=(ALL,),
             extra={"grader_files": ("gradebook.csv", "report.html")}),
    Scenario("report.html", "a notebook named report.html.ipynb: its id is the report's name",
             _named("reference"), full_marks=(ALL,),
             extra={"grader_files": ("gradebook.csv", "report.html")}),
    Scenario("zip_bomb", "a 200 KB zip that unpacks to 200 MiB of zeros", _zip_bomb,
             status="error", feedback=("сжат в",), feedback_absent=("внутренняя ошибка",)),
    Scenario("deep_json", "a notebook of JSON nested 200,000 deep", raw_bytes(_deep_json()),
             status="error", feedback=("уровней вложенности",),
             feedback_absent=("внутренняя ошибка",)),
    Scenario("deep_code", "a code cell of 5,000 chained additions (ast.parse recurses out)",
             with_cell("reference", "x = " + " + ".join(["1"] * 5000) + "\n"),
             status="error", feedback=("нельзя разобрать",),
             feedback_absent=("внутренняя ошибка",)),
    Scenario("terminal_escape_names", "two notebooks whose names hold ANSI/OSC escapes, C1 "
             "controls and a bidi override", _escaping_names, status="error",
             feedback=("несколько ноутбуков",), extra={"terminal": "clean"}),
    Scenario("terminal_escape_flag", "a flagged line of code that carries ANSI/OSC escapes",
             _flagged_line_with_escapes, caught=("corr2d",), flagged=("corr2d",),
             extra={"terminal": "clean"}),
]
