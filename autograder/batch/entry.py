"""The one way into grading a class: :func:`grade_class` takes what an instructor asks for
(:class:`GradeRequest`) and does all the assembling: the isolation level, the test sets for
saved models, the device, the executor, the seed, the batch, the class report, and what must
be cleaned up when the batch is stopped or interrupted. The CLI, the demo and the Gradescope
run call it; none of them builds options or an argv of its own.

Errors: a :class:`~autograder.core.errors.UsageError` says what the instructor should change
(the CLI exits 2); :class:`BatchStopped` stops a batch whose isolation fell short (every
sandbox already stopped); :class:`BatchInterrupted` is Ctrl-C (every sandbox already stopped,
the finished results kept). Anything else is a bug of the grader.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.assignments import Assignment, ConfigError, load_assignment
from ..core.catalogue import use_language
from ..core.results import SubmissionResult
from ..sandbox import Isolation
from .collect import Collected
from .executors import BatchStopped, Executor, ExecutorError, LocalPool, RayPool, require_ray
from .runner import BatchSummary, batch_seed, grade_batch

if TYPE_CHECKING:
    from ..grading.evaluation import EvaluationData

__all__ = ["BatchInterrupted", "BatchStopped", "ClassGraded", "GradeRequest", "grade_class"]


@dataclass(frozen=True)
class GradeRequest:
    """What an instructor asks for (the options of ``grader.py grade``)."""

    assignment: str
    submissions: tuple[Path, ...]
    out: Path
    tests: str = "all"  # "all" or "public"
    sandbox: str = "auto"  # "auto", "bwrap", "uid" or "process"
    seed: int | None = None  # None: an earlier batch's in ``out``, else a new draw
    regrade: bool = False
    jobs: int = 1
    cell_timeout_s: float | None = None  # None: the assignment's own budgets
    call_timeout_s: float | None = None
    data_dir: Path | None = None  # where `grader.py data` put the test sets
    dataset: str = "auto"  # "auto", "cifar10" or "synthetic"
    test_set: Path | None = None
    secret_set: Path | None = None
    retrain: bool = False
    device: str = "auto"  # "auto", "cpu" or "cuda"
    executor: str = "local"  # "local" or "ray"
    address: str | None = None  # a Ray cluster's address
    report: bool = True  # write OUT/report.html after the batch
    language: str | None = None  # what students read; None: the assignment's language


@dataclass(frozen=True)
class ClassGraded:
    """What :func:`grade_class` did: the batch's summary and how it was graded."""

    assignment: Assignment
    summary: BatchSummary
    isolation: Isolation
    seed: int
    device: str
    evaluation: EvaluationData | None  # what saved models were graded on (None: not graded)
    report: Path | None  # OUT/report.html, or None when not written
    report_problem: str | None  # why report.html could not be written (the results stand)

    def one_line(self) -> str:
        """The summary line an instructor reads after a batch."""
        models = (f", models on {self.evaluation.dataset} ({self.device})"
                  if self.evaluation is not None else "")
        return (f"{self.assignment.name}: {self.summary.one_line()} (sandbox: "
                f"{self.isolation.one_line()}, seed: {self.seed}{models}); results in "
                f"{self.summary.out_dir}")


class BatchInterrupted(Exception):
    """Ctrl-C: every running sandbox was stopped; the finished results are kept in ``out``."""

    def __init__(self, out: Path, finished: int, stopped: int):
        super().__init__(f"interrupted: {finished} result(s) finished in this run are in {out}; "
                         f"{stopped} running submission(s) stopped. Run the same command again "
                         "to grade only what is missing.")
        self.out, self.finished, self.stopped = out, finished, stopped


OnPlan = Callable[[Collected, int], None]
OnDone = Callable[[SubmissionResult], None]


def grade_class(request: GradeRequest, on_plan: OnPlan | None = None,
                on_done: OnDone | None = None) -> ClassGraded:
    """Grade ``request.submissions`` into ``request.out``; ``on_plan`` and ``on_done`` see the
    batch's plan and each finished result (a progress display)."""
    from ..grading.pipeline import GradeOptions
    from ..sandbox import choose_isolation
    from ..sandbox.devices import choose_device

    assignment = load_assignment(request.assignment)
    _check_tests_choice(assignment, request.tests)
    use_language(request.language or assignment.config.language)  # before any worker starts
    isolation = choose_isolation(request.sandbox)
    data = _evaluation_data(request, assignment)
    device = choose_device(request.device)
    executor = _executor(request, device)
    seed = batch_seed(request.out, assignment, request.seed, request.regrade,
                      lambda: secrets.randbelow(2**31))
    options = GradeOptions(
        isolation=isolation, seed=seed,
        public_only=request.tests == "public",
        cell_timeout_s=request.cell_timeout_s, call_timeout_s=request.call_timeout_s,
        evaluation=data, device=device, retrain=request.retrain,
        threads=max(1, (os.cpu_count() or 1) // request.jobs),
        gpu_share=0.9 / request.jobs,  # workers on one GPU share it (a courtesy cap each)
    )
    finished: list[SubmissionResult] = []

    def done(result: SubmissionResult) -> None:
        finished.append(result)
        if on_done is not None:
            on_done(result)

    try:
        summary = grade_batch(request.submissions, assignment, options, request.out,
                              request.jobs, done, regrade=request.regrade, executor=executor,
                              on_plan=on_plan)
    except BatchStopped:
        stop_every_sandbox()
        raise
    except KeyboardInterrupt:
        from .resume import clear_markers

        stopped = stop_every_sandbox()
        clear_markers(request.out, os.getpid())  # the instructor stopped it: no one to blame
        raise BatchInterrupted(request.out, len(finished), stopped) from None
    report, problem = _report(summary.out_dir) if request.report else (None, None)
    return ClassGraded(assignment, summary, isolation, seed, device, data, report, problem)


def _check_tests_choice(assignment: Assignment, tests: str) -> None:
    """Refuse ``--tests all`` on a copy that has no hidden tests (a student kit): grading a
    kit "with all tests" would quietly grade with the public ones only."""
    if tests != "public" and not assignment.has_hidden_tests:
        raise ConfigError(
            f"{assignment.name} here is a student kit: it holds the public tests only (no hidden "
            "tests, no solutions), so it cannot grade with all tests. Run grade with "
            "--tests public; final grades come from the instructor's grader."
        )


def stop_every_sandbox() -> int:
    """Kill every running worker of this grader, remove the uid level's live areas and
    restore the folder modes it changed; the number of workers stopped."""
    from ..sandbox import uid as uid_level
    from ..sandbox.process import kill_all_workers

    killed = kill_all_workers()
    uid_level.remove_live_areas()
    uid_level.restore_modes()
    return killed


def _evaluation_data(request: GradeRequest, assignment: Assignment) -> EvaluationData | None:
    """The test sets for the saved models, loaded before any grading starts (or None)."""
    if not assignment.config.accuracy or request.tests == "public":
        return None
    from ..grading.evaluation import load_data

    return load_data(request.dataset, request.data_dir, request.secret_set,
                     assignment.config.evaluation, with_train=request.retrain,
                     test_set=request.test_set)


def _executor(request: GradeRequest, device: str) -> Executor:
    """The local pool, or Ray (checked importable now, not half-way through a batch)."""
    if request.executor == "ray":
        require_ray()
        return RayPool(request.address, request.jobs, gpu=device == "cuda")
    if request.address:
        raise ExecutorError("--address is for --executor ray")
    return LocalPool(request.jobs)


def _report(out: Path) -> tuple[Path | None, str | None]:
    """OUT/report.html after a batch; a failure is only reported (the results are on disk)."""
    import traceback

    from ..outputs.report import ReportError, write_report

    try:
        return write_report(out), None
    except ReportError as exc:
        return None, str(exc)
    except Exception:  # the grader's bug: the batch's results stand, the report can be redone
        return None, (f"{traceback.format_exc()}report.html could not be written (the "
                      f"traceback above is a grader bug); the results in {out} are complete. "
                      f"Retry with `python grader.py report {out}`.")
