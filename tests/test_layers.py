"""The rules' layers as units: static review flags, the call record's meaning, structure,
fixtures bound instead of notebook names, and a missing name costing only its cases.

The sandboxed path (records made by a real worker, absent packages) is in test_sandbox.py and
the catalogue; these tests feed the harness-side logic hand-made records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.core.assignments import QuestionRules
from autograder.core.errors import Outcome
from autograder.core.results import QuestionResult, ReviewFlag, SubmissionResult, SubmissionStatus
from autograder.grading import routines, testfiles
from autograder.grading.forbidden import read_graded_code
from autograder.grading.judging import GradedNotebook, judge_question, structure_check
from autograder.grading.submission import CodeCell
from autograder.grading.testfiles import check_bindings, fixture_names, parse_question_tests
from autograder.outputs.writers import (
    feedback_markdown,
    gradebook_csv,
    gradescope_results,
    review_list,
)
from autograder.sandbox import CallRecord, ProtocolError

KNOWN = frozenset({"numpy", "sys", "importlib", "functools", "builtins", "ctypes"})


def _cells(*sources: str) -> list[CodeCell]:
    return [CodeCell(index=i, source=s) for i, s in enumerate(sources)]


def _kinds(*sources: str, name: str = "conv2d") -> list[str]:
    reading = read_graded_code(_cells(*sources), name, known_modules=KNOWN)
    assert reading.findings == (), reading.findings  # hiding is flagged, never zeroed here
    return [flag.kind for flag in reading.flags]


@pytest.mark.parametrize(
    ("sources", "kind"),
    [
        (("import numpy as np", "def conv2d(x, w):\n    return getattr(np, 'con' + 'volve')(x, w)"),
         "computed_attribute"),
        (("import sys", "def conv2d(x, w):\n    return sys.modules['numpy'].convolve(x, w)"),
         "sys_modules"),
        (("import importlib", "def conv2d(x, w):\n    return importlib.import_module('m').f(x)"),
         "dynamic_import"),
        (("import numpy as np", "def conv2d(x, w):\n    return vars(np)['convolve'](x, w)"),
         "namespace_lookup"),
        (("import builtins", "def conv2d(x, w):\n    return builtins.__import__('numpy')"),
         "builtins_lookup"),
        (("import ctypes", "def conv2d(x, w):\n    return ctypes.CDLL('x.so')"), "native_code"),
        (("def conv2d(x, w):\n    return eval('x')",), "dynamic_code"),
        (("import helper", "def conv2d(x, w):\n    return helper.conv(x, w)"), "unknown_module"),
        (("f = lambda: 1", "def conv2d(x, w):\n    return f.__closure__"), "introspection"),
    ],
)
def test_code_that_hides_what_it_calls_is_flagged_with_cell_and_line(sources, kind):
    reading = read_graded_code(_cells(*sources), "conv2d", known_modules=KNOWN)
    flags = [f for f in reading.flags if f.kind == kind]
    assert flags, reading.flags
    assert (flags[0].cell, flags[0].line) == (len(sources), 2)
    assert flags[0].seen.startswith("return")


def test_writing_a_python_file_is_flagged_where_it_happens_when_graded_code_imports():
    write = "open('helper.py', 'w').write('x = 1')"
    assert _kinds(write, "import helper", "def conv2d(x, w):\n    return helper.x") == [
        "writes_module", "unknown_module"]
    assert _kinds(write, "def conv2d(x, w):\n    return x") == []


def test_plain_numpy_code_raises_no_flag():
    assert _kinds(
        "import numpy as np",
        "def conv2d(x, w):\n    out = np.zeros(3)\n    for i in range(3):\n"
        "        out[i] = np.einsum('i,i->', x[i:i + 2], w) + getattr(x, 'ndim')\n    return out",
    ) == []


def test_unfold_as_a_module_is_covered_by_the_allowed_name():
    source = "from torch import nn\nclass MyConv2d:\n    def f(self):\n        return nn.Unfold(3)"
    assert read_graded_code(_cells(source), "MyConv2d", ["unfold"]).findings == ()
    assert read_graded_code(_cells(source), "MyConv2d").findings != ()


@pytest.mark.parametrize(
    ("recorded", "family"),
    [
        ("aten.convolution", routines.CONVOLUTION),
        ("aten.convolution_backward", routines.CONVOLUTION),
        ("aten.max_pool2d_with_indices", routines.POOLING),
        ("aten.im2col", routines.SLIDING_WINDOWS),
        ("numpy.sliding_window_view", routines.SLIDING_WINDOWS),
        ("numpy.correlate2", routines.CONVOLUTION),
        ("torch.nn.modules.conv.Conv2d", routines.CONVOLUTION),
        ("aten.as_strided", None),  # autograd's in-place view writes: not a library routine
        ("aten.addmm", None),
        ("numpy.einsum", None),
    ],
)
def test_recorded_names_sort_into_families(recorded, family):
    assert routines.family_of(recorded) == family


def test_allowed_routines_cover_their_aliases():
    recorded = ["aten.im2col", "aten.col2im", "aten.convolution", "aten.mm"]
    assert routines.forbidden_in(recorded, ["unfold"]) == ["aten.convolution"]
    assert routines.forbidden_in(recorded, []) == ["aten.col2im", "aten.convolution", "aten.im2col"]


def test_a_call_record_from_the_worker_is_validated():
    assert CallRecord.from_wire({}) == CallRecord()
    record = CallRecord.from_wire({"routines": ["aten.mm"], "modules": [], "tampered": []})
    assert record.routines == ("aten.mm",)
    for bad in ({"routines": [1]}, {"other": []}, ["aten.mm"]):
        with pytest.raises(ProtocolError):
            CallRecord.from_wire(bad)


_MODEL_TESTS = """from otter.test_files import test_case
OK_FORMAT = False
name = "Net"
points = 2

@test_case(points=None, hidden=False)
def test_net_a(Net):
    assert Net() == 1

@test_case(points=None, hidden=True)
def test_net_b(Net, Helper):
    assert Net() + Helper() == 3
"""


def _question():
    return parse_question_tests(_MODEL_TESTS, "<Net>")


@pytest.mark.parametrize(
    ("structure", "ran", "modules", "passed", "flagged"),
    [
        ("convolutional", ["aten.convolution", "aten.addmm"], [], True, False),
        ("convolutional", ["aten.im2col", "aten.mm"], [], True, False),  # by hand, via unfold
        ("convolutional", ["aten.addmm"], ["torch.nn.modules.linear.Linear"], False, False),
        ("convolutional", ["aten.addmm"], ["torch.nn.modules.conv.Conv2d"], True, True),
        ("fully_connected", ["aten.addmm"], ["torch.nn.modules.linear.Linear"], True, False),
        ("fully_connected", ["aten.convolution"], [], False, False),
        ("fully_connected", ["aten.addmm"], ["torch.nn.modules.pooling.MaxPool2d"], True, True),
    ],
)
def test_structure_is_decided_from_what_ran(structure, ran, modules, passed, flagged):
    records = [CallRecord(routines=tuple(ran), modules=tuple(modules))]
    check, flags = structure_check(_question(), QuestionRules(structure=structure), records)
    assert (check.outcome is Outcome.PASSED) == passed, check.message
    assert bool(flags) == flagged


def test_a_missing_fixture_or_ungraded_name_is_an_instructor_error():
    question = _question()
    with pytest.raises(testfiles.TestFileError, match="Helper"):
        check_bindings([question], lambda q: (q,), frozenset(), "<tests>")
    check_bindings([question], lambda q: (q,), frozenset({"Helper"}), "<tests>")
    with pytest.raises(testfiles.TestFileError, match="both graded and a fixture"):
        check_bindings([question], lambda q: (q, "Helper"), frozenset({"Helper"}), "<tests>")


def test_fixture_names_are_the_public_top_level_definitions(tmp_path):
    path = tmp_path / "fixtures.py"
    path.write_text("import torch\nclass Toy:\n    pass\ndef make():\n    pass\ndef _private():\n"
                    "    pass\nVALUE = 1\n")
    assert fixture_names(path) == {"Toy", "make"}


def test_a_missing_name_costs_only_the_cases_that_use_it():
    """The fixture Helper is the grader's; the notebook's own Helper is never used."""
    question = _question()
    environment = {"Net": lambda: 1, "Helper": lambda: 2}
    notebook = GradedNotebook([], environment, lambda name: name == "Net")
    result = judge_question(question, QuestionRules(graded_names=("Net",)), notebook)
    assert [c.outcome for c in result.cases] == [Outcome.PASSED, Outcome.PASSED]
    graded_pair = QuestionRules(graded_names=("Net", "Helper"))
    result = judge_question(question, graded_pair, notebook)
    assert [c.outcome for c in result.cases] == [Outcome.PASSED, Outcome.SKIPPED]
    assert result.score == 1.0 and "`Helper`" in result.cases[1].message


def _flagged_result() -> SubmissionResult:
    flag = ReviewFlag("conv2d", "computed_attribute", "имя вычисляется", 5, 3, "getattr(np, n)")
    question = QuestionResult("conv2d", 3.0, 3.0, (), (), (flag,))
    return SubmissionResult("alice", SubmissionStatus.GRADED, "", (question,), {})


def test_review_flags_reach_the_gradebook_results_and_feedback():
    result = _flagged_result()
    row = gradebook_csv([result], ["conv2d"]).splitlines()[1]
    assert "needs review: conv2d (computed_attribute at cell 5, line 3)" in row
    data = json.loads(gradescope_results(result))
    assert data["extra_data"]["needs_review"][0]["cell"] == 5
    assert any(t["name"] == "conv2d: needs review" for t in data["tests"])
    feedback = feedback_markdown(result)
    assert "Нужна проверка преподавателем" in feedback and "ячейка 5, строка 3" in feedback
    listing = review_list([result])
    assert listing.splitlines() == [
        "needs review (1 flag(s); scores stand until a person decides):",
        "  alice: conv2d: computed_attribute at cell 5, line 3: `getattr(np, n)` (имя вычисляется)",
    ]
    assert review_list([]) == ""


def test_fixtures_files_define_what_the_public_tests_take():
    root = Path(__file__).resolve().parent.parent / "solutions"
    assert {"PartlyFrozenNet", "set_parameters"} <= fixture_names(
        root / "02_pytorch_modules" / "fixtures.py")
    assert {"ToyLinear", "ToyLoader", "ToySGD", "ToyCrossEntropy"} <= (
        fixture_names(root / "03_convnet_cifar10" / "fixtures.py"))
