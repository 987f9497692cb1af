"""``y <- y + alpha x`` with every element rounded once: the update of plain SGD.

SGD's last line, :math:`p \\leftarrow p - \\eta\\, d_p`, is this with ``alpha = -lr``,
``x = d_p``, ``y = p``. Rounded once -- the exact value :math:`y + \\alpha x` rounded to the
nearest number of the arrays' dtype (ties to even), a fused multiply-add -- the result is a
function of ``y``, ``x`` and ``alpha`` alone, whichever code computes it; it is what BLAS's
``?axpy`` computes on a CPU with FMA instructions, and what PyTorch's SGD step
(``param.add_(d_p, alpha=-lr)``) gives on such a CPU. Rounded twice, as ``p - lr * d_p`` in
NumPy is (the product, then the difference), it differs in the last bit for a few per cent
of the elements (about 2 % of an SGD step on the 784-256-128-10 network's weights; about
10 % for random values spread over nine decades).

Three implementations give that one result:

- **BLAS**: ``saxpy``/``daxpy`` of the OpenBLAS that NumPy's wheels bundle, called through
  ``ctypes`` (no new dependency): one pass, threaded above ten thousand elements. On the
  2-core benchmark machine the plain-SGD update of the 784-256-128-10 network's 235k
  parameters takes about 20 us after a two-thread matrix product has read the weights, against
  75 us for a single-threaded loop, which has to take every cache line of the weights back
  from the other core. OpenBLAS's vector loops fuse; its scalar loops over the last few
  elements of each thread's share do not (a multiply, then an add). So BLAS does a prefix, a
  multiple of 128 elements per thread (:func:`_prefix`), for contiguous float32/float64 arrays
  and a nonzero finite ``alpha``, and only once a witness (:func:`_witness`) has shown that
  call, at that length and thread count, to round every element once (the x86 kernels load
  unaligned, so the arrays' alignment does not change the split). The fewer than 128 per
  thread after the prefix are copied to the front of two zero-filled scratch vectors of a
  multiple of 128 elements, which BLAS takes whole (one thread: OpenBLAS splits nothing that
  short), and copied back (:func:`_padded`; a few microseconds, where the NumPy emulation
  below takes twelve).
- **a compiled loop** (``compile.fused.axpy``, and ``compile.fused.outer_sgd``, the
  batch-of-one weight update) with LLVM's ``fma`` intrinsic, which rounds once by definition:
  with Numba installed (``chainrule[fast]``; imported at the first update), what the eager and
  the compiled steps use for arrays of up to 10,000 elements whole (OpenBLAS takes them on one
  thread too, and its call through ``ctypes`` costs more than the loop: on the digits network's
  4,810 parameters, 1.5 us in the step against 1.8 us for NumPy's two roundings and 4 us for
  BLAS with its padded rest), and past the BLAS prefix of longer ones.
- **NumPy**, everywhere else (no such BLAS or a failed witness, another dtype, a strided
  array), exactly, in
  blocks of 8192 elements (so the scratch memory stays a few hundred KiB whatever the size):
  float16 and float32 through float64, where the product is exact and the sum is rounded to
  odd before the final rounding (Boldo and Melquiond, "Emulation of FMA and correctly rounded
  sums: proved algorithms using rounding to odd", IEEE Trans. Computers 57(4), 2008); float64
  by their FMA emulation (Dekker's exact product, TwoSum, one addition rounded to odd); the
  rare float64 element outside that algorithm's range (a product below 2^-960 or an operand
  beyond 2^990) exactly with :class:`fractions.Fraction`.

``tests/test_sgd_axpy.py`` checks the three against exact rational arithmetic, and the SGD
step against PyTorch's when it is installed.
"""

from __future__ import annotations

import ctypes
import glob
import math
import os
import threading
from fractions import Fraction
from time import perf_counter_ns
from typing import Any, Callable

import numpy as np

_BLOCK = 8192
_SPLIT = 134217729.0  # 2^27 + 1: Veltkamp's splitting constant for float64
_UNIT = 128  # the BLAS prefix: a multiple of 128 elements per thread (see _prefix)
_TYPECHAR = {np.dtype(np.float32): ("s", ctypes.c_float),
             np.dtype(np.float64): ("d", ctypes.c_double)}
_LIBS: dict[np.dtype, Any] = {}  # dtype -> _Blas, or None where there is none
_CHECKED: dict[tuple, bool] = {}  # (dtype, n, threads) -> the witness passed
_PLANS: dict[tuple, Any] = {}  # (dtype, n, threads) -> _blas_plan's answer
_THREAD = threading.local()  # each thread's padded scratch vectors, by (dtype, length)
_UNSEEN = object()
_FUSED: list[Any] = []  # [compile.fused.axpy, or None], once looked up
# At most this many elements go to the Numba loop whole: OpenBLAS runs ?axpy on one thread up
# to 10,000 elements anyway, and its call (through ctypes, with the arrays' addresses) costs
# more than the loop's; past it, BLAS's threads win (the module's docstring).
_LOOP_MAX = 10_000
_TRIALS, _RERACE = 3, 1024  # see _Race


class _Blas:
    """``?axpy`` and ``openblas_get_num_threads`` of one library, as ctypes functions."""

    def __init__(self, axpy_fn: Any, threads_fn: Any) -> None:
        self.axpy, self.threads = axpy_fn, threads_fn


def axpy(alpha: float, x: np.ndarray, y: np.ndarray) -> None:
    """``y <- y + alpha * x`` in place, each element rounded once (see the module).

    Args:
        alpha: a real number, first rounded to ``y``'s dtype (as NumPy rounds a Python float
            that meets a float32 array).
        x: an array of ``y``'s shape and dtype, only read.
        y: a floating-point NumPy array, written in place.
    """
    dt = y.dtype
    if x.shape != y.shape or x.dtype != dt or dt.kind != "f":
        _check(x, y)
    a = dt.type(alpha)
    n = y.size
    if n == 0:
        return
    contiguous = y.flags.c_contiguous and x.flags.c_contiguous
    loop = fused_loop() if contiguous and dt in _TYPECHAR else None
    if loop is not None and n <= _LOOP_MAX:  # (one thread, one pass, no call into BLAS)
        loop(x.reshape(-1) if x.ndim != 1 else x, y.reshape(-1) if y.ndim != 1 else y, a)
        return
    plan = _blas_plan(x, y, a)
    if plan is None:
        if loop is not None:
            loop(x.reshape(-1), y.reshape(-1), a)
        else:
            _emulated(a, x, y)
        return
    lib, n1, pad, scratch, race = plan
    fx, fy = x.reshape(-1), y.reshape(-1)
    pbx, pby = scratch() if loop is None and pad else (0, 0)
    _run(lib, n1, pad, race, loop, a, fx, fy, fx.ctypes.data, fy.ctypes.data, pbx, pby)


def _run(lib: _Blas, n1: int, pad: int, race: _Race, loop: Any, a: Any, fx: np.ndarray,
         fy: np.ndarray, px: int, py: int, pbx: int, pby: int) -> None:
    """One planned update of the flat, contiguous ``fy`` (at address ``py``) by ``fx`` (at
    ``px``): with the Numba ``loop``, BLAS's prefix and the loop on the rest or the loop alone,
    whichever ``race`` finds faster; without it, BLAS's prefix, then the rest through the
    padded scratch at ``pbx``, ``pby`` (or, ``pad`` = 0, the NumPy emulation)."""
    n, fa = fy.size, float(a)
    if loop is not None:
        way, timed = race.next()
        t0 = perf_counter_ns() if timed else 0
        if way:
            loop(fx, fy, a)
        else:
            lib.axpy(n1, fa, px, 1, py, 1)
            if n1 < n:
                loop(fx[n1:], fy[n1:], a)
        if timed:
            race.record(way, perf_counter_ns() - t0)
        return
    if n1:
        lib.axpy(n1, fa, px, 1, py, 1)
    if n1 < n:
        if pad:
            at = n1 * fy.itemsize
            _padded(lib, fa, px + at, py + at, (n - n1) * fy.itemsize, pad, pbx, pby)
        else:
            _emulated(a, fx[n1:], fy[n1:])


class _Race:
    """Which of two exact ways of one update is faster where it runs, found by timing both.

    Past 10,000 elements, with Numba at hand, the update can run as BLAS's threads (the prefix,
    then the loop on the rest) or as the loop alone, on one thread. Which is faster depends on
    where the arrays' cache lines are, which the step before decides: after two-thread matrix
    products (batch 16 and up on the benchmark machine) BLAS took 22 us for the 784-256-128-10
    network's first weight matrix against 74 for the loop; at batch 1, where the products are
    matrix-vector ones on one core, the loop took 17 us and BLAS 68. Both give the same bits,
    so the choice only changes the time: the first calls alternate between the two, three
    each, timed, and the faster by its best time is taken; every ``_RERACE`` calls they race
    again (the step around may have changed)."""

    __slots__ = ("calls", "best", "way")

    def __init__(self) -> None:
        self.calls, self.best, self.way = 0, [math.inf, math.inf], 0

    def next(self) -> tuple[int, bool]:
        """(the way to take now: 0 BLAS, 1 the loop; whether to time it)."""
        phase = self.calls % _RERACE
        self.calls += 1
        if phase < 2 * _TRIALS:
            return phase % 2, True
        return self.way, False

    def record(self, way: int, ns: int) -> None:
        best = self.best
        best[way] = min(best[way], ns)
        if (self.calls - 1) % _RERACE == 2 * _TRIALS - 1:
            self.way = int(best[1] < best[0])
            self.best = [math.inf, math.inf]


def fused_loop() -> Any:
    """``compile.fused.axpy`` (Numba, the extra ``chainrule[fast]``), or None without Numba;
    imported at the first update that can use it."""
    if not _FUSED:
        try:
            from ..compile import fused
        except ImportError:  # pragma: no cover - depends on the environment
            fused = None
        _FUSED.append(fused.get("axpy") if fused is not None and fused.AVAILABLE else None)
    return _FUSED[0]


def bind(x: np.ndarray, y: np.ndarray, tail: Any = None) -> Callable[[float], None]:
    """``f(alpha)`` doing ``axpy(alpha, x, y)`` on these two arrays, with their addresses, the
    BLAS prefix and the padded scratch for the rest planned once for the BLAS's thread count of
    the moment (for a compiled step, which updates the same buffers at every replay).
    ``tail(x, y, alpha)``: a loop that does the elements past the prefix
    (``compile.fused.axpy``), else BLAS on the padded scratch (or the NumPy emulation)."""
    _check(x, y)
    t = y.dtype.type
    if y.size == 0:
        return lambda alpha: None
    contiguous = x.flags.c_contiguous and y.flags.c_contiguous
    if y.dtype not in _TYPECHAR:
        tail = None  # (the loop: float32 and float64)
    plan = _blas_plan(x, y, t(1.0)) if tail is None or y.size > _LOOP_MAX else None
    fx, fy = x.reshape(-1), y.reshape(-1)
    if plan is None:  # the loop alone (up to 10,000 elements, or no BLAS), else axpy's checks
        if tail is not None and contiguous:
            return lambda alpha: tail(fx, fy, t(alpha))
        return lambda alpha: axpy(alpha, x, y)
    lib, n1, pad, _, _ = plan
    threads = lib.threads()
    race = _Race()  # (this update's own)
    px, py = fx.ctypes.data, fy.ctypes.data
    scratch: tuple[Any, ...] = ()
    pbx = pby = 0
    if tail is None and pad:
        scratch = (np.zeros(pad, y.dtype), np.zeros(pad, y.dtype))
        pbx, pby = scratch[0].ctypes.data, scratch[1].ctypes.data
    last: list[Any] = [None, None, False]  # the last alpha, its rounding, BLAS may take it

    def update(alpha: float) -> None:
        if alpha == last[0]:
            a, ok = last[1], last[2]
        else:
            a = t(alpha)
            ok = float(a) != 0 and math.isfinite(float(a))
            last[:] = alpha, a, ok
        if not ok or lib.threads() != threads:
            axpy(a, x, y)  # (the general path: it checks again)
            return
        _run(lib, n1, pad, race, tail, a, fx, fy, px, py, pbx, pby)

    update.arrays = (x, y) + scratch  # (kept alive with the addresses)
    return update


def _padded(lib: _Blas, alpha: float, px: int, py: int, nbytes: int, pad: int, pbx: int,
            pby: int) -> None:
    """The elements past the prefix (``nbytes`` at addresses ``px``, ``py``) through BLAS
    too: copied to the front of two scratch vectors of ``pad`` elements, a multiple of 128, so
    that BLAS's vector loop takes them all, then copied back. (What the scratch holds past
    them is computed and thrown away: each element of an axpy is its own.)"""
    ctypes.memmove(pbx, px, nbytes)
    ctypes.memmove(pby, py, nbytes)
    lib.axpy(pad, alpha, pbx, 1, pby, 1)
    ctypes.memmove(py, pby, nbytes)


def _check(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape != y.shape or x.dtype != y.dtype:
        raise ValueError(f"axpy: x {x.shape} {x.dtype} does not match y {y.shape} {y.dtype}")
    if y.dtype.kind != "f":
        raise TypeError(f"axpy: y must be a floating-point array, not {y.dtype}")


def _blas_plan(x: np.ndarray, y: np.ndarray, a: Any) -> tuple | None:
    """``(the BLAS, n1, pad, scratch)``: BLAS may do the first n1 elements in place, and the
    rest copied into scratch vectors of ``pad`` elements (:func:`_padded`; pad = 0: the NumPy
    emulation does the rest), each element rounded once; ``scratch()`` gives this thread's
    two scratch vectors' addresses. None where BLAS may do nothing: no such BLAS, another
    dtype, a strided array, a zero or non-finite ``alpha`` (BLAS returns at once for 0, where
    0 x must still turn an infinite x into NaN), a failed witness."""
    dt = y.dtype
    if dt not in _TYPECHAR:
        return None
    fa = float(a)
    if fa == 0 or not math.isfinite(fa) or not (y.flags.c_contiguous and x.flags.c_contiguous):
        return None
    lib = _lib(dt)
    if lib is None:
        return None
    threads = max(1, int(lib.threads()))
    key = (dt, y.size, threads)
    plan = _PLANS.get(key, _UNSEEN)
    if plan is _UNSEEN:
        plan = _PLANS[key] = _plan(lib, dt, y.size, threads)
    return plan


def _lib(dt: np.dtype) -> _Blas | None:
    """The BLAS for a float32/float64 dtype (looked up once), or None."""
    lib = _LIBS.get(dt, _UNSEEN)
    if lib is _UNSEEN:
        lib = _LIBS[dt] = _find_blas(dt)
    return lib


def _pad(r: int) -> int:
    """The scratch length for the r elements past the prefix: r rounded up to 128."""
    return -(-r // _UNIT) * _UNIT


def _plan(lib: _Blas, dt: np.dtype, n: int, threads: int) -> tuple | None:
    """:func:`_blas_plan` for n elements, once per (dtype, n, threads)."""
    n1 = _prefix(n, threads)
    pad = _pad(n - n1)
    if n1 and not _passes(lib, dt, n1, threads):
        return None
    if pad and not _passes(lib, dt, pad, threads):
        pad = 0
    if not n1 and not pad:
        return None

    def scratch() -> tuple[int, int]:
        mine = getattr(_THREAD, "scratch", None)
        if mine is None:
            mine = _THREAD.scratch = {}
        pair = mine.get((dt, pad))
        if pair is None:
            bx, by = np.zeros(pad, dt), np.zeros(pad, dt)
            pair = mine[dt, pad] = (bx.ctypes.data, by.ctypes.data, bx, by)
        return pair[:2]

    return lib, n1, pad, scratch, _Race()


def _passes(lib: _Blas, dt: np.dtype, n: int, threads: int) -> bool:
    """The witness for this length and thread count, run once and remembered."""
    key = (dt, n, threads)
    ok = _CHECKED.get(key)
    if ok is None:
        ok = _CHECKED[key] = _witness(lib, dt, n)
    return ok


def _prefix(n: int, threads: int) -> int:
    """The longest prefix of n elements that BLAS rounds once throughout, if its kernels fuse:
    OpenBLAS splits a long vector evenly between its threads, and each thread runs its vector
    loop (fused multiply-adds) over blocks of 16 or 32 elements, then a scalar loop (a multiply
    and an add, rounded apart) over the rest; a multiple of 128 elements per thread leaves no
    rest. The witness checks it for the library at hand."""
    return n - n % (_UNIT * threads)


def _find_blas(dt: np.dtype) -> _Blas | None:
    """``?axpy`` of the OpenBLAS inside NumPy's wheel, or None."""
    char, real = _TYPECHAR[dt]
    root = os.path.dirname(np.__file__)
    paths = sorted(glob.glob(os.path.join(root + ".libs", "*openblas*"))
                   + glob.glob(os.path.join(root, ".dylibs", "*openblas*")))
    names = ((f"scipy_cblas_{char}axpy64_", "scipy_openblas_get_num_threads64_", ctypes.c_int64),
             (f"cblas_{char}axpy64_", "openblas_get_num_threads64_", ctypes.c_int64),
             (f"scipy_cblas_{char}axpy", "scipy_openblas_get_num_threads", ctypes.c_int32),
             (f"cblas_{char}axpy", "openblas_get_num_threads", ctypes.c_int32))
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name, threads_name, integer in names:
            fn, threads = getattr(lib, name, None), getattr(lib, threads_name, None)
            if fn is not None and threads is not None:
                fn.argtypes = [integer, real, ctypes.c_void_p, integer, ctypes.c_void_p, integer]
                fn.restype = None
                threads.argtypes, threads.restype = [], ctypes.c_int
                return _Blas(fn, threads)
    return None


def _witness(lib: _Blas, dt: np.dtype, n: int) -> bool:
    """Whether BLAS's axpy of n elements rounds every element once.

    The witness: x = c, y = fl(c^2), alpha = -c with c = 1 + 2^-12 (float32; 1 + 2^-27 for
    float64), whose square needs one bit more than the dtype holds: rounded once, every element
    comes out -2^-24 (-2^-54); a product rounded before the sum gives 0. (Its two arrays are the
    only memory it takes, once per length and thread count.)"""
    c = dt.type(1 + 2.0 ** -12) if dt == np.float32 else dt.type(1 + 2.0 ** -27)
    tiny = dt.type(2.0 ** -24) if dt == np.float32 else dt.type(2.0 ** -54)
    x = np.full(n, c, dt)
    y = np.full(n, c * c, dt)
    lib.axpy(n, float(-c), x.ctypes.data, 1, y.ctypes.data, 1)
    return bool(np.all(y == -tiny))


def scratch_bytes(n: int, dtype: Any) -> int:
    """The most memory :func:`axpy` allocates for ``n`` contiguous elements of ``dtype``: with
    BLAS, the two padded scratch vectors for the elements past its prefix; without, the NumPy
    emulation's float64 arrays, at most one block (measured with tracemalloc: nine float64
    arrays of that length at once for float32, fourteen for float64)."""
    dt = np.dtype(dtype)
    lib = _lib(dt) if dt in _TYPECHAR else None
    if lib is not None:
        return 2 * _pad(n - _prefix(n, max(1, int(lib.threads())))) * dt.itemsize
    return min(n, _BLOCK) * 8 * (14 if dt.itemsize >= 8 else 9)


# ------------------------------------------------------------------------- the exact emulation

def _emulated(a: Any, x: np.ndarray, y: np.ndarray) -> None:
    """``y <- fl(y + a x)`` in NumPy, exactly (see the module), block by block."""
    if y.flags.c_contiguous:
        flat_y = y.reshape(-1)
        flat_x = np.ascontiguousarray(x).reshape(-1)
        for s in range(0, flat_y.size, _BLOCK):
            e = s + _BLOCK
            flat_y[s:e] = _fma_block(a, flat_x[s:e], flat_y[s:e])
    else:
        out = y.copy()
        _emulated(a, np.ascontiguousarray(x), out)
        y[...] = out


def _fma_block(a: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """fl(y + a x) for 1-D arrays, as a new array of y's dtype."""
    dt = y.dtype
    with np.errstate(all="ignore"):  # (infinities and NaN take their IEEE course)
        if dt == np.float64:
            return _fma64(np.float64(a), x, y)
        if dt.itemsize < 8:  # float16, float32: the product is exact in float64, and finite
            p = np.float64(a) * x.astype(np.float64)
            return _add_round_odd(y.astype(np.float64), p).astype(dt)
        return y + a * x  # (long double: nothing wider at hand; rounded twice)


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s = fl(a + b) and its error e: a + b = s + e exactly (Knuth), barring overflow."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def _add_round_odd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b rounded to odd (float64): the exact sum where it is a float64, otherwise the one
    of its two neighbours whose last mantissa bit is 1."""
    s, e = _two_sum(a, b)
    fix = (e != 0) & ((s.view(np.int64) & 1) == 0) & np.isfinite(s)
    if fix.any():
        s[fix] = np.nextafter(s[fix], np.where(e[fix] > 0, np.inf, -np.inf))
    return s


def _fma64(a: np.float64, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """fl(y + a x) in float64: Boldo and Melquiond's emulation (u_h + u_l = a x exactly by
    Dekker; t_h + t_l = y + u_h by TwoSum; v = t_l + u_l rounded to odd; fl(t_h + v)), exact
    wherever Dekker's product is exact and nothing overflows; elsewhere Fraction."""
    if not np.isfinite(a):
        return _nonfinite_fma(a, x, y)
    ah = _SPLIT * a
    ah = ah - (ah - a)
    al = a - ah
    xh = _SPLIT * x
    xh = xh - (xh - x)
    xl = x - xh
    uh = a * x
    ul = ((ah * xh - uh) + ah * xl + al * xh) + al * xl
    th, tl = _two_sum(y, uh)
    v = _add_round_odd(tl, ul)
    out = np.where(v == 0, th, th + v)  # (th + 0 would turn th = -0, from -0 + -0, into +0)
    finite = np.isfinite(x) & np.isfinite(y)
    au = np.abs(uh)
    safe = (finite & ((au >= 2.0 ** -960) | (x == 0) | bool(a == 0)) & (au <= 2.0 ** 990)
            & (np.abs(x) <= 2.0 ** 990) & (np.abs(y) <= 2.0 ** 990) & bool(abs(a) <= 2.0 ** 990))
    if not safe.all():
        rest = ~safe & finite
        if rest.any():
            out[rest] = _fraction_fma(a, x[rest], y[rest])
        if not finite.all():
            out[~finite] = _nonfinite_fma(a, x[~finite], y[~finite])
    return out


def _nonfinite_fma(a: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """fma where an operand is infinite or NaN: y + a x, except that an infinite y meeting a
    finite product (which an fma never rounds to infinity) stays y."""
    out = y + a * x
    keep = np.isinf(y) & np.isfinite(x) & bool(np.isfinite(a))
    out[keep] = y[keep]
    return out


def _fraction_fma(a: np.float64, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """fl(y + a x) for finite float64 operands, element by element with exact rationals
    (CPython rounds int / int to the nearest float, ties to even; past the largest float, to
    an infinity as IEEE does)."""
    fa = Fraction(float(a))
    out = np.empty_like(y)
    for i in range(y.size):
        q = Fraction(float(y[i])) + fa * Fraction(float(x[i]))
        if q == 0:  # +0, except y + 0 x with y = -0 and a product -0: IEEE's signed zeros
            out[i] = y[i] + a * x[i] if (a == 0 or x[i] == 0) else 0.0
            continue
        try:
            out[i] = q.numerator / q.denominator
        except OverflowError:
            out[i] = np.inf if q > 0 else -np.inf
    return out


__all__ = ["axpy", "bind", "fused_loop", "scratch_bytes"]
