"""Misuse raises a chainrule error (also the built-in exception a Python user expects) whose
message names the operation, the shapes and what was expected: never a bare NumPy traceback."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.errors import (
    ChainruleError, DTypeError, GraphError, IndexingError, InvalidValueError, ShapeError,
)


def test_error_hierarchy():
    assert issubclass(ShapeError, ValueError) and issubclass(DTypeError, TypeError)
    assert issubclass(IndexingError, IndexError) and issubclass(GraphError, RuntimeError)
    for e in (ShapeError, DTypeError, IndexingError, GraphError, InvalidValueError,
              cr.GradcheckError, cr.FileFormatError):
        assert issubclass(e, ChainruleError)


def test_matmul_mismatch_names_op_shapes_and_expectation():
    with pytest.raises(ShapeError) as info:
        cr.ones(2, 3) @ cr.ones(4, 5)
    msg = str(info.value)
    assert "matmul" in msg and "(2, 3)" in msg and "(4, 5)" in msg and "must equal" in msg
    with pytest.raises(ShapeError, match="batch shapes"):
        cr.ones(2, 2, 3) @ cr.ones(3, 3, 4)
    with pytest.raises(ShapeError, match="at least one dimension"):
        cr.tensor(2.0) @ cr.ones(2)
    with pytest.raises(ShapeError, match="matmul"):
        cr.ones(3) @ 2.0


def test_broadcast_mismatch_names_op_shapes_and_expectation():
    with pytest.raises(ShapeError) as info:
        cr.ones(3, 4) + cr.ones(3)
    msg = str(info.value)
    assert msg.startswith("add:") and "(3, 4)" in msg and "(3,)" in msg
    assert "equal or 1" in msg
    for fn in (lambda: cr.ones(2) * cr.ones(3), lambda: cr.maximum(cr.ones(2), cr.ones(3)),
               lambda: cr.where(np.array([True, False]), cr.ones(3), 0.0)):
        with pytest.raises(ShapeError):
            fn()


@pytest.mark.parametrize("call,error,words", [
    (lambda: cr.ones(6).reshape(4, 2), ShapeError, ["reshape", "(6,)", "(4, 2)"]),
    (lambda: cr.ones(2, 3).sum(axis=2), ShapeError, ["sum", "axis 2"]),
    (lambda: cr.ones(2, 3).max(axis=(0, 0)), ShapeError, ["repeated"]),
    (lambda: cr.ones(2, 3).squeeze(0), ShapeError, ["squeeze", "length 2"]),
    (lambda: cr.ones(2, 3).permute(0, 0), ShapeError, ["permute"]),
    (lambda: cr.broadcast_to(cr.ones(3), (2, 4)), ShapeError, ["broadcast_to", "(3,)"]),
    (lambda: cr.concat([cr.ones(2, 3), cr.ones(2, 4)]), ShapeError, ["concat", "axis 0"]),
    (lambda: cr.stack([cr.ones(2), cr.ones(3)]), ShapeError, ["stack"]),
    (lambda: cr.linear(cr.ones(2, 3), cr.ones(4, 5)), ShapeError, ["linear", "3 features"]),
    (lambda: cr.ones(0).max(), ShapeError, ["max", "empty"]),
    (lambda: cr.ones(1).var(ddof=1), ShapeError, ["var", "ddof"]),
    (lambda: cr.ones(3)[5], IndexingError, ["getitem", "(3,)", "out of bounds"]),
    (lambda: cr.ones(3)[np.array([True, False])], IndexingError, ["getitem", "(3,)"]),
    (lambda: cr.ones(3)[[0.5]], IndexingError, ["integers or bools"]),
    (lambda: cr.ones(3)[cr.ones(1)], IndexingError, ["integer or bool"]),
    (lambda: cr.tensor([True]) - cr.tensor([True]), DTypeError, ["sub", "bool"]),
    (lambda: -cr.tensor([True]), DTypeError, ["neg", "bool"]),
    (lambda: cr.tensor(["x"]), DTypeError, ["<U1"]),
    (lambda: cr.ones(2) + "a", DTypeError, []),
    (lambda: cr.where(cr.ones(2), 1.0, 0.0), DTypeError, ["where", "boolean"]),
    (lambda: cr.arange(3) ** cr.tensor([-1, -1, -1]), InvalidValueError, ["pow", "(3,) int64"]),
    (lambda: cr.clip(cr.ones(2), 1.0, 0.0), InvalidValueError, ["clip", "greater"]),
    (lambda: cr.clip(cr.ones(2), float("nan")), InvalidValueError, ["clip", "NaN"]),
    (lambda: cr.clip(cr.ones(2)), InvalidValueError, ["clip"]),
    (lambda: cr.leaky_relu(cr.ones(2), float("nan")), InvalidValueError, ["NaN"]),
    (lambda: cr.tensor([np.inf]).astype(cr.int64), InvalidValueError, ["astype", "NaN"]),
    (lambda: cr.ones(2).sum(foo=1), InvalidValueError, ["sum", "foo"]),
])
def test_bad_calls_raise_chainrule_errors_with_useful_messages(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, ChainruleError)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_graph_misuse():
    with pytest.raises(GraphError, match="does not require grad"):
        (cr.ones(2) * 2).sum().backward()
    with pytest.raises(GraphError, match="no_grad"):
        with cr.no_grad():
            y = (cr.ones(2, requires_grad=True) * 2).sum()
        y.backward()
    with pytest.raises(GraphError, match="scalar"):
        (cr.ones(2, requires_grad=True) * 2).backward()
    with pytest.raises(DTypeError):
        (cr.ones(2, requires_grad=True) * 2).backward(np.array(["a", "b"]))
