"""Bad inputs through the real command line: every user error exits with code 2 and exactly one
line on stderr starting with ``error:`` that names the problem, prints no traceback, and changes
nothing on disk (every file's name, bytes and mtime under the run directories, the data files and
the case's working directory are the same afterwards; no file appears next to them).

Most cases go through ``typer.testing.CliRunner`` (fast, stderr captured separately); a few run
``python -m chainrule`` as a subprocess to check the real exit code and stderr of the process.

Module fixtures train four small runs once: ``moons`` (2 numeric features, cross-entropy),
``sign`` (moons under the square loss: sign(h(x)) predictions), ``cat`` (a CSV with a categorical
column) and ``imp`` (a CSV with missing cells, trained with ``--impute mean``).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from chainrule.cli import app

runner = CliRunner()
EPOCHS = 2


# --------------------------------------------------------------------------- helpers
@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CHAINRULE_CACHE"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")])
    return env


def invoke(args: list[str], cache: Path) -> Outcome:
    # Warnings would reach a user's terminal (stderr) but pytest captures them: record them
    # and count them as stderr lines (deprecation warnings are hidden in a real process).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = runner.invoke(app, [str(a) for a in args], env={"CHAINRULE_CACHE": str(cache)})
    stderr = "".join(
        warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
        for w in caught if not issubclass(w.category, (DeprecationWarning,
                                                       PendingDeprecationWarning)))
    stderr += result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # An exception that escaped the command: show it as the process would have.
        import traceback

        stderr += "".join(traceback.format_exception(result.exception))
    return Outcome(result.exit_code, result.stdout, stderr)


AS_LIMIT = 8 << 30   # address space of a subprocess: a missing size guard fails, not the machine


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))


def invoke_subprocess(args: list[str], cache: Path, cwd: Path, timeout: float) -> Outcome:
    proc = subprocess.run([sys.executable, "-m", "chainrule", *map(str, args)], cwd=cwd,
                          env=_env(cache), capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_limit_memory)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def ok(*args: str) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every entry under ``roots``: kind, size, mtime and (for files) the bytes."""
    out: dict[str, tuple] = {}
    for root in roots:
        out[str(root)] = tuple(sorted(os.listdir(root)))
        for dirpath, dirnames, filenames in os.walk(root):
            for name in sorted(dirnames + filenames):
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                body = None
                if stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as fh:
                        body = fh.read()
                out[p] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, body)
    return out


def diff(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    changes = [f"new: {p}" for p in sorted(set(after) - set(before))]
    changes += [f"gone: {p}" for p in sorted(set(before) - set(after))]
    changes += [f"changed: {p}" for p in sorted(set(before) & set(after))
                if before[p] != after[p]]
    return changes


def user_error_problems(out: Outcome, needle: str | tuple[str, ...]) -> list[str]:
    """What is wrong with ``out`` as a user error (empty when it is one)."""
    problems = []
    if "Traceback" in out.stderr + out.stdout:
        problems.append("a traceback was printed")
    if "internal error" in out.stderr:
        problems.append("reported as an internal error (a bug)")
    if out.code != 2:
        problems.append(f"exit code {out.code}, expected 2")
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr, expected one")
    if not lines or not lines[-1].startswith("error:"):
        problems.append("stderr does not end with an 'error:' line")
    needles = (needle,) if isinstance(needle, str) else needle
    message = lines[-1].lower() if lines else ""
    if not any(n.lower() in message for n in needles):
        problems.append(f"the message does not name the problem (expected one of {needles})")
    return problems


def assert_user_error(out: Outcome, needle: str | tuple[str, ...],
                      disk_changes: list[str] = ()) -> None:
    problems = user_error_problems(out, needle)
    if disk_changes:
        problems.append("the disk changed: " + "; ".join(disk_changes[:10]))
    assert not problems, (" | ".join(problems) + f"\nexit {out.code}\n--- stdout\n{out.stdout}"
                          f"\n--- stderr\n{out.stderr}")


# --------------------------------------------------------------------------- data and runs
def _people_csv(path: Path, n: int = 160, holes: bool = False) -> Path:
    """Numeric a, b, a categorical color and a yes/no label (with holes: some empty cells)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(n) * 3 + 10, rng.standard_normal(n)
    color = rng.choice(["red", "green", "blue"], n)
    y = np.where(a - 10 + (color == "red") * 2 + b > 0.5, "yes", "no")
    rows = []
    for i in range(n):
        ca = "" if holes and i % 17 == 3 else f"{a[i]:.6f}"
        cc = "" if holes and i % 23 == 7 else color[i]
        rows.append(f"{ca},{b[i]:.6f},{cc},{y[i]}")
    path.write_text("a,b,color,label\n" + "\n".join(rows) + "\n")
    return path


@dataclass
class Env:
    root: Path                 # holds data/ and runs/ (snapshotted around every case)
    data: Path
    runs: dict[str, Path]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("bad_inputs")
    data, runs_dir = root / "data", root / "runs"
    data.mkdir()
    runs_dir.mkdir()
    people = _people_csv(data / "people.csv")
    holes = _people_csv(data / "holes.csv", holes=True)
    common = ["--epochs", str(EPOCHS), "--hidden", "8", "-q"]
    specs = {
        "moons": ["--dataset", "moons"],
        "sign": ["--dataset", "moons", "--loss", "square"],
        "cat": ["--dataset", str(people), "--target", "label"],
        "imp": ["--dataset", str(holes), "--target", "label", "--impute", "mean"],
    }
    runs = {}
    for name, args in specs.items():
        ok("train", *args, *common, "--out", str(runs_dir / name))
        runs[name] = runs_dir / name
    return Env(root, data, runs)


def clone(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def _moons_rows(n: int = 6) -> np.ndarray:
    return np.array([[0.5, 0.25], [-1.0, 0.5], [1.5, -0.4], [0.0, 1.0], [2.0, 0.3],
                     [-0.5, 0.8]])[:n]


def _csv(path: Path, header: str | None, rows: np.ndarray | list[list[object]]) -> Path:
    lines = [] if header is None else [header]
    lines += [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _st_read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata() or {})


def _st_write(path: Path, tensors: dict[str, np.ndarray], meta: dict[str, str]) -> Path:
    from safetensors.numpy import save_file

    save_file(tensors, str(path), metadata=meta)
    return path


def _model_with(env: Env, tmp: Path, run: str = "moons", *, meta: dict[str, str] | None = None,
                tensors: Callable[[dict[str, np.ndarray]], None] | None = None) -> Path:
    """A copy of a run's model file with edited metadata and/or tensors."""
    ts, md = _st_read(env.runs[run] / "model.safetensors")
    md.update(meta or {})
    if tensors is not None:
        tensors(ts)
    return _st_write(tmp / "model.safetensors", ts, md)


def _run_meta(env: Env, run: str = "moons") -> dict:
    return json.loads(_st_read(env.runs[run] / "model.safetensors")[1]["user.run"])


def _npy_8tib(path: Path) -> Path:
    """A valid .npy header that declares 2**40 float64 values (8 TiB), then a few bytes."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }"
    header = header + " " * (-(10 + len(header) + 1) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                     + header.encode("latin1") + b"\x00" * 24)
    return path


# --------------------------------------------------------------------------- the cases
# A case builds its inputs in its own folder ``tmp`` and returns (argv, needle): the message
# must contain the needle (or one of a tuple of needles), case-insensitively.
Maker = Callable[[Env, Path], tuple[list[str], "str | tuple[str, ...]"]]


@dataclass
class Case:
    make: Maker
    subprocess: bool = False
    timeout: float = 120.0


CASES: dict[str, Case] = {}


def case(name: str, *, sub: bool = False, timeout: float = 120.0) -> Callable[[Maker], Maker]:
    def register(fn: Maker) -> Maker:
        assert name not in CASES, name
        CASES[name] = Case(fn, sub, timeout)
        return fn
    return register


def predict(env: Env, inp: Path, *extra: str, run: str = "moons") -> list[str]:
    return ["predict", str(env.runs[run]), "--input", str(inp), *extra]


# ---- predict: the strict reader
@case("predict-csv-without-header-numeric-first-row")
def _(env, tmp):
    return predict(env, _csv(tmp / "x.csv", None, _moons_rows())), "--no-header"


@case("predict-csv-without-header-subprocess", sub=True)
def _(env, tmp):
    return predict(env, _csv(tmp / "x.csv", None, _moons_rows())), "--no-header"


@case("predict-renamed-column")
def _(env, tmp):
    return predict(env, _csv(tmp / "x.csv", "x0,feature_1", _moons_rows())), \
        ("missing column", "x1")


@case("predict-missing-column")
def _(env, tmp):
    return predict(env, _csv(tmp / "x.csv", "x0", _moons_rows()[:, :1])), "missing column"


@case("predict-extra-unknown-column")
def _(env, tmp):
    rows = np.column_stack([_moons_rows(), np.ones(6)])
    return predict(env, _csv(tmp / "x.csv", "x0,x1,bonus", rows)), "bonus"


@case("predict-duplicate-column")
def _(env, tmp):
    rows = np.column_stack([_moons_rows(), np.ones(6)])
    return predict(env, _csv(tmp / "x.csv", "x0,x1,x1", rows)), ("duplicate", "x1")


@case("predict-headerless-with-wrong-width")
def _(env, tmp):
    rows = np.column_stack([_moons_rows(), np.ones(6), np.ones(6)])
    return predict(env, _csv(tmp / "x.csv", None, rows), "--no-header"), "column"


@case("predict-nan-in-npz")
def _(env, tmp):
    X = _moons_rows()
    X[2, 1] = np.nan
    np.savez(tmp / "x.npz", X=X)
    return predict(env, tmp / "x.npz"), ("missing value", "nan")


@case("predict-inf-in-npz")
def _(env, tmp):
    X = _moons_rows()
    X[1, 0] = np.inf
    np.savez(tmp / "x.npz", X=X)
    return predict(env, tmp / "x.npz"), ("not a finite", "not finite")


@case("predict-1e300-in-csv-float32-model")
def _(env, tmp):
    X = _moons_rows().astype(object)
    X[3, 0] = "1e300"
    return predict(env, _csv(tmp / "x.csv", "x0,x1", X)), "overflows"


@case("predict-empty-cell-without-impute")
def _(env, tmp):
    (tmp / "x.csv").write_text("x0,x1\n0.5,0.25\n1.0,\n")
    return predict(env, tmp / "x.csv"), "missing value"


@case("predict-text-in-numeric-column")
def _(env, tmp):
    (tmp / "x.csv").write_text("x0,x1\n0.5,0.25\n1.0,abc\n")
    return predict(env, tmp / "x.csv"), "not a number"


@case("predict-unknown-category")
def _(env, tmp):
    (tmp / "x.csv").write_text("a,b,color\n10.0,0.5,red\n11.0,-0.5,purple\n")
    return predict(env, tmp / "x.csv", run="cat"), "unknown category"


@case("predict-categorical-model-from-npz")
def _(env, tmp):
    np.savez(tmp / "x.npz", X=np.zeros((3, 3)))
    return predict(env, tmp / "x.npz", run="cat"), "categorical"


@case("predict-impute-model-inf-still-an-error")
def _(env, tmp):
    (tmp / "x.csv").write_text("a,b,color\n10.0,inf,red\n")
    return predict(env, tmp / "x.csv", run="imp"), ("not a finite", "not finite", "inf")


@case("predict-truncated-npz")
def _(env, tmp):
    np.savez(tmp / "full.npz", X=np.random.default_rng(0).standard_normal((200, 2)))
    blob = (tmp / "full.npz").read_bytes()
    (tmp / "x.npz").write_bytes(blob[: len(blob) // 2])
    (tmp / "full.npz").unlink()
    return predict(env, tmp / "x.npz"), ("x.npz", "truncated", "not a readable", "corrupt")


@case("predict-npy-header-claims-8-tib")
def _(env, tmp):
    return predict(env, _npy_8tib(tmp / "x.npy")), ("truncated", "corrupt")


@case("predict-npz-with-pickled-object-array")
def _(env, tmp):
    X = np.empty((2, 2), dtype=object)
    X[:] = [[0.5, {"evil": 1}], [1.0, 2.0]]
    np.savez(tmp / "x.npz", X=X)
    return predict(env, tmp / "x.npz"), ("pickle", "object")


@case("predict-npz-one-dimensional-X")
def _(env, tmp):
    np.savez(tmp / "x.npz", X=np.zeros(4))
    return predict(env, tmp / "x.npz"), "2-D"


@case("predict-npz-wrong-number-of-columns")
def _(env, tmp):
    np.savez(tmp / "x.npz", X=np.zeros((4, 3)))
    return predict(env, tmp / "x.npz"), "columns"


@case("predict-npz-without-X")
def _(env, tmp):
    np.savez(tmp / "x.npz", data=np.zeros((4, 2)))
    return predict(env, tmp / "x.npz"), "no array named X"


@case("predict-zip-bomb-like-npz-member")
def _(env, tmp):
    # A member whose .npy header declares far more data than the member holds.
    with zipfile.ZipFile(tmp / "x.npz", "w") as zf:
        zf.writestr("X.npy", _npy_8tib(tmp / "h.npy").read_bytes())
    (tmp / "h.npy").unlink()
    return predict(env, tmp / "x.npz"), ("truncated", "corrupt")


@case("predict-non-utf8-csv")
def _(env, tmp):
    (tmp / "x.csv").write_bytes(b"x0,x1\n0.5,0.25\n1.0,caf\xe9\xff\n")
    return predict(env, tmp / "x.csv"), ("utf-8", "encoding", "decode")


@case("predict-unknown-encoding")
def _(env, tmp):
    _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return predict(env, tmp / "x.csv", "--encoding", "klingon-8"), "klingon-8"


@case("predict-two-character-delimiter")
def _(env, tmp):
    _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return predict(env, tmp / "x.csv", "--delimiter", ";;"), ("delimiter", "separator")


@case("predict-directory-as-input")
def _(env, tmp):
    (tmp / "folder.csv").mkdir()
    return predict(env, tmp / "folder.csv"), "directory"


@case("predict-input-does-not-exist")
def _(env, tmp):
    return predict(env, tmp / "nope.csv"), ("no such file", "nope.csv")


@case("predict-unknown-file-format")
def _(env, tmp):
    (tmp / "x.xlsx").write_bytes(b"PK\x03\x04 not really")
    return predict(env, tmp / "x.xlsx"), ("x.xlsx", "format", ".xlsx")


@case("predict-empty-csv")
def _(env, tmp):
    (tmp / "x.csv").write_text("")
    return predict(env, tmp / "x.csv"), ("empty", "no rows", "no header", "x.csv")


@case("predict-header-only-csv")
def _(env, tmp):
    (tmp / "x.csv").write_text("x0,x1\n")
    return predict(env, tmp / "x.csv"), ("no rows", "empty", "no data")


@case("predict-output-equal-to-input")
def _(env, tmp):
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return predict(env, inp, "--output", str(inp)), "overwrite"


@case("predict-output-into-missing-folder")
def _(env, tmp):
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return predict(env, inp, "--output", str(tmp / "no" / "such" / "p.csv")), \
        ("does not exist", "no such")


@case("predict-proba-on-square-loss-sign-model")
def _(env, tmp):
    return predict(env, _csv(tmp / "x.csv", "x0,x1", _moons_rows()), "--proba", run="sign"), \
        "--proba"


@case("predict-model-is-not-a-run")
def _(env, tmp):
    (tmp / "empty_run").mkdir()
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(tmp / "empty_run"), "--input", str(inp)], "no model file"


# ---- predict: forged and damaged model files
DAMAGED = ("not a valid safetensors", "not a safetensors", "truncated", "byte range")

@case("predict-model-with-nan-weights")
def _(env, tmp):
    def poison(ts):
        name = sorted(k for k in ts if k.endswith("weight"))[0]
        ts[name] = ts[name].copy()
        ts[name].flat[0] = np.nan
    model = _model_with(env, tmp, tensors=poison)
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    # The model file is the problem: the message must say so (NaN / the file), not blame the
    # inputs.
    return ["predict", str(model), "--input", str(inp)], ("nan", "model.safetensors")


@case("predict-model-run-metadata-not-json")
def _(env, tmp):
    model = _model_with(env, tmp, meta={"user.run": "{not json"})
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(model), "--input", str(inp)], "not valid JSON"


@case("predict-model-run-metadata-a-list")
def _(env, tmp):
    model = _model_with(env, tmp, meta={"user.run": json.dumps([1, 2, 3])})
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(model), "--input", str(inp)], "not a JSON object"


@case("predict-model-run-metadata-wrong-types")
def _(env, tmp):
    run = _run_meta(env)
    run.update(num_classes="2", class_names=[0, 1])
    model = _model_with(env, tmp, meta={"user.run": json.dumps(run)})
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(model), "--input", str(inp)], "num_classes"


@case("predict-model-run-metadata-columns-wrong-type")
def _(env, tmp):
    run = _run_meta(env)
    run["columns"]["columns"] = {"x0": 1}
    model = _model_with(env, tmp, meta={"user.run": json.dumps(run)})
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(model), "--input", str(inp)], "columns"


@case("predict-model-num-classes-mismatching-network")
def _(env, tmp):
    run = _run_meta(env)
    run.update(num_classes=3, class_names=["a", "b", "c"])
    model = _model_with(env, tmp, meta={"user.run": json.dumps(run)})
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(model), "--input", str(inp)], "outputs"


@case("predict-model-run-metadata-huge-nesting")
def _(env, tmp):
    model = _model_with(env, tmp, meta={"user.run": "[" * 100_000 + "]" * 100_000})
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(model), "--input", str(inp)], ("not valid JSON", "nest", "deep")


@case("predict-model-run-metadata-missing")
def _(env, tmp):
    ts, md = _st_read(env.runs["moons"] / "model.safetensors")
    del md["user.run"]
    model = _st_write(tmp / "model.safetensors", ts, md)
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(model), "--input", str(inp)], "run metadata"


@case("predict-model-architecture-not-json")
def _(env, tmp):
    model = _model_with(env, tmp, meta={"architecture": "MLP(2, 8, 2)"})
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(model), "--input", str(inp)], "architecture"


@case("predict-model-architecture-huge-nesting")
def _(env, tmp):
    model = _model_with(env, tmp, meta={"architecture": "[" * 100_000 + "]" * 100_000})
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(model), "--input", str(inp)], "architecture"


@case("predict-model-architecture-huge-layer")
def _(env, tmp):
    spec = json.loads(_st_read(env.runs["moons"] / "model.safetensors")[1]["architecture"])

    def grow(node):
        if isinstance(node, dict):
            if node.get("type") == "MLP":
                node["config"]["sizes"] = [2, 2**31, 2]
            for child in node.get("children") or []:
                grow(child)
    grow(spec)
    model = _model_with(env, tmp, meta={"architecture": json.dumps(spec)})
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(model), "--input", str(inp)], ("parameter", "architecture")


@case("predict-model-architecture-unknown-layer")
def _(env, tmp):
    model = _model_with(env, tmp, meta={"architecture": json.dumps(
        {"type": "os.system", "config": {"command": "true"}})})
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(model), "--input", str(inp)], "architecture"


@case("predict-truncated-model-file")
def _(env, tmp):
    blob = (env.runs["moons"] / "model.safetensors").read_bytes()
    (tmp / "model.safetensors").write_bytes(blob[: len(blob) - 100])
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(tmp / "model.safetensors"), "--input", str(inp)], \
        DAMAGED


@case("predict-model-file-is-text")
def _(env, tmp):
    (tmp / "model.safetensors").write_text("hello")
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(tmp / "model.safetensors"), "--input", str(inp)], \
        DAMAGED


@case("predict-checkpoint-given-as-model")
def _(env, tmp):
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["predict", str(env.runs["moons"] / "checkpoint.safetensors"), "--input", str(inp)], \
        ("not a chainrule model", "checkpoint")


# ---- explain
def _weights(tmp: Path, text: str) -> Path:
    (tmp / "w.json").write_text(text)
    return tmp / "w.json"


@case("explain-weights-W-is-a-number")
def _(env, tmp):
    return ["explain", "--weights", str(_weights(tmp, '{"W": 5}'))], '"W" must be a list'


@case("explain-weights-deeply-nested-json")
def _(env, tmp):
    return ["explain", "--weights", str(_weights(tmp, "[" * 100_000))], "not valid JSON"


@case("explain-weights-deeply-nested-json-subprocess", sub=True)
def _(env, tmp):
    return ["explain", "--weights", str(_weights(tmp, '{"W": ' + "[" * 100_000 + "]" * 100_000
                                                + "}"))], ("W1", "numbers", "matrix", "nest",
                                                          "not valid JSON")


@case("explain-weights-non-numeric-matrices")
def _(env, tmp):
    return ["explain", "--weights", str(_weights(tmp, '{"W": [[["a", "b"]]], "x": [1, 2]}'))], \
        "numbers"


@case("explain-weights-ragged-matrix")
def _(env, tmp):
    return ["explain", "--weights", str(_weights(tmp, '{"W": [[[1, 2], [3]]], "x": [1, 2]}'))], \
        ("numbers", "equal length")


@case("explain-weights-mismatched-shapes")
def _(env, tmp):
    text = json.dumps({"W": [[[1, 2], [3, 4]], [[1, 2, 3]]], "x": [1, 2]})
    return ["explain", "--weights", str(_weights(tmp, text))], "W2 has 3 columns"


@case("explain-weights-input-width-mismatch")
def _(env, tmp):
    text = json.dumps({"W": [[[1, 2], [3, 4]]]})
    return ["explain", "--weights", str(_weights(tmp, text)), "--input", "1,2,3"], "input"


@case("explain-weights-bias-mismatch")
def _(env, tmp):
    text = json.dumps({"W": [[[1, 2], [3, 4]]], "b": [[1, 2, 3]], "x": [1, 1]})
    return ["explain", "--weights", str(_weights(tmp, text))], "b1"


@case("explain-weights-a-json-list")
def _(env, tmp):
    return ["explain", "--weights", str(_weights(tmp, "[1, 2, 3]"))], "JSON object"


@case("explain-weights-unknown-key")
def _(env, tmp):
    return ["explain", "--weights", str(_weights(tmp, '{"W": [[[1]]], "__class__": 1}'))], \
        "unknown keys"


@case("explain-weights-huge-number")
def _(env, tmp):
    text = '{"W": [[[1e999, 1]]], "x": [1, 2]}'
    return ["explain", "--weights", str(_weights(tmp, text))], ("NaN or infinity", "finite")


@case("explain-weights-not-utf8")
def _(env, tmp):
    (tmp / "w.json").write_bytes(b'{"W": "\xff\xfe"}')
    return ["explain", "--weights", str(tmp / "w.json")], "not valid JSON"


@case("explain-weights-missing-file")
def _(env, tmp):
    return ["explain", "--weights", str(tmp / "nope.json")], "no such file"


@case("explain-weights-model-with-nan-weights")
def _(env, tmp):
    def poison(ts):
        name = sorted(k for k in ts if k.endswith("weight"))[-1]
        ts[name] = ts[name].copy()
        ts[name].flat[-1] = np.nan
    model = _model_with(env, tmp, tensors=poison)
    return ["explain", "--weights", str(model), "--input", "0.5,0.25"], ("nan", "finite")


@case("explain-weights-truncated-model")
def _(env, tmp):
    blob = (env.runs["moons"] / "model.safetensors").read_bytes()
    (tmp / "m.safetensors").write_bytes(blob[:50])
    return ["explain", "--weights", str(tmp / "m.safetensors")], DAMAGED


@case("explain-input-not-numbers")
def _(env, tmp):
    return ["explain", "--input", "1,two,3"], "--input"


@case("explain-unknown-activation")
def _(env, tmp):
    return ["explain", "--activation", "swishy"], "swishy"


@case("explain-target-class-out-of-range")
def _(env, tmp):
    text = json.dumps({"W": [[[1, 2], [3, 4]]], "x": [1, 1]})
    return ["explain", "--weights", str(_weights(tmp, text)), "--loss", "cross-entropy",
            "--target", "7"], "target"


# ---- train: options
def train(tmp: Path, *extra: str, dataset: str = "moons") -> list[str]:
    return ["train", "--dataset", dataset, "--epochs", "1", "--hidden", "4", "-q",
            "--out", str(tmp / "new_run"), *extra]


@case("train-into-non-empty-directory")
def _(env, tmp):
    return ["train", "--dataset", "moons", "--epochs", "1", "--hidden", "4", "-q",
            "--out", str(env.runs["moons"])], "not empty"


@case("train-into-non-empty-directory-subprocess", sub=True)
def _(env, tmp):
    return ["train", "--dataset", "moons", "--epochs", "1", "-q",
            "--out", str(env.runs["cat"])], "not empty"


@case("train-out-is-a-file")
def _(env, tmp):
    (tmp / "run.txt").write_text("hello\n")
    return ["train", "--dataset", "moons", "--epochs", "1", "-q", "--out", str(tmp / "run.txt")], \
        "not a directory"


@case("train-hidden-1e9-subprocess", sub=True, timeout=60)
def _(env, tmp):
    return train(tmp, "--hidden", "1000000000"), ("memory", "bytes")


@case("train-hidden-1e9-two-layers-subprocess", sub=True, timeout=60)
def _(env, tmp):
    return train(tmp, "--hidden", "1000000000,1000000000"), ("memory", "bytes")


@case("train-memory-budget-too-small")
def _(env, tmp):
    return train(tmp, "--memory-budget", "1KiB"), ("memory", "budget", "bytes", "1 KiB")


@case("train-memory-budget-garbage")
def _(env, tmp):
    return train(tmp, "--memory-budget", "lots"), "lots"


@case("train-hidden-not-numbers")
def _(env, tmp):
    return train(tmp, "--hidden", "8,x"), "--hidden"


@case("train-hidden-zero")
def _(env, tmp):
    return train(tmp, "--hidden", "8,0"), "--hidden"


@case("train-batch-size-0")
def _(env, tmp):
    return train(tmp, "--batch-size", "0"), "batch"


@case("train-batch-size-text")
def _(env, tmp):
    return train(tmp, "--batch-size", "many"), "--batch-size"


@case("train-epochs-0")
def _(env, tmp):
    return train(tmp, "--epochs", "0"), "epochs"


@case("train-lr-negative")
def _(env, tmp):
    return train(tmp, "--lr", "-1"), "lr"


@case("train-lr-nan")
def _(env, tmp):
    return train(tmp, "--lr", "nan"), "lr"


@case("train-lr-inf")
def _(env, tmp):
    return train(tmp, "--lr", "inf"), "lr"


@case("train-dropout-1.5")
def _(env, tmp):
    return train(tmp, "--dropout", "1.5"), "dropout"


@case("train-weight-decay-negative")
def _(env, tmp):
    return train(tmp, "--weight-decay", "-0.1"), "weight"


@case("train-val-size-plus-test-size-too-big")
def _(env, tmp):
    return train(tmp, "--val-size", "0.9", "--test-size", "0.2"), "val_size + test_size"


@case("train-test-size-zero")
def _(env, tmp):
    return train(tmp, "--test-size", "0"), "test_size"


@case("train-early-stopping-without-validation")
def _(env, tmp):
    return train(tmp, "--early-stopping", "3", "--val-size", "0"), "validation"


@case("train-noise-negative")
def _(env, tmp):
    return train(tmp, "--noise", "-1"), "noise"


@case("train-noise-on-a-file")
def _(env, tmp):
    return train(tmp, "--target", "label", "--noise", "0.1",
                 dataset=str(env.data / "people.csv")), "noise"


@case("train-seed-too-big")
def _(env, tmp):
    return train(tmp, "--seed", str(2**70)), "seed"


@case("train-unknown-optimizer")
def _(env, tmp):
    return train(tmp, "--optimizer", "adamax"), "adamax"


@case("train-unknown-loss")
def _(env, tmp):
    return train(tmp, "--loss", "hinge"), "hinge"


@case("train-unknown-activation")
def _(env, tmp):
    return train(tmp, "--activation", "swishy"), "swishy"


@case("train-unknown-impute")
def _(env, tmp):
    return train(tmp, "--impute", "mode"), "mode"


@case("train-unknown-dtype")
def _(env, tmp):
    return train(tmp, "--dtype", "float16"), "float16"


@case("train-unknown-task")
def _(env, tmp):
    return train(tmp, "--task", "clustering"), "clustering"


@case("train-bce-on-three-classes")
def _(env, tmp):
    return train(tmp, "--loss", "bce", dataset="iris"), "bce"


@case("train-regression-on-text-target")
def _(env, tmp):
    return train(tmp, "--target", "label", "--task", "regression",
                 dataset=str(env.data / "people.csv")), "regression"


@case("train-unknown-dataset")
def _(env, tmp):
    return train(tmp, dataset="moonz"), "moonz"


@case("train-target-on-builtin")
def _(env, tmp):
    return train(tmp, "--target", "label"), "built-in"


@case("train-csv-without-target-option")
def _(env, tmp):
    return train(tmp, dataset=str(env.data / "people.csv")), "--target"


@case("train-csv-unknown-target")
def _(env, tmp):
    return train(tmp, "--target", "colour", dataset=str(env.data / "people.csv")), "colour"


@case("train-csv-target-with-missing-cell")
def _(env, tmp):
    text = (env.data / "people.csv").read_text().splitlines()
    cells = text[5].split(",")
    text[5] = ",".join(cells[:-1] + [""])
    (tmp / "t.csv").write_text("\n".join(text) + "\n")
    return train(tmp, "--target", "label", dataset=str(tmp / "t.csv")), "target is missing"


@case("train-csv-single-class")
def _(env, tmp):
    rows = [f"{i * 0.1:.3f},{(i % 7) * 0.3:.3f},same" for i in range(40)]
    (tmp / "t.csv").write_text("a,b,label\n" + "\n".join(rows) + "\n")
    return train(tmp, "--target", "label", dataset=str(tmp / "t.csv")), "single class"


@case("train-csv-missing-feature-without-impute")
def _(env, tmp):
    return train(tmp, "--target", "label", dataset=str(env.data / "holes.csv")), \
        "missing value"


@case("train-csv-without-header")
def _(env, tmp):
    rows = [f"{i * 0.1:.3f},{(i % 7) * 0.3:.3f},{i % 2}" for i in range(40)]
    (tmp / "t.csv").write_text("\n".join(rows) + "\n")
    return train(tmp, "--target", "2", dataset=str(tmp / "t.csv")), "--no-header"


@case("train-npz-object-array")
def _(env, tmp):
    X = np.empty((4, 2), dtype=object)
    X[:] = 1.0
    np.savez(tmp / "t.npz", X=X, y=np.array([0, 1, 0, 1]))
    return train(tmp, dataset=str(tmp / "t.npz")), ("pickle", "object")


@case("train-npz-inf")
def _(env, tmp):
    X = np.random.default_rng(0).standard_normal((40, 2))
    X[3, 1] = -np.inf
    np.savez(tmp / "t.npz", X=X, y=np.arange(40) % 2)
    return train(tmp, dataset=str(tmp / "t.npz")), ("not a finite", "not finite")


@case("train-delimiter-two-characters")
def _(env, tmp):
    return train(tmp, "--target", "label", "--delimiter", "::",
                 dataset=str(env.data / "people.csv")), "delimiter"


# ---- train: config files
def _toml(tmp: Path, text: str) -> Path:
    (tmp / "cfg.toml").write_text(text)
    return tmp / "cfg.toml"


@case("train-toml-checkpoint-every-text")
def _(env, tmp):
    return train(tmp, "--config", str(_toml(tmp, 'checkpoint_every = "x"\n'))), \
        ("checkpoint-every", "checkpoint_every")


@case("train-toml-unknown-key")
def _(env, tmp):
    return train(tmp, "--config", str(_toml(tmp, "learning_rate = 0.1\n"))), "learning_rate"


@case("train-toml-not-toml")
def _(env, tmp):
    return train(tmp, "--config", str(_toml(tmp, "epochs = = 3\n"))), "not valid TOML"


@case("train-toml-hidden-wrong-type")
def _(env, tmp):
    return ["train", "--dataset", "moons", "--epochs", "1", "-q", "--out", str(tmp / "new_run"),
            "--config", str(_toml(tmp, 'hidden = [8, "x"]\n'))], "hidden"


@case("train-toml-val-size-text")
def _(env, tmp):
    return train(tmp, "--config", str(_toml(tmp, 'val_size = "0.1"\n'))), "val-size"


@case("train-toml-checkpoint-every-negative")
def _(env, tmp):
    return train(tmp, "--config", str(_toml(tmp, "checkpoint_every = -1\n"))), \
        "checkpoint_every"


@case("train-toml-epochs-bool")
def _(env, tmp):
    return train(tmp, "--config", str(_toml(tmp, "epochs = true\n"))), "epochs"


@case("train-toml-missing-file")
def _(env, tmp):
    return train(tmp, "--config", str(tmp / "nope.toml")), "nope.toml"


# ---- train: resuming
@case("train-resume-without-checkpoint")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    (run / "checkpoint.safetensors").unlink()
    return ["train", "--resume", str(run), "--epochs", "3", "-q"], "checkpoint"


@case("train-resume-not-a-run")
def _(env, tmp):
    (tmp / "run").mkdir()
    return ["train", "--resume", str(tmp / "run"), "-q"], "not a run directory"


@case("train-resume-with-changed-hidden")
def _(env, tmp):
    return ["train", "--resume", str(env.runs["moons"]), "--hidden", "16", "--epochs", "3",
            "-q"], "hidden"


@case("train-resume-with-overwrite")
def _(env, tmp):
    return ["train", "--resume", str(env.runs["moons"]), "--overwrite", "-q"], "--overwrite"


@case("train-resume-config-json-a-list")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    (run / "config.json").write_text("[1, 2, 3]\n")
    return ["train", "--resume", str(run), "--epochs", "3", "-q"], "not a JSON object"


@case("train-resume-config-json-garbage")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    (run / "config.json").write_bytes(b"\xff\xfe{{{")
    return ["train", "--resume", str(run), "--epochs", "3", "-q"], "not valid JSON"


@case("train-resume-config-json-wrong-types")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    cfg = json.loads((run / "config.json").read_text())
    cfg["hidden"] = "eight"
    (run / "config.json").write_text(json.dumps(cfg))
    return ["train", "--resume", str(run), "--epochs", "3", "-q"], "hidden"


def _edit_checkpoint_rng(run: Path, rng: object) -> None:
    path = run / "checkpoint.safetensors"
    ts, md = _st_read(path)
    state = json.loads(md["state"])
    for entry in state["__dict__"]:
        if entry[0] == "rng":
            entry[1] = rng
    md["state"] = json.dumps(state)
    _st_write(path, ts, md)


@case("train-resume-checkpoint-rng-garbage")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    _edit_checkpoint_rng(run, {"__dict__": [["bit_generator", "PCG64"],
                                            ["state", "garbage"]]})
    return ["train", "--resume", str(run), "--epochs", "3", "-q"], ("checkpoint", "state")


@case("train-resume-checkpoint-rng-out-of-range")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    _edit_checkpoint_rng(run, {"__dict__": [
        ["bit_generator", "PCG64"],
        ["state", {"__dict__": [["state", -1], ["inc", 2**200]]}],
        ["has_uint32", 0], ["uinteger", 0]]})
    return ["train", "--resume", str(run), "--epochs", "3", "-q"], ("checkpoint", "state")


@case("train-resume-checkpoint-state-not-json")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    ts, md = _st_read(run / "checkpoint.safetensors")
    md["state"] = "{oops"
    _st_write(run / "checkpoint.safetensors", ts, md)
    return ["train", "--resume", str(run), "--epochs", "3", "-q"], "checkpoint"


@case("train-resume-checkpoint-truncated")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    blob = (run / "checkpoint.safetensors").read_bytes()
    (run / "checkpoint.safetensors").write_bytes(blob[: len(blob) // 2])
    return ["train", "--resume", str(run), "--epochs", "3", "-q"], DAMAGED


@case("train-resume-checkpoint-epoch-wrong-type")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    ts, md = _st_read(run / "checkpoint.safetensors")
    state = json.loads(md["state"])
    for entry in state["__dict__"]:
        if entry[0] == "epoch":
            entry[1] = [1, 2]
    md["state"] = json.dumps(state)
    _st_write(run / "checkpoint.safetensors", ts, md)
    return ["train", "--resume", str(run), "--epochs", "3", "-q"], "checkpoint"


@case("train-resume-split-json-corrupt")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    (run / "split.json").write_text('{"format": "chainrule-split", "train": [1, 2')
    return ["train", "--resume", str(run), "--epochs", "3", "-q"], "split.json"


# ---- evaluate
@case("evaluate-part-nope")
def _(env, tmp):
    return ["evaluate", str(env.runs["moons"]), "--part", "nope"], "--part"


@case("evaluate-format-nope-subprocess", sub=True)
def _(env, tmp):
    return ["evaluate", str(env.runs["moons"]), "--format", "yaml"], "yaml"


@case("evaluate-csv-modified-after-training")
def _(env, tmp):
    data = shutil.copy2(env.data / "people.csv", tmp / "people.csv")
    ok("train", "--dataset", str(data), "--target", "label", "--epochs", "1", "--hidden", "4",
       "-q", "--out", str(tmp / "run"))
    with open(data, "a") as fh:          # one more row: the recorded SHA-256 no longer matches
        fh.write("10.0,0.5,red,yes\n")
    return ["evaluate", str(tmp / "run")], ("changed", "sha-256")


@case("evaluate-csv-edited-in-place-same-size")
def _(env, tmp):
    data = shutil.copy2(env.data / "people.csv", tmp / "people.csv")
    ok("train", "--dataset", str(data), "--target", "label", "--epochs", "1", "--hidden", "4",
       "-q", "--out", str(tmp / "run"))
    text = Path(data).read_text()
    Path(data).write_text(text.replace("yes", "YES", 1))   # same size, one label changed
    return ["evaluate", str(tmp / "run"), "--part", "train"], ("changed", "sha-256")


@case("evaluate-csv-gone")
def _(env, tmp):
    run = clone(env.runs["cat"], tmp / "run")
    split = json.loads((run / "split.json").read_text())
    split["source"]["path"] = str(tmp / "gone.csv")
    (run / "split.json").write_text(json.dumps(split))
    return ["evaluate", str(run)], "gone"


@case("evaluate-model-file-without-data")
def _(env, tmp):
    return ["evaluate", str(env.runs["moons"] / "model.safetensors")], "--data"


@case("evaluate-data-without-target")
def _(env, tmp):
    inp = _csv(tmp / "x.csv", "x0,x1", _moons_rows())
    return ["evaluate", str(env.runs["moons"]), "--data", str(inp)], "target"


@case("evaluate-data-with-unknown-label")
def _(env, tmp):
    (tmp / "x.csv").write_text("a,b,color,label\n10.0,0.5,red,maybe\n")
    return ["evaluate", str(env.runs["cat"]), "--data", str(tmp / "x.csv")], "maybe"


@case("evaluate-split-json-a-list")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    (run / "split.json").write_text("[]")
    return ["evaluate", str(run)], "split"


@case("evaluate-split-index-out-of-range")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    split = json.loads((run / "split.json").read_text())
    split["test"] = [0, 1, 10**9]
    (run / "split.json").write_text(json.dumps(split))
    return ["evaluate", str(run)], "split"


@case("evaluate-part-val-of-run-without-val")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    split = json.loads((run / "split.json").read_text())
    split["train"] += split["val"]
    split["val"] = []
    (run / "split.json").write_text(json.dumps(split))
    return ["evaluate", str(run), "--part", "val"], "val"


@case("evaluate-not-a-run")
def _(env, tmp):
    (tmp / "run").mkdir()
    return ["evaluate", str(tmp / "run")], "no model file"


# ---- plot, memory, top level
@case("plot-regions-of-a-three-feature-model")
def _(env, tmp):
    return ["plot", "regions", str(tmp / "r.png"), "--model", str(env.runs["cat"])], \
        "2 numeric inputs"


@case("plot-regions-data-with-nan")
def _(env, tmp):
    (tmp / "x.csv").write_text("x0,x1,target\n0.5,0.25,1\n1.0,,0\n")
    return ["plot", "regions", str(tmp / "r.png"), "--model", str(env.runs["moons"]),
            "--data", str(tmp / "x.csv")], "missing value"


@case("plot-regions-model-file-without-data")
def _(env, tmp):
    return ["plot", "regions", str(tmp / "r.png"), "--model",
            str(env.runs["moons"] / "model.safetensors")], "--data"


@case("plot-regions-unknown-suffix")
def _(env, tmp):
    return ["plot", "regions", str(tmp / "r.bmpx"), "--model", str(env.runs["moons"])], \
        ("png", "svg", ".bmpx")


@case("memory-hidden-1e9-subprocess", sub=True, timeout=60)
def _(env, tmp):
    # Tabulating a layer of 10^9 neurons must be refused (or done) at once, never allocated.
    return ["memory", "--hidden", "1000000000"], ("memory", "need")


@case("memory-hidden-1e9-layers-subprocess", sub=True, timeout=60)
def _(env, tmp):
    # Two layers of 10^9 neurons: 10^18 weights, far past any machine.
    return ["memory", "--hidden", "1000000000,1000000000", "--budget", "1GiB"], \
        ("memory", "budget", "fit", "bytes")


@case("memory-batch-sizes-zero")
def _(env, tmp):
    return ["memory", "--batch-sizes", "0,32"], "--batch-sizes"


@case("memory-unknown-dtype")
def _(env, tmp):
    return ["memory", "--dtype", "float8"], "float8"


@case("memory-unknown-optimizer")
def _(env, tmp):
    return ["memory", "--optimizer", "lion"], "lion"


@case("memory-budget-garbage")
def _(env, tmp):
    return ["memory", "--budget", "plenty"], "plenty"


@case("memory-plot-bad-suffix")
def _(env, tmp):
    return ["memory", "--plot", str(tmp / "m.pdf")], ".png or .svg"


@case("unknown-command-subprocess", sub=True)
def _(env, tmp):
    return ["trian"], "trian"


@case("train-lr-not-a-number-subprocess", sub=True)
def _(env, tmp):
    return train(tmp, "--lr", "fast"), "fast"


@case("train-unknown-option-subprocess", sub=True)
def _(env, tmp):
    return train(tmp, "--learning-rate", "0.1"), "--learning-rate"


@case("train-extra-argument-subprocess", sub=True)
def _(env, tmp):
    # a positional data set name where --dataset is expected (with click importable too)
    return ["train", "moons"], "moons"


@case("predict-without-input-subprocess", sub=True)
def _(env, tmp):
    return ["predict", str(env.runs["moons"])], "--input"


# ---- more of the same kind
@case("predict-npz-feature-names-mismatch")
def _(env, tmp):
    np.savez(tmp / "x.npz", X=_moons_rows(), feature_names=np.array(["x0", "y1"]))
    return predict(env, tmp / "x.npz"), "feature_names"


@case("evaluate-data-target-missing-cell")
def _(env, tmp):
    (tmp / "x.csv").write_text("x0,x1,target\n0.5,0.25,1\n1.0,0.5,\n")
    return ["evaluate", str(env.runs["moons"]), "--data", str(tmp / "x.csv")], \
        "target is missing"


@case("train-resume-with-changed-dataset")
def _(env, tmp):
    return ["train", "--resume", str(env.runs["moons"]), "--dataset", "circles", "--epochs",
            "3", "-q"], "dataset"


@case("train-resume-with-another-out")
def _(env, tmp):
    return ["train", "--resume", str(env.runs["moons"]), "--out", str(tmp / "elsewhere"),
            "-q"], "--out"


@case("train-overwrite-with-a-bad-option-keeps-the-old-run")
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    return ["train", "--dataset", "moons", "--out", str(run), "--overwrite", "--lr", "-1",
            "-q"], "lr"


@case("train-overwrite-that-diverges-keeps-the-old-run-subprocess", sub=True)
def _(env, tmp):
    run = clone(env.runs["moons"], tmp / "run")
    return ["train", "--dataset", "moons", "--out", str(run), "--overwrite", "--lr", "1e6",
            "--optimizer", "sgd", "--epochs", "3", "--hidden", "8", "-q"], \
        ("diverge", "non-finite", "learning rate")


@case("train-new-run-that-diverges-leaves-nothing-subprocess", sub=True)
def _(env, tmp):
    return ["train", "--dataset", "moons", "--out", str(tmp / "new_run"), "--lr", "1e6",
            "--optimizer", "sgd", "--epochs", "3", "--hidden", "8", "-q"], \
        ("diverge", "non-finite", "learning rate")


@case("plot-regions-model-does-not-exist")
def _(env, tmp):
    return ["plot", "regions", str(tmp / "r.png"), "--model", str(tmp / "nope")], \
        "no model file"


@case("explain-weights-model-architecture-huge-nesting")
def _(env, tmp):
    model = _model_with(env, tmp, meta={"architecture": "[" * 100_000 + "]" * 100_000})
    return ["explain", "--weights", str(model)], "architecture"


# --------------------------------------------------------------------------- the matrix
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_a_one_line_user_error_that_changes_nothing(name, env, tmp_path,
                                                                 monkeypatch):
    c = CASES[name]
    work = tmp_path / "case"
    work.mkdir()
    cache = tmp_path / "cache"          # crash reports go here, outside the watched folders
    args, needle = c.make(env, work)
    monkeypatch.chdir(work)
    before = snapshot(env.root, work)
    if c.subprocess:
        out = invoke_subprocess(args, cache, work, c.timeout)
    else:
        out = invoke(args, cache)
    after = snapshot(env.root, work)
    assert_user_error(out, needle, diff(before, after))


def test_the_matrix_is_big_enough():
    assert len(CASES) >= 45
    assert sum(c.subprocess for c in CASES.values()) >= 3


# --------------------------------------------------------------------------- positive controls
def _predictions(env: Env, path: Path, *extra: str, run: str = "moons") -> str:
    result = runner.invoke(app, ["predict", str(env.runs[run]), "--input", str(path), *extra])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_reordered_columns_predict_the_same_as_the_ordered_file(env, tmp_path):
    X = _moons_rows()
    ordered = _predictions(env, _csv(tmp_path / "a.csv", "x0,x1", X), "--proba")
    reordered = _predictions(env, _csv(tmp_path / "b.csv", "x1,x0", X[:, ::-1]), "--proba")
    assert ordered == reordered
    assert len(ordered.splitlines()) == len(X) + 1
    np.savez(tmp_path / "c.npz", X=X[:, ::-1], feature_names=np.array(["x1", "x0"]))
    assert _predictions(env, tmp_path / "c.npz", "--proba") == ordered


def test_reordered_columns_with_a_categorical_column(env, tmp_path):
    (tmp_path / "a.csv").write_text("a,b,color\n10.0,0.5,red\n11.0,-0.5,blue\n8,0,green\n")
    (tmp_path / "b.csv").write_text("color,a,b\nred,10.0,0.5\nblue,11.0,-0.5\ngreen,8,0\n")
    assert _predictions(env, tmp_path / "a.csv", run="cat") == \
        _predictions(env, tmp_path / "b.csv", run="cat")


def test_header_less_file_with_no_header_matches(env, tmp_path):
    X = _moons_rows()
    ordered = _predictions(env, _csv(tmp_path / "a.csv", "x0,x1", X))
    assert _predictions(env, _csv(tmp_path / "b.csv", None, X), "--no-header") == ordered


def test_impute_model_accepts_empty_cells(env, tmp_path):
    (tmp_path / "a.csv").write_text("a,b,color\n,0.5,red\n11.0,-0.5,\n")
    out = _predictions(env, tmp_path / "a.csv", run="imp")
    assert len(out.splitlines()) == 3


def test_predict_output_file_is_written_atomically(env, tmp_path):
    inp = _csv(tmp_path / "a.csv", "x0,x1", _moons_rows())
    result = runner.invoke(app, ["predict", str(env.runs["moons"]), "--input", str(inp),
                                 "--output", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "p.csv"]
    assert (tmp_path / "p.csv").read_text() == _predictions(env, inp)


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("chainrule ")


def test_a_bug_is_an_internal_error_with_a_saved_traceback(env, tmp_path, monkeypatch):
    """Not a user error: exit 1, one line ``internal error: ...``, the traceback in a file under
    $CHAINRULE_CACHE/crashes."""
    import chainrule.runs as runs_pkg

    def broken(*a, **k):
        raise ZeroDivisionError("planted bug")

    monkeypatch.setattr(runs_pkg, "load_run_model", broken)
    inp = _csv(tmp_path / "a.csv", "x0,x1", _moons_rows())
    cache = tmp_path / "cache"
    result = runner.invoke(app, ["predict", str(env.runs["moons"]), "--input", str(inp)],
                           env={"CHAINRULE_CACHE": str(cache)})
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error: ZeroDivisionError"), lines
    assert "Traceback" not in result.stderr
    reports = list((cache / "crashes").iterdir())
    assert len(reports) == 1 and "planted bug" in reports[0].read_text()
