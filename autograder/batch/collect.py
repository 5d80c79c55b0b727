"""Find the submissions in what an instructor passes to ``grade``: files and folders in the
layouts instructors actually get, each submission with a stable id.

Layouts (a folder is read by the first rule that fits):

- a ``.ipynb`` or ``.zip`` file: one submission, id = the file's stem;
- a Gradescope export (a folder with ``submission_metadata.yml``): one submission per
  ``submission_NNN/`` folder, id = the submitters' student ids (or emails, or the folder);
- a GitHub Classroom download (a folder of git repositories, e.g. from
  ``gh classroom clone student-repos``): one submission per repository, id = the GitHub user
  (the repository name without the assignment's common prefix);
- a single submission folder: one submission, id = the folder's name. That is a folder with
  exactly one notebook at its top level, no subfolders, and either the assignment's notebook
  name or other files beside it (the weights files it saved); a folder holding just
  ``ann.ipynb`` is a folder of one student's notebook, id ``ann``;
- a folder of notebooks / zips and per-student folders: one submission per entry.

Hidden entries (``.git``, ``.github``, ``.ipynb_checkpoints``) are never submissions. Ids are
made safe folder names (:func:`..outputs.layout.safe_id`); two submissions whose ids differ
only by case or Unicode normalisation have the same id, and submissions with the same id are
all kept (``id``, ``id-2``, ...) and reported as duplicates.
Nothing here reads a notebook's contents; it only lists paths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..core.errors import UsageError
from ..core.text import visible
from ..outputs.layout import id_key, numbered, safe_id

__all__ = ["Collected", "CollectError", "Found", "collect", "safe_id"]

GRADESCOPE_METADATA = "submission_metadata.yml"
SUBMISSION_SUFFIXES = (".ipynb", ".zip")


class CollectError(UsageError, ValueError):
    """What was passed cannot be read as submissions (the instructor's to fix)."""


@dataclass(frozen=True)
class Found:
    """One submission: where it is, its id, and the layout it was found in."""

    path: Path
    submission_id: str
    layout: str  # "file", "folder", "gradescope", "classroom", "collection"


@dataclass(frozen=True)
class Collected:
    """Every submission found, plus ids that more than one submission wanted."""

    submissions: tuple[Found, ...]
    duplicates: tuple[tuple[str, tuple[Path, ...]], ...]  # (wanted id, the paths that want it)
    layouts: tuple[str, ...]  # one line per input: what it was read as

    def describe(self) -> str:
        """A few lines for the instructor: what was found where, and any duplicate ids."""
        lines = [f"found {len(self.submissions)} submission(s): " + "; ".join(self.layouts)]
        given = {found.path: found.submission_id for found in self.submissions}
        for wanted, paths in self.duplicates:
            renamed = ", ".join(f"{p} as {given.get(p, '?')}" for p in paths)
            lines.append(f"duplicate id {wanted!r} ({len(paths)} submissions, each kept under its "
                         f"own id): {renamed}")
        return "\n".join(visible(line, newlines=False) for line in lines)


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX")))


def _is_submission_file(path: Path) -> bool:
    return path.is_file() and path.suffix in SUBMISSION_SUFFIXES


def _gradescope(folder: Path) -> list[tuple[Path, str]]:
    """Gradescope's export: top-level keys are folders, each with ``:submitters:``."""
    try:
        metadata = yaml.safe_load((folder / GRADESCOPE_METADATA).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CollectError(f"{folder / GRADESCOPE_METADATA} cannot be read: {exc}") from None
    if not isinstance(metadata, dict):
        raise CollectError(f"{folder / GRADESCOPE_METADATA} is not a Gradescope export's metadata")
    found = []
    for name, entry in sorted(metadata.items()):
        path = folder / str(name)
        if not path.is_dir():
            continue
        submitters = entry.get(":submitters", []) if isinstance(entry, dict) else []
        ids = [str(s.get(":sid") or s.get(":email") or "") for s in submitters
               if isinstance(s, dict)]
        ids = [i for i in ids if i]
        found.append((path, "+".join(ids) if ids else str(name)))
    return found


def _is_classroom(entries: Sequence[Path]) -> bool:
    folders = [p for p in entries if p.is_dir()]
    return bool(folders) and all((p / ".git").exists() for p in folders)


def _common_prefix(names: Sequence[str]) -> str:
    """The assignment prefix of GitHub Classroom repositories: up to the last '-' shared."""
    if len(names) < 2:
        return names[0].rsplit("-", 1)[0] + "-" if names and "-" in names[0] else ""
    prefix = os.path.commonprefix(list(names))
    return prefix[: prefix.rfind("-") + 1] if "-" in prefix else ""


def _classroom(entries: Sequence[Path]) -> list[tuple[Path, str]]:
    repos = [p for p in entries if p.is_dir()]
    prefix = _common_prefix([p.name for p in repos])
    return [(p, p.name[len(prefix):] or p.name) for p in repos]


def _top_level_notebooks(folder: Path) -> list[Path]:
    return [p for p in _visible(folder) if p.is_file() and p.suffix == ".ipynb"]


def _is_one_submission(folder: Path, notebook_name: str | None) -> bool:
    entries = _visible(folder)
    notebooks = _top_level_notebooks(folder)
    if len(notebooks) != 1 or any(p.is_dir() for p in entries):
        return False
    return notebooks[0].name == notebook_name or len(entries) > 1


def _read_one(path: Path, notebook_name: str | None
              ) -> tuple[list[tuple[Path, str]], str, str]:
    """The submissions in one command-line argument: (path, raw id) pairs, the layout's kind,
    and a line saying what the argument was read as."""
    if path.is_file():
        return [(path, path.stem)], "file", f"{path.name}: one file"
    if (path / GRADESCOPE_METADATA).is_file():
        found = _gradescope(path)
        return found, "gradescope", f"{path}: Gradescope export ({len(found)} submissions)"
    entries = _visible(path)
    if _is_one_submission(path, notebook_name):
        return [(path, path.name)], "folder", f"{path.name}: one submission folder"
    if _is_classroom(entries):
        found = _classroom(entries)
        return found, "classroom", f"{path}: GitHub Classroom download ({len(found)} repositories)"
    found = [(p, p.stem if p.is_file() else p.name)
             for p in entries if _is_submission_file(p) or p.is_dir()]
    return found, "collection", f"{path}: folder of {len(found)} submissions"


def _unique(found: Sequence[tuple[Path, str, str]]) -> tuple[list[Found], list]:
    """Ids made unique (``a``, ``a-2``, ...); the ids more than one path wanted.

    Ids are compared as a case-insensitive file system compares names (:func:`id_key`), so
    ``Ann`` and ``ann`` never share a folder. The first submission to want an id gets it; the
    others get the next number no submission wants or has (a real ``a-2`` keeps its name).
    """
    wanted_by: dict[str, list[Path]] = {}
    first_id: dict[str, str] = {}
    for path, raw_id, _ in found:
        wanted = safe_id(raw_id)
        first_id.setdefault(id_key(wanted), wanted)
        wanted_by.setdefault(id_key(wanted), []).append(path)
    taken = set(first_id)
    seen: set[str] = set()
    submissions = []
    for path, raw_id, layout in found:
        key = id_key(safe_id(raw_id))
        if key not in seen:
            seen.add(key)
            submissions.append(Found(path, first_id[key], layout))
            continue
        number = 2
        while id_key(numbered(first_id[key], number)) in taken:
            number += 1
        unique = numbered(first_id[key], number)
        taken.add(id_key(unique))
        submissions.append(Found(path, unique, layout))
    duplicates = [(first_id[key], tuple(paths)) for key, paths in wanted_by.items()
                  if len(paths) > 1]
    return submissions, duplicates


def collect(paths: Sequence[Path], notebook_name: str | None = None) -> Collected:
    """Every submission in ``paths`` (files or folders in any layout above), ids unique.

    ``notebook_name`` is the assignment's notebook file name (``NAME.ipynb``), if known.
    """
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise CollectError(f"no such submission: {', '.join(map(str, missing))}")
    found: list[tuple[Path, str, str]] = []
    layouts = []
    for path in paths:
        entries, kind, line = _read_one(path, notebook_name)
        found += [(p, raw, kind) for p, raw in entries]
        layouts.append(line)
    if not found:
        raise CollectError(
            f"no submissions in {', '.join(map(str, paths))}: expected .ipynb or .zip files, "
            "per-student folders, a GitHub Classroom download or a Gradescope export"
        )
    submissions, duplicates = _unique(found)
    return Collected(tuple(submissions), tuple(duplicates), tuple(layouts))
