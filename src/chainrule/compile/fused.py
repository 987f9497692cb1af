"""Fused elementwise loops for the CPU kernels, compiled by Numba when it is installed.

NumPy makes one pass over memory, and one Python-level call, per operation; a chain such as
``p - lr * g`` is two passes with a temporary between them. These loops do such chains in one
pass, with *the same arithmetic*: the same IEEE operations on the same values in the same order,
each rounded to the array's dtype as NumPy rounds it (Numba compiles without fast-math, so LLVM
neither reassociates nor contracts a multiply and an add into an FMA), hence the same bits as
the NumPy they replace (``tests/test_compile.py`` runs every kernel both ways); the one FMA is
asked for by name, in SGD's update, which rounds once everywhere (``optim._axpy``). Only
correctly-rounded operations are fused (+, -, *, /, comparisons, selection); ``exp``, ``log``
and ``tanh``, whose NumPy implementations are vectorised approximations of their own, and every
reduction whose summation order NumPy or BLAS decides, stay NumPy calls.

Why Numba earns its place (``pip install chainrule[fast]``): on this 2-core x86 machine, at
batch 1 the weight gradient of the first layer (an outer product) and its update fused take 16
instead of 54 us, about half of that step; a step of the small digits network loses nine of
its thirty-odd NumPy calls (about 9 of 28 us). Numba's dispatch costs about 0.25 us a call; the
first call of each loop compiles it (about half a second, once: ``cache=True`` keeps it on
disk). Without Numba the kernels keep their NumPy calls: same numbers, slower.

The loops, and the NumPy they stand for:

``axpy``           y += alpha x, rounded once   (optim._axpy past its BLAS prefix)
``outer_sgd``      G = d x^T + 0; W -= lr * G   (dot(d^T, x) for one row, then optim._axpy)
``outer``          G = d x^T + 0                (dot(d^T, x) for one row)
``bias_relu``      s = maximum(s + b, 0)        (add the bias, then maximum with 0)
``bias_add``       s += b                       (the bias added to every row)
``tanh_grad``      out = (1 - y*y) * delta      (square, subtract from 1, multiply)
``relu_grad``      out = [y > 0] * delta        (greater into a float array, multiply)
``tanh_grad_inplace``, ``relu_grad_inplace``: the same into ``delta`` itself, where the step
                   owns it (a product's fresh output; the eager VJP works in place there too)
``ce_forward``     the label check, flat label indices, row maxima, z = x - m, picked z
``ce_backward``    p = e / s; dx = p * scale; dx[label] -= scale
"""

from __future__ import annotations

from typing import Any

try:  # an optional accelerator
    import numba as _numba
except ImportError:  # pragma: no cover - depends on the environment
    _numba = None

AVAILABLE = _numba is not None
_KERNELS: dict[str, Any] = {}


def get(name: str) -> Any:
    """The compiled loop ``name`` (None without Numba)."""
    if not AVAILABLE:
        return None
    k = _KERNELS.get(name)
    if k is None:
        k = _KERNELS[name] = _numba.njit(cache=True, nogil=True, error_model="numpy")(
            _SOURCES[name])
    return k


if AVAILABLE:
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def _fma(typingctx, a, b, c):  # pragma: no cover - compiled
        """a b + c rounded once: LLVM's ``llvm.fma`` (an FMA instruction, or libm's fma)."""
        from numba.core import types

        if not (isinstance(a, types.Float) and a == b == c):
            return None

        def codegen(context, builder, signature, args):
            return builder.fma(*args)

        return a(a, b, c), codegen
else:  # pragma: no cover - depends on the environment
    _fma = None


def axpy(x, y, alpha):  # pragma: no cover - compiled
    """y <- y + alpha x over flat arrays, each element rounded once (optim._axpy's rounding;
    it calls this for the elements past its BLAS prefix)."""
    for i in range(y.shape[0]):
        y[i] = _fma(alpha, x[i], y[i])


def outer_sgd(W, G, d, x, lr, zero):  # pragma: no cover - compiled
    """G[i, j] = d[i] x[j] + 0 (the weight gradient of a batch of one, as BLAS computes it:
    its accumulator starts at +0, so a product -0 comes out +0); W <- W - lr G rounded once
    (an fma, as ``optim._axpy`` rounds SGD's update). ``zero``: 0 in the arrays' dtype."""
    m, n = W.shape
    alpha = -lr
    for i in range(m):
        di = d[i]
        for j in range(n):
            gij = di * x[j] + zero
            G[i, j] = gij
            W[i, j] = _fma(alpha, gij, W[i, j])


def outer(G, d, x, zero):  # pragma: no cover - compiled
    """G[i, j] = d[i] x[j] + 0 (see outer_sgd)."""
    m, n = G.shape
    for i in range(m):
        di = d[i]
        for j in range(n):
            G[i, j] = di * x[j] + zero


def bias_relu(s, b, zero):  # pragma: no cover - compiled
    """s = maximum(s + b, 0) in place: the bias added (rounded), then NumPy's maximum with 0,
    which keeps a NaN and gives +0 for -0 (it returns its second operand when they are
    equal)."""
    n, k = s.shape
    for i in range(n):
        for j in range(k):
            v = s[i, j] + b[j]
            s[i, j] = v if (v > zero or v != v) else zero


def bias_add(s, b):  # pragma: no cover - compiled
    """s += b over the rows (NumPy broadcasts a short bias row by row: slow for few outputs)."""
    n, k = s.shape
    for i in range(n):
        for j in range(k):
            s[i, j] = s[i, j] + b[j]


def _tanh_times(y, d, one):  # pragma: no cover - compiled (inlined)
    """(1 - y * y) * d, each operation rounded (ops.mlp._times_derivative); ``one`` is 1 in
    the arrays' dtype (a bare 1 would make Numba compute in float64)."""
    v = y * y
    v = one - v
    return v * d


def _relu_times(y, d, one, zero):  # pragma: no cover - compiled (inlined)
    """[y > 0] * d: 1.0 or 0.0 times d (ops.mlp._times_derivative); ``one`` and ``zero`` in
    the arrays' dtype."""
    return (one if y > 0 else zero) * d


if AVAILABLE:  # (the loops below call them compiled; inlined, as if written there)
    _tanh_times = _numba.njit(inline="always", cache=True)(_tanh_times)
    _relu_times = _numba.njit(inline="always", cache=True)(_relu_times)


def tanh_grad(out, y, delta, one):  # pragma: no cover - compiled
    """out = (1 - y * y) * delta (``_tanh_times``)."""
    n, k = y.shape
    for i in range(n):
        for j in range(k):
            out[i, j] = _tanh_times(y[i, j], delta[i, j], one)


def relu_grad(out, y, delta, one, zero):  # pragma: no cover - compiled
    """out = [y > 0] * delta (``_relu_times``)."""
    n, k = y.shape
    for i in range(n):
        for j in range(k):
            out[i, j] = _relu_times(y[i, j], delta[i, j], one, zero)


def relu_grad_inplace(delta, y, one, zero):  # pragma: no cover - compiled
    """delta = [y > 0] * delta in place, for a delta that the step owns (a product's fresh
    output, as ``ops.mlp._times_derivative`` with ``owned``). Its own loop rather than
    ``relu_grad(delta, y, delta, ...)``: LLVM's runtime check finds ``out`` overlapping
    ``delta`` there and runs the scalar loop."""
    n, k = y.shape
    for i in range(n):
        for j in range(k):
            delta[i, j] = _relu_times(y[i, j], delta[i, j], one, zero)


def tanh_grad_inplace(delta, y, one):  # pragma: no cover - compiled
    """delta = (1 - y * y) * delta in place (as ``relu_grad_inplace``)."""
    n, k = y.shape
    for i in range(n):
        for j in range(k):
            delta[i, j] = _tanh_times(y[i, j], delta[i, j], one)


def ce_forward(x, labels, flat, m, z, picked):  # pragma: no cover - compiled
    """ops.loss.CrossEntropy.forward up to exp: each label in [0, C) (else False, nothing
    else is trusted), flat[i] = i C + labels[i], m[i] = max_j x[i, j] (NaN if any is, as
    np.maximum), z = x - m, picked[i] = z[i, labels[i]]."""
    n, c = x.shape
    for i in range(n):
        lab = labels[i]
        if lab < 0 or lab >= c:
            return False
    for i in range(n):
        lab = labels[i]
        flat[i] = i * c + lab
        mi = x[i, 0]
        for j in range(1, c):
            v = x[i, j]
            if v > mi or v != v:
                if mi == mi:
                    mi = v
        m[i, 0] = mi
        for j in range(c):
            z[i, j] = x[i, j] - mi
        picked[i] = z[i, lab]
    return True


def ce_backward(e, s, labels, scale, dx):  # pragma: no cover - compiled
    """p = e / s (in place: the saved softmax), dx = p * scale, dx[i, labels[i]] -= scale."""
    n, c = e.shape
    for i in range(n):
        si = s[i]
        for j in range(c):
            p = e[i, j] / si
            e[i, j] = p
            dx[i, j] = p * scale
        lab = labels[i]
        dx[i, lab] = dx[i, lab] - scale


_SOURCES = {f.__name__: f for f in (axpy, outer_sgd, outer, bias_relu, bias_add, tanh_grad,
                                    relu_grad, tanh_grad_inplace, relu_grad_inplace,
                                    ce_forward, ce_backward)}

__all__ = ["AVAILABLE", "get"]
