"""Frozen result records for one graded submission. Writers live in ``autograder.writers``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .errors import Outcome


class SubmissionStatus(StrEnum):
    """Whether grading ran to the end for a submission."""

    GRADED = "graded"
    ERROR = "error"


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
    def max_score(self) -> float:
        """Total points possible."""
        return sum(q.max_score for q in self.questions)
