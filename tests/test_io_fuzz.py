"""Damaged model and checkpoint files: whatever the damage, loading either gives something usable
or raises a chainrule error. The mutants come from scripts/fuzz_loader.py (which runs a million
of them); here a few hundred per file, seeded, in a few seconds."""

from __future__ import annotations

import collections
import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import state_file

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fuzz_loader.py"
MUTANTS_PER_KIND = 300


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_loader", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_loader", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def base(fuzz, tmp_path_factory):
    return fuzz.base_files(tmp_path_factory.mktemp("base"))


def test_base_files_load(fuzz, base, tmp_path):
    for kind, blob in base.items():
        assert fuzz.attempt(kind, blob, tmp_path) == "loaded"


def _agrees_with_safetensors(blob: bytes) -> None:
    """A file this reader accepts is one the safetensors library reads the same way."""
    from safetensors.numpy import load

    mine, _ = state_file.decode(blob, "mutant")
    theirs = load(blob)
    assert set(mine) == set(theirs)
    for name, arr in mine.items():
        np.testing.assert_array_equal(arr, theirs[name])


@pytest.mark.parametrize("kind", ["mlp", "pipeline", "checkpoint"])
def test_every_mutant_loads_usably_or_raises_a_chainrule_error(fuzz, base, tmp_path, kind):
    outcomes: collections.Counter[str] = collections.Counter()
    for i in range(MUTANTS_PER_KIND):
        blob = fuzz.mutate(base[kind], fuzz.random.Random(f"{kind}-{i}"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow in an extreme model
            try:
                outcome = fuzz.attempt(kind, blob, tmp_path)
            except cr.ChainruleError:  # pragma: no cover - attempt() returns these
                raise
            except Exception as exc:  # noqa: BLE001 - what the test looks for
                pytest.fail(f"{kind} mutant {i}: {type(exc).__name__}: {exc}")
        if outcome.startswith("loaded"):
            _agrees_with_safetensors(blob)
        outcomes[outcome] += 1
    # both sides are reached: some damage is harmless, most is refused
    assert outcomes["FileFormatError"] > MUTANTS_PER_KIND // 2, outcomes
    assert sum(v for k, v in outcomes.items() if k.startswith("loaded")) > 0, outcomes


def test_mutants_are_reproducible(fuzz, base, tmp_path):
    first = [fuzz.mutant(base, 7, i) for i in range(30)]
    for i in range(30, 600):  # (an edit must not change the fuzzer's own tables)
        fuzz.mutant(base, 7, i)
    assert [fuzz.mutant(base, 7, i) for i in range(30)] == first
    assert all(blob != base[kind] for kind, blob in first[:5])
    assert fuzz.base_files(tmp_path) == base  # the valid files are the same bytes every time
