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


def _rank_pids(out: Path, mpiexec_pid: int) -> list[int]:
    return [int(p) for p in subprocess.run(["pgrep", "-f", str(out)], capture_output=True,
                                           text=True).stdout.split()
            if int(p) != mpiexec_pid and
            Path(f"/proc/{p}/cmdline").read_text().startswith(sys.executable)]


def test_a_stopped_rank_is_named_by_the_watchdog_and_every_rank_ends(tmp_path):
    """A rank that hangs (here: SIGSTOP) leaves the others in the step's Allreduce; the
    watchdog ends the job after CHAINRULE_COLLECTIVE_TIMEOUT with one line naming it."""
    out = tmp_path / "run"
    cmd = [str(MPIEXEC), "-n", "2", sys.executable, "-m", "chainrule", "train", "--distributed",
           "--dataset", "digits", "--epochs", "100000", "--hidden", "32", "-q", "--out",
           str(out)]
    env = {**os.environ, "CHAINRULE_COLLECTIVE_TIMEOUT": "3", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "checkpoint.safetensors").exists():
            time.sleep(0.1)
        ranks = _rank_pids(out, proc.pid)
        assert len(ranks) == 2, ranks
        start = time.time()
        os.kill(ranks[1], signal.SIGSTOP)
        _, err = proc.communicate(timeout=60)
        assert time.time() - start < 60 and proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1, err
    note = next(line for line in err.splitlines() if line.startswith("note: 2 processes"))
    stopped = 0 if f"rank 0 pid {ranks[1]} " in note else 1
    assert errors[0].startswith(f"error (rank {1 - stopped} of 2): the allreduce of this step "
                                "has waited 3 s")
    assert f"rank {stopped} (pid {ranks[1]} on " in errors[0] and "is stopped" in errors[0]
    epochs = len((out / "metrics.jsonl").read_text().splitlines())
    done = _resume_two(out, epochs + 1)
    assert done.returncode == 0, done.stderr


def _resume_two(out: Path, epochs: int) -> subprocess.CompletedProcess:
    return subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, "-m", "chainrule", "train",
                           "--resume", str(out), "--epochs", str(epochs), "-q",
                           "--distributed"], capture_output=True, text=True, timeout=240)


_RANK_1_RAISES = """
import sys
from mpi4py import MPI
import chainrule.train as T
if MPI.COMM_WORLD.Get_rank() == 1:
    step = T.Trainer._step if hasattr(T.Trainer, "_step") else None
    calls = {"n": 0}
    real = T.Trainer.fit
    def fit(self, *args, **kwargs):
        sync = self.gradient_sync
        def broken(n):
            calls["n"] += 1
            if calls["n"] == 40:
                raise RuntimeError("rank 1 broke in step 40")
            return sync(n)
        self.gradient_sync = broken
        return real(self, *args, **kwargs)
    T.Trainer.fit = fit
from chainrule.cli import main
sys.argv = ["chainrule", "train", "--distributed", "-q", "--epochs", "50", "--hidden", "16",
            "--out", sys.argv[1]]
main()
"""


def test_an_exception_on_one_rank_mid_training_ends_every_rank_with_one_line(tmp_path):
    script = tmp_path / "raises.py"
    script.write_text(_RANK_1_RAISES)
    out = tmp_path / "run"
    start = time.time()
    proc = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, str(script), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert time.time() - start < 60 and proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert errors == ["error (rank 1 of 2): RuntimeError: rank 1 broke in step 40"], \
        proc.stderr


def test_the_watchdog_names_a_local_rank_that_is_gone(monkeypatch):
    """In process, with a stand-in communicator: a peer process that dies is noticed within a
    poll and named, and MPI_Abort is called."""
    from chainrule.distributed import watchdog as W

    peer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    class Comm:
        aborted: list[int] = []

        def Get_rank(self):
            return 0

        def Get_size(self):
            return 2

        def allgather(self, mine):
            return [mine, (mine[0], peer.pid)]

        def Abort(self, code):
            self.aborted.append(code)

    exits: list[int] = []
    monkeypatch.setattr(W.os, "_exit", exits.append)
    lines: list[str] = []
    monkeypatch.setattr(W, "print", lambda *a, **k: lines.append(a[0]), raising=False)
    comm = Comm()
    dog = W.Watchdog(comm, timeout=0, poll=0.05)
    try:
        assert dog.describe().startswith("rank 0 pid ")
        time.sleep(0.2)
        assert not comm.aborted             # alive: nothing happens
        peer.kill()
        peer.wait()
        deadline = time.time() + 5
        while not comm.aborted and time.time() < deadline:
            time.sleep(0.05)
    finally:
        dog.stop()
        peer.kill()
    assert comm.aborted and comm.aborted[0] == 1 and exits[:1] == [1]
    assert lines[0].startswith("error (rank 0 of 2): rank 1 (pid ") and "is gone" in lines[0]


_BROADCAST_STATE = """
import numpy as np
import chainrule as cr
from chainrule import distributed as dist
comm = dist.init()
net = cr.nn.MLP([4, 3, 2], dtype="float64")
opt = cr.optim.Adam(net.parameters(), lr=0.1)
x = cr.tensor(np.ones((5, 4)))
for _ in range(2 + dist.rank()):            # rank 1 has taken one step more: other state
    opt.zero_grad()
    net(x).sum().backward()
    opt.step()
dist.broadcast_parameters(net.parameters())
dist.broadcast_optimizer_state(opt)
flat = [np.concatenate([np.ravel(v) for k, v in sorted(opt.state[p].items())])
        for p in net.parameters()]
mine = np.concatenate(flat + [p.data.ravel() for p in net.parameters()])
other = comm.bcast(mine, root=0)
assert np.array_equal(mine, other), "state differs"
assert all(opt.state[p]["step"] == 2 for p in net.parameters())
print(f"same{dist.rank()}", flush=True)
"""


def test_broadcast_optimizer_state_makes_every_rank_hold_rank_0s(tmp_path):
    script = tmp_path / "state.py"
    script.write_text(_BROADCAST_STATE)
    proc = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, str(script)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("same0") == 1 and proc.stdout.count("same1") == 1, proc.stdout
