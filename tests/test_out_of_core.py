"""Data larger than the memory a process may use: ``chainrule train`` on a memory-mapped ``.npy``
four times the size of the process's data limit (``RLIMIT_DATA``, set in the child with
``resource.setrlimit``; it caps the heap and every NumPy array, while pages of a file mapped
read-only are page cache that the kernel can drop) trains one epoch and scores itself.

The file is written in chunks, so this test process does not hold it either.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys

import pytest

from benchmarks.out_of_core import FEATURES
from benchmarks.out_of_core import write as _write   # a float32 .npy written in chunks

BUDGET = 384 << 20          # the child's RLIMIT_DATA
# FEATURES = 511 features + the target: 512 float32 columns, 2 KiB a row


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (BUDGET, BUDGET))


def _env() -> dict[str, str]:
    # one BLAS thread: OpenBLAS reserves a buffer per thread (and retries forever when a
    # reservation fails)
    return dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")


def test_the_limit_is_in_force():
    """The child cannot allocate its budget as one array (so the test below can fail)."""
    code = f"import numpy as np; np.ones({BUDGET // 8}, dtype=np.float64)"
    proc = subprocess.run([sys.executable, "-c", code], preexec_fn=_limit, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "MemoryError" in proc.stderr


def test_a_mapped_npy_four_times_the_memory_limit_trains_one_epoch(tmp_path):
    rows = -(-4 * BUDGET // ((FEATURES + 1) * 4))
    need = rows * (FEATURES + 1) * 4
    free = shutil.disk_usage(tmp_path).free
    if free < need + (1 << 30):
        pytest.skip(f"needs {need / 2**30:.1f} GiB of free disk for the data file, "
                    f"{free / 2**30:.1f} GiB free")
    data = tmp_path / "big.npy"
    _write(data, rows)
    assert data.stat().st_size >= 4 * BUDGET
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "chainrule", "train", "--dataset", str(data), "--target",
         f"x{FEATURES}", "--epochs", "1", "--batch-size", "1024", "--hidden", "32", "--out",
         str(run), "--quiet"], preexec_fn=_limit, env=_env(), cwd=tmp_path,
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_run"] == 1
    # every row was scored: the three parts add up to the file's rows
    assert sum(m["support"] for part in summary["metrics"].values()
               for m in [part["macro_avg"]]) == rows
    assert summary["test_accuracy"] > 0.9      # a linear rule of the features: learnt
