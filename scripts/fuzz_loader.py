"""Fuzz chainrule's loaders: damage valid model and checkpoint files at random and check that every
damaged file either loads into something usable or is refused with a chainrule error.

    python scripts/fuzz_loader.py [N] [--workers 2] [--seed 0] [--out fuzz_counts.json]

N mutants (default 1,000,000) are spread evenly over three valid files made here:

``mlp``         ``chainrule.save(nn.MLP([3, 4, 2]))``
``pipeline``    ``Sequential(Impute, OneHot, Standardize, MLP)``: buffers, float64 and float32
``checkpoint``  ``Trainer.save_checkpoint`` after one epoch of a small MLP with Adam, a StepLR
                scheduler, early stopping and a shuffling DataLoader

Mutant i is made from a seed derived from (seed, i) by one to four edits: bytes replaced (often by
JSON punctuation or digits), inserted, deleted or copied from elsewhere, a digit of the header's
JSON changed, the file truncated, or the 8-byte header length rewritten; edits land in the header
more often than in the data, and an edit inside the header sometimes corrects the length field so
that the parser sees the damaged JSON rather than a wrong length.

Outcomes: ``loaded`` (a model: its output on a finite input is finite; a checkpoint: the same,
and one more epoch of ``fit`` runs or raises a chainrule error, counted separately);
``loaded, extreme values`` (the output is not finite, but the edit made a weight or a
``Standardize`` scale so large or small that no loader could be blamed); one count per
``ChainruleError`` subclass raised by the loader; and ``OTHER <type>`` for anything else, with
up to three examples (the mutant index, the message and a traceback) - a bug. Prints the counts
and writes them as JSON; exits 1 if any OTHER outcome occurred.

The test suite (tests/test_io_fuzz.py) imports this file and runs a few hundred mutants.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import multiprocessing
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

import chainrule as cr
from chainrule import nn
from chainrule.errors import ChainruleError

KINDS = ("mlp", "pipeline", "checkpoint")
_INTERESTING = b'0123456789-+.eE"{}[],: \x00\x01\x7f\x80\xff\\nult'
_EXTREME = 1e15


# ------------------------------------------------------------------------------ the valid files
def _pipeline() -> nn.Module:
    cr.manual_seed(1)
    impute = nn.Impute(3).set_fill([0.5, 1.0, -2.0])
    one_hot = nn.OneHot(3, columns=[1], categories=[3])
    scale = nn.Standardize(5).set_statistics([0.1, 0.3, 0.3, 0.4, -1.0], [1.5, 0.5, 0.5, 0.5, 2.0])
    return nn.Sequential(impute, one_hot, scale, nn.MLP([5, 4, 2], activation="relu",
                                                         dropout=0.1))


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 2)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def make_trainer(run_dir: str | Path | None = None) -> tuple[Any, Any]:
    """The trainer and loader that the base checkpoint comes from (and that mutants load into)."""
    from chainrule.data import DataLoader, TensorDataset
    from chainrule.train import Trainer

    cr.manual_seed(0)
    model = nn.MLP([2, 4, 2], dropout=0.1)
    opt = cr.optim.Adam(model.parameters(), lr=0.01)
    sched = cr.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)
    loader = DataLoader(TensorDataset(*_data()), batch_size=5, shuffle=True, seed=1)
    trainer = Trainer(model, nn.functional.cross_entropy, opt, scheduler=sched,
                      early_stopping=3, progress="none", run_dir=run_dir)
    return trainer, loader


def base_files(folder: str | Path) -> dict[str, bytes]:
    """The bytes of the three valid files (see the module docstring), made in ``folder``."""
    from chainrule.train import CHECKPOINT_NAME

    folder = Path(folder)
    cr.manual_seed(0)
    files = {"mlp": cr.save(nn.MLP([3, 4, 2]), folder / "mlp.safetensors").read_bytes(),
             "pipeline": cr.save(_pipeline(), folder / "pipeline.safetensors").read_bytes()}
    trainer, loader = make_trainer(folder / "run")
    trainer.fit(loader, epochs=1)
    assert (folder / "run" / CHECKPOINT_NAME).is_file()
    state = trainer.state()  # the same, with fixed durations: the same bytes in every run
    state["history"]["epochs"] = [{**e, "seconds": 0.01, "samples_per_second": 2000.0}
                                  for e in state["history"]["epochs"]]
    files["checkpoint"] = trainer.save_checkpoint(folder / "base.safetensors", state).read_bytes()
    return files


# ------------------------------------------------------------------------------------ mutants
def mutate(blob: bytes, rng: random.Random) -> bytes:
    """``blob`` after random damage: half the time byte edits (:func:`mutate_bytes`), half the
    time edits of the header's JSON values (:func:`mutate_json`), now and then followed by a
    byte edit."""
    if rng.random() < 0.5:
        return mutate_bytes(blob, rng)
    out = mutate_json(blob, rng)
    return mutate_bytes(out, rng, edits=1) if rng.random() < 0.1 else out


_VALUES: tuple[Any, ...] = (  # (copied when used: an edit may change a list or dict in place)
    0, 1, -1, 2, 3, 5, 7, 255, 2**31, 2**31 + 1, 2**32, 2**53 + 1, 2**63, 2**64, 2**127, 2**128,
    -2**63, 0.0, -0.0, 0.5, -0.5, 1.5, 0.999, 1e-308, 1e308, -1e308, True, False, None, "",
    "x", "relu", "tanh", "Linear", "MLP", "Sequential", "Standardize", "OneHot", "Impute",
    "float16", "float64", "int32", "F16", "F64", "I64", "BOOL", "BF16", "PCG64", "nan", "inf",
    "__array__", "__dict__", "__tuple__", "__float__", [], {}, [0], [1, 2], {"type": "Linear"},
    {"__float__": "nan"}, {"__array__": "state/model/0.weight"},
)


def mutate_json(blob: bytes, rng: random.Random) -> bytes:
    """One or two edits of a value in the header's JSON (a tensor entry, or the JSON inside the
    ``architecture`` or ``state`` metadata), written back with a correct length field: what a
    forger would do, and what byte edits rarely reach."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    for _ in range(rng.choice((1, 1, 2))):
        meta = header.get("__metadata__") if isinstance(header, dict) else None
        nested = [k for k in ("architecture", "state")
                  if isinstance(meta, dict) and isinstance(meta.get(k), str)
                  and meta[k][:1] in ("{", "[")]
        if nested and rng.random() < 0.7:
            key = rng.choice(nested)
            try:
                inner = json.loads(meta[key])
            except (ValueError, RecursionError):  # damaged by the edit before
                continue
            if key == "state" and rng.random() < 0.8:  # edit the state, not its encoding
                meta[key] = _dumps(_encode_state(_edit(_decode_state(inner), rng)))
            else:
                meta[key] = _dumps(_edit(inner, rng))
        else:
            header = _edit(header, rng)
    raw = _dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + blob[8 + n:]


class _Tuple(list):  # type: ignore[type-arg]
    """A tuple of a decoded checkpoint state, kept editable."""


def _decode_state(v: Any) -> Any:
    """A checkpoint's state JSON as the Python values it stands for (arrays stay references),
    for :func:`_edit` to change values rather than their encoding; undone by _encode_state.
    Anything that is not well formed is kept as it is."""
    if isinstance(v, list):
        return [_decode_state(x) for x in v]
    if isinstance(v, dict) and len(v) == 1:
        tag, body = next(iter(v.items()))
        if tag == "__dict__" and isinstance(body, list) and all(
                isinstance(p, list) and len(p) == 2 for p in body):
            try:
                return {(tuple(k) if isinstance(k, list) else k): _decode_state(x)
                        for k, x in body}
            except TypeError:
                return v
        if tag == "__tuple__" and isinstance(body, list):
            return _Tuple(_decode_state(x) for x in body)
    return v


def _encode_state(v: Any) -> Any:
    if isinstance(v, _Tuple):
        return {"__tuple__": [_encode_state(x) for x in v]}
    if isinstance(v, list):
        return [_encode_state(x) for x in v]
    if isinstance(v, dict) and not (len(v) == 1 and next(iter(v)) in (
            "__array__", "__float__")):
        return {"__dict__": [[list(k) if isinstance(k, tuple) else k, _encode_state(x)]
                             for k, x in v.items()]}
    return v


_DEEP = "@@deep@@"


def _dumps(value: Any) -> str:
    """``json.dumps``, with each string ``_DEEP + "<n>"`` replaced by ``n`` nested lists (which
    json.dumps itself could not write beyond Python's recursion limit)."""
    text = json.dumps(value)
    while f'"{_DEEP}' in text:
        start = text.index(f'"{_DEEP}')
        end = text.index('"', start + 1)
        depth = int(text[start + 1 + len(_DEEP):end])
        text = text[:start] + "[" * depth + "0" + "]" * depth + text[end + 1:]
    return text


def _edit(value: Any, rng: random.Random) -> Any:
    """``value`` (parsed JSON) with one node (often a leaf: a number, string, bool or null)
    replaced, tweaked, deleted, duplicated, renamed, wrapped or nested deeply."""
    slots: list[tuple[Any, Any]] = []
    stack = [value]
    while stack and len(slots) < 5000:
        v = stack.pop()
        items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
        for k, child in items:
            slots.append((v, k))
            stack.append(child)
    if not slots:
        return copy.deepcopy(rng.choice(_VALUES))
    leaves = [(p, k) for p, k in slots if not isinstance(p[k], (dict, list))]
    parent, key = rng.choice(leaves if leaves and rng.random() < 0.6 else slots)
    old = parent[key]
    op = rng.random()
    if op < 0.35:
        parent[key] = copy.deepcopy(rng.choice(_VALUES))
    elif op < 0.55 and isinstance(old, (int, float)) and not isinstance(old, bool):
        parent[key] = rng.choice((old + 1, old - 1, -old, old * 2, old // 2 if isinstance(
            old, int) else old / 2, old * 10**rng.randint(1, 40)))
    elif op < 0.65:
        del parent[key]
    elif op < 0.72 and isinstance(parent, list):
        parent.insert(key, old)
    elif op < 0.80 and isinstance(parent, dict):
        new_key = rng.choice((key + "x", key[:-1], key.upper(), "extra", "__metadata__", "type",
                              "config", "children") if isinstance(key, str) else
                             (key + 1, -1, str(key), (key,)))
        parent[new_key] = parent.pop(key)
    elif op < 0.90:
        parent[key] = [old] if rng.random() < 0.5 else {"type": "Sequential", "children": [old]}
    elif op < 0.95:  # nested deeply: see _dumps
        parent[key] = f"{_DEEP}{rng.choice((40, 70, 200, 5000, 100_000))}"
    else:
        parent[key] = copy.deepcopy(rng.choice(_VALUES))
    return value


def mutate_bytes(blob: bytes, rng: random.Random, edits: int = 0) -> bytes:
    """``blob`` after ``edits`` (default: one to four) random byte edits (see the module
    docstring)."""
    data = bytearray(blob)
    header_end = 8 + int.from_bytes(blob[:8], "little")
    for _ in range(edits or rng.choice((1, 1, 1, 2, 2, 3, 4))):
        n = len(data)
        if n == 0:
            break
        in_header = rng.random() < 0.75 and header_end > 8
        pos = rng.randrange(8, min(header_end, n)) if in_header and min(header_end, n) > 8 \
            else rng.randrange(n)
        op = rng.random()
        before = len(data)
        if op < 0.30:    # replace a byte
            data[pos] = rng.choice(_INTERESTING) if rng.random() < 0.6 else rng.randrange(256)
        elif op < 0.45:  # change a digit of a number
            digits = [i for i in range(max(8, pos - 64), min(header_end, n, pos + 64))
                      if 48 <= data[i] <= 57]
            if digits:
                data[rng.choice(digits)] = rng.randrange(48, 58)
        elif op < 0.60:  # insert
            data[pos:pos] = bytes(rng.choice(_INTERESTING) for _ in range(rng.randint(1, 8)))
        elif op < 0.75:  # delete
            del data[pos:pos + rng.randint(1, 8)]
        elif op < 0.83:  # copy a chunk from elsewhere over this place
            src = rng.randrange(n)
            chunk = data[src:src + rng.randint(1, 16)]
            data[pos:pos + len(chunk)] = chunk
        elif op < 0.91:  # truncate
            del data[rng.randrange(n):]
        else:            # rewrite the header length
            length = int.from_bytes(bytes(data[:8]).ljust(8, b"\0"), "little")
            choice = rng.random()
            length = (rng.randrange(2**64) if choice < 0.3 else
                      max(0, length + rng.randint(-16, 16)) if choice < 0.8 else
                      rng.choice((0, 1, 2**31, 2**63, 2**64 - 1)))
            data[:8] = (length % 2**64).to_bytes(8, "little")
        grown = len(data) - before
        if grown and in_header and pos < header_end and len(data) >= 8 and rng.random() < 0.5:
            header_end += grown  # keep the length field right, so the JSON parser sees the edit
            data[:8] = max(0, header_end - 8).to_bytes(8, "little")
    return bytes(data)


# ----------------------------------------------------------------------------------- attempts
def _input_for(model: Any) -> Any:
    from chainrule.nn.preprocessing import input_dtype

    width = next(getattr(m, a) for m in model.modules() for a in ("num_features", "in_features")
                 if hasattr(m, a))
    x = np.random.default_rng(7).standard_normal((6, width))
    for m in model.modules():
        if isinstance(m, nn.OneHot) and m.num_features == width:
            x[:, m.columns] = 0.0
    return cr.tensor(x.astype(input_dtype(model)))


def _extreme(model: Any) -> bool:
    """Values so large (or Standardize scales so small) that a finite input may give a
    non-finite output with nothing wrong in the loader."""
    for name, t in model.state_dict().items():
        a = np.abs(cr.to_numpy(t.data).astype(np.float64))
        if a.size and (a.max() > _EXTREME or (name.endswith("scale") and a.min() < 1 / _EXTREME)):
            return True
    return False


def _usable(model: Any) -> str:
    model.eval()
    with cr.no_grad():
        out = cr.to_numpy(model(_input_for(model)).data)
    if np.isfinite(out).all():
        return "loaded"
    if _extreme(model):
        return "loaded, extreme values"
    raise AssertionError(f"a loaded model gives a non-finite output {out.tolist()}")


def attempt(kind: str, blob: bytes, folder: str | Path) -> str:
    """Load ``blob`` as a file of ``kind``; the outcome's name (see the module docstring).
    Anything but a chainrule error propagates (as it would to a user)."""
    path = Path(folder) / f"mutant-{kind}.safetensors"
    path.write_bytes(blob)
    if kind != "checkpoint":
        try:
            model = cr.load(path)
        except ChainruleError as exc:
            return type(exc).__name__
        return _usable(model)
    trainer, loader = make_trainer()
    try:
        trainer.load_checkpoint(path, loader)
    except ChainruleError as exc:
        return type(exc).__name__
    outcome = _usable(trainer.model)
    trainer.model.train()
    try:
        trainer.fit(loader, epochs=trainer.epoch + 1)
    except ChainruleError as exc:
        return f"{outcome}; fit: {type(exc).__name__}"
    return outcome


def mutant(base: dict[str, bytes], seed: int, i: int) -> tuple[str, bytes]:
    """Mutant ``i`` of the run with ``seed``: its kind and bytes (reproducible)."""
    kind = KINDS[i % len(KINDS)]
    return kind, mutate(base[kind], random.Random(seed * 2**40 + i))


# ------------------------------------------------------------------------------------ the run
_STATE: dict[str, Any] = {}


def _init(base: dict[str, bytes], seed: int) -> None:
    _STATE.update(base=base, seed=seed, folder=tempfile.mkdtemp(prefix="chainrule-fuzz-"))


def _work(bounds: tuple[int, int]) -> tuple[collections.Counter[str], list[dict[str, Any]]]:
    counts: collections.Counter[str] = collections.Counter()
    examples: list[dict[str, Any]] = []
    for i in range(*bounds):
        kind, blob = mutant(_STATE["base"], _STATE["seed"], i)
        try:
            outcome = attempt(kind, blob, _STATE["folder"])
        except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
            outcome = f"OTHER {type(exc).__name__}"
            if sum(e["outcome"] == outcome for e in examples) < 3:
                examples.append({"outcome": outcome, "kind": kind, "index": i,
                                 "message": str(exc)[:500],
                                 "traceback": traceback.format_exc()[-3000:]})
        counts[f"{kind}: {outcome}"] += 1
    return counts, examples


def run(n: int, workers: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        base = base_files(folder)
    chunk = max(1, min(2000, n // (workers * 20) or 1))
    pieces = [(a, min(a + chunk, n)) for a in range(0, n, chunk)]
    counts: collections.Counter[str] = collections.Counter()
    examples: list[dict[str, Any]] = []
    start = time.perf_counter()
    done = 0
    ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    with ctx.Pool(workers, initializer=_init, initargs=(base, seed)) as pool:
        for c, e in pool.imap_unordered(_work, pieces):
            counts.update(c)
            examples.extend(e[:max(0, 20 - len(examples))])
            done += sum(c.values())
            if done * 20 // n != (done - sum(c.values())) * 20 // n:
                rate = done / (time.perf_counter() - start)
                print(f"  {done}/{n} mutants, {rate:.0f}/s", flush=True)
    seconds = time.perf_counter() - start
    return {"mutants": n, "seed": seed, "workers": workers, "seconds": round(seconds, 1),
            "rate_per_second": round(n / seconds, 1), "chainrule_version": cr.__version__,
            "counts": dict(sorted(counts.items())), "other": sum(
                v for k, v in counts.items() if ": OTHER " in k), "examples": examples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="fuzz_counts.json")
    args = parser.parse_args(argv)
    result = run(args.n, args.workers, args.seed)
    width = max(map(len, result["counts"]), default=0)
    for key, value in result["counts"].items():
        print(f"{key:<{width}}  {value:>9}")
    print(f"{result['mutants']} mutants in {result['seconds']} s ({result['rate_per_second']}/s); "
          f"other exceptions: {result['other']}")
    for e in result["examples"]:
        print(f"\n{e['outcome']} ({e['kind']} mutant {e['index']}): {e['message']}\n"
              f"{e['traceback']}")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["other"] else 0


if __name__ == "__main__":
    sys.exit(main())
