from otter.test_files import test_case

OK_FORMAT = False

name = "ConvNet"
points = 2

@test_case(points=None, hidden=False)
def test_convnet_output_shape(ConvNet):
    import torch
    model = ConvNet()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert isinstance(out, torch.Tensor), f'ConvNet должна возвращать тензор логитов, а вернула {type(out).__name__}'
    assert tuple(out.shape) == (4, 10), f'для входа формы (4, 3, 32, 32) ожидался выход (4, 10), получено {tuple(out.shape)}'
    spread = (out.detach() - out.detach()[:1]).abs().max().item()
    for _ in range(3):
        if spread > 1e-06:
            break
        again = ConvNet()(x)
        spread = (again.detach() - again.detach()[:1]).abs().max().item()
    assert spread > 1e-06, 'ConvNet отвечает одинаково на разные картинки (нули или константа): forward не использует вход'

@test_case(points=None, hidden=False)
def test_convnet_parameter_budget(ConvNet):
    import torch
    model = ConvNet()
    n = sum((v.numel() for v in model.state_dict().values()))
    assert n > 0, 'у ConvNet нет ни параметров, ни буферов'
    assert n <= 5000000, f'в state_dict ConvNet {n:,} чисел, а обучаемых параметров допускается не больше 5,000,000'
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    out = model(x)
    assert isinstance(out, torch.Tensor), f'ConvNet должна возвращать тензор, а вернула {type(out).__name__}'
    spread = (out.detach() - out.detach()[:1]).abs().max().item()
    for _ in range(3):
        if spread > 1e-06:
            break
        again = ConvNet()(x)
        spread = (again.detach() - again.detach()[:1]).abs().max().item()
    assert spread > 1e-06, 'ConvNet отвечает одинаково на разные картинки (нули или константа): forward не использует вход'

@test_case(points=None, hidden=True)
def test_convnet_any_batch_size(ConvNet, seed, probes):
    import numpy as np
    import torch
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    model = ConvNet()
    probes.set_mode(model, False)
    odd = 2 * int(rng.integers(1, 4)) + 1
    for batch in (1, odd):
        x = torch.randn(batch, 3, 32, 32, generator=gen)
        out = model(x)
        assert isinstance(out, torch.Tensor), f'ConvNet должна возвращать тензор, а вернула {type(out).__name__}'
        assert tuple(out.shape) == (batch, 10), f'в режиме eval для батча из {batch} картинок ожидался выход ({batch}, 10), получено {tuple(out.shape)}; не задавайте размер батча в коде'
        assert bool(torch.isfinite(out).all()), 'в выходе ConvNet есть NaN или бесконечность'
    x = torch.randn(odd, 3, 32, 32, generator=gen)
    together = model(x)
    one_by_one = torch.cat([model(x[i:i + 1]) for i in range(odd)])
    err = (together - one_by_one).abs().max().item()
    assert err <= 0.0001 * (1.0 + together.abs().max().item()), f'в режиме eval ответ для картинки должен зависеть только от неё самой: выходы для батча из {odd} картинок и для тех же картинок по одной расходятся на {err:.3g}'
    spread = (together.detach() - together.detach()[:1]).abs().max().item()
    for _ in range(3):
        if spread > 1e-06:
            break
        again = ConvNet()(x)
        spread = (again.detach() - again.detach()[:1]).abs().max().item()
    assert spread > 1e-06, 'ConvNet отвечает одинаково на разные картинки (нули или константа): forward не использует вход'

@test_case(points=None, hidden=True)
def test_convnet_within_budget(ConvNet, seed, probes):
    import torch
    model = ConvNet()
    n = probes.count_parameters(model)
    assert 0 < n <= 5000000, f'у ConvNet {n:,} обучаемых параметров, а нужно от 1 до 5,000,000'
    probes.set_mode(model, False)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    out = model(x)
    assert isinstance(out, torch.Tensor), f'ConvNet должна возвращать тензор, а вернула {type(out).__name__}'
    spread = (out.detach() - out.detach()[:1]).abs().max().item()
    for _ in range(3):
        if spread > 1e-06:
            break
        again = ConvNet()(x)
        spread = (again.detach() - again.detach()[:1]).abs().max().item()
    assert spread > 1e-06, 'ConvNet отвечает одинаково на разные картинки (нули или константа): forward не использует вход'

@test_case(points=None, hidden=True)
def test_convnet_random_init(ConvNet, seed, probes):
    import torch
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    first = probes.init_outputs(ConvNet, seed, images)
    second = probes.init_outputs(ConvNet, seed + 1, images)
    assert isinstance(first, torch.Tensor) and tuple(first.shape) == (4, 10), 'ConvNet должна возвращать тензор формы (B, 10)'
    assert not torch.allclose(first, second), 'ConvNet(), созданные при разных torch.manual_seed, отвечают одинаково: сеть должна начинать со случайных весов (не загружайте веса и не задавайте seed в конструкторе)'
    spread = (first.detach() - first.detach()[:1]).abs().max().item()
    for _ in range(3):
        if spread > 1e-06:
            break
        again = ConvNet()(images)
        spread = (again.detach() - again.detach()[:1]).abs().max().item()
    assert spread > 1e-06, 'ConvNet отвечает одинаково на разные картинки (нули или константа): forward не использует вход'

@test_case(points=None, hidden=True)
def test_convnet_reloads_its_state_dict(ConvNet, seed, probes):
    import torch
    gen = torch.Generator().manual_seed(seed)
    model = ConvNet()
    probes.set_mode(model, True)
    warmup = model(torch.randn(8, 3, 32, 32, generator=gen))
    assert isinstance(warmup, torch.Tensor), 'ConvNet должна возвращать тензор'
    clone = probes.clone_via_state_dict(model)
    probes.set_mode(model, False)
    probes.set_mode(clone, False)
    x = torch.randn(5, 3, 32, 32, generator=gen)
    expected, got = (model(x), clone(x))
    err = (expected - got).abs().max().item()
    assert err <= 1e-05 * (1.0 + expected.abs().max().item()), f'новая ConvNet() с загруженным state_dict обученной сети отвечает иначе (расхождение {err:.3g}): грейдер восстанавливает сеть из convnet.pt именно так'
    spread = (expected.detach() - expected.detach()[:1]).abs().max().item()
    for _ in range(3):
        if spread > 1e-06:
            break
        again = ConvNet()(x)
        spread = (again.detach() - again.detach()[:1]).abs().max().item()
    assert spread > 1e-06, 'ConvNet отвечает одинаково на разные картинки (нули или константа): forward не использует вход'

@test_case(points=None, hidden=True)
def test_convnet_returns_logits(ConvNet, seed, probes):
    import torch
    model = ConvNet()
    probes.set_mode(model, False)
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    out = model(x)
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == (6, 10), 'ConvNet должна возвращать тензор формы (B, 10)'
    looks_like_probabilities = bool((out >= 0).all()) and bool(torch.allclose(out.sum(dim=1), torch.ones(6), atol=0.0001))
    assert not looks_like_probabilities, 'ConvNet возвращает вероятности (строки неотрицательны и в сумме дают 1), а нужны логиты: уберите softmax из forward, nn.CrossEntropyLoss применит его сама'
    spread = (out.detach() - out.detach()[:1]).abs().max().item()
    for _ in range(3):
        if spread > 1e-06:
            break
        again = ConvNet()(x)
        spread = (again.detach() - again.detach()[:1]).abs().max().item()
    assert spread > 1e-06, 'ConvNet отвечает одинаково на разные картинки (нули или константа): forward не использует вход'

