"""grader.py assign: deterministic, fresh, no solution or hidden test leaks, runs in Jupyter."""

import re
import shutil

import nbformat
import pytest
from local_run import assignment, built

from autograder.authoring import assign as authoring
from autograder.cli import main
from autograder.core.assignments import PROJECT_ROOT, discover, load_assignment

ASSIGNMENTS = discover()


def test_assign_check_passes_on_the_committed_tree(capsys):
    assert main(["assign", "--check"]) == 0
    assert "stale" not in capsys.readouterr().out


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_assign_is_byte_for_byte_deterministic(name):
    again = authoring.build(assignment(name))
    assert again.files == built(name).files


def test_the_student_notebooks_are_built_in_the_assignments_language_whatever_a_batch_speaks():
    """`demo --language en` graded 01 in English, which left the process speaking English, and
    then called 03's committed (Russian) student notebook stale: its set-up cell was built
    from the catalogue in the grading language. The build speaks the assignment's own."""
    from autograder.core import catalogue

    name = "03_convnet_cifar10"
    before = catalogue.current_language()
    catalogue.use_language("en")
    try:
        english_batch = authoring.build(assignment(name))
        assert catalogue.current_language() == "en"  # the batch's language is left as it was
    finally:
        catalogue.use_language(before)
    assert authoring.stale_files(english_batch, assignment(name)) == []


def _copy_project_subset(name, root):
    for part in ("solutions", "assignments"):
        shutil.copytree(PROJECT_ROOT / part / name, root / part / name)


def test_assign_check_names_a_stale_and_an_extra_file(tmp_path):
    name = ASSIGNMENTS[0]
    _copy_project_subset(name, tmp_path)
    target = load_assignment(name, tmp_path)
    target.student_notebook.write_text(
        target.student_notebook.read_text(encoding="utf-8").replace("grader", "graderX", 1),
        encoding="utf-8",
    )
    (target.tests_dir / "leftover.py").write_text("x = 1\n")
    stale = authoring.stale_files(authoring.build(target, tmp_path), target, tmp_path)
    assert f"assignments/{name}/{name}.ipynb" in stale
    assert f"solutions/{name}/tests/leftover.py" in stale
    authoring.write(authoring.build(target, tmp_path), target, tmp_path)
    assert authoring.stale_files(authoring.build(target, tmp_path), target, tmp_path) == []


def _code_lines(master: nbformat.NotebookNode) -> tuple[set[str], set[str]]:
    """(solution lines, given lines) of the master's code cells, stripped."""
    solution, given, inside = set(), set(), False
    for cell in master.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            stripped = line.strip()
            if stripped == "# BEGIN SOLUTION":
                inside = True
            elif stripped == "# END SOLUTION":
                inside = False
            elif inside or stripped.endswith("# SOLUTION"):
                if len(stripped) > 12:
                    solution.add(stripped.removesuffix("# SOLUTION").strip())
            else:
                given.add(stripped)
    return solution, given


def _solution_lines(master: nbformat.NotebookNode, public_tests: dict[str, str]) -> set[str]:
    """Solution lines that are not also code given to students (cells or public tests)."""
    solution, given = _code_lines(master)
    for source in public_tests.values():
        given |= {line.strip() for line in source.splitlines()}
    return solution - given


def _student_texts():
    return {
        path: path.read_text(encoding="utf-8")
        for path in (PROJECT_ROOT / "assignments").rglob("*")
        if path.is_file()
    }


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_no_solution_line_appears_under_assignments(name):
    master = nbformat.read(assignment(name).master_notebook, 4)
    solution = _solution_lines(master, built(name).public_tests)
    assert solution, "the master notebook should hold solution code"
    for path, text in _student_texts().items():
        if path.suffix == ".ipynb":
            cells = nbformat.reads(text, 4).cells
            text = "\n".join(cell.source for cell in cells if cell.cell_type == "code")
        student_lines = {line.strip() for line in text.splitlines()}
        leaked = sorted(solution & student_lines)
        assert not leaked, f"{path} contains solution code: {leaked[:3]}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_no_hidden_test_appears_under_assignments(name):
    hidden = set()
    for source in built(name).all_tests.values():
        for match in re.finditer(r"hidden=True\)\ndef (test_\w+)", source):
            hidden.add(match.group(1))
    assert hidden, "every assignment has hidden tests"
    for path, text in _student_texts().items():
        leaked = [fn for fn in hidden if fn in text]
        assert not leaked, f"{path} contains hidden tests: {leaked}"
    public_sources = "".join(built(name).public_tests.values())
    assert "hidden=True" not in public_sources


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_student_notebook_opens_with_the_colab_ready_setup_cell(name):
    nb = built(name).student_notebook
    first = nb.cells[0]
    assert first.cell_type == "code" and "otter_ignore" in first.metadata["tags"]
    assert "pip" in first.source and "otter-grader" in first.source
    assert re.search("[а-яА-Я]", first.source), "the set-up cell speaks Russian to the student"
    assert f'otter.Notebook("{name}.ipynb"' in first.source
    checks = [c for c in nb.cells if c.source.startswith("grader.check(")]
    assert len(checks) == len(built(name).public_tests)
