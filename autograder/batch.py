"""Grade many submissions, N at a time, writing each result the moment it is finished.

A submission that breaks the grader itself gets an error row and a grader_error.txt with the
traceback for the instructor; the others are unaffected. results.json and feedback.md of a
finished submission are on disk before the next one is reported, and gradebook.csv is
rewritten (atomically) after each, so an interrupted batch loses nothing already graded.
"""

from __future__ import annotations

import os
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from . import writers
from .assignments import Assignment, question_order, tested_question_names
from .grading import (
    GradedSubmission,
    GradeOptions,
    failed_result,
    grade_submission,
    safe_id,
    select_tests,
)
from .results import SubmissionResult
from .submission import submission_id
from .testfiles import QuestionTests, check_bindings, fixture_names, load_tests


class OutputDirError(RuntimeError):
    """The output folder cannot be used (the instructor's mistake; the message says why)."""


@dataclass(frozen=True)
class BatchSummary:
    """What a batch produced."""

    results: tuple[SubmissionResult, ...]
    out_dir: Path
    questions: tuple[str, ...]


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def prepare_out_dir(out_dir: Path) -> None:
    """Create the output folder, or explain why it cannot be used."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise OutputDirError(
            f"cannot write to the output folder {out_dir}: {exc.strerror}; "
            "choose another with --out"
        ) from None


def unique_ids(paths: Sequence[Path]) -> list[str]:
    """Submission ids, made unique (``name``, ``name-2``, ...) so no result hides another."""
    seen: dict[str, int] = {}
    ids = []
    for path in paths:
        base = safe_id(submission_id(path))
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


def _write_submission(out_dir: Path, graded: GradedSubmission, max_score: float) -> None:
    folder = out_dir / graded.result.submission_id
    atomic_write(folder / "results.json", writers.gradescope_results(graded.result, max_score))
    atomic_write(folder / "feedback.md", writers.feedback_markdown(graded.result, graded.notices))


def _grade_one(
    path: Path,
    sub_id: str,
    assignment: Assignment,
    tests: Sequence[QuestionTests],
    options: GradeOptions,
    slot: int,
    out_dir: Path,
) -> GradedSubmission:
    with tempfile.TemporaryDirectory(prefix=f"grade-{sub_id}-") as workdir:
        try:
            return grade_submission(path, sub_id, assignment, tests, options, Path(workdir), slot)
        except Exception:  # the grader's own bug: this submission alone gets an error row
            trace = traceback.format_exc()
            atomic_write(out_dir / sub_id / "grader_error.txt", trace)
            message = (
                "внутренняя ошибка проверяющей системы (не ваша); преподаватель видит подробности "
                "в grader_error.txt (internal grader error)"
            )
            return GradedSubmission(failed_result(sub_id, tests, message), ())


def load_checked_tests(assignment: Assignment, public_only: bool) -> list[QuestionTests]:
    """The assignment's tests, with every parameter checked to be graded, harness or fixture."""
    tests = load_tests(assignment.tests_dir, tested_question_names(assignment))
    check_bindings(
        tests,
        assignment.config.graded_names,
        fixture_names(assignment.fixtures_file),
        str(assignment.tests_dir),
    )
    if assignment.config.sandbox.packages is not None:
        from .sandbox.packages import package_view

        package_view(assignment.config.sandbox.packages)  # an uninstalled package fails here
    return select_tests(tests, public_only)


def grade_batch(
    paths: Sequence[Path],
    assignment: Assignment,
    options: GradeOptions,
    out_dir: Path,
    jobs: int = 1,
    on_done: Callable[[SubmissionResult], None] | None = None,
) -> BatchSummary:
    """Grade ``paths`` with ``jobs`` workers at a time; write every output as results arrive."""
    prepare_out_dir(out_dir)
    tests = load_checked_tests(assignment, options.public_only)
    questions = tuple(question_order(assignment))
    max_score = sum(q.points for q in tests)
    ids = unique_ids(paths)
    finished: list[SubmissionResult] = []
    lock = threading.Lock()
    slots = list(range(max(1, jobs)))

    def run(index: int) -> GradedSubmission:
        with lock:
            slot = slots.pop()
        try:
            return _grade_one(paths[index], ids[index], assignment, tests, options, slot, out_dir)
        finally:
            with lock:
                slots.append(slot)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run, i) for i in range(len(paths))]
        for future in as_completed(futures):
            graded = future.result()
            with lock:
                _write_submission(out_dir, graded, max_score)
                finished.append(graded.result)
                atomic_write(out_dir / "gradebook.csv", writers.gradebook_csv(finished, questions))
            if on_done is not None:
                on_done(graded.result)
    return BatchSummary(tuple(sorted(finished, key=lambda r: r.submission_id)), out_dir, questions)
