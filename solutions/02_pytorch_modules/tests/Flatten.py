from otter.test_files import test_case

OK_FORMAT = False

name = "Flatten"
points = 1

@test_case(points=None, hidden=False)
def test_flatten_examples(Flatten):
    import torch
    x = torch.arange(120.0).reshape(2, 3, 4, 5)
    cases = [((), (2, 60)), ((0, -1), (120,)), ((1, 2), (2, 12, 5)), ((-3, -2), (2, 12, 5)), ((2, 2), (2, 3, 4, 5)), ((-1, -1), (2, 3, 4, 5))]
    for args, shape in cases:
        out = Flatten(*args)(x)
        call = f'Flatten{args}' if args else 'Flatten()'
        assert isinstance(out, torch.Tensor), f'{call}: forward должен возвращать тензор, получено {type(out).__name__}'
        assert tuple(out.shape) == shape, f'{call} на входе (2, 3, 4, 5): ожидалась форма {shape}, получено {tuple(out.shape)}'
        assert torch.equal(out, x.reshape(shape)), f'{call}: форма верная, но элементы переставлены'

@test_case(points=None, hidden=True)
def test_flatten_non_contiguous(Flatten, seed, probes):
    import numpy as np
    import torch
    rng = np.random.default_rng(seed + 1)
    g = torch.Generator().manual_seed(int(seed) + 1)
    shape = [int(v) for v in rng.integers(2, 5, size=4)]
    x = torch.randn(*shape, generator=g)
    layer = Flatten(1, 2)
    try:
        out = probes.call_on_permuted(layer, x, [0, 2, 1, 3])
    except Exception as exc:
        raise AssertionError(f'Flatten(1, 2) упал на несмежном в памяти тензоре (после permute): {exc}. view работает не всегда, reshape работает всегда') from None
    expected = torch.flatten(x.permute(0, 2, 1, 3), 1, 2)
    assert isinstance(out, torch.Tensor), f'forward должен возвращать тензор, получено {type(out).__name__}'
    assert tuple(out.shape) == tuple(expected.shape) and torch.equal(out, expected), 'Flatten(1, 2) на тензоре после permute(0, 2, 1, 3) вернул не то, что torch.flatten'

@test_case(points=None, hidden=True)
def test_flatten_random_ranges(Flatten, seed, probes):
    import numpy as np
    import torch
    assert probes.is_module(Flatten()), 'Flatten должен быть подклассом nn.Module (как nn.Flatten)'
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(int(seed))
    cases = [([int(v) for v in rng.integers(2, 5, size=4)], ()), ([int(v) for v in rng.integers(2, 4, size=5)], (1, -2)), ([int(v) for v in rng.integers(2, 5, size=4)], (-3, 2))]
    for _ in range(10):
        ndim = int(rng.integers(1, 6))
        start = int(rng.integers(0, ndim))
        end = int(rng.integers(start, ndim))
        start = start - ndim if rng.random() < 0.5 else start
        end = end - ndim if rng.random() < 0.5 else end
        cases.append(([int(v) for v in rng.integers(1, 5, size=ndim)], (start, end)))
    for shape, args in cases:
        x = torch.randn(*shape, generator=g)
        out = Flatten(*args)(x)
        call = f'Flatten{args}' if args else 'Flatten()'
        expected = torch.flatten(x, *args) if args else torch.flatten(x, 1)
        assert isinstance(out, torch.Tensor), f'{call}: forward должен возвращать тензор, получено {type(out).__name__}'
        assert tuple(out.shape) == tuple(expected.shape), f'{call} на входе {tuple(shape)}: ожидалась форма {tuple(expected.shape)}, получено {tuple(out.shape)}'
        assert torch.equal(out, expected), f'{call} на входе {tuple(shape)}: форма верная, но элементы переставлены'

