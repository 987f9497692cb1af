"""Benchmarks: scripts that measure the engine and save their numbers under benchmarks/results/.

Run them as modules from the repository root, e.g. ``python -m benchmarks.overhead --quick``.
The library never imports this package.
"""
