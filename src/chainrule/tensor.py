"""The Tensor: a backend array, its gradient, and the graph node that produced it.

Operators and methods delegate to the primitives in ``chainrule.ops``; a Tensor itself knows no
derivative rules. Python scalars are "weak": ``x * 2.0`` keeps ``x``'s dtype.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from . import autograd
from .compile import _hooks
from .backend import (
    device_of, get_xp, is_cupy_array, move_to, normalize_device, on_device_of, to_numpy,
    xp_for_device,
)
from .dtypes import as_dtype, get_default_dtype, is_floating, scalar_dtype
from .errors import DTypeError, GraphError, IndexingError, InvalidValueError, ShapeError

_SCALARS = (int, float, bool, np.integer, np.floating, np.bool_)


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    Floating tensors (float32 by default) can require grad; integer and bool tensors never do.
    Arithmetic, comparison and ``@`` operators work with tensors, Python numbers and arrays on
    either side; comparisons return bool tensors, which carry no gradient. In-place operators
    (``+=``, ``add_``, ``x[i] = v``) write into ``data`` outside any graph and bump a version
    counter shared with views, so a graph that saved the old values refuses to backpropagate;
    see :meth:`_inplace` for what they do on a tensor the graph tracks.

    Attributes:
        data: the backend array (``numpy.ndarray`` on the CPU, ``cupy.ndarray`` on a GPU).
        grad: the accumulated gradient, an array of ``data``'s shape and dtype, or ``None``;
            never shared with another tensor's data or gradient, nor with a seed passed to
            ``backward``. Non-leaf tensors keep it only after :meth:`retain_grad`.
    """

    __slots__ = ("data", "grad", "_requires_grad", "_node", "_version", "__weakref__")
    # NumPy defers ``ndarray <op> Tensor`` to Tensor's reflected operators.
    __array_ufunc__ = None

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False,
                 device: str | None = None) -> None:
        self.data = _to_array(data, dtype, device)
        self.grad: Any = None
        self._node: autograd.Node | None = None
        self._version = [0]
        self._requires_grad = False
        if requires_grad:
            self.requires_grad = True
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.tensor_made(self, data, "Tensor", (dtype, device))

    @classmethod
    def _from_op(cls, data: Any, node: autograd.Node | None) -> Tensor:
        """Fast constructor for op outputs (no validation)."""
        t = cls.__new__(cls)
        t.data = data
        t.grad = None
        t._node = node
        t._version = [0]
        t._requires_grad = node is not None  # apply() records nodes for floating outputs only
        return t

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        """The shape, a tuple of ints (the data's)."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """The number of elements, an int (NumPy's ``size``), which is also callable as
        PyTorch's ``x.size()`` (the shape) and ``x.size(d)`` (the length of axis d)."""
        return Size(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of the data (float32 unless ``dtype=`` or the default said otherwise)."""
        return self.data.dtype

    @property
    def device(self) -> str:
        """Where the data lives: ``"cpu"`` (NumPy) or ``"cuda:N"`` (CuPy)."""
        return device_of(self.data)

    @property
    def requires_grad(self) -> bool:
        """Whether backward computes a gradient for this tensor (only floating tensors can).

        Settable on a leaf; on a tensor made by a recorded operation it can only stay True
        (use :meth:`detach`).
        """
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        value = bool(value)
        if value and not is_floating(self.data.dtype):
            raise DTypeError(
                f"only floating tensors can require grad; this one is {self.data.dtype} "
                "(integer and bool tensors are never differentiable)"
            )
        if self._node is not None and not value:
            raise GraphError(
                "requires_grad can only be switched off on a leaf tensor; use .detach() instead"
            )
        self._requires_grad = value

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place and return ``self``."""
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        """True when no recorded op made this tensor (user-created, or computed without grad)."""
        return self._node is None

    @property
    def grad_fn(self) -> autograd.Node | None:
        """The graph node that made this tensor, or ``None`` for a leaf."""
        return self._node

    @property
    def T(self) -> Tensor:
        """The tensor with all axes reversed (NumPy's ``.T``)."""
        return _ops.transpose(self)

    # ------------------------------------------------------------------ autograd
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into every leaf that requires grad.

        Args:
            grad: d(objective)/d(self), of this tensor's shape; may be omitted for a
                one-element tensor (it is then 1).
            retain_graph: keep the saved state so that backward can run again.
        """
        autograd.backward(self, grad, retain_graph)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor during backward (leaves always keep it)."""
        if not self._requires_grad:
            raise GraphError("retain_grad() on a tensor that does not require grad")
        if self._node is not None:
            self._node.retained = weakref.ref(self)

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, cut from the graph."""
        t = Tensor._from_op(self.data, None)
        t._version = self._version
        return t

    def zero_grad(self) -> None:
        """Reset ``.grad`` to ``None``."""
        self.grad = None

    def bump_version(self) -> None:
        """Record that ``data`` was written in place outside chainrule's operators (an optimizer
        updating ``p.data`` with ``out=`` ufuncs), so that a graph which saved the old values
        refuses to backpropagate instead of using the new ones."""
        self._version[0] += 1

    # ------------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (shared on the CPU, copied from a GPU)."""
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.escape(self, "numpy()")
        return to_numpy(self.data)

    def item(self) -> Any:
        """The single element as a Python number."""
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.escape(self, "item()")
        if self.data.size != 1:
            raise InvalidValueError(
                f"item() needs a tensor with one element, this one has shape {tuple(self.shape)}"
            )
        return self.data.reshape(()).item()

    def tolist(self) -> Any:
        """The data as nested Python lists (a number for a 0-d tensor)."""
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.escape(self, "tolist()")
        return to_numpy(self.data).tolist()

    def astype(self, dtype: Any) -> Tensor:
        """A copy cast to ``dtype``; differentiable between floating dtypes."""
        return _ops.astype(self, dtype)

    def float(self) -> Tensor:
        """A float32 copy (``astype(float32)``); differentiable from a floating dtype."""
        return self.astype(np.float32)

    def double(self) -> Tensor:
        """A float64 copy (``astype(float64)``); differentiable from a floating dtype."""
        return self.astype(np.float64)

    def to(self, device: str | None = None, dtype: Any = None) -> Tensor:
        """This tensor on ``device`` and/or with ``dtype`` (self when nothing changes)."""
        out = self
        if dtype is not None and as_dtype(dtype) != self.dtype:
            out = out.astype(dtype)
        if device is not None and device_of(out.data) != normalize_device(device):
            if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
                _tr.escape(out, "to(device)")
            if out._requires_grad and out._node is not None:
                raise GraphError("moving a non-leaf tensor between devices is not differentiable")
            moved = Tensor._from_op(move_to(out.data, device), None)
            moved._requires_grad = out._requires_grad
            out = moved
        return out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(t)``: the data itself on the CPU (no copy). NumPy 2's ``copy=``: True
        always copies, False refuses (ValueError) when a copy is needed (another dtype, a
        tensor on a GPU), None copies only then."""
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.escape(self, "conversion to a NumPy array")
        needs_copy = is_cupy_array(self.data) or (
            dtype is not None and np.dtype(dtype) != self.data.dtype)
        if copy is False and needs_copy:
            raise ValueError(f"np.asarray(copy=False): a {self.dtype} tensor on {self.device} "
                             f"cannot be viewed as {np.dtype(dtype or self.dtype)} on the CPU "
                             "without a copy")
        a = to_numpy(self.data)
        if dtype is not None and np.dtype(dtype) != a.dtype:
            return a.astype(dtype)
        return a.copy() if copy and not is_cupy_array(self.data) else a

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None,
                   copy: bool | None = None) -> Any:
        """The DLPack capsule of ``data`` (the array API's exchange protocol), sharing memory:
        ``torch.from_dlpack(t)``, ``np.from_dlpack(t)``, ``cupy.from_dlpack(t)`` view this
        tensor's data. The arguments go to the backend array's own ``__dlpack__`` (only those
        given: older NumPy takes ``stream`` alone)."""
        kwargs = {k: v for k, v in (("stream", stream), ("max_version", max_version),
                                    ("dl_device", dl_device), ("copy", copy)) if v is not None}
        return self.data.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[Any, int]:
        """``(device type, device id)`` in DLPack's terms: (1, 0) on the CPU, (2, N) on GPU N."""
        return self.data.__dlpack_device__()

    def __repr__(self) -> str:
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.escape(self, "repr()")
        body = np.array2string(to_numpy(self.data), separator=", ", prefix="tensor(",
                               precision=4, threshold=200)
        extras = []
        if self.dtype != get_default_dtype() and not (self.dtype.kind in "iu" and
                                                      self.dtype == np.int64):
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self._node is not None:
            extras.append(f"grad_fn=<{self._node.prim.name}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.escape(self, "bool()")
        if self.data.size != 1:
            raise InvalidValueError(
                f"the truth value of a tensor of shape {tuple(self.shape)} is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.data.reshape(()))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.escape(self, "use as an index")
        if self.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only one-element integer tensors can be used as an index")
        return int(self.item())

    __hash__ = object.__hash__

    # ------------------------------------------------------------------ operators
    def __add__(self, other: Any) -> Tensor:
        return _ops.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _ops.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _ops.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _ops.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _ops.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _ops.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _ops.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ops.div(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return _ops.pow(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return _ops.pow(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops.matmul(other, self)

    def __neg__(self) -> Tensor:
        return _ops.neg(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _ops.abs(self)

    def __lt__(self, other: Any) -> Tensor:
        return _ops.lt(self, other)

    def __le__(self, other: Any) -> Tensor:
        return _ops.le(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return _ops.gt(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return _ops.ge(self, other)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops.eq(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops.ne(self, other)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.getitem(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        if autograd.is_grad_enabled() and (
            self._requires_grad or (isinstance(value, Tensor) and value._requires_grad)
        ):
            raise GraphError(
                "item assignment on a tensor that is part of a graph is not differentiable; "
                "build the result out of place (cr.where, cr.concat) or assign under no_grad()"
            )
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.inplace(self, "item assignment")
        v = on_device_of(value.data if isinstance(value, Tensor) else value, self.data)
        idx = _ops.index_arrays(index)
        with _writing("item assignment", self):
            self.data[idx] = v
        self._version[0] += 1

    # In-place operators: on tensors outside any graph they write into ``data``; on tensors the
    # graph tracks they compute out of place and rebind, so saved arrays are never overwritten.
    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace(other, _ops.add, "add")

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace(other, _ops.sub, "sub")

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace(other, _ops.mul, "mul")

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace(other, _ops.div, "div")

    def add_(self, other: Any) -> Tensor:
        """In-place ``self += other``."""
        return self._inplace(other, _ops.add, "add")

    def sub_(self, other: Any) -> Tensor:
        """In-place ``self -= other``."""
        return self._inplace(other, _ops.sub, "sub")

    def mul_(self, other: Any) -> Tensor:
        """In-place ``self *= other``."""
        return self._inplace(other, _ops.mul, "mul")

    def div_(self, other: Any) -> Tensor:
        """In-place ``self /= other``."""
        return self._inplace(other, _ops.div, "div")

    def copy_(self, src: Any) -> Tensor:
        """Overwrite the data with ``src`` (broadcast to this shape); not differentiable."""
        if autograd.is_grad_enabled() and self._requires_grad:
            raise GraphError("copy_() into a tensor that requires grad: do it under no_grad()")
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.inplace(self, "copy_")
        arr = on_device_of(src.data if isinstance(src, Tensor) else src, self.data)
        with _writing("copy_", self):
            get_xp(self.data).copyto(self.data, arr, casting="same_kind")
        self._version[0] += 1
        return self

    def zero_(self) -> Tensor:
        """Fill with zeros in place."""
        return self.copy_(0)

    def _inplace(self, other: Any, fn: Any, name: str) -> Tensor:
        """``self <name>= other``.

        Outside any graph (grad mode off, or neither side requires grad) this writes into
        ``data`` and bumps the version counter, so graphs that saved the old values refuse to
        backpropagate. On a tensor the graph tracks it computes out of place and rebinds ``self``
        to the result (the saved arrays stay intact, so the gradient is right; views taken
        earlier keep the old values). A leaf that requires grad cannot be updated in place
        while recording: its ``.grad`` would belong to a value that no longer exists.
        """
        other_t = other if isinstance(other, Tensor) else None
        tracking = autograd.is_grad_enabled() and (
            self._requires_grad or (other_t is not None and other_t._requires_grad)
        )
        if tracking:
            if self._node is None and self._requires_grad:
                raise GraphError(
                    f"in-place {name} on a leaf tensor that requires grad would lose its "
                    "gradient; update it under no_grad() or use an out-of-place op"
                )
            result = fn(self, other)
            if result.shape != self.shape:
                raise _shape_error(name, self.shape, result.shape)
            if result.dtype != self.dtype:
                result = result.astype(self.dtype)
            old = self._node
            self.data, self._node, self._version = result.data, result._node, result._version
            self._requires_grad = True
            if old is not None and old.retained is not None:
                old.retained = None  # .grad now belongs to the new value
                self._node.retained = weakref.ref(self)
            return self
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.inplace(self, f"in-place {name}")
        operand = other_t.data if other_t is not None else other
        xp = get_xp(self.data)
        ufunc = {"add": xp.add, "sub": xp.subtract, "mul": xp.multiply, "div": xp.divide}[name]
        with _writing(f"in-place {name}", self):
            ufunc(self.data, operand, out=self.data, casting="same_kind")
        self._version[0] += 1
        return self

    # ------------------------------------------------------------------ methods
    def exp(self) -> Tensor:
        """e^x elementwise (:func:`chainrule.exp`); dx = g e^x."""
        return _ops.exp(self)

    def log(self) -> Tensor:
        """The natural logarithm elementwise (:func:`chainrule.log`); dx = g / x."""
        return _ops.log(self)

    def sqrt(self) -> Tensor:
        """The square root elementwise (:func:`chainrule.sqrt`); dx = g / (2 sqrt(x))."""
        return _ops.sqrt(self)

    def abs(self) -> Tensor:
        """|x| elementwise (:func:`chainrule.abs`); dx = g sign(x)."""
        return _ops.abs(self)

    def tanh(self) -> Tensor:
        """tanh(x) elementwise (:func:`chainrule.tanh`), the lecture's theta;
        dx = g (1 - tanh(x)^2)."""
        return _ops.tanh(self)

    def sigmoid(self) -> Tensor:
        """1 / (1 + e^-x) elementwise (:func:`chainrule.sigmoid`); dx = g sigma(x) (1 - sigma(x)).
        """
        return _ops.sigmoid(self)

    def relu(self) -> Tensor:
        """max(x, 0) elementwise (:func:`chainrule.relu`); dx = g [x > 0]."""
        return _ops.relu(self)

    def leaky_relu(self, negative_slope: float = 0.01) -> Tensor:
        """x where x > 0, else ``negative_slope`` x (:func:`chainrule.leaky_relu`)."""
        return _ops.leaky_relu(self, negative_slope)

    def sign(self) -> Tensor:
        """sign(x) in {-1, 0, 1} elementwise (:func:`chainrule.sign`); carries no gradient."""
        return _ops.sign(self)

    def clip(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002 - NumPy's names
        """Clamp to [min, max]; either bound may be None or a tensor (:func:`chainrule.clip`).

        ``x.clamp`` is the same method.
        """
        return _ops.clip(self, min, max)

    clamp = clip

    def maximum(self, other: Any) -> Tensor:
        """The elementwise maximum with ``other``, broadcast (:func:`chainrule.maximum`)."""
        return _ops.maximum(self, other)

    def minimum(self, other: Any) -> Tensor:
        """The elementwise minimum with ``other``, broadcast (:func:`chainrule.minimum`)."""
        return _ops.minimum(self, other)

    def sum(self, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
        """The sum over ``axis`` (all axes when None); ``dim=``/``keepdim=`` also accepted
        (:func:`chainrule.sum`).
        """
        return _ops.sum(self, axis, keepdims, **aliases)

    def mean(self, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
        """The mean over ``axis`` (all axes when None; :func:`chainrule.mean`)."""
        return _ops.mean(self, axis, keepdims, **aliases)

    def max(self, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
        """The maximum over ``axis``, or ``(values, indices)`` given ``dim=`` as PyTorch
        (:func:`chainrule.max`).
        """
        return _ops.max(self, axis, keepdims, **aliases)

    def min(self, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
        """The minimum over ``axis``, or ``(values, indices)`` given ``dim=`` as PyTorch
        (:func:`chainrule.min`).
        """
        return _ops.min(self, axis, keepdims, **aliases)

    def var(self, axis: Any = None, keepdims: bool = False, ddof: int = 0,
            **aliases: Any) -> Tensor:
        """The variance over ``axis`` with ``ddof`` (0 by default, NumPy's;
        :func:`chainrule.var`).
        """
        return _ops.var(self, axis, keepdims, ddof, **aliases)

    def std(self, axis: Any = None, keepdims: bool = False, ddof: int = 0,
            **aliases: Any) -> Tensor:
        """The standard deviation over ``axis`` with ``ddof`` (0 by default;
        :func:`chainrule.std`).
        """
        return _ops.std(self, axis, keepdims, ddof, **aliases)

    def logsumexp(self, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
        """log(sum(e^x)) over ``axis``, computed stably (:func:`chainrule.logsumexp`)."""
        return _ops.logsumexp(self, axis, keepdims, **aliases)

    def softmax(self, axis: int = -1, **aliases: Any) -> Tensor:
        """p_i = e^{x_i} / sum_j e^{x_j} along ``axis`` (:func:`chainrule.softmax`)."""
        return _ops.softmax(self, axis, **aliases)

    def log_softmax(self, axis: int = -1, **aliases: Any) -> Tensor:
        """log p_i = x_i - logsumexp(x) along ``axis`` (:func:`chainrule.log_softmax`)."""
        return _ops.log_softmax(self, axis, **aliases)

    def argmax(self, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
        """The index of the maximum along ``axis`` (of the flattened tensor when None); an int64
        tensor without gradient (:func:`chainrule.argmax`).
        """
        return _ops.argmax(self, axis, keepdims, **aliases)

    def argmin(self, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
        """The index of the minimum along ``axis`` (of the flattened tensor when None); an int64
        tensor without gradient (:func:`chainrule.argmin`).
        """
        return _ops.argmin(self, axis, keepdims, **aliases)

    def any(self) -> bool:
        """True when any element is nonzero (a Python bool; no graph)."""
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.escape(self, "any()")
        return bool(self.data.any())

    def all(self) -> bool:
        """True when every element is nonzero (a Python bool; no graph)."""
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.escape(self, "all()")
        return bool(self.data.all())

    def reshape(self, *shape: Any) -> Tensor:
        """The same elements in a new shape, a view where possible (:func:`chainrule.reshape`).

        ``x.view`` is the same method.
        """
        return _ops.reshape(self, *shape)

    view = reshape

    def transpose(self, *axes: Any) -> Tensor:
        """Axes permuted (reversed when none are given; :func:`chainrule.transpose`)."""
        return _ops.transpose(self, *axes)

    def permute(self, *axes: Any) -> Tensor:
        """Axes reordered as ``axes`` says (:func:`chainrule.permute`)."""
        return _ops.permute(self, *axes)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Axes ``start_dim`` to ``end_dim`` merged into one (:func:`chainrule.flatten`)."""
        return _ops.flatten(self, start_dim, end_dim)

    def squeeze(self, axis: Any = None, **aliases: Any) -> Tensor:
        """Length-1 axes removed (only ``axis`` when given; :func:`chainrule.squeeze`)."""
        return _ops.squeeze(self, axis, **aliases)

    def unsqueeze(self, axis: int) -> Tensor:
        """A length-1 axis inserted at ``axis`` (:func:`chainrule.unsqueeze`)."""
        return _ops.unsqueeze(self, axis)

    def expand(self, *shape: Any) -> Tensor:
        """Broadcast to ``shape`` without copying; -1 keeps an axis (:func:`chainrule.expand`)."""
        return _ops.expand(self, *shape)

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        """Broadcast to ``shape`` without copying (:func:`chainrule.broadcast_to`)."""
        return _ops.broadcast_to(self, shape)

    # ------------------------------------------------------------------ more of PyTorch's names
    def numel(self) -> int:
        """The number of elements (PyTorch's ``numel()``; ``size`` is NumPy's spelling)."""
        return int(self.data.size)

    def clone(self) -> Tensor:
        """A copy in new memory that stays in the graph (``detach()`` cuts it instead)."""
        return _ops.clone(self)

    def sin(self) -> Tensor:
        """sin(x) elementwise (:func:`chainrule.sin`); dx = g cos(x)."""
        return _ops.sin(self)

    def cos(self) -> Tensor:
        """cos(x) elementwise (:func:`chainrule.cos`); dx = -g sin(x)."""
        return _ops.cos(self)

    def log1p(self) -> Tensor:
        """log(1 + x), accurate for small |x| (:func:`chainrule.log1p`)."""
        return _ops.log1p(self)

    def expm1(self) -> Tensor:
        """e^x - 1, accurate for small |x| (:func:`chainrule.expm1`)."""
        return _ops.expm1(self)

    def rsqrt(self) -> Tensor:
        """1 / sqrt(x) elementwise (:func:`chainrule.rsqrt`)."""
        return _ops.rsqrt(self)

    def square(self) -> Tensor:
        """x^2 elementwise (:func:`chainrule.square`); dx = 2 g x."""
        return _ops.square(self)

    def amax(self, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
        """The maximum over ``axis`` or ``dim``; ties share the gradient (:func:`chainrule.amax`).
        """
        return _ops.amax(self, axis, keepdims, **aliases)

    def amin(self, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
        """The minimum over ``axis`` or ``dim``; ties share the gradient (:func:`chainrule.amin`).
        """
        return _ops.amin(self, axis, keepdims, **aliases)

    def index_select(self, dim: int, index: Any) -> Tensor:
        """The entries at ``index`` along axis ``dim`` (:func:`chainrule.index_select`)."""
        return _ops.index_select(self, dim, index)

    def add(self, other: Any, alpha: Any = 1) -> Tensor:
        """``self + alpha * other`` (PyTorch's ``add``)."""
        return _ops.add(self, other, alpha=alpha)

    def sub(self, other: Any, alpha: Any = 1) -> Tensor:
        """``self - alpha * other`` (PyTorch's ``sub``)."""
        return _ops.sub(self, other, alpha=alpha)

    def mul(self, other: Any) -> Tensor:
        """``self * other``, broadcast (PyTorch's ``mul``; :func:`chainrule.mul`)."""
        return _ops.mul(self, other)

    def div(self, other: Any, rounding_mode: str | None = None) -> Tensor:
        """``self / other``, rounded as ``rounding_mode`` says (see :func:`chainrule.div`)."""
        return _ops.div(self, other, rounding_mode=rounding_mode)


@contextlib.contextmanager
def _writing(op: str, t: Tensor) -> Iterator[None]:
    """Turn the backend's errors from a write into ``t.data`` into chainrule errors."""
    where = f"{op} into a {t.dtype} tensor of shape {tuple(t.shape)}"
    a = t.data
    # NumPy marks broadcast views read-only; CuPy has no such flag, so a zero stride over an
    # axis longer than one (the mark of a broadcast) is refused too.
    if not getattr(a.flags, "writeable", True) or any(
            s == 0 and n > 1 for s, n in zip(a.strides, a.shape)):
        raise InvalidValueError(f"{where}: it is a read-only broadcast view (from expand or "
                                "broadcast_to); make a copy first")
    try:
        yield
    except IndexError as exc:
        raise IndexingError(f"{where}: {exc}") from None
    except ValueError as exc:
        if "broadcast" in str(exc):
            raise ShapeError(f"{where}: {exc}; expected a value that broadcasts to the "
                             "indexed shape") from None
        raise InvalidValueError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise DTypeError(f"{where}: {exc}; expected a result of the tensor's dtype") from None
    except OverflowError as exc:
        raise InvalidValueError(f"{where}: {exc}") from None


def _shape_error(name: str, a: tuple[int, ...], b: tuple[int, ...]) -> Exception:
    return ShapeError(f"in-place {name}: a tensor of shape {tuple(a)} cannot hold the result of "
                      f"combining it with shape {tuple(b)}: expected an operand that broadcasts "
                      f"to {tuple(a)}")


def _to_array(data: Any, dtype: Any, device: str | None) -> Any:
    """A backend array from a nested list, scalar, array or Tensor, with clear errors."""
    if isinstance(data, Tensor):
        data = data.data
    if device is not None and is_cupy_array(data):
        data = move_to(data, device)  # np.asarray cannot take a CuPy array
    xp = xp_for_device(device) if device is not None else get_xp(data)
    dt = as_dtype(dtype) if dtype is not None else None
    if dt is None and not hasattr(data, "dtype"):
        try:
            probe = np.asarray(data)
        except (ValueError, OverflowError) as exc:
            raise InvalidValueError(
                f"cannot make a tensor from ragged or mixed data: {exc}") from None
        if probe.dtype.kind == "f" or (probe.dtype == object and _has_floats(data)):
            dt = get_default_dtype()
        elif probe.dtype.kind in "iu":
            dt = np.dtype(np.int64)
        elif probe.dtype.kind == "b":
            dt = np.dtype(np.bool_)
        else:
            raise DTypeError(
                f"cannot make a tensor from data of dtype {probe.dtype} "
                f"(got {type(data).__name__}); tensors hold numbers"
            )
    elif dt is None:
        if data.dtype.kind not in "biuf":
            raise DTypeError(f"cannot make a tensor from an array of dtype {data.dtype}")
    try:
        arr = xp.asarray(data) if device is None or dt is None else xp.asarray(data, dtype=dt)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidValueError(f"cannot make a tensor from this data: {exc}") from None
    if dt is not None and arr.dtype != dt:
        if dt.kind in "iub" and arr.dtype.kind == "f" and not bool(xp.isfinite(arr).all()):
            raise InvalidValueError(f"cannot convert NaN or infinity to {dt}")
        arr = arr.astype(dt)
    if arr.dtype.kind not in "biuf":
        raise DTypeError(f"cannot make a tensor of dtype {arr.dtype}")
    return arr


def _has_floats(data: Any) -> bool:
    if isinstance(data, (float, np.floating)):
        return True
    if isinstance(data, (list, tuple)):
        return any(_has_floats(d) for d in data)
    return False


def as_tensor(x: Any, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor: tensors pass through, Python scalars take ``like``'s dtype."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, _SCALARS):
        xp = get_xp(like.data)
        try:
            arr = xp.asarray(x, dtype=scalar_dtype(x, like.dtype))
        except OverflowError:
            raise InvalidValueError(f"{x} does not fit in a {like.dtype} tensor") from None
        return Tensor._from_op(arr, None)
    if like is not None and like.device != "cpu":
        return Tensor(x, device=like.device)
    return Tensor(x)


def operands(a: Any, b: Any) -> tuple[Any, Any]:
    """The two operands of a binary elementwise primitive.

    Tensors pass through. A Python number stays a number: NumPy treats it as a "weak" scalar that
    takes the tensor's dtype, so ``x * 2.0`` stays float32 and no array or tensor is made for the
    2.0 (NumPy scalars become Python numbers first, so they are weak too). Anything else (lists,
    arrays) becomes a tensor. When one side is floating and the other integer or bool, the
    integer side is cast to the floating dtype (the default one for a Python float), as PyTorch
    does: NumPy alone would turn int64 with float32 into float64.
    """
    if isinstance(a, Tensor):  # the hot paths: x * y of one kind, and x * 2.0
        if isinstance(b, Tensor):
            if a.data.dtype.kind == b.data.dtype.kind:
                return a, b
        elif type(b) is float and a.data.dtype.kind == "f":
            return a, b
    if not isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            return as_tensor(a), as_tensor(b)
        a = _operand(a, b)
    elif not isinstance(b, Tensor):
        b = _operand(b, a)
    a_float, b_float = _is_float(a), _is_float(b)
    if a_float and not b_float and isinstance(b, Tensor):
        b = b.astype(a.dtype if isinstance(a, Tensor) else get_default_dtype())
    elif b_float and not a_float and isinstance(a, Tensor):
        a = a.astype(b.dtype if isinstance(b, Tensor) else get_default_dtype())
    return a, b


def tensor_operands(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Like :func:`operands`, but numbers become tensors too (for matmul, which needs shapes)."""
    a, b = operands(a, b)
    if not isinstance(a, Tensor):
        a = as_tensor(a, b)
    if not isinstance(b, Tensor):
        b = as_tensor(b, a)
    return a, b


def _operand(x: Any, like: Tensor) -> Any:
    """A Python number for any real scalar, else a tensor on ``like``'s device."""
    if type(x) in (int, float, bool):
        return x
    if isinstance(x, (np.bool_, np.integer, np.floating)):
        return x.item()
    return as_tensor(x, like)


def _is_float(x: Any) -> bool:
    return x.data.dtype.kind == "f" if isinstance(x, Tensor) else type(x) is float


class Size(int):
    """What ``x.size`` is: the number of elements, an ``int`` (NumPy's ``size``), that can also
    be called as PyTorch's ``x.size()`` (the shape, a tuple) or ``x.size(d)`` (the length of
    axis d, negative d counting from the end). Both libraries' code reads it as it expects."""

    def __new__(cls, shape: tuple[int, ...]) -> Size:
        n = 1
        for k in shape:
            n *= k
        self = super().__new__(cls, n)
        self.shape = tuple(shape)
        return self

    def __call__(self, dim: Any = None) -> Any:
        if dim is None:
            return self.shape
        from .ops.axes import single

        return self.shape[single("size", dim, len(self.shape))]

    def __repr__(self) -> str:
        return int.__repr__(self)

    __str__ = __repr__

    def __reduce__(self) -> Any:
        return int, (int(self),)  # pickles (and copies) as the plain number


from . import ops as _ops  # noqa: E402  (ops needs Tensor defined first)
