"""Frozen result records for one graded submission. Writers live in ``..outputs.writers``.

:class:`RunDetails` is what a result records about how it was graded: written as
``extra_data`` of results.json and as ``details`` of the submission's record, read back by the
feedback, the gradebook and the class report. Each record's ``as_dict`` gives its JSON shape;
``from_dict`` reads it back, records of older graders included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

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


# ----------------------------------------------------------------------------- run details


@dataclass(frozen=True)
class IsolationRecord:
    """The isolation level a submission was graded at (``extra_data.isolation``)."""

    level: str  # bwrap, uid or process
    confinement: str = ""  # what confined the workers
    stronger_levels_not_used: Mapping[str, str] = field(default_factory=dict)  # level: why

    def as_dict(self) -> dict:
        return {"level": self.level, "confinement": self.confinement,
                "stronger_levels_not_used": dict(self.stronger_levels_not_used)}

    @classmethod
    def from_dict(cls, data: Mapping | str) -> IsolationRecord:
        """Records written before the isolation became a dict hold only the level's name."""
        if isinstance(data, str):
            return cls(data)
        return cls(data["level"], data.get("confinement", ""),
                   dict(data.get("stronger_levels_not_used", {})))


@dataclass(frozen=True)
class CellRecord:
    """How one notebook cell ran (``extra_data.cells``; ``status``: a ``CellStatus`` value)."""

    index: int  # 0-based, among the cells that were run
    status: str
    seconds: float

    def as_dict(self) -> dict:
        return {"index": self.index, "status": self.status, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Mapping) -> CellRecord:
        return cls(data["index"], data["status"], data["seconds"])


@dataclass(frozen=True)
class ImageSetRecord:
    """An image set models were measured on: name, kind, size, the start of its digest."""

    name: str
    images: int
    kind: str = ""  # "" in records written before kinds were recorded
    digest: str = ""

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "images": self.images,
                "digest": self.digest}

    @classmethod
    def from_dict(cls, data: Mapping) -> ImageSetRecord:
        return cls(data["name"], data["images"], data.get("kind", ""), data.get("digest", ""))


def _image_set(data: Mapping | None) -> ImageSetRecord | None:
    return None if data is None else ImageSetRecord.from_dict(data)


@dataclass(frozen=True)
class ModelFinding:
    """One thing a plain model of its architecture would not have (in the weights file or
    beside it), with what was seen."""

    kind: str  # a key of ``grading.modelcheck.REASONS_TEXT``
    seen: str  # evidence: key, dtype, shape, size

    def as_dict(self) -> dict:
        return {"kind": self.kind, "seen": self.seen}

    @classmethod
    def from_dict(cls, data: Mapping) -> ModelFinding:
        return cls(data["kind"], data["seen"])


@dataclass(frozen=True)
class ModelMeasurement:
    """One model's accuracies, or why it could not be measured (student-facing)."""

    accuracy: float | None
    secret_accuracy: float | None
    error: str = ""
    retrained_accuracy: float | None = None  # --retrain: the same class, trained here
    retrain_note: str = ""  # how the retraining went (epochs, seconds) or why it failed
    train_accuracy: float | None = None  # on a secret sample of the training images
    findings: tuple[ModelFinding, ...] = ()  # what the weights file holds (modelcheck)

    def as_dict(self) -> dict:
        return {"accuracy": self.accuracy, "secret_accuracy": self.secret_accuracy,
                "error": self.error, "retrained_accuracy": self.retrained_accuracy,
                "retrain_note": self.retrain_note, "train_accuracy": self.train_accuracy,
                "findings": [finding.as_dict() for finding in self.findings]}

    @classmethod
    def from_dict(cls, data: Mapping) -> ModelMeasurement:
        return cls(data.get("accuracy"), data.get("secret_accuracy"), data.get("error", ""),
                   data.get("retrained_accuracy"), data.get("retrain_note", ""),
                   data.get("train_accuracy"),
                   tuple(ModelFinding.from_dict(f) for f in data.get("findings", ())))


@dataclass(frozen=True)
class EvaluationRecord:
    """What the saved models were measured on, where, and what each measured
    (``extra_data.evaluation``; ``models`` by accuracy question)."""

    dataset: str  # "cifar10" or "synthetic": which thresholds applied
    official: ImageSetRecord
    secret: ImageSetRecord | None = None
    train: ImageSetRecord | None = None
    device: str = ""
    models: Mapping[str, ModelMeasurement] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "official": self.official.as_dict(),
            "secret": None if self.secret is None else self.secret.as_dict(),
            "train": None if self.train is None else self.train.as_dict(),
            "device": self.device,
            "models": {name: m.as_dict() for name, m in self.models.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> EvaluationRecord:
        return cls(data["dataset"], ImageSetRecord.from_dict(data["official"]),
                   _image_set(data.get("secret")), _image_set(data.get("train")),
                   data.get("device", ""),
                   {name: ModelMeasurement.from_dict(m)
                    for name, m in data.get("models", {}).items()})


ALL_PACKAGES = "all"  # ``RunDetails.packages`` when the assignment allows every package
PUBLIC_TESTS, ALL_TESTS = "public", "all"  # ``RunDetails.tests``


@dataclass(frozen=True)
class RunDetails:
    """How a submission was graded. None: not recorded (a result that failed before its
    notebook ran records at most the isolation); ``as_dict`` leaves those out."""

    seed: int | None = None
    isolation: IsolationRecord | None = None
    packages: tuple[str, ...] | Literal["all"] | None = None  # allowed in the worker
    tests: Literal["public", "all"] | None = None
    worker_restarts: int | None = None
    cells: tuple[CellRecord, ...] | None = None
    seconds: float | None = None  # the whole submission, wall clock
    warnings: tuple[str, ...] | None = None  # about the notebook's format
    sha256: str | None = None  # of the submitted notebook and files
    evaluation: EvaluationRecord | None = None  # None: no saved models were measured
    grader_died: bool = False  # the grader died while grading it (process level)

    def as_dict(self) -> dict:
        data = {
            "seed": self.seed,
            "isolation": None if self.isolation is None else self.isolation.as_dict(),
            "packages": (list(self.packages) if isinstance(self.packages, tuple)
                         else self.packages),
            "tests": self.tests,
            "worker_restarts": self.worker_restarts,
            "cells": None if self.cells is None else [cell.as_dict() for cell in self.cells],
            "seconds": self.seconds,
            "warnings": None if self.warnings is None else list(self.warnings),
            "sha256": self.sha256,
            "evaluation": None if self.evaluation is None else self.evaluation.as_dict(),
            "grader_died": self.grader_died or None,
        }
        return {key: value for key, value in data.items() if value is not None}

    @classmethod
    def from_dict(cls, data: Mapping) -> RunDetails:
        """The details as :meth:`as_dict` wrote them, or as an older grader did."""
        isolation, cells = data.get("isolation"), data.get("cells")
        packages, warnings = data.get("packages"), data.get("warnings")
        evaluation = data.get("evaluation")
        return cls(
            seed=data.get("seed"),
            isolation=None if isolation is None else IsolationRecord.from_dict(isolation),
            packages=tuple(packages) if isinstance(packages, list) else packages,
            tests=data.get("tests"),
            worker_restarts=data.get("worker_restarts"),
            cells=None if cells is None else tuple(CellRecord.from_dict(c) for c in cells),
            seconds=data.get("seconds"),
            warnings=None if warnings is None else tuple(warnings),
            sha256=data.get("sha256"),
            evaluation=None if evaluation is None else EvaluationRecord.from_dict(evaluation),
            grader_died=bool(data.get("grader_died", False)),
        )

    @property
    def public_tests_only(self) -> bool:
        return self.tests == PUBLIC_TESTS


# ----------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class SubmissionResult:
    """Everything graded for one submission."""

    submission_id: str
    status: SubmissionStatus
    message: str
    questions: tuple[QuestionResult, ...]
    details: RunDetails = field(default_factory=RunDetails)

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
