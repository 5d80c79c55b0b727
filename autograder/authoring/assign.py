"""Master notebooks -> student notebooks and grader-side tests (otter assign underneath).

``build`` runs ``otter assign`` on a master notebook in a temporary folder and turns its output
into the files this project keeps: the student notebook under ``assignments/<name>/`` (made
deterministic, with a set-up cell that works in Jupyter and Colab) and one grader-side test file
per question under ``solutions/<name>/tests/``. ``write`` stores them; ``stale_files`` compares
them with what is on disk (``grader.py assign --check``).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..core.assignments import PROJECT_ROOT, Assignment, load_assignment
from ..core.catalogue import language_of
from ..core.errors import UsageError
from ..core.templates import render

SETUP_CELL_TAG = "otter_ignore"
SETUP_TEMPLATE = "setup_cell.py.j2"  # under autograder/templates/


class AuthoringError(UsageError, RuntimeError):
    """otter assign failed or produced something we cannot use; the message says what."""


@dataclass(frozen=True)
class BuiltAssignment:
    """Everything generated from one master notebook, as bytes keyed by project-relative path."""

    name: str
    files: dict[str, bytes]
    student_notebook: nbformat.NotebookNode
    reference_notebook: nbformat.NotebookNode  # the student notebook as a perfect student fills it
    public_tests: dict[str, str]
    all_tests: dict[str, str]


def _run_otter_assign(master: Path, dist: Path) -> None:
    command = [sys.executable, "-m", "otter", "assign", "--no-run-tests", str(master), str(dist)]
    completed = subprocess.run(
        command, cwd=dist.parent, capture_output=True, text=True, timeout=300, check=False
    )
    if completed.returncode != 0:
        raise AuthoringError(
            f"otter assign failed on {master} (exit {completed.returncode}):\n"
            f"{completed.stderr.strip()[-4000:]}"
        )


def _tests_from_metadata(nb: nbformat.NotebookNode, where: Path) -> dict[str, str]:
    tests = nb.metadata.get("otter", {}).get("tests")
    if not isinstance(tests, dict):
        raise AuthoringError(
            f"{where}: otter wrote no tests into the notebook metadata; the master notebook's "
            "config must say `tests: {ok_format: false, files: false}`"
        )
    return dict(tests)


def _setup_cell(name: str, public_tests: dict[str, str]) -> nbformat.NotebookNode:
    files = {f"{question}.py": source for question, source in sorted(public_tests.items())}
    tests_json = json.dumps(files, ensure_ascii=False, sort_keys=True)
    if "'''" in tests_json:
        raise AuthoringError(
            f"{name}: a public test contains ''' which the set-up cell cannot embed"
        )
    source = render(SETUP_TEMPLATE, tests_json=tests_json, notebook=f"{name}.ipynb")
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata = {
        "tags": [SETUP_CELL_TAG],
        "cellView": "form",
        "jupyter": {"source_hidden": True},
    }
    return cell


def _make_deterministic(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Give cells stable ids (otter draws random ones for the cells it inserts).

    Cell ids exist from nbformat 4.5 on, so the notebook is declared 4.5 at least.
    """
    nb.nbformat, nb.nbformat_minor = 4, max(5, int(nb.get("nbformat_minor", 0)))
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index:03d}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def _student_notebook(
    name: str, otter_student: nbformat.NotebookNode, public_tests: dict[str, str]
) -> nbformat.NotebookNode:
    nb = copy.deepcopy(otter_student)
    nb.cells.insert(0, _setup_cell(name, public_tests))
    nb.metadata["otter"] = {"assignment_name": name}
    return _make_deterministic(nb)


def _serialize(nb: nbformat.NotebookNode) -> bytes:
    return (nbformat.writes(nb, version=4) + "\n").encode("utf-8")


def build(assignment: Assignment, root: Path = PROJECT_ROOT) -> BuiltAssignment:
    """Run otter assign on the master notebook and return the files it yields for this project
    (in the assignment's own language, whatever language this process grades in)."""
    with language_of(assignment.config.language):
        return _build(assignment, root)


def _build(assignment: Assignment, root: Path) -> BuiltAssignment:
    with tempfile.TemporaryDirectory(prefix=f"assign-{assignment.name}-") as tmp:
        dist = Path(tmp) / "dist"
        _run_otter_assign(assignment.master_notebook, dist)
        autograder_nb = nbformat.read(dist / "autograder" / f"{assignment.name}.ipynb", 4)
        student_nb = nbformat.read(dist / "student" / f"{assignment.name}.ipynb", 4)
    all_tests = _tests_from_metadata(autograder_nb, assignment.master_notebook)
    public_tests = _tests_from_metadata(student_nb, assignment.master_notebook)
    student = _student_notebook(assignment.name, student_nb, public_tests)
    reference = _student_notebook(assignment.name, autograder_nb, public_tests)
    files = {_relative(assignment.student_notebook, root): _serialize(student)}
    for question, source in sorted(all_tests.items()):
        path = assignment.tests_dir / f"{question}.py"
        files[_relative(path, root)] = source.encode("utf-8")
    return BuiltAssignment(assignment.name, files, student, reference, public_tests, all_tests)


def _relative(path: Path, root: Path) -> str:
    return path.resolve().relative_to(root.resolve()).as_posix()


def generated_dirs(assignment: Assignment, root: Path = PROJECT_ROOT) -> list[str]:
    """Folders whose contents ``build`` fully owns: a file there that it did not make is stale.

    The student folder is not one of them: running the student notebook there creates
    ``tests/`` beside it, which is the student's business, not a stale output.
    """
    return [_relative(assignment.tests_dir, root)]


def write(built: BuiltAssignment, assignment: Assignment, root: Path = PROJECT_ROOT) -> list[str]:
    """Write the generated files, removing stale ones in the generated folders; returns changes."""
    changed = stale_files(built, assignment, root)
    for rel in generated_dirs(assignment, root):
        folder = root / rel
        if folder.is_dir():
            for path in folder.rglob("*"):
                if (
                    path.is_file()
                    and "__pycache__" not in path.parts
                    and _relative(path, root) not in built.files
                ):
                    path.unlink()
    for rel, content in built.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != content:
            path.write_bytes(content)
    return changed


def stale_files(
    built: BuiltAssignment, assignment: Assignment, root: Path = PROJECT_ROOT
) -> list[str]:
    """Files on disk that differ from, are missing from, or are extra to what ``build`` made."""
    stale = [
        rel
        for rel, content in built.files.items()
        if not (root / rel).is_file() or (root / rel).read_bytes() != content
    ]
    for rel in generated_dirs(assignment, root):
        folder = root / rel
        if folder.is_dir():
            stale.extend(
                _relative(path, root)
                for path in sorted(folder.rglob("*"))
                if path.is_file()
                and "__pycache__" not in path.parts
                and _relative(path, root) not in built.files
            )
    return sorted(set(stale))


@dataclass(frozen=True)
class Regenerated:
    """What ``grader.py assign`` did: a line per assignment, and the stale files ``--check``
    found (project-relative)."""

    lines: list[str]
    stale: list[str]


def regenerate(names: list[str], check: bool, root: Path = PROJECT_ROOT) -> Regenerated:
    """Build every named assignment and write its files, or with ``check`` only compare them
    with what is on disk."""
    lines, stale_total = [], []
    for name in names:
        assignment = load_assignment(name, root)
        built = build(assignment, root)
        if check:
            stale = stale_files(built, assignment, root)
            stale_total.extend(stale)
            lines.append(f"{name}: {'up to date' if not stale else f'{len(stale)} stale file(s)'}")
        else:
            changed = write(built, assignment, root)
            lines.append(f"{name}: {len(built.files)} file(s) generated, {len(changed)} changed")
    return Regenerated(lines, stale_total)
