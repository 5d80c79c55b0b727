"""Small units: config validation, submission loading, ids, writers' escaping, library check."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.batch import resume
from autograder.core.assignments import ConfigError, parse_config
from autograder.core.errors import Outcome
from autograder.core.results import CaseResult, QuestionResult, SubmissionResult, SubmissionStatus
from autograder.grading.forbidden import find_library_routines, read_graded_code
from autograder.grading.submission import CodeCell, SubmissionError, gradable_cells, load_submission
from autograder.outputs.writers import feedback_markdown, gradebook_csv, gradescope_results


def test_config_rejects_unknown_keys_by_name():
    with pytest.raises(ConfigError, match="cell_timeout"):
        parse_config("x", {"limits": {"cell_timeout": 5}}, "x.toml")
    with pytest.raises(ConfigError, match="no_library"):
        parse_config("x", {"questions": {"q": {"no_library": True}}}, "x.toml")


def test_config_checks_thresholds_and_comparison_references():
    entry = {"question": "a", "model": "M", "weights": "m.pt", "points": 1}
    high, low = {"cifar10": 0.5, "synthetic": 0.9}, {"cifar10": 0.3, "synthetic": 0.6}
    with pytest.raises(ConfigError, match="zero_at < full_at on cifar10"):
        parse_config("x", {"accuracy": [{**entry, "full_at": low, "zero_at": high}]}, "x.toml")
    with pytest.raises(ConfigError, match="exactly the keys cifar10, synthetic"):
        parse_config("x", {"accuracy": [{**entry, "full_at": 0.5, "zero_at": low}]}, "x.toml")
    margin = {"cifar10": 0.1, "synthetic": 0.2}
    comparison = {"question": "c", "better": "a", "worse": "missing", "margin": margin,
                  "points": 1}
    with pytest.raises(ConfigError, match="missing"):
        parse_config(
            "x",
            {"accuracy": [{**entry, "full_at": high, "zero_at": low}], "comparison": [comparison]},
            "x.toml",
        )


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def test_zip_submission_is_unpacked_with_its_files(tmp_path):
    nb = nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]))
    archive = _zip(tmp_path / "alice.zip", {"work/hw.ipynb": nb, "work/convnet.pt": "weights"})
    submission = load_submission(archive, tmp_path / "staging")
    assert submission.submission_id == "alice"
    assert submission.artifact("convnet.pt") is not None
    assert [c.source for c in gradable_cells(submission.notebook)] == ["x = 1"]


def test_zip_with_two_notebooks_is_refused_with_both_names(tmp_path):
    nb = nbformat.writes(nbformat.v4.new_notebook())
    archive = _zip(tmp_path / "bob.zip", {"a.ipynb": nb, "b.ipynb": nb})
    with pytest.raises(SubmissionError, match="a.ipynb.*b.ipynb"):
        load_submission(archive, tmp_path / "staging")


def test_gradable_cells_skip_ignored_and_check_cells():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("train()", metadata={"tags": ["otter_ignore"]}),
            nbformat.v4.new_code_cell('grader.check("q1")'),
            nbformat.v4.new_code_cell('grader.check("q1")\nx = 2'),
            nbformat.v4.new_markdown_cell("text"),
        ]
    )
    assert [c.index for c in gradable_cells(nb)] == [2]


def _result(message: str) -> SubmissionResult:
    case = CaseResult("q", "test_q", True, 1.0, 0.0, Outcome.FAILED, message)
    question = QuestionResult("q", 1.0, 0.0, (case,))
    return SubmissionResult('evil,"id"', SubmissionStatus.GRADED, message, (question,))


def test_gradebook_keeps_one_row_per_submission_whatever_the_message():
    text = gradebook_csv([_result('line one\nline, two "quoted"')], ["q"])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["submission", "score", "max_score", "q", "status", "message"]
    assert len(rows) == 2 and rows[1][0] == 'evil,"id"' and "\n" not in rows[1][-1]


def test_feedback_cannot_be_broken_out_of_its_code_block():
    text = feedback_markdown(_result("```\n# I am a heading now"))
    assert "```\n# I am a heading now" not in text
    assert text.count("```") % 2 == 0


def test_gradescope_results_are_valid_json_with_hidden_marked():
    document = json.loads(gradescope_results(_result("x")))
    assert document["tests"][0]["visibility"] == "hidden"


def _cells(*sources: str) -> list[CodeCell]:
    return [CodeCell(index=i, source=s) for i, s in enumerate(sources)]


@pytest.mark.parametrize(
    "sources",
    [
        ("import torch.nn.functional as Q", "def conv2d(x, w):\n    return Q.conv2d(x, w)"),
        ("from scipy.signal import correlate2d as c", "def conv2d(x, w):\n    return c(x, w)"),
        (
            "def helper(x):\n    import numpy as np\n"
            "    return np.lib.stride_tricks.sliding_window_view(x, 3)",
            "def conv2d(x, w):\n    return helper(x)",
        ),
        ("def conv2d(x, w):\n    return x.unfold(2, 3, 1)",),
        ("import numpy as np", "def conv2d(x, w):\n    return getattr(np, 'convolve')(x, w)"),
    ],
)
def test_library_check_finds_aliases_helpers_and_constant_getattr(sources):
    assert find_library_routines(_cells(*sources), "conv2d")


def test_library_check_accepts_loops_and_allowed_routines():
    loops = (
        "import numpy as np\ndef conv2d(x, w):\n    out = np.zeros(3)\n    for i in range(3):\n"
        "        out[i] = np.sum(x[i:i + 2] * w)\n    return out"
    )
    assert find_library_routines(_cells(loops), "conv2d") == []
    unfold = (
        "import torch.nn.functional as F\nclass MyConv2d:\n"
        "    def forward(self, x):\n        return F.unfold(x, 3)"
    )
    assert find_library_routines(_cells(unfold), "MyConv2d", ["unfold"]) == []
    assert find_library_routines(_cells(unfold), "MyConv2d")


def test_a_name_with_no_definition_in_the_cells_needs_review_not_zero():
    reading = read_graded_code(_cells("exec('def conv2d(x, w): return x')"), "conv2d")
    assert reading.findings == ()
    assert [f.kind for f in reading.flags] == ["not_defined_by_hand"]


# ----------------------------------------------------------------------------- in-flight markers


def _orphan(sub: str, pid: int = 1, key: str = "k", level: str = "process",
            suspect: bool = False) -> resume.Orphan:
    return resume.Orphan(sub, pid, key, level, suspect)


def test_a_process_level_submission_alone_in_flight_when_the_grader_died_killed_it():
    keys = {"a": "k", "b": "k", "c": "k"}
    assert resume.judge_orphans([_orphan("a")], keys) == ({"a"}, set())
    # two in flight: either could have done it, so both are graded again, alone, first
    assert resume.judge_orphans([_orphan("a"), _orphan("b")], keys) == (set(), {"a", "b"})
    # graded alone as a suspect and the grader died again: it did
    assert resume.judge_orphans([_orphan("c", pid=2, suspect=True)], keys) == ({"c"}, set())


def test_a_grader_death_blames_no_submission_where_student_code_cannot_reach_it():
    keys = {"a": "k", "b": "new upload"}
    assert resume.judge_orphans([_orphan("a", level="bwrap"), _orphan("c", level="uid")],
                                keys) == (set(), set())
    assert resume.judge_orphans([_orphan("b")], keys) == (set(), set())  # changed since


def test_markers_of_a_live_grader_stay_and_an_interrupted_graders_are_cleared(tmp_path):
    live = resume.InFlight(tmp_path, {"mine": "k1"}, "process")
    live.begin("mine")
    dead = tmp_path / resume.STATE_DIR / resume.IN_FLIGHT / "gone.json"
    dead.write_text(json.dumps({"pid": 2**22 + 1, "started": "1", "key": "k2",
                                "level": "process", "suspect": False}))
    (orphan,) = resume.take_orphans(tmp_path)
    assert orphan == resume.Orphan("gone", 2**22 + 1, "k2", "process", False)
    assert not dead.exists()
    assert resume.take_orphans(tmp_path) == []  # ours: this process is alive
    resume.clear_markers(tmp_path, os.getpid())
    assert not list((tmp_path / resume.STATE_DIR / resume.IN_FLIGHT).iterdir())
    live.begin("mine")
    live.end("mine")
    assert not list((tmp_path / resume.STATE_DIR / resume.IN_FLIGHT).iterdir())


def test_unsafe_torch_releases_are_refused_for_saved_models():
    from autograder.grading.evaluation import unsafe_torch

    assert "CVE-2025-32434" in unsafe_torch("2.9.1+cpu")
    assert unsafe_torch("2.10.0") is None and unsafe_torch("2.14.1+cu130") is None
    assert unsafe_torch("3.0.0") is None
