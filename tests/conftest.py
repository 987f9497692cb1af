"""Shared test configuration: a Hypothesis profile that keeps the suite fast and deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Modest example counts and no deadline: gradient checks are a few milliseconds each, and timing
# noise on a loaded CI machine must not fail a test. ``derandomize`` makes runs reproducible.
settings.register_profile(
    "chainrule",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("chainrule")


@pytest.fixture
def rng() -> np.random.Generator:
    """A NumPy generator with a fixed seed, fresh for every test."""
    return np.random.default_rng(1234)
