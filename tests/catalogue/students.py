"""Submissions written the way real students write them, each with its expected outcome.

CS231n-style functions behind a thin adapter, d2l-style loops, and the bugs students really
make (padding cropped with ``p:-p`` when p = 0, ``round()`` in an output size, ``=`` instead
of ``+=`` in a backward pass, a hard-coded batch size, layers in a plain list, the last batch's
loss, a forgotten ``model.eval()``). A correct one keeps full marks; a buggy one loses points
on its question only (``lost``), and keeps some where only some cases use the bug
(``partial``).
"""

from __future__ import annotations

from catalogue.scenarios import ALL, Scenario, replacing_definition

A01, A02, A03 = "01_convolution_pooling", "02_pytorch_modules", "03_convnet_cifar10"


def _student(id: str, what: str, name: str, source: str, *, assignment: str = A01,
             lost: tuple[str, ...] = (), partial: tuple[str, ...] = ()) -> Scenario:
    literal = source.replace("{", "{{").replace("}", "}}")  # no {canary}-style fields here
    return Scenario(
        id,
        what,
        replacing_definition("reference", name, literal),
        assignment=assignment,
        full_marks=() if lost else (ALL,),
        lost=lost,
        partial=partial,
    )


_CS231N_CONV = '''import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    """CS231n: naive forward pass for a convolutional layer."""
    stride, pad = conv_param['stride'], conv_param['pad']
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), 'constant')
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = x_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    cache = (x, w, b, conv_param)
    return out, cache


def conv2d(x, w, b=None, stride=1, padding=0):
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if b is None:
        b = np.zeros(w.shape[0])
    out, _ = conv_forward_naive(x, w, np.asarray(b, dtype=np.float64),
                                {'stride': stride, 'pad': padding})
    return out
'''

_CS231N_POOL = '''import numpy as np


def max_pool_forward_naive(x, pool_param):
    """CS231n: naive forward pass for a max-pooling layer."""
    N, C, H, W = x.shape
    ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
    H_out = 1 + (H - ph) // s
    W_out = 1 + (W - pw) // s
    out = np.zeros((N, C, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            out[:, :, i, j] = np.max(x[:, :, i * s:i * s + ph, j * s:j * s + pw], axis=(2, 3))
    cache = (x, pool_param)
    return out, cache


def max_pool2d(x, kernel_size, stride=None):
    x = np.asarray(x, dtype=np.float64)
    params = {'pool_height': kernel_size, 'pool_width': kernel_size,
              'stride': stride or kernel_size}
    out, _ = max_pool_forward_naive(x, params)
    return out
'''

_D2L_CORR2D = '''import numpy as np


def corr2d(X, K):
    """Compute 2D cross-correlation (d2l.ai, ported to numpy)."""
    h, w = K.shape
    Y = np.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y
'''


def _backward(dx_line: str, dw_line: str) -> str:
    return f'''import numpy as np


def conv2d_backward(dout, x, w, stride=1, padding=0):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    p = padding
    x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for i in range(H_out):
        for j in range(W_out):
            hs, ws = i * stride, j * stride
            x_slice = x_pad[:, :, hs:hs + HH, ws:ws + WW]
            for f in range(F):
                {dw_line}
            for n in range(N):
                dx_pad[n, :, hs:hs + HH, ws:ws + WW] += np.tensordot(dout[n, :, i, j], w, axes=1)
    {dx_line}
    return dx, dw, db
'''


_ROUND_OUTPUT_SIZE = '''def conv_output_size(n, kernel_size, stride=1, padding=0):
    return int(round((n + 2 * padding - kernel_size) / stride)) + 1
'''

_AVG_POOL_BY_K = '''import numpy as np


def avg_pool2d(x, kernel_size, stride=None):
    k = kernel_size
    s = stride if stride is not None else k
    N, C, H, W = x.shape
    H_out = (H - k) // s + 1
    W_out = (W - k) // s + 1
    out = np.zeros((N, C, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * s:i * s + k, j * s:j * s + k]
            out[:, :, i, j] = window.sum(axis=(2, 3)) / k  # average over the window
    return out
'''

_LENET_HARDCODED_BATCH = '''class SimpleConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(4, 16 * 5 * 5)  # batch_size = 4, as in the PyTorch tutorial
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x
'''

_MYCONV2D_LOOPS = '''class MyConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        k = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels, kernel_size, kernel_size).uniform_(-k, k))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-k, k))
        else:
            self.register_parameter('bias', None)

    def forward(self, x):
        k, s, p = self.kernel_size, self.stride, self.padding
        x = F.pad(x, (p, p, p, p))
        n, c, h, w = x.shape
        h_out, w_out = (h - k) // s + 1, (w - k) // s + 1
        rows = []
        for i in range(h_out):
            cols = []
            for j in range(w_out):
                patch = x[:, :, i * s:i * s + k, j * s:j * s + k]  # (N, C, k, k)
                cols.append((patch.unsqueeze(1) * self.weight).sum(dim=(2, 3, 4)))  # (N, C_out)
            rows.append(torch.stack(cols, dim=-1))
        out = torch.stack(rows, dim=-2)  # (N, C_out, H_out, W_out)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out
'''

_MLP_PLAIN_LIST = '''class MLP(nn.Module):
    def __init__(self, in_features, hidden_sizes, num_classes):
        super().__init__()
        sizes = [in_features] + list(hidden_sizes) + [num_classes]
        self.layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            self.layers.append(nn.Linear(a, b))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x
'''

_TYPICAL_CONVNET = '''class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(64 * 8 * 8, 256)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)
'''

_TRAIN_LAST_BATCH = '''def train_epoch(model, loader, optimizer, criterion, device):
    model.train()
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        outputs = model(images)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
    return loss.item()
'''

_EVALUATE_NO_EVAL = '''def evaluate(model, loader, device):
    correct = 0
    total = 0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            outputs = model(images)
            _, predicted = torch.max(outputs, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return correct / total
'''

_ACCUMULATED_DW = "dw[f] += np.tensordot(dout[:, f, i, j], x_slice, axes=1)"

STUDENT_SCENARIOS = [
    _student("student_cs231n_conv_adapter", "CS231n conv_forward_naive behind an adapter",
             "conv2d", _CS231N_CONV),
    _student("student_cs231n_pool_adapter", "CS231n max_pool_forward_naive behind an adapter",
             "max_pool2d", _CS231N_POOL),
    _student("student_d2l_corr2d", "d2l.ai's corr2d loops, ported to numpy", "corr2d",
             _D2L_CORR2D),
    _student("student_backward_correct", "a CS231n-style conv backward with per-filter loops",
             "conv2d_backward",
             _backward("dx = dx_pad[:, :, p:p + H, p:p + W]", _ACCUMULATED_DW)),
    _student("student_backward_crop_p_minus_p", "conv backward crops the padding with p:-p, "
             "which is empty when p = 0", "conv2d_backward",
             _backward("dx = dx_pad[:, :, p:-p, p:-p]", _ACCUMULATED_DW),
             lost=("conv2d_backward",), partial=("conv2d_backward",)),
    _student("student_backward_assigns_dw", "conv backward writes dw[f] = ... instead of += "
             "(only the last window counts)", "conv2d_backward",
             _backward("dx = dx_pad[:, :, p:p + H, p:p + W]",
                       "dw[f] = np.tensordot(dout[:, f, i, j], x_slice, axes=1)"),
             lost=("conv2d_backward",)),
    _student("student_round_output_size", "round() instead of floor division in the output size",
             "conv_output_size", _ROUND_OUTPUT_SIZE, lost=("conv_output_size",)),
    _student("student_avg_pool_divides_by_k", "average pooling divides by kernel_size, not its "
             "square", "avg_pool2d", _AVG_POOL_BY_K, lost=("avg_pool2d",)),
    _student("student_lenet_hardcoded_batch", "LeNet from the PyTorch tutorial with view(4, ...): "
             "the batch size is hard-coded", "SimpleConvNet", _LENET_HARDCODED_BATCH,
             assignment=A02, lost=("SimpleConvNet",), partial=("SimpleConvNet",)),
    _student("student_myconv2d_loops", "MyConv2d with explicit loops over output positions "
             "(no unfold, no library convolution)", "MyConv2d", _MYCONV2D_LOOPS,
             assignment=A02),
    _student("student_mlp_plain_list", "MLP keeps its layers in a plain Python list", "MLP",
             _MLP_PLAIN_LIST, assignment=A02, lost=("MLP",)),
    _student("student_typical_convnet", "the ConvNet most students write: two conv-ReLU-pool "
             "blocks and two Linear layers", "ConvNet", _TYPICAL_CONVNET, assignment=A03),
    _student("student_train_epoch_last_batch_loss", "train_epoch returns the last batch's loss",
             "train_epoch", _TRAIN_LAST_BATCH, assignment=A03, lost=("train_epoch",),
             partial=("train_epoch",)),
    _student("student_evaluate_without_eval", "evaluate forgets model.eval()", "evaluate",
             _EVALUATE_NO_EVAL, assignment=A03, lost=("evaluate",)),
]
