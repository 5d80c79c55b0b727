"""Progress of a batch: a bar with ETA on a terminal (rich), plain lines in CI logs.

Every finished submission is one line either way (``[  12/200] alice: 14/14 graded``); plain
output adds the ETA to that line, since a log cannot redraw a bar. The lines are log records
(stderr, :mod:`..core.logs`; on a terminal the bar keeps below them); the console draws only
the bar. Ids and messages come from submissions: their control characters are printed as
escapes (:func:`..core.text.visible`), never obeyed by the terminal.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..core.results import SubmissionResult
from ..core.text import visible
from .collect import Collected

log = logging.getLogger(__name__)


def eta_text(done: int, total: int, elapsed_s: float) -> str:
    """``ETA 3m05s`` from the mean time so far (empty before the first result)."""
    if done <= 0 or done >= total:
        return ""
    left = round(elapsed_s / done * (total - done))
    return f"ETA {left // 60}m{left % 60:02d}s" if left >= 60 else f"ETA {left}s"


class BatchProgress:
    """Reports the plan, each finished submission, and keeps the count of finished ones."""

    def __init__(self, console: Console | None = None):
        self._console = console or Console(stderr=True)
        self._bar = Progress(
            TextColumn("grading"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console,
            disable=not self._console.is_terminal,
        )
        self._task = self._bar.add_task("grading", total=None)
        self.total = 0
        self.finished = 0
        self._started = time.monotonic()

    def __enter__(self) -> BatchProgress:
        self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.stop()

    def plan(self, collected: Collected, to_grade: int) -> None:
        """Say what was found and how much is left to grade."""
        log.info(collected.describe())
        kept = len(collected.submissions) - to_grade
        if kept:
            log.info(f"resuming: {kept} already graded under the same key are kept; "
                     f"grading {to_grade} (--regrade grades all)")
        self.total = to_grade
        self._started = time.monotonic()
        self._bar.update(self._task, total=to_grade)

    def done(self, result: SubmissionResult) -> None:
        """Report one finished submission."""
        self.finished += 1
        width = len(str(self.total))
        score = f"{result.score:g}/{result.max_score:g}"
        note = f" ({visible(result.message[:80], newlines=False)})" if result.message else ""
        line = (f"[{self.finished:>{width}}/{self.total}] "
                f"{visible(result.submission_id, newlines=False)}: {score} "
                f"{result.status.value}{note}")
        if not self._console.is_terminal:
            eta = eta_text(self.finished, self.total, time.monotonic() - self._started)
            line += f"  {eta}" if eta else ""
        log.info(line)
        self._bar.advance(self._task)
