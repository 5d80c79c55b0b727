from otter.test_files import test_case

OK_FORMAT = False

name = "max_pool2d"
points = 2

@test_case(points=None, hidden=False)
def test_max_pool2d_lesson_example(max_pool2d):
    import numpy as np
    x = np.array([[1, 3, 2, 0], [5, 4, 1, 1], [-1, -2, 7, 8], [-3, -4, 6, 5]], dtype=np.float64)[None, None]
    expected = np.array([[5.0, 2.0], [-1.0, 8.0]])
    out = np.asarray(max_pool2d(x, 2))
    assert out.shape == (1, 1, 2, 2), f'max_pool2d: вход (1, 1, 4, 4), окно 2: ожидалась форма (1, 1, 2, 2), получено {out.shape}'
    assert out.dtype == np.float64, f'max_pool2d должна вернуть массив float64, получено {out.dtype}'
    assert np.allclose(out[0, 0], expected), f'max_pool2d на примере из текста вернула\n{out[0, 0]}\nожидалось\n{expected}. Если слева внизу 0, максимум начинается с нуля, а не с элементов окна'

@test_case(points=None, hidden=False)
def test_max_pool2d_matches_torch(max_pool2d):
    import numpy as np
    import torch
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 8))
    out = np.asarray(max_pool2d(x, 2))
    ref = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2).numpy()
    assert out.shape == ref.shape, f'max_pool2d: вход {x.shape}, окно 2: ожидалась форма {ref.shape}, получено {out.shape}'
    assert out.dtype == np.float64, f'max_pool2d должна вернуть массив float64, получено {out.dtype}'
    err = float(np.max(np.abs(out - ref) / np.maximum(1e-08, np.abs(out) + np.abs(ref))))
    assert err < 1e-07, f'max_pool2d расходится с torch.nn.functional.max_pool2d: относительная ошибка {err:.2e}'

@test_case(points=None, hidden=True)
def test_max_pool2d_floor_mode(max_pool2d, seed):
    import numpy as np
    import torch
    rng = np.random.default_rng([seed, 51])
    for _ in range(3):
        k = int(rng.integers(2, 4))
        n, c = (int(v) for v in rng.integers(1, 4, size=2))
        h, w = (int(v) for v in rng.integers(k, 12, size=2))
        if h % k == 0:
            h += 1
        x = np.abs(rng.standard_normal((n, c, h, w))) + 0.01
        out = np.asarray(max_pool2d(x, k))
        ref = torch.nn.functional.max_pool2d(torch.from_numpy(x), k).numpy()
        assert out.shape == ref.shape, f'max_pool2d: вход {x.shape}, окно {k}, stride=None: ожидалась форма {ref.shape}, получено {out.shape}. Размер выхода округляется вниз, шаг по умолчанию равен размеру окна'
        assert out.dtype == np.float64, f'max_pool2d должна вернуть массив float64, получено {out.dtype}'
        err = float(np.max(np.abs(out - ref) / np.maximum(1e-08, np.abs(out) + np.abs(ref))))
        assert err < 1e-07, f'max_pool2d: вход {x.shape}, окно {k}: относительная ошибка {err:.2e} против torch'

@test_case(points=None, hidden=True)
def test_max_pool2d_stride_differs_from_kernel(max_pool2d, seed):
    import numpy as np
    import torch
    rng = np.random.default_rng([seed, 52])
    for k, s in [(3, 2), (2, 1), (2, 3), (3, 1)]:
        x = rng.standard_normal((2, 2, 9, 8))
        out = np.asarray(max_pool2d(x, k, s))
        ref = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, stride=s).numpy()
        assert out.shape == ref.shape, f'max_pool2d: вход {x.shape}, окно {k}, stride={s}: ожидалась форма {ref.shape}, получено {out.shape}'
        err = float(np.max(np.abs(out - ref) / np.maximum(1e-08, np.abs(out) + np.abs(ref))))
        assert err < 1e-07, f'max_pool2d с окном {k} и stride={s}: относительная ошибка {err:.2e} против torch. Учитывается ли шаг?'

@test_case(points=None, hidden=True)
def test_max_pool2d_all_negative(max_pool2d, seed):
    import numpy as np
    import torch
    rng = np.random.default_rng([seed, 53])
    x = -rng.uniform(0.5, 3.0, size=(2, 3, 7, 6))
    out = np.asarray(max_pool2d(x, 2))
    ref = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2).numpy()
    assert out.shape == ref.shape, f'max_pool2d: вход {x.shape}, окно 2: ожидалась форма {ref.shape}, получено {out.shape}'
    err = float(np.max(np.abs(out - ref) / np.maximum(1e-08, np.abs(out) + np.abs(ref))))
    assert err < 1e-07, f'max_pool2d на входе из одних отрицательных чисел: относительная ошибка {err:.2e}, наибольшее значение выхода {out.max():.3g} (должно быть < 0). Максимум нужно начинать с элементов окна, а не с нуля'

