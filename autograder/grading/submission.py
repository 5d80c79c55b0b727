"""Load a submission (.ipynb, folder, or .zip), validate the notebook, list its gradable cells.

Everything here reads student files as data: the notebook is parsed as JSON by nbformat and
never executed in this process.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import nbformat

IGNORE_TAG = "otter_ignore"
MAX_NOTEBOOK_BYTES = 32 * 1024 * 1024
MAX_ZIP_TOTAL_BYTES = 1024 * 1024 * 1024
MAX_ZIP_MEMBERS = 1000


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
    except SyntaxError:
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


def parse_notebook(raw: bytes, where: str) -> tuple[nbformat.NotebookNode, tuple[str, ...]]:
    """Parse notebook bytes into an nbformat v4 node, with warnings; SubmissionError if unusable."""
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise SubmissionError(
            f"{where}: ноутбук весит {len(raw) // 2**20} МиБ, предел "
            f"{MAX_NOTEBOOK_BYTES // 2**20} МиБ. Очистите выводы (Kernel > Restart & Clear "
            "Output) и отправьте снова."
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SubmissionError(
            f"{where} не является ноутбуком Jupyter: это не корректный JSON ({exc}). "
            "Скачайте работу из Jupyter/Colab как .ipynb и отправьте этот файл."
        ) from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise SubmissionError(
            f"{where}: это JSON, но не ноутбук Jupyter (нет 'cells'). "
            "Отправьте .ipynb-файл задания."
        )
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


def _safe_extract(archive: Path, target: Path) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise SubmissionError(f"{archive.name}: повреждённый или не .zip архив") from None
    with zf:
        members = zf.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise SubmissionError(f"{archive.name}: больше {MAX_ZIP_MEMBERS} файлов в архиве")
        if sum(m.file_size for m in members) > MAX_ZIP_TOTAL_BYTES:
            raise SubmissionError(f"{archive.name}: в распакованном виде больше 1 ГиБ")
        for member in members:
            name = PurePosixPath(member.filename)
            if name.is_absolute() or ".." in name.parts:
                raise SubmissionError(f"{archive.name}: опасный путь {member.filename!r} в архиве")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise SubmissionError(f"{archive.name}: символические ссылки не принимаются")
            if member.is_dir() or "__MACOSX" in name.parts:
                continue
            dest = target.joinpath(*name.parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)


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


def load_submission(path: Path, staging_dir: Path) -> Submission:
    """Load a submission; zips are unpacked into ``staging_dir``. Raises SubmissionError."""
    sub_id = submission_id(path)
    if path.is_symlink():
        raise SubmissionError(f"{path.name}: символическая ссылка; отправьте сам файл")
    if path.is_dir():
        _reject_links(path, f"папка {path.name}")
        notebook_path = _find_notebook(path, f"папка {path.name}")
    elif path.suffix == ".zip":
        staging_dir.mkdir(parents=True, exist_ok=True)
        _safe_extract(path, staging_dir)
        notebook_path = _find_notebook(staging_dir, path.name)
    elif path.is_file():
        notebook_path = path
    else:
        raise SubmissionError(f"{path}: файл не найден")
    if path.is_file() and path.suffix not in {".ipynb", ".zip"}:
        raise SubmissionError(f"{path.name}: отправьте ноутбук .ipynb, папку или .zip")
    raw = notebook_path.read_bytes()
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
