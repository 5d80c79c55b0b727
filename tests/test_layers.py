"""The rules' layers as units: static review flags, the call record's meaning, structure,
fixtures bound instead of notebook names, and a missing name costing only its cases.

The sandboxed path (records made by a real worker, absent packages) is in test_sandbox.py and
the catalogue; these tests feed the harness-side logic hand-made records.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from autograder.core.assignments import QuestionRules
from autograder.core.errors import Outcome
from autograder.core.results import QuestionResult, ReviewFlag, SubmissionResult, SubmissionStatus
from autograder.grading import routines, testfiles
from autograder.grading.forbidden import read_graded_code
from autograder.grading.judging import (
    GRADER_CHECK_NAME,
    GradedNotebook,
    judge_question,
    structure_check,
)
from autograder.grading.submission import CodeCell, gradable_cells
from autograder.grading.tampering import read_notebook
from autograder.grading.testfiles import check_bindings, fixture_names, parse_question_tests
from autograder.outputs.writers import (
    feedback_markdown,
    gradebook_csv,
    gradescope_results,
    review_list,
)
from autograder.sandbox import (
    CallRecord,
    CellStatus,
    ProtocolError,
    WorkerLimits,
    WorkerSession,
    WorkerSpec,
    choose_isolation,
)

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
    return SubmissionResult("alice", SubmissionStatus.GRADED, "", (question,))


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


# ----------------------------------------------------------------------------- every cell

_KNOWN_HERE = KNOWN | {"torch", "gc", "inspect", "types", "threading", "os", "operator",
                       "matplotlib", "copy"}


def _evidence(*sources: str) -> list[tuple[str, bool, int, int]]:
    reading = read_notebook(_cells(*sources), _KNOWN_HERE)
    return [(e.kind, e.decisive, e.cell, e.line) for e in reading.evidence]


@pytest.mark.parametrize(
    ("source", "kind", "decisive"),
    [
        # the grader's own modules, named (class: reach the grader)
        ("import sys\ntr = sys.modules['autograder.sandbox.tracing']", "grader_reach", True),
        ("import autograder.sandbox.tracing as t", "grader_reach", True),
        ("from autograder.sandbox import tracing", "grader_reach", True),
        ("import importlib\nimportlib.import_module('autograder_probes')", "grader_reach", True),
        # what the recorder rests on (class: patch the recorder or the dispatch machinery)
        ("from torch.utils._python_dispatch import _pop_mode_temporarily", "recorder_patch",
         True),
        ("import torch\nwith torch._C._DisableTorchDispatch():\n    pass", "recorder_patch",
         True),
        ("import torch.utils\nm = torch.utils._python_dispatch", "recorder_patch", True),
        ("import sys\nsys.addaudithook(lambda e, a: None)", "recorder_patch", True),
        ("import torch\ntorch.nn.modules.module._global_forward_pre_hooks.clear()",
         "recorder_patch", True),
        ("x = getattr(m, '_disable_current_modes')", "recorder_patch", True),
        # the garbage collector and frames (class: walk to any object)
        ("import gc\nobs = gc.get_objects()", "walks_objects", False),
        ("import gc\nrefs = gc.get_referrers(print)", "walks_objects", False),
        ("from gc import get_objects as everything", "walks_objects", False),
        ("import sys\nf = sys._getframe(1).f_back", "walks_frames", False),
        ("import inspect\nf = inspect.currentframe()", "walks_frames", False),
        ("try:\n    1 / 0\nexcept Exception as e:\n    f = e.__traceback__", "walks_frames",
         False),
        ("def g():\n    yield 1\nf = g().gi_frame.f_globals", "walks_frames", False),
        ("def g():\n    yield 1\nf = getattr(g(), 'gi_' + 'frame')", "computed_attribute",
         False),
        ("import sys\nsys.settrace(print)", "walks_frames", False),
        ("import threading\nthreading.settrace(print)", "walks_frames", False),
        ("import sys\nf = getattr(sys, '_getframe')", "walks_frames", False),
        # interpreter internals that lead anywhere
        ("subs = ().__class__.__base__.__subclasses__()", "internals", False),
        ("def f():\n    pass\nb = f.__globals__['__builtins__']", "internals", False),
        ("r = print.__self__", "internals", False),
        ("r = (1).__reduce_ex__(2)", "internals", False),
        # a module object used as a value (class: aliases)
        ("import sys\nm = sys\nx = m.modules", "module_object", False),
        ("import gc\ndef walk(module):\n    return module\nwalk(gc)", "module_object", False),
        ("import os\nx = os.sys", "module_object", False),
        # code that swaps code (class: method / __code__ swaps, rebinding tricks)
        ("import types\nbound = types.MethodType(print, 1)", "code_swap", False),
        ("class A:\n    pass\nA.forward = print", "code_swap", False),
        ("obj = object()\nobj.__class__ = int", "code_swap", False),
        # code that hides what it calls
        ("exec('x = 1')", "dynamic_code", False),
        ("name = input()\nv = getattr(object, name)", "computed_attribute", False),
        ("g = globals()", "namespace_lookup", False),
        ("import ctypes", "native_code", False),
    ],
)
def test_every_cell_is_read_for_code_that_reaches_the_grader(source, kind, decisive):
    seen = _evidence("import numpy as np", source)
    assert (kind, decisive) in [(k, d) for k, d, _, _ in seen], seen
    assert all(cell == 2 for _, _, cell, _ in seen), seen


def test_a_cell_with_a_magic_line_is_read_as_the_worker_runs_it():
    seen = _evidence("%time\nimport sys\nsys.modules['autograder.sandbox.tracing'].x = 1")
    assert ("grader_reach", True, 1, 3) in seen


_HONEST_CELLS = (
    "import sys, gc, copy, os\nimport torch\nimport torch.nn.functional as F\n"
    "from torch import nn\nimport matplotlib.pyplot as plt\nsys.path.append('..')\n"
    "IN_COLAB = 'google.colab' in sys.modules\ntorch.backends.cudnn.benchmark = True\n"
    "plt.rcParams['figure.figsize'] = (8, 6)\nos.environ['OMP_NUM_THREADS'] = '2'\n"
    "print(sys.version, torch.__version__)",
    "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.act = F.relu\n        self.fc = nn.Linear(4, 2)\n"
    "        for i in range(2):\n            setattr(self, f'layer{i}', nn.Linear(4, 4))\n"
    "    def forward(self, x):\n        print(x.__class__.__name__, type(self).__name__)\n"
    "        return self.act(self.fc(getattr(self, 'layer' + str(0))(x)))",
    "model = Net()\nfor p in model.parameters():\n    p.requires_grad = False\n"
    "model.fc = nn.Linear(4, 3)\nbest = copy.deepcopy(model)\ngc.collect()\n"
    "print(hasattr(model, 'fc'), model.__class__.__name__, Net.__mro__[0].__name__)\n"
    "def build():\n    net = Net()\n    net.act = F.gelu\n    return net\n"
    "with torch.no_grad():\n    out = F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2))",
)


def test_honest_code_in_every_cell_raises_nothing():
    assert _evidence(*_HONEST_CELLS) == []


def honest_notebooks() -> dict[str, nbformat.NotebookNode]:
    """Every honest notebook we have: each assignment's reference and stub, its mutants, the
    student-style submissions and the legitimate answers of the catalogue, and the committed
    03 examples (whose cheats, if any, are in the weights, not the code)."""
    import tempfile

    from catalogue.layers import COSTS_ONLY_ITSELF, LEGITIMATE, STRUCTURAL
    from catalogue.scenarios import Context
    from catalogue.students import STUDENT_SCENARIOS
    from local_run import built

    from autograder.authoring.mutants import apply_mutant, load_mutants

    notebooks = {}
    for name in ("01_convolution_pooling", "02_pytorch_modules", "03_convnet_cifar10"):
        notebooks[f"{name}/reference"] = built(name).reference_notebook
        notebooks[f"{name}/stub"] = built(name).student_notebook
        for mutant in load_mutants(name):
            notebooks[f"{name}/{mutant.id}"] = apply_mutant(built(name).reference_notebook,
                                                           mutant)
    examples = Path(__file__).resolve().parent.parent / "examples" / "submissions"
    for path in sorted(examples.glob("*/*/*.ipynb")):
        notebooks[str(path.relative_to(examples))] = nbformat.read(path, 4)
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in STUDENT_SCENARIOS + LEGITIMATE + STRUCTURAL + COSTS_ONLY_ITSELF:
            a = scenario.assignment
            ctx = Context(built(a).reference_notebook, built(a).student_notebook, Path(tmp),
                          Path(tmp), Path(tmp), a)
            folder = Path(tmp) / scenario.id
            folder.mkdir()
            path = scenario.build(ctx, folder)
            notebooks[scenario.id] = nbformat.read(
                path if path.is_file() else next(path.glob("*.ipynb")), 4)
    return notebooks


def test_no_honest_notebook_we_have_raises_anything():
    """References, stubs, mutants, the student-style and legitimate catalogue answers: the
    whole-notebook reading sees nothing in any of them (no new flag on honest work)."""
    notebooks = honest_notebooks()
    assert len(notebooks) >= 120
    seen = {name: read_notebook(gradable_cells(nb)).evidence for name, nb in notebooks.items()}
    assert {name: e for name, e in seen.items() if e} == {}


# ----------------------------------------------------------------------------- swaps read


_MY_CONV = (
    "import torch\nimport torch.nn.functional as F\nfrom torch import nn",
    "class MyConv2d(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.weight = nn.Parameter(torch.ones(1, 1, 3, 3))\n"
    "    def forward(self, x):\n        raise NotImplementedError",
)


@pytest.mark.parametrize(
    "swap",
    [
        "MyConv2d.forward = lambda self, x: F.conv2d(x, self.weight)",
        "def fwd(self, x):\n    return F.conv2d(x, self.weight)\nsetattr(MyConv2d, 'forward', fwd)",
        "def fwd(self, x):\n    return F.conv2d(x, self.weight)\n"
        "type.__setattr__(MyConv2d, 'forward', fwd)",
        "C = MyConv2d\nC.forward = lambda self, x: F.conv2d(x, self.weight)",
        "def patch(cls):\n    cls.forward = lambda self, x: F.conv2d(x, self.weight)\n"
        "patch(MyConv2d)",
        "def fwd(self, x):\n    return F.conv2d(x, self.weight)\n"
        "for MyConv2d.forward in [fwd]:\n    pass",
        "torch.Tensor.__matmul__ = lambda a, b: F.conv2d(a, b)",
        "def patch(m):\n    type(m).forward = lambda self, x: F.conv2d(x, self.weight)",
        "def f(self, x):\n    return x\nf.__code__ = (lambda self, x: F.conv2d(x, x)).__code__\n"
        "MyConv2d.forward = f",
    ],
)
def test_code_swapped_into_a_graded_object_is_read_with_it(swap):
    cells = _cells(*_MY_CONV, swap)
    before = read_graded_code(_cells(*_MY_CONV), "MyConv2d", ["unfold"], _KNOWN_HERE)
    after = read_graded_code(cells, "MyConv2d", ["unfold"], _KNOWN_HERE)
    assert before.findings == ()
    assert [f.routine for f in after.findings] == ["torch.nn.functional.conv2d"]
    assert after.findings[0].cell_index == 2
    assert "code_swap" in [k for k, _, _, _ in _evidence(*_MY_CONV, swap)]


def test_a_swapped_code_object_is_read_where_it_came_from():
    cells = ("import numpy as np", "def conv2d(x, w):\n    return x",
             "def _fast(x, w):\n    return np.lib.stride_tricks.sliding_window_view(x, 2)\n"
             "conv2d.__code__ = _fast.__code__")
    reading = read_graded_code(_cells(*cells), "conv2d", known_modules=_KNOWN_HERE)
    assert [f.routine for f in reading.findings] == ["numpy.lib.stride_tricks.sliding_window_view"]
    flags = read_notebook(_cells(*cells), _KNOWN_HERE).flags_for(reading.reached)
    assert [(f.kind, f.target, f.cell, f.line) for f in flags][0] == ("code_swap", "conv2d", 3, 3)


def test_a_write_into_an_object_the_graded_code_never_reads_concerns_no_question():
    cells = ("import numpy as np", "def conv2d(x, w):\n    return x",
             "class Plot:\n    pass\nPlot.show = print")
    reading = read_graded_code(_cells(*cells), "conv2d", known_modules=_KNOWN_HERE)
    notebook = read_notebook(_cells(*cells), _KNOWN_HERE)
    assert [e.kind for e in notebook.evidence] == ["code_swap"]
    assert notebook.flags_for(reading.reached) == ()


# ----------------------------------------------------------------------------- judged


_NET_TESTS = _MODEL_TESTS.replace("def test_net_b(Net, Helper):\n    assert Net() + Helper() == 3",
                                  "def test_net_b(Net):\n    assert Net() + 2 == 3")


def _judged(rules: QuestionRules, *sources: str, reported: str | None = None):
    question = parse_question_tests(_NET_TESTS, "<Net>")
    notebook = GradedNotebook(_cells("def Net():\n    return 1", *sources), {"Net": lambda: 1},
                              lambda name: name == "Net",
                              None if reported is None else (lambda name: reported))
    return judge_question(question, rules, notebook)


@pytest.mark.parametrize("rules", [QuestionRules(no_library_routines=True),
                                   QuestionRules(structure="convolutional")])
def test_a_reach_of_the_grader_zeroes_a_question_the_record_serves(rules):
    result = _judged(rules, "import sys\nsys.modules['autograder.sandbox.tracing'].x = 1")
    check = next(c for c in result.cases if c.name == GRADER_CHECK_NAME)
    assert result.score == 0 and check.outcome is Outcome.FAILED
    assert "ячейка 2, строка 2" in check.message and "sys.modules[" in check.message
    assert "Вопрос оценён в 0" not in check.message  # the sentence is the writers' own


def test_a_reach_of_the_grader_changes_nothing_where_data_decides():
    result = _judged(QuestionRules(), "import sys\nsys.modules['autograder'].x = 1")
    assert result.score == 2 and result.review == ()


def test_what_a_student_might_do_innocently_is_flagged_and_changes_no_score():
    result = _judged(QuestionRules(no_library_routines=True),
                     "import gc\nfound = gc.get_objects()", "Net.__code__ = print.__code__")
    assert result.score == 2
    assert [(f.kind, f.cell, f.line) for f in result.review] == [
        ("walks_objects", 2, 2), ("code_swap", 3, 1)]
    assert all(f.question == "Net" and f.seen for f in result.review)


def test_a_function_reported_with_code_no_cell_defines_for_it_is_flagged():
    swapped = "def _fast():\n    return 1\n"
    result = _judged(QuestionRules(no_library_routines=True), reported=swapped)
    assert [(f.kind, f.seen) for f in result.review] == [("code_swap", "def _fast():")]
    same = _judged(QuestionRules(no_library_routines=True),
                   reported="def Net():\n    return 1\n    # END SOLUTION\n")
    assert same.review == ()


# ----------------------------------------------------------------------------- in the worker


def _worker(tmp_path: Path) -> WorkerSession:
    (tmp_path / "scratch").mkdir()
    spec = WorkerSpec(scratch_dir=tmp_path / "scratch", probes_file=None,
                      level=choose_isolation("auto").level, limits=WorkerLimits(), slot=7,
                      watch=frozenset({"numpy"}), packages=("numpy",))
    return WorkerSession(spec)


def _ok(session: WorkerSession, index: int, source: str) -> None:
    cell = session.run_cell(index, source, 30)
    assert cell.status is CellStatus.OK, cell


def test_the_worker_hides_its_modules_and_notes_code_swapped_after_its_cell(tmp_path):
    import numpy as np

    with _worker(tmp_path) as s:
        _ok(s, 0, "import sys, numpy as np\n"
                  "HIDDEN = [m for m in sys.modules if m.startswith('autograder')]\n"
                  "def conv2d(x):\n    return x * 2\n"
                  "def _fast(x):\n    return np.lib.stride_tricks.sliding_window_view(x, 2)\n"
                  "class Net:\n    def forward(self, x):\n        return x\n")
        assert s.get("HIDDEN", 10) == []
        s.call("conv2d", [np.arange(3.0)], {}, 10)
        assert s.last_record.tampered == ()
        _ok(s, 1, "def conv2d(x):\n    return x * 3\n")  # redefined in a cell: honest
        s.call("conv2d", [np.arange(3.0)], {}, 10)
        assert s.last_record.tampered == ()
        _ok(s, 2, "conv2d.__code__ = _fast.__code__\nNet.forward = lambda self, x: x\n")
        s.call("conv2d", [np.arange(3.0)], {}, 10)
        assert set(s.last_record.tampered) == {
            "conv2d.__code__ was replaced after cell 2 ran",
            "Net.forward was replaced after cell 1 ran"}
        assert "numpy.sliding_window_view" in s.last_record.routines


def test_the_worker_notes_its_recorder_switched_off_during_a_call(tmp_path):
    with _worker(tmp_path) as s:
        _ok(s, 0, "import gc\ndef off():\n"
                  "    for o in gc.get_objects():\n"
                  "        if type(o).__name__ == 'Recorder':\n"
                  "            o.active = False\n")
        s.call("off", [], {}, 30)
        assert "the recorder was switched off during the call" in s.last_record.tampered


def test_a_cell_the_parser_gives_up_on_is_flagged_not_skipped():
    deep = "x = 1" + " + 1" * 200_000  # RecursionError while the tree is built
    seen = _evidence("import numpy as np", deep)
    assert ("unreadable_cell", False, 2, 0) in seen


@pytest.mark.parametrize(
    "elsewhere",
    [
        "globals().update(conv2d=_fast)",
        "globals()['conv2d'] = _fast",
        "OPS.update(run=_fast)",
        "OPS['run'] = np.correlate",
        "OPS.setdefault('run', np.correlate)",
    ],
)
def test_what_reaches_graded_code_through_a_namespace_or_a_container_is_read(elsewhere):
    cells = ("import numpy as np\nOPS = {}",
             "def conv2d(x, w):\n    return OPS.get('run', lambda a, b: a)(x, w)",
             "def _fast(x, w):\n    return np.correlate(x, w)", elsewhere)
    reading = read_graded_code(_cells(*cells), "conv2d", known_modules=_KNOWN_HERE)
    assert [f.routine for f in reading.findings] == ["numpy.correlate"], reading
