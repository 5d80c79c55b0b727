from otter.test_files import test_case

OK_FORMAT = False

name = "hand_kernels"
points = 1

@test_case(points=None, hidden=False)
def test_blur_kernel_normalized(BLUR_KERNEL):
    import numpy as np
    k = np.asarray(BLUR_KERNEL)
    assert k.shape == (3, 3), f'BLUR_KERNEL должен быть массивом 3x3, получена форма {k.shape}'
    assert np.issubdtype(k.dtype, np.number), f'BLUR_KERNEL должен состоять из чисел, dtype {k.dtype}'
    k = k.astype(np.float64)
    assert np.all(k >= 0), f'веса BLUR_KERNEL должны быть неотрицательными, а есть {k.min():.3g}'
    assert abs(k.sum() - 1.0) < 1e-09, f'сумма весов BLUR_KERNEL должна быть 1 (яркость сохраняется), а она {k.sum():.6g}'

@test_case(points=None, hidden=False)
def test_edge_kernel_flat_region(EDGE_KERNEL):
    import numpy as np
    k = np.asarray(EDGE_KERNEL)
    assert k.shape == (3, 3), f'EDGE_KERNEL должен быть массивом 3x3, получена форма {k.shape}'
    assert np.issubdtype(k.dtype, np.number), f'EDGE_KERNEL должен состоять из чисел, dtype {k.dtype}'
    k = k.astype(np.float64)
    assert np.abs(k).sum() > 1e-06, 'EDGE_KERNEL состоит из одних нулей: он ни на что не откликается'
    flat = np.full((3, 3), 0.7)
    response = float(np.sum(flat * k))
    assert abs(response) < 1e-09, f'на ровной области (все пиксели 0.7) отклик EDGE_KERNEL равен {response:.4g}, а должен быть 0: сумма весов ядра должна быть нулевой'

@test_case(points=None, hidden=True)
def test_edge_kernel_horizontal_edge(EDGE_KERNEL, seed):
    import numpy as np
    k = np.asarray(EDGE_KERNEL)
    assert k.shape == (3, 3), f'EDGE_KERNEL должен быть массивом 3x3, получена форма {k.shape}'
    k = k.astype(np.float64)
    assert np.abs(k).sum() > 1e-06, 'EDGE_KERNEL состоит из одних нулей: он ни на что не откликается'
    rng = np.random.default_rng([seed, 31])
    profiles = [np.r_[np.zeros(4), np.ones(4)], rng.uniform(0.0, 1.0, 8)]
    for g in profiles:
        img = np.repeat(g[:, None], 8, axis=1)
        resp = np.array([[np.sum(img[i:i + 3, j:j + 3] * k) for j in range(6)] for i in range(6)])
        worst = float(np.abs(resp).max())
        assert worst < 1e-09, f'на горизонтальной границе (яркость меняется сверху вниз) отклик EDGE_KERNEL достигает {worst:.4g}, а должен быть 0: сумма каждой строки ядра должна быть нулевой'

@test_case(points=None, hidden=True)
def test_edge_kernel_vertical_edge(EDGE_KERNEL):
    import numpy as np
    k = np.asarray(EDGE_KERNEL)
    assert k.shape == (3, 3), f'EDGE_KERNEL должен быть массивом 3x3, получена форма {k.shape}'
    k = k.astype(np.float64)
    scale = float(np.abs(k).sum())
    assert scale > 1e-06, 'EDGE_KERNEL состоит из одних нулей: он ни на что не откликается'
    img = np.repeat(np.r_[np.zeros(4), np.ones(4)][None, :], 8, axis=0)
    resp = np.array([[np.sum(img[i:i + 3, j:j + 3] * k) for j in range(6)] for i in range(6)])
    peak = float(np.abs(resp).max())
    assert peak >= 0.1 * scale, f'на вертикальной границе (слева 0, справа 1) наибольший модуль отклика EDGE_KERNEL {peak:.4g}, это слишком мало при сумме модулей весов {scale:.4g}: ядро должно сравнивать левый и правый столбцы'

@test_case(points=None, hidden=True)
def test_blur_kernel_smooths(BLUR_KERNEL):
    import numpy as np
    k = np.asarray(BLUR_KERNEL)
    assert k.shape == (3, 3), f'BLUR_KERNEL должен быть массивом 3x3, получена форма {k.shape}'
    k = k.astype(np.float64)
    assert np.all(k >= 0) and abs(k.sum() - 1.0) < 1e-09, 'BLUR_KERNEL должен быть неотрицательным с суммой весов 1'
    noise = np.random.default_rng(0).standard_normal((40, 40))
    smooth = np.array([[np.sum(noise[i:i + 3, j:j + 3] * k) for j in range(38)] for i in range(38)])
    ratio = float(smooth.std() / noise.std())
    assert ratio < 0.8, f'BLUR_KERNEL почти не сглаживает: разброс шума уменьшился лишь до {ratio:.2f} от исходного. Распределите вес по соседним пикселям, а не держите его в одной клетке'

