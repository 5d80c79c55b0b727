from otter.test_files import test_case

OK_FORMAT = False

name = "corr2d"
points = 2

@test_case(points=None, hidden=False)
def test_corr2d_lesson_example(corr2d):
    import numpy as np
    x = np.arange(9, dtype=np.float64).reshape(3, 3)
    k = np.array([[0.0, 1.0], [2.0, 3.0]])
    expected = np.array([[19.0, 25.0], [37.0, 43.0]])
    out = np.asarray(corr2d(x, k))
    assert out.shape == (2, 2), f'corr2d: для входа 3x3 и ядра 2x2 ожидалась форма (2, 2), получено {out.shape}'
    assert out.dtype == np.float64, f'corr2d должна вернуть массив float64, получено {out.dtype}'
    assert np.allclose(out, expected), f'corr2d на примере из текста вернула\n{out}\nожидалось\n{expected}. Если получилось 5 в левом верхнем углу, ядро перевёрнуто'

@test_case(points=None, hidden=False)
def test_corr2d_matches_torch(corr2d):
    import numpy as np
    import torch
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 7))
    k = rng.standard_normal((3, 2))
    out = np.asarray(corr2d(x, k))
    ref = torch.nn.functional.conv2d(torch.from_numpy(x)[None, None], torch.from_numpy(k)[None, None])[0, 0].numpy()
    assert out.shape == ref.shape, f'corr2d: вход {x.shape}, ядро {k.shape}: ожидалась форма {ref.shape}, получено {out.shape}'
    assert out.dtype == np.float64, f'corr2d должна вернуть массив float64, получено {out.dtype}'
    err = float(np.max(np.abs(out - ref) / np.maximum(1e-08, np.abs(out) + np.abs(ref))))
    assert err < 1e-07, f'corr2d расходится с torch.nn.functional.conv2d: относительная ошибка {err:.2e} (вход {x.shape}, ядро {k.shape})'

@test_case(points=None, hidden=True)
def test_corr2d_random_shapes(corr2d, seed):
    import numpy as np
    import torch
    rng = np.random.default_rng([seed, 21])
    for _ in range(5):
        h, w = (int(v) for v in rng.integers(2, 11, size=2))
        kh, kw = (int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1)))
        x = rng.standard_normal((h, w))
        k = rng.standard_normal((kh, kw))
        out = np.asarray(corr2d(x, k))
        ref = torch.nn.functional.conv2d(torch.from_numpy(x)[None, None], torch.from_numpy(k)[None, None])[0, 0].numpy()
        assert out.shape == ref.shape, f'corr2d: вход {x.shape}, ядро {k.shape}: ожидалась форма {ref.shape}, получено {out.shape}'
        assert out.dtype == np.float64, f'corr2d должна вернуть массив float64, получено {out.dtype}'
        err = float(np.max(np.abs(out - ref) / np.maximum(1e-08, np.abs(out) + np.abs(ref))))
        assert err < 1e-07, f'corr2d: вход {x.shape}, ядро {k.shape}: относительная ошибка {err:.2e} против torch'

@test_case(points=None, hidden=True)
def test_corr2d_edge_kernels(corr2d, seed):
    import numpy as np
    import torch
    rng = np.random.default_rng([seed, 22])
    x = rng.standard_normal((5, 8))
    for shape in [(5, 8), (1, 1), (1, 4), (5, 1), (2, 7)]:
        k = rng.standard_normal(shape)
        out = np.asarray(corr2d(x, k))
        ref = torch.nn.functional.conv2d(torch.from_numpy(x)[None, None], torch.from_numpy(k)[None, None])[0, 0].numpy()
        assert out.shape == ref.shape, f'corr2d: вход {x.shape}, ядро {k.shape}: ожидалась форма {ref.shape}, получено {out.shape}'
        err = float(np.max(np.abs(out - ref) / np.maximum(1e-08, np.abs(out) + np.abs(ref))))
        assert err < 1e-07, f'corr2d: вход {x.shape}, ядро {k.shape}: относительная ошибка {err:.2e} против torch'

@test_case(points=None, hidden=True)
def test_corr2d_asymmetric_kernel(corr2d, seed):
    import numpy as np
    rng = np.random.default_rng([seed, 23])
    x = rng.standard_normal((7, 6))
    k = np.zeros((3, 3))
    k[0, 0] = 1.0
    out = np.asarray(corr2d(x, k))
    assert out.shape == (5, 4), f'corr2d: вход (7, 6), ядро (3, 3): ожидалась форма (5, 4), получено {out.shape}'
    assert np.allclose(out, x[:5, :4]), 'corr2d с ядром, у которого единица только в левом верхнем углу, должна вернуть левый верхний пиксель каждого окна, то есть x[:H-2, :W-2]. Похоже, ядро переворачивается или окно сдвинуто'

