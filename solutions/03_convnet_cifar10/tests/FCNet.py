from otter.test_files import test_case

OK_FORMAT = False

name = "FCNet"
points = 1

@test_case(points=None, hidden=False)
def test_fcnet_output_shape(FCNet):
    import torch
    model = FCNet()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = model(x)
    assert isinstance(out, torch.Tensor), f'FCNet должна возвращать тензор логитов, а вернула {type(out).__name__}'
    assert tuple(out.shape) == (4, 10), f'для входа формы (4, 3, 32, 32) ожидался выход (4, 10), получено {tuple(out.shape)}'
    spread = (out.detach() - out.detach()[:1]).abs().max().item()
    for _ in range(3):
        if spread > 1e-06:
            break
        again = FCNet()(x)
        spread = (again.detach() - again.detach()[:1]).abs().max().item()
    assert spread > 1e-06, 'FCNet отвечает одинаково на разные картинки (нули или константа): forward не использует вход'

@test_case(points=None, hidden=True)
def test_fcnet_any_batch_size(FCNet, seed, probes):
    import numpy as np
    import torch
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    model = FCNet()
    probes.set_mode(model, False)
    odd = 2 * int(rng.integers(1, 8)) + 1
    for batch in (1, odd):
        x = torch.randn(batch, 3, 32, 32, generator=gen)
        out = model(x)
        assert isinstance(out, torch.Tensor), f'FCNet должна возвращать тензор, а вернула {type(out).__name__}'
        assert tuple(out.shape) == (batch, 10), f'в режиме eval для батча из {batch} картинок ожидался выход ({batch}, 10), получено {tuple(out.shape)}; не задавайте размер батча в коде'
        assert bool(torch.isfinite(out).all()), 'в выходе FCNet есть NaN или бесконечность'
    x = torch.randn(odd, 3, 32, 32, generator=gen)
    together = model(x)
    one_by_one = torch.cat([model(x[i:i + 1]) for i in range(odd)])
    err = (together - one_by_one).abs().max().item()
    assert err <= 0.0001 * (1.0 + together.abs().max().item()), f'в режиме eval ответ для картинки должен зависеть только от неё самой: выходы для батча из {odd} картинок и для тех же картинок по одной расходятся на {err:.3g}'
    spread = (together.detach() - together.detach()[:1]).abs().max().item()
    for _ in range(3):
        if spread > 1e-06:
            break
        again = FCNet()(x)
        spread = (again.detach() - again.detach()[:1]).abs().max().item()
    assert spread > 1e-06, 'FCNet отвечает одинаково на разные картинки (нули или константа): forward не использует вход'

@test_case(points=None, hidden=True)
def test_fcnet_returns_logits(FCNet, seed, probes):
    import torch
    model = FCNet()
    probes.set_mode(model, False)
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    out = model(x)
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == (6, 10), 'FCNet должна возвращать тензор формы (B, 10)'
    looks_like_probabilities = bool((out >= 0).all()) and bool(torch.allclose(out.sum(dim=1), torch.ones(6), atol=0.0001))
    assert not looks_like_probabilities, 'FCNet возвращает вероятности (строки неотрицательны и в сумме дают 1), а нужны логиты: уберите softmax из forward, nn.CrossEntropyLoss применит его сама'
    spread = (out.detach() - out.detach()[:1]).abs().max().item()
    for _ in range(3):
        if spread > 1e-06:
            break
        again = FCNet()(x)
        spread = (again.detach() - again.detach()[:1]).abs().max().item()
    assert spread > 1e-06, 'FCNet отвечает одинаково на разные картинки (нули или константа): forward не использует вход'

