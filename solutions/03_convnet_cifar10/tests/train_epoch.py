from otter.test_files import test_case

OK_FORMAT = False

name = "train_epoch"
points = 2

@test_case(points=None, hidden=False)
def test_train_epoch_toy_problem(train_epoch, ToyLinear, ToyLoader, ToySGD, ToyCrossEntropy):
    import torch
    import torch.nn.functional as F
    gen = torch.Generator().manual_seed(0)
    n, batch_size, lr = (10, 4, 0.05)
    images = 0.1 * torch.randn(n, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (n,), generator=gen)
    weight = 0.01 * torch.randn(10, 3 * 32 * 32, generator=gen)
    bias = torch.zeros(10)
    model = ToyLinear(weight, bias)
    loss = train_epoch(model, ToyLoader(images, labels, batch_size), ToySGD(model, lr), ToyCrossEntropy(), 'cpu')
    w, b = (weight.clone().requires_grad_(True), bias.clone().requires_grad_(True))
    batch_losses, sizes = ([], [])
    for start in range(0, n, batch_size):
        x, y = (images[start:start + batch_size], labels[start:start + batch_size])
        batch_loss = F.cross_entropy(x.flatten(1) @ w.T + b, y)
        w.grad, b.grad = (None, None)
        batch_loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
        batch_losses.append(batch_loss.item())
        sizes.append(len(y))
    expected = sum((l * s for l, s in zip(batch_losses, sizes))) / n
    assert loss is not None, 'train_epoch должна вернуть средний лосс эпохи, а вернула None'
    loss = float(loss)
    hint = ''
    if abs(loss - sum(batch_losses) / len(batch_losses)) < 1e-05:
        hint = ' (похоже на среднее по батчам, а нужно среднее по примерам)'
    elif abs(loss - batch_losses[-1]) < 1e-05:
        hint = ' (похоже на лосс последнего батча, а нужно среднее за эпоху)'
    assert abs(loss - expected) <= 2e-05 * max(1.0, abs(expected)), f'средний лосс эпохи: ожидалось {expected:.6f}, получено {loss:.6f}{hint}'
    err = max((model.weight.detach() - w.detach()).abs().max().item(), (model.bias.detach() - b.detach()).abs().max().item())
    assert err <= 1e-05, f'веса после эпохи отличаются от ожидаемых на {err:.3g}: проверьте порядок zero_grad -> forward -> loss -> backward -> step'

@test_case(points=None, hidden=True)
def test_train_epoch_mean_loss(train_epoch, seed, probes):
    import numpy as np
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    batch_size = int(rng.integers(4, 10))
    n = batch_size * int(rng.integers(2, 6)) + int(rng.integers(2, batch_size // 2 + 1))
    lr = 0.0
    images = 0.1 * torch.randn(n, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (n,), generator=gen)
    weight = 0.01 * torch.randn(10, 3 * 32 * 32, generator=gen)
    bias = 0.1 * torch.randn(10, generator=gen)
    last = n - n % batch_size
    labels[last:] = (images[last:].flatten(1) @ weight.T + bias).argmin(dim=1)
    model = probes.make_spy_linear(weight, bias)
    loss = train_epoch(model, probes.make_loader(images, labels, batch_size), probes.make_optimizer(model, 'sgd', lr), probes.make_criterion(), 'cpu')
    w, b = (weight.clone().requires_grad_(True), bias.clone().requires_grad_(True))
    batch_losses, sizes = ([], [])
    for start in range(0, n, batch_size):
        x, y = (images[start:start + batch_size], labels[start:start + batch_size])
        batch_loss = F.cross_entropy(x.flatten(1) @ w.T + b, y)
        w.grad, b.grad = (None, None)
        batch_loss.backward()
        with torch.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
        batch_losses.append(batch_loss.item())
        sizes.append(len(y))
    expected = sum((l * s for l, s in zip(batch_losses, sizes))) / n
    assert loss is not None, 'train_epoch должна вернуть средний лосс эпохи, а вернула None'
    loss = float(loss)
    assert np.isfinite(loss), f'train_epoch вернула {loss}'
    hint = ''
    if abs(loss - sum(batch_losses) / len(batch_losses)) < 1e-05:
        hint = ' (похоже на среднее по батчам, а нужно среднее по примерам)'
    elif abs(loss - batch_losses[-1]) < 1e-05:
        hint = ' (похоже на лосс последнего батча, а нужно среднее за эпоху)'
    assert abs(loss - expected) <= 2e-05 * max(1.0, abs(expected)), f'{n} примеров в батчах по {batch_size}: средний лосс эпохи должен быть {expected:.6f}, получено {loss:.6f}{hint}'

@test_case(points=None, hidden=True)
def test_train_epoch_updates_like_sgd(train_epoch, seed, probes):
    import numpy as np
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(seed + 1)
    gen = torch.Generator().manual_seed(seed + 1)
    batch_size = int(rng.integers(3, 8))
    n = batch_size * int(rng.integers(2, 5)) + int(rng.integers(1, batch_size))
    lr = float(rng.uniform(0.02, 0.1))
    images = 0.1 * torch.randn(n, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (n,), generator=gen)
    weight = 0.01 * torch.randn(10, 3 * 32 * 32, generator=gen)
    bias = 0.1 * torch.randn(10, generator=gen)
    model = probes.make_spy_linear(weight, bias)
    result = train_epoch(model, probes.make_loader(images, labels, batch_size), probes.make_optimizer(model, 'sgd', lr), probes.make_criterion(), 'cpu')
    assert result is not None, 'train_epoch должна вернуть средний лосс эпохи, а вернула None'
    state = probes.state_snapshot(model)

    def reference(accumulate):
        w, b = (weight.clone().requires_grad_(True), bias.clone().requires_grad_(True))
        for start in range(0, n, batch_size):
            x, y = (images[start:start + batch_size], labels[start:start + batch_size])
            if not accumulate:
                w.grad, b.grad = (None, None)
            F.cross_entropy(x.flatten(1) @ w.T + b, y).backward()
            with torch.no_grad():
                w -= lr * w.grad
                b -= lr * b.grad
        return (w.detach(), b.detach())

    def distance(w, b):
        return max((state['weight'] - w).abs().max().item(), (state['bias'] - b).abs().max().item())
    err = distance(*reference(accumulate=False))
    hint = ''
    if distance(*reference(accumulate=True)) < 1e-06:
        hint = ': градиенты накапливаются между батчами, не забыт ли optimizer.zero_grad()?'
    elif distance(weight, bias) < 1e-07:
        hint = ': веса не изменились, вызываются ли loss.backward() и optimizer.step()?'
    assert err <= 1e-05, f'после эпохи SGD ({n} примеров, батч {batch_size}, lr={lr:.3f}) веса отличаются от ожидаемых на {err:.3g}{hint}'

@test_case(points=None, hidden=True)
def test_train_epoch_uses_train_mode(train_epoch, seed, probes):
    import torch
    gen = torch.Generator().manual_seed(seed + 2)
    n, batch_size = (12, 5)
    images = torch.randn(n, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 10, (n,), generator=gen)
    model = probes.make_spy_linear(0.01 * torch.randn(10, 3072, generator=gen), torch.zeros(10))
    probes.set_mode(model, False)
    result = train_epoch(model, probes.make_loader(images, labels, batch_size), probes.make_optimizer(model, 'sgd', 0.01), probes.make_criterion(), 'cpu')
    assert result is not None, 'train_epoch должна вернуть средний лосс эпохи, а вернула None'
    log = probes.spy_log(model)
    assert len(log['training']) >= 3, f"за эпоху из 3 батчей модель вызвана {len(log['training'])} раз(а)"
    assert all(log['training']), 'train_epoch обучала модель в режиме eval: вызовите model.train() в начале эпохи (перед ней модель могла остаться в eval после evaluate)'

