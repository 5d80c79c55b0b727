"""Where everything a batch writes lives in its output folder, and what a submission id may be.

```
OUT/gradebook.csv               the class, one row per submission
OUT/report.html                 the class report
OUT/.grader/                    the batch's own state (seed, in-flight markers)
OUT/submissions/<id>/           one folder per submission, nothing else in submissions/:
    results.json  feedback.md  feedback.html  fingerprint.json  record.json (last)
    grader_error.txt            only when the grader itself failed on it
```

Ids are names a student chose (a file's stem, a folder, a repository), so they live one
level down, in a folder of their own: no id can name, replace or block a file of the
grader's (a notebook called ``gradebook.csv.ipynb`` or ``report.html.ipynb`` is just another
submission). :func:`safe_id` makes any raw name a folder name that is one path component,
not hidden, not ``.``/``..``, never empty, NFKC-normalised and short enough for any file
system; :func:`id_key` is what two ids must differ in to be told apart on a case-insensitive
file system (macOS, Windows), so a batch never gives two submissions one folder.

An output folder written by a grader before this layout (``OUT/<id>/record.json``) is moved
into it by :func:`adopt_old_layout` the first time a batch or the report runs there, so a
resumed batch keeps what it had graded; only folders holding a grader's record or results of
that id are moved, never anything else an output folder holds.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path

GRADEBOOK = "gradebook.csv"
REPORT = "report.html"
STATE_DIR = ".grader"
SUBMISSIONS_DIR = "submissions"

RESULTS = "results.json"
FEEDBACK_MD = "feedback.md"
FEEDBACK_HTML = "feedback.html"
FINGERPRINT = "fingerprint.json"
RECORD = "record.json"
GRADER_ERROR = "grader_error.txt"

MAX_ID_BYTES = 120  # UTF-8 bytes: with "-NN" and ".json" well under NAME_MAX (255)
_UNSAFE = re.compile(r"[^\w.+@-]+")  # \w: Cyrillic too
_ADOPTING = "adopting-submissions"  # the old layout's own "submissions" folder, mid-move


class LayoutError(ValueError):
    """An id that is not a safe folder name reached the writer (a grader bug)."""


def safe_id(raw: str) -> str:
    """A submission id that is safe as one folder name in OUT (see the module's docstring).

    Runs of characters other than letters, digits and ``_ . + @ -`` become ``_``; leading
    dots and the characters a spreadsheet reads as a formula (``= + - @``) are dropped.
    Applying it again changes nothing.
    """
    text = unicodedata.normalize("NFKC", raw)
    cleaned = _UNSAFE.sub("_", text).lstrip(".+-@") or "submission"
    cut = cleaned.encode("utf-8")[:MAX_ID_BYTES].decode("utf-8", errors="ignore")
    return cut if cut == unicodedata.normalize("NFKC", cut) else safe_id(cut)


def numbered(submission_id: str, number: int) -> str:
    """``id-N``, the id shortened first where the suffix would pass :data:`MAX_ID_BYTES`."""
    suffix = f"-{number}"
    room = MAX_ID_BYTES - len(suffix)
    base = submission_id.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return safe_id(base + suffix)


def id_key(submission_id: str) -> str:
    """What must differ between two ids for them to be two folders on any file system."""
    return unicodedata.normalize("NFKC", submission_id).casefold()


def _check(submission_id: str) -> str:
    """The id, if it is one visible path component (ids of older graders pass too)."""
    if (not submission_id or submission_id.startswith(".") or "/" in submission_id
            or "\\" in submission_id or "\0" in submission_id):
        raise LayoutError(f"submission id {submission_id!r} is not a folder name")
    return submission_id


def submissions_root(out_dir: Path) -> Path:
    """``OUT/submissions``: the per-submission folders, and nothing else."""
    return out_dir / SUBMISSIONS_DIR


def submission_dir(out_dir: Path, submission_id: str) -> Path:
    """``OUT/submissions/<id>``; LayoutError for an id that is not one plain folder name."""
    return submissions_root(out_dir) / _check(submission_id)


def submission_file(out_dir: Path, submission_id: str, name: str) -> Path:
    """One of the files of ``submission_id`` (``results.json``, ``feedback.md``, ...)."""
    return submission_dir(out_dir, submission_id) / name


def submission_dirs(out_dir: Path) -> list[Path]:
    """Every per-submission folder in ``out_dir``, sorted by id."""
    root = submissions_root(out_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))


def _json_of(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def _graded_here(folder: Path) -> bool:
    """Whether ``folder`` holds a submission's files written by a grader: its record
    (``key`` and ``result``) or its results.json naming it. Nothing else is ever moved."""
    record = _json_of(folder / RECORD)
    if isinstance(record, dict) and {"key", "result"} <= record.keys():
        return True
    results = _json_of(folder / RESULTS)
    extra = results.get("extra_data") if isinstance(results, dict) else None
    return isinstance(extra, dict) and extra.get("submission") == folder.name


def _old_folders(out_dir: Path) -> list[Path]:
    """``OUT/<id>/`` folders of the old layout."""
    return sorted(p for p in out_dir.iterdir()
                  if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
                  and _graded_here(p))


def adopt_old_layout(out_dir: Path) -> list[str]:
    """Move the per-submission folders of an older grader (``OUT/<id>/``) to
    ``OUT/submissions/<id>/``; returns the ids moved. A folder whose new place is taken is
    left where it is (the newer result wins). Each move is one rename, so an interrupted
    adoption is finished by the next call."""
    if not out_dir.is_dir():
        return []
    root = submissions_root(out_dir)
    parked = out_dir / STATE_DIR / _ADOPTING
    moved = []
    if root.is_dir() and _graded_here(root):
        parked.parent.mkdir(parents=True, exist_ok=True)  # a student called "submissions"
        os.replace(root, parked)
    if parked.is_dir():
        root.mkdir(exist_ok=True)
        os.replace(parked, root / SUBMISSIONS_DIR)
        moved.append(SUBMISSIONS_DIR)
    for folder in _old_folders(out_dir):
        target = root / folder.name
        if folder == root or target.exists():
            continue
        root.mkdir(exist_ok=True)
        os.replace(folder, target)
        moved.append(folder.name)
    return moved
