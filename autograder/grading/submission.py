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
    """The submission itself is unusable; the message is written for the student (in Russian)."""


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
        raise SubmissionError(
            f"{where}: ноутбук весит {len(raw) // 2**20} МиБ, предел "
            f"{MAX_NOTEBOOK_BYTES // 2**20} МиБ. Очистите выводы (Kernel > Restart & Clear "
            "Output) и отправьте снова."
        )
    if _nesting_over(raw, MAX_NOTEBOOK_DEPTH):
        raise SubmissionError(
            f"{where}: в JSON ноутбука больше {MAX_NOTEBOOK_DEPTH} уровней вложенности "
            "(списки и словари друг в друге), так глубоко Jupyter не сохраняет. Файл испорчен "
            "или собран вручную: сохраните ноутбук из Jupyter/Colab заново и отправьте его."
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SubmissionError(
            f"{where} не является ноутбуком Jupyter: это не корректный JSON ({exc}). "
            "Скачайте работу из Jupyter/Colab как .ipynb и отправьте этот файл."
        ) from None
    except (RecursionError, MemoryError):  # a backstop: the nesting check comes first
        raise SubmissionError(
            f"{where}: JSON ноутбука слишком сложен, чтобы его прочитать. Сохраните ноутбук "
            "из Jupyter/Colab заново и отправьте его."
        ) from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise SubmissionError(
            f"{where}: это JSON, но не ноутбук Jupyter (нет 'cells'). "
            "Отправьте .ipynb-файл задания."
        )
    if _cell_count(data) > MAX_NOTEBOOK_CELLS:
        raise SubmissionError(
            f"{where}: в ноутбуке {_cell_count(data)} ячеек, допускается не больше "
            f"{MAX_NOTEBOOK_CELLS}. Отправьте ноутбук задания без лишних ячеек."
        )
    return data


def parse_notebook(raw: bytes, where: str) -> tuple[nbformat.NotebookNode, tuple[str, ...]]:
    """Parse notebook bytes into an nbformat v4 node, with warnings; SubmissionError if unusable."""
    data = _read_json(raw, where)
    major = data.get("nbformat")
    if not isinstance(major, int) or major < 3:
        raise SubmissionError(
            f"{where} в формате ноутбука {major!r}: он слишком старый, его нельзя прочитать. "
            "Откройте его в современном Jupyter или Colab, сохраните и отправьте снова."
        )
    try:
        nb = nbformat.reads(json.dumps(data), as_version=4)
    except Exception as exc:  # nbformat raises many types for malformed input
        raise SubmissionError(f"{where}: ноутбук не удалось прочитать: {exc}") from None
    warnings = []
    if major == 3:
        warnings.append("ноутбук был в старом формате 3 и преобразован в формат 4")
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        warnings.append(f"ноутбук не полностью соответствует формату: {exc.message}")
    if not isinstance(nb.get("cells"), list):
        raise SubmissionError(f"{where}: в ноутбуке нет списка ячеек")
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
            raise SubmissionError(
                f"{where}: ячейку {index + 1} нельзя разобрать: выражения в ней вложены "
                f"глубже {MAX_CODE_DEPTH} уровней (например, тысячи скобок, операторов или "
                "вызовов в одном выражении). Разбейте такое выражение на несколько строк "
                "с промежуточными переменными и отправьте снова."
            )


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
        return (f"{name}: в архиве {len(members)} файлов, допускается не больше "
                f"{MAX_ZIP_MEMBERS}. Уберите лишнее (данные, чекпоинты, папки окружения) и "
                "отправьте ноутбук и сохранённые им файлы.")
    total = sum(m.file_size for m in members)
    if total > MAX_ZIP_TOTAL_BYTES:
        return (f"{name}: распакованный архив занял бы {total / 2**20:.0f} МиБ, допускается не "
                f"больше {MAX_ZIP_TOTAL_BYTES // 2**20} МиБ. Уберите из архива данные и лишние "
                "файлы и отправьте ноутбук и сохранённые им файлы (например, веса моделей).")
    for member in members:
        if member.file_size > RATIO_FLOOR_BYTES and \
                member.file_size > MAX_ZIP_RATIO * max(1, member.compress_size):
            return (f"{name}: файл {member.filename!r} в архиве сжат в "
                    f"{member.file_size / max(1, member.compress_size):.0f} раз, допускается не "
                    f"больше {MAX_ZIP_RATIO}: так сжимаются только искусственно раздутые файлы. "
                    "Отправьте архив с настоящими файлами работы.")
    packed = archive.stat().st_size
    if total > RATIO_FLOOR_BYTES and total > MAX_ZIP_RATIO * max(1, packed):
        return (f"{name}: архив распаковывается в {total / max(1, packed):.0f} раз больше своего "
                f"размера, допускается не больше {MAX_ZIP_RATIO}: так сжимаются только "
                "искусственно раздутые файлы. Отправьте архив с настоящими файлами работы.")
    for member in members:
        path = PurePosixPath(member.filename)
        if path.is_absolute() or ".." in path.parts:
            return f"{name}: опасный путь {member.filename!r} в архиве"
        if stat.S_ISLNK(member.external_attr >> 16):
            return f"{name}: символические ссылки не принимаются"
        if member.flag_bits & 0x1:
            return (f"{name}: файл {member.filename!r} в архиве защищён паролем; создайте архив "
                    "без пароля и отправьте снова")
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
    notebooks = sorted(parts for parts, _ in entries if parts[-1].endswith(".ipynb")
                       and not any(part.startswith(".") for part in parts))
    if not notebooks:
        raise SubmissionError(f"{archive.name}: нет ноутбука .ipynb")
    if len(notebooks) > 1:
        names = ", ".join("/".join(parts) for parts in notebooks)
        raise SubmissionError(
            f"{archive.name}: несколько ноутбуков ({names}); отправьте ровно один")
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
                    raise SubmissionError(
                        f"{archive.name}: архив повреждён или подделан: файл "
                        f"{member.filename!r} распаковывается больше, чем записано в оглавлении "
                        "архива. Создайте архив заново (zip -r или «Сжать» в проводнике) и "
                        "отправьте снова.")
                out.write(block)


def extract_zip(archive: Path, target: Path) -> Path:
    """Check a submission .zip by its central directory, then extract the notebook's folder
    (only it, once) into ``target``; returns the notebook's path. SubmissionError, in the
    student's words, for an archive that is refused or cannot be read."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise SubmissionError(f"{archive.name}: повреждённый или не .zip архив") from None
    with zf:
        plan = _plan_zip(archive, zf)
        target.mkdir(parents=True, exist_ok=True)
        try:
            _unpack(archive, zf, plan, target)
        except SubmissionError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError,
                RuntimeError, ValueError) as exc:
            raise SubmissionError(
                f"{archive.name}: архив не удалось распаковать ({type(exc).__name__}: {exc}). "
                "Создайте архив заново (zip -r или «Сжать» в проводнике) и отправьте снова."
            ) from None
    return target / plan.notebook


def _reject_links(folder: Path, where: str) -> None:
    for path in folder.rglob("*"):
        if path.is_symlink():
            raise SubmissionError(
                f"{where}: символическая ссылка ({path.relative_to(folder)}); "
                "отправляйте только обычные файлы"
            )


def _find_notebook(folder: Path, where: str) -> Path:
    candidates = sorted(  # not in hidden folders: .ipynb_checkpoints, .git, .github, .grader
        p for p in folder.rglob("*.ipynb")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not candidates:
        raise SubmissionError(f"{where}: нет ноутбука .ipynb")
    if len(candidates) > 1:
        names = ", ".join(p.relative_to(folder).as_posix() for p in candidates)
        raise SubmissionError(f"{where}: несколько ноутбуков ({names}); отправьте ровно один")
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
        raise SubmissionError(f"{path.name}: символическая ссылка; отправьте сам файл")
    if path.is_dir():
        _reject_links(path, f"папка {path.name}")
        notebook_path = _find_notebook(path, f"папка {path.name}")
    elif path.suffix == ".zip":
        notebook_path = extract_zip(path, staging_dir)
    elif path.is_file():
        notebook_path = path
    else:
        raise SubmissionError(f"{path}: файл не найден")
    if path.is_file() and path.suffix not in {".ipynb", ".zip"}:
        raise SubmissionError(f"{path.name}: отправьте ноутбук .ipynb, папку или .zip")
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
