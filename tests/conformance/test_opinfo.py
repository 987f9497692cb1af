"""Engine conformance: every OpInfo sample of every operator chainrule offers, run through both
PyTorch and chainrule in float64.

PyTorch keeps, for each operator, sample inputs chosen to break implementations
(``torch.testing._internal.common_methods_invocations.op_db``): empty and 0-d tensors, negative
and repeated dims, non-contiguous inputs, broadcasting scalars, fractional arguments. For each
sample of each entry that ``mapping.MAPPINGS`` maps, this checks

* that chainrule returns what PyTorch returns: the same structure (a tensor or a tuple of them),
  shapes and dtypes, and values to rtol 1e-7, atol 1e-9 (NaN where PyTorch has NaN);
* gradients: for L = sum_k sum(out_k * R_k), with R_k fixed random arrays over the floating
  outputs, dL/dx for every floating input that requires grad, against ``torch.autograd.grad``
  (to the same tolerances);
* that chainrule raises nothing, unless ``allowlist.py`` names the sample's difference; a raw
  Python or NumPy exception is never allowed.

The counts per operator are printed at the end of the run (``conftest.py``). Without
``torch==2.13.0`` and ``expecttest`` (``pip install -e ".[conformance]"``) the module is one
skipped test whose reason says so, and the summary says that the suite did not run.
"""

from __future__ import annotations

import traceback
import zlib
from typing import Any

import numpy as np
import pytest

import chainrule as cr

from . import report
from .allowlist import ALLOWLIST

TORCH_VERSION = "2.13.0"
RTOL, ATOL = 1e-7, 1e-9


def _not_run(reason: str) -> None:
    report.STATE["not_run"] = reason
    pytest.skip(f"conformance suite did not run: {reason}", allow_module_level=True)


try:
    import expecttest  # noqa: F401 - torch.testing._internal needs it
    import torch
except ImportError as exc:
    _not_run(f"{exc.name} is not installed (pip install -e \".[conformance]\")")
if torch.__version__.split("+")[0] != TORCH_VERSION:
    _not_run(f"it needs torch=={TORCH_VERSION}, whose OpInfo samples the allowlist describes; "
             f"this is torch {torch.__version__}")

from torch.testing._internal.common_methods_invocations import op_db  # noqa: E402

from .mapping import MAPPINGS, Call, NotListed, Unsupported  # noqa: E402

torch.set_num_threads(1)  # small samples: threads only add overhead


def _key(info: Any) -> str:
    return info.name + (f".{info.variant_test_name}" if info.variant_test_name else "")


def _entries() -> dict[str, Any]:
    found = {}
    for info in op_db:
        key = _key(info)
        if key in MAPPINGS and info.supports_dtype(torch.float64, "cpu"):
            found[key] = info
    return found


ENTRIES = _entries()


def _samples() -> list[Any]:
    params = []
    for key, info in sorted(ENTRIES.items()):
        torch.manual_seed(zlib.crc32(key.encode()))  # the same samples on every run
        for i, s in enumerate(info.sample_inputs("cpu", torch.float64, requires_grad=True)):
            params.append(pytest.param(key, info, s, id=f"{key}-{i}"))
    return params


SAMPLES = _samples()
report.STATE["collected"] = len(SAMPLES)


# --------------------------------------------------------------------------- conversion
class Converter:
    """PyTorch arguments as chainrule's: each tensor once (a tensor used twice stays one tensor),
    keeping its strides (non-contiguous samples stay non-contiguous); dtypes as names."""

    def __init__(self) -> None:
        self.memo: dict[int, cr.Tensor] = {}
        self.leaves: list[tuple[Any, cr.Tensor]] = []  # (torch tensor, chainrule tensor)

    def __call__(self, v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            if id(v) not in self.memo:
                a = v.detach().numpy()  # a view of PyTorch's memory, with its strides
                floating = a.dtype.kind == "f"
                t = cr.Tensor(a, requires_grad=bool(v.requires_grad and floating))
                self.memo[id(v)] = t
                if v.requires_grad and floating:
                    self.leaves.append((v, t))
            return self.memo[id(v)]
        if isinstance(v, torch.dtype):
            return str(v).removeprefix("torch.")
        if isinstance(v, list):
            return [self(e) for e in v]
        if isinstance(v, tuple):
            return tuple(self(e) for e in v)
        if isinstance(v, dict):
            return {k: self(e) for k, e in v.items()}
        return v


def _outputs(out: Any) -> list[Any] | None:
    """The tensors of an output (a tensor, or a tuple of tensors), or None for anything else."""
    if isinstance(out, (torch.Tensor, cr.Tensor)):
        return [out]
    if isinstance(out, tuple) and all(isinstance(o, (torch.Tensor, cr.Tensor)) for o in out):
        return list(out)
    return None


_NP_DTYPE = {torch.float64: np.float64, torch.float32: np.float32, torch.int64: np.int64,
             torch.int32: np.int32, torch.bool: np.bool_}


class Mismatch(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def _compare(what: str, got: np.ndarray, want: np.ndarray) -> None:
    if got.shape != want.shape:
        raise Mismatch("shape", f"{what}: shape {got.shape}, PyTorch {want.shape}")
    if got.dtype != want.dtype:
        raise Mismatch("dtype", f"{what}: dtype {got.dtype}, PyTorch {want.dtype}")
    if want.dtype.kind == "f":
        ok = np.isclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True)
    else:
        ok = got == want
    if not ok.all():
        i = tuple(int(k) for k in np.argwhere(~ok)[0])
        raise Mismatch("values" if what.startswith("output") else "gradient",
                       f"{what}: {int((~ok).sum())} of {ok.size} elements differ; at {i}: "
                       f"{got[i].item()!r}, PyTorch {want[i].item()!r}")


# --------------------------------------------------------------------------- one sample
def _torch_side(info: Any, sample: Any, leaves: list[Any], rng: np.random.Generator):
    """PyTorch's outputs (as arrays), the seeds R_k and the gradients (None where PyTorch has no
    gradient for a leaf, zeros where it is unused)."""
    out = info(sample.input, *sample.args, **sample.kwargs)
    outs = _outputs(out)
    assert outs is not None, f"PyTorch returned {type(out).__name__}"
    seeds, terms = [], []
    for o in outs:
        if o.dtype.is_floating_point and o.requires_grad:
            r = rng.standard_normal(tuple(o.shape))
            seeds.append(r)
            terms.append((o * torch.from_numpy(r)).sum())
        else:
            seeds.append(None)
    grads: list[Any] = [None] * len(leaves)
    if terms and leaves:
        loss = sum(terms)
        for k, leaf in enumerate(leaves):
            try:
                (g,) = torch.autograd.grad(loss, [leaf], retain_graph=True, allow_unused=True)
            except RuntimeError:  # PyTorch has no derivative for this argument
                continue
            grads[k] = np.zeros(tuple(leaf.shape)) if g is None else g.numpy().copy()
    return isinstance(out, tuple), [o.detach().numpy().copy() for o in outs], seeds, grads


def run_sample(key: str, info: Any, sample: Any) -> tuple[str, str, bool, int]:
    """(outcome, detail, translated, gradients compared) for one sample; see ``report.py`` for
    the outcomes."""
    conv = Converter()
    x, args, kwargs = conv(sample.input), conv(sample.args), conv(sample.kwargs)
    rng = np.random.default_rng(zlib.crc32(repr(sample).encode()))
    is_tuple, want, seeds, want_grads = _torch_side(info, sample, [t for t, _ in conv.leaves],
                                                    rng)
    call = Call(key)
    grads = sum(g is not None for g in want_grads)
    try:
        return (*_chainrule_side(key, call, x, args, kwargs, is_tuple, want, seeds,
                                 conv.leaves, want_grads), grads)
    except Unsupported as u:
        return "allowed", f"allowlist {u.tag!r}: {ALLOWLIST[u.tag].reason}", False, 0
    except NotListed as exc:
        return "unlisted", str(exc), False, 0
    except cr.ChainruleError as exc:
        if call.refusal is not None:
            return "allowed", f"allowlist {call.refusal!r} (checked: {type(exc).__name__}): " \
                              f"{ALLOWLIST[call.refusal].reason}", False, 0
        return "refused", f"{type(exc).__name__}: {exc}", bool(call.translated), 0
    except Exception as exc:  # noqa: BLE001 - any raw exception is a failure, reported whole
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        return "raw", "".join(tb[-3:]).strip(), bool(call.translated), 0


def _chainrule_side(key: str, call: Call, x: Any, args: Any, kwargs: Any, is_tuple: bool,
                    want: list[Any], seeds: list[Any], leaves: list[Any],
                    want_grads: list[Any]) -> tuple[str, str, bool]:
    """Runs the mapping and compares; chainrule's exceptions propagate to ``run_sample``."""
    out = MAPPINGS[key](call, x, *args, **kwargs)
    if call.refusal is not None:
        return "unlisted", f"allowlist {call.refusal!r} says chainrule refuses this sample, " \
                           "but it ran: compare it instead (remove the entry)", False
    translated = bool(call.translated)
    got = _outputs(out)
    if got is None or isinstance(out, tuple) != is_tuple or len(got) != len(want):
        return "structure", f"chainrule returned {type(out).__name__}" + \
            (f" of {len(got)}" if got else "") + f", PyTorch {len(want)} tensor(s)", translated
    try:
        for k, (g, w) in enumerate(zip(got, want)):
            _compare(f"output {k}", g.numpy(), w)
        _check_gradients(got, seeds, leaves, want_grads)
    except Mismatch as m:
        return m.kind, str(m), translated
    return "match", "", translated


def _check_gradients(got: list[cr.Tensor], seeds: list[Any], leaves: list[Any],
                     want_grads: list[Any]) -> None:
    loss = None
    for o, r in zip(got, seeds):
        if r is not None and o.requires_grad:
            term = (o * cr.Tensor(r)).sum()
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()
    for k, ((tt, ct), want) in enumerate(zip(leaves, want_grads)):
        if want is None:
            continue
        g = ct.grad if ct.grad is not None else np.zeros(ct.shape)
        _compare(f"gradient of input {k} (shape {tuple(tt.shape)})", np.asarray(g), want)


# --------------------------------------------------------------------------- the tests
# A negative base to a fractional power is NaN in both libraries (and compared as such); NumPy
# also warns about it, PyTorch does not.
@pytest.mark.filterwarnings("ignore:invalid value encountered in power:RuntimeWarning")
@pytest.mark.parametrize("key,info,sample", SAMPLES)
def test_sample(key: str, info: Any, sample: Any) -> None:
    outcome, detail, translated, grads = run_sample(key, info, sample)
    report.record(key, outcome, translated, grads if outcome == "match" else 0)
    if outcome == "allowed":
        pytest.skip(detail)
    assert outcome == "match", f"{key}: {outcome}: {detail}"


def test_every_mapping_has_samples() -> None:
    """A mapped name PyTorch does not have (a typo, a renamed entry) would silently test
    nothing."""
    missing = sorted(set(MAPPINGS) - set(ENTRIES))
    assert not missing, f"mapped operators without OpInfo float64 samples: {missing}"


def test_every_allowlist_entry_is_used() -> None:
    """Runs after the samples (pytest keeps the file's order): an entry no sample needed is stale.
    """
    if report.STATE["ran"] < report.STATE["collected"]:
        pytest.skip("only part of the conformance samples ran")
    stale = sorted(set(ALLOWLIST) - report.USED)
    assert not stale, f"allowlist entries no sample needs any more: {stale}"


def test_suite_covers_enough_samples() -> None:
    assert len(SAMPLES) >= 700, len(SAMPLES)
