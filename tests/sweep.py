"""The seed sweep: every test of an assignment under many draws, on trusted notebooks.

A *draw* is one value of everything random a test can meet: the ``seed`` the harness binds
(what a test draws its inputs and weights from) and the state of the global generators
(torch, NumPy, ``random``) from which the student's own code draws, e.g. the initialisation
of a freshly built network. In the sandbox the global state differs from worker to worker,
so a test that depends on it grades the same notebook differently from run to run.

A notebook is executed once, in this process, and every case of every question is called on
the objects it made, as the sandbox would (the harness's comparisons are the same code).
Only notebooks this project made (the reference, the variants of ``tests/variants/``, the
mutants of ``tests/mutants/``, the stub) may be swept: they run unconfined here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np
import torch
from local_run import execute_cells, question_tests, trusted_environment

from autograder.grading.submission import gradable_cells
from autograder.grading.testfiles import run_case

# The sweep's seeds are drawn like `grade` draws a batch's seed (0 <= seed < 2**31), from a
# fixed sequence so that a sweep is repeatable and draw i is the same in every sweep.
SWEEP_ENTROPY = 20_201_120


def sweep_seeds(count: int, start: int = 0) -> list[int]:
    """Seeds of draws ``start .. start + count - 1`` (31-bit, as a batch's seed)."""
    states = np.random.SeedSequence(SWEEP_ENTROPY).generate_state(start + count, np.uint64)
    return [int(s % 2**31) for s in states[start:]]


def set_global_draw(seed: int, question_index: int) -> None:
    """Put the global generators, which a student's initialisation uses, in a state of this
    draw (different for each question, as the state a question meets in the worker is)."""
    mixed = (seed * 1_000_003 + question_index) % 2**32
    torch.manual_seed(mixed)
    np.random.seed(mixed)
    random.seed(mixed)


@dataclass
class CaseTally:
    """How one test case fared over the draws: passes, and the first failure seen."""

    question: str
    name: str
    points: float
    passes: int = 0
    runs: int = 0
    first_failure: tuple[int, str] | None = None  # (seed, message)

    def record(self, seed: int, error: BaseException | None) -> None:
        self.runs += 1
        if error is None:
            self.passes += 1
        elif self.first_failure is None:
            self.first_failure = (seed, f"{type(error).__name__}: {error}"[:300])


@dataclass
class Sweep:
    """A notebook under many draws: per question, its score under each draw."""

    label: str
    max_points: dict[str, float]
    scores: dict[str, list[float]] = field(default_factory=dict)
    cases: dict[tuple[str, str], CaseTally] = field(default_factory=dict)
    cell_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def failing_cases(self) -> list[CaseTally]:
        return [tally for tally in self.cases.values() if tally.passes < tally.runs]


def sweep_notebook(name: str, label: str, nb: nbformat.NotebookNode, seeds: Sequence[int],
                   workdir: Path, only: Iterable[str] | None = None) -> Sweep:
    """Execute ``nb`` (trusted) once, then run every case of every question (or of the
    questions in ``only``) under each seed."""
    started = time.monotonic()
    questions = [q for q in question_tests(name) if only is None or q.name in set(only)]
    result = Sweep(label, {q.name: q.points for q in questions})
    indices = {q.name: i for i, q in enumerate(question_tests(name))}
    namespace, result.cell_errors = execute_cells(gradable_cells(nb), workdir)
    environment = trusted_environment(name, namespace, seed=0)
    for question in questions:
        result.scores[question.name] = []
        for case in question.cases:
            result.cases[question.name, case.name] = CaseTally(question.name, case.name,
                                                               case.points)
    try:
        for seed in seeds:
            environment["seed"] = seed
            for question in questions:
                set_global_draw(seed, indices[question.name])
                score = 0.0
                for case in question.cases:
                    run = run_case(case, environment)
                    result.cases[question.name, case.name].record(seed, run.error)
                    score += case.points if run.error is None else 0.0
                result.scores[question.name].append(score)
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
    result.seconds = time.monotonic() - started
    return result
