"""Data-parallel training over MPI: ``mpiexec -n N chainrule train --distributed`` ends with the
parameters of the one-process run (global batch semantics), resumes, and a killed rank takes
the others down at once, leaving the run resumable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr

pytest.importorskip("mpi4py", reason="the mpi extra (mpi4py, mpich) is not installed")
MPIEXEC = Path(sys.executable).parent / "mpiexec"
if not MPIEXEC.exists():
    MPIEXEC = Path("mpiexec")


def _train(out: Path, *args: str, n: int = 1, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "chainrule", "train", *args, "-q", "--out", str(out)]
    if n > 1:
        cmd = [str(MPIEXEC), "-n", str(n), *cmd, "--distributed"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _max_diff(a: Path, b: Path) -> float:
    ta, _ = cr.io.read(a / "model.safetensors")
    tb, _ = cr.io.read(b / "model.safetensors")
    assert ta.keys() == tb.keys()
    return max(float(np.abs(ta[k].astype(np.float64) - tb[k]).max()) for k in ta)


COMMON = ["--dataset", "digits", "--epochs", "3", "--batch-size", "36", "--hidden", "32"]


@pytest.mark.parametrize("optimizer, dtype, tol", [("momentum", "float64", 1e-10),
                                                    ("adam", "float64", 1e-10),
                                                    ("adam", "float32", 1e-5)])
def test_n_ranks_end_with_the_parameters_of_one_process(tmp_path, optimizer, dtype, tol):
    args = [*COMMON, "--optimizer", optimizer, "--dtype", dtype, "--lr", "0.01"]
    one = tmp_path / "one"
    assert _train(one, *args).returncode == 0
    for n in ((2, 3) if dtype == "float64" and optimizer == "momentum" else (2,)):
        many = tmp_path / f"n{n}"
        proc = _train(many, *args, n=n)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count("test accuracy") == 1          # rank 0 reports, once
        assert _max_diff(one, many) <= tol
        assert sorted(p.name for p in many.iterdir()) == sorted(p.name for p in one.iterdir())


def test_a_resumed_data_parallel_run_ends_where_one_process_ends(tmp_path):
    args = [*COMMON[:2], "--batch-size", "36", "--hidden", "32", "--optimizer", "adam",
            "--dtype", "float64"]
    one = tmp_path / "one"
    assert _train(one, *args, "--epochs", "3").returncode == 0
    many = tmp_path / "many"
    assert _train(many, *args, "--epochs", "2", n=2).returncode == 0
    cmd = [str(MPIEXEC), "-n", "2", sys.executable, "-m", "chainrule", "train", "--resume",
           str(many), "--epochs", "3", "-q", "--distributed"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert _max_diff(one, many) <= 1e-10
    assert len((many / "metrics.jsonl").read_text().splitlines()) == 3


def test_global_batch_not_divisible_is_one_line_exit_2(tmp_path):
    proc = _train(tmp_path / "r", "--batch-size", "33", n=2)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: --batch-size 33 is the global batch; it must be "
                                   "divisible by the 2 processes")
    assert not (tmp_path / "r").exists()


def test_a_killed_rank_ends_every_rank_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [str(MPIEXEC), "-n", "2", sys.executable, "-m", "chainrule", "train", "--distributed",
           "--dataset", "digits", "--epochs", "100000", "--hidden", "32", "-q", "--out",
           str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "checkpoint.safetensors").exists():
            time.sleep(0.1)
        assert (out / "checkpoint.safetensors").exists()
        ranks = [int(p) for p in subprocess.run(["pgrep", "-f", str(out)], capture_output=True,
                                                text=True).stdout.split()
                 if int(p) != proc.pid and "python" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(ranks) == 2, ranks
        start = time.time()
        os.kill(ranks[1], signal.SIGKILL)
        proc.communicate(timeout=60)
        assert time.time() - start < 60 and proc.returncode != 0
        assert all(not Path(f"/proc/{r}").exists() or
                   "zombie" in Path(f"/proc/{r}/status").read_text().lower() for r in ranks)
    finally:
        if proc.poll() is None:
            proc.kill()
    epochs = len((out / "metrics.jsonl").read_text().splitlines())
    resume = [str(MPIEXEC), "-n", "2", sys.executable, "-m", "chainrule", "train", "--resume",
              str(out), "--epochs", str(epochs + 1), "-q", "--distributed"]
    done = subprocess.run(resume, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == epochs + 1 and (out / "model.safetensors").exists()


_ONE_RANK_FAILS = """
import sys
from mpi4py import MPI
import chainrule.runs.training as T
from chainrule.errors import InvalidValueError
if MPI.COMM_WORLD.Get_rank() == 1:
    def refuse(*args, **kwargs):
        raise InvalidValueError("only rank 1 is out of memory")
    T.memory_guard = refuse
from chainrule.cli import main
sys.argv = ["chainrule", "train", "--distributed", "-q", "--epochs", "1", "--out", sys.argv[1]]
main()
"""


def test_a_check_failing_on_one_rank_ends_every_rank_without_a_hang(tmp_path):
    script = tmp_path / "one_fails.py"
    script.write_text(_ONE_RANK_FAILS)
    out = tmp_path / "run"
    proc = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, str(script), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert sorted(proc.stderr.strip().splitlines()) == [
        "error (rank 1): only rank 1 is out of memory",
        "error: 1 other process(es) failed their checks"]
    assert not out.exists()
