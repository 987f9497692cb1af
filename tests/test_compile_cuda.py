"""cr.compile's GPU path (a CUDA graph per plan) on a stand-in for CuPy (tests/fake_cupy.py):
the captured step gives the eager step's numbers bit for bit (the arithmetic is NumPy's, so this
checks the plan's logic: the same operations in the same order, the step's scalars read from
device memory, no host read inside the captured body); what only a real GPU can show (CuPy's
kernels, cuBLAS) is ``benchmarks/compile_gpu.py``'s to check."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule.compile.api import CompileWarning

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_cupy  # noqa: E402

F = cr.nn.functional

OPTIMIZERS = {
    "sgd": lambda p: cr.optim.SGD(p, lr=0.05),
    "sgd-momentum-nesterov-wd": lambda p: cr.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True,
                                                       weight_decay=1e-3),
    "sgd-dampening-maximize": lambda p: cr.optim.SGD(p, lr=0.01, momentum=0.5, dampening=0.2,
                                                     maximize=True),
    "adam": lambda p: cr.optim.Adam(p, lr=1e-2),
    "adam-amsgrad-wd": lambda p: cr.optim.Adam(p, lr=1e-2, amsgrad=True, weight_decay=1e-2),
    "adamw": lambda p: cr.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
}


def _batches(cp, n=8, k=5, sizes=(6, 6, 6, 6, 6, 6)):
    rng = np.random.default_rng(0)
    return [(cr.Tensor(cp.asarray(rng.standard_normal((s, n)).astype(np.float32))),
             cr.Tensor(cp.asarray(rng.integers(0, k, s)))) for s in sizes]


def _train(cp, opt_fn, compiled, act="relu", dtype="float32", sched=False, clip=False,
           returns_output=False):
    cr.manual_seed(0)
    model = cr.nn.MLP([8, 7, 6, 5], activation=act, dtype=dtype).to(device="cuda")
    opt = opt_fn(model.parameters())
    scheduler = cr.optim.lr_scheduler.StepLR(opt, 2, 0.5) if sched else None

    def step(x, y):
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        if clip:
            cr.optim.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        return (loss, out) if returns_output else loss

    f = cr.compile(step, strict=True) if compiled else step
    losses = []
    for x, y in _batches(cp):
        r = f(cr.Tensor(x.data.astype(dtype)), y)
        losses.append(cp.asnumpy((r[0] if returns_output else r).data))
        if scheduler is not None:
            scheduler.step()
    return model, opt, losses, f


def _compare(a, b):
    (m1, _o1, l1, _), (m2, _o2, l2, _) = a, b
    for x, y in zip(l1, l2):
        assert np.array_equal(x, y)
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert np.array_equal(np.asarray(p.data.view(np.ndarray)),
                              np.asarray(q.data.view(np.ndarray)))


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_cuda_graph_step_matches_eager(opt):
    with fake_cupy.installed() as cp:
        eager = _train(cp, OPTIMIZERS[opt], False)
        comp = _train(cp, OPTIMIZERS[opt], True)
        _compare(eager, comp)
        plan = comp[3].plan
        assert plan.info.get("cuda_graph") and plan.graph is not None
        assert plan.graph.launches == len(comp[2]) - 1  # every replay: one launch
        plan.check()  # the device flags: nothing raised


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "leaky_relu", "identity"])
def test_cuda_graph_activations_float64_and_schedules(act):
    with fake_cupy.installed() as cp:
        eager = _train(cp, OPTIMIZERS["adamw"], False, act=act, dtype="float64", sched=True,
                       returns_output=True)
        comp = _train(cp, OPTIMIZERS["adamw"], True, act=act, dtype="float64", sched=True,
                      returns_output=True)
        _compare(eager, comp)
        assert comp[3].plan.graph is not None


def test_cuda_without_graph_replays_generically():
    """Clipping is not in the captured pattern: the plan replays every op eagerly, same bits."""
    with fake_cupy.installed() as cp:
        eager = _train(cp, OPTIMIZERS["sgd"], False, clip=True)
        comp = _train(cp, OPTIMIZERS["sgd"], True, clip=True)
        _compare(eager, comp)
        assert not comp[3].plan.info.get("cuda_graph")


def test_cuda_graph_label_flag_raises_at_check():
    with fake_cupy.installed() as cp:
        model, opt, _, f = _train(cp, OPTIMIZERS["sgd"], True)
        x, _ = _batches(cp)[0]
        bad = cr.Tensor(cp.asarray(np.array([0, 1, 7, 2, 3, 4])))
        f(x, bad)  # no error yet: the check is on the device
        with pytest.raises(cr.InvalidValueError, match="replay"):
            f.check()
        f.check()  # the flag was reset


def test_trainer_on_fake_gpu_compiles():
    from chainrule.train import Trainer

    with fake_cupy.installed() as cp:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((40, 8)).astype(np.float32)
        y = rng.integers(0, 5, 40)
        fits = []
        for compile_ in (False, True):
            cr.manual_seed(0)
            model = cr.nn.MLP([8, 7, 5]).to(device="cuda")
            opt = cr.optim.Adam(model.parameters(), lr=1e-2)
            batches = [(cr.Tensor(cp.asarray(X[i:i + 10])), cr.Tensor(cp.asarray(y[i:i + 10])))
                       for i in range(0, 40, 10)]
            with warnings.catch_warnings():
                warnings.simplefilter("error", CompileWarning)
                trainer = Trainer(model, F.cross_entropy, opt, progress="none",
                                  compile=compile_)
                trainer.fit(batches, epochs=2)
            fits.append(model)
        for p, q in zip(fits[0].parameters(), fits[1].parameters()):
            assert np.array_equal(p.data.view(np.ndarray), q.data.view(np.ndarray))


def test_the_gpu_check_script_runs(tmp_path, monkeypatch):
    """benchmarks/compile_gpu.py end to end on the stand-in (its numbers mean nothing here)."""
    import json

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))), "benchmarks"))
    import compile_gpu

    with fake_cupy.installed():  # (it puts itself in sys.modules, and takes itself out)
        monkeypatch.setattr(compile_gpu, "BATCHES", (64,))
        monkeypatch.setattr(compile_gpu, "SIZES", (20, 16, 8, 4))
        out = tmp_path / "gpu.json"
        assert compile_gpu.main(["--out", str(out), "--quick"]) == 0
    report = json.loads(out.read_text())
    assert all(r["identical_parameters"] and r["cuda_graph"] for r in report["identity"])
    assert report["speed"][0]["chainrule_compiled"]["cuda_graph"] is True
