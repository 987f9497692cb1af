"""DataLoader: mini-batches of a dataset, optionally shuffled with a seeded, checkpointable order.

For a :class:`~chainrule.data.TensorDataset` no sample is copied more than once per epoch and the
data set is never copied whole: without shuffling a batch is a contiguous slice (a view that shares
memory with the dataset's arrays); with shuffling the loader draws one permutation of the indices
per epoch (``N`` int64s) and gathers each batch with a single fancy index, ``X[idx]``.
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import random as _random
from ..backend import move_to
from ..errors import InvalidValueError
from ..tensor import Tensor
from .dataset import Dataset, TensorDataset, convert_field, feature_dtype


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise InvalidValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise InvalidValueError(f"{name} must be a positive integer, got {value!r}") from None
    if v < 1:
        raise InvalidValueError(f"{name} must be a positive integer, got {v}")
    return v


class DataLoader:
    """Iterate over a dataset in mini-batches of tensors.

    Each batch is a tuple with one :class:`~chainrule.Tensor` per dataset field: floating fields in
    the dataset's dtype (float32 by default), integer fields (class labels) as int64.

    Args:
        dataset: a :class:`TensorDataset` (fast path: slices and gathers) or any :class:`Dataset`
            (items are fetched one by one and stacked).
        batch_size: samples per batch.
        shuffle: draw a new random order every epoch.
        drop_last: drop the final batch when it has fewer than ``batch_size`` samples.
        generator: the :class:`chainrule.Generator` that orders the samples. It is advanced once
            per shuffled epoch; :meth:`load_state_dict` sets its state.
        seed: shorthand for ``generator=chainrule.Generator(seed)``. With neither, the loader owns
            a private generator seeded from the default generator, so ``chainrule.manual_seed``
            makes it reproducible.
        device: move each batch to this device (``"cpu"``, ``"cuda"``); the dataset stays put.
        shard: ``(rank, world_size)`` for data-parallel training: every rank iterates the same
            global batches (same seed) and yields only its contiguous share of each (sizes
            differ by at most one; possibly empty), so it touches only its own rows.

    ``len(loader)`` is the number of batches per epoch: ``ceil(N / batch_size)``, or
    ``N // batch_size`` with ``drop_last``.

    Resuming: ``state = loader.state_dict()`` (a JSON-serialisable dict) records the epoch, the
    number of batches already handed out in the current epoch and the generator state at the
    start of that epoch. A new loader over the same dataset, after ``load_state_dict(state)``,
    yields exactly the batches the original would have yielded next. Run one iterator at a time.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 32, shuffle: bool = False,
                 drop_last: bool = False, generator: _random.Generator | None = None,
                 seed: int | None = None, device: str | None = None,
                 shard: tuple[int, int] | None = None) -> None:
        if not isinstance(dataset, Dataset) and not (
            hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")
        ):
            raise InvalidValueError(
                f"DataLoader needs a Dataset (with __len__ and __getitem__), got "
                f"{type(dataset).__name__}"
            )
        if generator is not None and seed is not None:
            raise InvalidValueError("give DataLoader either generator= or seed=, not both")
        self.dataset = dataset
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = device
        self.shard = _shard(shard)
        if generator is not None:
            self.generator = _random.resolve(generator)
        elif seed is not None:
            self.generator = _random.Generator(seed)
        else:
            self.generator = _random.Generator(
                int(_random.default_generator.integers(0, 2**63 - 1, ()))
            )
        self._dtype = feature_dtype(getattr(dataset, "dtype", None))
        self.epoch = 0
        self._batch_index = 0          # batches handed out in the current epoch
        self._in_epoch = False
        self._epoch_start_state: dict[str, Any] | None = None
        self._resume_at = 0

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        n = len(self.dataset)
        n_batches = len(self)
        start_batch, self._resume_at = self._resume_at, 0
        self._epoch_start_state = copy.deepcopy(self.generator.get_state())
        order = self.generator.permutation(n) if self.shuffle else None
        self._in_epoch = True
        self._batch_index = start_batch
        for b in range(start_batch, n_batches):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, n)
            if self.shard is not None:   # this rank's contiguous share of the global batch
                r, w = self.shard
                lo, hi = lo + (hi - lo) * r // w, lo + (hi - lo) * (r + 1) // w
            index = slice(lo, hi) if order is None else order[lo:hi]
            batch = self._fetch(index)
            self._batch_index = b + 1
            yield batch
        self.epoch += 1
        self._batch_index = 0
        self._in_epoch = False

    def _fetch(self, index: slice | np.ndarray) -> tuple[Tensor, ...]:
        if isinstance(self.dataset, TensorDataset):
            # A slice is a view; an index array gathers exactly this batch (one allocation).
            arrays = [a[index] for a in self.dataset.arrays]
        elif hasattr(self.dataset, "__getitems__"):   # a dataset that fetches whole batches
            arrays = list(self.dataset.__getitems__(index))
        else:
            idx = range(index.start, index.stop) if isinstance(index, slice) else index.tolist()
            items = [self.dataset[i] for i in idx]
            arrays = _collate(items, self._dtype)
        if self.device is not None:
            arrays = [move_to(a, self.device) for a in arrays]
        return tuple(Tensor._from_op(a, None) for a in arrays)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """The position in the stream of batches, JSON-serialisable.

        Keys: ``epoch`` (completed epochs), ``batch_index`` (batches already yielded in the
        current epoch), ``generator_state`` (the generator's state at the start of the current
        epoch, or now when between epochs), and ``num_samples``/``batch_size``/``shuffle``/
        ``drop_last`` to check that the state is loaded into a compatible loader.
        """
        if self._in_epoch:
            gen_state, batch_index = self._epoch_start_state, self._batch_index
        else:
            gen_state, batch_index = self.generator.get_state(), self._resume_at
        return {
            "epoch": self.epoch,
            "batch_index": batch_index,
            "generator_state": copy.deepcopy(gen_state),
            "num_samples": len(self.dataset),
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`: the next iteration yields the batches that follow."""
        try:
            checks = {k: state[k] for k in ("num_samples", "batch_size", "shuffle", "drop_last")}
            epoch, batch_index, gen_state = (state["epoch"], state["batch_index"],
                                             state["generator_state"])
        except (KeyError, TypeError):
            raise InvalidValueError(
                "not a DataLoader state: expected a dict from DataLoader.state_dict()"
            ) from None
        mine = {"num_samples": len(self.dataset), "batch_size": self.batch_size,
                "shuffle": self.shuffle, "drop_last": self.drop_last}
        diff = [f"{k}: saved {checks[k]!r}, this loader {mine[k]!r}"
                for k in mine if checks[k] != mine[k]]
        if diff:
            raise InvalidValueError("DataLoader state does not fit this loader (" +
                                    "; ".join(diff) + ")")
        if not 0 <= int(batch_index) <= len(self):
            raise InvalidValueError(f"batch_index {batch_index} is out of range 0..{len(self)}")
        self.generator.set_state(copy.deepcopy(gen_state))
        self.epoch = int(epoch)
        self._resume_at = int(batch_index)
        self._batch_index = 0
        self._in_epoch = False

    def __repr__(self) -> str:
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last})")


def _collate(items: list[Any], dtype: np.dtype) -> list[Any]:
    """Stack a list of samples field by field."""
    if not items:
        return []
    first = items[0]
    single = not isinstance(first, (tuple, list))
    rows = [(it,) if single else tuple(it) for it in items]
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise InvalidValueError("dataset items have different numbers of fields")
    out = []
    for k in range(width):
        column = [r[k].data if isinstance(r[k], Tensor) else r[k] for r in rows]
        out.append(convert_field(np.stack([np.asarray(c) for c in column]), dtype, f"field {k}"))
    return out


def _shard(shard: Any) -> tuple[int, int] | None:
    """``(rank, world_size)``: each global batch is split into world_size contiguous shares
    (sizes differ by at most one) and this loader yields share ``rank`` (possibly empty)."""
    if shard is None:
        return None
    try:
        r, w = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise InvalidValueError(f"shard must be (rank, world_size), got {shard!r}") from None
    if not 0 <= r < w:
        raise InvalidValueError(f"shard rank {r} is not in 0..{w - 1}")
    return r, w
