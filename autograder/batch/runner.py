"""Grade many submissions, N at a time, writing each result the moment it is finished.

The submissions come from :mod:`.collect` (files, folders, GitHub Classroom and Gradescope
layouts; duplicate ids kept apart and reported). Each is graded by an executor
(:mod:`.executors`: a local pool or Ray) and written here, in this process, as it arrives, into
``OUT/submissions/<id>/`` (:mod:`..outputs.layout`: no id can name a file of the grader's):
results.json, the feedback and the similarity fingerprint first, ``record.json`` last, then
``OUT/gradebook.csv`` is rewritten (atomically). An interrupted batch (Ctrl-C, SIGKILL, power loss)
therefore loses nothing already graded, and the next run with the same ``--out`` grades only
what is missing, changed, or was graded under other rules (:mod:`.resume`); ``regrade=True``
grades all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.assignments import Assignment, question_order
from ..core.atomic import atomic_write
from ..core.catalogue import _
from ..core.errors import UsageError
from ..core.results import RunDetails, SubmissionResult, SubmissionStatus
from ..grading.pipeline import GradedSubmission, GradeOptions, failed_result
from ..grading.testfiles import QuestionTests
from ..outputs import layout, records, similarity, writers
from ..sandbox import SandboxLevel
from ..sandbox import uid as uid_level
from . import resume
from .collect import Collected, Found, collect
from .executors import BatchContext, Executor, LocalPool, tests_for

__all__ = [
    "BatchSummary",
    "OutputDirError",
    "grade_batch",
    "prepare_out_dir",
]


class OutputDirError(UsageError, RuntimeError):
    """The output folder cannot be used (the instructor's mistake; the message says why)."""


@dataclass(frozen=True)
class BatchSummary:
    """What a batch produced: every result (reused ones included) and how it went."""

    results: tuple[SubmissionResult, ...]
    out_dir: Path
    questions: tuple[str, ...]
    collected: Collected
    reused: int = 0  # results taken from an earlier run with the same key
    seconds: float = 0.0

    def one_line(self) -> str:
        """``graded 198, failed to run 2, flagged 3, mean 11.4/14, 95 s (5 reused)``."""
        graded = [r for r in self.results if r.status is SubmissionStatus.GRADED]
        failed = len(self.results) - len(graded)
        flagged = sum(1 for r in self.results if r.review_flags)
        top = max((r.max_score for r in self.results), default=0.0)
        mean = sum(r.score for r in self.results) / len(self.results) if self.results else 0.0
        reused = f" ({self.reused} reused from an earlier run)" if self.reused else ""
        return (f"graded {len(graded)}, failed to run {failed}, flagged for review {flagged}, "
                f"mean score {mean:.2f}/{top:g}, {self.seconds:.0f} s{reused}")


def prepare_out_dir(out_dir: Path) -> None:
    """Create the output folder (an older grader's folder is moved into today's layout), or
    explain why it cannot be used."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        layout.adopt_old_layout(out_dir)
    except OSError as exc:
        raise OutputDirError(
            f"cannot write to the output folder {out_dir}: {exc.strerror}; "
            "choose another with --out"
        ) from None


def _write_submission(out_dir: Path, graded: GradedSubmission, max_score: float) -> None:
    folder = layout.submission_dir(out_dir, graded.result.submission_id)
    atomic_write(folder / layout.RESULTS, writers.gradescope_results(graded.result, max_score))
    atomic_write(folder / layout.FEEDBACK_MD,
                 writers.feedback_markdown(graded.result, graded.notices))
    atomic_write(folder / layout.FEEDBACK_HTML,
                 writers.feedback_html(graded.result, graded.notices))


def _max_score(assignment: Assignment, options: GradeOptions, test_points: float) -> float:
    """Points possible in this batch: the tests, plus the saved models when they are graded."""
    if options.evaluation is None:
        return test_points
    config = assignment.config
    return test_points + sum(q.points for q in (*config.accuracy, *config.comparison))


def _reusable(jobs: Sequence[Found], out_dir: Path, keys: dict[str, str]
              ) -> dict[str, SubmissionResult]:
    """Results already in ``out_dir`` under the same key (by submission id)."""
    found = {}
    for job in jobs:
        result = records.finished_result(out_dir, job.submission_id, keys[job.submission_id])
        if result is not None:
            found[job.submission_id] = result
    return found


def grade_batch(
    paths: Sequence[Path],
    assignment: Assignment,
    options: GradeOptions,
    out_dir: Path,
    jobs: int = 1,
    on_done: Callable[[SubmissionResult], None] | None = None,
    *,
    regrade: bool = False,
    executor: Executor | None = None,
    on_plan: Callable[[Collected, int], None] | None = None,
) -> BatchSummary:
    """Grade the submissions in ``paths`` (any layout :func:`.collect.collect` reads).

    Results already in ``out_dir`` under the same grading key are reused unless ``regrade``;
    ``on_plan(collected, to_grade)`` hears the plan before grading starts, ``on_done`` each
    newly graded result. Raises CollectError, OutputDirError, and KeyboardInterrupt (after
    everything finished so far is on disk).
    """
    started = time.monotonic()
    collected = collect(paths, f"{assignment.name}.ipynb")
    prepare_out_dir(out_dir)
    level = options.isolation.level
    guarded = [assignment.source_dir, out_dir] if level is SandboxLevel.UID else []
    tests = tests_for(assignment, options.public_only)  # instructor errors first
    questions = tuple(question_order(assignment))
    max_score = _max_score(assignment, options, sum(q.points for q in tests))
    batch_key = resume.batch_key(assignment, options)
    keys = {j.submission_id: resume.grading_key(j.path, batch_key) for j in collected.submissions}
    reused = {} if regrade else _reusable(collected.submissions, out_dir, keys)
    orphans = resume.take_orphans(out_dir)  # markers of a grader that died mid-submission
    killers, suspects = (set(), set()) if regrade else resume.judge_orphans(orphans, keys)
    todo = [j for j in collected.submissions if j.submission_id not in reused]
    atomic_write(out_dir / records.STATE_DIR / records.BATCH_STATE,
                 records.batch_state_text(assignment.name, options.seed))
    if on_plan is not None:
        on_plan(collected, len(todo))
    finished = dict(reused)
    origins = {j.submission_id: j.path for j in collected.submissions}
    stub = assignment.student_notebook
    for submission_id in reused:  # graded before fingerprints existed
        if not layout.submission_file(out_dir, submission_id, layout.FINGERPRINT).is_file():
            similarity.write_fingerprint(out_dir, submission_id, origins[submission_id], stub)

    def deliver(graded: GradedSubmission) -> None:
        result = graded.result
        _write_submission(out_dir, graded, max_score)
        similarity.write_fingerprint(out_dir, result.submission_id,
                                     origins[result.submission_id], stub)
        atomic_write(layout.submission_file(out_dir, result.submission_id, layout.RECORD),
                     records.record_text(result, keys[result.submission_id]))
        in_flight.end(result.submission_id)
        finished[result.submission_id] = result
        atomic_write(out_dir / layout.GRADEBOOK,
                     writers.gradebook_csv(list(finished.values()), questions))
        if on_done is not None:
            on_done(result)

    in_flight = resume.InFlight(out_dir, keys, level.value, frozenset(suspects))
    atomic_write(out_dir / layout.GRADEBOOK,
                 writers.gradebook_csv(list(reused.values()), questions))
    for job in todo:
        if job.submission_id in killers:
            deliver(GradedSubmission(_killed_the_grader(job.submission_id, tests, options), ()))
    todo = [j for j in todo if j.submission_id not in killers]
    context = BatchContext(assignment, options, out_dir, in_flight)
    alone = [j for j in todo if j.submission_id in suspects]
    rest = [j for j in todo if j.submission_id not in suspects]
    with uid_level.private_while_grading(guarded):
        if alone:  # one at a time, before the rest: if the grader dies again, it is known why
            LocalPool(1).run(alone, context, deliver)
        (executor or LocalPool(jobs)).run(rest, context, deliver)
    results = tuple(sorted(finished.values(), key=lambda r: r.submission_id))
    return BatchSummary(results, out_dir, questions, collected, len(reused),
                        time.monotonic() - started)


def _killed_the_grader(sub_id: str, tests: Sequence[QuestionTests],
                       options: GradeOptions) -> SubmissionResult:
    """The result of a submission that was being graded, alone, when the grader died."""
    message = _(
        "grading this submission stopped the grader itself (at the process isolation level the "
        "submission's code runs as the grader and can end it, with os.kill(os.getppid(), ...) "
        "for example); it was not graded again (`--regrade` grades it again)"
    )
    details = RunDetails(isolation=options.isolation.record(), grader_died=True)
    return failed_result(sub_id, tests, message, details)


def batch_seed(out_dir: Path, assignment: Assignment, seed: int | None, regrade: bool,
               draw: Callable[[], int]) -> int:
    """The seed to grade with: ``seed`` if given; else an earlier batch's in ``out_dir`` (so a
    resumed run asks the same hidden-test questions), unless ``regrade``; else a new draw."""
    if seed is not None:
        return seed
    stored = None if regrade else records.stored_seed(out_dir, assignment.name)
    return stored if stored is not None else draw()
