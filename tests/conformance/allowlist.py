"""Every difference between chainrule and PyTorch that the conformance suite accepts, each listed
once with its reason. Anything else a sample shows (a value, shape, dtype or gradient that differs,
an error chainrule raises, any raw Python or NumPy exception) fails the suite.

Three kinds:

* ``translate``: a convention where chainrule deliberately differs (mostly NumPy's, which it
  chose); the mapping rewrites the sample's arguments into chainrule's spelling of the same
  computation, and values, shapes, dtypes and gradients are still compared.
* ``refuse``: chainrule refuses the sample on purpose, with a clear error; the suite checks that it
  raises a ``ChainruleError`` (a raw exception still fails), and skips the comparison.
* ``unsupported``: an argument chainrule does not offer; the sample is skipped.

An entry no sample uses fails the suite too (``test_every_allowlist_entry_is_used``), so the list
cannot outlive the differences it names.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("translate", "refuse", "unsupported")


@dataclass(frozen=True)
class Difference:
    kind: str
    ops: tuple[str, ...]  # the OpInfo entries (name or name.variant) it applies to
    reason: str


ALLOWLIST: dict[str, Difference] = {
    # --- conventions chainrule chose (NumPy's), translated: values and gradients still compared
    "default-correction": Difference(
        "translate", ("var", "std"),
        "var/std default to ddof=0, NumPy's convention (the lecture's population variance); "
        "PyTorch's default correction is 1. The mapping passes correction=1 where the sample "
        "gives neither correction nor unbiased."),
    "correction-none": Difference(
        "translate", ("var", "std"),
        "correction=None means 'the default' in PyTorch, which is 1 there and 0 in chainrule, so "
        "chainrule refuses the ambiguous None (InvalidValueError naming both); the mapping "
        "passes PyTorch's meaning, correction=1."),
    "positional-unbiased": Difference(
        "translate", ("var.unbiased", "std.unbiased"),
        "chainrule's first positional argument of var/std is the axis (NumPy's order), so "
        "PyTorch's var(x, True) is spelled var(x, unbiased=True); a bool is refused as an axis, "
        "never read as axis 1."),
    "positional-dim-of-max": Difference(
        "translate", ("max.reduction_with_dim", "min.reduction_with_dim"),
        "PyTorch's max(x, 1) returns (values, indices); chainrule's positional argument is "
        "NumPy's axis, which returns the maxima as one tensor (as np.max and torch.amax), and "
        "(values, indices) is spelled max(x, dim=1). The mapping passes dim= (and keepdim=)."),
    # --- refused on purpose, with a clear error (checked)
    "squeeze-non-unit": Difference(
        "refuse", ("squeeze", "squeeze.multiple"),
        "squeezing an axis whose length is not 1 is a ShapeError, as in NumPy; PyTorch silently "
        "leaves such an axis in place, which hides a wrong axis number."),
    "cat-legacy-empty": Difference(
        "refuse", ("cat",),
        "PyTorch's cat skips 1-D tensors of shape (0,) next to tensors of any rank (a legacy "
        "rule it keeps for old code); chainrule requires every tensor to have the same number "
        "of dimensions (ShapeError)."),
}

for _tag, _d in ALLOWLIST.items():
    assert _d.kind in KINDS, (_tag, _d.kind)
