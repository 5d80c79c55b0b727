"""The error families: a submission's failures, the instructor's mistakes, the grader's bugs.

A :class:`SubmissionFailure` is written into that submission's feedback and costs only it;
it never reaches the command line. A :class:`UsageError` is the instructor's mistake, or
something this machine lacks: its message says what to do next and the CLI exits 2 with it
(``autograder.cli.main`` is the one place that maps errors to exit codes). Anything else is
a bug of the grader: inside a batch it costs only the submission being graded (and says so
in the summary); outside one the CLI exits 1, says it is a bug and where the traceback is.
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


class GraderError(Exception):
    """An error the grader raises on purpose (not a bug)."""


class UsageError(GraderError):
    """The instructor asked for something that cannot be done here; the message says what to
    do next. The CLI prints it and exits 2."""


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
