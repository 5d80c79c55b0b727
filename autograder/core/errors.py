"""The two error families: failures that belong to a submission, and the grader's own errors.

A :class:`SubmissionFailure` is written into that submission's feedback and costs only it.
Anything else raised while grading is a grader error: reported to the instructor with its
traceback, and still never allowed to stop the rest of a batch.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """How one test case (or check) ended."""

    PASSED = "passed"
    FAILED = "failed"  # the check ran and the answer was wrong
    ERROR = "error"  # the student's code raised, or returned something unusable
    TIMEOUT = "timeout"  # the student's code ran past its time budget
    SKIPPED = "skipped"  # not run: a prerequisite (a name, an earlier step) was missing


class SubmissionFailure(Exception):
    """Something the submission did; the message is for the student."""

    outcome: Outcome = Outcome.ERROR

    def __init__(self, message: str, outcome: Outcome | None = None):
        super().__init__(message)
        if outcome is not None:
            self.outcome = outcome

    @property
    def message(self) -> str:
        """The student-facing text."""
        return str(self.args[0]) if self.args else ""
