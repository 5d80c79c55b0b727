from otter.test_files import test_case

OK_FORMAT = False

name = "conv2d"
points = 3

@test_case(points=None, hidden=False)
def test_conv2d_matches_torch(conv2d):
    import numpy as np
    import torch
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    out = np.asarray(conv2d(x, w, b, stride=1, padding=0))
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)).numpy()
    assert out.shape == ref.shape, f'conv2d: x {x.shape}, w {w.shape}, stride=1, padding=0: ожидалась форма {ref.shape}, получено {out.shape}'
    assert out.dtype == np.float64, f'conv2d должна вернуть массив float64, получено {out.dtype}'
    err = float(np.max(np.abs(out - ref) / np.maximum(1e-08, np.abs(out) + np.abs(ref))))
    assert err < 1e-07, f'conv2d расходится с torch.nn.functional.conv2d: относительная ошибка {err:.2e} (stride=1, padding=0, со смещением)'

@test_case(points=None, hidden=False)
def test_conv2d_stride_and_padding(conv2d):
    import numpy as np
    import torch
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 2, 7, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3)
    out = np.asarray(conv2d(x, w, b, stride=2, padding=1))
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=2, padding=1).numpy()
    assert out.shape == ref.shape, f'conv2d: x {x.shape}, w {w.shape}, stride=2, padding=1: ожидалась форма {ref.shape}, получено {out.shape}'
    assert out.dtype == np.float64, f'conv2d должна вернуть массив float64, получено {out.dtype}'
    err = float(np.max(np.abs(out - ref) / np.maximum(1e-08, np.abs(out) + np.abs(ref))))
    assert err < 1e-07, f'conv2d с stride=2, padding=1 расходится с torch: относительная ошибка {err:.2e}'

@test_case(points=None, hidden=True)
def test_conv2d_random_configs(conv2d, seed):
    import numpy as np
    import torch
    rng = np.random.default_rng([seed, 41])
    for s, p in ((1, 0), (2, 1), (3, 2), (2, 0)):
        n, c = (int(v) for v in rng.integers(1, 4, size=2))
        f = int(rng.integers(2, 5))
        kh, kw = (int(v) for v in rng.integers(1, 5, size=2))
        more = s if s > 1 else 0
        h = int(rng.integers(max(1, kh - 2 * p + more), 11))
        wd = int(rng.integers(max(1, kw - 2 * p + more), 11))
        x = rng.standard_normal((n, c, h, wd))
        w = rng.standard_normal((f, c, kh, kw))
        b = rng.standard_normal(f)
        out = np.asarray(conv2d(x, w, b, stride=s, padding=p))
        ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=s, padding=p).numpy()
        assert out.shape == ref.shape, f'conv2d: x {x.shape}, w {w.shape}, stride={s}, padding={p}: ожидалась форма {ref.shape}, получено {out.shape}'
        assert out.dtype == np.float64, f'conv2d должна вернуть массив float64, получено {out.dtype}'
        err = float(np.max(np.abs(out - ref) / np.maximum(1e-08, np.abs(out) + np.abs(ref))))
        assert err < 1e-07, f'conv2d: x {x.shape}, w {w.shape}, stride={s}, padding={p}: относительная ошибка {err:.2e} против torch'

@test_case(points=None, hidden=True)
def test_conv2d_without_bias(conv2d, seed):
    import numpy as np
    import torch
    rng = np.random.default_rng([seed, 42])
    x = rng.standard_normal((2, 2, 6, 7))
    w = rng.standard_normal((3, 2, 2, 3))
    out = np.asarray(conv2d(x, w, None, stride=1, padding=1))
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), None, stride=1, padding=1).numpy()
    assert out.shape == ref.shape, f'conv2d с b=None: x {x.shape}, w {w.shape}, padding=1: ожидалась форма {ref.shape}, получено {out.shape}'
    err = float(np.max(np.abs(out - ref) / np.maximum(1e-08, np.abs(out) + np.abs(ref))))
    assert err < 1e-07, f'conv2d с b=None (без смещения) расходится с torch: относительная ошибка {err:.2e}'

@test_case(points=None, hidden=True)
def test_conv2d_pads_all_four_sides(conv2d):
    import numpy as np
    import torch
    x = np.ones((1, 1, 4, 5))
    w = np.ones((1, 1, 3, 3))
    for p in (1, 2):
        out = np.asarray(conv2d(x, w, None, stride=1, padding=p))
        ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=p).numpy()
        assert out.shape == ref.shape, f'conv2d: x {x.shape}, ядро 3x3, padding={p}: ожидалась форма {ref.shape}, получено {out.shape}'
        assert np.allclose(out, ref), f'conv2d единичным ядром по единичной картинке 4x5 с padding={p} должна посчитать, сколько пикселей окна попало внутрь картинки; ожидалось\n{ref[0, 0]}\nполучено\n{out[0, 0]}\nПроверьте, что нули добавлены со всех четырёх сторон'

@test_case(points=None, hidden=True)
def test_conv2d_stride_not_dividing(conv2d, seed):
    import numpy as np
    import torch
    rng = np.random.default_rng([seed, 44])
    for h, wd, kh, kw, s, p in [(8, 9, 3, 2, 2, 0), (10, 7, 2, 4, 3, 1), (9, 9, 4, 3, 2, 2)]:
        x = rng.standard_normal((2, 2, h, wd))
        w = rng.standard_normal((2, 2, kh, kw))
        b = rng.standard_normal(2)
        out = np.asarray(conv2d(x, w, b, stride=s, padding=p))
        ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=s, padding=p).numpy()
        assert out.shape == ref.shape, f'conv2d: x {x.shape}, w {w.shape}, stride={s}, padding={p}: ожидалась форма {ref.shape}, получено {out.shape}. Размер выхода округляется вниз'
        err = float(np.max(np.abs(out - ref) / np.maximum(1e-08, np.abs(out) + np.abs(ref))))
        assert err < 1e-07, f'conv2d: x {x.shape}, w {w.shape}, stride={s}, padding={p}: относительная ошибка {err:.2e} против torch'

@test_case(points=None, hidden=True)
def test_conv2d_pointwise_and_full_kernels(conv2d, seed):
    import numpy as np
    import torch
    rng = np.random.default_rng([seed, 46])
    x = rng.standard_normal((2, 4, 5, 6))
    for kh, kw in [(1, 1), (5, 6)]:
        w = rng.standard_normal((3, 4, kh, kw))
        b = rng.standard_normal(3)
        out = np.asarray(conv2d(x, w, b, stride=1, padding=0))
        ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)).numpy()
        assert out.shape == ref.shape, f'conv2d: x {x.shape}, w {w.shape}: ожидалась форма {ref.shape}, получено {out.shape}'
        err = float(np.max(np.abs(out - ref) / np.maximum(1e-08, np.abs(out) + np.abs(ref))))
        assert err < 1e-07, f'conv2d: x {x.shape}, w {w.shape}: относительная ошибка {err:.2e} против torch. Каждый фильтр суммирует по всем входным каналам'

@test_case(points=None, hidden=True)
def test_conv2d_bias_per_channel(conv2d, seed):
    import numpy as np
    rng = np.random.default_rng([seed, 45])
    x = np.zeros((2, 2, 3, 7))
    w = rng.standard_normal((5, 2, 3, 3))
    b = np.arange(1.0, 6.0) * 10.0
    out = np.asarray(conv2d(x, w, b, stride=1, padding=0))
    assert out.shape == (2, 5, 1, 5), f'conv2d: x {x.shape}, w {w.shape}: ожидалась форма (2, 5, 1, 5), получено {out.shape}'
    expected = np.broadcast_to(b.reshape(1, 5, 1, 1), (2, 5, 1, 5))
    assert np.allclose(out, expected), f'на нулевом входе conv2d должна вернуть смещение b[f] во всём канале f, получено по каналам {out[0, :, 0, :].tolist()}. Смещение прибавляется к оси каналов: b.reshape(1, F, 1, 1)'

