"""Crash consistency of ``chainrule train``: a run killed with SIGKILL at any moment (in the middle
of a checkpoint write, or at random) and continued with ``train --resume`` (or restarted with
``--overwrite`` when no checkpoint was kept) ends bit-identical to an uninterrupted run, leaves
no temporary file behind, and lists every epoch once in ``metrics.jsonl``. Ctrl-C (SIGINT)
checkpoints the last finished epoch, prints one line with the resume command and exits 130.

The runs are real ``python -m chainrule train`` processes. The model (iris, two hidden layers of
1024, Adam) makes a checkpoint of about 13 MB, so that a checkpoint write takes a few
milliseconds: the test polls the run directory for the write's temporary file
(``.checkpoint.safetensors.*.tmp``) and kills the process while it exists.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

EPOCHS = 12
OPTIONS = ["--dataset", "iris", "--hidden", "1024,1024", "--epochs", str(EPOCHS), "-q"]
TIMING = {"seconds", "samples_per_second"}       # the only fields allowed to differ
CKPT = "checkpoint.safetensors"
PROCESS_TIMEOUT = 120.0
POLL = 0.0005       # a checkpoint write takes milliseconds; polling must not slow it down

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


# --------------------------------------------------------------------------- processes
def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CHAINRULE_CACHE"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")])
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"            # one core trains, the other polls; and the same sums each run
    env.pop("COLUMNS", None)
    return env


@dataclass
class Attempt:
    cmd: list[str]
    code: int
    stderr: str
    killed: bool
    orphan: Path | None        # the temporary file a kill left behind (a kill mid-write)


def _temp_files(run: Path, name: str = CKPT) -> list[Path]:
    """Temporary files of atomic writes of ``name`` in ``run`` and in its overwrite staging
    siblings."""
    dirs = [run]
    parent = run.parent
    try:
        dirs += [parent / n for n in os.listdir(parent) if n.startswith(f".{run.name}.new-")]
    except FileNotFoundError:
        pass
    found = []
    for d in dirs:
        try:
            names = os.listdir(d)
        except (FileNotFoundError, NotADirectoryError):
            continue
        found += [d / n for n in names if n.startswith(f".{name}.") and n.endswith(".tmp")]
    return found


def _start(cmd: list[str], cwd: Path) -> tuple[subprocess.Popen, Path]:
    err = cwd / f"stderr-{time.monotonic_ns()}.txt"
    with open(err, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "chainrule", *cmd], cwd=cwd,
                                env=_env(cwd / "cache"), stdout=subprocess.DEVNULL, stderr=fh)
    return proc, err


def _finish(proc: subprocess.Popen, err: Path, cmd: list[str], killed: bool,
            orphan: Path | None) -> Attempt:
    code = proc.wait(timeout=PROCESS_TIMEOUT)
    text = err.read_text(errors="replace")
    err.unlink()
    return Attempt(cmd, code, text, killed, orphan)


def run_to_end(cmd: list[str], cwd: Path) -> Attempt:
    proc, err = _start(cmd, cwd)
    return _finish(proc, err, cmd, False, None)


def kill_at_checkpoint_write(cmd: list[str], cwd: Path, run: Path, nth: int,
                             name: str = CKPT) -> Attempt:
    """Start ``cmd``; SIGKILL it as soon as the temporary file of its ``nth`` write of ``name``
    appears. ``orphan`` is that file when it outlived the kill (the kill landed mid-write)."""
    before = set(_temp_files(run, name))
    proc, err = _start(cmd, cwd)
    seen: list[Path] = []
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        for p in _temp_files(run, name):
            if p not in before and p not in seen:
                seen.append(p)
        if len(seen) >= nth:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            orphan = seen[nth - 1]
            return _finish(proc, err, cmd, True, orphan if orphan.exists() else None)
        time.sleep(POLL)
    return _finish(proc, err, cmd, False, None)


def kill_after(cmd: list[str], cwd: Path, seconds: float) -> Attempt:
    proc, err = _start(cmd, cwd)
    try:
        proc.wait(timeout=seconds)
        return _finish(proc, err, cmd, False, None)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return _finish(proc, err, cmd, True, None)


def _training_dir(run: Path, overwrite: bool) -> Path | None:
    """Where the run's files are being written: the run directory, or the staging sibling of
    an ``--overwrite`` start."""
    if not overwrite:
        return run
    staged = [p for p in run.parent.iterdir() if p.name.startswith(f".{run.name}.new-")]
    return max(staged, key=lambda p: p.stat().st_mtime_ns) if staged else None


def kill_after_epoch(cmd: list[str], cwd: Path, run: Path, lines: int,
                     delay: float) -> Attempt:
    """Start ``cmd``; SIGKILL it ``delay`` seconds after it has written metrics.jsonl with
    ``lines`` lines (a file left by an earlier process does not count until this one has
    rewritten or appended to it)."""
    overwrite = "--overwrite" in cmd
    try:
        st = (run / "metrics.jsonl").stat()
        stale = (st.st_ino, st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        stale = None
    proc, err = _start(cmd, cwd)
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        n = 0
        try:
            where = _training_dir(run, overwrite)
            if where is not None:
                path = where / "metrics.jsonl"
                st = path.stat()
                if overwrite or (st.st_ino, st.st_mtime_ns, st.st_size) != stale:
                    n = path.read_bytes().count(b"\n")
        except FileNotFoundError:
            pass
        if n >= lines:
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return _finish(proc, err, cmd, True, None)
            break
        time.sleep(POLL)
    return _finish(proc, err, cmd, False, None)


def next_command(run: Path) -> list[str]:
    """What a user runs after a crash: resume from the checkpoint, or start again."""
    if (run / CKPT).is_file():
        return ["train", "--resume", str(run), "-q"]
    return ["train", *OPTIONS, "--out", str(run), "--overwrite"]


def _ok(attempt: Attempt) -> None:
    assert attempt.code == 0, f"{attempt.cmd} exited {attempt.code}:\n{attempt.stderr}"


# --------------------------------------------------------------------------- comparisons
def _tensors(path: Path) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as fh:
        out = {}
        for k in fh.keys():
            a = fh.get_tensor(k)
            out[k] = (a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes())
        return out


def _meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as fh:
        return dict(fh.metadata() or {})


def _untimed(obj: object) -> object:
    """``obj`` without wall-clock fields (plain dicts and the checkpoint's encoded dicts)."""
    if isinstance(obj, dict):
        if "__dict__" in obj and len(obj) == 1:
            return {"__dict__": [[k, _untimed(v)] for k, v in obj["__dict__"]
                                 if k not in TIMING]}
        return {k: _untimed(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def _checkpoint_state(path: Path) -> object:
    return _untimed(json.loads(_meta(path)["state"]))


def _checkpoint_epoch(path: Path) -> int:
    state = json.loads(_meta(path)["state"])
    return int(dict(state["__dict__"])["epoch"])


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _leftovers(run: Path) -> list[str]:
    inside = [p.name for p in run.iterdir() if p.name.startswith(".") or
              p.name.endswith(".tmp")]
    beside = [p.name for p in run.parent.iterdir()
              if p.name.startswith(f".{run.name}.") or p.name.endswith(".tmp")]
    return inside + beside


def assert_same_as_reference(run: Path, reference: Path) -> None:
    assert _leftovers(run) == [], f"orphaned temporary files: {_leftovers(run)}"
    metrics = _metrics(run)
    assert [m["epoch"] for m in metrics] == list(range(1, EPOCHS + 1)), \
        f"metrics.jsonl lists epochs {[m['epoch'] for m in metrics]}"
    assert _untimed(metrics) == _untimed(_metrics(reference))
    assert _tensors(run / "model.safetensors") == _tensors(reference / "model.safetensors")
    got, want = _meta(run / "model.safetensors"), _meta(reference / "model.safetensors")
    assert got.get("architecture") == want.get("architecture")
    assert got.get("user.run") == want.get("user.run")
    assert _tensors(run / CKPT) == _tensors(reference / CKPT)
    assert _checkpoint_state(run / CKPT) == _checkpoint_state(reference / CKPT)
    summary = json.loads((run / "summary.json").read_text())
    ref_summary = json.loads((reference / "summary.json").read_text())
    assert summary["metrics"] == ref_summary["metrics"]
    assert summary["epochs_run"] == EPOCHS


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crash")


@pytest.fixture(scope="module")
def reference(workdir: Path) -> Path:
    run = workdir / "reference"
    _ok(run_to_end(["train", *OPTIONS, "--out", str(run)], workdir))
    assert len(_metrics(run)) == EPOCHS
    return run


# --------------------------------------------------------------------------- the tests
def test_kill_during_the_first_checkpoint_write_then_start_again(workdir, reference):
    """No checkpoint was kept: the run is started again with --overwrite; killed again mid-write
    (in the overwrite's staging directory); the next start removes both leftovers."""
    run = workdir / "first_write"
    first = kill_at_checkpoint_write(["train", *OPTIONS, "--out", str(run)], workdir, run, 1)
    assert first.killed and first.orphan is not None and first.orphan.parent == run, \
        "the kill did not land during the first checkpoint write"
    assert not (run / CKPT).exists()
    assert next_command(run)[-1] == "--overwrite"
    second = kill_at_checkpoint_write(next_command(run), workdir, run, 1)
    assert second.killed and second.orphan is not None, \
        "the kill did not land during the overwrite's first checkpoint write"
    assert second.orphan.parent.name.startswith(f".{run.name}.new-")
    assert not first.orphan.exists(), "the next start left the previous temporary file"
    _ok(run_to_end(next_command(run), workdir))
    assert not second.orphan.exists()
    assert_same_as_reference(run, reference)


def test_kills_during_checkpoint_writes_then_resume(workdir, reference):
    """Every process is killed while its second checkpoint write is under way (the first one
    completed, so each resume advances one epoch): the checkpoint on disk stays the previous
    one, metrics.jsonl is cut back to it, and the next start removes the temporary file."""
    run = workdir / "mid_write"
    hits = 0
    pending: list[Path] = []           # temporary files that the next start must remove
    cmd = ["train", *OPTIONS, "--out", str(run)]
    for _ in range(EPOCHS - 1):
        epoch_before = _checkpoint_epoch(run / CKPT) if (run / CKPT).exists() else 0
        a = kill_at_checkpoint_write(cmd, workdir, run, 2)
        if not a.killed:
            _ok(a)
            break
        assert a.code == -signal.SIGKILL
        if a.orphan is not None:
            hits += 1
            gone = [p for p in pending if p.exists()]
            assert gone == [], f"the next start left temporary files behind: {gone}"
            pending = [a.orphan]
            # The interrupted write left the previous checkpoint in place, whole.
            assert _checkpoint_epoch(run / CKPT) == epoch_before + 1
            assert len(_metrics(run)) == epoch_before + 2     # one line more than checkpointed
        cmd = next_command(run)
        assert cmd[1] == "--resume"
    assert hits >= 8, f"only {hits} kills landed during a checkpoint write"
    # Last, a kill while the final model file is written (all epochs are checkpointed).
    a = kill_at_checkpoint_write(next_command(run), workdir, run, 1, name="model.safetensors")
    assert a.killed and a.orphan is not None, "the kill did not land during the model write"
    assert _checkpoint_epoch(run / CKPT) == EPOCHS
    _ok(run_to_end(next_command(run), workdir))
    assert not a.orphan.exists()
    assert [p for p in pending if p.exists()] == []
    assert_same_as_reference(run, reference)


def test_kills_at_random_times_then_resume(workdir, reference):
    """Ten kills at random moments: during start-up, at a random point of a random epoch (its
    training, its metrics line, its checkpoint write), or while the final model, summary and
    pictures are written. The moments are drawn relative to the run's progress (the lines of
    metrics.jsonl), so that they spread over the run on a fast or a slow machine."""
    run = workdir / "random"
    rng = random.Random(20261204)
    cmd = ["train", *OPTIONS, "--out", str(run)]
    kills = 0
    for _ in range(40):
        done = _checkpoint_epoch(run / CKPT) if (run / CKPT).exists() else 0
        if done == 0:
            # The first kill comes after the first checkpoint (a kill before it is the other
            # test's: the run must be started again, and a killed --overwrite start keeps
            # nothing, so it would never get anywhere).
            a = kill_after_epoch(cmd, workdir, run, 2 + rng.randrange(2), rng.uniform(0, 0.05))
        elif rng.random() < 0.25:
            a = kill_after(cmd, workdir, rng.uniform(0.05, 1.5))
        else:
            lines = min(done + 1 + rng.randrange(3), EPOCHS)
            delay = rng.uniform(0, 0.05) if lines < EPOCHS else rng.uniform(0, 1.0)
            a = kill_after_epoch(cmd, workdir, run, lines, delay)
        if a.killed:
            kills += 1
            assert a.code == -signal.SIGKILL
        else:
            _ok(a)       # it ran to the end before its moment came
        if kills >= 10:
            break
        cmd = next_command(run)
        assert cmd[1] == "--resume", "the first checkpoint was not kept"
    assert kills >= 10
    _ok(run_to_end(next_command(run), workdir))
    assert_same_as_reference(run, reference)


def test_sigint_checkpoints_the_last_epoch_and_resumes_bit_identical(workdir, reference):
    run = workdir / "sigint"
    proc, err = _start(["train", *OPTIONS, "--out", str(run)], workdir)
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if len((run / "metrics.jsonl").read_text().splitlines()) >= 3:
                break
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    assert proc.poll() is None, "training ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    a = _finish(proc, err, ["train"], False, None)
    assert a.code == 130, f"exit {a.code}:\n{a.stderr}"
    lines = [line for line in a.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--resume" in lines[0] and str(run) in lines[0], a.stderr
    assert "Traceback" not in a.stderr
    epoch = _checkpoint_epoch(run / CKPT)
    assert 3 <= epoch < EPOCHS
    assert [m["epoch"] for m in _metrics(run)] == list(range(1, epoch + 1))
    assert _leftovers(run) == []
    assert not (run / "model.safetensors").exists()
    _ok(run_to_end(["train", "--resume", str(run), "-q"], workdir))
    assert_same_as_reference(run, reference)
