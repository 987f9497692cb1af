"""A stand-in for CuPy on NumPy, for testing the GPU code paths of cr.compile without a GPU.

Its arrays are a subclass of ``numpy.ndarray`` whose module is ``cupy`` (so chainrule's backend
takes them for CuPy arrays), its functions are NumPy's (results turned into its arrays), and its
``cuda`` namespace has just enough of CuPy's streams, events, memory pool and graphs for
``chainrule.compile.cuda``: a captured graph replays the captured function. While a stream
captures, reading a value back to the host (``bool``, ``float``, ``int``, ``item``, ``get``)
raises, as a real capture does: so a host synchronisation inside a step is caught here too.

It is not CuPy: the arithmetic is NumPy's, and what CuPy does differently (kernels, cuBLAS,
promotion corner cases) is for ``benchmarks/compile_gpu.py`` on a real GPU to check.
"""

from __future__ import annotations

import contextlib
import sys
import types
from typing import Any

import numpy as np

_CAPTURING: list[Any] = []


class _Device:
    id = 0

    def __init__(self, i: int = 0) -> None:
        self.id = i

    def __enter__(self) -> _Device:
        return self

    def __exit__(self, *a: Any) -> None:
        pass

    def synchronize(self) -> None:
        pass


def _host_read(what: str) -> None:
    if _CAPTURING:
        raise RuntimeError(f"fake cupy: {what} while a stream is capturing (a host sync)")


class ndarray(np.ndarray):  # noqa: N801 - CuPy's name
    __module__ = "cupy"

    @property
    def device(self) -> _Device:
        return _Device(0)

    def get(self, stream: Any = None) -> np.ndarray:
        _host_read("get()")
        return np.array(self.view(np.ndarray), copy=True)

    def set(self, arr: Any, stream: Any = None) -> None:
        np.copyto(self.view(np.ndarray), np.asarray(arr))

    def item(self, *a: Any) -> Any:
        _host_read("item()")
        return super().item(*a)

    def __bool__(self) -> bool:
        _host_read("bool()")
        return super().__bool__()

    def __float__(self) -> float:
        _host_read("float()")
        return super().__float__()

    def __int__(self) -> int:
        _host_read("int()")
        return super().__int__()

    def __index__(self) -> int:
        _host_read("use as an index")
        return super().__index__()

    def tolist(self) -> Any:
        _host_read("tolist()")
        return super().tolist()

    def __array_wrap__(self, obj: Any, context: Any = None, return_scalar: bool = False) -> Any:
        # NumPy gives scalars for full reductions; CuPy gives 0-d arrays
        out = super().__array_wrap__(obj, context, False)
        return out.view(ndarray) if isinstance(out, np.ndarray) else out


def _wrap(x: Any) -> Any:
    if type(x) is np.ndarray:
        return x.view(ndarray)
    if isinstance(x, np.generic):
        return np.asarray(x).view(ndarray)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _unwrap(x: Any) -> Any:
    if isinstance(x, ndarray):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _forward(name: str) -> Any:
    fn = getattr(np, name)
    if isinstance(fn, np.ufunc):
        return fn  # ufuncs keep the subclass (and out=)

    def call(*args: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out")
        res = fn(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
        if out is not None:
            return out
        return _wrap(res)

    call.__name__ = name
    return call


class _Stream:
    def __init__(self, null: bool = False, non_blocking: bool = False) -> None:
        self.ptr = 0 if null else id(self)
        self.device_id = 0
        self.graph: Any = None

    def __enter__(self) -> _Stream:
        _STREAMS.append(self)
        return self

    def __exit__(self, *a: Any) -> None:
        _STREAMS.pop()

    def synchronize(self) -> None:
        pass

    def record(self, event: Any = None) -> Any:
        return event or _Event()

    def wait_event(self, event: Any) -> None:
        pass

    def begin_capture(self, mode: Any = None) -> None:
        if self.ptr == 0:
            raise RuntimeError("cannot capture on the default (legacy) stream")
        _CAPTURING.append(self)

    def end_capture(self) -> Any:
        _CAPTURING.remove(self)
        # the captured work is the function that ran during the capture: the caller's body
        caller = sys._getframe(1).f_locals.get("self")
        return _Graph(getattr(caller, "body", None))


class _Event:
    def synchronize(self) -> None:
        pass

    def record(self, stream: Any = None) -> None:
        pass


class _Graph:
    def __init__(self, body: Any) -> None:
        self.body = body
        self.launches = 0

    def launch(self, stream: Any = None) -> None:
        if self.body is None:
            raise RuntimeError("fake cupy: nothing was captured")
        self.launches += 1
        self.body()


_STREAMS: list[_Stream] = []
_NULL = _Stream(null=True)


class _Pool:
    def malloc(self, size: int) -> Any:
        return bytearray(size)


_POOL = _Pool()
_ALLOCATOR: list[Any] = [_POOL.malloc]


def _make_module() -> types.ModuleType:
    mod = types.ModuleType("cupy")
    mod.__dict__["__version__"] = "0.0-fake"
    mod.ndarray = ndarray
    for name in ("float16", "float32", "float64", "int32", "int64", "uint64", "bool_", "int8",
                 "uint8", "uint32", "nan", "inf", "pi", "e", "newaxis", "dtype", "finfo",
                 "iinfo", "errstate", "result_type", "can_cast", "isscalar"):
        setattr(mod, name, getattr(np, name))

    def asarray(a: Any, dtype: Any = None, order: Any = None) -> Any:
        if isinstance(a, ndarray) and (dtype is None or np.dtype(dtype) == a.dtype):
            return a
        return np.array(_unwrap(a), dtype=dtype, copy=True, order=order or "K").view(ndarray)

    def array(a: Any, dtype: Any = None, copy: bool = True, order: Any = "K") -> Any:
        return np.array(_unwrap(a), dtype=dtype, copy=True, order=order).view(ndarray)

    def asnumpy(a: Any, stream: Any = None) -> np.ndarray:
        return np.array(_unwrap(a), copy=True)

    mod.asarray, mod.array, mod.asnumpy = asarray, array, asnumpy

    def get_default_memory_pool() -> _Pool:
        return _POOL

    mod.get_default_memory_pool = get_default_memory_pool
    mod.get_array_module = lambda *a: mod

    def getattr_(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if hasattr(np, name):
            f = _forward(name)
            setattr(mod, name, f)
            return f
        raise AttributeError(f"fake cupy has no {name!r}")

    mod.__getattr__ = getattr_  # type: ignore[attr-defined]

    cuda = types.ModuleType("cupy.cuda")
    cuda.Stream = _Stream
    cuda.Event = _Event
    cuda.Device = _Device
    cuda.Graph = _Graph
    cuda.get_current_stream = lambda device_id=-1: _STREAMS[-1] if _STREAMS else _NULL

    def set_allocator(fn: Any = None) -> None:
        _ALLOCATOR[0] = fn

    cuda.set_allocator = set_allocator
    cuda.get_allocator = lambda: _ALLOCATOR[0]
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1,
                                    getDeviceProperties=lambda i: {"name": b"fake GPU"},
                                    runtimeGetVersion=lambda: 0)
    cuda.runtime = runtime
    mod.cuda = cuda
    return mod


@contextlib.contextmanager
def installed() -> Any:
    """Make chainrule use this fake CuPy (for device 'cuda') inside the block."""
    from chainrule import backend

    fake = _make_module()
    saved_mod = sys.modules.get("cupy")
    saved_backend = backend._cupy
    sys.modules["cupy"] = fake
    backend._cupy = fake
    try:
        yield fake
    finally:
        backend._cupy = saved_backend
        if saved_mod is None:
            sys.modules.pop("cupy", None)
        else:
            sys.modules["cupy"] = saved_mod
