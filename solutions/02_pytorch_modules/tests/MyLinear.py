from otter.test_files import test_case

OK_FORMAT = False

name = "MyLinear"
points = 2

@test_case(points=None, hidden=False)
def test_mylinear_forward(MyLinear, set_parameters):
    import torch
    g = torch.Generator().manual_seed(0)
    layer = MyLinear(5, 3)
    w, b = (getattr(layer, 'weight', None), getattr(layer, 'bias', None))
    assert w is not None, 'у слоя нет атрибута weight: создайте в __init__ self.weight = nn.Parameter(...)'
    assert tuple(w.shape) == (3, 5), f'weight должен иметь форму (out_features, in_features) = (3, 5), получено {tuple(w.shape)}'
    assert b is not None and tuple(b.shape) == (3,), f'bias должен иметь форму (out_features,) = (3,), получено {(None if b is None else tuple(b.shape))}'
    weight, bias = (torch.randn(3, 5, generator=g), torch.randn(3, generator=g))
    set_parameters(layer, {'weight': weight, 'bias': bias})
    x = torch.randn(4, 5, generator=g)
    out = layer(x)
    assert isinstance(out, torch.Tensor), f'forward должен возвращать тензор, получено {type(out).__name__}'
    assert tuple(out.shape) == (4, 3), f'для входа (4, 5) ожидался выход (4, 3), получено {tuple(out.shape)}'
    expected = x @ weight.T + bias
    err = (out.detach() - expected).abs().max().item()
    assert err < 1e-05, f'с заданными weight и bias выход не совпадает с x @ W.T + b: максимальная ошибка {err:.2e}'

@test_case(points=None, hidden=False)
def test_mylinear_no_bias_leading_dims(MyLinear, set_parameters):
    import torch
    g = torch.Generator().manual_seed(1)
    layer = MyLinear(6, 2, bias=False)
    keys = sorted(layer.state_dict())
    assert keys == ['weight'], f"при bias=False у слоя должен быть только параметр weight, а в state_dict() {keys}; сделайте self.register_parameter('bias', None)"
    w = getattr(layer, 'weight', None)
    assert w is not None, 'у слоя нет атрибута weight: создайте в __init__ self.weight = nn.Parameter(...)'
    assert tuple(w.shape) == (2, 6), f'weight должен иметь форму (2, 6), получено {tuple(w.shape)}'
    weight = torch.randn(2, 6, generator=g)
    set_parameters(layer, {'weight': weight})
    x = torch.randn(2, 3, 4, 6, generator=g)
    out = layer(x)
    assert isinstance(out, torch.Tensor), f'forward должен возвращать тензор, получено {type(out).__name__}'
    assert tuple(out.shape) == (2, 3, 4, 2), f'для входа (2, 3, 4, 6) ожидался выход (2, 3, 4, 2), получено {tuple(out.shape)}'
    err = (out.detach() - x @ weight.T).abs().max().item()
    assert err < 1e-05, f'выход не совпадает с x @ W.T: максимальная ошибка {err:.2e}'

@test_case(points=None, hidden=False)
def test_mylinear_init(MyLinear):
    import math
    import torch
    layer = MyLinear(256, 10)
    w = getattr(layer, 'weight', None)
    assert w is not None, 'у слоя нет атрибута weight: создайте в __init__ self.weight = nn.Parameter(...)'
    w = w.detach().float()
    assert bool(torch.isfinite(w).all()), 'в весах есть inf или nan: инициализируйте их (torch.empty сам этого не делает)'
    std, hi, lo = (w.std().item(), 2 / math.sqrt(256), 0.1 / math.sqrt(256))
    assert std <= hi, f'веса слишком крупные: std = {std:.3f}, а для in_features = 256 нужно не больше {hi:.3f}; инициализируйте как nn.Linear: U(-1/sqrt(in), 1/sqrt(in))'
    assert std >= lo, f'веса почти нулевые или одинаковые (std = {std:.2e}): нужна случайная инициализация'
    out = layer(torch.randn(8, 256, generator=torch.Generator().manual_seed(3)))
    assert isinstance(out, torch.Tensor), f'MyLinear(256, 10): forward должен возвращать тензор, получено {type(out).__name__}'
    spread = (out.detach() - out.detach()[:1]).abs().max().item()
    assert spread > 1e-06, f'MyLinear(256, 10): выход одинаков для разных входов (нули или константа): forward не использует x и веса'

@test_case(points=None, hidden=True)
def test_mylinear_parameters_registered(MyLinear, seed, probes):
    import numpy as np
    import torch
    rng = np.random.default_rng(seed)
    for bias in (True, False):
        n_in, n_out = (int(v) for v in rng.choice(np.arange(2, 30), size=2, replace=False))
        layer = MyLinear(n_in, n_out, bias=bias)
        shapes = probes.parameter_shapes(layer)
        expected = {'weight': [n_out, n_in]}
        if bias:
            expected['bias'] = [n_out]
        assert shapes == expected, f'MyLinear({n_in}, {n_out}, bias={bias}): parameters() должны быть ровно {expected} (имя: форма), получено {shapes}'
        out = layer(torch.randn(5, n_in, generator=torch.Generator().manual_seed(int(seed))))
        assert isinstance(out, torch.Tensor), f'MyLinear({n_in}, {n_out}, bias={bias}): forward должен возвращать тензор, получено {type(out).__name__}'
        spread = (out.detach() - out.detach()[:1]).abs().max().item()
        assert spread > 1e-06, f'MyLinear({n_in}, {n_out}, bias={bias}): выход одинаков для разных входов (нули или константа): forward не использует x и веса'

@test_case(points=None, hidden=True)
def test_mylinear_forward_random(MyLinear, seed, probes):
    import numpy as np
    import torch
    rng = np.random.default_rng(seed + 1)
    g = torch.Generator().manual_seed(int(seed) + 1)
    for bias in (True, False, True):
        n_in, n_out = (int(v) for v in rng.choice(np.arange(2, 30), size=2, replace=False))
        lead = [int(v) for v in rng.integers(1, 5, size=int(rng.integers(1, 4)))]
        layer = MyLinear(n_in, n_out, bias=bias)
        w = torch.randn(n_out, n_in, generator=g)
        b = torch.randn(n_out, generator=g)
        probes.load_parameters(layer, {'weight': w, 'bias': b} if bias else {'weight': w})
        x = torch.randn(*lead, n_in, generator=g)
        out = layer(x)
        assert isinstance(out, torch.Tensor), f'forward должен возвращать тензор, получено {type(out).__name__}'
        shape = tuple(lead) + (n_out,)
        assert tuple(out.shape) == shape, f'MyLinear({n_in}, {n_out}, bias={bias}) на входе {tuple(x.shape)}: ожидалась форма {shape}, получено {tuple(out.shape)}'
        expected = x @ w.T + (b if bias else 0)
        err = (out.detach() - expected).abs().max().item()
        assert err < 0.0001, f'MyLinear({n_in}, {n_out}, bias={bias}) на входе {tuple(x.shape)}: выход не совпадает с x @ W.T + b, максимальная ошибка {err:.2e}'

@test_case(points=None, hidden=True)
def test_mylinear_gradients(MyLinear, seed, probes):
    import numpy as np
    import torch
    rng = np.random.default_rng(seed + 2)
    g = torch.Generator().manual_seed(int(seed) + 2)
    n_in, n_out = (int(v) for v in rng.choice(np.arange(2, 30), size=2, replace=False))
    lead = [int(v) for v in rng.integers(1, 5, size=2)]
    layer = MyLinear(n_in, n_out)
    w, b = (torch.randn(n_out, n_in, generator=g), torch.randn(n_out, generator=g))
    probes.load_parameters(layer, {'weight': w, 'bias': b})
    x = torch.randn(*lead, n_in, generator=g)
    grad_out = torch.randn(*lead, n_out, generator=g)
    got = probes.gradients(layer, x, grad_out)
    xr, wr, br = (t.clone().requires_grad_(True) for t in (x, w, b))
    ref = torch.autograd.grad(xr @ wr.T + br, [xr, wr, br], grad_out)
    pairs = [('dL/dx', got['input'], ref[0]), ('dL/dW', got['params'].get('weight'), ref[1]), ('dL/db', got['params'].get('bias'), ref[2])]
    for name, g_got, g_ref in pairs:
        assert g_got is not None, f'{name}: градиент не вычислен (тензор не участвует в forward или не обучаемый)'
        assert tuple(g_got.shape) == tuple(g_ref.shape), f'{name}: ожидалась форма {tuple(g_ref.shape)}, получено {tuple(g_got.shape)}'
        err = (g_got - g_ref).abs().max().item() / (1 + g_ref.abs().max().item())
        assert err < 0.0001, f'{name} не совпадает с эталоном: относительная ошибка {err:.2e}'

@test_case(points=None, hidden=True)
def test_mylinear_init_scale(MyLinear, seed):
    import math
    import numpy as np
    import torch
    rng = np.random.default_rng(seed + 3)
    for _ in range(2):
        n_in, n_out = (int(rng.integers(64, 513)), int(rng.integers(8, 65)))
        layer = MyLinear(n_in, n_out)
        w = getattr(layer, 'weight', None)
        assert w is not None, f'MyLinear({n_in}, {n_out}): нет атрибута weight'
        w = w.detach().float()
        assert bool(torch.isfinite(w).all()), f'MyLinear({n_in}, {n_out}): в весах есть inf или nan'
        b = getattr(layer, 'bias', None)
        assert b is not None and bool(torch.isfinite(b.detach()).all()), f'MyLinear({n_in}, {n_out}): смещение должно быть конечным тензором'
        std, hi, lo = (w.std().item(), 2 / math.sqrt(n_in), 0.1 / math.sqrt(n_in))
        assert lo <= std <= hi, f'MyLinear({n_in}, {n_out}): std весов {std:.2e}, ожидалось от {lo:.2e} до {hi:.2e} (масштаб порядка 1/sqrt(in_features), как в nn.Linear)'
        out = layer(torch.randn(6, n_in, generator=torch.Generator().manual_seed(int(seed))))
        assert isinstance(out, torch.Tensor), f'MyLinear({n_in}, {n_out}): forward должен возвращать тензор, получено {type(out).__name__}'
        spread = (out.detach() - out.detach()[:1]).abs().max().item()
        assert spread > 1e-06, f'MyLinear({n_in}, {n_out}): выход одинаков для разных входов (нули или константа): forward не использует x и веса'

