from otter.test_files import test_case

OK_FORMAT = False

name = "MLP"
points = 2

@test_case(points=None, hidden=False)
def test_mlp_forward_and_registration(MLP, set_parameters):
    import torch
    g = torch.Generator().manual_seed(0)
    model = MLP(8, [16, 12], 3)
    x = torch.randn(5, 8, generator=g)
    out = model(x)
    assert isinstance(out, torch.Tensor), f'forward должен возвращать тензор, получено {type(out).__name__}'
    assert tuple(out.shape) == (5, 3), f'MLP(8, [16, 12], 3) на входе (5, 8): ожидался выход (5, 3), получено {tuple(out.shape)}'
    state = model.state_dict()
    assert len(state) == 6, f'в state_dict() должно быть 6 тензоров (weight и bias трёх слоёв Linear), получено {len(state)}: {list(state)}. Если слои лежат в обычном списке Python, модуль их не видит: используйте nn.ModuleList или nn.Sequential'
    total = sum((v.numel() for v in state.values()))
    expected = 8 * 16 + 16 + 16 * 12 + 12 + 12 * 3 + 3
    assert total == expected, f'в state_dict() {total} чисел, ожидалось {expected}'
    drawn = {}
    for a, b in [(8, 16), (16, 12), (12, 3)]:
        drawn[b, a] = torch.randn(b, a, generator=g) / a ** 0.5
        drawn[b,] = torch.randn(b, generator=g) / a ** 0.5
    shapes = {name: tuple(v.shape) for name, v in state.items()}
    assert sorted(shapes.values()) == sorted(drawn), f'MLP(8, [16, 12], 3): в state_dict() должны быть тензоры форм {sorted(drawn)}, получено {sorted(shapes.values())}'
    set_parameters(model, {name: drawn[shape] for name, shape in shapes.items()})
    expected_out = torch.relu(torch.relu(x @ drawn[16, 8].T + drawn[16,]) @ drawn[12, 16].T + drawn[12,]) @ drawn[3, 12].T + drawn[3,]
    out = model(x)
    assert isinstance(out, torch.Tensor), f'MLP(8, [16, 12], 3): forward должен возвращать тензор, получено {type(out).__name__}'
    err = (out.detach() - expected_out).abs().max().item()
    assert err < 0.0001, f'MLP(8, [16, 12], 3): с заданными весами выход не совпадает с цепочкой Linear -> ReLU -> Linear -> ReLU -> Linear (максимальная ошибка {err:.2e}): forward должен применять слои по порядку к x'

@test_case(points=None, hidden=True)
def test_mlp_layers_registered(MLP, seed, probes):
    import numpy as np
    import torch
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(int(seed))
    for _ in range(2):
        n_in, n_classes = (int(rng.integers(2, 40)), int(rng.integers(2, 12)))
        hidden = [int(v) for v in rng.integers(2, 40, size=int(rng.integers(1, 4)))]
        dims = [n_in, *hidden, n_classes]
        expected = sorted([[b, a] for a, b in zip(dims[:-1], dims[1:])] + [[b] for b in dims[1:]])
        model = MLP(n_in, hidden, n_classes)
        where = f'MLP({n_in}, {hidden}, {n_classes})'
        params = probes.parameter_shapes(model)
        assert sorted(params.values()) == expected, f'{where}: parameters() должны содержать тензоры форм {expected}, получено {sorted(params.values())}. Слои в обычном списке Python не регистрируются: используйте nn.ModuleList или nn.Sequential'
        state = probes.state_dict_tensors(model)
        shapes = sorted(([int(d) for d in v.shape] for v in state.values()))
        assert shapes == expected, f'{where}: state_dict() должен содержать тензоры форм {expected}, получено {shapes} (ключи: {list(state)})'
        total = sum((int(np.prod(s)) for s in expected))
        count = probes.count_trainable(model)
        assert count == total, f'{where}: обучаемых параметров должно быть {total}, получено {count}'
        drawn = {}
        for a, b in zip(dims[:-1], dims[1:]):
            drawn[b, a] = torch.randn(b, a, generator=g) / a ** 0.5
            drawn[b,] = torch.randn(b, generator=g) / a ** 0.5
        probes.load_parameters(model, {name: drawn[tuple(s)] for name, s in params.items()})
        x = torch.randn(5, n_in, generator=g)
        expected_out = x
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            expected_out = expected_out @ drawn[b, a].T + drawn[b,]
            if i < len(dims) - 2:
                expected_out = torch.relu(expected_out)
        out = model(x)
        assert isinstance(out, torch.Tensor), f'{where}: forward должен возвращать тензор, получено {type(out).__name__}'
        assert tuple(out.shape) == tuple(expected_out.shape), f'{where}: ожидался выход {tuple(expected_out.shape)}, получено {tuple(out.shape)}'
        err = (out.detach() - expected_out).abs().max().item()
        assert err < 0.0001, f'{where}: с заданными весами выход не совпадает с цепочкой Linear -> ReLU -> ... -> Linear (максимальная ошибка {err:.2e}): forward должен применять слои по порядку к x'

@test_case(points=None, hidden=True)
def test_mlp_forward_matches_reference(MLP, seed, probes):
    import numpy as np
    import torch
    rng = np.random.default_rng(seed + 1)
    g = torch.Generator().manual_seed(int(seed) + 1)
    n_hidden = int(rng.integers(1, 4))
    dims = [int(v) for v in rng.choice(np.arange(3, 40), size=n_hidden + 2, replace=False)]
    model = MLP(dims[0], dims[1:-1], dims[-1])
    where = f'MLP({dims[0]}, {dims[1:-1]}, {dims[-1]})'
    names = probes.parameter_shapes(model)
    layers = list(zip(dims[:-1], dims[1:]))
    wanted = sorted([[b, a] for a, b in layers] + [[b] for _, b in layers])
    assert sorted(names.values()) == wanted, f'{where}: параметры должны быть weight и bias слоёв Linear формами {wanted}, получено {sorted(names.values())}'
    drawn = {tuple(s): torch.randn(*s, generator=g) / s[-1] ** 0.5 for s in wanted}
    probes.load_parameters(model, {name: drawn[tuple(s)] for name, s in names.items()})
    x = torch.randn(6, dims[0], generator=g)
    h = x
    for i, (a, b) in enumerate(layers):
        h = h @ drawn[b, a].T + drawn[b,]
        if i < len(layers) - 1:
            h = torch.relu(h)
    out = model(x)
    assert isinstance(out, torch.Tensor), f'forward должен возвращать тензор, получено {type(out).__name__}'
    assert tuple(out.shape) == tuple(h.shape), f'{where}: ожидался выход {tuple(h.shape)}, получено {tuple(out.shape)}'
    err = (out.detach() - h).abs().max().item()
    assert err < 0.0001, f'{where}: выход не совпадает с цепочкой Linear -> ReLU -> ... -> Linear (без ReLU в конце), максимальная ошибка {err:.2e}'

@test_case(points=None, hidden=True)
def test_mlp_edge_cases(MLP, seed, probes):
    import torch
    g = torch.Generator().manual_seed(int(seed) + 2)
    for n_in, hidden, n_classes in ((5, [], 3), (6, [9, 8, 7, 5], 4)):
        where = f'MLP({n_in}, {hidden}, {n_classes})'
        model = MLP(n_in, hidden, n_classes)
        dims = [n_in, *hidden, n_classes]
        expected = sum((a * b + b for a, b in zip(dims[:-1], dims[1:])))
        count = probes.count_trainable(model)
        assert count == expected, f'{where}: обучаемых параметров должно быть {expected} ({len(dims) - 1} слоёв Linear), получено {count}'
        x = torch.randn(4, n_in, generator=g)
        out = model(x)
        assert isinstance(out, torch.Tensor), f'{where}: forward должен возвращать тензор, получено {type(out).__name__}'
        assert tuple(out.shape) == (4, n_classes), f'{where}: ожидался выход (4, {n_classes}), получено {tuple(out.shape)}'
        params = probes.parameter_shapes(model)
        wanted = sorted([[b, a] for a, b in zip(dims[:-1], dims[1:])] + [[b] for b in dims[1:]])
        assert sorted(params.values()) == wanted, f'{where}: параметры должны быть weight и bias слоёв Linear формами {wanted}, получено {sorted(params.values())}'
        drawn = {}
        for a, b in zip(dims[:-1], dims[1:]):
            drawn[b, a] = torch.randn(b, a, generator=g) / a ** 0.5
            drawn[b,] = torch.randn(b, generator=g) / a ** 0.5
        probes.load_parameters(model, {name: drawn[tuple(s)] for name, s in params.items()})
        x = torch.randn(3, n_in, generator=g)
        expected_out = x
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            expected_out = expected_out @ drawn[b, a].T + drawn[b,]
            if i < len(dims) - 2:
                expected_out = torch.relu(expected_out)
        out = model(x)
        assert isinstance(out, torch.Tensor), f'{where}: forward должен возвращать тензор, получено {type(out).__name__}'
        assert tuple(out.shape) == tuple(expected_out.shape), f'{where}: ожидался выход {tuple(expected_out.shape)}, получено {tuple(out.shape)}'
        err = (out.detach() - expected_out).abs().max().item()
        assert err < 0.0001, f'{where}: с заданными весами выход не совпадает с цепочкой Linear -> ReLU -> ... -> Linear (максимальная ошибка {err:.2e}): forward должен применять слои по порядку к x'

