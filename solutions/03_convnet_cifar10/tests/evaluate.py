from otter.test_files import test_case

OK_FORMAT = False

name = "evaluate"
points = 1

@test_case(points=None, hidden=False)
def test_evaluate_toy_problem(evaluate, ToyLinear, ToyLoader):
    import torch
    gen = torch.Generator().manual_seed(1)
    n, batch_size = (30, 8)
    images = torch.randn(n, 3, 32, 32, generator=gen)
    weight = 0.01 * torch.randn(10, 3 * 32 * 32, generator=gen)
    bias = torch.zeros(10)
    predictions = (images.flatten(1) @ weight.T + bias).argmax(dim=1)
    correct = torch.zeros(n, dtype=torch.bool)
    correct[[0, 3, 9, 10, 17, 24, 25, 26, 27, 28, 29]] = True
    labels = torch.where(correct, predictions, (predictions + 1) % 10)
    model = ToyLinear(weight, bias)
    accuracy = evaluate(model, ToyLoader(images, labels, batch_size), 'cpu')
    assert accuracy is not None, 'evaluate должна вернуть точность, а вернула None'
    accuracy = float(accuracy)
    assert 0.0 <= accuracy <= 1.0, f'точность — доля от 0 до 1, а получено {accuracy} (11 верных ответов из 30)'
    assert abs(accuracy - 11 / 30) < 1e-06, f'модель угадывает 11 картинок из 30: ожидалась точность {11 / 30:.6f}, получено {accuracy:.6f}'
    assert not any(model.training_log), 'evaluate вызывала модель в режиме train: переведите её в eval (model.eval())'

@test_case(points=None, hidden=True)
def test_evaluate_accuracy_uneven_batches(evaluate, seed, probes):
    import numpy as np
    import torch
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    batch_size = int(rng.integers(6, 13))
    full = int(rng.integers(2, 6))
    last = int(rng.integers(2, batch_size))
    n = batch_size * full + last
    images = torch.randn(n, 3, 32, 32, generator=gen)
    weight = 0.01 * torch.randn(10, 3072, generator=gen)
    bias = 0.1 * torch.randn(10, generator=gen)
    predictions = (images.flatten(1) @ weight.T + bias).argmax(dim=1)
    correct = torch.from_numpy(rng.random(n) < rng.uniform(0.2, 0.6))
    correct[0], correct[1] = (True, False)
    correct[batch_size * full:] = True
    shift = torch.from_numpy(rng.integers(1, 10, n))
    labels = torch.where(correct, predictions, (predictions + shift) % 10)
    expected = correct.sum().item() / n
    model = probes.make_spy_linear(weight, bias)
    accuracy = evaluate(model, probes.make_loader(images, labels, batch_size), 'cpu')
    assert accuracy is not None, 'evaluate должна вернуть точность, а вернула None'
    accuracy = float(accuracy)
    assert 0.0 <= accuracy <= 1.0, f'точность — доля от 0 до 1, а получено {accuracy} ({correct.sum().item()} верных ответов из {n})'
    per_batch = [correct[i:i + batch_size].float().mean().item() for i in range(0, n, batch_size)]
    hint = ''
    if abs(accuracy - sum(per_batch) / len(per_batch)) < 1e-06:
        hint = ' (похоже на среднее точностей по батчам; делите на общее число примеров)'
    assert abs(accuracy - expected) < 1e-06, f'{n} примеров в батчах по {batch_size}, верных {correct.sum().item()}: ожидалась точность {expected:.6f}, получено {accuracy:.6f}{hint}'

@test_case(points=None, hidden=True)
def test_evaluate_eval_mode_without_grad(evaluate, seed, probes):
    import torch
    gen = torch.Generator().manual_seed(seed + 1)
    n, batch_size = (20, 6)
    images = torch.randn(n, 3, 32, 32, generator=gen)
    weight = 0.01 * torch.randn(10, 3072, generator=gen)
    predictions = (images.flatten(1) @ weight.T).argmax(dim=1)
    correct = torch.rand(n, generator=gen) < 0.6
    correct[0], correct[1] = (True, False)
    correct[18:] = True
    labels = torch.where(correct, predictions, (predictions + 1) % 10)
    model = probes.make_spy_linear(weight, torch.zeros(10), batchnorm=True)
    probes.set_mode(model, True)
    accuracy = evaluate(model, probes.make_loader(images, labels, batch_size), 'cpu')
    assert accuracy is not None, 'evaluate должна вернуть точность, а вернула None'
    log = probes.spy_log(model)
    assert sum(log['batch']) >= n, f"evaluate должна прогнать через модель все {n} примеров, а прогнала {sum(log['batch'])}"
    assert not any(log['training']), 'evaluate вызывала модель в режиме train: переведите её в eval (model.eval())'
    assert not any(log['grad_enabled']), 'evaluate вызывала модель с включённым градиентом: оберните проход в with torch.no_grad():'
    expected = correct.float().mean().item()
    assert abs(float(accuracy) - expected) < 1e-06, f'ожидалась точность {expected:.6f} ({int(correct.sum())} верных из {n}), получено {float(accuracy):.6f}'

@test_case(points=None, hidden=True)
def test_evaluate_keeps_model_state(evaluate, seed, probes):
    import torch
    gen = torch.Generator().manual_seed(seed + 2)
    n, batch_size = (16, 5)
    images = 3.0 + torch.randn(n, 3, 32, 32, generator=gen)
    weight, bias = (0.01 * torch.randn(10, 3072, generator=gen), 0.1 * torch.randn(10, generator=gen))
    predictions = (images.flatten(1) @ weight.T + bias).argmax(dim=1)
    correct = torch.rand(n, generator=gen) < 0.5
    correct[0], correct[1] = (True, False)
    labels = torch.where(correct, predictions, (predictions + 3) % 10)
    model = probes.make_spy_linear(weight, bias, batchnorm=True)
    before = probes.state_snapshot(model)
    accuracy = evaluate(model, probes.make_loader(images, labels, batch_size), 'cpu')
    assert accuracy is not None, 'evaluate должна вернуть точность, а вернула None'
    expected = correct.float().mean().item()
    assert abs(float(accuracy) - expected) < 1e-06, f'ожидалась точность {expected:.6f} ({int(correct.sum())} верных из {n}), получено {float(accuracy):.6f}'
    after = probes.state_snapshot(model)
    changed = sorted((k for k in before if not torch.equal(before[k], after[k])))
    assert not changed, f"evaluate изменила состояние модели ({', '.join(changed)}): в режиме train BatchNorm обновляет свою статистику, переведите модель в eval"

