from otter.test_files import test_case

OK_FORMAT = False

name = "conv_output_size"
points = 1

@test_case(points=None, hidden=False)
def test_conv_output_size_lesson_examples(conv_output_size):
    import numpy as np
    cases = [((50, 3, 1, 0), 48), ((1024, 5, 2, 0), 510), ((768, 5, 2, 0), 382), ((32, 3, 1, 1), 32), ((32, 5, 1, 1), 30)]
    for (n, k, s, p), expected in cases:
        got = conv_output_size(n, k, s, p)
        assert isinstance(got, (int, np.integer)) and (not isinstance(got, bool)), f'conv_output_size должна вернуть целое число (int), а вернула {type(got).__name__}: {got!r}'
        assert got == expected, f'conv_output_size(n={n}, kernel_size={k}, stride={s}, padding={p}) = {got}, ожидалось {expected} (пример из текста задания)'

@test_case(points=None, hidden=True)
def test_conv_output_size_floor_and_padding(conv_output_size):
    import numpy as np
    cases = [((8, 3, 2, 0), 3), ((7, 3, 2, 0), 3), ((10, 4, 3, 0), 3), ((5, 5, 1, 0), 1), ((6, 3, 2, 1), 3), ((224, 7, 2, 3), 112), ((7, 2, 2, 0), 3), ((28, 5, 1, 2), 28), ((9, 3, 3, 1), 3), ((1, 1, 1, 0), 1), ((4, 3, 5, 0), 1)]
    for (n, k, s, p), expected in cases:
        got = conv_output_size(n, k, s, p)
        assert isinstance(got, (int, np.integer)) and (not isinstance(got, bool)), f'conv_output_size должна вернуть целое число (int), а вернула {type(got).__name__}: {got!r}'
        assert got == expected, f'conv_output_size(n={n}, kernel_size={k}, stride={s}, padding={p}) = {got}, ожидалось {expected}. Проверьте округление вниз, паддинг с обеих сторон и +1'

@test_case(points=None, hidden=True)
def test_conv_output_size_random(conv_output_size, seed):
    import numpy as np
    rng = np.random.default_rng([seed, 11])
    for _ in range(40):
        k = int(rng.integers(1, 8))
        s = int(rng.integers(1, 5))
        p = int(rng.integers(0, 4))
        n = int(rng.integers(max(1, k - 2 * p), 120))
        expected = (n + 2 * p - k) // s + 1
        got = conv_output_size(n, k, s, p)
        assert isinstance(got, (int, np.integer)) and (not isinstance(got, bool)), f'conv_output_size должна вернуть целое число (int), а вернула {type(got).__name__}: {got!r}'
        assert got == expected, f'conv_output_size(n={n}, kernel_size={k}, stride={s}, padding={p}) = {got}, ожидалось {expected}'

