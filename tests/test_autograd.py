"""The graph and the backward walk: accumulation, grad modes, released graphs, retained grads,
in-place semantics with version counters, gradient aliasing, and 100,000-node chains."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest

import chainrule as cr
from chainrule.autograd import Node, apply
from chainrule.errors import GraphError, ShapeError
from chainrule.ops.registry import Primitive


def _leaf(values, dtype=cr.float64):
    return cr.tensor(values, dtype=dtype, requires_grad=True)


# --------------------------------------------------------------------------- structure
def test_parents_are_an_ordered_tuple_of_nodes_and_leaves():
    a, b = _leaf([1.0, 2.0]), _leaf([3.0, 4.0])
    c = cr.tensor([1.0, 1.0])  # needs no gradient
    y = a - b
    assert isinstance(y.grad_fn, Node) and y.grad_fn.prim is cr.ops.REGISTRY["sub"]
    assert type(y.grad_fn.parents) is tuple and len(y.grad_fn.parents) == 2
    assert y.grad_fn.parents[0] is a and y.grad_fn.parents[1] is b
    z = b - a
    assert z.grad_fn.parents[0] is b and z.grad_fn.parents[1] is a
    w = y * c
    assert w.grad_fn.parents[0] is y.grad_fn and w.grad_fn.parents[1] is None
    assert w.grad_fn.needs == (True, False)


def test_requires_grad_propagates():
    a = _leaf([1.0, 2.0])
    c = cr.tensor([3.0, 4.0])
    assert (a * c).requires_grad and (c * a).requires_grad and (a + 1).requires_grad
    assert not (c * c).requires_grad and (c * c).is_leaf
    assert not (a > c).requires_grad  # comparisons give constants
    assert not a.argmax().requires_grad
    assert not a.astype(cr.int64).requires_grad and a.astype(cr.int64).is_leaf
    assert not a.detach().requires_grad and a.detach().is_leaf
    assert a.is_leaf and not (a * c).is_leaf


def test_reused_tensor_gets_the_sum_of_its_contributions():
    x = _leaf([1.0, -2.0, 3.0])
    k = 7
    total = x * 1.0
    for i in range(2, k + 1):
        total = total + x * float(i)  # x is used k times, with weights 1..k
    total.sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(3, k * (k + 1) / 2))


def test_same_tensor_twice_in_one_op_and_in_a_power():
    x = _leaf([1.5, -2.0])
    (x * x * x).sum().backward()  # d/dx x^3 = 3x^2, with x entering two nodes three times
    np.testing.assert_allclose(x.grad, 3 * np.array([1.5, -2.0]) ** 2)


def test_diamond_with_paths_of_different_length_runs_each_vjp_once_with_full_gradient():
    x = _leaf([0.3, -0.2])
    a = x.exp()
    c = (a * 2).tanh().tanh().tanh()  # a long path from a
    out = (a + c).sum()  # and a short one
    out.backward()
    assert cr.gradcheck(lambda t: (t.exp() + (t.exp() * 2).tanh().tanh().tanh()).sum(), x)
    e = np.exp([0.3, -0.2])
    t1 = np.tanh(2 * e)
    t2 = np.tanh(t1)
    expect = e + (1 - np.tanh(t2) ** 2) * (1 - t2**2) * (1 - t1**2) * 2 * e
    np.testing.assert_allclose(x.grad, expect, rtol=1e-12)


def test_gradients_accumulate_across_backward_calls_until_reset():
    x = _leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * 4).sum().backward()
    np.testing.assert_array_equal(x.grad, [7, 7])
    x.zero_grad()
    assert x.grad is None


def test_gradient_dtype_matches_each_leaf():
    x32 = cr.tensor([1.0, 2.0], requires_grad=True)
    x64 = _leaf([3.0, 4.0])
    y = x32 * x64  # float64
    assert y.dtype == np.float64
    y.sum().backward()
    assert x32.grad.dtype == np.float32 and x64.grad.dtype == np.float64
    np.testing.assert_array_equal(x32.grad, [3, 4])
    z = x32.astype(cr.float64)
    z.sum().backward()
    assert x32.grad.dtype == np.float32


def test_backward_seeds():
    x = _leaf([1.0, 2.0])
    with pytest.raises(GraphError, match=r"shape \(2,\)"):
        (x * 2).backward()  # a non-scalar needs grad=
    with pytest.raises(ShapeError):
        (x * 2).backward(np.ones(3))
    (x * 2).backward([1.0, 10.0])
    np.testing.assert_array_equal(x.grad, [2, 20])
    y = (x * 2).sum().reshape(1, 1)
    x.grad = None
    y.backward()  # one element: seeded with 1
    np.testing.assert_array_equal(x.grad, [2, 2])
    with pytest.raises(GraphError, match="does not require grad"):
        cr.tensor([1.0]).backward()
    x.grad = None
    x.backward(cr.tensor([5.0, 6.0]))  # a leaf root receives the seed itself (as a copy)
    np.testing.assert_array_equal(x.grad, [5, 6])


# --------------------------------------------------------------------------- grad modes
def test_no_grad_records_nothing_and_saves_nothing():
    x = _leaf(np.ones(1000))
    with cr.no_grad():
        y = x.exp()
        z = y.sum()
    assert not y.requires_grad and y.grad_fn is None and z.grad_fn is None
    # Exp saves its output for backward; under no_grad nothing may hold it but y itself.
    ref = weakref.ref(y.data)
    del y
    gc.collect()
    assert ref() is None
    # The same computation with recording keeps the output alive in the graph.
    y = x.exp()
    z = y.sum()
    ref = weakref.ref(y.data)
    del y
    gc.collect()
    assert ref() is not None
    z.backward()
    gc.collect()
    assert ref() is None  # ... until backward releases it


def test_no_grad_as_decorator_nesting_and_exception_safety():
    x = _leaf([1.0])

    @cr.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert cr.is_grad_enabled()
    with cr.no_grad():
        assert not cr.is_grad_enabled()
        with cr.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    with pytest.raises(ZeroDivisionError):
        with cr.no_grad():
            raise ZeroDivisionError
    assert cr.is_grad_enabled() and (x * 2).requires_grad


# --------------------------------------------------------------------------- released graphs
def test_retain_graph_allows_a_second_backward():
    x = _leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


def test_second_backward_through_a_released_graph_is_an_error_and_changes_nothing():
    x = _leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    before = x.grad.copy()
    with pytest.raises(GraphError, match="second time"):
        y.backward()
    np.testing.assert_array_equal(x.grad, before)
    # A new graph from a released intermediate fails the same way (its node was released).
    e = x.exp()
    e.sum().backward()
    with pytest.raises(GraphError, match="second time"):
        (e * 2).sum().backward()


def test_retain_grad_keeps_non_leaf_gradients_only_when_asked():
    x = _leaf([1.0, 2.0])
    h = x * 3
    k = h * 2
    k.retain_grad()
    (k * k).sum().backward()
    assert h.grad is None  # not kept by default
    np.testing.assert_array_equal(k.grad, 2 * k.numpy())
    np.testing.assert_array_equal(x.grad, 2 * k.numpy() * 6)
    with pytest.raises(GraphError):
        cr.tensor([1.0]).retain_grad()


# --------------------------------------------------------------------------- in-place
def test_inplace_on_saved_output_under_no_grad_is_detected_by_version_counter():
    x = _leaf([0.5, 1.0])
    y = x.exp()  # Exp saves y for its VJP
    with cr.no_grad():
        y.mul_(2.0)
    with pytest.raises(GraphError, match="in-place"):
        y.sum().backward()
    assert x.grad is None  # detected before anything was accumulated


def test_inplace_on_saved_input_is_detected():
    x = _leaf([0.5, 1.0])
    c = cr.tensor([2.0, 3.0], dtype=cr.float64)
    y = x * c  # Mul saves c (x's gradient is g * c)
    c += 1  # c needs no grad: this writes into its data and bumps its version
    with pytest.raises(GraphError, match="mul"):
        y.sum().backward()
    z = x.log()
    with cr.no_grad():
        x[0] = 5.0  # item assignment also bumps the version
    with pytest.raises(GraphError, match="log"):
        z.sum().backward()


def test_reusing_an_index_array_after_indexing_does_not_change_the_gradient():
    x = _leaf([1.0, 2.0, 3.0])
    idx = np.array([0, 0])
    y = x[idx]
    idx[:] = 2  # the caller reuses its buffer before backward
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2, 0, 0])


def test_inplace_on_data_no_vjp_reads_is_allowed():
    x = _leaf([0.5, 1.0])
    c = cr.tensor([2.0, 3.0], dtype=cr.float64)
    y = x + c  # Add saves nothing: changing c afterwards cannot change its gradient
    c += 1
    (y * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, [2, 2])


def test_inplace_through_a_view_is_detected():
    x = _leaf([0.5, 1.0, 1.5])
    y = x.exp()
    v = y[1:]  # a view of y's data: it shares y's version counter
    with cr.no_grad():
        v.add_(1.0)  # writes into y's data
    with pytest.raises(GraphError):
        y.sum().backward()
    e = x.exp()
    with cr.no_grad():
        e[1:].mul_(3.0)  # a view taken without recording writes through just the same
    with pytest.raises(GraphError):
        e.sum().backward()
    w = x.sqrt()
    r = w.reshape(3, 1)
    with cr.no_grad():
        w.sub_(0.5)  # and the other way round: the view r now sees new values
    with pytest.raises(GraphError):
        (r * 2).sum().backward()


def test_inplace_on_a_leaf_that_requires_grad_is_an_error_but_allowed_under_no_grad():
    x = _leaf([1.0, 2.0])
    for op in (lambda t: t.__iadd__(1), lambda t: t.mul_(2), lambda t: t.sub_(1),
               lambda t: t.div_(2)):
        with pytest.raises(GraphError, match="leaf"):
            op(x)
    with pytest.raises(GraphError):
        x[0] = 3.0
    y = x * 2  # saves x
    with cr.no_grad():
        x -= 0.5  # the optimizer's update
    np.testing.assert_array_equal(x.numpy(), [0.5, 1.5])
    assert x.is_leaf and x.requires_grad
    with pytest.raises(GraphError):
        y.sum().backward()  # y's graph saw the old x


def test_tracked_inplace_computes_out_of_place_with_correct_gradient():
    x = _leaf([1.0, 2.0])
    y = x * 2
    saved = y
    y += x  # y is a non-leaf: recorded as y = y + x, the old values stay intact for backward
    assert y is saved and not y.is_leaf
    y *= x
    y.sum().backward()  # y = (2x + x) * x = 3x^2
    np.testing.assert_allclose(x.grad, 6 * np.array([1.0, 2.0]))
    acc = cr.zeros(2, dtype=cr.float64)  # a constant accumulating a tracked value
    acc += x
    acc.sum().backward()
    np.testing.assert_allclose(x.grad, 6 * np.array([1.0, 2.0]) + 1)


def test_inplace_keeps_dtype_and_checks_shapes():
    a = cr.ones(2, 3)
    a += cr.ones(3, dtype=cr.float64)
    assert a.dtype == np.float32
    with pytest.raises(ShapeError):
        a += cr.ones(4)
    with pytest.raises(ShapeError):
        a += cr.ones(2, 2, 3)
    i = cr.arange(3)
    with pytest.raises(cr.DTypeError):
        i += 0.5  # an int tensor cannot hold a float result
    with pytest.raises(cr.InvalidValueError):
        cr.ones(3).expand(2, 3).add_(1)  # a read-only broadcast view


def test_bump_version_invalidates_graphs():
    x = _leaf([1.0])
    y = x * x
    x.bump_version()
    with pytest.raises(GraphError):
        y.backward()


def test_detach_shares_data_and_version():
    x = _leaf([1.0, 2.0])
    d = x.detach()
    assert d.is_leaf and not d.requires_grad and np.shares_memory(d.numpy(), x.numpy())
    y = x.exp()
    e = y.detach()
    e.mul_(2)  # d does not require grad: a real in-place write into y's data
    with pytest.raises(GraphError):
        y.sum().backward()


# --------------------------------------------------------------------------- aliasing
def test_grad_never_aliases_the_seed_or_other_gradients():
    x, w = _leaf([1.0, 2.0]), _leaf([3.0, 4.0])
    seed = np.array([1.0, 1.0])
    (x + w).backward(seed)  # Add's VJP returns the incoming gradient twice
    assert not np.shares_memory(x.grad, seed) and not np.shares_memory(w.grad, seed)
    assert not np.shares_memory(x.grad, w.grad)
    seed[:] = 100
    np.testing.assert_array_equal(x.grad, [1, 1])
    x.grad += 5  # writing one gradient must not change the other
    np.testing.assert_array_equal(w.grad, [1, 1])

    leaf = _leaf([1.0, 2.0])
    s = np.array([3.0, 4.0])
    leaf.backward(s)  # a leaf root
    assert not np.shares_memory(leaf.grad, s)

    z = _leaf([1.0, 2.0])
    z.reshape(2, 1).T.reshape(2).backward(s)  # VJPs that return views of the seed
    assert not np.shares_memory(z.grad, s)
    assert z.grad.flags.writeable

    m = _leaf([[1.0, 2.0]])
    k = m * 1.0
    k.retain_grad()
    k.sum().backward()  # the retained gradient is broadcast from one number: a copy is kept
    assert k.grad.flags.writeable and m.grad.flags.writeable
    assert not np.shares_memory(k.grad, m.grad)


def test_grad_does_not_alias_data():
    x = _leaf([1.0, 2.0])
    y = x.sum()
    y.backward()
    assert not np.shares_memory(x.grad, x.data)


# --------------------------------------------------------------------------- engine contract
def _custom(name, forward, vjp):
    """An unregistered primitive (as chainrule.checkpoint builds one), for engine edge cases."""
    return Primitive(name=name, forward=forward, vjp=vjp, kind="other", domain="real",
                     differentiable=True, saves="nothing", doc="test only")


def test_vjp_returning_none_for_a_node_input_does_not_stall_the_walk():
    stop = _custom("stop", lambda ctx, a: a * 1, lambda ctx, g: (None,))
    x = _leaf([1.0, 2.0])
    a = x * 3  # reaches the output through `stop` (no gradient) and directly
    out = apply(stop, (a,)) + a * 2
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [6, 6])  # only the direct path: 2 * 3


def test_one_fresh_array_returned_for_two_leaves_is_not_shared():
    both = _custom("both", lambda ctx, a, b: a + b, lambda ctx, g: (g * 1.0,) * 2)
    x, w = _leaf([1.0, 2.0]), _leaf([3.0, 4.0])
    apply(both, (x, w)).sum().backward()
    assert not np.shares_memory(x.grad, w.grad)


def test_vjp_with_wrong_number_of_gradients_is_a_graph_error():
    bad = _custom("bad", lambda ctx, a: a * 1, lambda ctx, g: (g, g))
    x = _leaf([1.0])
    with pytest.raises(GraphError, match="bad"):
        apply(bad, (x,)).sum().backward()


def test_backend_errors_inside_a_forward_become_chainrule_errors():
    x = _leaf([1.0])
    with pytest.raises(cr.ChainruleError):
        apply(_custom("boom", lambda ctx, a: a.reshape(7), None), (x,))


# --------------------------------------------------------------------------- deep graphs
def test_backward_through_100k_chain_has_no_recursion_error():
    x = _leaf([1.0, 2.0])
    y = x
    for _ in range(100_000):
        y = y * 1.0000001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0000001**100_000] * 2, rtol=1e-9)


def test_creating_and_deleting_a_100k_chain_does_not_crash():
    """Freeing a long chain must not recurse in C (a crash would kill the interpreter, so this
    runs in a subprocess, in a thread with a small stack to make any recursion fatal)."""
    code = textwrap.dedent("""
        import threading
        import chainrule as cr

        def build_and_drop():
            x = cr.tensor([1.0], requires_grad=True)
            y = x
            for _ in range(100_000):
                y = (y * 1.0000001).tanh()
            del y  # never backpropagated: the whole graph is freed here
            z = x
            for _ in range(100_000):
                z = z + 1.0
            z.sum().backward()
            del z
            print("ok")

        threading.stack_size(512 * 1024)
        t = threading.Thread(target=build_and_drop)
        t.start()
        t.join()
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
