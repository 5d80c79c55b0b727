"""What a batch says: plain lines with an ETA in a log, the plan, the one-line summary."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from rich.console import Console

from autograder.batch.collect import Collected, Found
from autograder.batch.progress import BatchProgress, eta_text
from autograder.batch.runner import BatchSummary
from autograder.core.results import QuestionResult, ReviewFlag, SubmissionResult, SubmissionStatus


def _result(sid: str, score: float, status=SubmissionStatus.GRADED, message: str = "",
            flagged: bool = False) -> SubmissionResult:
    review = (ReviewFlag("q", "dynamic_import", "причина", 2, 1, "import x"),) if flagged else ()
    question = QuestionResult("q", 4.0, score, (), review=review)
    return SubmissionResult(sid, status, message, (question,))


def test_eta_is_the_mean_time_so_far_times_what_is_left():
    assert eta_text(0, 10, 5.0) == ""
    assert eta_text(10, 10, 5.0) == ""
    assert eta_text(2, 10, 6.0) == "ETA 24s"
    assert eta_text(1, 100, 5.0) == "ETA 8m15s"


def test_a_log_gets_one_plain_line_per_submission_with_the_eta(caplog):
    caplog.set_level(logging.INFO, logger="autograder")
    stream = io.StringIO()  # the bar's console: not a terminal, so no bar
    progress = BatchProgress(Console(file=stream, force_terminal=False, width=200))
    collected = Collected(
        tuple(Found(Path(f"/x/{s}.ipynb"), s, "collection") for s in ("ann", "bob", "cid")),
        (), ("/x: folder of 3 submissions",))
    with progress:
        progress.plan(collected, to_grade=2)
        progress.done(_result("bob", 3.0))
        progress.done(_result("cid", 0.0, SubmissionStatus.ERROR, "не корректный JSON"))
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "found 3 submission(s): /x: folder of 3 submissions"
    assert lines[1].startswith("resuming: 1 already graded under the same key are kept; grading 2")
    assert lines[2].startswith("[1/2] bob: 3/4 graded  ETA ")
    assert lines[3] == "[2/2] cid: 0/4 error (не корректный JSON)"
    assert "\x1b[" not in caplog.text and stream.getvalue() == ""  # no terminal codes
    assert progress.finished == 2


def test_the_summary_counts_failed_flagged_and_reused():
    results = (_result("a", 4.0), _result("b", 1.0, flagged=True),
               _result("c", 0.0, SubmissionStatus.ERROR, "x"))
    summary = BatchSummary(results, Path("out"), ("q",), Collected((), (), ()), reused=1,
                           seconds=12.4)
    assert summary.one_line() == ("graded 2, failed to run 1, flagged for review 1, "
                                  "mean score 1.67/4, 12 s (1 reused from an earlier run)")
