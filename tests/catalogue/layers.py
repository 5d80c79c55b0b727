"""The library rule and the structure rule, both sides: bypasses that must score 0 on their
target (and say why: a finding or a review flag), legitimate answers that must keep full
marks, and models that disguise what they are.

Bypasses come by class: computed names, modules written at run time or brought along,
wrappers (partial, lambdas, decorators, objects with ``__call__``), ``sys.modules`` and
builtins lookups, reloading a numpy module, torch reached through ``torch.ops``, ``torch._C``
or a module instance.
"""

from __future__ import annotations

from catalogue.scenarios import ALL, Scenario, replacing_definition, without_cell

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

LAYER_SCENARIOS = BYPASSES + LEGITIMATE + STRUCTURAL + COSTS_ONLY_ITSELF
