"""A small builder of ONNX graphs on top of ``onnx.helper``: named values with their shapes and
dtypes, deduplicated constants, and unique node names. ``onnx`` is imported by the caller (it is
optional) and handed in."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

BATCH = "N"
"""The name of the dynamic batch axis in the exported graph's input and outputs."""


class Value(NamedTuple):
    """A tensor of the graph: its name, its shape (``None`` for the dynamic batch axis) and its
    NumPy dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


class Graph:
    """Nodes and initializers of one graph under construction."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()
        self._consts: dict[tuple[str, tuple[int, ...], bytes], str] = {}

    def name(self, hint: str) -> str:
        """A fresh name starting with ``hint``."""
        base = hint or "t"
        name, i = base, 0
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name

    def reserve(self, name: str) -> None:
        self._used.add(name)

    def const(self, array: Any, hint: str = "const", dtype: Any = None) -> str:
        """An initializer holding ``array`` (cast to ``dtype``); equal small constants are
        shared, named tensors (weights) are not."""
        a = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        key = (a.dtype.str, a.shape, a.tobytes()) if a.size <= 64 else None
        if key is not None and key in self._consts:
            return self._consts[key]
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(a, name))
        if key is not None:
            self._consts[key] = name
        return name

    def scalar(self, value: float, dtype: Any) -> str:
        """A 0-d constant of ``dtype`` (broadcasts against any tensor)."""
        return self.const(np.asarray(value, dtype=dtype), "c")

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, *,
           out: str | None = None, **attrs: Any) -> str:
        """Add a node with one output (named ``out``, or a fresh name from ``hint``); returns
        the output's name."""
        out = out or self.name(hint or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [out],
                                                     name=self.name(f"{op_type}_{out}"),
                                                     **attrs))
        return out

    def cast(self, v: Value, dtype: Any) -> Value:
        """``v`` as ``dtype`` (no node when it already is)."""
        dt = np.dtype(dtype)
        if v.dtype == dt:
            return v
        to = self.onnx.helper.np_dtype_to_tensor_dtype(dt)
        return Value(self.op("Cast", [v.name], "cast", to=to), v.shape, dt)

    def value_info(self, v: Value) -> Any:
        to = self.onnx.helper.np_dtype_to_tensor_dtype(v.dtype)
        dims = [BATCH if d is None else int(d) for d in v.shape]
        return self.onnx.helper.make_tensor_value_info(v.name, to, dims)
