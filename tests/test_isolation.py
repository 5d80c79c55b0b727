"""Escapes seen from outside the sandbox, at every isolation level this machine has.

Each level grades the same batch (tests/catalogue/escapes.py plus the two controls) through
the CLI. bwrap and uid must contain every escape: the batch finishes on its first run, every
escape keeps the reference's full marks, no hidden test is read, no TCP connection reaches
the loopback listener, no process outside the sandbox is signalled, nothing is left running.
The process level runs student code as the grader's own user, so a notebook can kill the
grader: there the same command, run again, must finish the batch, failing exactly the
submissions that killed it and grading the rest.
"""

from __future__ import annotations

import os

import pytest
from catalogue.escapes import ESCAPE_SCENARIOS
from catalogue.levels import (
    LevelRun,
    batch_containment,
    check_scenario,
    containment,
    grade_catalogue,
)
from local_run import built

from autograder.core.assignments import PROJECT_ROOT
from autograder.sandbox import launcher
from autograder.sandbox import uid as uid_level

NAME = "01_convolution_pooling"
BWRAP_PROBLEM = launcher.bwrap_problem()
UID_PROBLEM = uid_level.uid_problem() or (
    None if uid_level.landlock_abi() >= 6 else
    f"Landlock ABI {uid_level.landlock_abi()} here; signals are scoped from ABI 6")
CONFINED = [
    pytest.param("bwrap", marks=pytest.mark.skipif(
        BWRAP_PROBLEM is not None, reason=f"bwrap level: {BWRAP_PROBLEM}")),
    pytest.param("uid", marks=pytest.mark.skipif(
        UID_PROBLEM is not None, reason=f"uid level: {UID_PROBLEM}")),
]
KILLERS = {"escape_kill_parent", "escape_kill_group"}


def _grade(level: str, tmp_path_factory, data_dir) -> LevelRun:
    return grade_catalogue(NAME, ESCAPE_SCENARIOS, level, tmp_path_factory.mktemp(f"esc-{level}"),
                           PROJECT_ROOT, built(NAME).reference_notebook,
                           built(NAME).student_notebook, data_dir)


@pytest.mark.parametrize("level", CONFINED)
def test_confined_levels_contain_every_escape(level, tmp_path_factory, synthetic_root):
    run = _grade(level, tmp_path_factory, synthetic_root)
    assert run.exits == [0], run.output[-3000:]
    whole, why = batch_containment(run)
    assert whole, why
    escaped = {s.id: containment(run, s)[1] for s in ESCAPE_SCENARIOS
               if not containment(run, s)[0]}
    assert escaped == {}
    assert run.connections == [] and run.victims_alive


@pytest.mark.skipif(os.geteuid() != 0, reason="hostile code at the process level runs only "
                    "under a throwaway grader uid, which needs root to start")
def test_process_level_finishes_a_batch_whose_submissions_kill_the_grader(tmp_path_factory,
                                                                          synthetic_root):
    run = _grade("process", tmp_path_factory, synthetic_root)
    assert run.exits[0] != 0 and run.exits[-1] == 0, (run.exits, run.output[-3000:])
    assert len(run.exits) <= 1 + 2 * len(KILLERS), run.exits  # each death finds its cause
    assert run.died_for() == KILLERS
    for killer in KILLERS:
        row = run.rows[killer]
        assert row["status"] == "error" and float(row["score"]) == 0, row
        feedback = (run.out_dir / "submissions" / killer / "feedback.md").read_text(
            encoding="utf-8")
        assert "остановила саму проверяющую систему" in feedback
    check_scenario(run, next(s for s in ESCAPE_SCENARIOS if s.id == "escape_tcp_loopback"))
    reference, stub = run.rows["control_reference"], run.rows["control_stub"]
    assert reference["status"] == "graded" and float(reference["score"]) == float(
        reference["max_score"]) and float(stub["score"]) == 0
    assert not list((run.out_dir / ".grader" / "in-flight").glob("*.json"))
