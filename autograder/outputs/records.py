"""The records of a graded batch in its output folder, read and written as data.

``OUT/submissions/<id>/record.json`` holds one submission's whole result and the grading key
it was graded under, written last (after results.json and the feedback);
``OUT/.grader/batch.json`` holds the batch's assignment and seed (paths: :mod:`.layout`).
:mod:`..batch.resume` decides from these whether a stored result still counts; the class
report reads them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..core.errors import Outcome
from ..core.results import (
    CaseResult,
    QuestionResult,
    ReviewFlag,
    RunDetails,
    SubmissionResult,
    SubmissionStatus,
)
from .layout import RECORD, STATE_DIR, LayoutError, submission_file

__all__ = ["BATCH_STATE", "RECORD", "STATE_DIR", "batch_state", "batch_state_text",
           "finished_result", "record_text", "result_from_data", "result_to_data",
           "stored_seed"]

BATCH_STATE = "batch.json"


# ----------------------------------------------------------------------------- records


def result_to_data(result: SubmissionResult) -> dict:
    """A result as plain JSON data (enums as their values; the details as
    :meth:`RunDetails.as_dict` writes them)."""
    data = dataclasses.asdict(result)
    data["details"] = result.details.as_dict()
    return json.loads(json.dumps(data, default=str))


def result_from_data(data: dict) -> SubmissionResult:
    """The inverse of :func:`result_to_data`; raises KeyError/TypeError/ValueError if bad."""
    questions = tuple(
        QuestionResult(
            name=q["name"], max_score=q["max_score"], score=q["score"],
            cases=tuple(CaseResult(**{**c, "outcome": Outcome(c["outcome"])})
                        for c in q["cases"]),
            notes=tuple(q["notes"]),
            review=tuple(ReviewFlag(**flag) for flag in q["review"]),
        )
        for q in data["questions"]
    )
    return SubmissionResult(data["submission_id"], SubmissionStatus(data["status"]),
                            data["message"], questions, RunDetails.from_dict(data["details"]))


def record_text(result: SubmissionResult, key: str) -> str:
    """What ``OUT/submissions/<id>/record.json`` holds."""
    return json.dumps({"key": key, "result": result_to_data(result)}, ensure_ascii=False) + "\n"


def finished_result(out_dir: Path, sub_id: str, key: str | None) -> SubmissionResult | None:
    """The stored result of ``sub_id`` when it was graded under ``key`` (None: under any
    key), else None."""
    try:
        data = json.loads(submission_file(out_dir, sub_id, RECORD).read_text(encoding="utf-8"))
        if key is not None and data.get("key") != key:
            return None
        return result_from_data(data["result"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, LayoutError):
        return None  # missing, half-written by a killed run, or another version's format


# ----------------------------------------------------------------------------- batch state


def batch_state(out_dir: Path) -> tuple[str, int | None]:
    """The assignment and seed of the last batch in ``out_dir`` ("" and None if unknown)."""
    try:
        state = json.loads((out_dir / STATE_DIR / BATCH_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "", None
    if not isinstance(state, dict):
        return "", None
    seed = state.get("seed")
    return str(state.get("assignment", "")), seed if isinstance(seed, int) else None


def stored_seed(out_dir: Path, assignment: str) -> int | None:
    """The seed an earlier batch of ``assignment`` used in ``out_dir``, if any."""
    stored_assignment, seed = batch_state(out_dir)
    return seed if stored_assignment == assignment else None


def batch_state_text(assignment: str, seed: int) -> str:
    """What ``OUT/.grader/batch.json`` holds."""
    return json.dumps({"assignment": assignment, "seed": seed}) + "\n"
