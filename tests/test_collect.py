"""Submissions in the layouts instructors get: files, folders, GitHub Classroom, Gradescope."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.batch.collect import CollectError, collect, safe_id


def _touch(path: Path, text: str = "{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _ids(paths: list[Path]) -> dict[str, Path]:
    return {f.submission_id: f.path for f in collect(paths).submissions}


def test_a_folder_of_notebooks_and_zips_is_one_submission_each(tmp_path):
    for name in ("ann.ipynb", "bob.ipynb", "cid.zip"):
        _touch(tmp_path / "subs" / name)
    _touch(tmp_path / "subs" / "notes.txt")
    _touch(tmp_path / "subs" / ".ipynb_checkpoints" / "ann-checkpoint.ipynb")
    assert _ids([tmp_path / "subs"]) == {
        "ann": tmp_path / "subs" / "ann.ipynb",
        "bob": tmp_path / "subs" / "bob.ipynb",
        "cid": tmp_path / "subs" / "cid.zip",
    }


def test_per_student_folders_keep_their_files_together(tmp_path):
    for student in ("ann", "bob"):
        _touch(tmp_path / "class" / student / "03_convnet_cifar10.ipynb")
        _touch(tmp_path / "class" / student / "convnet.pt", "w")
    found = collect([tmp_path / "class"])
    assert {f.submission_id: f.path for f in found.submissions} == {
        "ann": tmp_path / "class" / "ann", "bob": tmp_path / "class" / "bob"}
    assert "folder of 2 submissions" in found.describe()


def test_one_submission_folder_is_one_submission(tmp_path):
    _touch(tmp_path / "good" / "03_convnet_cifar10.ipynb")
    _touch(tmp_path / "good" / "convnet.pt", "w")
    assert _ids([tmp_path / "good"]) == {"good": tmp_path / "good"}


def test_a_github_classroom_download_is_one_submission_per_repository(tmp_path):
    root = tmp_path / "cnn-hw-submissions"
    for user in ("alice-k", "bob"):
        repo = root / f"cnn-hw-{user}"
        _touch(repo / ".git" / "HEAD", "ref: refs/heads/main")
        _touch(repo / "01_convolution_pooling.ipynb")
        _touch(repo / ".github" / "workflows" / "grade.ipynb")  # hidden: never the notebook
    found = collect([root])
    assert {f.submission_id for f in found.submissions} == {"alice-k", "bob"}
    assert {f.layout for f in found.submissions} == {"classroom"}
    assert "GitHub Classroom download (2 repositories)" in found.describe()


GRADESCOPE_METADATA = """\
submission_111:
  :submitters:
  - :name: Ann A
    :sid: '1001'
    :email: ann@uni.edu
  :created_at: 2026-11-30 10:00:00.000000000 +00:00
  :score: 0.0
submission_222:
  :submitters:
  - :name: Bob B
    :sid: ''
    :email: bob@uni.edu
  - :name: Cid C
    :sid: '1003'
    :email: cid@uni.edu
submission_333:
  :submitters: []
"""


def test_a_gradescope_export_is_read_through_its_metadata(tmp_path):
    export = tmp_path / "assignment_export"
    _touch(export / "submission_metadata.yml", GRADESCOPE_METADATA)
    for folder in ("submission_111", "submission_222", "submission_333"):
        _touch(export / folder / "01_convolution_pooling.ipynb")
    found = collect([export])
    assert {f.submission_id: f.path.name for f in found.submissions} == {
        "1001": "submission_111", "bob@uni.edu+1003": "submission_222",
        "submission_333": "submission_333"}
    assert {f.layout for f in found.submissions} == {"gradescope"}


def test_duplicate_ids_are_kept_apart_and_reported(tmp_path):
    a = _touch(tmp_path / "deadline" / "ann.ipynb")
    b = _touch(tmp_path / "late" / "ann.ipynb")
    c = _touch(tmp_path / "late" / "bob.ipynb")
    found = collect([tmp_path / "deadline", tmp_path / "late"])
    assert {f.submission_id: f.path for f in found.submissions} == {"ann": a, "ann-2": b,
                                                                     "bob": c}
    assert found.duplicates == (("ann", (a, b)),)
    assert "duplicate id 'ann'" in found.describe() and str(b) in found.describe()


def test_a_duplicate_never_takes_a_real_submissions_id_and_the_batch_goes_on(tmp_path):
    """A student's own ``ann-2`` keeps its id; the second ``ann`` gets the next free number
    (the old rule refused the whole batch: a name a student chose stopped everyone's)."""
    a = _touch(tmp_path / "x" / "ann.ipynb")
    b = _touch(tmp_path / "y" / "ann.ipynb")
    real = _touch(tmp_path / "y" / "ann-2.ipynb")
    found = collect([tmp_path / "x", tmp_path / "y"])
    assert {f.submission_id: f.path for f in found.submissions} == {"ann": a, "ann-3": b,
                                                                     "ann-2": real}
    assert f"{b} as ann-3" in found.describe()


def test_missing_and_empty_inputs_are_instructor_errors(tmp_path):
    with pytest.raises(CollectError, match="no such submission"):
        collect([tmp_path / "nothing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CollectError, match="no submissions in"):
        collect([tmp_path / "empty"])


def test_ids_are_safe_folder_names():
    assert safe_id("../../etc") == "_.._etc"
    assert safe_id("..") == "submission"
    assert safe_id("bob@uni.edu+1003") == "bob@uni.edu+1003"
    assert safe_id("Анна Иванова") == "Анна_Иванова"
    assert safe_id("a/b\\c d") == "a_b_c_d"


def test_a_folder_with_one_loose_notebook_is_not_taken_for_a_submission_folder(tmp_path):
    """One notebook alone is a folder of one student's notebook; with the assignment's name or
    files beside it, it is that student's submission folder."""
    _touch(tmp_path / "deadline" / "ann.ipynb")
    assert _ids([tmp_path / "deadline"]) == {"ann": tmp_path / "deadline" / "ann.ipynb"}
    _touch(tmp_path / "sub" / "01_convolution_pooling.ipynb")
    found = collect([tmp_path / "sub"], "01_convolution_pooling.ipynb")
    assert [(f.submission_id, f.layout) for f in found.submissions] == [("sub", "folder")]
