"""`python grader.py new NAME`: a fourth assignment that assigns, grades and passes the suite.

The end-to-end tests run in a copy of the project under tmp (the code, solutions/,
assignments/ and the content tests), never in the repository itself: `new`, `assign --check`,
`grade` on the reference, the stub and every mutant through the real CLI and sandbox, and the
content tests of the copy selected for the new name.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from autograder import cli
from autograder.authoring import assign as authoring
from autograder.authoring import scaffold
from autograder.authoring.mutants import apply_mutant, load_mutants
from autograder.authoring.variants import apply_variant, load_variants
from autograder.core import assignments as assignments_module
from autograder.core.assignments import PROJECT_ROOT, load_assignment

NAME = "04_example"
TITLE = "Нормализация входов"
COPIED = ("autograder", "grader.py", "pyproject.toml", "solutions", "assignments",
          "tests/conftest.py", "tests/local_run.py", "tests/sweep.py",
          "tests/test_assignment_content.py", "tests/test_authoring.py", "tests/mutants",
          "tests/variants")


def copy_project(root: Path) -> Path:
    """What `new`, `assign`, `grade` and the content tests need, copied to ``root``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for rel in COPIED:
        source, target = PROJECT_ROOT / rel, root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    return root


def run_in(root: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python *args`` in the copy, importing the copy's autograder (never the repository's)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, *args], cwd=root, capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project in which `grader.py new` has made the fourth assignment."""
    root = copy_project(tmp_path_factory.mktemp("project"))
    where = run_in(root, "-c", "import autograder.core.assignments as a; print(a.PROJECT_ROOT)")
    assert Path(where.stdout.strip()) == root, where.stderr  # the copy's code, not ours
    done = run_in(root, "grader.py", "new", NAME, "--title", TITLE)
    assert done.returncode == 0, done.stderr
    assert f"assignments/{NAME}/{NAME}.ipynb" in done.stdout
    return root


def read_gradebook(out: Path) -> dict[str, dict[str, str]]:
    with (out / "gradebook.csv").open(encoding="utf-8") as handle:
        return {row["submission"]: row for row in csv.DictReader(handle)}


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("name", ["", "04 example", "04-example", "Example", "_04", "04_",
                                  "04__x", "../04", "04/x", "1234", "a" * 65, "пример"])
def test_invalid_names_are_refused_with_exit_2_and_nothing_written(name, tmp_path, monkeypatch,
                                                                   capsys):
    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
    assert cli.main(["new", name]) == 2
    assert "invalid assignment name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("taken", ["solutions/{n}", "assignments/{n}", "tests/mutants/{n}.toml",
                                   "tests/variants/{n}.toml"])
def test_an_existing_name_is_refused_with_exit_2_and_nothing_touched(taken, tmp_path,
                                                                     monkeypatch, capsys):
    path = tmp_path / taken.format(n=NAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix:
        path.write_text("# the instructor's own\n")
    else:
        path.mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
    assert cli.main(["new", NAME]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and taken.format(n=NAME) in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_the_lessons_names_are_refused_in_the_repository(capsys):
    assert cli.main(["new", "01_convolution_pooling"]) == 2
    assert "already exists" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the files


def test_the_master_is_laid_out_like_the_lessons_own(tmp_path):
    made = scaffold.create(NAME, TITLE, tmp_path)
    nb = nbformat.read(tmp_path / made.master, 4)
    nbformat.validate(nb)
    lesson = nbformat.read(PROJECT_ROOT / "solutions/01_convolution_pooling/"
                           "01_convolution_pooling.ipynb", 4)

    def config(notebook):
        first = notebook.cells[0]
        assert first.cell_type == "raw" and first.source.startswith("# ASSIGNMENT CONFIG\n")
        return yaml.safe_load(first.source)

    assert config(nb) == {**config(lesson), "name": NAME}
    assert config(nb)["tests"] == {"ok_format": False, "files": False}
    assert nb.metadata == lesson.metadata
    markers = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "raw"][1:]
    assert markers == ["# BEGIN QUESTION", "# BEGIN SOLUTION", "# END SOLUTION",
                       "# BEGIN TESTS", "# END TESTS", "# END QUESTION"]
    tests = [c.source for c in nb.cells if c.cell_type == "code" and "def test_" in c.source]
    assert len(tests) == 2 and not tests[0].startswith("# HIDDEN")
    assert tests[1].startswith("# HIDDEN\n") and "seed" in tests[1].split(")")[0]
    prose = "".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert nb.cells[1].source.startswith(f"# {TITLE}\n")
    assert len(re.findall("[а-яА-ЯёЁ]", prose)) > 300, "the prose is for Russian students"
    assert f"{NAME}.ipynb" in prose


def test_the_config_and_mutants_load_and_the_config_allows_numpy(tmp_path):
    made = scaffold.create(NAME, None, tmp_path)
    assignment = load_assignment(NAME, tmp_path)
    assert assignment.config.sandbox.packages == ("numpy", "matplotlib")
    assert assignments_module.tested_question_names(assignment) == [scaffold.EXAMPLE_QUESTION]
    assert (tmp_path / made.config).read_text(encoding="utf-8").startswith("# ")
    mutants = load_mutants(NAME, tmp_path / "tests" / "mutants")
    assert [m.scores_zero for m in mutants].count(True) == 1
    assert len(mutants) >= 2 and all(m.breaks == ("standardize",) for m in mutants)
    nb = nbformat.read(tmp_path / made.master, 4)
    assert nb.cells[1].source.startswith(f"# Задание {NAME}\n")
    for mutant in mutants:  # every edit applies exactly once to the master's code cells
        apply_mutant(nb, mutant)
    variants = load_variants(NAME, tmp_path / "tests" / "variants")
    assert [v.definitions[0][0] for v in variants] == [scaffold.EXAMPLE_QUESTION]
    rewritten = apply_variant(nb, variants[0])
    assert "channels.sum(axis=1)" in "".join(c.source for c in rewritten.cells)


def test_the_example_question_is_named_after_the_function_it_grades(tmp_path):
    scaffold.create(NAME, None, tmp_path)
    built = authoring.build(load_assignment(NAME, tmp_path), tmp_path)
    stub = "".join(c.source for c in built.student_notebook.cells if c.cell_type == "code")
    assert f"def {scaffold.EXAMPLE_QUESTION}(x, eps=1e-5):" in stub
    assert "x.mean(axis=(0, 2, 3)" not in stub, "the solution must not reach the student"
    assert set(built.all_tests) == {scaffold.EXAMPLE_QUESTION}
    assert f'grader.check("{scaffold.EXAMPLE_QUESTION}")' in stub


# ----------------------------------------------------------------------------- end to end


def test_new_generated_the_assignment_and_it_is_fresh(project):
    for rel in (f"solutions/{NAME}/{NAME}.ipynb", f"solutions/{NAME}/assignment.toml",
                f"solutions/{NAME}/tests/standardize.py", f"assignments/{NAME}/{NAME}.ipynb",
                f"tests/mutants/{NAME}.toml"):
        assert (project / rel).is_file(), rel
    check = run_in(project, "grader.py", "assign", "--check", NAME)
    assert check.returncode == 0 and "up to date" in check.stdout, check.stdout + check.stderr
    again = run_in(project, "grader.py", "new", NAME)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_the_reference_scores_full_the_stub_zero_and_every_mutant_is_caught(project):
    """Graded through the copy's own `grader.py grade`, sandboxed as for students."""
    subs = project / "subs"
    subs.mkdir()
    assignment = load_assignment(NAME, project)
    built = authoring.build(assignment, project)
    notebooks = {"reference": built.reference_notebook, "stub": built.student_notebook}
    mutants = load_mutants(NAME, project / "tests" / "mutants")
    for mutant in mutants:
        notebooks[f"mutant-{mutant.id}"] = apply_mutant(built.reference_notebook, mutant)
    for stem, nb in notebooks.items():
        nbformat.write(nb, subs / f"{stem}.ipynb")
    done = run_in(project, "grader.py", "grade", "--assignment", NAME, "--seed", "4321",
                  "--jobs", "2", "--out", str(project / "out"),
                  *(str(subs / f"{stem}.ipynb") for stem in notebooks))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_gradebook(project / "out")
    reference, stub = rows["reference"], rows["stub"]
    assert float(reference["score"]) == float(reference["max_score"]) == 2
    assert reference["status"] == "graded" and reference["message"] == ""
    assert float(stub["score"]) == 0 and stub["status"] == "graded"
    for mutant in mutants:
        row = rows[f"mutant-{mutant.id}"]
        assert row["status"] == "graded" and float(row["standardize"]) < 2, mutant.id
        if mutant.scores_zero:
            assert float(row["standardize"]) == 0, mutant.id


def test_the_content_tests_check_the_new_assignment_too(project):
    """The suite's per-assignment checks collect the fourth assignment and pass on it."""
    done = run_in(project, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                  "tests/test_assignment_content.py", "tests/test_authoring.py",
                  "-k", f"{NAME} or lessons_three")
    assert done.returncode == 0, done.stdout[-4000:]
    counts = dict((kind, int(n)) for n, kind in re.findall(r"(\d+) (passed|failed|error)",
                                                           done.stdout))
    # reference x2 seeds, stub, 3 mutants, degenerate, public+hidden, has mutants, lesson's
    # three; determinism, no solution line, no hidden test, set-up cell (skips: no fixtures)
    assert counts.get("passed", 0) >= 13 and "failed" not in counts, done.stdout[-2000:]
    listed = run_in(project, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
                    "tests/test_assignment_content.py", "tests/test_authoring.py", "-k", NAME)
    for check in ("test_reference_solution_passes_every_public_and_hidden_test",
                  "test_every_correct_solution_scores_full_under_every_draw",
                  "test_every_assignment_has_other_correct_solutions",
                  "test_stub_scores_zero_on_every_question_without_crashing",
                  "test_mutant_loses_exactly_the_questions_it_breaks",
                  "test_every_question_has_a_degenerate_mutant",
                  "test_every_question_has_public_and_hidden_tests",
                  "test_assign_is_byte_for_byte_deterministic"):
        assert re.search(rf"::{check}\[[^\]]*{NAME}", listed.stdout), (
            f"{check} does not run on {NAME}")
