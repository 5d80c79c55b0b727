"""Resume: what in an output folder is already graded, and whether it still counts.

A finished submission leaves ``OUT/submissions/<id>/record.json``, written last (after
results.json and the feedback), holding the whole result and the *grading key*: a hash of the
submission's bytes, the assignment's tests and config, the grader's own source, and every option
that can change a score (seed, tests, time budgets, isolation, dataset, device, --retrain). A
run with the same ``--out`` reuses a record whose key matches and grades everything else: what
was missing (the run was killed first), changed (a new upload), or graded under other rules.

The batch's seed is kept in ``OUT/.grader/batch.json`` so that a resumed run draws the same
hidden-test inputs; ``--seed`` or ``--regrade`` replace it.

While a local job grades a submission, ``OUT/.grader/in-flight/<id>.json`` says so (which
process, which key, which level); it goes once the record is written, or when the batch is
interrupted. A marker whose process is gone means the grader died mid-submission. At the
process level a notebook can kill the grader (it runs as the grader's own user), so a rerun
does not grade such a submission into the same death: alone in flight, it is failed with
that reason; one of several, it is graded again first, alone, and failed if it happens again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .. import __version__
from ..core.assignments import CONFIG_FILE, Assignment
from ..core.atomic import atomic_write
from ..core.catalogue import current_language
from ..grading.pipeline import GradeOptions
from ..outputs.layout import STATE_DIR

IN_FLIGHT = "in-flight"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the whole autograder package
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
    """Every option that can change a score or its feedback, as plain data (the data by its
    content)."""
    fields = dataclasses.asdict(dataclasses.replace(options, evaluation=None))
    for not_scoring in ("threads", "gpu_share", "isolation"):
        fields.pop(not_scoring)
    fields["level"] = options.isolation.level.value
    fields["language"] = current_language()  # what its feedback is written in
    data = options.evaluation
    if data is not None:
        sets = [data.official] + ([data.secret] if data.secret is not None else [])
        fields["evaluation"] = {
            "dataset": data.dataset,
            "content": _digest(part for s in sets for part in (s.images.tobytes(),
                                                                s.labels.tobytes())),
            "train": None if data.train is None else (data.train.digest or _digest(
                [data.train.images.tobytes(), data.train.labels.tobytes()])),
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


# ----------------------------------------------------------------------------- in flight


def _process_start(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot), so that a reused pid is not taken for
    the grader that wrote a marker; None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass(frozen=True)
class InFlight:
    """Writes and removes the markers of one batch's running jobs (local executor only)."""

    out_dir: Path
    keys: Mapping[str, str]
    level: str
    suspects: frozenset[str] = frozenset()  # graded again alone after a death with company

    def begin(self, sub_id: str) -> None:
        """Grading of ``sub_id`` starts in this process."""
        pid = os.getpid()
        marker = {"pid": pid, "started": _process_start(pid), "key": self.keys.get(sub_id),
                  "level": self.level, "suspect": sub_id in self.suspects}
        atomic_write(self.out_dir / STATE_DIR / IN_FLIGHT / f"{sub_id}.json",
                     json.dumps(marker) + "\n")

    def end(self, sub_id: str) -> None:
        """``sub_id`` is finished (its record is written)."""
        (self.out_dir / STATE_DIR / IN_FLIGHT / f"{sub_id}.json").unlink(missing_ok=True)


@dataclass(frozen=True)
class Orphan:
    """A marker left by a grader that died while grading ``submission_id``."""

    submission_id: str
    pid: int
    key: str | None
    level: str
    suspect: bool


def _markers(out_dir: Path) -> list[tuple[Path, dict]]:
    found = []
    for path in sorted((out_dir / STATE_DIR / IN_FLIGHT).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        found.append((path, data if isinstance(data, dict) else {}))
    return found


def take_orphans(out_dir: Path) -> list[Orphan]:
    """Remove and return the markers whose grader is gone (markers of a live grader stay)."""
    orphans = []
    for path, data in _markers(out_dir):
        pid, started = data.get("pid"), data.get("started")
        if isinstance(pid, int) and started is not None and _process_start(pid) == started:
            continue  # that grader is still running
        key = data.get("key")
        orphans.append(Orphan(path.stem, pid if isinstance(pid, int) else -1,
                              key if isinstance(key, str) else None,
                              str(data.get("level", "")), data.get("suspect") is True))
        path.unlink(missing_ok=True)
    return orphans


def clear_markers(out_dir: Path, pid: int) -> None:
    """Remove this grader's markers (an interrupted batch: nothing died of a submission)."""
    for path, data in _markers(out_dir):
        if data.get("pid") == pid:
            path.unlink(missing_ok=True)


def judge_orphans(orphans: Iterable[Orphan], keys: Mapping[str, str]
                  ) -> tuple[set[str], set[str]]:
    """Which orphaned submissions killed the grader (failed, not graded again) and which
    might have (graded again first, alone). Only the process level lets a notebook reach
    the grader, and only a submission still under the same key counts."""
    counted = [o for o in orphans if o.level == "process" and o.key is not None
               and keys.get(o.submission_id) == o.key]
    per_grader: dict[int, int] = {}
    for orphan in counted:
        per_grader[orphan.pid] = per_grader.get(orphan.pid, 0) + 1
    killers = {o.submission_id for o in counted if o.suspect or per_grader[o.pid] == 1}
    suspects = {o.submission_id for o in counted} - killers
    return killers, suspects
