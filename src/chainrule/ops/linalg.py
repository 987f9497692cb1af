"""Matrix products: ``matmul`` for 1-D, 2-D and batched (broadcasting) operands."""

from __future__ import annotations

from typing import Any

from ..autograd import apply, unbroadcast
from ..backend import get_xp
from ..errors import ShapeError
from ..tensor import Tensor, tensor_operands
from .registry import primitive


def _swap(a):
    return a.swapaxes(-1, -2)


@primitive("matmul", kind="other", saves="each input whose partner needs a gradient")
class MatMul:
    """a @ b;  da = g b^T, db = a^T g (1-D operands are promoted to a row / column and back, batch
    axes that broadcasting added are summed)."""

    def forward(ctx, a, b):
        _check_matmul(a.shape, b.shape)
        if ctx is not None:
            need_a, need_b = ctx.needs
            ctx.saved = (a if need_b else None, b if need_a else None, a.shape, b.shape)
        if a.ndim <= 2 and b.ndim <= 2:
            return a.dot(b)  # BLAS gemm/gemv; np.matmul is far slower for some 2-D shapes
        return get_xp(a, b).matmul(a, b)

    def vjp(ctx, g):
        a, b, a_shape, b_shape = ctx.saved
        if len(a_shape) == 2 and len(b_shape) == 2:
            return (g.dot(b.T) if b is not None else None), (a.T.dot(g) if a is not None else None)
        xp = get_xp(g)
        if len(b_shape) == 1:
            g = g[..., None]
        if len(a_shape) == 1:
            g = xp.expand_dims(g, -2)
        da = db = None
        if b is not None:
            b2 = b if b.ndim > 1 else b[:, None]
            a2_shape = a_shape if len(a_shape) > 1 else (1,) + a_shape
            da = unbroadcast(xp.matmul(g, _swap(b2)), a2_shape).reshape(a_shape)
        if a is not None:
            a2 = a if a.ndim > 1 else a[None, :]
            b2_shape = b_shape if len(b_shape) > 1 else b_shape + (1,)
            db = unbroadcast(xp.matmul(_swap(a2), g), b2_shape).reshape(b_shape)
        return da, db


def _check_matmul(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    if len(a_shape) == 0 or len(b_shape) == 0:
        raise ShapeError(f"matmul: operands must have at least one dimension, got shapes "
                         f"{a_shape} and {b_shape}")
    k_a = a_shape[-1]
    k_b = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if k_a != k_b:
        raise ShapeError(
            f"matmul: shapes {a_shape} and {b_shape} are not aligned: the last axis of the first "
            f"({k_a}) must equal the {'first' if len(b_shape) == 1 else 'second-to-last'} axis "
            f"of the second ({k_b})"
        )
    batch_a, batch_b = a_shape[:-2], b_shape[:-2]
    for p, q in zip(batch_a[::-1], batch_b[::-1]):
        if p != q and 1 not in (p, q):
            raise ShapeError(f"matmul: batch shapes {batch_a} and {batch_b} do not broadcast")


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy's ``matmul`` semantics.

    Shape: (n,) @ (n,) -> (); (m, n) @ (n, p) -> (m, p); (n,) @ (..., n, p) -> (..., p);
    (..., m, n) @ (n,) -> (..., m); (*A, m, n) @ (*B, n, p) -> (*broadcast(A, B), m, p).
    """
    return apply(MatMul, tensor_operands(a, b))
