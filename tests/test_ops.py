"""Every registered primitive, gradient-checked: the suite is driven by ``chainrule.ops.REGISTRY``.

* ``unary``/``binary``/``reduce`` primitives get inputs generated from their ``kind`` and
  ``domain`` over scalar, vector, matrix and broadcastable shapes; their forward is compared with
  NumPy (``REFERENCE``) and their VJP with central differences in float64 (``cr.gradcheck``).
* ``other`` primitives are checked on the explicit cases in ``OTHER_CASES``.
* Non-differentiable primitives must give outputs that do not require grad, through which no
  gradient flows.
* ``test_every_primitive_has_cases`` fails for a registered primitive without cases, so a new
  primitive cannot slip through untested.

Hypothesis then checks broadcasting (random broadcastable shape pairs) and reductions (random
shapes and axes) against NumPy and against independent reference formulas.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import chainrule as cr
import chainrule.ops
from chainrule.autograd import apply, unbroadcast
from chainrule.errors import GraphError
from chainrule.ops import axes as _axes

# Import every module of chainrule.ops, so that the registry is complete whatever the package's
# __init__ happens to import (losses and special functions register primitives too).
for _mod in pkgutil.iter_modules(chainrule.ops.__path__):
    importlib.import_module(f"chainrule.ops.{_mod.name}")

REGISTRY = cr.ops.REGISTRY
GRID = 0.7  # spacing of "smooth" inputs: far from ties and kinks for finite differences


# --------------------------------------------------------------------------- input generation
def sample(domain: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """float64 values of ``shape`` inside ``domain`` (see ``ops/registry.py``)."""
    n = math.prod(shape)
    if domain == "real":
        a = rng.standard_normal(n)
    elif domain == "positive":
        a = rng.uniform(0.5, 2.0, n)
    elif domain == "nonzero":
        a = rng.choice([-1.0, 1.0], n) * rng.uniform(0.3, 2.0, n)
    elif domain == "unit":
        a = rng.uniform(-0.8, 0.8, n)
    elif domain == "smooth":  # distinct values on a grid: no ties, no two within 0.6
        a = (rng.permutation(n) - n // 2) * GRID + rng.uniform(-0.05, 0.05, n)
    else:  # pragma: no cover - the registry validates domains
        raise AssertionError(domain)
    return a.reshape(shape)


def partner(domain: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A second operand for a binary primitive; for "smooth" it sits between the first operand's
    grid points, so maximum/minimum never see a tie."""
    if domain != "smooth":
        return sample(domain, shape, rng)
    n = math.prod(shape)
    return (rng.integers(-3, 4, n) * GRID + GRID / 2 + rng.uniform(-0.05, 0.05, n)).reshape(shape)


# A Python number inside each domain, for the weak-scalar operand path (``x * 2.0``).
SCALAR = {"real": 0.7, "positive": 1.3, "nonzero": -0.6, "unit": 0.3, "smooth": GRID / 2}


def leaf(a: np.ndarray, requires_grad: bool = True) -> cr.Tensor:
    return cr.tensor(a, dtype=cr.float64, requires_grad=requires_grad)


def names(kind: str, differentiable: bool | None = None) -> list[str]:
    return sorted(n for n, p in REGISTRY.items() if p.kind == kind and (
        differentiable is None or p.differentiable == differentiable))


# --------------------------------------------------------------------------- NumPy references
def _np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


REFERENCE: dict[str, Callable[..., Any]] = {
    # unary
    "neg": np.negative, "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs,
    "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "relu": lambda x: np.maximum(x, 0),
    "sign": np.sign, "erf": np.vectorize(math.erf, otypes=[float]),
    "softplus": lambda x: np.logaddexp(0, x),
    "sin": np.sin, "cos": np.cos, "log1p": np.log1p, "expm1": np.expm1,
    "rsqrt": lambda x: 1 / np.sqrt(x), "square": np.square, "clone": np.copy,
    # binary
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power,
    "maximum": np.maximum, "minimum": np.minimum, "lt": np.less, "le": np.less_equal,
    "gt": np.greater, "ge": np.greater_equal, "eq": np.equal, "ne": np.not_equal,
    "div_trunc": lambda a, b: np.trunc(a / b), "div_floor": np.floor_divide,
    # reduce: (x, axis, keepdims)
    "sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "var": np.var,
    "logsumexp": _np_logsumexp,
}

UNARY_SHAPES = [(), (5,), (3, 4), (2, 3, 4)]
BINARY_SHAPES = [
    ((), ()), ((5,), (5,)), ((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)),
    ((4,), (2, 3, 4)), ((), (3,)), ((2, 1, 4), (3, 1)), ((1,), (3, 2)),
]
REDUCE_CASES = [
    ((), None, False), ((), None, True), ((5,), None, False), ((5,), 0, True), ((5,), -1, False),
    ((3, 4), None, True), ((3, 4), 0, False), ((3, 4), 1, True), ((3, 4), -1, False),
    ((3, 4), (0, 1), False), ((3, 4), (-1, 0), True), ((2, 3, 4), 1, False),
    ((2, 3, 4), -2, True), ((2, 3, 4), (0, 2), False), ((2, 3, 4), (-1, -3), True),
    ((2, 3, 4), (0, 1, 2), False), ((2, 3, 4), (), False),
]


def _ids(cases):
    return [str(c) for c in cases]


# --------------------------------------------------------------------------- unary
@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=_ids(UNARY_SHAPES))
@pytest.mark.parametrize("name", names("unary", True))
def test_unary_gradcheck(name, shape, rng):
    prim = REGISTRY[name]
    x = leaf(sample(prim.domain, shape, rng))
    out = apply(prim, (x,))
    assert out.shape == shape and out.dtype == np.float64 and out.requires_grad
    np.testing.assert_allclose(out.numpy(), REFERENCE[name](x.numpy()), rtol=1e-12, atol=1e-12)
    assert cr.gradcheck(lambda t: apply(prim, (t,)), (x,))


# --------------------------------------------------------------------------- binary
@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=_ids(BINARY_SHAPES))
@pytest.mark.parametrize("name", names("binary", True))
def test_binary_gradcheck(name, shapes, rng):
    prim = REGISTRY[name]
    a = leaf(sample(prim.domain, shapes[0], rng))
    b = leaf(partner(prim.domain, shapes[1], rng))
    out = apply(prim, (a, b))
    assert out.shape == np.broadcast_shapes(*shapes)
    np.testing.assert_allclose(out.numpy(), REFERENCE[name](a.numpy(), b.numpy()), rtol=1e-12)
    assert cr.gradcheck(lambda s, t: apply(prim, (s, t)), (a, b))


@pytest.mark.parametrize("which", ["left", "right"])
@pytest.mark.parametrize("name", names("binary", True))
def test_binary_with_one_constant_operand(name, which, rng):
    """Only one side needs a gradient: the VJP's ``ctx.needs`` path; the constant gets none."""
    prim = REGISTRY[name]
    a = leaf(sample(prim.domain, (3, 4), rng), requires_grad=which == "left")
    b = leaf(partner(prim.domain, (4,), rng), requires_grad=which == "right")
    assert cr.gradcheck(lambda s, t: apply(prim, (s, t)), (a, b))
    apply(prim, (a, b)).sum().backward()
    constant = b if which == "left" else a
    assert constant.grad is None


@pytest.mark.parametrize("which", ["left", "right"])
@pytest.mark.parametrize("name", names("binary", True))
def test_binary_with_python_scalar(name, which, rng):
    """A Python number reaches the forward as a weak scalar: same values, dtype kept."""
    prim = REGISTRY[name]
    x = leaf(sample(prim.domain, (3, 4), rng))
    c = SCALAR[prim.domain]
    args = (lambda t: (t, c)) if which == "left" else (lambda t: (c, t))
    out = apply(prim, args(x))
    ref = REFERENCE[name](*[np.asarray(v.numpy() if isinstance(v, cr.Tensor) else v)
                            for v in args(x)])
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12)
    assert cr.gradcheck(lambda t: apply(prim, args(t)), (x,))
    x32 = cr.tensor(x.numpy(), dtype=cr.float32, requires_grad=True)  # stays float32
    assert apply(prim, args(x32)).dtype == np.float32


# --------------------------------------------------------------------------- reduce
@pytest.mark.parametrize("shape,axis,keepdims", REDUCE_CASES, ids=_ids(REDUCE_CASES))
@pytest.mark.parametrize("name", names("reduce", True))
def test_reduce_gradcheck(name, shape, axis, keepdims, rng):
    prim = REGISTRY[name]
    x = leaf(sample(prim.domain, shape, rng))
    axes = _axes.normalize(name, axis, len(shape))

    def f(t):
        return apply(prim, (t,), axes, keepdims)

    out = f(x)
    np_axis = axis if shape else None
    expected = REFERENCE[name](x.numpy(), axis=np_axis, keepdims=keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert cr.gradcheck(f, (x,))


# --------------------------------------------------------------------------- other
def case(fn: Callable[..., Any], *shapes: tuple[int, ...], domain: str = "real", id: str = ""):
    """An explicit case: ``fn`` applied to float64 leaves of ``shapes`` drawn from ``domain``."""
    return pytest.param(fn, shapes, domain, id=id or "x".join(map(str, shapes)))


_IDX = np.array([0, 2, 2, 1, 0])  # repeated indices: their gradients must accumulate
_MASK = np.array([[True, False, True, True], [False, False, True, False],
                  [True, True, False, True]])
_COND = np.array([[True, False, False, True]])


def _loss():
    return importlib.import_module("chainrule.ops.loss")


def _mlp():
    return importlib.import_module("chainrule.ops.mlp")


OTHER_CASES: dict[str, list[Any]] = {
    "pow_scalar": [
        case(lambda x: x**3, (3, 4), id="cube"),
        case(lambda x: x**2, (5,), id="square"),
        case(lambda x: x**0.5, (3, 4), domain="positive", id="sqrt"),
        case(lambda x: x**-1.5, (3,), domain="positive", id="negative"),
        case(lambda x: x**0, (4,), id="zero"),
        case(lambda x: x**1, (), id="one"),
    ],
    "leaky_relu": [
        case(lambda x: cr.leaky_relu(x), (3, 4), domain="nonzero"),
        case(lambda x: cr.leaky_relu(x, 0.2), (5,), domain="nonzero", id="slope0.2"),
    ],
    "clip": [
        case(lambda x: cr.clip(x, -0.45, 0.55), (3, 4), domain="smooth", id="both"),
        case(lambda x: cr.clip(x, min=0.35), (3, 4), domain="smooth", id="min"),
        case(lambda x: x.clip(max=-0.35), (5,), domain="smooth", id="max"),
    ],
    "clip_tensor": [  # bounds between the grid points of "smooth" x: no ties
        case(lambda x, lo, hi: cr.clip(x, lo - 1.05, hi + 1.05), (3, 4), (3, 4), (4,),
             domain="smooth", id="both"),
        case(lambda x, lo: cr.clamp(x, min=lo * 0.1 + 0.35), (3, 4), (3, 1), domain="smooth",
             id="min"),
        case(lambda x, hi: x.clamp(max=hi * 0.1 - 0.35), (5,), (), domain="smooth", id="max"),
        case(lambda x, lo: cr.clip(x, lo * 0.1 + 0.35, 0.55), (3, 4), (4,), domain="smooth",
             id="tensor-and-number"),
        case(lambda x, lo, hi: cr.clip(x, lo * 0.1 + 1.05, hi * 0.1 - 1.05), (2, 3), (2, 3),
             (2, 3), domain="smooth", id="min-above-max"),
    ],
    "index_select": [
        case(lambda x: cr.index_select(x, 0, cr.tensor([2, 0, 2])), (3, 4), id="repeated"),
        case(lambda x: x.index_select(-1, [3, 1]), (2, 3, 4), id="last-axis"),
        case(lambda x: cr.index_select(x, 1, np.array([], dtype=np.int64)), (2, 3), id="empty"),
    ],
    "where": [
        case(lambda a, b: cr.where(_COND, a, b), (3, 4), (3, 4), id="same"),
        case(lambda a, b: cr.where(_COND, a, b), (3, 1), (4,), id="broadcast"),
        case(lambda a: cr.where(_COND, a, 0.0), (3, 4), id="scalar"),
    ],
    "astype": [
        case(lambda x: x.astype(cr.float64) * 2, (3, 4), id="float64"),
        case(lambda x: x.astype("float64").sum(axis=0), (3, 4), id="string-dtype"),
    ],
    "matmul": [
        case(lambda a, b: a @ b, (3,), (3,), id="vec@vec"),
        case(lambda a, b: a @ b, (2, 3), (3,), id="mat@vec"),
        case(lambda a, b: a @ b, (3,), (3, 4), id="vec@mat"),
        case(lambda a, b: a @ b, (2, 3), (3, 4), id="mat@mat"),
        case(lambda a, b: a @ b, (2, 2, 3), (3, 4), id="batch@mat"),
        case(lambda a, b: a @ b, (3,), (2, 3, 4), id="vec@batch"),
        case(lambda a, b: a @ b, (2, 2, 3), (3,), id="batch@vec"),
        case(lambda a, b: a @ b, (2, 1, 2, 3), (3, 3, 2), id="broadcast-batches"),
        case(lambda a, b: cr.matmul(a, b.T), (1, 3), (2, 3), id="row@W.T"),
    ],
    "softmax": [
        case(lambda x: cr.softmax(x), (3, 4)),
        case(lambda x: x.softmax(axis=0), (3, 4), id="axis0"),
        case(lambda x: cr.softmax(x, dim=1), (2, 3, 4), id="dim1"),
        case(lambda x: cr.softmax(x), (5,), id="vector"),
    ],
    "log_softmax": [
        case(lambda x: cr.log_softmax(x), (3, 4)),
        case(lambda x: x.log_softmax(axis=0), (3, 4), id="axis0"),
        case(lambda x: cr.log_softmax(x, dim=-2), (2, 3, 4), id="dim-2"),
    ],
    "mlp": [  # the fused network: x, W1, b1, W2, b2 (, W3, b3)
        case(lambda x, w1, b1, w2, b2: _mlp().mlp(x, [w1, w2], [b1, b2], ["tanh", "identity"]),
             (5, 3), (4, 3), (4,), (2, 4), (2,), id="tanh"),
        case(lambda x, w1, b1, w2, b2: _mlp().mlp(x, [w1, w2], [b1, b2], ["sigmoid", "tanh"]),
             (5, 3), (4, 3), (4,), (2, 4), (2,), id="sigmoid-tanh"),
        case(lambda x, w1, b1, w2, b2, w3, b3: _mlp().mlp(
            x, [w1, w2, w3], [b1, b2, b3], ["relu", "relu", "sigmoid"]),
             (6, 3), (5, 3), (5,), (4, 5), (4,), (2, 4), (2,), id="relu3"),
        case(lambda x, w1, w2: _mlp().mlp(x, [w1, w2], None, ["identity", "tanh"]),
             (4, 3), (4, 3), (2, 4), id="nobias"),
        case(lambda x, w1, b1: _mlp().mlp(x, [w1], [b1], ["tanh"]), (3,), (2, 3), (2,),
             id="vector"),
        case(lambda x, w1, b1, w2, b2: _mlp().mlp(x, [w1, w2], [b1, b2], ["tanh", "tanh"]),
             (2, 3, 3), (4, 3), (4,), (2, 4), (2,), id="batched"),
    ],
    "linear": [
        case(lambda x, w, b: cr.linear(x, w, b), (4, 3), (2, 3), (2,), id="bias"),
        case(lambda x, w: cr.linear(x, w), (4, 3), (2, 3), id="nobias"),
        case(lambda x, w, b: cr.linear(x, w, b), (3,), (2, 3), (2,), id="vector"),
        case(lambda x, w, b: cr.linear(x, w, b), (2, 4, 3), (2, 3), (2,), id="batched"),
    ],
    "reshape": [
        case(lambda x: x.reshape(2, 6), (3, 4)),
        case(lambda x: x.reshape(-1), (2, 3, 2), id="minus1"),
        case(lambda x: x.reshape(1, 1), (), id="scalar"),
        case(lambda x: x.flatten(), (2, 3, 2), id="flatten"),
        case(lambda x: x.flatten(1), (2, 3, 2), id="flatten1"),
        case(lambda x: x.unsqueeze(1).squeeze(), (3, 4), id="unsqueeze-squeeze"),
        case(lambda x: cr.squeeze(x, dim=0), (1, 4), id="squeeze-dim"),
    ],
    "transpose": [
        case(lambda x: x.T, (3, 4), id="T"),
        case(lambda x: x.T, (2, 3, 4), id="T3"),
        case(lambda x: x.permute(2, 0, 1), (2, 3, 4), id="permute"),
        case(lambda x: x.transpose(0, 2), (2, 3, 4), id="swap"),
        case(lambda x: cr.swapaxes(x, -1, 0), (2, 3), id="swapaxes"),
    ],
    "broadcast_to": [
        case(lambda x: cr.broadcast_to(x, (2, 3, 4)), (3, 1)),
        case(lambda x: x.expand(3, -1), (1, 4), id="expand"),
        case(lambda x: x.broadcast_to((3,)), (), id="scalar"),
    ],
    "getitem": [
        case(lambda x: x[1], (3, 4), id="int"),
        case(lambda x: x[1:, ::-2], (3, 4), id="slices"),
        case(lambda x: x[..., None, 0], (2, 3, 4), id="ellipsis-none"),
        case(lambda x: x[_IDX], (3, 4), id="repeated-ints"),
        case(lambda x: x[_MASK], (3, 4), id="bool-mask"),
        case(lambda x: x[[0, 2], 1:3], (3, 4), id="mixed"),
        case(lambda x: x[cr.tensor([2, 0, 2])], (4,), id="tensor-index"),
    ],
    "concat": [
        case(lambda a, b, c: cr.concat([a, b, c]), (2, 3), (1, 3), (3, 3), id="axis0"),
        case(lambda a, b: cr.concat([a, b], axis=-1), (2, 3), (2, 1), id="axis-1"),
        case(lambda a, b: cr.cat([a, b], dim=1), (2, 1, 2), (2, 2, 2), id="dim1"),
    ],
    "stack": [
        case(lambda a, b: cr.stack([a, b]), (2, 3), (2, 3), id="axis0"),
        case(lambda a, b, c: cr.stack([a, b, c], axis=-1), (4,), (4,), (4,), id="axis-1"),
    ],
    # The fused losses of chainrule.ops.loss (owned by the nn/loss authors: keep in sync).
    "cross_entropy": [
        case(lambda x: _loss().softmax_cross_entropy(x, np.array([0, 3, 1]), None, "mean"),
             (3, 4), id="mean"),
        case(lambda x: _loss().softmax_cross_entropy(x, np.array([2, 2]), None, "sum"),
             (2, 3), id="sum"),
        case(lambda x: _loss().softmax_cross_entropy(
            x, np.array([1, 0, 2]), np.array([0.5, 1.0, 2.0]), "none"), (3, 3), id="weighted"),
    ],
    "squared_error": [
        case(lambda x, t: _loss().squared_error(x, t, None, 0.25), (3, 2), (3, 2), id="plain"),
        case(lambda x, t: _loss().squared_error(x, t, np.array([0.5, 1.0, 2.0]), 0.1),
             (3, 4), (3, 4), id="weighted"),
        case(lambda x: _loss().squared_error(x, np.ones((4,)), None, 1.0), (4,), id="1-d"),
    ],
    "bce_with_logits": [
        case(lambda x, t: _loss().bce_with_logits(x, t.sigmoid(), None, 0.25), (3, 2), (3, 2),
             id="plain"),
        case(lambda x: _loss().bce_with_logits(x * 3.0, np.array([[0.0, 1.0, 1.0, 0.0]] * 3),
                                               np.array([0.5, 1.0, 2.0]), 0.1),
             (3, 4), id="weighted"),
    ],
    "hinge": [
        case(lambda x, t: _loss().hinge(x, t, None, 0.25), (3, 2), (3, 2), id="plain"),
        case(lambda x: _loss().hinge(x * 0.3, np.array([[1.0, -1.0, 1.0, -1.0]] * 3),
                                     np.array([0.5, 1.0, 2.0]), 0.1), (3, 4), id="weighted"),
    ],
    "poisson_nll": [
        case(lambda x, t: _loss().poisson_nll(x, t, None, 0.25), (3, 2), (3, 2), id="plain"),
        case(lambda x: _loss().poisson_nll(x, np.array([[0.0, 1.0, 3.0, 2.0]] * 3),
                                           np.array([0.5, 1.0, 2.0]), 0.1), (3, 4),
             id="weighted"),
    ],
    "binary_cross_entropy": [
        case(lambda p, y: _loss().binary_cross_entropy(p.sigmoid(), y.sigmoid()), (3, 4), (3, 4),
             id="both"),
    ],
}

# Non-differentiable "other" primitives: (chainrule call, NumPy reference) on a (3, 4) array.
NONDIFF_OTHER: dict[str, list[tuple[Callable[..., Any], Callable[..., Any]]]] = {
    "argmax": [(lambda x: x.argmax(), np.argmax),
               (lambda x: x.argmax(axis=1), lambda a: np.argmax(a, axis=1)),
               (lambda x: cr.argmax(x, dim=0), lambda a: np.argmax(a, axis=0))],
    "argmin": [(lambda x: x.argmin(), np.argmin),
               (lambda x: cr.argmin(x, axis=-1, keepdims=True),
                lambda a: np.argmin(a, axis=-1, keepdims=True))],
}


def _other_params():
    return [pytest.param(name, *p.values, id=f"{name}-{p.id}")
            for name, params in sorted(OTHER_CASES.items()) for p in params]


@pytest.mark.parametrize("name,fn,shapes,domain", _other_params())
def test_other_gradcheck(name, fn, shapes, domain, rng):
    inputs = [leaf(sample(domain, s, rng)) for s in shapes]
    out = fn(*inputs)
    assert out.requires_grad
    assert _uses(out, REGISTRY[name]), f"the case does not exercise primitive {name!r}"
    assert cr.gradcheck(fn, inputs)


def _uses(out: cr.Tensor, prim) -> bool:
    """True when ``prim`` is among the nodes that made ``out``."""
    stack, seen = [out.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen or isinstance(node, cr.Tensor):
            continue
        seen.add(id(node))
        if node.prim is prim:
            return True
        stack.extend(node.parents)
    return False


# --------------------------------------------------------------------------- non-differentiable
def _assert_no_gradient_flows(out: cr.Tensor, x: cr.Tensor) -> None:
    """``out`` is a constant: it does not require grad, and using it next to ``x`` contributes
    nothing to ``x.grad`` beyond the direct path."""
    assert not out.requires_grad and out.is_leaf and out.grad_fn is None
    with pytest.raises(GraphError):
        out.astype(cr.float64).sum().backward()
    x.grad = None
    c = out.astype(cr.float64)
    if c.shape != x.shape:
        c = c.sum()
    (c * x).sum().backward()  # d/dx (c * x) = c, exactly, when c is a constant
    np.testing.assert_array_equal(x.grad, np.broadcast_to(c.numpy(), x.shape))


@pytest.mark.parametrize("name", names("unary", False) + names("binary", False))
def test_nondifferentiable_elementwise(name, rng):
    prim = REGISTRY[name]
    x = leaf(sample("smooth", (3, 4), rng))
    y = leaf(partner("smooth", (3, 4), rng))
    args = (x,) if prim.kind == "unary" else (x, y)
    out = apply(prim, args)
    np.testing.assert_array_equal(out.numpy(), REFERENCE[name](*[t.numpy() for t in args]))
    _assert_no_gradient_flows(out, x)


@pytest.mark.parametrize("name,fn,ref", [(n, f, r) for n, fs in sorted(NONDIFF_OTHER.items())
                                          for f, r in fs])
def test_nondifferentiable_other(name, fn, ref, rng):
    x = leaf(sample("smooth", (3, 4), rng))
    out = fn(x)
    np.testing.assert_array_equal(out.numpy(), ref(x.numpy()))
    _assert_no_gradient_flows(out, x)


def test_nondifferentiable_primitives_record_nothing(rng):
    x = leaf(sample("real", (3, 4), rng))
    for prim in REGISTRY.values():
        if not prim.differentiable and prim.kind in ("unary", "binary"):
            out = apply(prim, (x,) if prim.kind == "unary" else (x, x))
            assert out.grad_fn is None, prim.name


# --------------------------------------------------------------------------- completeness
def test_every_primitive_has_cases():
    """Fails when a registered primitive has no forward reference or gradient cases."""
    missing = []
    for name, prim in REGISTRY.items():
        if prim.kind in ("unary", "binary", "reduce"):
            if name not in REFERENCE:
                missing.append(f"{name} ({prim.kind}): add a NumPy reference to REFERENCE")
        elif prim.differentiable and name not in OTHER_CASES:
            missing.append(f"{name} (other): add gradient cases to OTHER_CASES")
        elif not prim.differentiable and name not in NONDIFF_OTHER:
            missing.append(f"{name} (other, not differentiable): add cases to NONDIFF_OTHER")
    assert not missing, "primitives without test cases:\n" + "\n".join(missing)


def test_no_stale_cases():
    stale = (set(OTHER_CASES) | set(NONDIFF_OTHER) | set(REFERENCE)) - set(REGISTRY)
    assert not stale, f"cases for primitives that are not registered: {sorted(stale)}"


def test_registry_entries_are_documented():
    for name, prim in REGISTRY.items():
        assert prim.name == name
        assert prim.doc, f"{name} has no docstring"
        if prim.differentiable:  # the convention: "<forward>;  dx = <derivative>"
            assert ";" in prim.doc, f"{name}'s docstring does not state its derivative"


def test_primitive_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="registered twice"):
        @cr.ops.primitive("add", kind="binary")
        class Again:  # noqa: D401
            def forward(ctx, a, b):
                return a + b

            def vjp(ctx, g):
                return g, g


# --------------------------------------------------------------------------- specific rules
def test_max_min_ties_share_the_gradient():
    x = cr.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    x.grad = None
    x.min().backward()  # the minimum 1.0 is unique
    np.testing.assert_allclose(x.grad, [[1, 0, 0], [0, 0, 0]])
    x.grad = None
    x.amax(dim=0, keepdim=True).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 1, 1], [1, 0, 0]])
    x.grad = None  # max(dim=) follows its indices, as PyTorch's: the first of tied maxima
    x.max(dim=1).values.sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 1, 0], [1, 0, 0]])


def test_maximum_minimum_ties_split_the_gradient():
    a = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = cr.tensor([1.0, 5.0, 0.0], requires_grad=True)
    cr.maximum(a, b).sum().backward()
    np.testing.assert_allclose(a.grad, [0.5, 0, 1])
    np.testing.assert_allclose(b.grad, [0.5, 1, 0])
    a.grad = b.grad = None
    cr.minimum(a, b).sum().backward()
    np.testing.assert_allclose(a.grad, [0.5, 1, 0])
    np.testing.assert_allclose(b.grad, [0.5, 0, 1])


def test_getitem_repeated_indices_accumulate():
    x = cr.tensor([10.0, 20.0, 30.0], requires_grad=True)
    y = x[[0, 2, 2, 2, 0]]
    np.testing.assert_array_equal(y.numpy(), [10, 30, 30, 30, 10])
    y.backward(np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype=np.float32))
    np.testing.assert_array_equal(x.grad, [6, 0, 9])


def test_getitem_boolean_mask_gradient():
    x = cr.tensor([[1.0, -2.0], [-3.0, 4.0]], requires_grad=True)
    y = x[x > 0]
    np.testing.assert_array_equal(y.numpy(), [1, 4])
    (y * cr.tensor([2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [[2, 0], [0, 3]])


def test_kinks_take_pytorch_subgradients():
    x = cr.tensor([0.0, 0.0, 0.0], requires_grad=True)
    (x.relu() + x.abs() + cr.leaky_relu(x, 0.1)).sum().backward()
    np.testing.assert_allclose(x.grad, [0.1, 0.1, 0.1])  # relu'(0) = abs'(0) = 0, leaky'(0) = a
    c = cr.tensor([-1.0, 0.5, 1.0, 2.0], requires_grad=True)
    c.clip(-1.0, 1.0).sum().backward()  # the bounds themselves pass the gradient
    np.testing.assert_array_equal(c.grad, [1, 1, 1, 0])


def test_pow_at_zero_has_finite_gradients():
    x = cr.tensor([0.0, 2.0], requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 0])
    a = cr.tensor([0.0, 2.0], requires_grad=True)
    b = cr.tensor([2.0, 0.0], requires_grad=True)
    (a**b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0, 0])  # 2 * 0^1 = 0 and 0 * 2^-1 = 0
    np.testing.assert_allclose(b.grad, [0, math.log(2)])  # 0^2 log 0 -> 0


def test_stable_functions_at_extreme_inputs():
    x = cr.tensor([-1000.0, 0.0, 1000.0], requires_grad=True)
    s = x.sigmoid()
    np.testing.assert_allclose(s.numpy(), [0, 0.5, 1])
    p = x.softmax()
    np.testing.assert_allclose(p.numpy(), [0, 0, 1])
    np.testing.assert_allclose(x.logsumexp().item(), 1000.0)
    lp = x.log_softmax()
    assert np.isfinite(lp.numpy()).all()
    (s.sum() + x.logsumexp() + lp[2]).backward()
    assert np.isfinite(x.grad).all()


def test_softmax_sums_to_one_and_log_softmax_is_its_log(rng):
    x = cr.tensor(rng.standard_normal((3, 5)), dtype=cr.float64)
    np.testing.assert_allclose(x.softmax(axis=1).sum(axis=1).numpy(), np.ones(3))
    np.testing.assert_allclose(x.log_softmax(dim=0).numpy(), np.log(x.softmax(dim=0).numpy()))


def test_var_ddof_and_std(rng):
    a = rng.standard_normal((4, 3))
    x = cr.tensor(a, dtype=cr.float64, requires_grad=True)
    np.testing.assert_allclose(x.var(axis=0, ddof=1).numpy(), a.var(axis=0, ddof=1))
    np.testing.assert_allclose(cr.var(x, dim=1, correction=1).numpy(), a.var(axis=1, ddof=1))
    np.testing.assert_allclose(x.std().item(), a.std())
    assert cr.gradcheck(lambda t: t.var(axis=0, ddof=1) + t.std(axis=0), x)


def test_matmul_shapes():
    assert (cr.ones(3) @ cr.ones(3)).shape == ()
    assert (cr.ones(2, 3) @ cr.ones(3)).shape == (2,)
    assert (cr.ones(3) @ cr.ones(2, 3, 4)).shape == (2, 4)
    assert (cr.ones(2, 1, 5, 3) @ cr.ones(4, 3, 2)).shape == (2, 4, 5, 2)
    m = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal((cr.tensor(m) @ cr.tensor(m.T)).numpy(), m @ m.T)
    np.testing.assert_array_equal((m @ cr.tensor(m.T)).numpy(), m @ m.T)  # reflected


def test_shape_helpers_values():
    x = cr.arange(24).reshape(2, 3, 4)
    assert x.flatten().shape == (24,)
    assert x.flatten(1).shape == (2, 12)
    assert x.flatten(0, 1).shape == (6, 4)
    assert x.unsqueeze(0).shape == (1, 2, 3, 4) and x.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert cr.ones(1, 3, 1).squeeze().shape == (3,)
    assert cr.ones(1, 3, 1).squeeze(axis=-1).shape == (1, 3)
    assert x.permute(2, 0, 1).shape == (4, 2, 3)
    assert x.transpose(0, 2).shape == (4, 3, 2)
    m = cr.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(m.transpose(0, 1).numpy(), m.numpy().T)  # PyTorch: a swap
    np.testing.assert_array_equal(m.transpose((0, 1)).numpy(), m.numpy())  # NumPy: a permutation
    assert cr.ones(3, 1).expand(2, -1, 4).shape == (2, 3, 4)
    assert cr.stack([cr.ones(2), cr.zeros(2)], dim=1).shape == (2, 2)


def test_reductions_accept_pytorch_aliases():
    x = cr.tensor(np.arange(12.0).reshape(3, 4))
    for fn in ("sum", "mean", "max", "min", "amax", "amin", "var", "logsumexp"):
        a = getattr(x, fn)(axis=1, keepdims=True)
        b = getattr(x, fn)(dim=1, keepdim=True)
        if fn in ("max", "min"):  # dim= gives PyTorch's (values, indices)
            b = b.values
        assert a.shape == (3, 1)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(cr.InvalidValueError):
        x.sum(axis=0, dim=1)
    with pytest.raises(cr.InvalidValueError):
        x.sum(dims=0)


def test_integer_inputs_give_default_float_where_a_float_is_needed():
    i = cr.arange(1, 5)
    assert i.dtype == np.int64
    for t in (i.exp(), i.sqrt(), i.sigmoid(), i.mean(), i.var(), cr.softmax(i),
              cr.leaky_relu(i), i / 2, i / i, i * 0.5, 0.5 + i, cr.logsumexp(i)):
        assert t.dtype == np.float32, t
    assert (i + 1).dtype == np.int64 and i.sum().dtype == np.int64 and i.max().dtype == np.int64
    assert (cr.tensor([True, False]) + 1).tolist() == [2, 1]
    assert (cr.ones(2) + cr.tensor([1, 2])).dtype == np.float32
    assert (cr.ones(2, dtype=cr.float64) + cr.tensor([1, 2])).dtype == np.float64


# --------------------------------------------------------------------------- Hypothesis
BINARY_DIFF = names("binary", True)


@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       name=st.sampled_from(BINARY_DIFF), seed=st.integers(0, 2**16))
def test_broadcasting_gradients_match_finite_differences(shapes, name, seed):
    rng = np.random.default_rng(seed)
    prim = REGISTRY[name]
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    a = leaf(sample(prim.domain, sa, rng))
    b = leaf(partner(prim.domain, sb, rng))
    out = apply(prim, (a, b))
    assert out.shape == out_shape
    out.backward(np.ones(out_shape))
    assert a.grad.shape == sa and b.grad.shape == sb
    assert cr.gradcheck(lambda s, t: apply(prim, (s, t)), (a, b))


def _sum_into(shape: tuple[int, ...], g: np.ndarray) -> np.ndarray:
    """Sum ``g`` back to ``shape`` index by index: an independent reference for unbroadcast."""
    out = np.zeros(shape)
    for idx in np.ndindex(*g.shape):
        tail = idx[len(idx) - len(shape):] if shape else ()
        out[tuple(0 if n == 1 else i for i, n in zip(tail, shape))] += g[idx]
    return out


@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       seed=st.integers(0, 2**16))
def test_broadcast_gradients_are_sums_over_broadcast_axes(shapes, seed):
    rng = np.random.default_rng(seed)
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    an, bn = rng.standard_normal(sa), rng.standard_normal(sb)
    g = rng.standard_normal(out_shape)
    a, b = leaf(an), leaf(bn)
    (a * b + a).backward(g)  # d/da = g * b + g, d/db = g * a, each summed over broadcast axes
    np.testing.assert_allclose(a.grad, _sum_into(sa, g * bn + g), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.grad, _sum_into(sb, g * an), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(unbroadcast(g, sa), _sum_into(sa, g), rtol=1e-12, atol=1e-12)


@st.composite
def shape_and_axis(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    nd = len(shape)
    if nd == 0:
        axis = None
    else:
        axis = draw(st.one_of(
            st.none(),
            st.integers(-nd, nd - 1),
            st.lists(st.integers(0, nd - 1), unique=True, min_size=1, max_size=nd).flatmap(
                lambda ax: st.tuples(*[st.sampled_from([a, a - nd]) for a in ax])),
        ))
    return shape, axis


def _reduce_reference_grad(name, x, axis, g_kept):
    """dL/dx for L = sum(g * reduce(x)), from the textbook formulas (NumPy, keepdims form)."""
    n = x.size // max(np.sum(np.ones_like(x), axis=axis, keepdims=True).size, 1)
    if name == "sum":
        return np.broadcast_to(g_kept, x.shape)
    if name == "mean":
        return np.broadcast_to(g_kept / n, x.shape)
    if name in ("max", "min"):  # distinct inputs: one winner per slot
        ext = getattr(np, name)(x, axis=axis, keepdims=True)
        return (x == ext) * g_kept
    if name == "var":
        return 2 * (x - x.mean(axis=axis, keepdims=True)) / n * g_kept
    if name == "logsumexp":
        return np.exp(x - _np_logsumexp(x, axis=axis, keepdims=True)) * g_kept
    raise AssertionError(name)


@given(sa=shape_and_axis(), keepdims=st.booleans(), alias=st.booleans(),
       name=st.sampled_from(["sum", "mean", "max", "min", "var", "logsumexp"]),
       seed=st.integers(0, 2**16))
def test_reductions_match_numpy(sa, keepdims, alias, name, seed):
    shape, axis = sa
    rng = np.random.default_rng(seed)
    xn = sample("smooth", shape, rng)
    x = leaf(xn)
    kwargs = {"dim": axis, "keepdim": keepdims} if alias else {"axis": axis, "keepdims": keepdims}
    if alias and name in ("max", "min"):
        name_called = "a" + name  # PyTorch's spelling of a reduction over dims: amax, amin
    else:
        name_called = name
    out = getattr(x, name_called)(**kwargs)
    expected = REFERENCE[name](xn, axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)

    g = rng.standard_normal(out.shape)
    out.backward(g)
    kept = np.shape(REFERENCE[name](xn, axis=axis, keepdims=True))
    ref = _reduce_reference_grad(name, xn, axis, np.reshape(g, kept))
    assert x.grad.shape == shape
    np.testing.assert_allclose(x.grad, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_keeps_relative_precision_far_into_the_negative_tail(dtype):
    x = np.array([-80.0, -40.0, -20.0, -1.5, 0.0, 1.5, 20.0, 80.0])
    expected = 1 / (1 + np.exp(-x))            # exact enough in float64 for these points
    got = cr.sigmoid(cr.tensor(x, dtype=dtype)).numpy().astype(np.float64)
    tiny = np.finfo(dtype).tiny
    ok = expected > tiny * 1e3                  # below this the value is subnormal / zero
    np.testing.assert_allclose(got[ok], expected[ok], rtol=2 * np.finfo(dtype).eps)
