"""DataLoader and TensorDataset: coverage, order, reproducibility, resuming, memory."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import DataLoader, Dataset, TensorDataset
from chainrule.errors import DTypeError, IndexingError, InvalidValueError, ShapeError


def _data(n=103, d=3):
    X = np.arange(n * d, dtype=np.float32).reshape(n, d)
    y = np.arange(n, dtype=np.int64)          # y[i] == i identifies the sample
    return X, y


def _ids(loader):
    return [yb.numpy().tolist() for _, yb in loader]


# ---------------------------------------------------------------- TensorDataset
def test_tensor_dataset_item_and_len():
    X, y = _data(10)
    ds = TensorDataset(X, y)
    assert len(ds) == 10
    xi, yi = ds[3]
    assert isinstance(xi, cr.Tensor) and isinstance(yi, cr.Tensor)
    np.testing.assert_array_equal(xi.numpy(), X[3])
    assert yi.item() == 3
    assert np.shares_memory(ds.arrays[0], X)      # float32 input is not copied
    assert ds[-1][1].item() == 9


def test_tensor_dataset_checks_first_dimension():
    with pytest.raises(ShapeError, match="first dimension.*10 rows.*9"):
        TensorDataset(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(InvalidValueError, match="at least one array"):
        TensorDataset()
    with pytest.raises(ShapeError, match="scalar"):
        TensorDataset(np.float32(1.0))
    with pytest.raises(DTypeError, match="numbers"):
        TensorDataset(np.array(["a", "b"]))
    with pytest.raises(IndexingError, match="out of range"):
        TensorDataset(np.zeros((3, 1)))[3]


def test_dtype_rules_float32_default_no_silent_float64():
    X64 = np.random.default_rng(0).standard_normal((8, 2))          # float64 input
    y32 = np.arange(8, dtype=np.int32)
    xb, yb = next(iter(DataLoader(TensorDataset(X64, y32), batch_size=4)))
    assert xb.dtype == np.float32 and yb.dtype == np.int64
    ds = TensorDataset(cr.tensor(X64, dtype="float64"), y32, dtype="float64")
    xb, yb = next(iter(DataLoader(ds, batch_size=4)))
    assert xb.dtype == np.float64 and yb.dtype == np.int64
    with cr.default_dtype("float64"):
        assert TensorDataset(X64).arrays[0].dtype == np.float64
    with pytest.raises(DTypeError):
        TensorDataset(X64, dtype="int32")


# ---------------------------------------------------------------- batching
@pytest.mark.parametrize("shuffle", [False, True])
def test_each_sample_exactly_once_per_epoch(shuffle):
    X, y = _data(103)
    loader = DataLoader(TensorDataset(X, y), batch_size=10, shuffle=shuffle, seed=1)
    assert len(loader) == 11
    for _ in range(3):
        batches = list(loader)
        assert len(batches) == 11
        assert [len(b[1]) for b in batches] == [10] * 10 + [3]      # last partial batch kept
        ids = np.concatenate([b[1].numpy() for b in batches])
        assert sorted(ids.tolist()) == list(range(103))
        for xb, yb in batches:          # features stay aligned with their labels
            np.testing.assert_array_equal(xb.numpy(), X[yb.numpy()])
        if not shuffle:
            assert ids.tolist() == list(range(103))


def test_drop_last():
    X, y = _data(103)
    loader = DataLoader(TensorDataset(X, y), batch_size=10, shuffle=True, drop_last=True, seed=0)
    assert len(loader) == 10
    batches = list(loader)
    assert len(batches) == 10 and all(len(b[1]) == 10 for b in batches)
    ids = np.concatenate([b[1].numpy() for b in batches])
    assert len(set(ids.tolist())) == 100
    exact = DataLoader(TensorDataset(X[:100], y[:100]), batch_size=10, drop_last=True)
    assert len(exact) == len(list(exact)) == 10
    small = DataLoader(TensorDataset(X[:5], y[:5]), batch_size=10, drop_last=True)
    assert len(small) == 0 and list(small) == []
    assert len(DataLoader(TensorDataset(X[:5], y[:5]), batch_size=10)) == 1


def test_shuffle_is_seeded_and_changes_between_epochs():
    X, y = _data(50)
    a = DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True, seed=7)
    b = DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True, seed=7)
    c = DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True, seed=8)
    ea1, ea2 = _ids(a), _ids(a)
    assert ea1 == _ids(b) and ea2 == _ids(b)
    assert ea1 != ea2                       # a new order each epoch
    assert ea1 != _ids(c)
    assert ea1 != _ids(DataLoader(TensorDataset(X, y), batch_size=8))


def test_default_generator_makes_loader_reproducible():
    X, y = _data(40)
    cr.manual_seed(123)
    first = _ids(DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True))
    cr.manual_seed(123)
    second = _ids(DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True))
    assert first == second


def test_explicit_generator_is_used_and_advanced():
    X, y = _data(40)
    g = cr.Generator(5)
    before = json.dumps(g.get_state())
    order = _ids(DataLoader(TensorDataset(X, y), batch_size=40, shuffle=True, generator=g))[0]
    assert json.dumps(g.get_state()) != before
    assert order == cr.Generator(5).permutation(40).tolist()
    with pytest.raises(InvalidValueError, match="not both"):
        DataLoader(TensorDataset(X, y), generator=g, seed=1)


def test_bad_arguments():
    X, y = _data(10)
    ds = TensorDataset(X, y)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InvalidValueError, match="batch_size"):
            DataLoader(ds, batch_size=bad)
    with pytest.raises(InvalidValueError, match="Dataset"):
        DataLoader(42)
    with pytest.raises(InvalidValueError, match="seed"):
        DataLoader(ds, seed=-3)


# ---------------------------------------------------------------- resuming
@pytest.mark.parametrize("stop_after", [0, 3, 7])
def test_resume_mid_epoch_gives_the_same_batches(stop_after):
    X, y = _data(70)
    ref = DataLoader(TensorDataset(X, y), batch_size=10, shuffle=True, seed=3)
    expected = [_ids(ref) for _ in range(3)]          # three full epochs, uninterrupted

    run = DataLoader(TensorDataset(X, y), batch_size=10, shuffle=True, seed=3)
    seen = [_ids(run)]                                 # epoch 0 complete
    it = iter(run)
    partial = [next(it)[1].numpy().tolist() for _ in range(stop_after)]
    state = json.loads(json.dumps(run.state_dict()))   # survives JSON
    assert state["epoch"] == 1 and state["batch_index"] == stop_after

    resumed = DataLoader(TensorDataset(X, y), batch_size=10, shuffle=True, seed=999)
    resumed.load_state_dict(state)
    rest = _ids(resumed)
    assert seen == expected[:1]
    assert partial + rest == expected[1]
    assert _ids(resumed) == expected[2]
    assert resumed.epoch == 3


def test_resume_at_epoch_boundary_and_unshuffled():
    X, y = _data(30)
    run = DataLoader(TensorDataset(X, y), batch_size=7, shuffle=True, seed=11)
    _ids(run)
    state = run.state_dict()
    nxt = _ids(run)
    other = DataLoader(TensorDataset(X, y), batch_size=7, shuffle=True, seed=0)
    other.load_state_dict(state)
    assert _ids(other) == nxt

    plain = DataLoader(TensorDataset(X, y), batch_size=7)
    it = iter(plain)
    next(it), next(it)
    again = DataLoader(TensorDataset(X, y), batch_size=7)
    again.load_state_dict(plain.state_dict())
    assert _ids(again) == [list(range(14, 21)), list(range(21, 28)), [28, 29]]


def test_load_state_dict_rejects_incompatible_state():
    X, y = _data(30)
    state = DataLoader(TensorDataset(X, y), batch_size=7, shuffle=True, seed=1).state_dict()
    with pytest.raises(InvalidValueError, match="num_samples: saved 30, this loader 20"):
        DataLoader(TensorDataset(X[:20], y[:20]), batch_size=7, shuffle=True).load_state_dict(state)
    with pytest.raises(InvalidValueError, match="batch_size"):
        DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True).load_state_dict(state)
    with pytest.raises(InvalidValueError, match="not a DataLoader state"):
        DataLoader(TensorDataset(X, y)).load_state_dict({"epoch": 0})


# ---------------------------------------------------------------- memory
def test_unshuffled_batches_are_views_of_the_dataset():
    X, y = _data(100)
    ds = TensorDataset(X, y)
    for xb, yb in DataLoader(ds, batch_size=16):
        assert np.shares_memory(xb.data, X) and np.shares_memory(yb.data, y)
    xb, _ = next(iter(DataLoader(ds, batch_size=16, shuffle=True, seed=0)))
    assert not np.shares_memory(xb.data, X)          # a gathered batch is its own array


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_iteration_never_allocates_a_dataset_sized_array():
    n, d = 100_000, 64
    X = np.ones((n, d), dtype=np.float32)              # 25.6 MB
    y = np.zeros(n, dtype=np.int64)
    ds = TensorDataset(X, y)
    shuffled = DataLoader(ds, batch_size=256, shuffle=True, seed=0)
    plain = DataLoader(ds, batch_size=256)

    def epoch(loader):
        def run():
            count = 0
            for xb, yb in loader:
                count += len(yb)
            assert count == n
        return run

    # The measurement is sensitive enough to see a permuted copy of X...
    perm = np.random.default_rng(0).permutation(n)
    assert _peak_bytes(lambda: X[perm].sum()) >= X.nbytes
    # ...and an epoch of the loader stays far below it: one index permutation (8 N bytes)
    # plus a batch or two.
    assert _peak_bytes(epoch(shuffled)) < X.nbytes / 10
    assert _peak_bytes(epoch(plain)) < X.nbytes / 100


# ---------------------------------------------------------------- generic datasets
class Squares(Dataset):
    def __len__(self):
        return 11

    def __getitem__(self, i):
        return np.array([i, i * i], dtype=np.float64), i


def test_generic_dataset_is_collated():
    loader = DataLoader(Squares(), batch_size=4, shuffle=True, seed=2)
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 3]
    for xb, yb in batches:
        assert xb.dtype == np.float32 and yb.dtype == np.int64 and xb.shape[1] == 2
        np.testing.assert_array_equal(xb.numpy()[:, 1], yb.numpy() ** 2)
    assert sorted(np.concatenate([b[1].numpy() for b in batches]).tolist()) == list(range(11))


def test_abstract_dataset_raises():
    with pytest.raises(NotImplementedError):
        len(Dataset())
    with pytest.raises(NotImplementedError):
        Dataset()[0]
