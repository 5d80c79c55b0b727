"""The catalogue of bad and hostile submissions, graded in one batch through the real CLI, at
the strongest confining level here (bwrap, else uid with Landlock; the other levels are
measured by bench/isolation_matrix.py).

For every scenario: the grader finishes with exit 0, the control submissions in the same
batch keep their correct scores, no process is left behind, nothing outside the sandbox
changes, no cheat beats the stub on the question it targets, and the feedback says what
happened.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from catalogue.layers import LAYER_SCENARIOS
from catalogue.levels import (
    LevelRun,
    check_scenario,
    fake_gradebooks,
    grade_catalogue,
    raw_control,
)
from catalogue.memorisation import MEMORISATION_SCENARIOS
from catalogue.scenarios import SCENARIOS, Scenario
from catalogue.students import STUDENT_SCENARIOS
from catalogue.trusted import TRUSTED_SCENARIOS
from conftest import confining_level
from local_run import built, question_tests

from autograder.core.assignments import PROJECT_ROOT

EVERY_SCENARIO: list[Scenario] = (SCENARIOS + LAYER_SCENARIOS + STUDENT_SCENARIOS
                                   + TRUSTED_SCENARIOS + MEMORISATION_SCENARIOS)
ASSIGNMENTS = sorted({scenario.assignment for scenario in EVERY_SCENARIO})

LEVEL, WHY_NOT = confining_level()
pytestmark = pytest.mark.skipif(LEVEL is None, reason=WHY_NOT)


def _scenarios_of(assignment: str) -> list[Scenario]:
    return [s for s in EVERY_SCENARIO if s.assignment == assignment]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory, synthetic_root) -> Callable[[str], LevelRun]:
    """``catalogue(name)``: the batch of that assignment's scenarios, graded once."""
    runs: dict[str, LevelRun] = {}

    def run_for(assignment: str) -> LevelRun:
        if assignment not in runs:
            runs[assignment] = grade_catalogue(
                assignment, _scenarios_of(assignment), LEVEL,
                tmp_path_factory.mktemp(f"catalogue-{assignment}"), PROJECT_ROOT,
                built(assignment).reference_notebook, built(assignment).student_notebook,
                synthetic_root)
        return runs[assignment]

    return run_for


@pytest.fixture(params=ASSIGNMENTS)
def run(request, catalogue) -> LevelRun:
    """Each assignment's batch in turn (for the checks that hold for a whole batch)."""
    return catalogue(request.param)


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


def test_the_grader_prints_no_control_character_a_terminal_would_obey(run):
    """Ids, messages, file names and flagged lines come from submissions: escapes in them
    reach the instructor's terminal as text (``\\x1b``), never as commands."""
    assert raw_control(run.output) is None


def test_no_sandbox_process_is_left_behind(run):
    assert run.leftover == []


def test_nothing_outside_the_sandbox_changed(run):
    assert run.tree_after == run.tree_before
    assert sorted(p.name for p in run.canary_dir.iterdir()) == ["canary.txt"]
    assert not any(path.exists() for path in fake_gradebooks(run.out_dir))
    assert not (run.out_dir.parent / "escaped.txt").exists()


@pytest.mark.parametrize("scenario", EVERY_SCENARIO, ids=lambda s: s.id)
def test_scenario(catalogue, scenario):
    run = catalogue(scenario.assignment)
    check_scenario(run, scenario)
