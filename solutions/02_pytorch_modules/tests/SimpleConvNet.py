from otter.test_files import test_case

OK_FORMAT = False

name = "SimpleConvNet"
points = 2

@test_case(points=None, hidden=False)
def test_simpleconvnet_shapes_and_size(SimpleConvNet):
    import torch
    g = torch.Generator().manual_seed(0)
    net = SimpleConvNet()
    for batch in (2, 1):
        x = torch.randn(batch, 3, 32, 32, generator=g)
        try:
            out = net(x)
        except Exception as exc:
            raise AssertionError(f'SimpleConvNet упала на батче из {batch} изображений: {exc}. Не зашит ли размер батча в view()?') from None
        assert isinstance(out, torch.Tensor), f'forward должен возвращать тензор, получено {type(out).__name__}'
        assert tuple(out.shape) == (batch, 10), f'на входе ({batch}, 3, 32, 32) ожидался выход ({batch}, 10), получено {tuple(out.shape)}'
    total = sum((v.numel() for v in net.state_dict().values()))
    assert total == 62006, f'в LeNet 62006 параметров, в вашей сети {total}'
    out = net(torch.randn(4, 3, 32, 32, generator=g))
    assert isinstance(out, torch.Tensor), f'SimpleConvNet(): forward должен возвращать тензор, получено {type(out).__name__}'
    spread = (out.detach() - out.detach()[:1]).abs().max().item()
    assert spread > 1e-06, f'SimpleConvNet(): выход одинаков для разных входов (нули или константа): forward не использует x и веса'

@test_case(points=None, hidden=True)
def test_simpleconvnet_batch_sizes(SimpleConvNet, seed, probes):
    import torch
    g = torch.Generator().manual_seed(int(seed))
    net = SimpleConvNet()
    probes.eval_mode(net)
    x = torch.randn(7, 3, 32, 32, generator=g)
    outs = {}
    for batch in (1, 3, 7):
        try:
            out = net(x[:batch])
        except Exception as exc:
            raise AssertionError(f'SimpleConvNet упала на батче из {batch} изображений: {exc}. Размер батча нельзя зашивать в код: берите его из x') from None
        assert isinstance(out, torch.Tensor), f'forward должен возвращать тензор, получено {type(out).__name__}'
        assert tuple(out.shape) == (batch, 10), f'на входе ({batch}, 3, 32, 32) ожидался выход ({batch}, 10), получено {tuple(out.shape)}'
        outs[batch] = out.detach()
    scale = 1 + outs[7].abs().max().item()
    for batch in (1, 3):
        err = (outs[batch] - outs[7][:batch]).abs().max().item() / scale
        assert err < 0.0001, f'ответ для картинки зависит от того, с какими картинками она в батче (батч {batch} против 7, расхождение {err:.2e}): примеры батча перемешиваются'
    out = net(x)
    assert isinstance(out, torch.Tensor), f'SimpleConvNet(): forward должен возвращать тензор, получено {type(out).__name__}'
    spread = (out.detach() - out.detach()[:1]).abs().max().item()
    assert spread > 1e-06, f'SimpleConvNet(): выход одинаков для разных входов (нули или константа): forward не использует x и веса'

@test_case(points=None, hidden=True)
def test_simpleconvnet_parameters(SimpleConvNet, probes):
    import torch
    net = SimpleConvNet()
    expected = sorted([[6, 3, 5, 5], [6], [16, 6, 5, 5], [16], [120, 400], [120], [84, 120], [84], [10, 84], [10]])
    shapes = sorted(probes.parameter_shapes(net).values())
    assert shapes == expected, f'формы параметров LeNet должны быть {expected}, получено {shapes}'
    count = probes.count_trainable(net)
    assert count == 62006, f'обучаемых параметров должно быть 62006, получено {count}'
    out = net(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(5)))
    assert isinstance(out, torch.Tensor), f'SimpleConvNet(): forward должен возвращать тензор, получено {type(out).__name__}'
    spread = (out.detach() - out.detach()[:1]).abs().max().item()
    assert spread > 1e-06, f'SimpleConvNet(): выход одинаков для разных входов (нули или константа): forward не использует x и веса'

@test_case(points=None, hidden=True)
def test_simpleconvnet_reference_forward(SimpleConvNet, seed, probes):
    import math
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(int(seed) + 1)
    net = SimpleConvNet()
    probes.eval_mode(net)
    names = probes.parameter_shapes(net)
    fan_in = {(6, 3, 5, 5): 75, (6,): 75, (16, 6, 5, 5): 150, (16,): 150, (120, 400): 400, (120,): 400, (84, 120): 120, (84,): 120, (10, 84): 84, (10,): 84}
    assert sorted((tuple(s) for s in names.values())) == sorted(fan_in), f'формы параметров не совпадают с LeNet: {sorted(names.values())}'
    params = {s: (torch.rand(s, generator=g) * 2 - 1) * (2 / math.sqrt(f)) for s, f in fan_in.items()}
    probes.load_parameters(net, {name: params[tuple(s)] for name, s in names.items()})
    x = torch.randn(5, 3, 32, 32, generator=g)
    h = F.max_pool2d(F.relu(F.conv2d(x, params[6, 3, 5, 5], params[6,])), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, params[16, 6, 5, 5], params[16,])), 2)
    h = h.reshape(h.shape[0], -1)
    h = F.relu(h @ params[120, 400].T + params[120,])
    h = F.relu(h @ params[84, 120].T + params[84,])
    expected = h @ params[10, 84].T + params[10,]
    out = net(x)
    assert isinstance(out, torch.Tensor), f'forward должен возвращать тензор, получено {type(out).__name__}'
    assert tuple(out.shape) == (5, 10), f'на входе (5, 3, 32, 32) ожидался выход (5, 10), получено {tuple(out.shape)}'
    err = (out.detach() - expected).abs().max().item() / (1 + expected.abs().max().item())
    assert err < 0.0001, f'с одинаковыми весами выход не совпадает с эталонной LeNet (conv -> ReLU -> max-pool, дважды; flatten; Linear -> ReLU -> Linear -> ReLU -> Linear): относительная ошибка {err:.2e}'

