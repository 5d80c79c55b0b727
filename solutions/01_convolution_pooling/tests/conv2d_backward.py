from otter.test_files import test_case

OK_FORMAT = False

name = "conv2d_backward"
points = 3

@test_case(points=None, hidden=False)
def test_conv2d_backward_matches_autograd(conv2d_backward):
    import numpy as np
    import torch
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((2, 3, 3, 3))
    b = rng.standard_normal(2)
    dout = rng.standard_normal((2, 2, 3, 3))
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    torch.nn.functional.conv2d(xt, wt, bt).backward(torch.from_numpy(dout))
    res = conv2d_backward(dout, x, w, stride=1, padding=0)
    assert isinstance(res, (tuple, list)) and len(res) == 3, 'conv2d_backward должна вернуть кортеж (dx, dw, db)'
    for name, got, ref in zip(('dx', 'dw', 'db'), res, (xt.grad, wt.grad, bt.grad)):
        got, ref = (np.asarray(got), ref.numpy())
        assert got.shape == ref.shape, f'{name}: ожидалась форма {ref.shape}, получено {got.shape}'
        assert got.dtype == np.float64, f'{name} должен быть float64, получено {got.dtype}'
        err = float(np.max(np.abs(got - ref) / np.maximum(1e-08, np.abs(got) + np.abs(ref))))
        assert err < 1e-07, f'{name} расходится с torch autograd: относительная ошибка {err:.2e} (stride=1, padding=0)'

@test_case(points=None, hidden=False)
def test_conv2d_backward_stride_padding(conv2d_backward):
    import numpy as np
    import torch
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, 6, 7))
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3)
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    out = torch.nn.functional.conv2d(xt, wt, bt, stride=2, padding=1)
    dout = rng.standard_normal(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    res = conv2d_backward(dout, x, w, stride=2, padding=1)
    assert isinstance(res, (tuple, list)) and len(res) == 3, 'conv2d_backward должна вернуть кортеж (dx, dw, db)'
    for name, got, ref in zip(('dx', 'dw', 'db'), res, (xt.grad, wt.grad, bt.grad)):
        got, ref = (np.asarray(got), ref.numpy())
        assert got.shape == ref.shape, f'{name}: ожидалась форма {ref.shape}, получено {got.shape} (stride=2, padding=1)'
        assert got.dtype == np.float64, f'{name} должен быть float64, получено {got.dtype}'
        err = float(np.max(np.abs(got - ref) / np.maximum(1e-08, np.abs(got) + np.abs(ref))))
        assert err < 1e-07, f'{name} расходится с torch autograd: относительная ошибка {err:.2e} (stride=2, padding=1)'

@test_case(points=None, hidden=True)
def test_conv2d_backward_random_configs(conv2d_backward, seed):
    import numpy as np
    import torch
    rng = np.random.default_rng([seed, 71])
    for s, p in ((1, 0), (2, 1), (3, 2), (2, 0)):
        n, c, f = (int(v) for v in rng.integers(1, 4, size=3))
        kh, kw = (int(rng.integers(2, 5)), int(rng.integers(1, 5)))
        more = s if s > 1 else 0
        h = int(rng.integers(max(1, kh - 2 * p + more), 10))
        wd = int(rng.integers(max(1, kw - 2 * p + more), 10))
        x = rng.standard_normal((n, c, h, wd))
        w = rng.standard_normal((f, c, kh, kw))
        b = rng.standard_normal(f)
        xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
        out = torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p)
        dout = rng.standard_normal(tuple(out.shape))
        out.backward(torch.from_numpy(dout))
        res = conv2d_backward(dout, x, w, stride=s, padding=p)
        assert isinstance(res, (tuple, list)) and len(res) == 3, 'conv2d_backward должна вернуть кортеж (dx, dw, db)'
        for name, got, ref in zip(('dx', 'dw', 'db'), res, (xt.grad, wt.grad, bt.grad)):
            got, ref = (np.asarray(got), ref.numpy())
            assert got.shape == ref.shape, f'{name}: x {x.shape}, w {w.shape}, stride={s}, padding={p}: ожидалась форма {ref.shape}, получено {got.shape}'
            assert got.dtype == np.float64, f'{name} должен быть float64, получено {got.dtype}'
            err = float(np.max(np.abs(got - ref) / np.maximum(1e-08, np.abs(got) + np.abs(ref))))
            assert err < 1e-07, f'{name}: x {x.shape}, w {w.shape}, stride={s}, padding={p}: относительная ошибка {err:.2e} против autograd'

@test_case(points=None, hidden=True)
def test_conv2d_backward_uncovered_input(conv2d_backward, seed):
    import numpy as np
    import torch
    rng = np.random.default_rng([seed, 72])
    x = rng.standard_normal((2, 2, 8, 9))
    w = rng.standard_normal((2, 2, 3, 2))
    xt, wt = (torch.from_numpy(a).requires_grad_() for a in (x, w))
    out = torch.nn.functional.conv2d(xt, wt, stride=3)
    dout = rng.standard_normal(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    res = conv2d_backward(dout, x, w, stride=3, padding=0)
    assert isinstance(res, (tuple, list)) and len(res) == 3, 'conv2d_backward должна вернуть кортеж (dx, dw, db)'
    for name, got, ref in zip(('dx', 'dw'), res[:2], (xt.grad, wt.grad)):
        got, ref = (np.asarray(got), ref.numpy())
        assert got.shape == ref.shape, f'{name}: x {x.shape}, w {w.shape}, stride=3: ожидалась форма {ref.shape}, получено {got.shape}'
        err = float(np.max(np.abs(got - ref) / np.maximum(1e-08, np.abs(got) + np.abs(ref))))
        assert err < 1e-07, f'{name}: x {x.shape}, w {w.shape}, stride=3: относительная ошибка {err:.2e} против autograd. Пиксели, не попавшие ни в одно окно, должны получить нулевой градиент'
    db = np.asarray(res[2])
    assert db.shape == (2,) and np.allclose(db, dout.sum(axis=(0, 2, 3))), f'db должен быть суммой dout по осям (0, 2, 3) формы (2,), получено {db.tolist()}'

@test_case(points=None, hidden=True)
def test_conv2d_backward_wide_padding(conv2d_backward, seed):
    import numpy as np
    import torch
    rng = np.random.default_rng([seed, 73])
    x = rng.standard_normal((1, 3, 4, 5))
    w = rng.standard_normal((2, 3, 2, 3))
    b = rng.standard_normal(2)
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    out = torch.nn.functional.conv2d(xt, wt, bt, stride=1, padding=3)
    dout = rng.standard_normal(tuple(out.shape))
    out.backward(torch.from_numpy(dout))
    res = conv2d_backward(dout, x, w, stride=1, padding=3)
    assert isinstance(res, (tuple, list)) and len(res) == 3, 'conv2d_backward должна вернуть кортеж (dx, dw, db)'
    for name, got, ref in zip(('dx', 'dw', 'db'), res, (xt.grad, wt.grad, bt.grad)):
        got, ref = (np.asarray(got), ref.numpy())
        assert got.shape == ref.shape, f'{name}: x {x.shape}, w {w.shape}, padding=3: ожидалась форма {ref.shape}, получено {got.shape}'
        err = float(np.max(np.abs(got - ref) / np.maximum(1e-08, np.abs(got) + np.abs(ref))))
        assert err < 1e-07, f'{name}: x {x.shape}, w {w.shape}, padding=3: относительная ошибка {err:.2e} против autograd'

