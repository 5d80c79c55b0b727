"""The error families: a submission's failures, the instructor's mistakes, the grader's bugs.

A :class:`SubmissionFailure` is written into that submission's feedback and costs only it;
it never reaches the command line. A :class:`UsageError` is the instructor's mistake, or
something this machine lacks: its message says what to do next and the CLI exits 2 with it
(:func:`exit_status` is the one place that maps errors to exit codes; the CLI and the
Gradescope run both call it). Anything else is a bug of the grader: inside a batch it costs
only the submission being graded (and says so in the summary); outside one the front door
exits 1, says it is a bug and where the traceback is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum

from .text import visible

log = logging.getLogger(__name__)

EXIT_BUG = 1  # the grader's own bug (the traceback is written to a file, named)
EXIT_USAGE = 2  # a UsageError: the instructor's to fix, the message says how


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


def exit_status(call: Callable[[], int], *, traceback_to_stderr: bool = False) -> int:
    """Run a front door's ``call`` and return its exit status: what it returns; 2 with the
    message of a :class:`UsageError`; 1 for anything else, said to be a bug of the grader,
    with its traceback written to a named file (and to stderr too with
    ``traceback_to_stderr``, where the file does not outlive the run, as on Gradescope).
    Messages are logged as errors (stderr, see :mod:`.logs`)."""
    try:
        return int(call())
    except UsageError as exc:  # the instructor's to fix; the message says how
        log.error(f"error: {visible(exc)}")  # may name a submission's files
        return EXIT_USAGE
    except Exception as exc:  # anything else is the grader's own bug
        return _grader_bug(exc, traceback_to_stderr)


def _grader_bug(exc: BaseException, traceback_to_stderr: bool) -> int:
    """Say plainly that the grader failed (not the instructor), write the traceback to a file
    and name it; results already written stay where they are."""
    import tempfile
    import time
    import traceback

    text = "".join(traceback.format_exception(exc))
    if traceback_to_stderr:
        log.error(text)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", delete=False, suffix=".txt",
                                     prefix=f"grader-bug-{time.strftime('%Y%m%d-%H%M%S')}-") as f:
        f.write(text)
    log.error(f"error: this is a bug in the grader, not a mistake in what you asked "
              f"({type(exc).__name__}: {visible(str(exc))[:300]}). The traceback is in "
              f"{f.name}; please report it with that file. Results already written are kept; "
              "running the same command again grades only what is missing.")
    return EXIT_BUG
