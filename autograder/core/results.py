"""Frozen result records for one graded submission. Writers live in ``..outputs.writers``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .catalogue import _
from .errors import Outcome


class SubmissionStatus(StrEnum):
    """Whether grading ran to the end for a submission."""

    GRADED = "graded"
    ERROR = "error"


@dataclass(frozen=True)
class ReviewFlag:
    """Something a rule could not decide: a person should look, with what was seen.

    ``cell`` and ``line`` are 1-based positions in the submitted notebook (None when the
    evidence comes from the run, not from a line); ``seen`` is the code line or the record.
    """

    question: str  # "" for the notebook as a whole
    kind: str  # a short code: computed_attribute, dynamic_import, record_tampered, ...
    reason: str  # student- and instructor-facing sentence (Russian)
    cell: int | None = None
    line: int | None = None
    seen: str = ""

    def where(self) -> str:
        """``cell 3, line 2`` (or "" when the flag has no position)."""
        if self.cell is None:
            return ""
        return f"cell {self.cell}, line {self.line}" if self.line else f"cell {self.cell}"

    def describe(self) -> str:
        """One line for the instructor (English frame, the reason as written)."""
        where = f" at {self.where()}" if self.cell is not None else ""
        seen = f": `{self.seen}`" if self.seen else ""
        return f"{self.question or 'notebook'}: {self.kind}{where}{seen} ({self.reason})"

    def describe_for_student(self) -> str:
        """One line for the student, in the run's language (the name is older than the
        catalogue)."""
        where = " " + (_("(cell {cell}, line {line})").format(cell=self.cell, line=self.line)
                       if self.line else _("(cell {cell})").format(cell=self.cell))
        seen = f": `{self.seen}`" if self.seen else ""
        return f"{self.reason}{where if self.cell is not None else ''}{seen}"


@dataclass(frozen=True)
class CaseResult:
    """One test case or harness check, scored."""

    question: str
    name: str
    hidden: bool
    max_score: float
    score: float
    outcome: Outcome
    message: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class QuestionResult:
    """One question: its cases, score and any rule that overrode the cases."""

    name: str
    max_score: float
    score: float
    cases: tuple[CaseResult, ...]
    notes: tuple[str, ...] = ()
    review: tuple[ReviewFlag, ...] = ()

    @property
    def passed_all(self) -> bool:
        """True when every case passed and nothing overrode the score."""
        return self.score >= self.max_score


@dataclass(frozen=True)
class SubmissionResult:
    """Everything graded for one submission."""

    submission_id: str
    status: SubmissionStatus
    message: str
    questions: tuple[QuestionResult, ...]
    details: dict = field(default_factory=dict)

    @property
    def score(self) -> float:
        """Total points earned."""
        return sum(q.score for q in self.questions)

    @property
    def review_flags(self) -> tuple[ReviewFlag, ...]:
        """Every question's review flags, in question order."""
        return tuple(flag for q in self.questions for flag in q.review)

    @property
    def max_score(self) -> float:
        """Total points possible."""
        return sum(q.max_score for q in self.questions)
