"""`python grader.py grade` end to end, at every isolation level the machine has: references
full, stubs zero, mutants lose exactly what they break, every level grades as bubblewrap does
(the same seed), 03's examples keep their outcomes, --tests public, the output files' shapes,
and exit codes for instructor errors.
"""

from __future__ import annotations

import ast
import csv
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from local_run import built, question_tests

from autograder.authoring.mutants import apply_mutant, load_mutants
from autograder.core.assignments import PROJECT_ROOT, discover
from autograder.grading.judging import (
    GRADER_CHECK_NAME,
    LIBRARY_CHECK_NAME,
    STRUCTURE_CHECK_NAME,
)
from autograder.sandbox import launcher
from autograder.sandbox import uid as uid_level

GRADER = [sys.executable, str(PROJECT_ROOT / "grader.py")]


def _results(out: Path, sub: str) -> dict:
    """``OUT/submissions/<sub>/results.json``."""
    return json.loads((out / "submissions" / sub / "results.json").read_text(encoding="utf-8"))


def grade(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GRADER, "grade", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=1500,
        check=False,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )


def read_gradebook(out: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with (out / "gradebook.csv").open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = {row["submission"]: row for row in reader}
        return list(reader.fieldnames or []), rows


EXAMPLES = PROJECT_ROOT / "examples" / "submissions"
LEVEL_PROBLEMS = {"bwrap": launcher.bwrap_problem(), "uid": uid_level.uid_problem(),
                  "process": None}


def _at_every_level(names: list[str]) -> list:
    """(assignment, level) parameters, a level that cannot run here skipped with its reason."""
    return [pytest.param((name, level), id=f"{name}-{level}", marks=pytest.mark.skipif(
        problem is not None, reason=f"{level} level: {problem}"))
        for name in names for level, problem in LEVEL_PROBLEMS.items()]


@pytest.fixture(scope="module")
def batches(tmp_path_factory, synthetic_root):
    """``batches(name, level)``: one batch per assignment and level through the CLI, graded
    once: the reference, the stub, every mutant and the committed examples (03's saved
    models), all with the same seed."""
    done: dict[tuple[str, str], tuple] = {}

    def batch(name: str, level: str) -> tuple:
        if (name, level) not in done:
            done[name, level] = _grade_batch(name, level, tmp_path_factory, synthetic_root)
        return done[name, level]

    return batch


STRONGEST = next((level for level, problem in LEVEL_PROBLEMS.items() if problem is None))


def _mutants_at(name: str, level: str) -> list:
    """Every mutant at the strongest level that runs here; a third of them, a different
    third per level, at each weaker one (which must grade them as the strongest does: the
    reference, the stub and the examples are graded at every level). This keeps the
    matrix's weaker levels from tripling the suite's longest set-up."""
    mutants = load_mutants(name)
    if level == STRONGEST:
        return mutants
    share = list(LEVEL_PROBLEMS).index(level)
    return [mutant for i, mutant in enumerate(mutants) if i % 3 == share]


def _grade_batch(name: str, level: str, tmp_path_factory, synthetic_root) -> tuple:
    base = tmp_path_factory.mktemp(f"grade-{name}-{level}")
    subs = base / "submissions"
    subs.mkdir()
    notebooks = {"reference": built(name).reference_notebook, "stub": built(name).student_notebook}
    for mutant in _mutants_at(name, level):
        notebooks[f"mutant-{mutant.id}"] = apply_mutant(built(name).reference_notebook, mutant)
    paths = []
    for stem, nb in notebooks.items():
        nbformat.write(nb, subs / f"{stem}.ipynb")
        paths.append(str(subs / f"{stem}.ipynb"))
    if (EXAMPLES / name).is_dir():
        paths += [str(example) for example in sorted((EXAMPLES / name).iterdir())]
    out = base / "out"
    done = grade(
        "--assignment", name, *paths, "--out", str(out), "--jobs", "2", "--seed", "777",
        "--data-dir", str(synthetic_root), "--sandbox", level, cwd=base,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"(sandbox: {level} (" in done.stdout  # the summary line names the level
    columns, rows = read_gradebook(out)
    return name, out, columns, rows


@pytest.fixture(scope="module", params=_at_every_level(discover()))
def graded(request, batches):
    """Each assignment at each level."""
    return batches(*request.param)


def _tested(name: str) -> list[str]:
    return [q.name for q in question_tests(name)]


def test_gradebook_has_exactly_the_required_columns(graded):
    name, _, columns, _ = graded
    from autograder.core.assignments import load_assignment, question_order

    questions = question_order(load_assignment(name))
    assert columns == ["submission", "score", "max_score", *questions, "status", "message"]


def test_saved_models_are_graded_and_the_dataset_is_named(graded):
    """Without weights files the accuracy questions score 0, saying which file is missing."""
    name, out, _, rows = graded
    from autograder.core.assignments import load_assignment

    config = load_assignment(name).config
    for entry in config.accuracy:
        assert rows["reference"][entry.question] == "0"
        feedback = (out / "submissions" / "reference" / "feedback.md").read_text(encoding="utf-8")
        assert f"нет файла {entry.weights}" in feedback
        assert "синтетическом наборе" in feedback
    for entry in config.comparison:
        assert rows["reference"][entry.question] == "0"


def test_reference_scores_full_marks_on_every_test_graded_question(graded):
    name, _, _, rows = graded
    reference = rows["reference"]
    for question in question_tests(name):
        assert float(reference[question.name]) == pytest.approx(question.points), question.name
    assert reference["status"] == "graded" and reference["message"] == ""


def test_stub_scores_zero_everywhere(graded):
    _, _, _, rows = graded
    stub = rows["stub"]
    assert float(stub["score"]) == 0 and stub["status"] == "graded"


def test_mutants_lose_exactly_the_questions_they_break(graded):
    name, out, _, rows = graded
    level = _results(out, "reference")["extra_data"]["isolation"]["level"]
    reference = rows["reference"]
    wrong = {}
    graded_here = _mutants_at(name, level)
    assert {f"mutant-{m.id}" for m in graded_here} <= set(rows) and graded_here
    for mutant in graded_here:
        row = rows[f"mutant-{mutant.id}"]
        lost = sorted(q for q in _tested(name) if float(row[q]) < float(reference[q]))
        if lost != sorted(mutant.breaks):
            wrong[mutant.id] = (lost, mutant.breaks)
        elif mutant.scores_zero and any(float(row[q]) > 0 for q in mutant.breaks):
            wrong[mutant.id] = ("scores above zero", {q: row[q] for q in mutant.breaks})
    assert not wrong


def test_every_level_grades_as_bubblewrap_does(graded, batches):
    """The same seed, the same submissions: every row (scores per question, status, the
    message with its review flags) equals the bwrap level's."""
    name, out, columns, rows = graded
    level = _results(out, "reference")["extra_data"]["isolation"]["level"]
    if launcher.bwrap_problem() is not None:
        pytest.skip(f"no bwrap level here to compare with: {launcher.bwrap_problem()}")
    _, _, bwrap_columns, bwrap_rows = batches(name, "bwrap")
    assert columns == bwrap_columns
    assert set(rows) <= set(bwrap_rows) and {"reference", "stub"} <= set(rows)
    different = {sub: (row, bwrap_rows.get(sub)) for sub, row in rows.items()
                 if row != bwrap_rows.get(sub)}
    assert not different, (level, different)


def test_examples_keep_their_outcomes(graded):
    """03's committed examples: the good one full marks, each other one loses what it must."""
    name, _, _, rows = graded
    if not (EXAMPLES / name).is_dir():
        pytest.skip(f"{name} has no committed examples")
    good = rows["good"]
    assert float(good["score"]) == float(good["max_score"]) > 0, good
    lost = {sub: sorted(q for q in good if q not in ("submission", "score", "max_score",
                                                       "status", "message")
                        and float(row[q]) < float(good[q]))
            for sub, row in rows.items() if (EXAMPLES / name / sub).is_dir()}
    assert lost == {
        "good": [],
        "fc_only_convnet": ["ConvNet", "convnet_accuracy", "convnet_beats_fc"],
        "lookup_cheat": ["ConvNet"],  # its accuracy stands, flagged for review
        "malicious_pickle": ["convnet_accuracy", "convnet_beats_fc"],
        "over_cap_convnet": ["ConvNet", "convnet_accuracy", "convnet_beats_fc"],
        "wrong_architecture": ["convnet_accuracy", "convnet_beats_fc"],
    }, lost
    assert "needs review" in rows["lookup_cheat"]["message"]


def test_results_json_is_gradescope_shaped_with_hidden_cases_hidden(graded):
    name, out, _, _ = graded
    results = _results(out, "reference")
    assert {"score", "tests", "output"} <= set(results)
    cases = {(c.question, c.name): c.hidden for q in question_tests(name) for c in q.cases}
    checks = {LIBRARY_CHECK_NAME, STRUCTURE_CHECK_NAME, GRADER_CHECK_NAME}
    tested = {q.name for q in question_tests(name)}  # saved-model questions have their own
    entries = [t for t in results["tests"] if t["name"].split(": ", 1)[1] not in checks
               and t["name"].split(": ", 1)[0] in tested]
    assert len(entries) == len(cases)
    for entry in entries:
        question, case = entry["name"].split(": ", 1)
        assert entry["visibility"] == ("hidden" if cases[(question, case)] else "visible")
        assert entry["status"] == "passed" and entry["score"] == entry["max_score"]


def _hidden_source_lines(source: str) -> set[str]:
    """Code lines of hidden test functions (string-only lines excluded: messages may show)."""
    lines = source.splitlines()
    found = set()
    for node in ast.parse(source).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        decorator = ast.unparse(node.decorator_list[0]) if node.decorator_list else ""
        if "hidden=True" not in decorator:
            continue
        for line in lines[node.body[0].lineno - 1 : node.end_lineno]:
            code = line.strip()
            if len(code) > 25 and not code.startswith(("f'", 'f"', "'", '"', "#")):
                found.add(code)
    return found


def test_feedback_never_shows_hidden_test_source(graded):
    name, out, _, _ = graded
    hidden_lines = set().union(*(_hidden_source_lines(s) for s in built(name).all_tests.values()))
    assert hidden_lines
    folders = [record.parent for record in out.glob("submissions/*/record.json")]
    assert len(folders) == len(list(out.glob("submissions/*/results.json"))) > 0
    for folder in folders:
        text = "".join((folder / file).read_text(encoding="utf-8")
                       for file in ("feedback.md", "feedback.html", "results.json"))
        leaked = [line for line in hidden_lines if line in text or html.escape(line) in text]
        assert not leaked, (folder.name, leaked[:3])


def test_public_only_grading_runs_no_hidden_case(tmp_path):
    name = discover()[0]
    path = tmp_path / "reference.ipynb"
    nbformat.write(built(name).reference_notebook, path)
    done = grade(
        "--assignment",
        name,
        str(path),
        "--tests",
        "public",
        "--out",
        str(tmp_path / "o"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    results = _results(tmp_path / "o", "reference")
    assert results["tests"] and all(t["visibility"] == "visible" for t in results["tests"])
    public_points = sum(c.points for q in question_tests(name) for c in q.cases if not c.hidden)
    assert results["score"] == pytest.approx(public_points, abs=1e-3)
    assert results["extra_data"]["tests"] == "public"


def test_unknown_assignment_is_an_instructor_error(tmp_path):
    done = grade("--assignment", "no_such_assignment", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown assignment" in done.stderr and "known assignments" in done.stderr


def test_unwritable_output_folder_is_an_instructor_error(tmp_path):
    name = discover()[0]
    path = tmp_path / "reference.ipynb"
    nbformat.write(built(name).reference_notebook, path)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = grade("--assignment", name, str(path), "--out", str(blocker / "out"), cwd=tmp_path)
    assert done.returncode == 2
    assert "--out" in done.stderr


def test_an_unknown_sandbox_level_is_an_instructor_error(tmp_path):
    done = subprocess.run([*GRADER, "grade", "--assignment", discover()[0], str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT),
                               "AUTOGRADER_SANDBOX": "chroot"})
    assert done.returncode == 2 and "sandbox level must be" in done.stderr, done.stderr
    assert "bug" not in done.stderr


@pytest.mark.parametrize("where,bug", [
    ("autograder.sandbox.devices.choose_device", ValueError("an internal table is inconsistent")),
    ("autograder.batch.entry.grade_batch", ZeroDivisionError("division by zero")),
])
def test_a_grader_bug_exits_1_saying_bug_and_where_the_traceback_is(where, bug, tmp_path,
                                                                    monkeypatch, capsys):
    """A bug inside the harness (here: an exception raised where the grader's own code runs)
    is never dressed as the instructor's mistake: exit 1, "bug", the traceback in a file.
    Before, a ValueError there was printed as `error: ...` with exit 2."""
    from autograder import cli
    from autograder.core import errors

    def broken(*args, **kwargs):
        raise bug

    module, name = where.rsplit(".", 1)
    monkeypatch.setattr(f"{module}.{name}", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # where the traceback goes
    path = tmp_path / "reference.ipynb"
    nbformat.write(built(discover()[0]).reference_notebook, path)
    status = cli.main(["grade", "--assignment", discover()[0], str(path), "--out",
                       str(tmp_path / "out"), "--sandbox", "process"])
    said = capsys.readouterr().err
    assert status == errors.EXIT_BUG == 1, said
    assert "bug in the grader" in said and type(bug).__name__ in said, said
    written = list(tmp_path.glob("grader-bug-*.txt"))
    assert len(written) == 1 and str(written[0]) in said, (said, written)
    trace = written[0].read_text(encoding="utf-8")
    assert "Traceback" in trace and "broken" in trace and str(bug) in trace


def _with_cells(nb, *sources):
    import copy

    result = copy.deepcopy(nb)
    result.cells.extend(nbformat.v4.new_code_cell(source) for source in sources)
    return result


def test_timeout_flags_override_the_assignment_budgets(tmp_path):
    """A 3 s cell and a 3 s call: both fine under the defaults, both cut at 1 s by the flags."""
    name = discover()[0]
    nb = _with_cells(
        built(name).reference_notebook,
        "import time\ntime.sleep(3)\n",
        "import time\n_real_corr2d = corr2d\n"
        "def corr2d(x, k):\n    time.sleep(3)\n    return _real_corr2d(x, k)\n",
    )
    path = tmp_path / "slow.ipynb"
    nbformat.write(nb, path)
    out = tmp_path / "o"
    done = grade(
        "--assignment",
        name,
        str(path),
        "--out",
        str(out),
        "--timeout-cell",
        "1",
        "--timeout-call",
        "1",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "submissions" / "slow" / "results.json").read_text())
    cells = results["extra_data"]["cells"]
    assert any(cell["status"] == "timeout" for cell in cells), cells
    corr2d = [t for t in results["tests"] if t["name"].startswith("corr2d:")]
    assert "timeout" in corr2d[0]["tags"], corr2d[0]
    _, rows = read_gradebook(out)
    assert float(rows["slow"]["corr2d"]) == 0
    assert float(rows["slow"]["conv2d"]) > 0


def test_process_fallback_grades_and_says_isolation_is_weaker(tmp_path):
    name = discover()[0]
    path = tmp_path / "reference.ipynb"
    nbformat.write(built(name).reference_notebook, path)
    out = tmp_path / "o"
    done = grade(
        "--assignment", name, str(path), "--sandbox", "process", "--out", str(out), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "submissions" / "reference" / "results.json").read_text())
    isolation = results["extra_data"]["isolation"]
    assert isolation["level"] == "process"
    assert isolation["stronger_levels_not_used"] == {"bwrap": "--sandbox process was asked for",
                                                     "uid": "--sandbox process was asked for"}
    assert results["score"] == results["extra_data"]["max_score"]
    feedback = (out / "submissions" / "reference" / "feedback.md").read_text(encoding="utf-8")
    assert "изоляция слабее" in feedback
    # the machine's reason stays in extra_data, for the instructor
    assert "--sandbox process was asked for" not in feedback


def test_language_en_writes_the_feedback_in_english_and_russian_is_the_default(tmp_path):
    """--language en: the same scores, every sentence of the feedback English; graded again
    without it, into the same folder, it is regraded (the language is part of the key) and
    Russian again."""
    name = discover()[0]
    path = tmp_path / "reference.ipynb"
    nbformat.write(built(name).reference_notebook, path)
    out = tmp_path / "o"
    scores, pages = {}, {}
    for language in ("en", None):
        extra = ("--language", language) if language else ()
        done = grade("--assignment", name, str(path), "--sandbox", "process", "--out",
                     str(out), *extra, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        results = json.loads((out / "submissions" / "reference" / "results.json").read_text())
        scores[language] = results["score"]
        folder = out / "submissions" / "reference"
        pages[language] = ((folder / "feedback.md").read_text(encoding="utf-8")
                           + (folder / "feedback.html").read_text(encoding="utf-8"))
    assert scores["en"] == scores[None] > 0
    assert not re.search("[\u0400-\u04ff]", pages["en"]), pages["en"][:1500]
    assert "Grading results: reference" in pages["en"] and '<html lang="en">' in pages["en"]
    assert "Результаты проверки: reference" in pages[None] and '<html lang="ru">' in pages[None]


def test_the_student_reads_one_plain_sentence_about_isolation_never_the_machines_reasons(
        tmp_path):
    """Below bubblewrap the student is told so in one sentence; why the stronger levels could
    not run (a traceback, the interpreter, the grader's folders, a chmod hint) is the
    instructor's: in extra_data.isolation, never in feedback.md/html or the visible output."""
    from autograder.batch.executors import tests_for
    from autograder.core.assignments import load_assignment
    from autograder.grading.pipeline import GradeOptions, grade_submission
    from autograder.outputs.writers import feedback_html, feedback_markdown
    from autograder.sandbox import Isolation, SandboxLevel

    machine = {"bwrap": "Traceback (most recent call last): missing /usr/bin/bwrap",
               "uid": "Python 3.11.2 cannot start from /root/.cache/grader-homes: "
                      "run chmod o+x /root"}
    isolation = Isolation(SandboxLevel.PROCESS, "process limits", tuple(machine.items()))
    name = discover()[0]
    assignment = load_assignment(name)
    path = tmp_path / "reference.ipynb"
    nbformat.write(built(name).reference_notebook, path)
    graded = grade_submission(path, "reference", assignment, tests_for(assignment, False),
                              GradeOptions(isolation=isolation, seed=1), tmp_path / "work")
    result, notices = graded.result, graded.notices
    assert result.score == result.max_score
    student_reads = [feedback_markdown(result, notices), feedback_html(result, notices),
                     *notices, result.message]
    assert any("без bubblewrap" in text for text in notices), notices
    for text in student_reads:
        for leak in ("Traceback", "/root", "/usr/bin", "chmod", "3.11.2", "grader-homes"):
            assert leak not in text, (leak, text[:2000])
    assert result.details.isolation.stronger_levels_not_used == machine  # the instructor's
