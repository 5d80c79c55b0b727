"""The catalogue of bad and hostile submissions, graded through the real CLI in the suite.

Each scenario builds one submission (from the reference solution, the student stub, or
nothing) and states what grading must do with it: the exact scores it must keep or the
questions where it must not beat the stub, the status, and what its feedback must say.
The canary folder stands outside every sandbox: hostile code tries to change it.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ALL = "__all__"


@dataclass(frozen=True)
class Context:
    """What a scenario's builder may use (the reference and stub of its own assignment)."""

    reference: nbformat.NotebookNode
    stub: nbformat.NotebookNode
    canary_dir: Path
    out_dir: Path
    project_root: Path
    assignment: str = "01_convolution_pooling"
    port: int = 0  # a TCP listener on 127.0.0.1 that witnesses connections (0: none)
    victims: tuple[int, ...] = ()  # processes outside the sandbox that must outlive the batch
    udp_port: int = 0  # a UDP socket on 127.0.0.1 that witnesses datagrams (0: none)
    unix_socket: str = ""  # a named Unix socket outside the sandbox, world-writable
    shm_key: int = 0  # a SysV shared-memory segment (mode 0666) holding a secret

    def copy_of(self, base: str) -> nbformat.NotebookNode:
        """A fresh copy of the "reference" or the "stub" notebook."""
        return copy.deepcopy(self.reference if base == "reference" else self.stub)

    def fill(self, source: str) -> str:
        """Cell source with {canary}, {out}, {root}, {port}, {victims}, {udp_port},
        {unix_socket} and {shm_key} replaced by this run's paths, listeners and processes."""
        return source.format(canary=self.canary_dir, out=self.out_dir, root=self.project_root,
                             port=self.port, victims=list(self.victims),
                             udp_port=self.udp_port, unix_socket=self.unix_socket,
                             shm_key=self.shm_key)


@dataclass(frozen=True)
class Scenario:
    """One bad or hostile submission and what grading must make of it."""

    id: str
    what: str
    build: Callable[[Context, Path], Path]
    full_marks: tuple[str, ...] = ()  # questions that must keep full marks (ALL: every one)
    no_better_than_stub: tuple[str, ...] = ()  # targets of a cheat: must score 0 there
    status: str = "graded"
    feedback: tuple[str, ...] = ()  # substrings feedback.md must contain ("a|b": either)
    feedback_absent: tuple[str, ...] = ()  # substrings it must not contain
    extra: dict = field(default_factory=dict)
    assignment: str = "01_convolution_pooling"
    # Questions that must lose points but not necessarily all (a real bug, partial credit);
    # with `lost` set, every other question must keep full marks.
    lost: tuple[str, ...] = ()
    flagged: tuple[str, ...] = ()  # questions that must carry a "needs review" flag
    caught: tuple[str, ...] = ()  # bypass targets: 0 there, and a finding or a flag says why
    partial: tuple[str, ...] = ()  # questions that must keep some points but not all


def _write(nb: nbformat.NotebookNode, folder: Path, name: str) -> Path:
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def _first_code_index(nb: nbformat.NotebookNode) -> int:
    """Index after the first code cell that imports numpy (keep the imports before us)."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "import numpy" in cell.source:
            return i + 1
    return 1


def with_cell(base: str, source: str, where: str = "start") -> Callable[[Context, Path], Path]:
    """A builder: the base notebook with one extra code cell."""

    def build(ctx: Context, folder: Path) -> Path:
        nb = ctx.copy_of(base)
        cell = nbformat.v4.new_code_cell(ctx.fill(source))
        if where == "end":
            nb.cells.append(cell)
        else:
            nb.cells.insert(_first_code_index(nb), cell)
        return _write(nb, folder, folder.name)

    return build


def _defines(source: str, name: str) -> bool:
    pattern = rf"^(def|class) {re.escape(name)}\b|^{re.escape(name)}\s*="
    return re.search(pattern, source, re.MULTILINE) is not None


def replacing_definition(base: str, name: str, source: str,
                         files: dict[str, str] | None = None) -> Callable[[Context, Path], Path]:
    """A builder: the base notebook with the cell defining ``name`` replaced by ``source``.

    With ``files``, the submission is a folder holding the notebook and those files.
    """

    def build(ctx: Context, folder: Path) -> Path:
        nb = ctx.copy_of(base)
        hits = [c for c in nb.cells if c.cell_type == "code" and _defines(c.source, name)]
        assert hits, f"no cell defines {name}"
        hits[0].source = ctx.fill(source)
        if files is None:
            return _write(nb, folder, folder.name)
        folder.mkdir(parents=True, exist_ok=True)
        for file_name, text in files.items():
            (folder / file_name).write_text(text, encoding="utf-8")
        _write(nb, folder, "notebook")
        return folder

    return build


def replacing_definitions(base: str, sources: dict[str, str]) -> Callable[[Context, Path], Path]:
    """A builder: several definitions replaced at once (a whole student's work)."""

    def build(ctx: Context, folder: Path) -> Path:
        nb = ctx.copy_of(base)
        for name, source in sources.items():
            hits = [c for c in nb.cells if c.cell_type == "code" and _defines(c.source, name)]
            assert hits, f"no cell defines {name}"
            hits[0].source = ctx.fill(source)
        return _write(nb, folder, folder.name)

    return build


def without_cell(base: str, marker: str) -> Callable[[Context, Path], Path]:
    """A builder: the base notebook without the one code cell whose source contains ``marker``."""

    def build(ctx: Context, folder: Path) -> Path:
        nb = ctx.copy_of(base)
        hits = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and marker in c.source]
        assert len(hits) == 1, f"{marker!r} is in {len(hits)} code cells"
        del nb.cells[hits[0]]
        return _write(nb, folder, folder.name)

    return build


def raw_bytes(content: bytes) -> Callable[[Context, Path], Path]:
    """A builder: a .ipynb file holding exactly ``content``."""

    def build(ctx: Context, folder: Path) -> Path:
        path = folder / f"{folder.name}.ipynb"
        path.write_bytes(content)
        return path

    return build


def _empty_notebook(ctx: Context, folder: Path) -> Path:
    return _write(nbformat.v4.new_notebook(), folder, folder.name)


def _nbformat3(ctx: Context, folder: Path) -> Path:
    old = nbformat.convert(copy.deepcopy(ctx.reference), 3)
    path = folder / f"{folder.name}.ipynb"
    path.write_text(nbformat.writes(old, version=3), encoding="utf-8")
    return path


def _zip_traversal(ctx: Context, folder: Path) -> Path:
    path = folder.parent / f"{folder.name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("work/notebook.ipynb", nbformat.writes(ctx.reference))
        zf.writestr("../../escaped.txt", "I escaped the staging folder")
    return path


def _zip_ok(ctx: Context, folder: Path) -> Path:
    path = folder.parent / f"{folder.name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("my_work/01_convolution_pooling.ipynb", nbformat.writes(ctx.reference))
        zf.writestr("my_work/notes.txt", "extra file saved by the notebook")
    return path


class _Exploit:
    """A pickle whose loading writes a file: what a malicious weights file does."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (exec, (f"open({self.target!r}, 'w').write('pwned')",))


def _malicious_weights(ctx: Context, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    pickle.dump(_Exploit(str(ctx.canary_dir / "pickle_pwned.txt")), buffer)
    (folder / "weights.pt").write_bytes(buffer.getvalue())
    nb = copy.deepcopy(ctx.reference)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import pickle\nwith open('weights.pt', 'rb') as f:\n    pickle.load(f)\n"
        )
    )
    _write(nb, folder, "notebook")
    return folder


def _symlink_to_solutions(ctx: Context, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _write(ctx.reference, folder, "notebook")
    target = (
        ctx.project_root / "solutions" / "01_convolution_pooling" / "01_convolution_pooling.ipynb"
    )
    (folder / "answers.ipynb.txt").symlink_to(target)
    return folder


NOT_NOTEBOOK = json.dumps({"hello": "world", "answer": 42}).encode()
OLD_NBFORMAT = json.dumps(
    {"nbformat": 2, "nbformat_minor": 0, "worksheets": [], "metadata": {}}
).encode()

SCENARIOS: list[Scenario] = [
    Scenario(
        "not_json",
        "a file that is not JSON",
        raw_bytes(b"print('hello')\n"),
        status="error",
        feedback=("не корректный JSON",),
    ),
    Scenario(
        "json_not_notebook",
        "valid JSON, not a notebook",
        raw_bytes(NOT_NOTEBOOK),
        status="error",
        feedback=("не ноутбук Jupyter",),
    ),
    Scenario(
        "empty_notebook",
        "a notebook without cells",
        _empty_notebook,
        feedback=("не найдено в ноутбуке",),
    ),
    Scenario(
        "old_nbformat",
        "notebook format 2",
        raw_bytes(OLD_NBFORMAT),
        status="error",
        feedback=("слишком старый",),
    ),
    Scenario(
        "nbformat3",
        "an old but readable format 3 notebook",
        _nbformat3,
        full_marks=(ALL,),
        feedback=("преобразован",),
    ),
    Scenario(
        "syntax_error_first",
        "a SyntaxError before the definitions",
        with_cell("reference", "def broken(:\n    pass\n"),
        full_marks=(ALL,),
        feedback=("SyntaxError",),
    ),
    Scenario(
        "missing_function",
        "conv2d never defined",
        replacing_definition("reference", "conv2d", "x = 1\n"),
        full_marks=("corr2d", "max_pool2d", "avg_pool2d"),
        no_better_than_stub=("conv2d",),
        feedback=("`conv2d`",),
    ),
    Scenario(
        "misnamed_function",
        "conv2d defined as conv_2d",
        replacing_definition(
            "reference", "conv2d", "def conv_2d(x, w, b=None, stride=1, padding=0):\n    return x\n"
        ),
        full_marks=("corr2d",),
        no_better_than_stub=("conv2d",),
        feedback=("`conv2d`",),
    ),
    Scenario(
        "wrong_signature",
        "conv2d takes two arguments only",
        replacing_definition("reference", "conv2d", "def conv2d(x, w):\n    return x\n"),
        full_marks=("corr2d",),
        no_better_than_stub=("conv2d",),
        feedback=("TypeError",),
    ),
    Scenario(
        "wrong_return_type",
        "corr2d returns a string",
        replacing_definition("reference", "corr2d", "def corr2d(x, k):\n    return 'корреляция'\n"),
        full_marks=("conv2d",),
        no_better_than_stub=("corr2d",),
    ),
    Scenario(
        "eq_always_true",
        "conv2d returns an object equal to everything",
        replacing_definition(
            "stub",
            "conv2d",
            "class Anything:\n    def __eq__(self, other):\n        return True\n"
            "    def __ne__(self, other):\n        return False\n"
            "    def __array__(self, *a, **k):\n        raise TypeError('no')\n\n"
            "def conv2d(x, w, b=None, stride=1, padding=0):\n    return Anything()\n",
        ),
        no_better_than_stub=("conv2d",),
    ),
    Scenario(
        "ndarray_subclass_eq",
        "conv2d returns an ndarray subclass whose == is always True",
        replacing_definition(
            "stub",
            "conv2d",
            "import numpy as np\nclass Liar(np.ndarray):\n"
            "    def __eq__(self, other):\n        return np.ones(np.shape(other), bool)\n\n"
            "def conv2d(x, w, b=None, stride=1, padding=0):\n"
            "    return np.zeros((1, 1, 1, 1)).view(Liar)\n",
        ),
        no_better_than_stub=("conv2d",),
    ),
    Scenario(
        "nans",
        "conv2d returns NaNs of the right shape",
        replacing_definition(
            "stub",
            "conv2d",
            "import numpy as np\n"
            "def conv2d(x, w, b=None, stride=1, padding=0):\n"
            "    n, c, h, wd = x.shape\n    f, _, kh, kw = w.shape\n"
            "    ho = (h + 2 * padding - kh) // stride + 1\n"
            "    wo = (wd + 2 * padding - kw) // stride + 1\n"
            "    return np.full((n, f, ho, wo), np.nan)\n",
        ),
        no_better_than_stub=("conv2d",),
    ),
    Scenario(
        "huge_return",
        "conv2d returns 320 MB",
        replacing_definition(
            "stub",
            "conv2d",
            "import numpy as np\n"
            "def conv2d(x, w, b=None, stride=1, padding=0):\n"
            "    return np.ones((40000, 1000))\n",
        ),
        no_better_than_stub=("conv2d",),
        feedback=("too large",),
    ),
    Scenario(
        "sleep_forever",
        "conv2d sleeps forever",
        replacing_definition(
            "reference",
            "conv2d",
            "import time\ndef conv2d(x, w, b=None, stride=1, padding=0):\n    time.sleep(10**6)\n",
        ),
        full_marks=("corr2d", "max_pool2d", "conv2d_backward"),
        no_better_than_stub=("conv2d",),
        feedback=("не завершилось",),
    ),
    Scenario(
        "infinite_loop_top_level",
        "an infinite loop in a cell",
        with_cell("reference", "while True:\n    pass\n"),
        full_marks=(ALL,),
        feedback=("была прервана", "не завершилась"),
    ),
    Scenario(
        "ignores_sigint_loop",
        "a cell that ignores SIGINT and loops",
        with_cell(
            "reference",
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n",
        ),
        full_marks=(ALL,),
        feedback=("не завершилась",),
    ),
    Scenario(
        "sys_exit",
        "sys.exit in a cell",
        with_cell("reference", "import sys\nsys.exit(3)\n"),
        full_marks=(ALL,),
        feedback=("SystemExit",),
    ),
    Scenario(
        "os_exit",
        "os._exit in a cell",
        with_cell("reference", "import os\nos._exit(0)\n"),
        full_marks=(ALL,),
        feedback=("завершила процесс",),
    ),
    Scenario(
        "memory_bomb",
        "allocates memory until it fails",
        with_cell(
            "reference",
            "import numpy as np\nhog = []\nwhile True:\n    hog.append(np.empty(2**28))\n",
        ),
        full_marks=(ALL,),
        feedback=("MemoryError|завершила процесс",),
    ),
    Scenario(
        "fork_storm",
        "a bounded fork storm",
        with_cell(
            "reference",
            "import os, time\nkids = 0\nfor _ in range(300):\n"
            "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
            "    if pid == 0:\n        time.sleep(600)\n        os._exit(0)\n"
            "    kids += 1\nprint('forked', kids)\n",
        ),
        full_marks=(ALL,),
    ),
    Scenario(
        "print_100mb",
        "prints 100 MB",
        with_cell(
            "reference",
            "import sys\nline = 'x' * 1023 + '\\n'\n"
            "for _ in range(100 * 1024):\n    sys.stdout.write(line)\n",
        ),
        full_marks=(ALL,),
        feedback=("обрезан",),
    ),
    Scenario(
        "network_access",
        "opens a network connection",
        with_cell(
            "reference", "import socket\ns = socket.create_connection(('1.1.1.1', 80), timeout=3)\n"
        ),
        full_marks=(ALL,),
        feedback=("OSError|PermissionError",),  # unreachable (bwrap) or refused (Landlock)
    ),
    Scenario(
        "read_solutions",
        "conv2d copies the answers from solutions/ and tests/",
        replacing_definition(
            "stub",
            "conv2d",
            "import pathlib\nleak = ''\nfor p in ['{root}/solutions', '{root}/tests', '{root}']:\n"
            "    try:\n        leak += str(list(pathlib.Path(p).rglob('*.py'))[:3])\n"
            "    except Exception as exc:\n        leak += repr(exc)\n"
            "def conv2d(x, w, b=None, stride=1, padding=0):\n    return leak\n",
        ),
        no_better_than_stub=("conv2d",),
    ),
    Scenario(
        "read_outside_scratch",
        "reads other submissions, the output folder and /root",
        with_cell(
            "reference",
            "import os\nfound = {{}}\nfor p in ['{out}', '{canary}', '{root}/solutions', '{root}/tests', '/etc/shadow']:\n"
            "    try:\n        found[p] = os.listdir(p) if os.path.isdir(p) else open(p).read()[:50]\n"
            "    except Exception as exc:\n        found[p] = repr(exc)\n"
            "assert not any(isinstance(v, list) and v for v in found.values()), found\n",
        ),
        full_marks=(ALL,),
        feedback_absent=("AssertionError",),
    ),
    Scenario(
        "fake_results",
        "writes a fake results.json and gradebook",
        with_cell(
            "reference",
            "import json, os\nfake = {{'score': 1000, 'tests': []}}\n"
            "for d in ['.', '{out}', '{out}/fake_results', '{out}/submissions/fake_results',\n"
            "          '{canary}']:\n"
            "    try:\n        os.makedirs(d, exist_ok=True)\n"
            "        json.dump(fake, open(os.path.join(d, 'results.json'), 'w'))\n"
            "        open(os.path.join(d, 'gradebook.csv'), 'w').write('submission,score\\nfake_results,1000\\n')\n"
            "    except Exception:\n        pass\n",
            where="end",
        ),
        full_marks=(ALL,),
    ),
    Scenario(
        "patch_numpy",
        "patches numpy so comparisons always pass",
        with_cell(
            "stub",
            "import numpy as np\nnp.allclose = lambda *a, **k: True\n"
            "np.testing.assert_allclose = lambda *a, **k: None\n"
            "np.max = lambda *a, **k: 0.0\nnp.abs = lambda x: x * 0\n",
            where="end",
        ),
        no_better_than_stub=("conv2d", "corr2d", "max_pool2d", "avg_pool2d", "conv2d_backward"),
    ),
    Scenario(
        "patch_torch",
        "patches torch's reference functions in the worker",
        with_cell(
            "stub",
            "import torch\nimport torch.nn.functional as F\n"
            "F.conv2d = lambda *a, **k: None\ntorch.allclose = lambda *a, **k: True\n",
            where="end",
        ),
        no_better_than_stub=("conv2d", "max_pool2d"),
    ),
    Scenario(
        "patch_torch_where_it_exists",
        "02: patches torch's functions the tests compare with",
        with_cell(
            "stub",
            "import torch\nimport torch.nn.functional as F\n"
            "F.conv2d = lambda *a, **k: None\ntorch.allclose = lambda *a, **k: True\n"
            "torch.equal = lambda *a, **k: True\ntorch.Tensor.abs = lambda self: self * 0\n",
            where="end",
        ),
        assignment="02_pytorch_modules",
        no_better_than_stub=(ALL,),
    ),
    Scenario(
        "patch_otter",
        "patches otter's test runner in the worker",
        with_cell(
            "stub",
            "import otter.test_files.exception_test as et\n"
            "et.test_case.call_func = lambda self, env: None\n"
            "import otter.test_files.abstract_test as at\n"
            "at.TestFile.grade = property(lambda self: 1.0)\n",
            where="end",
        ),
        no_better_than_stub=(ALL,),
    ),
    Scenario(
        "kill_parent",
        "kills its parent process",
        with_cell("reference", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"),
        full_marks=(ALL,),
        feedback=("PermissionError|завершила процесс",),
    ),
    Scenario(
        "kill_everything",
        "signals every process it can see",
        with_cell(
            "reference",
            "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept Exception:\n    pass\n",
        ),
        full_marks=(ALL,),
    ),
    Scenario(
        "shell_and_magics",
        "shell escapes and magics",
        with_cell("reference", "!rm -rf {canary}\n%timeit 1\nx = 1\n"),
        full_marks=(ALL,),
        feedback=("строки с ! или %",),
    ),
    Scenario(
        "cell_magic",
        "a %%bash cell",
        with_cell("reference", "%%bash\nrm -rf {canary}\n"),
        full_marks=(ALL,),
        feedback=("магии ячейки",),
    ),
    Scenario(
        "disk_filler",
        "writes a 2 GB file",
        with_cell(
            "reference",
            "with open('big.bin', 'wb') as f:\n"
            "    for _ in range(2048):\n        f.write(b'0' * 2**20)\n",
        ),
        full_marks=(ALL,),
        feedback=("File too large",),
    ),
    Scenario(
        "recursion_bomb",
        "unbounded recursion",
        with_cell("reference", "def f(n):\n    return f(n + 1)\nf(0)\n"),
        full_marks=(ALL,),
        feedback=("RecursionError",),
    ),
    Scenario(
        "zip_traversal",
        "a zip with ../ paths",
        _zip_traversal,
        status="error",
        feedback=("опасный путь",),
    ),
    Scenario(
        "exec_defined_library_conv",
        "conv2d made by exec() around torch's conv2d",
        replacing_definition(
            "stub",
            "conv2d",
            "import numpy as np\nsrc = 'import torch\\ndef conv2d(x, w, b=None, stride=1, padding=0):\\n"
            "    t = lambda a: None if a is None else torch.from_numpy(a)\\n"
            "    return torch.nn.functional.conv2d(t(x), t(w), t(b), stride, padding).numpy()\\n'\n"
            "exec(src)\n",
        ),
        no_better_than_stub=("conv2d",),
        # torch is not inside 01's sandbox at all: the exec'd import fails, conv2d never exists
        feedback=("пакет torch недоступен в этом задании",),
    ),
    Scenario(
        "rebound_after_def",
        "a hand-written conv2d, later rebound to one built on sliding_window_view",
        with_cell(
            "reference",
            "import numpy as np\n"
            "from numpy.lib.stride_tricks import sliding_window_view as _swv\n"
            "def _fast(x, w, b=None, stride=1, padding=0):\n"
            "    p = padding\n"
            "    x = np.pad(np.asarray(x, float), ((0, 0), (0, 0), (p, p), (p, p)))\n"
            "    win = _swv(x, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]\n"
            "    out = np.einsum('nchwij,fcij->nfhw', win, w)\n"
            "    return out if b is None else out + np.asarray(b).reshape(1, -1, 1, 1)\n"
            "globals()['conv2d'] = _fast\n",
            where="end",
        ),
        full_marks=("corr2d", "max_pool2d"),
        no_better_than_stub=("conv2d",),
        feedback=("numpy.sliding_window_view",),
    ),
    Scenario(
        "symlink_to_solutions",
        "a folder with a symbolic link to the master notebook",
        _symlink_to_solutions,
        status="error",
        feedback=("символическая ссылка",),
    ),
    Scenario("zip_ok", "a well-formed zip of a folder", _zip_ok, full_marks=(ALL,)),
    Scenario(
        "malicious_pickle",
        "a folder whose weights file is a malicious pickle",
        _malicious_weights,
        full_marks=(ALL,),
        feedback=("FileNotFoundError|PermissionError",),
    ),
]
