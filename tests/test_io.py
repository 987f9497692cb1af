"""Model files: save/load round trips, atomic writes, and hostile or damaged files."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys

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
    path = tmp_path / "evil.safetensors"  # pickle.dumps({"a": 1}), written out
    path.write_bytes(b"\x80\x04\x95\n\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.")
    with pytest.raises(FileFormatError):
        cr.load(path)


def test_save_rejects_bad_arguments(tmp_path, small_mlp):
    with pytest.raises(cr.InvalidValueError):
        cr.save(42, tmp_path / "x.safetensors")
    with pytest.raises(cr.InvalidValueError, match="does not exist"):
        cr.save(small_mlp, tmp_path / "no" / "such" / "dir.safetensors")
    with pytest.raises(cr.InvalidValueError, match="strings"):
        cr.save(small_mlp, tmp_path / "x.safetensors", metadata={"a": 1})


# ----------------------------------------------------------------------------- crafted headers
def _raw(tmp_path, header: bytes, data: bytes = b"", length: int | None = None):
    path = tmp_path / "raw.safetensors"
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)
    return path


_F32 = np.array([1.0, 2.0], np.float32).tobytes()


@pytest.mark.parametrize(
    "header, data, length, message",
    [
        (b"{}", b"", 2**64 - 1, "header would be 18446744073709551615 bytes long"),
        (b"{}", b"", 2**63, "truncated"),
        (b"[1, 2]", b"", None, "not a JSON object"),
        (b'"text"', b"", None, "not a JSON object"),
        (b"{\xff\xfe}", b"", None, "not UTF-8"),
        (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", b"", None, "nested too deeply"),
        (b'{"a":' + b"[" * 100 + b"]" * 100 + b"}", b"", None, "nested more than 64"),
        (b'{"__metadata__": {"a": NaN}}', b"", None, "NaN is not a JSON number"),
        (b'{"__metadata__": {"a": "1", "a": "2"}}', b"", None, "key twice"),
        (b'{"__metadata__": {"a": 1}}', b"", None, "not a map of strings to strings"),
        (b'{"__metadata__": [1]}', b"", None, "not a map of strings to strings"),
        (b'{"w": 5}', b"", None, "exactly the keys dtype, shape and data_offsets"),
        (b'{"w": {"dtype": "X99", "shape": [2], "data_offsets": [0, 8]}}', _F32, None,
         "unsupported dtype 'X99'"),
        (b'{"w": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}', _F32, None,
         "unsupported dtype"),
        (b'{"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}', _F32, None,
         "unsupported dtype 'BF16'"),
        (b'{"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}', _F32, None,
         "shape"),
        (b'{"w": {"dtype": "F32", "shape": [true, 2], "data_offsets": [0, 8]}}', _F32, None,
         "shape"),
        (b'{"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}}', _F32, None, "shape"),
        ((b'{"w": {"dtype": "F32", "shape": [1099511627776, 1099511627776], '
          b'"data_offsets": [0, 8]}}'), _F32, None, "needs 4835703278458516698824704 bytes"),
        (b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1000]}}', _F32, None,
         "not a byte range"),
        (b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}', _F32, None,
         "not a byte range"),
        (b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1e3]}}', _F32, None,
         "not a byte range"),
        (b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}', _F32, None,
         "not a byte range"),
        ((b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
          b'"b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'), _F32, None,
         "overlap"),
        (b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', _F32, None, "gap"),
        (b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', _F32, None,
         "4 bytes follow the last tensor"),
        (b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}',
         np.array([1.0, np.nan], np.float32).tobytes(), None, "tensor 'w' holds non-finite"),
        (b'{"w": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}',
         np.array([-np.inf]).tobytes(), None, "tensor 'w' holds non-finite"),
        (b'{"w": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}',
         np.array([np.inf], np.float16).tobytes(), None, "tensor 'w' holds non-finite"),
        (b'{"w": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}', b"\x01\x07", None,
         "booleans other than 0 and 1"),
    ],
)
def test_crafted_header_raises_file_format_error_naming_the_problem(tmp_path, header, data,
                                                                    length, message):
    path = _raw(tmp_path, header, data, length)
    with pytest.raises(FileFormatError, match=message) as info:
        cr.io.read(path)
    assert str(path) in str(info.value)
    with pytest.raises(FileFormatError):
        cr.load(path)


def test_reader_accepts_what_the_safetensors_library_writes(tmp_path):
    from safetensors.numpy import save

    tensors = {"a": np.arange(3, dtype=np.float16), "b": np.ones((2, 0), np.float32),
               "c": np.arange(4, dtype=np.int64).reshape(2, 2), "d": np.array([True, False]),
               "e": np.array(2.5)}
    path = tmp_path / "lib.safetensors"
    path.write_bytes(save(tensors, metadata={"k": "v"}))
    got, meta = cr.io.read(path)
    assert meta == {"k": "v"} and set(got) == set(tensors)
    for name, arr in tensors.items():
        assert got[name].dtype == arr.dtype and got[name].shape == arr.shape
        np.testing.assert_array_equal(got[name], arr)


# ------------------------------------------------------------------------ crafted architectures
_LINEAR_2_1 = {"0.weight": np.zeros((1, 2), np.float32), "0.bias": np.zeros(1, np.float32)}


def _arch(obj) -> str:
    return obj if isinstance(obj, str) else json.dumps(obj)


def _mlp(**config):
    return {"type": "MLP", "config": {"sizes": [2, 1], **config}}


@pytest.mark.parametrize(
    "architecture, message",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"type": "Sequential", "children": [' * 40 + '{"type": "ReLU"}' + "]}" * 40,
         "nested more than"),
        ('{"type": "MLP", "config": {"sizes": [2, 1' + "0" * 5000 + "]}}", "not valid JSON"),
        ('{"type": "LeakyReLU", "config": {"negative_slope": 1e999}}', "overflows"),
        ('{"type": "LeakyReLU", "config": {"negative_slope": NaN}}', "NaN"),
        ('{"type": "MLP", "type": "Linear"}', "key twice"),
        ({"type": "os.system", "config": {"command": "echo pwned"}}, "not a registered layer"),
        ({"type": ["MLP"]}, "not a registered layer"),
        ({"config": {}}, "must have the keys type"),
        ({"type": "MLP", "config": {"sizes": [2, 1]}, "extra": 1}, "must have the keys type"),
        ({"type": "MLP", "config": [2, 1]}, "config must be a JSON object"),
        (_mlp(sizes="2,1"), "sizes must be a list"),
        (_mlp(sizes=[2]), "sizes must be a list of 2 to"),
        (_mlp(sizes=[2, 0]), "sizes must be a list"),
        (_mlp(sizes=[2, True]), "sizes must be a list"),
        (_mlp(sizes=[2, 2**31]), "needs more than the 3 values"),
        (_mlp(sizes=[2**40, 1]), "sizes must be a list"),
        (_mlp(activation="evil"), "activation must be one of"),
        (_mlp(activation=3), "activation must be an activation name"),
        (_mlp(activation={"type": "Linear", "config": {"in_features": 10**5,
                                                       "out_features": 10**5}}),
         "activation must be an activation name or an activation layer's spec"),
        (_mlp(activation={"type": "Standardize", "config": {"num_features": 2**31}}),
         "activation layer's spec"),
        (_mlp(activation={"type": "LeakyReLU", "config": {"negative_slope": "steep"}}),
         "negative_slope must be a finite number"),
        (_mlp(output_activation={"type": "ReLU", "children": []}), "activation layer's spec"),
        (_mlp(bias=1), "bias must be true or false"),
        (_mlp(dropout=1.5), "dropout must be a probability"),
        (_mlp(dropout=-0.1), "dropout must be a probability"),
        (_mlp(dtype="U1000000"), "dtype must be one of"),
        (_mlp(dtype="int32"), "dtype must be one of"),
        (_mlp(init="zeros"), "init must be one of"),
        (_mlp(checkpoint_segments=0), "checkpoint_segments must be an integer"),
        (_mlp(no_such_argument=1), "unknown key"),
        ({"type": "MLP", "config": {"sizes": [2, 1]}, "children": [{"type": "ReLU"}]},
         "takes no children"),
        ({"type": "Linear", "config": {"in_features": 2, "out_features": 1},
          "children": [{"type": "ReLU"}]}, "takes no children"),
        ({"type": "Linear", "config": {"in_features": 100000, "out_features": 100000}},
         "needs more than the 3 values"),
        ({"type": "Linear", "config": {"in_features": -2, "out_features": 1}},
         "in_features must be an integer"),
        ({"type": "Linear", "config": {"in_features": 2}}, "lacks 'out_features'"),
        ({"type": "Linear", "config": {"in_features": 1, "out_features": 1}},
         "needs 2 values but the file holds 3"),
        ({"type": "Standardize", "config": {"num_features": 2**31}}, "needs more than"),
        ({"type": "Sequential", "children": [{"type": "Dropout", "config": {"p": 2}}]},
         r"children\[0\]\(Dropout\).config.p must be a probability"),
        ({"type": "Sequential", "config": {"x": 1}}, "unknown key"),
        ({"type": "Sequential", "children": {"0": {"type": "ReLU"}}}, "children must be a list"),
        ({"type": "Sequential", "children": [5]}, "must be a JSON object"),
        ({"type": "Softmax", "config": {"dim": 10**9}}, "dim must be an integer"),
        ({"type": "GELU", "config": {"approximate": "fast"}}, "approximate must be one of"),
        ({"type": "Softplus", "config": {"beta": 0}}, "beta must be a finite number other"),
        ({"type": "Identity", "config": {"anything": 1}}, "unknown key"),
        ({"type": "Sequential", "children": [{"type": "ReLU"}] * 100_001},
         "more than 100000 layers"),
        ("[]", "must be a JSON object"),
        ("not json at all", "not valid JSON"),
    ],
)
def test_crafted_architecture_is_refused_before_anything_is_built(tmp_path, architecture,
                                                                  message):
    path = _with_meta(tmp_path, {"format": "chainrule", "format_version": "1",
                                 "architecture": _arch(architecture)}, dict(_LINEAR_2_1))
    with pytest.raises(FileFormatError, match=message) as info:
        cr.load(path)
    assert str(path) in str(info.value)


def test_tensors_must_match_the_architecture_in_name_shape_and_dtype(tmp_path):
    meta = {"format": "chainrule", "format_version": "1",
            "architecture": _arch({"type": "Sequential", "children": [
                {"type": "Linear", "config": {"in_features": 2, "out_features": 1}}]})}
    wrong_dtype = {"0.weight": np.zeros((1, 2)), "0.bias": np.zeros(1)}  # float64
    with pytest.raises(FileFormatError, match=r"'0.weight' is float64\[1, 2\], the architecture "
                                              r"needs float32\[1, 2\]"):
        cr.load(_with_meta(tmp_path, meta, wrong_dtype))
    wrong_shape = {"0.weight": np.zeros((2, 1), np.float32), "0.bias": np.zeros(1, np.float32)}
    with pytest.raises(FileFormatError, match="'0.weight' is float32"):
        cr.load(_with_meta(tmp_path, meta, wrong_shape))
    renamed = {"0.weight": np.zeros((1, 2), np.float32), "0.beta": np.zeros(1, np.float32)}
    with pytest.raises(FileFormatError, match=r"missing tensor\(s\) \['0.bias'\]; unexpected "
                                              r"tensor\(s\) \['0.beta'\]"):
        cr.load(_with_meta(tmp_path, meta, renamed))


def _pipeline():
    cr.manual_seed(5)
    impute = nn.Impute(3).set_fill([0.5, 1.0, -2.0])
    one_hot = nn.OneHot(3, columns=[1], categories=[3])
    scale = nn.Standardize(5).set_statistics([0.1, 0.3, 0.3, 0.4, -1.0], [1.5, 0.5, 0.5, 0.5, 2])
    return nn.Sequential(impute, one_hot, scale, nn.MLP([5, 4, 2], activation="relu"))


def test_preprocessing_pipeline_round_trip_with_buffers(tmp_path):
    model = _pipeline()
    x = np.array([[0.3, 2.0, np.nan], [1.0, 0.0, 4.0]])
    loaded = cr.load(cr.save(model, tmp_path / "p.safetensors"))
    np.testing.assert_array_equal(_forward(loaded, x), _forward(model, x))
    tensors, _ = cr.io.read(tmp_path / "p.safetensors")
    assert tensors["2.mean"].dtype == np.float64 and tensors["0.fill"].shape == (3,)


def _pipeline_file(tmp_path, edit, tensors=None):
    spec = _pipeline().spec()
    edit(spec)
    state = tensors or {k: v.numpy() for k, v in _pipeline().state_dict().items()}
    return _with_meta(tmp_path, {"format": "chainrule", "format_version": "1",
                                 "architecture": json.dumps(spec)}, state)


@pytest.mark.parametrize(
    "edit, message",
    [
        # OneHot has no tensors: more categories would feed Standardize 7 features instead of 5
        (lambda s: s["children"][1]["config"].update(categories=[5]),
         r"children\[2\] takes 5 features but the layers before it give 7"),
        (lambda s: s["children"][1]["config"].update(num_features=4),
         r"children\[1\] takes 4 features but the layers before it give 3"),
        (lambda s: s["children"][1]["config"].update(columns=[3]), "columns must be a list"),
        (lambda s: s["children"][1]["config"].update(columns=[1, 0], categories=[2, 2]),
         "distinct and ascending"),
        (lambda s: s["children"][1]["config"].update(categories=[3, 3]), "categories must be"),
        (lambda s: s["children"][1]["config"].update(categories=[10**6]), "categories must be"),
        (lambda s: s["children"][2]["config"].update(num_features=6),
         r"children\[2\] takes 6 features but the layers before it give 5"),
        (lambda s: s["children"][3]["config"].update(sizes=[5, 4, 3]),
         "needs more than the 47 values the file holds"),
        (lambda s: s["children"][3]["config"].update(sizes=[5, 3, 2]),
         "needs 39 values but the file holds 47"),
        (lambda s: s["children"][0]["config"].update(dtype="float8"), "dtype must be one of"),
    ],
)
def test_preprocessing_layers_are_checked_by_the_schema(tmp_path, edit, message):
    with pytest.raises(FileFormatError, match=message):
        cr.load(_pipeline_file(tmp_path, edit))


def test_standardize_scale_must_be_positive(tmp_path):
    state = {k: v.numpy() for k, v in _pipeline().state_dict().items()}
    state["2.scale"] = np.array([1.0, 0.0, 1.0, 1.0, 1.0])
    with pytest.raises(FileFormatError, match="2.scale must be positive"):
        cr.load(_pipeline_file(tmp_path, lambda s: None, state))


def test_every_builtin_layer_survives_the_schema(tmp_path):
    cr.manual_seed(4)
    model = nn.Sequential(
        nn.Linear(3, 4), nn.LeakyReLU(0.2), nn.ELU(0.5), nn.Softplus(2.0, 10.0), nn.GELU("tanh"),
        nn.SiLU(), nn.Sigmoid(), nn.Tanh(), nn.Identity(), nn.ReLU(), nn.Dropout(0.3),
        nn.Sequential(nn.Linear(4, 4, bias=False), nn.Sign()), nn.Dropout(1.0),
        nn.MLP([4, 3, 2], activation=nn.LeakyReLU(0.1), output_activation="softmax", bias=False,
               dropout=0.25, init="pytorch", checkpoint_segments=2),
        nn.LogSoftmax(dim=-1), nn.Flatten(), nn.Linear(2, 2, dtype="float32"), nn.Softmax(dim=1))
    x = np.random.default_rng(3).standard_normal((5, 3)).astype(np.float32)
    loaded = cr.load(cr.save(model, tmp_path / "all.safetensors"))
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(_forward(loaded, x), _forward(model, x))
    wide = nn.MLP([2, 3, 1], dtype="float64", activation="gelu")
    assert cr.load(cr.save(wide, tmp_path / "f64.safetensors")).spec() == wide.spec()


def test_user_layer_is_built_by_its_constructor_with_bounded_config(tmp_path):
    @nn.register_layer
    class _TestScale(nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.n = n
            self.register_buffer("factor", cr.ones(n))

        def forward(self, x):
            return x * self.factor

        def config(self):
            return {"n": self.n}

    try:
        model = nn.Sequential(_TestScale(2), nn.Linear(2, 1))
        loaded = cr.load(cr.save(model, tmp_path / "u.safetensors"))
        assert isinstance(loaded[0], _TestScale) and loaded[0].n == 2
        forged = {"format": "chainrule", "format_version": "1", "architecture": json.dumps(
            {"type": "_TestScale", "config": {"n": 2**40}})}
        with pytest.raises(FileFormatError, match="larger than the file's"):
            cr.load(_with_meta(tmp_path, forged, {"factor": np.ones(2, np.float32)}))
        forged["architecture"] = json.dumps({"type": "_TestScale", "config": {"n": "two"}})
        with pytest.raises(FileFormatError, match="cannot be built"):
            cr.load(_with_meta(tmp_path, forged, {"factor": np.ones(2, np.float32)}))
    finally:
        nn.LAYERS.pop("_TestScale")


def test_save_refuses_non_finite_values(tmp_path, small_mlp):
    small_mlp.linears[0].bias.data[0] = np.nan
    with pytest.raises(cr.InvalidValueError, match="'0.bias' holds non-finite"):
        cr.save(small_mlp, tmp_path / "nan.safetensors")
    assert not (tmp_path / "nan.safetensors").exists()


# ------------------------------------------------------------------------ bytes and permissions
_SAVE_TWICE = """
import itertools, sys, time
import numpy as np
import chainrule as cr
from chainrule import nn
from chainrule.data import DataLoader, TensorDataset
from chainrule.train import Trainer
ticks = itertools.count()
time.perf_counter = lambda: next(ticks) * 0.25   # the history records durations
out = sys.argv[1]
cr.manual_seed(0)
model = nn.MLP([3, 4, 2])
cr.save(model, out + "/m.safetensors", metadata={k: k * 3 for k in "zyxabcmnop"})
x = np.random.default_rng(0).standard_normal((12, 3)).astype(np.float32)
loader = DataLoader(TensorDataset(x, (x[:, 0] > 0).astype(np.int64)), batch_size=4, seed=1,
                    shuffle=True)
opt = cr.optim.Adam(model.parameters(), lr=0.01)
Trainer(model, nn.functional.cross_entropy, opt, progress="none", run_dir=out + "/run").fit(
    loader, epochs=2)
"""


def test_files_are_byte_identical_across_processes(tmp_path):
    blobs = []
    for i, seed in enumerate(("1", "2")):
        folder = tmp_path / str(i)
        folder.mkdir()
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-c", _SAVE_TWICE, str(folder)], check=True, env=env,
                       timeout=120)
        blobs.append(((folder / "m.safetensors").read_bytes(),
                      (folder / "run" / "checkpoint.safetensors").read_bytes()))
    assert blobs[0][0] == blobs[1][0]
    assert blobs[0][1] == blobs[1][1]


def test_header_is_sorted_compact_and_padded(tmp_path, small_mlp):
    blob = cr.save(small_mlp, tmp_path / "m.safetensors",
                   metadata={"zeta": "1", "alpha": "2"}).read_bytes()
    n = int.from_bytes(blob[:8], "little")
    assert n % 8 == 0 and blob[8:9] == b"{"
    header = json.loads(blob[8:8 + n])
    keys = list(header["__metadata__"])
    assert keys == sorted(keys) and "user.alpha" in keys
    assert blob[8:8 + n].rstrip(b" ").endswith(b"}") and b", " not in blob[8:8 + n][:40]
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m.safetensors"), "np") as f:  # the library still reads it
        assert f.metadata()["user.zeta"] == "1"
        np.testing.assert_array_equal(f.get_tensor("0.weight"), small_mlp.linears[0].weight.numpy())


@pytest.fixture()
def umask():
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_files_get_the_permissions_open_would_give(tmp_path, small_mlp, umask):
    path = cr.save(small_mlp, tmp_path / "a.safetensors")
    assert path.stat().st_mode & 0o777 == 0o644
    with open(tmp_path / "plain.txt", "w") as fh:
        fh.write("x")
    assert (tmp_path / "plain.txt").stat().st_mode & 0o777 == 0o644
    umask(0o077)
    assert cr.save(small_mlp, tmp_path / "b.safetensors").stat().st_mode & 0o777 == 0o600
    path.chmod(0o640)  # an existing file keeps its mode, as with open(path, "w")
    assert cr.save(small_mlp, path).stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.safetensors", "b.safetensors", "plain.txt"]


# --------------------------------------------------------------------------------- checkpoints
def _setup(batch_size=5, scheduler=True):
    from chainrule.data import DataLoader, TensorDataset
    from chainrule.train import Trainer

    cr.manual_seed(0)
    model = nn.MLP([2, 4, 2], dropout=0.1)
    opt = cr.optim.Adam(model.parameters(), lr=0.01)
    sched = cr.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9) if scheduler else None
    x = np.random.default_rng(0).standard_normal((20, 2)).astype(np.float32)
    loader = DataLoader(TensorDataset(x, (x[:, 0] > 0).astype(np.int64)), batch_size=batch_size,
                        shuffle=True, seed=1)
    trainer = Trainer(model, nn.functional.cross_entropy, opt, scheduler=sched, early_stopping=3,
                      progress="none")
    return trainer, loader


@pytest.fixture()
def checkpoint(tmp_path):
    trainer, loader = _setup()
    trainer.fit(loader, epochs=2)
    return trainer.save_checkpoint(tmp_path / "c.safetensors")


def _rewrite(path, edit):
    from chainrule import checkpoint_file

    state = checkpoint_file.read_checkpoint(path)
    edit(state)
    out = path.with_name("edited.safetensors")
    out.write_bytes(checkpoint_file.checkpoint_bytes(state))
    return out


def _snapshot(trainer, loader):
    return ([p.numpy().copy() for p in trainer.model.parameters()],
            repr(trainer.optimizer.state_dict()), cr.default_generator.get_state(),
            loader.state_dict(), trainer.epoch, trainer.history.epochs[:])


def _assert_unchanged(before, after):
    for a, b in zip(before[0], after[0]):
        np.testing.assert_array_equal(a, b)
    assert before[1:] == after[1:]


def _set(path, value):
    """An edit that sets state[path[0]][path[1]]... = value."""
    def edit(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (_set(("rng", "state", "state"), 2**128),
         r"rng: not a valid generator state: state.state must be in \[0, 2\*\*128\)"),
        (_set(("rng", "state", "inc"), 2), "state.inc must be odd"),
        (_set(("rng", "bit_generator"), "MT19937"), "bit_generator must be 'PCG64'"),
        (_set(("rng", "has_uint32"), 2), "has_uint32 must be 0 or 1"),
        (_set(("rng", "uinteger"), -1), r"uinteger must be in \[0, 2\*\*32\)"),
        (_set(("rng",), None), "rng: not a valid generator state"),
        (_set(("loader", "generator_state", "uinteger"), 2**32),
         "loader.generator_state: not a valid generator state"),
        (_set(("loader", "generator_state", "state", "state"), -5), "loader.generator_state"),
        (_set(("loader", "batch_index"), -1), "loader.batch_index must be a non-negative"),
        (_set(("loader", "epoch"), 1.5), "loader.epoch must be a non-negative integer"),
        (_set(("loader", "batch_size"), "5"), "loader.batch_size is a str, this run's a number"),
        (_set(("loader", "num_samples"), 21), r"num_samples: saved 21, this loader 20"),
        (_set(("epoch",), -1), "epoch must be a non-negative integer"),
        (_set(("epoch",), True), "epoch must be a non-negative integer"),
        (_set(("epoch",), 2.0), "epoch must be a non-negative integer"),
        (_set(("epoch",), 2**70), "epoch must be a non-negative integer"),
        (_set(("bad_epochs",), "x"), "bad_epochs must be a non-negative integer"),
        (_set(("optimizer", "param_groups", 0, "lr"), float("inf")), "must be finite"),
        (_set(("optimizer", "param_groups", 0, "lr"), -1.0), "invalid lr -1.0"),
        (_set(("optimizer", "param_groups", 0, "betas"), (0.9, 1.5)),  # refused by Adam itself
         r"optimizer: the saved state does not work \(InvalidValueError: invalid betas\[1\]"),
        (_set(("scheduler", "gamma"), -1.0), "learning rates"),
        (_set(("optimizer", "param_groups", 0, "evil"), 1), r"unknown options \['evil'\]"),
        (_set(("optimizer", "param_groups", 0, "params"), [0, 0, 1, 2]), "listed twice"),
        (_set(("optimizer", "param_groups", 0, "params"), [0, 1, 2]), "no parameter group"),
        (_set(("optimizer", "state", 0, "step"), -1), r"optimizer.state\[0\].step must be"),
        (_set(("optimizer", "state", 0, "exp_avg"), np.zeros(3, np.float32)),
         r"optimizer.state\[0\].exp_avg is float32\[3\], this run's float32\[4, 2\]"),
        (_set(("optimizer", "state", 0, "exp_avg"), np.zeros((4, 2))), "float64"),
        (lambda s: s["optimizer"]["state"][0].pop("exp_avg"), "has the entries"),
        # the file switches amsgrad on: Adam's next step would need max_exp_avg_sq
        (_set(("optimizer", "param_groups", 0, "amsgrad"), True),
         r"optimizer: the saved state does not work \(KeyError: 'max_exp_avg_sq'\)"),
        (lambda s: [e.pop("exp_avg") for e in s["optimizer"]["state"].values()],
         r"optimizer: the saved state does not work \(KeyError: 'exp_avg'\)"),
        (_set(("optimizer", "state", 9), {"step": 1}), "no parameter group lists"),
        (_set(("scheduler", "step_size"), 0),
         r"scheduler: the saved state does not work \(ZeroDivisionError"),
        (_set(("scheduler", "gamma"), None), "scheduler.gamma is a NoneType"),
        (_set(("scheduler", "optimizer"), 1), "scheduler has the keys"),
        (_set(("scheduler", "base_lrs"), [0.1, 0.1]), "scheduler.base_lrs has 2 entries"),
        (_set(("history", "best_epoch"), -3), "history.best_epoch must be"),
        (_set(("history", "stopped_early"), 1), "stopped_early must be true or false"),
        (_set(("history", "epochs"), {}), "history.epochs must be a list"),
        (_set(("history", "best_value"), "low"), "history.best_value must be a number"),
        (_set(("model", "0.weight"), np.zeros((2, 4), np.float32)),
         r"model.0.weight is float32\[2, 4\]"),
        (_set(("model", "9.weight"), np.zeros(2, np.float32)), r"unexpected \['9.weight'\]"),
        (_set(("model", "0.weight"), np.zeros((4, 2), np.int32)), "is not a floating array"),
        (_set(("best_state",), {"0.weight": "x"}), "is not a floating array"),
        (lambda s: s.pop("rng"), "the state lacks rng"),
    ],
)
def test_crafted_checkpoint_raises_file_format_error_and_changes_nothing(checkpoint, edit,
                                                                         message):
    path = _rewrite(checkpoint, edit)
    trainer, loader = _setup()
    before = _snapshot(trainer, loader)
    with pytest.raises(FileFormatError, match=message) as info:
        trainer.load_checkpoint(path, loader)
    assert str(path) in str(info.value)
    _assert_unchanged(before, _snapshot(trainer, loader))


@pytest.mark.parametrize("make", [
    lambda ps: cr.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: cr.optim.SGD(ps, lr=0.05),
    lambda ps: cr.optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    lambda ps: cr.optim.Adagrad(ps, lr=0.1, lr_decay=0.01),
    lambda ps: cr.optim.AdamW(ps, lr=0.01, amsgrad=True),
])
def test_checkpoints_of_every_optimizer_load_and_resume_exactly(tmp_path, make):
    def run(epochs, resume=None):
        trainer, loader = _setup(scheduler=False)
        trainer.optimizer = make(trainer.model.parameters())
        if resume is not None:
            trainer.load_checkpoint(resume, loader)
        trainer.fit(loader, epochs=epochs)
        return trainer

    straight = run(3)
    halfway = run(2).save_checkpoint(tmp_path / "half.safetensors")
    resumed = run(3, resume=halfway)
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_checkpoint_loaded_into_a_different_loader_changes_nothing(checkpoint):
    trainer, loader = _setup(batch_size=4)
    trainer.optimizer.param_groups[0]["lr"] = 0.5
    before = _snapshot(trainer, loader)
    with pytest.raises(FileFormatError, match="batch_size: saved 5, this loader 4"):
        trainer.load_checkpoint(checkpoint, loader)
    _assert_unchanged(before, _snapshot(trainer, loader))  # the optimizer was put back


def _raw_checkpoint(path, edit_arrays=None, edit_text=None, edit_meta=None):
    from safetensors.numpy import save

    arrays, meta = cr.io.read(path)
    if edit_arrays:
        edit_arrays(arrays)
    if edit_text:
        meta["state"] = edit_text(meta["state"])
    if edit_meta:
        edit_meta(meta)
    out = path.with_name("raw.safetensors")
    out.write_bytes(save(arrays, metadata=meta))
    return out


@pytest.mark.parametrize(
    "edits, message",
    [
        ({"edit_arrays": lambda a: a["state/model/0.weight"].__setitem__((0, 0), np.nan)},
         "tensor 'state/model/0.weight' holds non-finite values"),
        ({"edit_arrays": lambda a: a["state/optimizer/state/1/exp_avg_sq"].__setitem__(
            0, np.inf)}, "tensor 'state/optimizer/state/1/exp_avg_sq' holds non-finite"),
        ({"edit_arrays": lambda a: a.__setitem__("extra", np.zeros(1, np.float32))},
         r"arrays that the state does not use: \['extra'\]"),
        ({"edit_arrays": lambda a: a.pop("state/best_state/0.weight"),
          "edit_text": lambda t: t.replace('"state/best_state/0.weight"',
                                           '"state/model/0.weight"')},
         "refers to the array 'state/model/0.weight' twice"),
        ({"edit_text": lambda t: t.replace('"state/model/0.bias"', '"nowhere"')},
         "refers to the array 'nowhere', which the file does not hold"),
        ({"edit_text": lambda t: t.replace('["epoch",2]', '["epoch",{"__float__":"1e5"}]')},
         "unexpected object"),
        ({"edit_text": lambda t: t.replace('["epoch",2]', '["epoch",2],["epoch",3]')},
         "has the key 'epoch' twice"),
        ({"edit_text": lambda t: t.replace('["epoch",2]', '[["a",[1]],2]')},
         "cannot be a dict key"),
        ({"edit_text": lambda t: t.replace('["epoch",2]', '["epoch",' + "[" * 5000 + "]" * 5000
                                           + "]")}, "nested too deeply"),
        ({"edit_text": lambda t: t.replace('["epoch",2]', '["epoch",NaN]')}, "NaN"),
        ({"edit_text": lambda t: t[:-5]}, "not valid JSON"),
        ({"edit_text": lambda t: "[]"}, "the state must be a dict"),
        ({"edit_meta": lambda m: m.update(format_version="2")}, "version '2' is not supported"),
        ({"edit_meta": lambda m: m.pop("state")}, "holds no state"),
        ({"edit_meta": lambda m: m.update(format="chainrule")}, "not a chainrule training"),
    ],
)
def test_damaged_checkpoint_file_raises_file_format_error(checkpoint, edits, message):
    trainer, loader = _setup()
    with pytest.raises(FileFormatError, match=message):
        trainer.load_checkpoint(_raw_checkpoint(checkpoint, **edits), loader)


def test_checkpoint_round_trip_with_non_finite_metrics_and_no_loader(checkpoint):
    def edit(state):
        state["history"]["epochs"][0]["val_r2"] = np.float64("nan")  # a NumPy scalar
        state["history"]["epochs"][1]["val_r2"] = float("-inf")

    path = _rewrite(checkpoint, edit)
    trainer, _ = _setup()
    trainer.load_checkpoint(path, [("not", "a DataLoader")])  # no state_dict: left alone
    assert math.isnan(trainer.history.epochs[0]["val_r2"])
    assert trainer.history.epochs[1]["val_r2"] == -math.inf and trainer.epoch == 2


def test_checkpoint_arrays_with_colliding_paths_are_all_kept():
    from chainrule import checkpoint_file, state_file

    blob = checkpoint_file.checkpoint_bytes({"a/b": np.ones(1, np.float32),
                                             "a": {"b": np.zeros(1, np.float32)}})
    arrays, _ = state_file.decode(blob, "test")
    assert sorted(arrays) == ["state/a/b", "state/a/b#1"]


def test_generator_set_state_validates_instead_of_overflowing():
    g = cr.Generator(3)
    state = g.get_state()
    good = json.loads(json.dumps(state))  # as read back from a file
    other = cr.Generator(4)
    other.set_state(good)
    assert other.numpy.random() == g.numpy.random()
    for bad in ({**state, "state": {"state": 2**128, "inc": 1}},
                {**state, "uinteger": 2**40}, {**state, "has_uint32": -1}, [1, 2],
                {**state, "state": {"state": "1", "inc": 1}}, {**state, "extra": 0}):
        with pytest.raises(cr.InvalidValueError, match="not a valid generator state"):
            other.set_state(bad)
