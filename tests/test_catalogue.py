"""The catalogue of bad and hostile submissions, graded in one batch through the real CLI.

For every scenario: the grader finishes with exit 0, the control submissions in the same
batch keep their correct scores, no process is left behind, nothing outside the sandbox
changes, no cheat beats the stub on the question it targets, and the feedback says what
happened.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from catalogue.layers import LAYER_SCENARIOS
from catalogue.scenarios import ALL, SCENARIOS, Context, Scenario
from catalogue.students import STUDENT_SCENARIOS
from local_run import built, question_tests

from autograder.assignments import PROJECT_ROOT

EVERY_SCENARIO: list[Scenario] = SCENARIOS + LAYER_SCENARIOS + STUDENT_SCENARIOS
ASSIGNMENTS = sorted({scenario.assignment for scenario in EVERY_SCENARIO})
SANDBOX_UIDS = range(61000, 62000)  # autograder.sandbox.launcher: UID_BASE + slot

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bubblewrap is not installed (apt-get install -y bubblewrap); hostile code must "
    "not run in the plain-process fallback on a developer's machine",
)


@dataclass(frozen=True)
class CatalogueRun:
    assignment: str
    returncode: int
    output: str
    rows: dict[str, dict[str, str]]
    out_dir: Path
    canary_dir: Path
    tree_before: dict[str, str]
    tree_after: dict[str, str]
    leftover: list[str]


def _tree_digest(*roots: Path) -> dict[str, str]:
    digest = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def _sandbox_processes(base: Path) -> list[str]:
    """Sandbox processes still alive: any process of a sandbox uid, or naming this run's
    folders on its command line (bwrap and setpriv do). Assumes no other grading runs on the
    machine meanwhile (true in CI)."""
    found = []
    for proc in psutil.process_iter(["pid", "uids", "cmdline"]):
        try:
            uid = proc.info["uids"].real
            cmdline = " ".join(proc.info["cmdline"] or [])
        except (psutil.Error, TypeError, AttributeError):
            continue
        if uid in SANDBOX_UIDS or str(base) in cmdline:
            found.append(f"{proc.info['pid']} (uid {uid}): {cmdline[:120]}")
    return found


def _scenarios_of(assignment: str) -> list[Scenario]:
    return [s for s in EVERY_SCENARIO if s.assignment == assignment]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory, synthetic_root) -> Callable[[str], CatalogueRun]:
    """``catalogue(name)``: the batch of that assignment's scenarios, graded once."""
    runs: dict[str, CatalogueRun] = {}

    def run_for(assignment: str) -> CatalogueRun:
        if assignment not in runs:
            runs[assignment] = _grade_catalogue(assignment, tmp_path_factory, synthetic_root)
        return runs[assignment]

    return run_for


@pytest.fixture(params=ASSIGNMENTS)
def run(request, catalogue) -> CatalogueRun:
    """Each assignment's batch in turn (for the checks that hold for a whole batch)."""
    return catalogue(request.param)


def _grade_catalogue(assignment: str, tmp_path_factory, data_dir: Path) -> CatalogueRun:
    """Every scenario of one assignment, with its controls, in one batch through the CLI."""
    base = tmp_path_factory.mktemp(f"catalogue-{assignment}")
    canary = base / "canary"
    canary.mkdir()
    (canary / "canary.txt").write_text("untouched")
    out = base / "out"
    ctx = Context(
        reference=built(assignment).reference_notebook,
        stub=built(assignment).student_notebook,
        canary_dir=canary,
        out_dir=out,
        project_root=PROJECT_ROOT,
        assignment=assignment,
    )
    submissions = base / "submissions"
    paths = []
    for scenario in _scenarios_of(assignment):
        folder = submissions / scenario.id
        folder.mkdir(parents=True)
        paths.append(scenario.build(ctx, folder))
    for control, nb in (("control_reference", ctx.reference), ("control_stub", ctx.stub)):
        folder = submissions / control
        folder.mkdir()
        paths.append(folder)
        import nbformat

        nbformat.write(nb, folder / f"{assignment}.ipynb")
    scratch_root = base / "tmp"
    scratch_root.mkdir()
    watched = (PROJECT_ROOT / "solutions", PROJECT_ROOT / "assignments", canary)
    before = _tree_digest(*watched)
    command = [
        sys.executable,
        str(PROJECT_ROOT / "grader.py"),
        "grade",
        "--assignment",
        assignment,
        *map(str, paths),
        "--out",
        str(out),
        "--jobs",
        "2",
        "--sandbox",
        "bwrap",
        "--timeout-cell",
        "5",
        "--timeout-call",
        "4",
        "--seed",
        "4242",
        "--data-dir",  # 03's saved-model questions are graded on the synthetic set
        str(data_dir),
    ]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=1500,
        cwd=base,
        check=False,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TMPDIR": str(scratch_root)},
    )
    rows = {}
    gradebook = out / "gradebook.csv"
    if gradebook.is_file():
        with gradebook.open(encoding="utf-8") as handle:
            rows = {row["submission"]: row for row in csv.DictReader(handle)}
    return CatalogueRun(
        assignment=assignment,
        returncode=completed.returncode,
        output=completed.stdout + completed.stderr,
        rows=rows,
        out_dir=out,
        canary_dir=canary,
        tree_before=before,
        tree_after=_tree_digest(*watched),
        leftover=_sandbox_processes(base),
    )


def test_the_catalogue_is_large_enough():
    assert len(SCENARIOS) >= 30
    assert len(STUDENT_SCENARIOS) >= 10
    assert {s.id.split("_")[1] for s in LAYER_SCENARIOS if s.id.startswith("bypass_")} >= {
        "computed", "module", "partial", "lambda", "decorator", "callable", "sys", "builtins",
        "reload", "torch",
    }


def test_grader_finishes_and_grades_every_submission(run):
    assert run.returncode == 0, run.output[-3000:]
    assert len(run.rows) == len(_scenarios_of(run.assignment)) + 2


def test_control_submissions_in_the_same_batch_keep_their_scores(run):
    """The reference is full on every test-graded question (it carries no weights files, so
    03's saved-model questions score 0 for it, as for every catalogue scenario)."""
    reference, stub = run.rows["control_reference"], run.rows["control_stub"]
    tested = [q.name for q in question_tests(run.assignment)]
    points = {q.name: q.points for q in question_tests(run.assignment)}
    assert all(float(reference[q]) == pytest.approx(points[q]) for q in tested), reference
    assert float(stub["score"]) == 0


def test_no_sandbox_process_is_left_behind(run):
    assert run.leftover == []


def test_nothing_outside_the_sandbox_changed(run):
    assert run.tree_after == run.tree_before
    assert sorted(p.name for p in run.canary_dir.iterdir()) == ["canary.txt"]
    assert not (run.out_dir / "fake_results" / "gradebook.csv").exists()
    assert not (run.out_dir.parent / "escaped.txt").exists()


def _questions(row: dict[str, str], reference: dict[str, str]) -> list[str]:
    """The scored questions (those not scored yet stay empty in every row)."""
    fixed = {"submission", "score", "max_score", "status", "message"}
    return [column for column in row if column not in fixed and reference[column] != ""]


def _flagged_questions(run: CatalogueRun, scenario_id: str) -> set[str]:
    results = json.loads((run.out_dir / scenario_id / "results.json").read_text(encoding="utf-8"))
    return {flag["question"] for flag in results["extra_data"]["needs_review"]}


def _check_scores(run: CatalogueRun, scenario: Scenario, row: dict[str, str]) -> None:
    reference, stub = run.rows["control_reference"], run.rows["control_stub"]
    questions = _questions(row, reference)
    full = set(questions if ALL in scenario.full_marks else scenario.full_marks)
    if scenario.lost:
        full |= set(questions) - set(scenario.lost)
        for question in scenario.lost:
            assert float(row[question]) < float(reference[question]), (question, row)
    for question in full:
        assert float(row[question]) == float(reference[question]), (question, row)
    targets = questions if ALL in scenario.no_better_than_stub else scenario.no_better_than_stub
    for question in (*targets, *scenario.caught):
        assert float(row[question]) <= float(stub[question]), (question, row)
    for question in scenario.caught:
        assert float(stub[question]) == 0, (question, stub)
    for question in scenario.partial:
        assert 0 < float(row[question]) < float(reference[question]), (question, row)


def _check_feedback(run: CatalogueRun, scenario: Scenario) -> None:
    feedback = (run.out_dir / scenario.id / "feedback.md").read_text(encoding="utf-8")
    for text in scenario.feedback:
        said = any(alternative in feedback for alternative in text.split("|"))
        assert said, f"feedback of {scenario.id} should say {text!r}:\n{feedback[:1500]}"
    for text in scenario.feedback_absent:
        assert text not in feedback, f"feedback of {scenario.id} says {text!r}:\n{feedback[:1500]}"
    flagged = _flagged_questions(run, scenario.id)
    assert set(scenario.flagged) <= flagged, (scenario.flagged, flagged)
    for question in scenario.caught:  # a bypass is zeroed, and the feedback says why
        said = "Вопрос оценён в 0" in feedback or question in flagged
        assert said, f"{scenario.id}: nothing explains the 0 on {question}:\n{feedback[:2000]}"


@pytest.mark.parametrize("scenario", EVERY_SCENARIO, ids=lambda s: s.id)
def test_scenario(catalogue, scenario):
    run = catalogue(scenario.assignment)
    row = run.rows[scenario.id]
    assert row["status"] == scenario.status, row
    assert (run.out_dir / scenario.id / "results.json").is_file()
    _check_scores(run, scenario, row)
    _check_feedback(run, scenario)
