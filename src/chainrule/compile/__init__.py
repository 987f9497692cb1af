"""``cr.compile``: a training step traced once and replayed as a plan (see :mod:`.api`).

Only ``_hooks`` is imported here, so that the engine (``autograd``, ``tensor``) can import it
while chainrule itself is being imported; the rest loads with the first ``cr.compile`` call.
"""

from __future__ import annotations

from typing import Any

from . import _hooks
from ._hooks import traceable


def compile(fn: Any = None, **options: Any) -> Any:  # noqa: A001 - the public name
    """See :func:`chainrule.compile.api.compile`."""
    from .api import compile as _compile

    return _compile(fn, **options)


__all__ = ["compile", "traceable"]
