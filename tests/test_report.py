"""What people read: feedback.html per student, similarity flags, and OUT/report.html.

The report is built from a real batch (01: the reference, the stub, a classic bug, a copy of
the reference with a hostile comment, a notebook that is not JSON) and rendered in headless
Chromium, which must decode every embedded plot and find a link to every feedback page.
"""

from __future__ import annotations

import copy as copy_module
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from local_run import built

from autograder.core.assignments import PROJECT_ROOT, load_assignment
from autograder.core.errors import Outcome
from autograder.core.results import (
    CaseResult,
    CellRecord,
    EvaluationRecord,
    ImageSetRecord,
    IsolationRecord,
    ModelMeasurement,
    QuestionResult,
    ReviewFlag,
    RunDetails,
    SubmissionResult,
    SubmissionStatus,
)
from autograder.grading.pipeline import failed_result
from autograder.outputs import similarity
from autograder.outputs.records import finished_result, record_text, result_to_data
from autograder.outputs.report import ReportError, load_results, write_report
from autograder.outputs.writers import feedback_html, feedback_markdown

NAME = "01_convolution_pooling"
GRADER = [sys.executable, str(PROJECT_ROOT / "grader.py")]
HOSTILE = "</pre><script>alert('owned')</script>"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _grader(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*GRADER, *args], capture_output=True, text=True, timeout=900,
                          check=False, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})


def _hostile_copy(reference: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The reference, copied, with markup in a comment of an answer cell (shown in the report)."""
    copy = copy_module.deepcopy(reference)
    for cell in copy.cells:
        if cell.cell_type == "code" and cell.source.startswith("def conv2d("):
            cell.source = cell.source.replace("\n", f"\n    # {HOSTILE}\n", 1)
            return copy
    raise AssertionError("the 01 reference has no conv2d cell")


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess,
                                     subprocess.CompletedProcess]:
    """A graded 01 batch through the CLI, fingerprinted, its report written again."""
    from autograder.authoring.mutants import apply_mutant, load_mutants

    base = tmp_path_factory.mktemp("report")
    subs, out = base / "submissions", base / "out"
    subs.mkdir()
    reference = built(NAME).reference_notebook
    nbformat.write(reference, subs / "reference.ipynb")
    nbformat.write(built(NAME).student_notebook, subs / "stub.ipynb")
    nbformat.write(apply_mutant(reference, load_mutants(NAME)[0]), subs / "classic_bug.ipynb")
    nbformat.write(_hostile_copy(reference), subs / "copied.ipynb")
    (subs / "broken.ipynb").write_text("{not a notebook", encoding="utf-8")
    graded = _grader("grade", "--assignment", NAME, str(subs), "--out", str(out), "--jobs", "2",
                     "--seed", "11")
    assert graded.returncode == 0, graded.stderr[-3000:]
    stub = load_assignment(NAME).student_notebook
    for path in sorted(subs.iterdir()):  # what the batch's driver does after each submission
        similarity.write_fingerprint(out, path.stem, path, stub)
    reported = _grader("report", str(out))
    return out, graded, reported


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"] or "")
        if tag == "img":
            self.images.append(values.get("src") or "")
        if tag == "script":
            self.scripts += 1


def _parsed(text: str) -> _Links:
    parser = _Links()
    parser.feed(text)
    return parser


# ----------------------------------------------------------------------------- the batch


def test_a_batch_ends_with_the_report_and_the_report_command_rewrites_it(batch):
    out, graded, reported = batch
    assert graded.stdout.strip().splitlines()[-1] == f"report: {out / 'report.html'}"
    assert "graded 4, failed to run 1" in graded.stdout.split("report:")[0]
    assert reported.returncode == 0, reported.stderr[-3000:]
    assert reported.stdout.strip() == f"report: {out / 'report.html'}"
    assert (out / "report.html").is_file()


def test_every_student_gets_feedback_html_beside_feedback_md(batch):
    out, _, _ = batch
    for sub_id in ("reference", "stub", "classic_bug", "copied", "broken"):
        assert (out / "submissions" / sub_id / "feedback.md").is_file()
        page = (out / "submissions" / sub_id / "feedback.html").read_text(encoding="utf-8")
        assert page.startswith("<!DOCTYPE html>") and "Итог:" in page
    stub_page = (out / "submissions" / "stub" / "feedback.html").read_text(encoding="utf-8")
    assert "conv2d: 0 / 3" in stub_page and "не пройден" in stub_page
    assert any(level in stub_page for level in (  # whichever level ran here
        "песочница bubblewrap", "отдельный непривилегированный пользователь",
        "отдельный процесс"))
    copied_page = (out / "submissions" / "copied" / "feedback.html").read_text(encoding="utf-8")
    assert "<script" not in copied_page


def test_the_report_summarises_the_class(batch):
    out, _, _ = batch
    text = (out / "report.html").read_text(encoding="utf-8")
    summary = text.split('<section id="summary">')[1].split("</section>")[0]
    assert "<td>submissions</td><td>5</td>" in summary
    assert "<td>graded</td><td>4</td>" in summary
    assert "<td>failed to run</td><td>1</td>" in summary
    for section in ("scores", "questions", "cases", "slowest", "failed", "flagged", "similar",
                    "all"):
        assert f'<section id="{section}">' in text
    assert "The hidden case that catches most students" in text
    cases = text.split('<section id="cases">')[1].split("</section>")[0]
    first_row = cases.split("<tr>")[2]
    assert "hidden" in first_row  # hidden cases first, the one that catches most on top
    failed = text.split('<section id="failed">')[1].split("</section>")[0]
    assert 'href="submissions/broken/feedback.html"' in failed and "JSON" in failed


def test_the_report_shows_the_copy_side_by_side_and_escapes_it(batch):
    out, _, _ = batch
    text = (out / "report.html").read_text(encoding="utf-8")
    similar = text.split('<section id="similar">')[1].split("</section>")[0]
    assert 'href="submissions/copied/feedback.html"' in similar
    assert 'href="submissions/reference/feedback.html"' in similar
    assert '<div class="side">' in similar and "def conv2d(" in similar
    assert "<script>" not in text and "&lt;script&gt;alert(" in text
    assert _parsed(text).scripts == 0
    pairs = similarity.similar_pairs(out)
    copied = [p for p in pairs if {p.a, p.b} == {"copied", "reference"}]
    assert copied and copied[0].cells and not copied[0].weights
    assert all("stub" not in (p.a, p.b) and "broken" not in (p.a, p.b) for p in pairs)


def test_the_report_links_every_feedback_page_on_disk(batch):
    out, _, _ = batch
    hrefs = set(_parsed((out / "report.html").read_text(encoding="utf-8")).hrefs)
    pages = sorted(p.relative_to(out).as_posix() for p in out.glob("submissions/*/feedback.html"))
    assert len(pages) == 5
    assert set(pages) <= hrefs
    for href in hrefs:
        assert (out / href).is_file(), href


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y "
                    "chromium; .ci/run installs it)")
def test_the_report_renders_in_headless_chromium_with_its_plots_and_links(batch, tmp_path):
    out, _, _ = batch
    probe = out / "report-probe.html"  # beside report.html, so that relative links resolve
    script = ("<script>window.addEventListener('load', () => { document.title = 'PROBE ' + "
              "[...document.images].map(i => i.complete + ':' + i.naturalWidth + 'x' + "
              "i.naturalHeight).join(' '); });</script></body>")
    probe.write_text((out / "report.html").read_text(encoding="utf-8")
                     .replace("</body>", script), encoding="utf-8")
    try:
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=120, check=False)
    finally:
        probe.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    title = re.search(r"<title>PROBE ([^<]*)</title>", done.stdout)
    assert title, done.stdout[:2000]
    sizes = title.group(1).split()
    assert len(sizes) >= 2  # the score histogram and the pass rates at least
    for size in sizes:
        complete, dims = size.split(":")
        width, height = (int(n) for n in dims.split("x"))
        assert complete == "true" and width > 0 and height > 0, sizes
    dom = _parsed(done.stdout)
    assert dom.scripts == 1  # ours; nothing from a submission became a script
    for page in out.glob("submissions/*/feedback.html"):
        assert page.relative_to(out).as_posix() in dom.hrefs


# ----------------------------------------------------------------------------- small reports


def _graded(sub_id: str, score: float, details: RunDetails | None = None,
            flags: tuple[ReviewFlag, ...] = ()) -> SubmissionResult:
    cases = (CaseResult("q1", "test_public", False, 1.0, min(score, 1.0),
                        Outcome.PASSED if score >= 1 else Outcome.FAILED, "ожидалось 1"),
             CaseResult("q1", "test_hidden", True, 1.0, max(0.0, score - 1.0),
                        Outcome.PASSED if score >= 2 else Outcome.FAILED, "подсказка"))
    question = QuestionResult("q1", 2.0, score, cases, review=flags)
    return SubmissionResult(sub_id, SubmissionStatus.GRADED, "", (question,),
                            details or RunDetails(isolation=IsolationRecord("bwrap"),
                                                  seconds=1.5))


def _evaluation(dataset: str, official: ImageSetRecord | None = None,
                **models: ModelMeasurement) -> EvaluationRecord:
    """An evaluation record of ``models`` (an official set named after the dataset unless
    given)."""
    return EvaluationRecord(dataset, official or ImageSetRecord(dataset, 100), models=models)


def _store(out: Path, *results: SubmissionResult) -> None:
    for result in results:
        folder = out / "submissions" / result.submission_id
        folder.mkdir(parents=True)
        (folder / "record.json").write_text(record_text(result, "key"), encoding="utf-8")
        (folder / "feedback.html").write_text(feedback_html(result), encoding="utf-8")


def test_a_report_of_an_empty_folder_and_of_no_graded_submission(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    text = write_report(empty).read_text(encoding="utf-8")
    assert "<td>submissions</td><td>0</td>" in text and "No finished submissions" in text
    failed = tmp_path / "failed"
    _store(failed, failed_result("only", [], "не ноутбук <b>"))
    text = write_report(failed).read_text(encoding="utf-8")
    assert "<td>graded</td><td>0</td>" in text and "No graded submissions" in text
    assert 'href="submissions/only/feedback.html"' in text and "не ноутбук &lt;b&gt;" in text
    with pytest.raises(ReportError, match="no output folder"):
        write_report(tmp_path / "missing")


def test_a_report_of_one_submission_with_a_flag_and_model_accuracies(tmp_path):
    official = ImageSetRecord("cifar10-jpeg (test)", 10000, "imagefolder", "e016f210c3d329e3")
    details = RunDetails(isolation=IsolationRecord("bwrap"), seconds=12.5, evaluation=_evaluation(
        "cifar10", official, convnet_accuracy=ModelMeasurement(0.93, 0.5)))
    flag = ReviewFlag("q1", "secret_set_gap", "точность <ниже>", seen="93% против 50%")
    _store(tmp_path, _graded("solo", 2.0, details, (flag,)))
    text = write_report(tmp_path).read_text(encoding="utf-8")
    assert text.count("<img ") == 3  # scores, pass rates, convnet_accuracy
    assert "convnet_accuracy: median 93.0%" in text
    assert ("test set: cifar10-jpeg (test) (imagefolder, 10000 images, sha256 "
            "e016f210c3d329e3...)") in text  # which set the models were graded on
    assert "secret_set_gap" in text and "точность &lt;ниже&gt;" in text
    assert "12.5 s" in text
    assert load_results(tmp_path).results[0].submission_id == "solo"


# A record as the grader of December 2 (the first with records) wrote it: the isolation as
# the level's name, image sets without kind or digest, no training set, fewer model fields.
OLD_DETAILS = {
    "seed": 7, "isolation": "process", "packages": ["numpy", "torch"], "tests": "all",
    "worker_restarts": 0, "cells": [{"index": 0, "status": "ok", "seconds": 0.5},
                                    {"index": 1, "status": "error", "seconds": 0.1}],
    "seconds": 31.5, "warnings": [], "sha256": "ab" * 32,
    "evaluation": {"dataset": "synthetic", "official": {"name": "synthetic", "images": 2000},
                   "secret": {"name": "synthetic (secret)", "images": 1000}, "device": "cpu",
                   "models": {"convnet_accuracy": {"accuracy": 0.8, "secret_accuracy": 0.75,
                                                   "error": "", "retrained_accuracy": None,
                                                   "retrain_note": ""}}},
}


def test_a_record_of_an_older_grader_is_read_into_typed_details(tmp_path):
    result = _graded("old", 2.0)
    record = {"key": "old key", "result": {**result_to_data(result), "details": OLD_DETAILS}}
    folder = tmp_path / "submissions" / "old"
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps(record), encoding="utf-8")

    found = finished_result(tmp_path, "old", "old key")  # as a resumed batch reads it
    assert found is not None and found.details.isolation == IsolationRecord("process")
    assert found.details.cells[1] == CellRecord(1, "error", 0.1)
    evaluation = found.details.evaluation
    assert evaluation.official == ImageSetRecord("synthetic", 2000) and evaluation.train is None
    measured = evaluation.models["convnet_accuracy"]
    assert (measured.accuracy, measured.train_accuracy, measured.findings) == (0.8, None, ())
    assert "Проверка: отдельный процесс с лимитами" in feedback_markdown(found)
    text = write_report(tmp_path).read_text(encoding="utf-8")
    assert "test set: synthetic (unknown kind, 2000 images, sha256 ?...)" in text
    assert "convnet_accuracy: median 80.0%" in text and "31.5 s" in text


def test_details_written_today_read_back_the_same():
    details = RunDetails.from_dict(OLD_DETAILS)
    today = details.as_dict()
    assert today["isolation"] == {"level": "process", "confinement": "",
                                  "stronger_levels_not_used": {}}
    assert RunDetails.from_dict(today) == details
    assert RunDetails.from_dict(today).as_dict() == today
    assert RunDetails().as_dict() == {}
    died = RunDetails(isolation=IsolationRecord("process", "limits"), grader_died=True)
    assert list(died.as_dict()) == ["isolation", "grader_died"]  # as the batch wrote it


def test_axes_that_count_submissions_have_integer_ticks(tmp_path, monkeypatch):
    """Three submissions: the histograms' counts axis reads 0, 1, 2, ..., never 0.5."""
    from matplotlib.figure import Figure

    drawn = []
    savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (drawn.append(self),
                                                                  savefig(self, *a, **k))[1])
    details = RunDetails(evaluation=_evaluation(
        "synthetic", convnet_accuracy=ModelMeasurement(0.61, None)))
    for name, score in (("a", 1.0), ("b", 2.0), ("c", 2.0)):
        _store(tmp_path, _graded(name, score, details))
    write_report(tmp_path)
    counted = [f.axes[0] for f in drawn if f.axes[0].get_ylabel() == "submissions"]
    assert len(counted) == 2, [f.axes[0].get_title() for f in drawn]  # scores, accuracy
    for axes in counted:
        ticks = [t for t in axes.get_yticks() if axes.get_ylim()[0] <= t <= axes.get_ylim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), (axes.get_title(), ticks)
    scores = next(a for a in counted if a.get_xlabel() == "score")
    assert all(float(t).is_integer() for t in scores.get_xticks()), scores.get_xticks()


def test_failures_are_counted_per_case_with_hidden_ones_first(tmp_path):
    _store(tmp_path, _graded("a", 1.0), _graded("b", 1.0), _graded("c", 0.0), _graded("d", 2.0))
    text = write_report(tmp_path).read_text(encoding="utf-8")
    rows = text.split('<section id="cases">')[1].split("<tr>")[2:]
    assert "test_hidden" in rows[0] and "3 / 4" in rows[0]
    assert "test_public" in rows[1] and "1 / 4" in rows[1]


def test_the_report_command_says_what_to_do_for_a_missing_folder(tmp_path):
    done = _grader("report", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "no output folder" in done.stderr


# ----------------------------------------------------------------------------- feedback.html


def test_feedback_html_escapes_everything_from_the_submission():
    case = CaseResult("q", "test_q", False, 1.0, 0.0, Outcome.FAILED,
                      "ожидалось 3, получено <script>alert(1)</script>")
    flag = ReviewFlag("q", "dynamic_import", "импорт <img src=x onerror=alert(1)>", 2, 1,
                      "__import__('<b>')")
    result = SubmissionResult("<i>id</i>", SubmissionStatus.GRADED, "",
                              (QuestionResult("q", 1.0, 0.0, (case,), review=(flag,)),),
                              RunDetails(isolation=IsolationRecord("process"),
                                         cells=(CellRecord(2, "timeout", 30.0),)))
    page = feedback_html(result, ("ячейка 3 завершилась с ошибкой <svg onload=alert(1)>",))
    assert "<script>" not in page and "<img" not in page and "<svg" not in page
    assert "<i>id</i>" not in page and "&lt;i&gt;id&lt;/i&gt;" in page
    assert "получено &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "(ячейка 2, строка 1)" in page  # the flag with where it was seen
    assert "3 (превышено время)" in page and "без bubblewrap" in page
    assert _parsed(page).scripts == 0


def test_feedback_html_has_every_question_score_and_hidden_cases_as_pass_fail():
    q1 = QuestionResult("conv2d", 3.0, 1.5, (
        CaseResult("conv2d", "test_public", False, 1.5, 1.5, Outcome.PASSED),
        CaseResult("conv2d", "test_hidden", True, 1.5, 0.0, Outcome.FAILED, "проверьте паддинг"),
    ))
    q2 = QuestionResult("max_pool2d", 2.0, 2.0, (
        CaseResult("max_pool2d", "test_pool", False, 2.0, 2.0, Outcome.PASSED),))
    details = RunDetails(isolation=IsolationRecord("bwrap"), tests="all",
                         evaluation=_evaluation("synthetic"))
    result = SubmissionResult("s1", SubmissionStatus.GRADED, "", (q1, q2), details)
    page = feedback_html(result)
    assert "Итог: 3.5 из 5" in page
    assert "conv2d: 1.5 / 3" in page and "max_pool2d: 2 / 2" in page
    assert "скрытый тест <code>test_hidden</code>: не пройден" in page
    assert "проверьте паддинг" in page and "синтетический набор" in page
    markdown = feedback_markdown(result)
    assert "синтетический набор" in markdown and "bubblewrap" in markdown


# ----------------------------------------------------------------------------- similarity


STUB_SOURCE = '''def conv2d(x, w, b):
    """Naive forward pass of a 2-D convolution."""
    ...
'''

LOOPS = '''def conv2d(x, w, b):
    """Naive forward pass of a 2-D convolution."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    out = np.zeros((n, f, h - kh + 1, wd - kw + 1))
    for i in range(h - kh + 1):
        for j in range(wd - kw + 1):
            window = x[:, :, i:i + kh, j:j + kw]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3]))
    return out + b.reshape(1, -1, 1, 1)
'''

RENAMED = '''def conv2d(x, w, b):
    """Моя свёртка, написана сама."""
    # my own solution, honest
    batch, chans, height, width = x.shape
    filters, _, k_h, k_w = w.shape
    result = np.zeros((batch, filters, height - k_h + 1, width - k_w + 1))
    for row in range(height - k_h + 1):
        for col in range(width  -  k_w + 1):
            patch = x[:, :, row:row + k_h, col:col + k_w]   # the window
            result[:, :, row, col] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return result + b.reshape(1, -1, 1, 1)
'''

IM2COL = '''def conv2d(x, w, b):
    """Naive forward pass of a 2-D convolution."""
    N, C, H, W = x.shape
    F, _, KH, KW = w.shape
    H_out, W_out = H - KH + 1, W - KW + 1
    cols = np.empty((N, C * KH * KW, H_out * W_out))
    idx = 0
    for r in range(H_out):
        for s in range(W_out):
            cols[:, :, idx] = x[:, :, r:r + KH, s:s + KW].reshape(N, -1)
            idx += 1
    flat = w.reshape(F, -1) @ cols
    return flat.reshape(N, F, H_out, W_out) + b[None, :, None, None]
'''


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import numpy as np"),
                *(nbformat.v4.new_code_cell(s) for s in sources)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def stub(tmp_path) -> Path:
    return _notebook(tmp_path / "stub" / "stub.ipynb", STUB_SOURCE)


def _pairs(tmp_path: Path, stub: Path, submissions: dict[str, Path]) -> list[similarity.Pair]:
    out = tmp_path / "out"
    for sub_id, path in submissions.items():
        similarity.write_fingerprint(out, sub_id, path, stub)
    return similarity.similar_pairs(out)


def test_a_copy_with_renamed_names_literal_and_spacing_changes_is_flagged(tmp_path, stub):
    pairs = _pairs(tmp_path, stub, {
        "alice": _notebook(tmp_path / "alice.ipynb", LOOPS),
        "bob": _notebook(tmp_path / "bob.ipynb", RENAMED),
    })
    assert [(p.a, p.b) for p in pairs] == [("alice", "bob")]
    match = pairs[0].cells[0]
    assert (match.cell_a, match.cell_b) == (1, 1) and match.similarity >= similarity.NEAR
    assert "np.tensordot(window" in match.source_a and "np.tensordot(patch" in match.source_b
    assert match.normalised_a == match.normalised_b and "ID" in match.normalised_a


def test_two_honest_solutions_that_differ_are_not_flagged(tmp_path, stub):
    pairs = _pairs(tmp_path, stub, {
        "alice": _notebook(tmp_path / "alice.ipynb", LOOPS),
        "carol": _notebook(tmp_path / "carol.ipynb", IM2COL),
    })
    assert pairs == []


def test_unchanged_stub_cells_and_one_liners_are_not_flagged(tmp_path, stub):
    one_liner = "def output_size(n, k, s, p):\n    return (n + 2 * p - k) // s + 1\n"
    pairs = _pairs(tmp_path, stub, {
        "dan": _notebook(tmp_path / "dan.ipynb", STUB_SOURCE, one_liner),
        "eve": _notebook(tmp_path / "eve.ipynb", STUB_SOURCE, one_liner),
    })
    assert pairs == []
    dan = tmp_path / "out" / "submissions" / "dan" / "fingerprint.json"
    assert json.loads(dan.read_text())["cells"] == []


def test_identical_weights_files_are_flagged_whatever_their_names(tmp_path, stub):
    weights = os.urandom(4096)
    for sub_id, name in (("frank", "convnet.pt"), ("grace", "saved/model.pth"),
                         ("heidi", "convnet.pt")):
        folder = tmp_path / sub_id
        _notebook(folder / "work.ipynb", IM2COL if sub_id == "frank" else STUB_SOURCE)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(weights if sub_id != "heidi" else os.urandom(4096))
    pairs = _pairs(tmp_path, stub, {s: tmp_path / s for s in ("frank", "grace", "heidi")})
    assert [(p.a, p.b, p.weights) for p in pairs] == [
        ("frank", "grace", (("convnet.pt", "saved/model.pth"),))]


def test_a_zip_submission_is_fingerprinted_like_its_folder(tmp_path, stub):
    folder = tmp_path / "ivan"
    _notebook(folder / "work.ipynb", LOOPS)
    archive = shutil.make_archive(str(tmp_path / "ivan"), "zip", folder)
    from_zip = similarity.fingerprint(Path(archive), stub)
    from_folder = similarity.fingerprint(folder, stub)
    assert from_zip["cells"] and from_zip["cells"] == from_folder["cells"]


def test_hostile_notebooks_give_a_fingerprint_not_an_error(tmp_path, stub):
    bad_json = tmp_path / "bad.ipynb"
    bad_json.write_text("{\"cells\": [", encoding="utf-8")
    document = similarity.fingerprint(bad_json, stub)
    assert document["cells"] == [] and "not read" in document["reason"]
    huge = "x = [" + "1, " * 200_000 + "]\n"
    nested = "y = " + "(" * 5000 + "1" + ")" * 5000 + "\n" + "z = " + "-" * 100_000 + "1\n"
    weird = "!pip install evil\n%%time\ndef f(:\n  return 'unterminated\n"
    hostile = _notebook(tmp_path / "hostile.ipynb", huge, nested, weird, LOOPS)
    document = similarity.fingerprint(hostile, stub)
    assert any("cut at" in note for note in document["notes"])
    assert len(json.dumps(document)) < 1_000_000
    assert [c["index"] for c in document["cells"]] == [4]  # LOOPS; the rest is noise or small
    (tmp_path / "empty.ipynb").write_text(json.dumps({"cells": "nope", "nbformat": 4}))
    written = similarity.write_fingerprint(tmp_path / "out", "empty", tmp_path / "empty.ipynb",
                                           stub)
    assert json.loads(written.read_text())["cells"] == []
    missing = similarity.fingerprint(_notebook(tmp_path / "ok.ipynb", LOOPS),
                                     tmp_path / "no-stub.ipynb")
    assert "no stub notebook" in missing["notes"][0] and missing["cells"]


def test_unreadable_or_stale_fingerprints_are_skipped(tmp_path, stub):
    out = tmp_path / "out"
    similarity.write_fingerprint(out, "alice", _notebook(tmp_path / "a.ipynb", LOOPS), stub)
    similarity.write_fingerprint(out, "bob", _notebook(tmp_path / "b.ipynb", RENAMED), stub)
    (out / "submissions" / "mallory").mkdir()
    (out / "submissions" / "mallory" / similarity.FINGERPRINT).write_text("{half a fingerp")
    assert [(p.a, p.b) for p in similarity.similar_pairs(out)] == [("alice", "bob")]
    assert similarity.similar_pairs(out, only={"alice"}) == []
