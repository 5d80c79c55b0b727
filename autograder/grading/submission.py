"""Load a submission (.ipynb, folder, or .zip), validate the notebook, list its gradable cells.

Everything here reads student files as data: the notebook is parsed as JSON by nbformat and
never executed in this process. What a student controls is bounded before the work it
causes, so a hostile file is the student's error with a sentence saying so, never a grader
crash or a full disk:

- a .zip is judged by its central directory before anything is extracted: at most
  :data:`MAX_ZIP_MEMBERS` entries, :data:`MAX_ZIP_TOTAL_BYTES` unpacked, and no entry (nor
  the whole) inflating more than :data:`MAX_ZIP_RATIO` times once it is past
  :data:`RATIO_FLOOR_BYTES`; the directory's sizes can lie, so extraction counts the bytes it
  really writes and stops at the same bounds. Only the notebook's own folder is extracted,
  once, straight into the folder it is graded in;
- a notebook is at most :data:`MAX_NOTEBOOK_BYTES`, nested at most
  :data:`MAX_NOTEBOOK_DEPTH` deep (counted without recursion before any parser sees it; the
  JSON parser and nbformat's validator recurse) and has at most :data:`MAX_NOTEBOOK_CELLS`
  cells;
- a code cell Python's own parser cannot read without running out of stack (thousands of
  nested operators) is refused by :func:`check_code_cells` before the static reading parses it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import nbformat
import numpy as np

from ..core.catalogue import _

IGNORE_TAG = "otter_ignore"
MAX_NOTEBOOK_BYTES = 32 * 1024 * 1024
MAX_NOTEBOOK_DEPTH = 100  # JSON nesting; nbformat's validator recursed out at about 600 here
MAX_NOTEBOOK_CELLS = 5000  # a course notebook has about 100
MAX_ZIP_MEMBERS = 1000
MAX_ZIP_TOTAL_BYTES = 256 * 1024 * 1024  # a notebook, two 22 MB weights files, and room
MAX_ZIP_RATIO = 200  # deflate reaches about 1,000:1 only on made-up data
RATIO_FLOOR_BYTES = 8 * 1024 * 1024  # smaller entries (and archives) may compress any amount
MAX_CODE_DEPTH = 300  # syntax-tree levels; recursive readers of a tree fail from about 900
_CHUNK = 1 << 20
_MAGIC_LINE = re.compile(r"^[ \t]*[!%].*$", re.MULTILINE)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as int8: +1 opens, -1 closes


class SubmissionError(ValueError):
    """The submission itself is unusable; the message is written for the student (in the
    run's language)."""


@dataclass(frozen=True)
class CodeCell:
    """One code cell the worker will run: its position in the notebook and its source."""

    index: int
    source: str


@dataclass(frozen=True)
class Submission:
    """A loaded submission: its id, notebook, the files beside it and a content hash."""

    submission_id: str
    origin: Path
    notebook: nbformat.NotebookNode
    notebook_name: str
    files_dir: Path | None
    sha256: str
    warnings: tuple[str, ...] = field(default=())

    def artifact(self, name: str) -> Path | None:
        """The path of a file saved beside the notebook, or None when it was not submitted."""
        if self.files_dir is None:
            return None
        path = self.files_dir / name
        return path if path.is_file() else None


def submission_id(path: Path) -> str:
    """The id of a submission: the file's stem, or the folder's name."""
    return path.name if path.is_dir() else path.stem


def _is_check_only(source: str) -> bool:
    """True for otter's ``grader.check("q")`` / ``grader.export()`` cells (they need the kernel)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # see check_code_cells
        return False
    if not tree.body:
        return False
    for node in tree.body:
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
            return False
        func = node.value.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
            return False
        if func.value.id != "grader" or func.attr not in {"check", "check_all", "export"}:
            return False
    return True


def gradable_cells(nb: nbformat.NotebookNode) -> list[CodeCell]:
    """Code cells to run when grading: not tagged ``otter_ignore``, not otter check cells."""
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", []) or []
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        if IGNORE_TAG in tags or not source.strip() or _is_check_only(source):
            continue
        cells.append(CodeCell(index=index, source=source))
    return cells


def notebook_source(nb: nbformat.NotebookNode) -> str:
    """All gradable code of a notebook as one text (for static checks in the harness)."""
    return "\n\n".join(cell.source for cell in gradable_cells(nb))


def _nesting_over(raw: bytes, limit: int) -> bool:
    """Whether JSON text nests deeper than ``limit``: brackets outside strings, counted in
    chunks without recursion (an unclosed ``[[[[`` counts as deep as a closed one)."""
    # Inside a string a backslash escapes the next byte: drop escaped backslashes, then
    # escaped quotes; every quote left opens or closes a string, so strings are the odd pieces.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[0::2])
    steps = outside.translate(_STEP, _NOT_BRACKET)  # 1 per opener, -1 (0xff) per closer
    levels = np.frombuffer(steps, dtype=np.int8)
    depth = 0
    for start in range(0, len(levels), _CHUNK):
        running = np.cumsum(levels[start:start + _CHUNK], dtype=np.int64) + depth
        if running.max() > limit:
            return True
        depth = int(running[-1])
    return False


def _cell_count(data: dict) -> int:
    cells = data.get("cells")
    if isinstance(cells, list):
        return len(cells)
    sheets = data.get("worksheets")  # nbformat 3
    return sum(len(w.get("cells") or []) for w in sheets if isinstance(w, dict)) \
        if isinstance(sheets, list) else 0


def _read_json(raw: bytes, where: str) -> dict:
    """The notebook's JSON, its size and nesting checked before the (recursive) parser runs."""
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise SubmissionError(_(
            "{where}: the notebook weighs {size} MiB, the limit is {limit} MiB. Clear the "
            "outputs (Kernel > Restart & Clear Output) and submit again."
        ).format(where=where, size=len(raw) // 2**20, limit=MAX_NOTEBOOK_BYTES // 2**20))
    if _nesting_over(raw, MAX_NOTEBOOK_DEPTH):
        raise SubmissionError(_(
            "{where}: the notebook's JSON nests more than {depth} levels deep (lists and "
            "dictionaries inside each other), deeper than Jupyter ever saves. The file is "
            "damaged or was put together by hand: save the notebook from Jupyter/Colab again "
            "and submit that."
        ).format(where=where, depth=MAX_NOTEBOOK_DEPTH))
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SubmissionError(_(
            "{where} is not a Jupyter notebook: it is not valid JSON ({error}). Download your "
            "work from Jupyter/Colab as .ipynb and submit that file."
        ).format(where=where, error=exc)) from None
    except (RecursionError, MemoryError):  # a backstop: the nesting check comes first
        raise SubmissionError(_(
            "{where}: the notebook's JSON is too complex to read. Save the notebook from "
            "Jupyter/Colab again and submit it."
        ).format(where=where)) from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise SubmissionError(_(
            "{where}: this is JSON, but not a Jupyter notebook (there is no 'cells'). Submit "
            "the assignment's .ipynb file."
        ).format(where=where))
    if _cell_count(data) > MAX_NOTEBOOK_CELLS:
        raise SubmissionError(_(
            "{where}: the notebook has {count} cells, at most {limit} are allowed. Submit the "
            "assignment's notebook without the extra cells."
        ).format(where=where, count=_cell_count(data), limit=MAX_NOTEBOOK_CELLS))
    return data


def parse_notebook(raw: bytes, where: str) -> tuple[nbformat.NotebookNode, tuple[str, ...]]:
    """Parse notebook bytes into an nbformat v4 node, with warnings; SubmissionError if unusable."""
    data = _read_json(raw, where)
    major = data.get("nbformat")
    if not isinstance(major, int) or major < 3:
        raise SubmissionError(_(
            "{where} is in notebook format {version}: it is too old to be read. Open it in a "
            "current Jupyter or Colab, save it and submit again."
        ).format(where=where, version=repr(major)))
    try:
        nb = nbformat.reads(json.dumps(data), as_version=4)
    except Exception as exc:  # nbformat raises many types for malformed input
        raise SubmissionError(_("{where}: the notebook could not be read: {error}").format(
            where=where, error=exc)) from None
    warnings = []
    if major == 3:
        warnings.append(_("the notebook was in the old format 3 and was converted to format 4"))
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        warnings.append(_("the notebook does not fully follow the format: {error}").format(
            error=exc.message))
    if not isinstance(nb.get("cells"), list):
        raise SubmissionError(_("{where}: the notebook has no list of cells").format(
            where=where))
    return nb, tuple(warnings)


def _code_depth(tree: ast.AST) -> int:
    """How deep the syntax tree nests (iteratively: the tree may be deeper than the stack)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _readable(source: str) -> bool:
    """False when Python's parser runs out of stack on ``source`` or its tree nests deeper
    than :data:`MAX_CODE_DEPTH`; invalid Python is readable (the worker reports it)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return True
    except (RecursionError, MemoryError, ValueError):
        return False
    return _code_depth(tree) <= MAX_CODE_DEPTH


def check_code_cells(nb: nbformat.NotebookNode, where: str) -> None:
    """SubmissionError if a code cell would exhaust Python's parser or a reader of its syntax
    tree: thousands of nested operators make ``ast.parse`` raise RecursionError or
    MemoryError, and a tree over :data:`MAX_CODE_DEPTH` levels is more than any recursive
    reader of it can take. A cell that is only invalid Python is the cell's own error. The
    cell is read as written and without its ``!``/``%`` lines (the static reading parses
    what is left of a cell with shell commands or magics)."""
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        without_magics = _MAGIC_LINE.sub("", source)
        if not _readable(source) or (without_magics != source
                                     and not _readable(without_magics)):
            raise SubmissionError(_(
                "{where}: cell {cell} cannot be parsed: its expressions nest deeper than "
                "{depth} levels (thousands of brackets, operators or calls in one expression, "
                "for example). Split such an expression over several lines with intermediate "
                "variables and submit again."
            ).format(where=where, cell=index + 1, depth=MAX_CODE_DEPTH))


# ----------------------------------------------------------------------------- zip


@dataclass(frozen=True)
class _ZipPlan:
    """What a checked .zip holds: its notebook and the files of the notebook's folder."""

    notebook: str  # the notebook's path inside the folder
    files: tuple[tuple[str, zipfile.ZipInfo], ...]  # (path inside the folder, entry)


def _zip_refusal(archive: Path, members: list[zipfile.ZipInfo]) -> str | None:
    """Why the central directory alone refuses the archive (None: it does not)."""
    name = archive.name
    if len(members) > MAX_ZIP_MEMBERS:
        return _("{name}: the archive holds {count} files, at most {limit} are allowed. Remove "
                 "what is not needed (data, checkpoints, environment folders) and submit the "
                 "notebook and the files it saved.").format(
                     name=name, count=len(members), limit=MAX_ZIP_MEMBERS)
    total = sum(m.file_size for m in members)
    if total > MAX_ZIP_TOTAL_BYTES:
        return _("{name}: the unpacked archive would take {size:.0f} MiB, at most {limit} MiB "
                 "are allowed. Remove the data and any extra files from the archive and submit "
                 "the notebook and the files it saved (the model weights, for example).").format(
                     name=name, size=total / 2**20, limit=MAX_ZIP_TOTAL_BYTES // 2**20)
    for member in members:
        if member.file_size > RATIO_FLOOR_BYTES and \
                member.file_size > MAX_ZIP_RATIO * max(1, member.compress_size):
            return _("{name}: the file {member} in the archive is compressed {ratio:.0f} "
                     "times, at most {limit} is allowed: only artificially inflated files "
                     "compress like that. Submit an archive with the real files of your "
                     "work.").format(
                         name=name, member=repr(member.filename), limit=MAX_ZIP_RATIO,
                         ratio=member.file_size / max(1, member.compress_size))
    packed = archive.stat().st_size
    if total > RATIO_FLOOR_BYTES and total > MAX_ZIP_RATIO * max(1, packed):
        return _("{name}: the archive unpacks to {ratio:.0f} times its own size, at most "
                 "{limit} is allowed: only artificially inflated files compress like that. "
                 "Submit an archive with the real files of your work.").format(
                     name=name, ratio=total / max(1, packed), limit=MAX_ZIP_RATIO)
    for member in members:
        path = PurePosixPath(member.filename)
        if path.is_absolute() or ".." in path.parts:
            return _("{name}: a dangerous path {member} in the archive").format(
                name=name, member=repr(member.filename))
        if stat.S_ISLNK(member.external_attr >> 16):
            return _("{name}: symbolic links are not accepted").format(name=name)
        if member.flag_bits & 0x1:
            return _("{name}: the file {member} in the archive is protected by a password; "
                     "make the archive without a password and submit again").format(
                         name=name, member=repr(member.filename))
    return None


def _visible_parts(member: zipfile.ZipInfo) -> tuple[str, ...] | None:
    """The entry's path parts, or None for what is never part of the work (folders, macOS
    resource forks, a repository's history)."""
    parts = PurePosixPath(member.filename).parts
    if member.is_dir() or not parts or "__MACOSX" in parts or ".git" in parts:
        return None
    return parts


def _plan_zip(archive: Path, zf: zipfile.ZipFile) -> _ZipPlan:
    members = zf.infolist()
    refusal = _zip_refusal(archive, members)
    if refusal is not None:
        raise SubmissionError(refusal)
    entries = [(parts, m) for m in members if (parts := _visible_parts(m)) is not None]
    notebooks = sorted(parts for parts, _member in entries if parts[-1].endswith(".ipynb")
                       and not any(part.startswith(".") for part in parts))
    if not notebooks:
        raise SubmissionError(_("{where}: there is no .ipynb notebook").format(
            where=archive.name))
    if len(notebooks) > 1:
        names = ", ".join("/".join(parts) for parts in notebooks)
        raise SubmissionError(_(
            "{where}: several notebooks ({names}); submit exactly one").format(
                where=archive.name, names=names))
    folder = notebooks[0][:-1]
    files = tuple(("/".join(parts[len(folder):]), m) for parts, m in entries
                  if parts[:len(folder)] == folder)
    return _ZipPlan(notebooks[0][-1], files)


def _unpack(archive: Path, zf: zipfile.ZipFile, plan: _ZipPlan, target: Path) -> None:
    """Write the notebook's folder into ``target``, counting the bytes really written: the
    directory's sizes are the student's to forge."""
    written = 0
    for relative, member in plan.files:
        dest = target.joinpath(*relative.split("/"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        with zf.open(member) as source, open(dest, "wb") as out:
            while block := source.read(_CHUNK):
                size += len(block)
                written += len(block)
                if size > member.file_size or written > MAX_ZIP_TOTAL_BYTES:
                    raise SubmissionError(_(
                        "{name}: the archive is damaged or forged: the file {member} unpacks to "
                        "more than the archive's table of contents says. Make the archive again "
                        "(zip -r, or \"Compress\" in your file manager) and submit "
                        "again.").format(name=archive.name, member=repr(member.filename)))
                out.write(block)


def extract_zip(archive: Path, target: Path) -> Path:
    """Check a submission .zip by its central directory, then extract the notebook's folder
    (only it, once) into ``target``; returns the notebook's path. SubmissionError, in the
    student's words, for an archive that is refused or cannot be read."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise SubmissionError(_("{name}: a damaged archive, or not a .zip one").format(
            name=archive.name)) from None
    with zf:
        plan = _plan_zip(archive, zf)
        target.mkdir(parents=True, exist_ok=True)
        try:
            _unpack(archive, zf, plan, target)
        except SubmissionError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError,
                RuntimeError, ValueError) as exc:
            raise SubmissionError(_(
                "{name}: the archive could not be unpacked ({error_type}: {error}). Make the "
                "archive again (zip -r, or \"Compress\" in your file manager) and submit again."
            ).format(name=archive.name, error_type=type(exc).__name__, error=exc)) from None
    return target / plan.notebook


def _reject_links(folder: Path, where: str) -> None:
    for path in folder.rglob("*"):
        if path.is_symlink():
            raise SubmissionError(_(
                "{where}: a symbolic link ({path}); submit only regular files"
            ).format(where=where, path=path.relative_to(folder)))


def _find_notebook(folder: Path, where: str) -> Path:
    candidates = sorted(  # not in hidden folders: .ipynb_checkpoints, .git, .github, .grader
        p for p in folder.rglob("*.ipynb")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not candidates:
        raise SubmissionError(_("{where}: there is no .ipynb notebook").format(where=where))
    if len(candidates) > 1:
        names = ", ".join(p.relative_to(folder).as_posix() for p in candidates)
        raise SubmissionError(_("{where}: several notebooks ({names}); submit exactly one")
                              .format(where=where, names=names))
    return candidates[0]


def _read_notebook(path: Path) -> bytes:
    """The notebook's bytes; a file over the size bound is refused before it is read."""
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        return path.open("rb").read(MAX_NOTEBOOK_BYTES + 1)  # parse_notebook says why not
    return path.read_bytes()


def load_submission(path: Path, staging_dir: Path) -> Submission:
    """Load a submission; a zip's notebook folder is extracted into ``staging_dir`` (empty or
    not yet there), which then holds the submission's files. Raises SubmissionError."""
    sub_id = submission_id(path)
    if path.is_symlink():
        raise SubmissionError(_("{name}: a symbolic link; submit the file itself").format(
            name=path.name))
    if path.is_dir():
        where = _("folder {name}").format(name=path.name)
        _reject_links(path, where)
        notebook_path = _find_notebook(path, where)
    elif path.suffix == ".zip":
        notebook_path = extract_zip(path, staging_dir)
    elif path.is_file():
        notebook_path = path
    else:
        raise SubmissionError(_("{path}: file not found").format(path=path))
    if path.is_file() and path.suffix not in {".ipynb", ".zip"}:
        raise SubmissionError(_("{name}: submit an .ipynb notebook, a folder or a .zip").format(
            name=path.name))
    raw = _read_notebook(notebook_path)
    nb, warnings = parse_notebook(raw, notebook_path.name)
    files_dir = notebook_path.parent if notebook_path != path else None
    return Submission(
        submission_id=sub_id,
        origin=path,
        notebook=nb,
        notebook_name=notebook_path.name,
        files_dir=files_dir,
        sha256=_hash_submission(raw, files_dir),
        warnings=warnings,
    )


def _hash_submission(raw: bytes, files_dir: Path | None) -> str:
    digest = hashlib.sha256(raw)
    if files_dir is not None:
        for path in sorted(files_dir.rglob("*")):
            if path.is_file() and not path.is_symlink():
                digest.update(path.relative_to(files_dir).as_posix().encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
