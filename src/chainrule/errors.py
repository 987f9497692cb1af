"""The exceptions chainrule raises.

Every error a user can cause is a :class:`ChainruleError`, and each subclass also derives from the
built-in exception a Python user would expect (``ShapeError`` is a ``ValueError``, ``DTypeError`` a
``TypeError``), so ``except ValueError`` keeps working around chainrule code.
"""

from __future__ import annotations


class ChainruleError(Exception):
    """Base class of every error chainrule raises on purpose."""


class ShapeError(ChainruleError, ValueError):
    """Shapes that cannot be combined: matmul inner dimensions, broadcasting, reshape sizes,
    axes."""


class DTypeError(ChainruleError, TypeError):
    """A dtype that an operation cannot take (strings, objects, integers where gradients are
    needed)."""


class GraphError(ChainruleError, RuntimeError):
    """Misuse of the recorded graph: backward twice, backward on a constant, in-place on saved
    data."""


class InvalidValueError(ChainruleError, ValueError):
    """A value that cannot be used: NaN where a number is required, an unknown option, a bad
    seed."""


class GradcheckError(ChainruleError, AssertionError):
    """Analytic and finite-difference gradients disagree; the message names the worst element."""


class FileFormatError(ChainruleError, ValueError):
    """A model or checkpoint file that is truncated, corrupt, forged or of the wrong shape."""


class IndexingError(ChainruleError, IndexError):
    """An index that does not fit the tensor: out of range, wrong boolean-mask shape, bad type."""


class AnomalyError(ChainruleError, FloatingPointError):
    """In anomaly mode (``chainrule.detect_anomaly``): an operation made the first NaN or
    infinity, in the forward pass or in backward; the message names it and where it was
    called."""
