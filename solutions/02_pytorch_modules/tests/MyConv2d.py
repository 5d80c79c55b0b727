from otter.test_files import test_case

OK_FORMAT = False

name = "MyConv2d"
points = 3

@test_case(points=None, hidden=False)
def test_myconv2d_forward(MyConv2d, set_parameters):
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)
    conv = MyConv2d(3, 4, 3)
    w, b = (getattr(conv, 'weight', None), getattr(conv, 'bias', None))
    assert w is not None, 'у слоя нет атрибута weight: создайте в __init__ self.weight = nn.Parameter(...)'
    assert tuple(w.shape) == (4, 3, 3, 3), f'weight должен иметь форму (out_channels, in_channels, k, k) = (4, 3, 3, 3), получено {tuple(w.shape)}'
    assert b is not None and tuple(b.shape) == (4,), f'bias должен иметь форму (4,), получено {(None if b is None else tuple(b.shape))}'
    weight, bias = (torch.randn(4, 3, 3, 3, generator=g), torch.randn(4, generator=g))
    set_parameters(conv, {'weight': weight, 'bias': bias})
    x = torch.randn(2, 3, 7, 6, generator=g)
    out = conv(x)
    expected = F.conv2d(x, weight, bias)
    assert isinstance(out, torch.Tensor), f'forward должен возвращать тензор, получено {type(out).__name__}'
    assert tuple(out.shape) == tuple(expected.shape), f'MyConv2d(3, 4, 3) на входе (2, 3, 7, 6): ожидалась форма {tuple(expected.shape)}, получено {tuple(out.shape)}'
    err = (out.detach() - expected).abs().max().item()
    assert err < 0.0001, f'с заданными weight и bias выход не совпадает с F.conv2d: максимальная ошибка {err:.2e}'

@test_case(points=None, hidden=False)
def test_myconv2d_stride_padding_no_bias(MyConv2d, set_parameters):
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(1)
    conv = MyConv2d(2, 5, 3, stride=2, padding=1)
    w, b = (torch.randn(5, 2, 3, 3, generator=g), torch.randn(5, generator=g))
    set_parameters(conv, {'weight': w, 'bias': b})
    x = torch.randn(1, 2, 9, 8, generator=g)
    out = conv(x)
    expected = F.conv2d(x, w, b, stride=2, padding=1)
    assert isinstance(out, torch.Tensor), f'forward должен возвращать тензор, получено {type(out).__name__}'
    assert tuple(out.shape) == (1, 5, 5, 4), f'MyConv2d(2, 5, 3, stride=2, padding=1) на входе (1, 2, 9, 8): ожидалась форма (1, 5, 5, 4), получено {tuple(out.shape)}; H_out = (H + 2p - k) // s + 1'
    err = (out.detach() - expected).abs().max().item()
    assert err < 0.0001, f'stride=2, padding=1: выход не совпадает с F.conv2d, максимальная ошибка {err:.2e}'
    conv = MyConv2d(2, 3, 2, bias=False)
    keys = sorted(conv.state_dict())
    assert keys == ['weight'], f"при bias=False у слоя должен быть только параметр weight, а в state_dict() {keys}; сделайте self.register_parameter('bias', None)"
    w = torch.randn(3, 2, 2, 2, generator=g)
    set_parameters(conv, {'weight': w})
    x = torch.randn(3, 2, 5, 5, generator=g)
    out = conv(x)
    expected = F.conv2d(x, w)
    assert tuple(out.shape) == tuple(expected.shape), f'MyConv2d(2, 3, 2, bias=False): ожидалась форма {tuple(expected.shape)}, получено {tuple(out.shape)}'
    err = (out.detach() - expected).abs().max().item()
    assert err < 0.0001, f'bias=False: выход не совпадает с F.conv2d, максимальная ошибка {err:.2e}'

@test_case(points=None, hidden=False)
def test_myconv2d_init(MyConv2d):
    import math
    import torch
    conv = MyConv2d(16, 8, 3)
    w = getattr(conv, 'weight', None)
    assert w is not None, 'у слоя нет атрибута weight: создайте в __init__ self.weight = nn.Parameter(...)'
    w = w.detach().float()
    fan_in = 16 * 3 * 3
    assert bool(torch.isfinite(w).all()), 'в весах есть inf или nan: инициализируйте их'
    std, hi, lo = (w.std().item(), 2 / math.sqrt(fan_in), 0.1 / math.sqrt(fan_in))
    assert std <= hi, f'веса слишком крупные: std = {std:.3f}, а при fan_in = in_channels * k * k = {fan_in} нужно не больше {hi:.3f}; инициализируйте как nn.Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in))'
    assert std >= lo, f'веса почти нулевые или одинаковые (std = {std:.2e}): нужна случайная инициализация'
    out = conv(torch.randn(3, 16, 6, 6, generator=torch.Generator().manual_seed(3)))
    assert isinstance(out, torch.Tensor), f'MyConv2d(16, 8, 3): forward должен возвращать тензор, получено {type(out).__name__}'
    spread = (out.detach() - out.detach()[:1]).abs().max().item()
    assert spread > 1e-06, f'MyConv2d(16, 8, 3): выход одинаков для разных входов (нули или константа): forward не использует x и веса'

@test_case(points=None, hidden=True)
def test_myconv2d_parameters_registered(MyConv2d, seed, probes):
    import numpy as np
    import torch
    rng = np.random.default_rng(seed)
    for bias in (True, False):
        c_in, c_out = (int(v) for v in rng.choice(np.arange(1, 9), size=2, replace=False))
        k = int(rng.integers(1, 6))
        conv = MyConv2d(c_in, c_out, k, bias=bias)
        shapes = probes.parameter_shapes(conv)
        expected = {'weight': [c_out, c_in, k, k]}
        if bias:
            expected['bias'] = [c_out]
        assert shapes == expected, f'MyConv2d({c_in}, {c_out}, {k}, bias={bias}): parameters() должны быть ровно {expected} (имя: форма), получено {shapes}'
        out = conv(torch.randn(3, c_in, k + 3, k + 2, generator=torch.Generator().manual_seed(int(seed))))
        assert isinstance(out, torch.Tensor), f'MyConv2d({c_in}, {c_out}, {k}, bias={bias}): forward должен возвращать тензор, получено {type(out).__name__}'
        spread = (out.detach() - out.detach()[:1]).abs().max().item()
        assert spread > 1e-06, f'MyConv2d({c_in}, {c_out}, {k}, bias={bias}): выход одинаков для разных входов (нули или константа): forward не использует x и веса'

@test_case(points=None, hidden=True)
def test_myconv2d_random_configs(MyConv2d, seed, probes):
    import numpy as np
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(seed + 1)
    g = torch.Generator().manual_seed(int(seed) + 1)
    for i in range(5):
        c_in, c_out = (int(rng.integers(1, 5)), int(rng.integers(1, 6)))
        k = int(rng.integers(2, 6)) if i < 2 else int(rng.integers(1, 6))
        stride = int(rng.integers(2, 4)) if i == 0 else int(rng.integers(1, 4))
        padding = int(rng.integers(1, 3)) if i < 2 else int(rng.integers(0, 3))
        h = k + int(rng.integers(0, 9))
        w_size = h + 1 if i == 0 else k + int(rng.integers(0, 9))
        n = int(rng.integers(1, 4))
        bias = i != 2
        conv = MyConv2d(c_in, c_out, k, stride=stride, padding=padding, bias=bias)
        w = torch.randn(c_out, c_in, k, k, generator=g)
        b = torch.randn(c_out, generator=g) if bias else None
        probes.load_parameters(conv, {'weight': w, 'bias': b} if bias else {'weight': w})
        x = torch.randn(n, c_in, h, w_size, generator=g)
        out = conv(x)
        expected = F.conv2d(x, w, b, stride=stride, padding=padding)
        where = f'MyConv2d({c_in}, {c_out}, {k}, stride={stride}, padding={padding}, bias={bias}) на входе {tuple(x.shape)}'
        assert isinstance(out, torch.Tensor), f'{where}: forward должен возвращать тензор, получено {type(out).__name__}'
        assert tuple(out.shape) == tuple(expected.shape), f'{where}: ожидалась форма {tuple(expected.shape)}, получено {tuple(out.shape)}'
        err = (out.detach() - expected).abs().max().item() / (1 + expected.abs().max().item())
        assert err < 0.0001, f'{where}: выход не совпадает с F.conv2d, относительная ошибка {err:.2e}'

@test_case(points=None, hidden=True)
def test_myconv2d_gradients(MyConv2d, seed, probes):
    import numpy as np
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(seed + 2)
    g = torch.Generator().manual_seed(int(seed) + 2)
    c_in, c_out, k = (int(rng.integers(1, 5)), int(rng.integers(1, 6)), int(rng.integers(2, 5)))
    stride, padding = (2, 1)
    h, w_size = (k + int(rng.integers(1, 8)), k + int(rng.integers(1, 8)))
    conv = MyConv2d(c_in, c_out, k, stride=stride, padding=padding)
    w, b = (torch.randn(c_out, c_in, k, k, generator=g), torch.randn(c_out, generator=g))
    probes.load_parameters(conv, {'weight': w, 'bias': b})
    x = torch.randn(2, c_in, h, w_size, generator=g)
    xr, wr, br = (t.clone().requires_grad_(True) for t in (x, w, b))
    ref_out = F.conv2d(xr, wr, br, stride=stride, padding=padding)
    grad_out = torch.randn(ref_out.shape, generator=g)
    ref = torch.autograd.grad(ref_out, [xr, wr, br], grad_out)
    got = probes.gradients(conv, x, grad_out)
    where = f'MyConv2d({c_in}, {c_out}, {k}, stride={stride}, padding={padding}) на входе {tuple(x.shape)}'
    pairs = [('dL/dx', got['input'], ref[0]), ('dL/dW', got['params'].get('weight'), ref[1]), ('dL/db', got['params'].get('bias'), ref[2])]
    for name, g_got, g_ref in pairs:
        assert g_got is not None, f'{where}: {name} не вычислен (тензор не участвует в forward или не обучаемый)'
        assert tuple(g_got.shape) == tuple(g_ref.shape), f'{where}: {name} ожидалась форма {tuple(g_ref.shape)}, получено {tuple(g_got.shape)}'
        err = (g_got - g_ref).abs().max().item() / (1 + g_ref.abs().max().item())
        assert err < 0.0001, f'{where}: {name} не совпадает с эталоном F.conv2d, относительная ошибка {err:.2e}'

@test_case(points=None, hidden=True)
def test_myconv2d_init_scale(MyConv2d, seed):
    import math
    import numpy as np
    import torch
    rng = np.random.default_rng(seed + 3)
    c_in, c_out, k = (int(rng.integers(8, 33)), int(rng.integers(4, 17)), int(rng.integers(3, 6)))
    conv = MyConv2d(c_in, c_out, k)
    w, b = (getattr(conv, 'weight', None), getattr(conv, 'bias', None))
    assert w is not None, f'MyConv2d({c_in}, {c_out}, {k}): нет атрибута weight'
    w = w.detach().float()
    fan_in = c_in * k * k
    assert bool(torch.isfinite(w).all()), f'MyConv2d({c_in}, {c_out}, {k}): в весах есть inf или nan'
    assert b is not None and bool(torch.isfinite(b.detach()).all()), f'MyConv2d({c_in}, {c_out}, {k}): смещение должно быть конечным тензором'
    std, hi, lo = (w.std().item(), 2 / math.sqrt(fan_in), 0.1 / math.sqrt(fan_in))
    assert lo <= std <= hi, f'MyConv2d({c_in}, {c_out}, {k}): std весов {std:.2e}, ожидалось от {lo:.2e} до {hi:.2e} (масштаб порядка 1/sqrt(in_channels * k * k), как в nn.Conv2d)'
    out = conv(torch.randn(3, c_in, k + 2, k + 3, generator=torch.Generator().manual_seed(int(seed))))
    assert isinstance(out, torch.Tensor), f'MyConv2d({c_in}, {c_out}, {k}): forward должен возвращать тензор, получено {type(out).__name__}'
    spread = (out.detach() - out.detach()[:1]).abs().max().item()
    assert spread > 1e-06, f'MyConv2d({c_in}, {c_out}, {k}): выход одинаков для разных входов (нули или константа): forward не использует x и веса'

