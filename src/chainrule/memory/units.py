"""Byte counts: ``parse_bytes("2GiB")`` and ``format_bytes``."""

from __future__ import annotations

import math
import re

import numpy as np

from ..errors import InvalidValueError


_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4,
          "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
          "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4}


def parse_bytes(text: str | int | float) -> int:
    """A byte count from a string such as ``"2GiB"``, ``"512 MiB"``, ``"1.5GB"`` or ``"4096"``.

    Binary units KiB, MiB, GiB, TiB (also Ki, Mi, Gi, Ti, and the bare letters K, M, G, T, as
    Docker and the JVM read them) are powers of 1024; decimal units KB, MB, GB, TB powers of 1000.
    Case is ignored. A number without unit is bytes; the result is rounded down to whole bytes.

    Raises:
        InvalidValueError: not a non-negative number followed by a known unit.
    """
    if isinstance(text, bool):
        raise InvalidValueError(f"not a byte count: {text!r}")
    if isinstance(text, (int, float, np.integer, np.floating)):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*",
                         str(text))
        if m is None or m.group(2).lower() not in _UNITS:
            raise InvalidValueError(
                f"not a byte count: {text!r}; expected a number and a unit such as 2GiB, "
                "512MiB, 1.5GB or 4096 (bytes)")
        value, unit = float(m.group(1)), m.group(2).lower()
    if not math.isfinite(value) or value < 0:
        raise InvalidValueError(f"a byte count must be finite and non-negative, got {text!r}")
    return int(value * _UNITS[unit])


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units with three significant digits: ``"1.5 GiB"``; never in
    exponent notation (``"1,270 EiB"`` past the largest unit)."""
    for unit, size in (("EiB", 1024**6), ("PiB", 1024**5), ("TiB", 1024**4), ("GiB", 1024**3),
                       ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= size:
            text = f"{n / size:.3g}"
            return f"{text if 'e' not in text else f'{n / size:,.0f}'} {unit}"
    return f"{int(n)} B"
