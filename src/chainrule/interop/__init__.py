"""Moving tensors and models between chainrule and other array libraries.

- **DLPack** (the array API's exchange protocol): ``cr.from_dlpack(x)`` takes a tensor of any
  library that speaks it (PyTorch, NumPy, CuPy, JAX, ...) *without copying*, and a chainrule
  tensor is itself a DLPack producer (``Tensor.__dlpack__``), so ``torch.from_dlpack(t)`` and
  ``np.from_dlpack(t)`` view its memory. CPU arrays become NumPy-backed tensors; CUDA arrays
  become CuPy-backed ones (through ``cupy.from_dlpack``; untested here: no GPU in CI).
  ``np.asarray(t)`` views a CPU tensor's data too (``Tensor.__array__``).
- **PyTorch models**: :func:`to_torch` and :func:`from_torch` turn a chainrule ``Sequential`` or
  ``MLP`` into a ``torch.nn.Sequential`` and back: ``Linear``, ``Flatten``, ``Dropout`` and the
  activations both libraries have (identity, relu, tanh, sigmoid, leaky_relu, elu, softplus,
  gelu, silu, softmax, log_softmax). The parameter names are the same on both sides
  (``"0.weight"``, ...), so state dicts carry over as well. PyTorch is optional and imported on
  first use.

    import chainrule as cr
    net = cr.nn.MLP([4, 16, 3], activation="relu")
    ...train with chainrule...
    tnet = cr.interop.to_torch(net)          # continue training in PyTorch
    ...
    net2 = cr.interop.from_torch(tnet)       # and back
"""

from __future__ import annotations

from typing import Any

from ..errors import DTypeError, InvalidValueError
from ..tensor import Tensor

# DLPack device types (dlpack.h): the CPU, CUDA, CUDA managed memory.
_KDL_CPU, _KDL_CUDA, _KDL_CUDA_MANAGED = 1, 2, 13


def from_dlpack(x: Any, *, requires_grad: bool = False) -> Tensor:
    """A tensor viewing the memory of ``x``, any object with ``__dlpack__`` and
    ``__dlpack_device__`` (a PyTorch, NumPy, CuPy or JAX array, ...): writes through either
    are seen by the other. A CPU array gives a NumPy-backed tensor, a CUDA one a CuPy-backed
    tensor on that GPU (CuPy needed). The result is a leaf; ``requires_grad=True`` makes it
    require grad (floating data only).

    Raises:
        InvalidValueError: ``x`` does not speak DLPack, lives on another kind of device, or its
            producer refuses to export it (PyTorch refuses a tensor that requires grad: pass
            ``t.detach()``).
        DTypeError: a dtype chainrule has no tensors of (complex, bfloat16, ...).
    """
    import numpy as np

    from ..backend import _load_cupy

    if not hasattr(x, "__dlpack__") or not hasattr(x, "__dlpack_device__"):
        raise InvalidValueError(f"from_dlpack: a {_name(x)} does not support DLPack (no "
                                "__dlpack__ / __dlpack_device__); use cr.tensor to copy it")
    try:
        kind, index = x.__dlpack_device__()
        if int(kind) == _KDL_CPU:
            arr = np.from_dlpack(x)
        elif int(kind) in (_KDL_CUDA, _KDL_CUDA_MANAGED):
            cp = _load_cupy()
            with cp.cuda.Device(int(index)):
                arr = cp.from_dlpack(x)
        else:
            raise InvalidValueError(f"from_dlpack: the array lives on a device of DLPack type "
                                    f"{int(kind)}; chainrule takes CPU (NumPy) and CUDA (CuPy) "
                                    "arrays")
    except (BufferError, RuntimeError, TypeError, ValueError) as exc:
        if isinstance(exc, InvalidValueError):
            raise
        text = str(exc).rstrip(".")
        if "dtype" in text.lower() or "data type" in text.lower():
            raise DTypeError(f"from_dlpack: {text}; chainrule tensors hold bool, integer and "
                             "floating numbers") from None
        raise InvalidValueError(f"from_dlpack: a {_name(x)} could not be shared: {text}"
                                ) from None
    if arr.dtype.kind not in "biuf":
        raise DTypeError(f"from_dlpack: chainrule tensors hold bool, integer and floating "
                         f"numbers, not {arr.dtype}")
    t = Tensor._from_op(arr, None)
    if requires_grad:
        t.requires_grad = True
    return t


def _name(x: Any) -> str:
    kind = type(x)
    return kind.__name__ if kind.__module__ == "builtins" else \
        f"{kind.__module__.split('.')[0]}.{kind.__name__}"


def to_torch(model: Any, *, copy: bool = True) -> Any:
    """A ``torch.nn.Sequential`` computing what ``model`` (a chainrule ``Sequential``, ``MLP``
    or single supported layer) computes, with the same parameter names and values, dtype and
    training mode. ``copy=False`` shares the parameters' memory (through DLPack): an update on
    either side changes both models.

    Raises:
        InvalidValueError: a module without a PyTorch counterpart (named by its path), or torch
            is not installed.
    """
    from ._torch import to_torch as impl

    return impl(model, copy=copy)


def from_torch(module: Any, *, copy: bool = True) -> Any:
    """A chainrule model computing what ``module`` (a ``torch.nn.Sequential`` of the supported
    layers, or one of them) computes, with the same parameter names and values, dtype and
    training mode: an ``nn.MLP`` when the layers are an MLP's chain (Linear layers with one
    hidden activation, the fused fast path), else an ``nn.Sequential``. ``copy=False`` shares
    the parameters' memory (through DLPack) and always gives a ``Sequential``.

    Raises:
        InvalidValueError: a module without a chainrule counterpart (named by its path), or
            torch is not installed.
    """
    from ._torch import from_torch as impl

    return impl(module, copy=copy)


__all__ = ["from_dlpack", "to_torch", "from_torch"]
