"""Progress of a batch on the terminal (rich), quiet when output is not a terminal."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .results import SubmissionResult


class BatchProgress:
    """A progress bar with one line per finished submission."""

    def __init__(self, total: int):
        self._console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("grading"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console,
            disable=not self._console.is_terminal,
        )
        self._task = self._progress.add_task("grading", total=total)

    def __enter__(self) -> BatchProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def done(self, result: SubmissionResult) -> None:
        """Report one finished submission."""
        score = f"{result.score:g}/{result.max_score:g}"
        note = f" ({result.message[:80]})" if result.message else ""
        self._progress.console.print(f"{result.submission_id}: {score} {result.status.value}{note}")
        self._progress.advance(self._task)
