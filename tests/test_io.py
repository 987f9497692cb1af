"""Model files: save/load round trips, atomic writes, and hostile or damaged files."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.errors import FileFormatError


@pytest.fixture()
def small_mlp():
    cr.manual_seed(3)
    return nn.MLP([4, 5, 3], activation="tanh")


def _forward(model, x):
    model.eval()
    with cr.no_grad():
        return model(cr.tensor(x)).numpy()


def test_round_trip_rebuilds_mlp_bit_identically(tmp_path, small_mlp):
    x = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)
    path = cr.save(small_mlp, tmp_path / "m.safetensors")
    loaded = cr.load(path)
    assert type(loaded) is type(small_mlp)
    np.testing.assert_array_equal(_forward(loaded, x), _forward(small_mlp, x))
    assert [n for n, _ in loaded.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_round_trip_sequential_of_builtin_layers(tmp_path):
    cr.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Dropout(0.2), nn.Linear(6, 2, bias=False),
                          nn.Sigmoid())
    x = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    loaded = cr.load(cr.save(model, tmp_path / "s.safetensors"))
    np.testing.assert_array_equal(_forward(loaded, x), _forward(model, x))
    assert repr(loaded) == repr(model)


def test_float64_model_round_trip_keeps_dtype(tmp_path):
    cr.manual_seed(2)
    model = nn.MLP([2, 3, 1], activation="relu", dtype="float64")
    loaded = cr.load(cr.save(model, tmp_path / "d.safetensors"))
    assert all(p.dtype == np.float64 for p in loaded.parameters())
    x = np.random.default_rng(2).standard_normal((4, 2))
    np.testing.assert_array_equal(_forward(loaded, x), _forward(model, x))


def test_state_dict_file_loads_into_any_module(tmp_path, small_mlp):
    path = cr.save(small_mlp.state_dict(), tmp_path / "state.safetensors")
    with pytest.raises(FileFormatError, match="without an architecture"):
        cr.load(path)
    other = nn.MLP([4, 5, 3], activation="tanh")
    other.load_state_dict(cr.load_state(path))
    for (n1, p1), (n2, p2) in zip(small_mlp.named_parameters(), other.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p1.numpy(), p2.numpy())


def test_file_is_plain_safetensors_with_pytorch_names(tmp_path, small_mlp):
    from safetensors.numpy import load_file

    path = cr.save(small_mlp, tmp_path / "m.safetensors", metadata={"note": "hello"})
    tensors = load_file(str(path))
    assert set(tensors) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert tensors["0.weight"].shape == (5, 4)  # (out_features, in_features)
    _, meta = cr.io.read(path)
    assert meta["format"] == "chainrule" and meta["user.note"] == "hello"
    assert json.loads(meta["architecture"])["type"] == "MLP"


def test_save_is_atomic_previous_file_survives_a_failed_write(tmp_path, small_mlp, monkeypatch):
    path = tmp_path / "m.safetensors"
    cr.save(small_mlp, path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        cr.save(nn.MLP([4, 5, 3]), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left behind


def test_truncated_file_at_every_offset_raises_file_format_error(tmp_path):
    cr.manual_seed(0)
    model = nn.MLP([2, 2, 1])
    blob = cr.save(model, tmp_path / "full.safetensors").read_bytes()
    bad = tmp_path / "cut.safetensors"
    for cut in range(len(blob)):
        bad.write_bytes(blob[:cut])
        with pytest.raises(FileFormatError):
            cr.load(bad)


def _forge(tmp_path, header: dict, data: bytes = b"", name="forged.safetensors"):
    raw = json.dumps(header).encode()
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.mark.parametrize(
    "header, data",
    [
        # offsets beyond the data
        ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 1000]}}, b"\0" * 16),
        # shape and byte count disagree
        ({"w": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 16]}}, b"\0" * 16),
        # an unknown dtype
        ({"w": {"dtype": "X99", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
        # header is not an object
        ([1, 2, 3], b""),
    ],
)
def test_forged_structure_raises_file_format_error(tmp_path, header, data):
    with pytest.raises(FileFormatError):
        cr.load(_forge(tmp_path, header, data))


def _with_meta(tmp_path, meta: dict, tensors: dict | None = None):
    from safetensors.numpy import save

    tensors = tensors if tensors is not None else {"0.weight": np.zeros((1, 2), np.float32),
                                                   "0.bias": np.zeros(1, np.float32)}
    path = tmp_path / "meta.safetensors"
    path.write_bytes(save(tensors, metadata=meta))
    return path


@pytest.mark.parametrize(
    "architecture",
    [
        '{"type": "os.system", "config": {"command": "echo pwned"}}',
        '{"type": "Linear", "config": {"in_features": 100000, "out_features": 100000}}',
        '{"type": "MLP", "config": {"sizes": [2, 1], "no_such_argument": 1}}',
        '{"type": "MLP", "config": {"sizes": "2,1"}}',
        '{"type": "Linear", "config": {"in_features": 3, "out_features": 1}}',  # wrong shapes
        "not json at all",
        "[]",
    ],
)
def test_hostile_architecture_raises_file_format_error(tmp_path, architecture):
    path = _with_meta(tmp_path, {"format": "chainrule", "format_version": "1",
                                 "architecture": architecture})
    with pytest.raises(FileFormatError):
        cr.load(path)


def test_not_a_chainrule_file_and_wrong_version(tmp_path):
    with pytest.raises(FileFormatError, match="not a chainrule model file"):
        cr.load(_with_meta(tmp_path, {"producer": "someone else"}))
    with pytest.raises(FileFormatError, match="version"):
        cr.load(_with_meta(tmp_path, {"format": "chainrule", "format_version": "99"}))
    with pytest.raises(FileFormatError, match="no such file"):
        cr.load(tmp_path / "missing.safetensors")


def test_pickle_bytes_are_rejected_not_executed(tmp_path):
    import pickle

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(FileFormatError):
        cr.load(path)


def test_save_rejects_bad_arguments(tmp_path, small_mlp):
    with pytest.raises(cr.InvalidValueError):
        cr.save(42, tmp_path / "x.safetensors")
    with pytest.raises(cr.InvalidValueError, match="does not exist"):
        cr.save(small_mlp, tmp_path / "no" / "such" / "dir.safetensors")
    with pytest.raises(cr.InvalidValueError, match="strings"):
        cr.save(small_mlp, tmp_path / "x.safetensors", metadata={"a": 1})
