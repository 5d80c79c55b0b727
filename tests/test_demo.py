"""`grader.py demo`: it grades every assignment's examples and cannot print zeros and exit 0.

The demo's verdict (:func:`autograder.demo.wrong_grades`) is checked on results made here (a
reference short of full marks, a stub above zero, the full-marks example short), and the
demo itself runs end to end at the process level, the one every machine has.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from autograder.batch.collect import Collected
from autograder.batch.runner import BatchSummary
from autograder.core.assignments import PROJECT_ROOT, load_assignment, question_order
from autograder.core.results import QuestionResult, SubmissionResult, SubmissionStatus
from autograder.demo import wrong_grades


def _result(sub: str, scores: dict[str, tuple[float, float]]) -> SubmissionResult:
    questions = tuple(QuestionResult(name, top, got, (), ()) for name, (got, top) in
                      scores.items())
    return SubmissionResult(sub, SubmissionStatus.GRADED, "", questions)


def _summary(name: str, results: list[SubmissionResult]) -> BatchSummary:
    return BatchSummary(tuple(results), Path("out"), tuple(question_order(load_assignment(name))),
                        Collected((), (), ()), 0, 1.0)


def test_right_grades_give_no_complaint():
    name = "03_convnet_cifar10"
    assignment = load_assignment(name)
    full = {q: (1.0, 1.0) for q in question_order(assignment)}
    zero = {q: (0.0, 1.0) for q in question_order(assignment)}
    summary = _summary(name, [_result("reference", full), _result("stub", zero),
                              _result("good", full)])
    assert wrong_grades(assignment, summary, "uid") == []


def test_wrong_grades_name_the_assignment_the_level_and_the_question():
    name = "03_convnet_cifar10"
    assignment = load_assignment(name)
    questions = question_order(assignment)
    reference = {q: (1.0, 1.0) for q in questions} | {"ConvNet": (0.0, 2.0)}
    stub = {q: (0.0, 1.0) for q in questions} | {"FCNet": (0.5, 1.0)}
    good = {q: (1.0, 1.0) for q in questions} | {"convnet_accuracy": (1.5, 3.0)}
    summary = _summary(name, [_result("reference", reference), _result("stub", stub),
                              _result("good", good)])
    assert wrong_grades(assignment, summary, "process") == [
        f"{name} at the process level: the reference solution scores 0/2 on ConvNet",
        f"{name} at the process level: the student stub scores 0.5 on FCNet",
        f"{name} at the process level: the 'good' example (the reference with trained "
        "weights) scores 1.5/3 on convnet_accuracy",
    ]


def test_demo_grades_an_assignment_right_at_the_process_level(tmp_path):
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "grader.py"), "demo",
                           "02_pytorch_modules", "--sandbox", "process", "--out",
                           str(tmp_path / "demo")], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[sandbox] process (" in done.stderr and "GRADED WRONG" not in done.stderr  # notes
    assert "11.00/11" in done.stdout  # the reference's total, in the table (the result)
