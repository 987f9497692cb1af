"""A small code generator: straight-line Python source for a plan, and its namespace.

A plan is one generated function, ``_replay(a0, a1, ...)``: one line (or a few) per operation,
every array a local variable, every constant and callable bound once in the function's
namespace. No Tensor, Node or list of ops is walked at replay: the interpreter runs the lines.
"""

from __future__ import annotations

import itertools
import linecache
from typing import Any

_COUNTER = itertools.count()


class CodeGen:
    """Accumulates the lines of ``_replay`` and the objects its names refer to."""

    def __init__(self, n_args: int) -> None:
        self.n_args = n_args
        self.head: list[str] = []    # before the ops (loads, guards that need locals)
        self.lines: list[str] = []   # the ops
        self.ns: dict[str, Any] = {}
        self._names: dict[int, str] = {}  # id(object) -> its name in ns
        self._keep: list[Any] = []
        self._n = 0

    def name(self, obj: Any, hint: str = "k") -> str:
        """A namespace name bound to ``obj`` (the same name for the same object)."""
        key = id(obj)
        found = self._names.get(key)
        if found is not None:
            return found
        self._n += 1
        nm = f"{hint}_{self._n}"
        self.ns[nm] = obj
        self._names[key] = nm
        self._keep.append(obj)
        return nm

    def literal(self, value: Any) -> str:
        """Source for a constant: a literal for None/bool/int/str/float that round-trips, a bound
        name for anything else (NumPy scalars keep their type this way)."""
        if value is None or type(value) is bool:
            return repr(value)
        if type(value) is int:
            return repr(value)
        if type(value) is str:
            return repr(value)
        if type(value) is float and float(repr(value)) == value and repr(value) not in (
                "nan", "inf", "-inf"):
            return repr(value)
        return self.name(value)

    def emit(self, line: str) -> None:
        self.lines.append(line)

    def source(self, result: str) -> str:
        args = ", ".join(f"a{i}" for i in range(self.n_args))
        body = ["def _replay(" + args + "):"]
        body += ["    " + ln for ln in self.head]
        body += ["    " + ln for ln in self.lines]
        body.append("    return " + result)
        return "\n".join(body) + "\n"

    def compile(self, result: str, label: str) -> tuple[Any, str]:
        src = self.source(result)
        filename = f"<cr.compile plan {next(_COUNTER)}: {label}>"
        code = compile(src, filename, "exec")
        # keep the source findable for tracebacks and profilers
        linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        ns = dict(self.ns)
        exec(code, ns)  # noqa: S102 - our own generated code
        return ns["_replay"], src
