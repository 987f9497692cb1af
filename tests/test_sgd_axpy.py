"""SGD's update rounded once: optim._axpy against exact rational arithmetic, its BLAS witness,
the compiled loops, and PyTorch's SGD step."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import chainrule as cr
from chainrule.optim import _axpy

FLOATS = [np.float16, np.float32, np.float64]
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def exact_fma(alpha, x, y):
    """fl(y + alpha x) element by element: the exact rational rounded to the nearest number of
    the dtype, ties to the even one; IEEE's rules for infinities and NaN."""
    dt = y.dtype
    a = dt.type(alpha)
    out = np.empty_like(y)
    for i in range(y.size):
        xi, yi = x.flat[i], y.flat[i]
        if not (np.isfinite(a) and np.isfinite(xi) and np.isfinite(yi)):
            with np.errstate(all="ignore"):
                v = yi + np.float64(a) * np.float64(xi)  # (no finite product overflows here)
            out.flat[i] = yi if (np.isinf(yi) and np.isfinite(xi) and np.isfinite(a)) else v
            continue
        q = Fraction(float(yi)) + Fraction(float(a)) * Fraction(float(xi))
        if q == 0:  # +0, but -0 + -0 (a zero product's sign: the factors' signs)
            product_zero = a == 0 or xi == 0
            minus = np.signbit(yi) and product_zero and (np.signbit(a) != np.signbit(xi))
            out.flat[i] = dt.type(-0.0) if minus else dt.type(0.0)
            continue
        out.flat[i] = nearest(q, dt)
    return out


def nearest(q, dt):
    """The nearest number of dt to the nonzero rational q, ties to even."""
    with np.errstate(over="ignore"):
        try:
            guess = dt.type(q.numerator / q.denominator)
        except OverflowError:
            guess = dt.type(np.inf if q > 0 else -np.inf)
        cands = [guess, np.nextafter(guess, dt.type(np.inf)),
                 np.nextafter(guess, dt.type(-np.inf))]
    finite = [c for c in cands if np.isfinite(c)]
    best = min(finite, key=lambda c: (abs(Fraction(float(c)) - q),
                                      int(np.array(c).view(UINT[dt.itemsize])) & 1))
    # past the largest finite number by half an ulp or more: an infinity
    big = np.finfo(dt).max
    half_ulp = Fraction(float(big)) - Fraction(float(np.nextafter(big, dt.type(0))))
    if abs(q) >= Fraction(float(big)) + half_ulp / 2:
        return dt.type(np.inf if q > 0 else -np.inf)
    return best


def same_bits(a, b):
    return np.array_equal(a.view(UINT[a.dtype.itemsize]), b.view(UINT[b.dtype.itemsize]))


def spread(rng, n, dt):
    """Values of both signs over nine decades, some zeros of both signs."""
    v = rng.standard_normal(n) * 10.0 ** rng.integers(-4, 5, n)
    v[rng.random(n) < 0.05] = 0.0
    v[rng.random(n) < 0.03] = -0.0
    return v.astype(dt) if dt != np.float16 else np.clip(v, -6e4, 6e4).astype(dt)


@pytest.mark.parametrize("numba_loop", [True, False])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [1, 7, 255, 256, 1000, 20011])
def test_axpy_rounds_once_like_exact_arithmetic(dtype, n, numba_loop, monkeypatch):
    # with the Numba loop where it is installed (small arrays whole, the rest past BLAS's
    # prefix), and without it (BLAS's padded scratch, or the NumPy emulation)
    if not numba_loop:
        monkeypatch.setattr(_axpy, "_FUSED", [None])
    rng = np.random.default_rng(n)
    dt = np.dtype(dtype)
    x, y = spread(rng, n, dt), spread(rng, n, dt)
    for alpha in (-0.0123, 0.7731, -3e-5):
        want = exact_fma(alpha, x, y)
        got = y.copy()
        _axpy.axpy(alpha, x, got)
        assert same_bits(got, want), (dtype, n, alpha)
        emulated = y.copy()
        _axpy._emulated(dt.type(alpha), x, emulated)
        assert same_bits(emulated, want)
        bound = y.copy()
        _axpy.bind(x, bound, _axpy.fused_loop())(alpha)  # (the plan a compiled step keeps)
        assert same_bits(bound, want)
    if n >= 255:  # and NumPy's two roundings are not that (the test can tell them apart)
        assert not same_bits((y + dt.type(-0.0123) * x).astype(dt), exact_fma(-0.0123, x, y))


@pytest.mark.parametrize("dtype", FLOATS)
def test_axpy_edge_values(dtype):
    dt = np.dtype(dtype)
    fi = np.finfo(dt)
    vals = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, float(fi.max),
                     -float(fi.max), float(fi.tiny), float(fi.smallest_subnormal), 3.0, -2.5],
                    dtype=dt)
    x = np.repeat(vals, vals.size)
    y = np.tile(vals, vals.size)
    for alpha in (-0.01, 2.0, -0.0, 0.0, float(fi.max), float(fi.smallest_subnormal)):
        want = exact_fma(alpha, x, y)
        got = y.copy()
        with np.errstate(all="ignore"):
            _axpy.axpy(alpha, x, got)
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan), (dtype, alpha)
        assert same_bits(got[~nan], want[~nan]), (dtype, alpha)


def test_float64_outside_dekkers_range_is_still_exact():
    # products below 2^-960 and operands beyond 2^990 go to exact rationals
    x = np.array([1e-300, 3e-200, 1e300, -1.7e308, 5e-324, 2.0 ** 995], np.float64)
    y = np.array([1e-310, -2e-300, 1e308, 1e308, 0.0, -(2.0 ** 996)], np.float64)
    for alpha in (1e-10, -3.3, 1e-300, 2.0 ** 990):
        want = exact_fma(alpha, x, y)
        got = y.copy()
        with np.errstate(all="ignore"):
            _axpy.axpy(alpha, x, got)
        assert same_bits(got, want), alpha


def test_strided_and_2d_arrays():
    rng = np.random.default_rng(3)
    x = spread(rng, 4000, np.dtype(np.float32)).reshape(40, 100)
    y = spread(rng, 4000, np.dtype(np.float32)).reshape(40, 100)
    want = exact_fma(-0.05, x, y)
    got = y.copy()
    _axpy.axpy(-0.05, x, got)  # 2-D, contiguous
    assert same_bits(got, want)
    yt = np.asfortranarray(y)
    _axpy.axpy(-0.05, np.asfortranarray(x), yt)  # strided: the emulation
    assert same_bits(np.ascontiguousarray(yt), want)


def test_bad_operands_are_named():
    with pytest.raises(ValueError, match="does not match"):
        _axpy.axpy(1.0, np.zeros(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="does not match"):
        _axpy.axpy(1.0, np.zeros(3, np.float64), np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="floating-point"):
        _axpy.axpy(1.0, np.zeros(3, np.int32), np.zeros(3, np.int32))


class _TwoRoundingBlas:
    """A stand-in BLAS whose axpy rounds the product, then the sum (no FMA)."""

    def __init__(self, dt, threads=1):
        self.dt, self.n_threads, self.calls = dt, threads, 0

    def threads(self):
        return self.n_threads

    def vectors(self, n, px, py):
        """The n elements at addresses px, py, as NumPy arrays (y writeable)."""
        import ctypes
        self.calls += 1
        size = n * self.dt.itemsize
        return (np.frombuffer((ctypes.c_char * size).from_address(px), self.dt),
                np.frombuffer((ctypes.c_char * size).from_address(py), self.dt))

    def axpy(self, n, alpha, px, incx, py, incy):
        x, y = self.vectors(n, px, py)
        y[...] = y + self.dt.type(alpha) * x


def _use_blas(monkeypatch, dt, fake):
    """Make ``fake`` the BLAS for ``dt``, with fresh witness and plan caches and no Numba loop
    (so the BLAS path is the one taken)."""
    monkeypatch.setitem(_axpy._LIBS, dt, fake)
    monkeypatch.setattr(_axpy, "_CHECKED", {})
    monkeypatch.setattr(_axpy, "_PLANS", {})
    monkeypatch.setattr(_axpy, "_FUSED", [None])


def test_a_blas_that_rounds_twice_fails_the_witness_and_is_not_used(monkeypatch):
    dt = np.dtype(np.float32)
    fake = _TwoRoundingBlas(dt)
    assert not _axpy._witness(fake, dt, 4096)
    fake.calls = 0
    _use_blas(monkeypatch, dt, fake)
    rng = np.random.default_rng(4)
    x, y = spread(rng, 5000, dt), spread(rng, 5000, dt)
    want = exact_fma(-0.01, x, y)
    got = y.copy()
    _axpy.axpy(-0.01, x, got)
    assert same_bits(got, want)
    assert fake.calls == 1  # the witness only
    got = y.copy()
    _axpy.bind(x, got)(-0.01)
    assert same_bits(got, want) and fake.calls == 1


def test_the_real_blas_passes_its_witness_or_is_left_alone():
    # on this machine's NumPy wheel (OpenBLAS) the prefix and the padded rest go through BLAS;
    # either way the result is the exact rounding (tests above); here: the plan is what
    # _prefix says
    dt = np.dtype(np.float32)
    x, y = np.ones(235146, dt), np.ones(235146, dt)
    plan = _axpy._blas_plan(x, y, dt.type(-0.01))
    if plan is None:
        real = _axpy._find_blas(dt)
        assert real is None or not _axpy._CHECKED.get(
            (dt, _axpy._prefix(235146, real.threads()), real.threads()), True)
    else:
        lib, n1, pad, _, _ = plan
        threads = lib.threads()
        assert n1 == 235146 - 235146 % (128 * threads) and n1 % (128 * threads) == 0
        assert pad == -(-(235146 - n1) // 128) * 128
        assert _axpy.scratch_bytes(235146, dt) == 2 * pad * 4


class _ShortTwoRoundingBlas(_TwoRoundingBlas):
    """A stand-in whose long calls round once and whose short ones (<= 1024) round twice."""

    def axpy(self, n, alpha, px, incx, py, incy):
        x, y = self.vectors(n, px, py)
        if n > 1024:
            y[...] = _axpy._fma_block(self.dt.type(alpha), x.copy(), y.copy())
        else:
            y[...] = y + self.dt.type(alpha) * x


def test_a_padded_rest_that_rounds_twice_goes_to_the_emulation(monkeypatch):
    dt = np.dtype(np.float32)
    fake = _ShortTwoRoundingBlas(dt)
    _use_blas(monkeypatch, dt, fake)
    rng = np.random.default_rng(8)
    x, y = spread(rng, 5000, dt), spread(rng, 5000, dt)
    lib, n1, pad, _, _ = _axpy._blas_plan(x, y, dt.type(-0.01))
    assert lib is fake and n1 == 4992 and pad == 0  # the 128-element witness failed
    want = exact_fma(-0.01, x, y)
    for run in (lambda v: _axpy.axpy(-0.01, x, v), lambda v: _axpy.bind(x, v)(-0.01)):
        got = y.copy()
        run(got)
        assert same_bits(got, want)


def test_bind_follows_a_change_of_blas_threads(monkeypatch):
    dt = np.dtype(np.float64)
    lib = _axpy._find_blas(dt)
    if lib is None:
        pytest.skip("no OpenBLAS in this NumPy: bind has no prefix to recompute")
    rng = np.random.default_rng(5)
    x, y = spread(rng, 30011, dt), spread(rng, 30011, dt)
    got = y.copy()
    update = _axpy.bind(x, got)
    real = lib.threads()
    monkeypatch.setattr(lib, "threads", lambda: real + 1)  # another thread count: re-planned
    update(-0.25)
    assert same_bits(got, exact_fma(-0.25, x, y))


def test_fused_loops_round_once():
    fused = pytest.importorskip("chainrule.compile.fused")
    if not fused.AVAILABLE:
        pytest.skip("Numba is not installed (the extra chainrule[fast])")
    rng = np.random.default_rng(6)
    for dt in (np.dtype(np.float32), np.dtype(np.float64)):
        x, y = spread(rng, 777, dt), spread(rng, 777, dt)
        got = y.copy()
        fused.get("axpy")(x, got, dt.type(-0.3))
        assert same_bits(got, exact_fma(-0.3, x, y))
        W = spread(rng, 12 * 9, dt).reshape(12, 9)
        d, xv = spread(rng, 12, dt), spread(rng, 9, dt)
        G = np.empty_like(W)
        W2 = W.copy()
        fused.get("outer_sgd")(W2, G, d, xv, dt.type(0.02), dt.type(0))
        assert np.array_equal(G, np.outer(d, xv) + dt.type(0))
        assert same_bits(W2, exact_fma(-dt.type(0.02), G, W))


SGD_OPTIONS = [
    {},
    dict(momentum=0.9),
    dict(weight_decay=0.031),
    dict(weight_decay=0.031, maximize=True),
    dict(momentum=0.9, dampening=0.3),
    dict(momentum=0.87, nesterov=True),
    dict(momentum=0.87, nesterov=True, weight_decay=0.011),
    dict(momentum=0.9, dampening=0.45, weight_decay=0.02, maximize=True),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", SGD_OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_sgd_step_is_bitwise_pytorchs(options, dtype):
    # every option's line that adds a multiple of an array rounds once, as PyTorch's
    # add_(alpha=): the parameters agree bit for bit over several steps
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    shapes = [(256, 784), (256,), (10, 256), (10,)]
    params = [rng.standard_normal(s).astype(dtype) * 0.05 for s in shapes]
    grads = [[(rng.standard_normal(s) * 10.0 ** rng.integers(-3, 1)).astype(dtype)
              for s in shapes] for _ in range(4)]
    ours = [cr.tensor(p.copy(), requires_grad=True) for p in params]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    opt = cr.optim.SGD(ours, lr=0.0173, **options)
    topt = torch.optim.SGD(theirs, lr=0.0173, foreach=False, **options)
    for step in grads:
        for p, tp, g in zip(ours, theirs, step):
            p.grad = g.copy()
            tp.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
    for p, tp in zip(ours, theirs):
        assert same_bits(p.data, tp.detach().numpy())
    if options.get("momentum"):
        for p, tp in zip(ours, theirs):
            assert same_bits(opt.state[p]["momentum_buffer"],
                             topt.state[tp]["momentum_buffer"].numpy())


@pytest.mark.parametrize("options", SGD_OPTIONS[2:], ids=lambda o: "-".join(o))
def test_sgd_options_round_once_on_the_flat_path_and_compiled(options):
    # nn.MLP's parameters tile one array: the flat path and the compiled step take the same
    # once-rounded lines as the per-parameter loop above, so all three agree bit for bit
    rng = np.random.default_rng(11)
    X = rng.standard_normal((16, 12)).astype(np.float32)
    y = rng.integers(0, 3, 16)

    def run(mode):
        cr.manual_seed(3)
        model = cr.nn.MLP([12, 8, 3], "tanh")
        opt = cr.optim.SGD(model.parameters(), lr=0.05, **options)
        if mode == "loop":
            opt._flat.enabled = False

        def step(xb, yb):
            opt.zero_grad()
            loss = cr.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            return loss

        fn = cr.compile(step) if mode == "compiled" else step
        for _ in range(4):
            fn(cr.tensor(X), cr.tensor(y))
        if mode == "flat":
            assert opt._flat.steps == 4
        return [p.data.copy() for p in model.parameters()]

    loop, flat, compiled = run("loop"), run("flat"), run("compiled")
    for a, b, c in zip(loop, flat, compiled):
        assert same_bits(a, b) and same_bits(a, c)


def test_decayed_gradient_rounds_once():
    # g + wd p (and -g + wd p), each element the exact value rounded once: what Adam, RMSprop
    # and Adagrad add their weight decay with, as PyTorch's grad.add(param, alpha=wd)
    from chainrule.optim.optimizer import decayed_grad

    rng = np.random.default_rng(12)
    for dt in (np.dtype(np.float32), np.dtype(np.float64)):
        p, g = spread(rng, 501, dt), spread(rng, 501, dt)
        got = decayed_grad(np, p, g, 0.0137, False)
        assert same_bits(got, exact_fma(0.0137, p, g))
        got = decayed_grad(np, p, g, 0.0137, True)
        assert same_bits(got, exact_fma(0.0137, p, -g))
        assert decayed_grad(np, p, g, 0.0, False) is g  # (nothing to add: the gradient itself)


def test_sgd_step_is_the_exact_rounding_float64():
    rng = np.random.default_rng(8)
    p0 = rng.standard_normal((30, 20))
    g = rng.standard_normal((30, 20)) * 1e-3
    p = cr.tensor(p0.copy(), requires_grad=True)
    p.grad = g.copy()
    cr.optim.SGD([p], lr=0.37).step()
    assert same_bits(p.data, exact_fma(-0.37, g, p0))


def test_the_race_between_blas_and_the_loop_keeps_the_bits_and_takes_the_faster():
    race = _axpy._Race()
    ways = [race.next() for _ in range(2 * _axpy._TRIALS)]
    assert ways == [(i % 2, True) for i in range(2 * _axpy._TRIALS)]
    race2 = _axpy._Race()
    for i in range(2 * _axpy._TRIALS):  # the loop (way 1) timed faster
        way, _ = race2.next()
        race2.record(way, 100 if way else 500)
    assert race2.next() == (1, False) and race2.way == 1
    race2.calls = _axpy._RERACE  # time to race again
    assert race2.next() == (0, True)
    # both ways, on a size past the loop's limit, give the exact rounding
    fused = pytest.importorskip("chainrule.compile.fused")
    if not fused.AVAILABLE or _axpy._find_blas(np.dtype(np.float32)) is None:
        pytest.skip("needs Numba and NumPy's OpenBLAS: otherwise there is nothing to race")
    rng = np.random.default_rng(9)
    dt = np.dtype(np.float32)
    n = _axpy._LOOP_MAX + 4321
    x = spread(rng, n, dt)
    y0 = spread(rng, n, dt)
    want = exact_fma(-0.02, x, y0)
    for _ in range(2 * _axpy._TRIALS + 1):
        got = y0.copy()
        _axpy.axpy(-0.02, x, got)
        assert same_bits(got, want)
    got = y0.copy()
    update_bound = _axpy.bind(x, got, _axpy.fused_loop())
    for _ in range(2 * _axpy._TRIALS + 1):
        got[...] = y0
        update_bound(-0.02)
        assert same_bits(got, want)
