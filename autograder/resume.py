"""Resume: what in an output folder is already graded, and whether it still counts.

A finished submission leaves ``OUT/<id>/record.json``, written last (after results.json and
the feedback), holding the whole result and the *grading key*: a hash of the submission's
bytes, the assignment's tests and config, the grader's own source, and every option that can
change a score (seed, tests, time budgets, isolation, dataset, device, --retrain). A run with
the same ``--out`` reuses a record whose key matches and grades everything else: what was
missing (the run was killed first), changed (a new upload), or graded under other rules.

The batch's seed is kept in ``OUT/.grader/batch.json`` so that a resumed run draws the same
hidden-test inputs; ``--seed`` or ``--regrade`` replace it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from . import __version__
from .assignments import CONFIG_FILE, Assignment
from .errors import Outcome
from .grading import GradeOptions
from .results import CaseResult, QuestionResult, ReviewFlag, SubmissionResult, SubmissionStatus

RECORD = "record.json"
STATE_DIR = ".grader"
BATCH_STATE = "batch.json"
PACKAGE_DIR = Path(__file__).resolve().parent
SKIPPED_DIRS = frozenset({".git", "__pycache__", ".ipynb_checkpoints"})


def _digest(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
                  and not SKIPPED_DIRS.intersection(p.relative_to(root).parts))


def tree_hash(root: Path) -> str:
    """The hash of a file, or of a folder's files (names and bytes)."""
    parts = []
    for path in _files(root):
        parts += [path.relative_to(root).as_posix().encode() if root.is_dir() else b"",
                  path.read_bytes()]
    return _digest(parts)


@cache
def grader_hash() -> str:
    """The grader's version and source: any change to the code regrades."""
    return _digest([__version__.encode(), tree_hash(PACKAGE_DIR).encode()])


def assignment_hash(assignment: Assignment) -> str:
    """The assignment's tests, config, probes and fixtures."""
    folder = assignment.source_dir
    paths = [folder / CONFIG_FILE, assignment.tests_dir, assignment.probes_file,
             assignment.fixtures_file]
    return _digest(f"{p.relative_to(folder)}:{tree_hash(p)}".encode()
                   for p in paths if p is not None and p.exists())


def options_digest(options: GradeOptions) -> dict:
    """Every option that can change a score, as plain data (the data by its content)."""
    fields = dataclasses.asdict(dataclasses.replace(options, evaluation=None))
    for not_scoring in ("threads", "gpu_share"):
        fields.pop(not_scoring)
    fields["level"] = options.level.value
    data = options.evaluation
    if data is not None:
        sets = [data.official] + ([data.secret] if data.secret is not None else [])
        fields["evaluation"] = {
            "dataset": data.dataset,
            "content": _digest(part for s in sets for part in (s.images.tobytes(),
                                                                s.labels.tobytes())),
            "train": data.train is not None,
        }
    return fields


def batch_key(assignment: Assignment, options: GradeOptions) -> str:
    """The part of every submission's key that the whole batch shares."""
    text = json.dumps([grader_hash(), assignment_hash(assignment), options_digest(options)],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def grading_key(submission: Path, batch: str) -> str:
    """One submission's key: its bytes and the batch's key."""
    return hashlib.sha256(f"{tree_hash(submission)}:{batch}".encode()).hexdigest()


# ----------------------------------------------------------------------------- records


def result_to_data(result: SubmissionResult) -> dict:
    """A result as plain JSON data (enums as their values)."""
    return json.loads(json.dumps(dataclasses.asdict(result), default=str))


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
                            data["message"], questions, data["details"])


def record_text(result: SubmissionResult, key: str) -> str:
    """What ``OUT/<id>/record.json`` holds."""
    return json.dumps({"key": key, "result": result_to_data(result)}, ensure_ascii=False) + "\n"


def finished_result(out_dir: Path, sub_id: str, key: str | None) -> SubmissionResult | None:
    """The stored result of ``sub_id`` when it was graded under ``key`` (None: under any
    key), else None."""
    try:
        data = json.loads((out_dir / sub_id / RECORD).read_text(encoding="utf-8"))
        if key is not None and data.get("key") != key:
            return None
        return result_from_data(data["result"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
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
