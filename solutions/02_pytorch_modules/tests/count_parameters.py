from otter.test_files import test_case

OK_FORMAT = False

name = "count_parameters"
points = 1

@test_case(points=None, hidden=False)
def test_count_parameters_partly_frozen(count_parameters, PartlyFrozenNet):
    n = count_parameters(PartlyFrozenNet())
    hints = {323: ' Похоже, посчитаны и замороженные параметры (requires_grad=False).', 364: ' Похоже, посчитан весь state_dict(): в нём ещё и буферы BatchNorm, а они не параметры.'}
    assert n is not None and n == 63, f'в PartlyFrozenNet обучаемы только параметры head: 20 * 3 + 3 = 63, получено {n}.' + hints.get(n if isinstance(n, int) else None, '')

@test_case(points=None, hidden=True)
def test_count_parameters_random_frozen(count_parameters, seed, probes):
    import math
    import numpy as np
    rng = np.random.default_rng(seed)
    sizes = [int(v) for v in rng.integers(2, 30, size=int(rng.integers(3, 6)))]
    model = probes.build_mlp(sizes)
    shapes = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f'{2 * i}.weight'], shapes[f'{2 * i}.bias'] = ([b, a], [b])
    names = sorted(shapes)
    k = int(rng.integers(1, len(names)))
    frozen = sorted((str(v) for v in rng.choice(names, size=k, replace=False)))
    probes.set_requires_grad(model, frozen, False)
    expected = sum((math.prod(shapes[n]) for n in names if n not in frozen))
    total = sum((math.prod(s) for s in shapes.values()))
    got = count_parameters(model)
    hint = ' Похоже, посчитаны и замороженные параметры.' if got == total else ''
    assert got is not None and got == expected, f'сеть из Linear-слоёв {sizes} с замороженными параметрами {frozen}: обучаемых {expected}, получено {got}.{hint}'

@test_case(points=None, hidden=True)
def test_count_parameters_buffers_and_extremes(count_parameters, seed, probes):
    import math
    import numpy as np
    rng = np.random.default_rng(seed + 1)
    sizes = [int(v) for v in rng.integers(2, 30, size=int(rng.integers(3, 5)))]
    model = probes.build_mlp(sizes, batchnorm=True)
    shapes = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f'{3 * i}.weight'], shapes[f'{3 * i}.bias'] = ([b, a], [b])
        if i < len(sizes) - 2:
            shapes[f'{3 * i + 1}.weight'], shapes[f'{3 * i + 1}.bias'] = ([b], [b])
    total = sum((math.prod(s) for s in shapes.values()))
    got = count_parameters(model)
    assert got is not None and got == total, f'сеть Linear + BatchNorm1d {sizes}, всё обучаемо: ожидалось {total}, получено {got}. Буферы BatchNorm (running_mean, running_var, num_batches_tracked) лежат в state_dict(), но параметрами не являются'
    probes.set_requires_grad(model, sorted(shapes), False)
    got = count_parameters(model)
    assert got is not None and got == 0, f'все параметры заморожены: ожидалось 0, получено {got}'

