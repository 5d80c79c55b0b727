"""The library rule and the structure rule, both sides: bypasses that must score 0 on their
target (and say why: a finding or a review flag), legitimate answers that must keep full
marks, and models that disguise what they are.

Bypasses come by class: computed names, modules written at run time or brought along,
wrappers (partial, lambdas, decorators, objects with ``__call__``), ``sys.modules`` and
builtins lookups, reloading a numpy module, torch reached through ``torch.ops``, ``torch._C``
or a module instance.
"""

from __future__ import annotations

import nbformat
from catalogue.scenarios import ALL, Scenario, replacing_definition, with_cell, without_cell

A01, A02, A03 = "01_convolution_pooling", "02_pytorch_modules", "03_convnet_cifar10"

# corr2d by rows with np.correlate, the routine reached in different disguises.
_CORR_BY_ROWS = (
    "def corr2d(x, k):\n"
    "    x = np.asarray(x, dtype=np.float64)\n"
    "    k = np.asarray(k, dtype=np.float64)\n"
    "    kh = k.shape[0]\n"
    "    rows = []\n"
    "    for i in range(x.shape[0] - kh + 1):\n"
    "        rows.append(sum(CORRELATE(x[i + r], k[r], 'valid') for r in range(kh)))\n"
    "    return np.array(rows)\n"
)
# max pooling with sliding windows, the routine reached in different disguises.
_POOL_WITH_WINDOWS = (
    "def max_pool2d(x, kernel_size, stride=None):\n"
    "    s = stride or kernel_size\n"
    "    windows = WINDOWS(np.asarray(x, dtype=np.float64), (kernel_size, kernel_size), "
    "axis=(2, 3))\n"
    "    return windows[:, :, ::s, ::s].max(axis=(-2, -1))\n"
)


def _replacing(question: str, source: str, files: dict[str, str] | None = None):
    """replacing_definition with ``source`` taken literally (no {canary}-style fields)."""
    literal = source.replace("{", "{{").replace("}", "}}")
    return replacing_definition("reference", question, literal, files)


def _corr(prelude: str, call: str) -> str:
    return "import numpy as np\n" + prelude + _CORR_BY_ROWS.replace("CORRELATE", call)


def _pool(prelude: str, call: str) -> str:
    return "import numpy as np\n" + prelude + _POOL_WITH_WINDOWS.replace("WINDOWS", call)


def _bypass(id: str, what: str, question: str, source: str, *, flagged: bool = True,
            assignment: str = A01, files: dict[str, str] | None = None) -> Scenario:
    return Scenario(
        id,
        what,
        _replacing(question, source, files),
        assignment=assignment,
        caught=(question,),
        flagged=(question,) if flagged else (),
    )


_HELPER_MODULE = (
    "import numpy as np\n"
    "from numpy.lib.stride_tricks import sliding_window_view\n\n"
    "def windows(x, size, axis):\n"
    "    return sliding_window_view(x, size, axis=axis)\n"
)

BYPASSES = [
    _bypass("bypass_computed_getattr", "np.correlate reached through getattr(np, 'corre' + 'late')",
            "corr2d", _corr("", "getattr(np, 'corre' + 'late')")),
    _bypass("bypass_computed_vars", "np.correlate looked up in vars(np) under a built name",
            "corr2d", _corr("NAME = 'correl' + 'ate'\n", "vars(np)[NAME]")),
    _bypass("bypass_sys_modules", "sliding_window_view reached through sys.modules",
            "max_pool2d",
            _pool("import sys\n",
                  "sys.modules['numpy.lib.stride_tricks'].__dict__['sliding_' + 'window_view']")),
    _bypass("bypass_builtins_import", "numpy imported again through builtins.__import__",
            "corr2d", _corr("import builtins\n",
                            "getattr(builtins.__dict__['__import__']('numpy'), 'corr' + 'elate')")),
    _bypass("bypass_importlib_computed", "the stride tricks module imported by a computed name",
            "max_pool2d",
            _pool("import importlib\nST = importlib.import_module('numpy.lib.' + 'stride_tricks')\n",
                  "getattr(ST, 'sliding_window_' + 'view')")),
    _bypass("bypass_reload_numpy", "a numpy module reloaded, its fresh function captured",
            "max_pool2d",
            _pool("import importlib, sys\n"
                  "_MOD = importlib.reload(sys.modules['numpy.lib._stride_' + 'tricks_impl'])\n"
                  "_SWV = getattr(_MOD, 'sliding_window_' + 'view')\n", "_SWV")),
    _bypass("bypass_partial", "functools.partial around a routine fetched by a computed name",
            "corr2d", _corr("import functools\n"
                            "_C = functools.partial(getattr(np, 'corr' + 'elate'))\n", "_C")),
    _bypass("bypass_lambda", "a lambda wrapping a routine fetched from a dict of names",
            "corr2d", _corr("_OPS = {'c': getattr(np, ''.join(['corr', 'elate']))}\n"
                            "_C = lambda a, v, mode: _OPS['c'](a, v, mode)\n", "_C")),
    _bypass("bypass_decorator", "a decorator that swaps in the library routine",
            "max_pool2d",
            "import numpy as np\n"
            "def fast(fn):\n"
            "    lib = getattr(np.lib, 'stride_' + 'tricks')\n"
            "    def pool(x, kernel_size, stride=None):\n"
            "        w = getattr(lib, 'sliding_window_' + 'view')(np.asarray(x, dtype=np.float64),"
            " (kernel_size, kernel_size), axis=(2, 3))\n"
            "        return w[:, :, ::stride or kernel_size, ::stride or kernel_size]"
            ".max(axis=(-2, -1))\n"
            "    return pool\n\n"
            "@fast\n"
            "def max_pool2d(x, kernel_size, stride=None):\n"
            "    return None\n"),
    _bypass("bypass_callable_object", "an object with __call__ that uses a computed name",
            "corr2d",
            "import numpy as np\n"
            "class _Correlator:\n"
            "    name = 'corr' + 'elate'\n"
            "    def __call__(self, a, v, mode):\n"
            "        return getattr(np, self.name)(a, v, mode)\n"
            "_C = _Correlator()\n" + _CORR_BY_ROWS.replace("CORRELATE", "_C")),
    _bypass("bypass_module_written_at_run_time",
            "the notebook writes a .py module with the routine, then imports it", "max_pool2d",
            "import numpy as np, sys\n"
            f"with open('fastpool.py', 'w') as f:\n    f.write({_HELPER_MODULE!r})\n"
            "sys.path.insert(0, '.')\nimport fastpool\n"
            + _POOL_WITH_WINDOWS.replace("WINDOWS", "fastpool.windows")),
    _bypass("bypass_module_beside_notebook",
            "a .py module uploaded beside the notebook does the pooling", "max_pool2d",
            "import numpy as np, sys\nsys.path.insert(0, '.')\nimport mytools\n"
            + _POOL_WITH_WINDOWS.replace("WINDOWS", "mytools.windows"),
            files={"mytools.py": _HELPER_MODULE}),
    # 02: MyConv2d must not convolve through torch, however it is reached.
    _bypass("bypass_torch_ops", "MyConv2d calls torch.ops.aten.convolution", "MyConv2d",
            "class MyConv2d(nn.Module):\n"
            "    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, "
            "bias=True):\n"
            "        super().__init__()\n"
            "        self.stride, self.padding = stride, padding\n"
            "        ref = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)\n"
            "        self.weight, self.bias = ref.weight, ref.bias\n"
            "    def forward(self, x):\n"
            "        s, p = self.stride, self.padding\n"
            "        return torch.ops.aten.convolution(x, self.weight, self.bias, [s, s], [p, p], "
            "[1, 1], False, [0, 0], 1)\n",
            flagged=False, assignment=A02),
    _bypass("bypass_torch_c", "MyConv2d calls the convolution through torch._C by a computed name",
            "MyConv2d",
            "class MyConv2d(nn.Module):\n"
            "    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, "
            "bias=True):\n"
            "        super().__init__()\n"
            "        self.stride, self.padding = stride, padding\n"
            "        bound = 1 / math.sqrt(in_channels * kernel_size * kernel_size)\n"
            "        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size,"
            " kernel_size).uniform_(-bound, bound))\n"
            "        if bias:\n"
            "            self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))\n"
            "        else:\n"
            "            self.register_parameter('bias', None)\n"
            "    def forward(self, x):\n"
            "        fn = getattr(getattr(torch, '_' + 'C')._VariableFunctions, 'con' + 'v2d')\n"
            "        return fn(x, self.weight, self.bias, self.stride, self.padding)\n",
            assignment=A02),
    _bypass("bypass_exec_defined", "MyConv2d made by exec() around nn.Conv2d: no def to read",
            "MyConv2d", "SRC = 'class MyConv2d(nn.Conv2d):\\n    pass\\n'\nexec(SRC)\n",
            assignment=A02),
    _bypass("bypass_module_instance", "MyConv2d keeps an nn.Conv2d made by a computed name",
            "MyConv2d",
            "class MyConv2d(nn.Module):\n"
            "    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, "
            "bias=True):\n"
            "        super().__init__()\n"
            "        layer = getattr(nn, 'Con' + 'v2d')(in_channels, out_channels, kernel_size, "
            "stride=stride, padding=padding, bias=bias)\n"
            "        self.weight, self.bias = layer.weight, layer.bias\n"
            "        self._impl = [layer]\n"
            "    def forward(self, x):\n"
            "        return self._impl[0](x)\n",
            assignment=A02),
]

# The grader's objects in the student's process (issue 19, class 1): a cell that nothing
# graded refers to disables the recorder (by name through sys.modules, through a module
# alias, the garbage collector, stack frames, object.__subclasses__, or torch's dispatch-mode
# stack) and swaps library code into a graded function or class after its definition was
# read (``f.__code__ = g.__code__``, ``Class.forward = ...``, ``setattr``). Graded by 58b5762,
# each took full marks on its targets, with no flag but for the dispatch-mode pop (a computed
# name and a disturbed record were flagged, the score stood). Every one of them writes
# the library code into the graded object, so the reading of every cell zeroes the target;
# the rest of what it saw is a flag on the questions the record serves, or, for an explicit
# reach of the grader, a zero on each of them.
_RULES_01 = ("corr2d", "conv2d", "max_pool2d", "avg_pool2d", "conv2d_backward")
_PLAIN_01 = ("conv_output_size", "hand_kernels")
_PLAIN_02 = ("MyLinear", "Flatten", "MLP", "count_parameters")
_MY_CONV2D_INIT = (
    "class MyConv2d(nn.Module):\n"
    "    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, "
    "bias=True):\n"
    "        super().__init__()\n"
    "        self.out_channels, self.stride, self.padding = out_channels, stride, padding\n"
    "        bound = 1 / math.sqrt(in_channels * kernel_size ** 2)\n"
    "        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size,"
    " kernel_size).uniform_(-bound, bound))\n"
    "        if bias:\n"
    "            self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))\n"
    "        else:\n"
    "            self.register_parameter('bias', None)\n"
)
_MY_CONV2D_UNDONE = _MY_CONV2D_INIT + (
    "    def forward(self, x):\n"
    "        raise NotImplementedError('forward comes later')\n"
)
_QUIET_SNAPSHOT = (
    "def _quiet(self):\n"
    "    seen = _orig(self)\n"
    "    seen['routines'] = [r for r in seen['routines'] if not any(\n"
    "        w in r for w in ('conv', 'window', 'strided', 'correl', 'im2col', 'pool'))]\n"
    "    return seen\n"
)
_RECORDER_BY_NAME = (  # the attack: the recorder module looked up by its name
    "import sys\n"
    "_tr = sys.modules['autograder.sandbox.tracing']\n"
    "_orig = _tr.Recorder.snapshot\n" + _QUIET_SNAPSHOT + "_tr.Recorder.snapshot = _quiet\n"
)
_FAST_CONV2D = (
    "import numpy as np\n"
    "from numpy.lib.stride_tricks import sliding_window_view as _swv\n\n"
    "def _fast(x, w, b=None, stride=1, padding=0):\n"
    "    x = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (0, 0), (padding, padding), "
    "(padding, padding)))\n"
    "    w = np.asarray(w, dtype=np.float64)\n"
    "    win = _swv(x, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]\n"
    "    out = np.einsum('nchwij,fcij->nfhw', win, w)\n"
    "    if b is not None:\n"
    "        out = out + np.asarray(b, dtype=np.float64).reshape(1, -1, 1, 1)\n"
    "    return out\n\n"
)
_LIBRARY_FORWARD = (
    "def _library_forward(self, x):\n"
    "    return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)\n"
)


def _then_cell(question: str, definition: str, extra: str, assignment: str = A01):
    """The reference with ``question``'s cell replaced by ``definition``, and ``extra`` as
    the notebook's last cell (one that no graded definition refers to)."""
    replace = _replacing(question, definition)

    def build(ctx, folder):
        path = replace(ctx, folder)
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(extra))
        nbformat.write(nb, path)
        return path

    return build


GRADER_IN_REACH = [
    Scenario("bypass_code_swap_after_reading",
             "01: conv2d.__code__ swapped for a sliding_window_view version in a last cell "
             "(behind a %time line), the recorder's snapshot patched through sys.modules",
             _then_cell("conv2d", "def conv2d(x, w, b=None, stride=1, padding=0):\n"
                        "    raise NotImplementedError('done below')\n",
                        "%time\n" + _FAST_CONV2D + "conv2d.__code__ = _fast.__code__\n"
                        + _RECORDER_BY_NAME),
             caught=_RULES_01, flagged=("conv2d",), full_marks=_PLAIN_01,
             feedback=("autograder",)),
    Scenario("bypass_recorder_patch",
             "02: the issue's attack: the recorder's snapshot wrapped through sys.modules to "
             "drop convolutions, then MyConv2d.forward = F.conv2d in a cell nothing refers to",
             _then_cell("MyConv2d", _MY_CONV2D_UNDONE,
                        "MyConv2d.forward = lambda self, x: F.conv2d(x, self.weight, self.bias,"
                        " self.stride, self.padding)\n" + _RECORDER_BY_NAME, A02),
             assignment=A02, caught=("MyConv2d", "SimpleConvNet"), flagged=("MyConv2d",),
             full_marks=_PLAIN_02),
    Scenario("bypass_gc_walk_setattr",
             "02: the recorder found with gc.get_objects(), its class's snapshot replaced; "
             "forward set with setattr",
             _then_cell("MyConv2d", _MY_CONV2D_UNDONE,
                        "import gc\n" + _LIBRARY_FORWARD
                        + "setattr(MyConv2d, 'forward', _library_forward)\n"
                        "for _o in gc.get_objects():\n"
                        "    if type(_o).__name__ == 'Recorder':\n"
                        "        _orig = type(_o).snapshot\n"
                        + _QUIET_SNAPSHOT.replace("\n", "\n        ").replace(
                            "def _quiet", "        def _quiet", 1).rstrip(" ")
                        + "        type(_o).snapshot = _quiet\n", A02),
             assignment=A02, caught=("MyConv2d",), flagged=("MyConv2d", "SimpleConvNet"),
             full_marks=(*_PLAIN_02, "SimpleConvNet")),
    Scenario("bypass_frame_walk_swap",
             "02: the swapped-in forward walks the stack frames to the recorder and switches "
             "it off before calling F.conv2d",
             _then_cell("MyConv2d", _MY_CONV2D_UNDONE,
                        "import sys\n"
                        "def _quiet():\n"
                        "    f = sys._getframe(1)\n"
                        "    while f is not None:\n"
                        "        owner = f.f_locals.get('self')\n"
                        "        if type(owner).__name__ == 'Recorder':\n"
                        "            owner.active = False\n"
                        "            return\n"
                        "        f = f.f_back\n\n"
                        "def _forward(self, x):\n"
                        "    _quiet()\n"
                        "    return F.conv2d(x, self.weight, self.bias, self.stride, "
                        "self.padding)\n\n"
                        "MyConv2d.forward = _forward\n", A02),
             assignment=A02, caught=("MyConv2d",), flagged=("MyConv2d", "SimpleConvNet"),
             full_marks=_PLAIN_02),
    Scenario("bypass_module_alias_swap",
             "01: sys passed on as `m` to find the recorder's module by a suffix; "
             "max_pool2d.__code__ swapped for a sliding-windows version",
             _then_cell("max_pool2d", "def max_pool2d(x, kernel_size, stride=None):\n"
                        "    raise NotImplementedError('done below')\n",
                        "import numpy as np, sys\n"
                        "def _pool(x, kernel_size, stride=None):\n"
                        "    s = stride or kernel_size\n"
                        "    w = np.lib.stride_tricks.sliding_window_view(np.asarray(x, "
                        "dtype=np.float64), (kernel_size, kernel_size), axis=(2, 3))\n"
                        "    return w[:, :, ::s, ::s].max(axis=(-2, -1))\n\n"
                        "max_pool2d.__code__ = _pool.__code__\n"
                        "m = sys\n"
                        "_mods = m.modules\n"
                        "_tr = [v for k, v in list(_mods.items()) if k.endswith('.tracing')][0]\n"
                        "_orig = _tr.Recorder.snapshot\n" + _QUIET_SNAPSHOT
                        + "_tr.Recorder.snapshot = _quiet\n"),
             caught=("max_pool2d",), flagged=("max_pool2d", "conv2d"),
             full_marks=("conv_output_size", "hand_kernels", "corr2d", "conv2d", "avg_pool2d",
                         "conv2d_backward")),
    Scenario("bypass_subclasses_chain",
             "01: the recorder's class found in object.__subclasses__(), its snapshot "
             "replaced; corr2d.__code__ swapped for an np.correlate version",
             _then_cell("corr2d", "def corr2d(x, k):\n    raise NotImplementedError('below')\n",
                        "import numpy as np\n" + _CORR_BY_ROWS.replace("corr2d", "_corr")
                        .replace("CORRELATE", "np.correlate")
                        + "corr2d.__code__ = _corr.__code__\n"
                        "_R = [c for c in object.__subclasses__() if c.__name__ == "
                        "'Recorder'][0]\n"
                        "_orig = _R.snapshot\n" + _QUIET_SNAPSHOT + "_R.snapshot = _quiet\n"),
             caught=("corr2d",), flagged=("corr2d", "conv2d"),
             full_marks=("conv_output_size", "hand_kernels", "conv2d", "max_pool2d",
                         "avg_pool2d", "conv2d_backward")),
    Scenario("bypass_dispatch_mode_pop",
             "02: MyConv2d.forward pops the recorder's dispatch mode off torch's stack (for "
             "the backward pass too), then convolves through a computed name",
             _replacing("MyConv2d",
                        "from torch.utils._python_dispatch import _pop_mode\n"
                        + _MY_CONV2D_INIT
                        + "    def forward(self, x):\n"
                        "        try:\n"
                        "            _pop_mode()\n"
                        "        except Exception:\n"
                        "            pass\n"
                        "        fn = getattr(F, 'con' + 'v2d')\n"
                        "        return fn(x, self.weight, self.bias, self.stride, "
                        "self.padding)\n"),
             assignment=A02, caught=("MyConv2d", "SimpleConvNet"), full_marks=_PLAIN_02),
    Scenario("flag_gc_count_only",
             "01: a last cell counts the interpreter's objects with gc.get_objects(): flagged "
             "for a person, no score changes",
             with_cell("reference", "import gc\nprint('objects:', len(gc.get_objects()))\n",
                       where="end"),
             full_marks=(ALL,), flagged=_RULES_01),
]

# Legitimate answers: no library routine does the work; every question keeps full marks.
LEGITIMATE = [
    Scenario(
        "legit_conv2d_fancy_index_im2col",
        "conv2d through im2col built with fancy indexing and a matrix product",
        _replacing(
            "conv2d",
            "import numpy as np\n"
            "def conv2d(x, w, b=None, stride=1, padding=0):\n"
            "    x = np.asarray(x, dtype=np.float64)\n"
            "    w = np.asarray(w, dtype=np.float64)\n"
            "    n, c, h, wd = x.shape\n"
            "    f, _, kh, kw = w.shape\n"
            "    ho, wo = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1\n"
            "    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))\n"
            "    i = (np.arange(ho) * stride)[:, None] + np.arange(kh)[None, :]  # (ho, kh)\n"
            "    j = (np.arange(wo) * stride)[:, None] + np.arange(kw)[None, :]  # (wo, kw)\n"
            "    cols = xp[:, :, i[:, None, :, None], j[None, :, None, :]]  # (n, c, ho, wo, kh, kw)\n"
            "    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)\n"
            "    out = cols @ w.reshape(f, -1).T\n"
            "    out = out.reshape(n, ho, wo, f).transpose(0, 3, 1, 2)\n"
            "    if b is not None:\n"
            "        out = out + np.asarray(b, dtype=np.float64).reshape(1, f, 1, 1)\n"
            "    return np.ascontiguousarray(out)\n",
        ),
        full_marks=(ALL,),
    ),
    Scenario(
        "legit_conv2d_einsum",
        "conv2d with an einsum per output position",
        _replacing(
            "conv2d",
            "import numpy as np\n"
            "def conv2d(x, w, b=None, stride=1, padding=0):\n"
            "    x = np.pad(np.asarray(x, dtype=np.float64), "
            "[(0, 0), (0, 0), (padding, padding), (padding, padding)], mode='constant')\n"
            "    w = np.asarray(w, dtype=np.float64)\n"
            "    kh, kw = w.shape[2:]\n"
            "    ho, wo = (x.shape[2] - kh) // stride + 1, (x.shape[3] - kw) // stride + 1\n"
            "    out = np.empty((x.shape[0], w.shape[0], ho, wo))\n"
            "    for r in range(ho):\n"
            "        for q in range(wo):\n"
            "            patch = x[:, :, r * stride:r * stride + kh, q * stride:q * stride + kw]\n"
            "            out[:, :, r, q] = np.einsum('nchw,fchw->nf', patch, w)\n"
            "    if b is not None:\n"
            "        out += np.asarray(b, dtype=np.float64)[None, :, None, None]\n"
            "    return out\n",
        ),
        full_marks=(ALL,),
    ),
    Scenario(
        "legit_corr2d_tensordot",
        "corr2d with np.tensordot over each window",
        _replacing(
            "corr2d",
            "import numpy as np\n"
            "def corr2d(x, k):\n"
            "    x, k = np.asarray(x, dtype=np.float64), np.asarray(k, dtype=np.float64)\n"
            "    oh, ow = x.shape[0] - k.shape[0] + 1, x.shape[1] - k.shape[1] + 1\n"
            "    return np.array([[np.tensordot(x[i:i + k.shape[0], j:j + k.shape[1]], k, axes=2)"
            " for j in range(ow)] for i in range(oh)])\n",
        ),
        full_marks=(ALL,),
    ),
    Scenario(
        "legit_myconv2d_tensor_unfold",
        "MyConv2d with Tensor.unfold twice and einsum (unfold is allowed here)",
        _replacing(
            "MyConv2d",
            "class MyConv2d(nn.Module):\n"
            "    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, "
            "bias=True):\n"
            "        super().__init__()\n"
            "        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding\n"
            "        bound = 1 / math.sqrt(in_channels * kernel_size ** 2)\n"
            "        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size,"
            " kernel_size).uniform_(-bound, bound))\n"
            "        if bias:\n"
            "            self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))\n"
            "        else:\n"
            "            self.register_parameter('bias', None)\n"
            "    def forward(self, x):\n"
            "        k, s, p = self.kernel_size, self.stride, self.padding\n"
            "        x = F.pad(x, (p, p, p, p))\n"
            "        patches = x.unfold(2, k, s).unfold(3, k, s)  # (N, C, Ho, Wo, k, k)\n"
            "        out = torch.einsum('nchwij,ocij->nohw', patches, self.weight)\n"
            "        if self.bias is not None:\n"
            "            out = out + self.bias.view(1, -1, 1, 1)\n"
            "        return out\n",
        ),
        assignment=A02,
        full_marks=(ALL,),
    ),
    Scenario(
        "legit_myconv2d_nn_unfold",
        "MyConv2d with an nn.Unfold module and a matrix product",
        _replacing(
            "MyConv2d",
            "class MyConv2d(nn.Module):\n"
            "    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, "
            "bias=True):\n"
            "        super().__init__()\n"
            "        self.out_channels, self.k, self.s, self.p = out_channels, kernel_size, "
            "stride, padding\n"
            "        self.unfold = nn.Unfold(kernel_size, padding=padding, stride=stride)\n"
            "        bound = 1 / math.sqrt(in_channels * kernel_size ** 2)\n"
            "        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size,"
            " kernel_size).uniform_(-bound, bound))\n"
            "        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))"
            " if bias else None\n"
            "    def forward(self, x):\n"
            "        n, _, h, w = x.shape\n"
            "        ho, wo = (h + 2 * self.p - self.k) // self.s + 1, (w + 2 * self.p - self.k)"
            " // self.s + 1\n"
            "        out = self.weight.flatten(1) @ self.unfold(x)\n"
            "        if self.bias is not None:\n"
            "            out = out + self.bias[:, None]\n"
            "        return out.reshape(n, self.out_channels, ho, wo)\n",
        ),
        assignment=A02,
        full_marks=(ALL,),
    ),
]

# Models that disguise what they are: decided from what their forward passes ran.
_FC_ONLY_CONVNET = (
    "class ConvNet(nn.Module):\n"
    "    \"\"\"Called ConvNet, but fully connected.\"\"\"\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.conv_layers = nn.Sequential(nn.Linear(3 * 32 * 32, 256), nn.ReLU())\n"
    "        self.head = nn.Linear(256, 10)\n"
    "    def forward(self, x):\n"
    "        return self.head(self.conv_layers(x.flatten(1)))\n"
)
_CONVOLVING_FCNET = (
    "class FCNet(nn.Module):\n"
    "    \"\"\"Called FCNet, but its forward convolves with a parameter.\"\"\"\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.kernel = nn.Parameter(0.1 * torch.randn(8, 3, 3, 3))\n"
    "        self.fc = nn.Linear(8 * 30 * 30, 10)\n"
    "    def forward(self, x):\n"
    "        return self.fc(F.relu(F.conv2d(x, self.kernel)).flatten(1))\n"
)
STRUCTURAL = [
    Scenario("disguise_fc_only_convnet", "a ConvNet made of Linear layers only",
             _replacing("ConvNet", _FC_ONLY_CONVNET),
             assignment=A03, caught=("ConvNet",),
             full_marks=("FCNet", "train_epoch", "evaluate"),
             feedback=("должна быть свёрточной",)),
    Scenario("disguise_convolving_fcnet", "an FCNet whose forward calls F.conv2d on a parameter",
             _replacing("FCNet", _CONVOLVING_FCNET),
             assignment=A03, caught=("FCNet",),
             full_marks=("ConvNet", "train_epoch", "evaluate"),
             feedback=("должна быть полносвязной", "aten.convolution")),
    Scenario("disguise_fc_only_simpleconvnet", "a SimpleConvNet of Linear layers with LeNet's "
             "parameter count", _replacing(
                 "SimpleConvNet",
                 "class SimpleConvNet(nn.Module):\n"
                 "    def __init__(self):\n"
                 "        super().__init__()\n"
                 "        self.fc = nn.Linear(3 * 32 * 32, 20)\n"
                 "        self.out = nn.Linear(20, 10)\n"
                 "    def forward(self, x):\n"
                 "        return self.out(F.relu(self.fc(x.flatten(1))))\n"),
             assignment=A02, caught=("SimpleConvNet",),
             full_marks=("MyLinear", "Flatten", "MyConv2d", "MLP", "count_parameters")),
]

# A missing or broken name costs only the cases that use it.
COSTS_ONLY_ITSELF = [
    Scenario("missing_given_helper_cell", "02 without the notebook's PartlyFrozenNet cell: the "
             "grader's own fixture is used", without_cell("reference", "class PartlyFrozenNet("),
             assignment=A02, full_marks=(ALL,)),
    Scenario("missing_edge_kernel", "EDGE_KERNEL never defined: only its cases are skipped",
             _replacing("EDGE_KERNEL", "import numpy as np\nBLUR_KERNEL = np.array([[1.0, 2.0, 1.0], "
                        "[2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0\n"),
             partial=("hand_kernels",),
             lost=("hand_kernels",), feedback=("`EDGE_KERNEL`",)),
    Scenario("redefined_count_parameters_helper", "03 redefines the helper count_parameters to "
             "hide an oversized ConvNet: the grader's own fixture counts",
             _replacing("ConvNet",
                        "def count_parameters(model):\n    return 1\n\n"
                        "class ConvNet(nn.Module):\n"
                        "    def __init__(self):\n"
                        "        super().__init__()\n"
                        "        self.conv = nn.Conv2d(3, 64, 3, padding=1)\n"
                        "        self.fc = nn.Linear(64 * 32 * 32, 80)\n"
                        "        self.out = nn.Linear(80, 10)\n"
                        "    def forward(self, x):\n"
                        "        return self.out(F.relu(self.fc(F.relu(self.conv(x)).flatten(1))))\n"),
             assignment=A03, lost=("ConvNet",), feedback=("5,000,000",)),
]

LAYER_SCENARIOS = BYPASSES + GRADER_IN_REACH + LEGITIMATE + STRUCTURAL + COSTS_ONLY_ITSELF
