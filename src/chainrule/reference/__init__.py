"""Reference implementations that check the engine from outside it (see ``lecture``)."""

from . import lecture

__all__ = ["lecture"]
