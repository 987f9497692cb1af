"""ONNX export (``chainrule.onnx``, ``chainrule export``): every exported graph passes
``onnx.checker`` (``export`` runs it) and ONNX Runtime's outputs equal chainrule's to 1e-5 in
float32 and 1e-12 in float64 (relative to max(1, |value|): ``chainrule.onnx.verify``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ACTIVATIONS = ["sign", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu",
               "silu"]
HEADS = [None, "softmax", "log_softmax"]
TOL = {"float32": 1e-5, "float64": 1e-12}


def _activation(name: str, rng: np.random.Generator) -> nn.Module:
    """The named activation, with non-default parameters half of the time."""
    odd = rng.random() < 0.5
    if name == "leaky_relu":
        return nn.LeakyReLU(-0.2 if odd else 0.01)
    if name == "elu":
        return nn.ELU(0.7 if odd else 1.0)
    if name == "softplus":   # threshold 2 makes the linear branch matter
        return nn.Softplus(beta=2.0, threshold=2.0) if odd else nn.Softplus()
    if name == "gelu":
        return nn.GELU("tanh" if rng.random() < 0.25 else "none")
    return nn.get_activation(name)


def _preprocessing(rng: np.random.Generator, dtype: str) -> list[nn.Module]:
    """Impute, OneHot and Standardize layers as a trained run has them: 5 raw columns, of
    which columns 1 (3 categories) and 3 (2 categories) are categorical."""
    fill = rng.standard_normal(5)
    fill[1], fill[3] = 2, 0
    onehot = nn.OneHot(5, [1, 3], [3, 2])
    width = onehot.out_features
    scale = rng.uniform(0.5, 3, width)
    return [nn.Impute(5).set_fill(fill), onehot,
            nn.Standardize(width, dtype=dtype).set_statistics(rng.standard_normal(width), scale)]


def random_model(i: int) -> tuple[nn.Module, str, bool, list[str]]:
    """Model i of the 20: depth 1-4, the activations in turn, float32 and float64, with and
    without preprocessing, as an MLP (fused where it can be) or a Sequential."""
    rng = np.random.default_rng(100 + i)
    depth = 1 + i % 4
    dtype = "float32" if i % 2 == 0 else "float64"
    pre = (i // 2) % 2 == 1
    head = HEADS[i % 3]
    acts = [ACTIVATIONS[(2 * i + l) % len(ACTIVATIONS)] for l in range(depth)]
    cr.manual_seed(i)
    layers = _preprocessing(rng, dtype) if pre else []
    width = layers[-1].num_features if pre else int(rng.integers(2, 7))
    sizes = [width] + [int(rng.integers(1, 9)) for _ in range(depth - 1)] + [3]
    if i % 3 == 0 and depth > 1:      # an MLP: one hidden activation
        acts = [acts[0]] * (depth - 1)
        net = nn.MLP(sizes, activation=_activation(acts[0], rng), output_activation=head,
                     dtype=dtype, dropout=0.3 if i % 2 else 0.0)
    else:
        mods: list[nn.Module] = []
        for l in range(depth):
            mods.append(nn.Linear(sizes[l], sizes[l + 1], bias=bool(rng.random() < 0.8),
                                  dtype=dtype))
            mods.append(_activation(acts[l], rng))
            if rng.random() < 0.3:
                mods.append(nn.Dropout(0.5))
        if head is not None:
            mods.append(nn.get_activation(head))
        net = nn.Sequential(*mods)
    model = nn.Sequential(*layers, net) if pre else net
    model.train()   # the export is of evaluation mode whatever the flag says
    return model, dtype, pre, acts


def _inputs(model: nn.Module, pre: bool, dtype: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if not pre:
        width = next(m for m in model.modules() if isinstance(m, nn.Linear)).in_features
        return (rng.standard_normal((n, width)) * 3).astype(dtype)
    X = rng.standard_normal((n, 5)) * 3
    X[:, 1] = rng.integers(0, 3, n)
    X[:, 3] = rng.integers(0, 2, n)
    X[rng.random((n, 5)) < 0.1] = np.nan      # imputed, categorical columns included
    return X


def _chainrule(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    with cr.no_grad():
        return model(cr.tensor(x)).numpy()


def _difference(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape and got.dtype == want.dtype
    return float((np.abs(got.astype(np.float64) - want) / np.maximum(1, np.abs(want))).max())


def test_the_twenty_models_cover_every_activation_both_dtypes_and_preprocessing():
    seen = {(act, dtype) for i in range(20) for act in random_model(i)[3]
            for dtype in [random_model(i)[1]]}
    assert seen == {(a, d) for a in ACTIVATIONS for d in ("float32", "float64")}
    kinds = {(random_model(i)[1], random_model(i)[2]) for i in range(20)}
    assert kinds == {(d, p) for d in ("float32", "float64") for p in (False, True)}
    assert {1 + i % 4 for i in range(20)} == {1, 2, 3, 4}


@pytest.mark.parametrize("i", range(20))
def test_onnxruntime_equals_chainrule_on_random_models(i, tmp_path):
    model, dtype, pre, _ = random_model(i)
    path = tmp_path / "model.onnx"
    proto = cr.onnx.export(model, path)
    assert path.read_bytes() == proto.SerializeToString()
    onnx.checker.check_model(onnx.load(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = _inputs(model, pre, dtype, 1000, seed=i)
    for rows in (x[:1], x):                 # batch 1 and 1000 from one file
        got = session.run(None, {"input": rows})[0]
        want = _chainrule(model, rows)
        assert _difference(got, want) <= TOL[dtype], (i, len(rows))
    # the input is raw float64 rows before preprocessing, else the network's dtype
    inp = proto.graph.input[0].type.tensor_type
    assert inp.elem_type == (onnx.TensorProto.DOUBLE if pre or dtype == "float64"
                             else onnx.TensorProto.FLOAT)
    assert inp.shape.dim[0].dim_param == "N"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"


# ONNX's own softmax tests (onnx/backend/test/case/node/softmax.py, logsoftmax.py):
# "large_number" is [[0, 1, 2, 3], [10000, 10001, 10002, 10003]].
LARGE = np.array([[0, 1, 2, 3], [10000, 10001, 10002, 10003], [-10000, -10001, -10002, -10003],
                  [-10000, 0, 10000, 5]])


@pytest.mark.parametrize("head", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("through_linear", [False, True])
def test_large_logits_softmax_heads(head, dtype, through_linear):
    layers = [nn.get_activation(head)]
    if through_linear:
        lin = nn.Linear(4, 4, dtype=dtype)
        with cr.no_grad():
            lin.weight.copy_(np.eye(4))
            lin.bias.copy_(np.zeros(4))
        layers.insert(0, lin)
    model = nn.Sequential(*layers)
    x = LARGE.astype(dtype)
    proto = cr.onnx.export(model, None, x if not through_linear else None)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})[0]
    want = _chainrule(model, x)
    assert np.isfinite(want).all()
    assert _difference(got, want) <= TOL[dtype]
    if head == "softmax":
        np.testing.assert_allclose(got[1], [0.0320586, 0.08714432, 0.23688284, 0.64391428],
                                   rtol=1e-5)   # ONNX's expected output


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_activation_alone_on_a_wide_range(dtype):
    """Each activation module on values from -30 to 30 (both sides of every branch)."""
    x = np.linspace(-30, 30, 2001).reshape(-1, 1).astype(dtype)
    modules = [nn.get_activation(a) for a in ACTIVATIONS] + [
        nn.LeakyReLU(-0.3), nn.ELU(0.5), nn.Softplus(3.0, 5.0), nn.Softplus(-1.0, 20.0),
        nn.GELU("tanh"), nn.Identity()]
    for m in modules:
        model = nn.Sequential(m)
        proto = cr.onnx.export(model, None, cr.tensor(x))
        assert cr.onnx.verify(proto, model, x) <= TOL[dtype], m


def test_class_mapping_argmax_output_and_names_in_metadata():
    cr.manual_seed(0)
    model = nn.MLP([3, 8, 4], activation="relu")
    names = ["cat", "dog", "bird", "fish"]
    proto = cr.onnx.export(model, None, class_names=names)
    assert [o.name for o in proto.graph.output] == ["output", "label"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["class_names"]) == names and props["prediction"] == "argmax"
    x = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    out, label = ort.InferenceSession(proto.SerializeToString()).run(None, {"input": x})
    assert label.dtype == np.int64 and label.shape == (50,)
    np.testing.assert_array_equal(label, _chainrule(model, x).argmax(axis=1))
    assert any(n.op_type == "ArgMax" for n in proto.graph.node)


@pytest.mark.parametrize("kind", ["sign", "logit"])
def test_binary_thresholds(kind):
    model = nn.Sequential(nn.Linear(2, 1, dtype="float64"))
    proto = cr.onnx.export(model, None, class_names=["no", "yes"], prediction=kind)
    x = np.array([[0.0, 0.0], [1.0, 2.0], [-1.0, -2.0]])
    with cr.no_grad():
        model[0].bias.copy_(np.zeros(1))
    proto = cr.onnx.export(model, None, class_names=["no", "yes"], prediction=kind)
    _, label = ort.InferenceSession(proto.SerializeToString()).run(None, {"input": x})
    s = _chainrule(model, x)[:, 0]
    np.testing.assert_array_equal(label, (s >= 0) if kind == "sign" else (s > 0))
    assert label[0] == (1 if kind == "sign" else 0)    # h(x) = 0 exactly


def test_flatten_and_more_axes(tmp_path):
    cr.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 3), nn.Tanh())
    x = np.random.default_rng(0).standard_normal((7, 2, 3)).astype(np.float32)
    proto = cr.onnx.export(model, tmp_path / "f.onnx", cr.tensor(x))
    assert cr.onnx.verify(tmp_path / "f.onnx", model, x) <= 1e-5
    assert cr.onnx.verify(proto, model, x[:1]) <= 1e-5
    lin = nn.Linear(3, 2, dtype="float64")      # a Linear on (N, 2, 3): MatMul + Add
    x3 = np.random.default_rng(1).standard_normal((4, 2, 3))
    assert cr.onnx.verify(cr.onnx.export(lin, None, x3), lin, x3) <= 1e-12


@pytest.mark.parametrize("opset", [13, 17, 21])
def test_opsets(opset):
    if opset > onnx.defs.onnx_opset_version():
        pytest.skip(f"this onnx knows opsets up to {onnx.defs.onnx_opset_version()}")
    cr.manual_seed(2)
    model = nn.MLP([4, 5, 3], activation="gelu", output_activation="log_softmax")
    proto = cr.onnx.export(model, None, opset=opset)
    assert proto.opset_import[0].version == opset
    assert cr.onnx.verify(proto, model, np.random.default_rng(0).standard_normal((9, 4))) <= 1e-5


def test_unsupported_modules_are_named():
    class Twice(nn.Module):
        def forward(self, x):
            return x * 2

    class MyLinear(nn.Linear):
        def forward(self, x):
            return super().forward(x) + 1

    class PlainLinear(nn.Linear):   # no forward of its own: exported as a Linear
        pass

    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), Twice()))
    with pytest.raises(cr.InvalidValueError, match=r"1\.1 is a Twice, which cannot be exported"):
        cr.onnx.export(model)
    with pytest.raises(cr.InvalidValueError, match=r"0 is a MyLinear"):
        cr.onnx.export(nn.Sequential(MyLinear(2, 2)))
    with pytest.raises(cr.InvalidValueError, match="the model is a MSELoss"):
        cr.onnx.export(nn.MSELoss(), None, (None, 2))
    m = nn.Sequential(PlainLinear(2, 2, dtype="float64"))
    x = np.ones((3, 2))
    assert cr.onnx.verify(cr.onnx.export(m), m, x) <= 1e-12


def test_bad_arguments():
    model = nn.Sequential(nn.Linear(2, 3), nn.Softmax())
    with pytest.raises(cr.ShapeError, match="takes 2 features"):
        cr.onnx.export(model, None, (None, 5))
    with pytest.raises(cr.InvalidValueError, match="opset"):
        cr.onnx.export(model, opset=9)
    with pytest.raises(cr.ShapeError, match="2 class names for 3 outputs"):
        cr.onnx.export(model, class_names=["a", "b"])
    with pytest.raises(cr.InvalidValueError, match="class_names"):
        cr.onnx.export(model, prediction="argmax")
    with pytest.raises(cr.DTypeError, match="float32 or float64"):
        cr.onnx.export(model, None, np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(cr.InvalidValueError, match="Module"):
        cr.onnx.export(lambda x: x)


def test_identity_model_and_names():
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    proto = cr.onnx.export(nn.Identity(), None, x, input_name="x", output_name="y")
    (y,) = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})
    np.testing.assert_array_equal(y, x)


def test_verify_reports_a_difference():
    model = nn.Sequential(nn.Linear(2, 2, dtype="float64"))
    proto = cr.onnx.export(model)
    with cr.no_grad():
        model[0].bias.add_(1e-9)
    with pytest.raises(cr.InvalidValueError, match="differ from chainrule's"):
        cr.onnx.verify(proto, model, np.zeros((2, 2)))


def test_chainrule_imports_without_onnx_and_says_what_to_install():
    code = ("import sys; sys.modules['onnx'] = None; sys.modules['onnxruntime'] = None\n"
            "sys.modules['torch'] = None\n"
            "import chainrule as cr\n"
            "try:\n"
            "    cr.onnx.export(cr.nn.Linear(2, 2))\n"
            "except cr.InvalidValueError as e:\n"
            "    print(e)\n"
            "print(cr.interop.__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'chainrule[onnx]'" in out.stdout
    assert "chainrule.interop" in out.stdout


# --------------------------------------------------------------------------- chainrule export
def _people_csv(path, n=120, holes=False, regression=False):
    """Numeric a, b, a categorical color, and a yes/no (or numeric) label."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(n) * 3 + 10, rng.standard_normal(n)
    color = rng.choice(["red", "green", "blue"], n)
    y = a - 10 + (color == "red") * 2 + b
    label = [f"{v:.4f}" for v in y] if regression else np.where(y > 0.5, "yes", "no")
    rows = []
    for i in range(n):
        ca = "" if holes and i % 17 == 3 else f"{a[i]:.6f}"
        cc = "" if holes and i % 23 == 7 else color[i]
        rows.append(f"{ca},{b[i]:.6f},{cc},{label[i]}")
    path.write_text("a,b,color,label\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    pytest.importorskip("typer")
    pytest.importorskip("sklearn")
    from typer.testing import CliRunner

    from chainrule.cli import app

    root = tmp_path_factory.mktemp("export")
    people = _people_csv(root / "people.csv")
    holes = _people_csv(root / "holes.csv", holes=True)
    numbers = _people_csv(root / "numbers.csv", regression=True)
    specs = {
        "digits": (["--dataset", "digits", "--activation", "gelu"], None),
        "sign": (["--dataset", "moons", "--loss", "square", "--activation", "tanh"], None),
        "logit": (["--dataset", "moons", "--loss", "bce", "--dtype", "float64"], None),
        "cat": (["--dataset", str(people), "--target", "label", "--activation", "elu"], people),
        "imp": (["--dataset", str(holes), "--target", "label", "--impute", "mean",
                 "--dtype", "float64", "--activation", "softplus"], holes),
        "reg": (["--dataset", str(numbers), "--target", "label", "--task", "regression",
                 "--no-standardize"], numbers),
    }
    out = {}
    for name, (args, data) in specs.items():
        result = CliRunner().invoke(app, ["train", *args, "--epochs", "2", "--hidden", "8",
                                          "-q", "--out", str(root / name)])
        assert result.exit_code == 0, result.output
        out[name] = (root / name, data)
    return out


def _cli(*args):
    from typer.testing import CliRunner

    from chainrule.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("name", ["digits", "sign", "logit", "cat", "imp", "reg"])
def test_cli_export_of_a_trained_run(runs, name, tmp_path):
    from chainrule.runs import load_run_model
    from chainrule.runs.metrics import predicted_classes

    run, data = runs[name]
    target = tmp_path / "m.onnx"
    result = _cli("export", str(run), "--format", "onnx", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {target} (ONNX opset 17; input input (N, ")
    assert "onnxruntime agrees with chainrule to" in result.output
    rm = load_run_model(run)
    proto = onnx.load(target)
    onnx.checker.check_model(proto, full_check=True)
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["feature_names"]) == rm.run["columns"]["columns"]
    assert props["task"] == rm.task and props["prediction"] == rm.run["prediction"]
    if data is not None:
        X = rm.read(data).X          # the raw rows: category codes, NaN for empty cells
    else:
        X = cr.onnx.sample_rows(rm, 500, seed=1)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": X.astype(session.get_inputs()[0].type == "tensor(float)"
                                               and np.float32 or np.float64)})
    want = rm.outputs(X)
    assert _difference(got[0], want) <= TOL[rm.run["dtype"]]
    if rm.task == "classification":
        assert json.loads(props["class_names"]) == rm.class_names
        assert [o.name for o in proto.graph.output] == ["output", "label"]
        np.testing.assert_array_equal(got[1], predicted_classes(want, rm.run["prediction"]))
    else:
        assert "class_names" not in props and len(got) == 1
    if name == "cat":
        assert json.loads(props["categories"]) == {"color": ["blue", "green", "red"]}


def test_cli_export_default_path_and_errors(runs, tmp_path):
    run, _ = runs["sign"]
    result = _cli("export", str(run), "--no-check")
    assert result.exit_code == 0 and (run / "model.onnx").is_file()
    assert result.output.strip().endswith("not checked (--no-check)")
    result = _cli("export", str(tmp_path / "nothing"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'nothing'}: no model file (give a .safetensors file or a run "
        "directory)"]
    result = _cli("export", str(run), "-o", str(run / "model.safetensors"))
    assert result.exit_code == 2 and "would overwrite the model file" in result.output
    result = _cli("export", str(run), "--opset", "7")
    assert result.exit_code == 2 and "opset must be an integer from 13" in result.output
