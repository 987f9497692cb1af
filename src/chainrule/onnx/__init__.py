"""ONNX export: a chainrule model as an ONNX graph that ONNX Runtime (C++, C#, Java, JavaScript,
phones) and other runtimes can serve.

    import chainrule as cr
    model = cr.nn.MLP([4, 16, 3], activation="gelu", output_activation="softmax")
    cr.onnx.export(model, "model.onnx", (None, 4))           # or an example batch
    cr.onnx.verify("model.onnx", model, cr.randn(100, 4))     # onnxruntime == chainrule?

From the command line, a trained run (with its preprocessing and class names):
``chainrule export RUN --format onnx -o model.onnx``.

What is exported: ``Linear``, ``MLP`` (fused or not: the graph is the same), ``Sequential``,
``Flatten``, every activation (identity, sign, sigmoid, tanh, relu, leaky_relu, elu, softplus,
gelu exact or tanh, silu, softmax, log_softmax), ``Dropout`` (the identity: the graph is the
model in evaluation mode), and the preprocessing layers of a trained model (``Impute``,
``OneHot``, ``Standardize``). The batch axis is dynamic (named ``N``): one file serves batches of
any size. float32 and float64. Anything else is an error naming the module. With
``class_names`` the graph has a second output, ``label``: the predicted class index (``ArgMax``
over the outputs, or the sign/logit threshold of a one-output binary model), and the names
are in the model's metadata (``metadata_props["class_names"]``, JSON).

Requires the ``onnx`` package (``pip install 'chainrule[onnx]'``, which also installs
``onnxruntime`` for :func:`verify`); both are imported on first use only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DTypeError, InvalidValueError, ShapeError
from ._graph import BATCH, Graph, Value

DEFAULT_OPSET = 17
"""The default operator set: supported by every ONNX Runtime since 1.11 (2022)."""
MIN_OPSET = 13
"""The oldest operator set the exporter writes (Softmax over one axis needs 13)."""
_MAX_BYTES = 2**31 - 2**20   # protobuf's 2 GiB limit on one message, less room for the graph
_PREDICTIONS = ("argmax", "sign", "logit")


def _onnx() -> Any:
    try:
        import onnx  # noqa: PLC0415 - optional
    except ImportError:
        raise InvalidValueError("ONNX export needs the onnx package: pip install "
                                "'chainrule[onnx]'") from None
    return onnx


def _onnxruntime() -> Any:
    try:
        import onnxruntime  # noqa: PLC0415 - optional
    except ImportError:
        raise InvalidValueError("checking an ONNX model needs onnxruntime: pip install "
                                "'chainrule[onnx]'") from None
    return onnxruntime


def export(model: Any, path: str | os.PathLike[str] | None = None, input: Any = None, *,
           opset: int = DEFAULT_OPSET, class_names: Sequence[str] | None = None,
           prediction: str | None = None, metadata: Mapping[str, str] | None = None,
           input_name: str = "input", output_name: str = "output") -> Any:
    """Export ``model`` to ONNX; write it to ``path`` (when given) and return the ``ModelProto``.

    Args:
        model: a ``chainrule.nn.Module`` made of the supported layers (see the module docs).
        path: the ``.onnx`` file to write (atomically), or None to only return the model.
        input: the input's shape, the batch axis first (its size is ignored: the axis is dynamic),
            e.g. ``(None, 4)``, or an example batch (a tensor or array: its shape past the batch
            axis and its dtype). Default: rows of the first layer's width, in the dtype the
            model takes (float64 before preprocessing layers, else the parameters' dtype).
        opset: the ONNX operator set, from 13 to what the installed onnx knows. Default: 17.
        class_names: the classes of a classifier, in output order: adds the ``label`` output
            (int64 class index per row) and stores the names in the metadata.
        prediction: how ``label`` is computed: ``"argmax"`` (default for several outputs),
            ``"sign"`` (one output, class 1 where it is >= 0) or ``"logit"`` (one output, class 1
            where it is > 0, the default for one output).
        metadata: more ``metadata_props`` (string keys and values).
        input_name: the name of the graph's input.
        output_name: the name of the graph's (first) output.

    Raises:
        InvalidValueError: a module that cannot be exported (named by its path in the model),
            a bad option, or onnx is not installed.
        ShapeError: the input's shape does not fit the model.
    """
    from ..nn import Module
    from ._layers import handlers

    onnx = _onnx()
    if not isinstance(model, Module):
        raise InvalidValueError(f"ONNX export: expected a chainrule.nn.Module, got "
                                f"{type(model).__name__}")
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise InvalidValueError(f"ONNX export: opset must be an integer from {MIN_OPSET} to "
                                f"{newest} (the newest this onnx knows), got {opset!r}")
    for what, name in (("input_name", input_name), ("output_name", output_name)):
        if not isinstance(name, str) or not name or name == "label":
            raise InvalidValueError(f"ONNX export: {what} must be a non-empty string other than "
                                    f"'label', got {name!r}")
    if input_name == output_name:
        raise InvalidValueError("ONNX export: input_name and output_name must differ")
    shape, dtype = _input_spec(model, input)

    g = Graph(onnx)
    g.reserve(input_name)
    g.reserve(output_name)
    g.reserve("label")
    table = handlers()
    x = Value(input_name, shape, dtype)

    def walk(m: Any, v: Value, where: str) -> Value:
        if _is_container(m):
            for name, child in m.named_children():
                v = walk(child, v, f"{where}.{name}" if where else name)
            return v
        handler = _handler(table, m)
        if handler is None:
            raise InvalidValueError(
                f"ONNX export: {where or 'the model'} is a {type(m).__name__}, which cannot be "
                f"exported (nor can a subclass with its own forward); supported: Sequential, "
                f"MLP, {', '.join(sorted(t.__name__ for t in table))}")
        return handler(g, m, v, where)

    y = walk(model, x, "")
    # the output gets its public name (through an Identity when it is the input itself)
    if g.nodes and y.name != input_name and g.nodes[-1].output[0] == y.name:
        g.nodes[-1].output[0] = output_name
    else:
        g.op("Identity", [y.name], out=output_name)
    y = y._replace(name=output_name)
    outputs = [y]
    props = {"chainrule_version": _version(), "input_dtype": str(dtype)}
    if class_names is not None:
        names, kind, label = _label(g, y, class_names, prediction)
        outputs.append(label)
        props["class_names"] = json.dumps(names)
        props["prediction"] = kind
    elif prediction is not None:
        raise InvalidValueError("ONNX export: prediction= needs class_names=")
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidValueError("ONNX export: metadata keys and values must be strings")
        props[k] = v

    graph = onnx.helper.make_graph(
        g.nodes, f"chainrule_{type(model).__name__}", [g.value_info(x)],
        [g.value_info(v) for v in outputs], initializer=g.initializers)
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="chainrule",
                                   producer_version=_version())
    proto.ir_version = onnx.helper.find_min_ir_version_for(opsets)
    proto.doc_string = f"chainrule model: {_summary(model)}"
    onnx.helper.set_model_props(proto, props)
    size = proto.ByteSize()
    if size > _MAX_BYTES:
        raise InvalidValueError(f"ONNX export: the model needs {size} bytes, more than one ONNX "
                                "file can hold (2 GiB)")
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        from ..io import atomic_write

        atomic_write(path, proto.SerializeToString())
    return proto


def _version() -> str:
    from .. import __version__

    return __version__


def _handler(table: Mapping[type, Any], m: Any) -> Any:
    """The handler of ``m``'s type, or of a base type whose ``forward`` it does not override
    (a subclass with its own forward computes something else)."""
    for base in type(m).__mro__:
        if base in table and getattr(type(m), "forward", None) is getattr(base, "forward", None):
            return table[base]
    return None


def _is_container(m: Any) -> bool:
    from ..nn import MLP, Sequential

    # MLP's forward (fused or checkpointed) computes what Sequential's does
    return isinstance(m, Sequential) and type(m).forward in (Sequential.forward, MLP.forward)


def _leaves(model: Any) -> list[Any]:
    if _is_container(model):
        return [leaf for child in model.children() for leaf in _leaves(child)]
    return [model]


def _summary(model: Any) -> str:
    parts = []
    for m in _leaves(model):
        if hasattr(m, "in_features") and hasattr(m, "out_features"):
            parts.append(f"{type(m).__name__}({m.in_features}->{m.out_features})")
        else:
            parts.append(type(m).__name__)
    return " ".join(parts)


def _input_spec(model: Any, input: Any) -> tuple[tuple[int | None, ...], np.dtype]:
    """The graph input's shape (batch axis None) and dtype."""
    from ..nn.preprocessing import PREPROCESSING, input_dtype

    dtype = None
    if input is None or isinstance(input, (int, np.integer)) and not isinstance(input, bool):
        first = _leaves(model)[0]
        if input is not None:
            width = int(input)
        elif isinstance(first, PREPROCESSING):
            width = first.num_features
        elif hasattr(first, "in_features"):
            width = first.in_features
        else:
            raise InvalidValueError(f"ONNX export: cannot tell the input's width from a model "
                                    f"starting with {type(first).__name__}; give input=(None, d)")
        shape: tuple[int | None, ...] = (None, width)
    elif hasattr(input, "shape") and hasattr(input, "dtype"):
        shape = (None,) + tuple(int(d) for d in input.shape[1:])
        dtype = np.dtype(input.dtype)
    elif isinstance(input, (tuple, list)):
        shape = (None,) + tuple(input[1:])
    else:
        raise InvalidValueError(f"ONNX export: input must be a shape such as (None, 4), an "
                                f"example batch or None, got {type(input).__name__}")
    if len(shape) < 2 or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                                 and d >= 1 for d in shape[1:]):
        raise ShapeError(f"ONNX export: the input needs a batch axis and positive feature "
                         f"sizes, e.g. (None, 4); got {input!r}" if not hasattr(input, "shape")
                         else f"ONNX export: the example batch has shape {tuple(input.shape)}; "
                         "expected (batch, features...)")
    if dtype is None:
        dtype = input_dtype(model)
    if dtype not in (np.float32, np.float64):
        raise DTypeError(f"ONNX export: the input must be float32 or float64, got {dtype}")
    return tuple(None if d is None else int(d) for d in shape), dtype


def _label(g: Graph, y: Value, class_names: Any, prediction: str | None
           ) -> tuple[list[str], str, Value]:
    """The ``label`` output: the class index of each row."""
    if isinstance(class_names, str) or not isinstance(class_names, Sequence) or not all(
            isinstance(n, str) for n in class_names) or len(class_names) < 2:
        raise InvalidValueError("ONNX export: class_names must be a list of at least two "
                                "strings")
    names = list(class_names)
    if len(y.shape) != 2:
        raise ShapeError(f"ONNX export: class labels need outputs of shape (N, K), the model "
                         f"gives {len(y.shape)} axes")
    k = y.shape[1]
    kind = prediction or ("argmax" if k != 1 else "logit")
    if kind not in _PREDICTIONS:
        raise InvalidValueError(f"ONNX export: prediction must be one of "
                                f"{', '.join(_PREDICTIONS)}, got {prediction!r}")
    if kind == "argmax":
        if k != len(names):
            raise ShapeError(f"ONNX export: {len(names)} class names for {k} outputs")
        out = g.op("ArgMax", [y.name], out="label", axis=1, keepdims=0)
    else:
        if k != 1 or len(names) != 2:
            raise ShapeError(f"ONNX export: prediction={kind!r} needs one output and two class "
                             f"names, got {k} outputs and {len(names)} names")
        flat = g.op("Reshape", [y.name, g.const(np.asarray([-1], dtype=np.int64), "shape")])
        zero = g.scalar(0.0, y.dtype)
        positive = g.op("GreaterOrEqual" if kind == "sign" else "Greater", [flat, zero])
        out = g.op("Cast", [positive], out="label",
                   to=g.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(np.int64)))
    return names, kind, Value(out, (None,), np.dtype(np.int64))


def tolerance(dtype: Any) -> float:
    """How close ONNX Runtime's outputs are expected to be to chainrule's: 1e-5 in float32,
    1e-12 in float64, relative to max(1, |value|) (see :func:`verify`)."""
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


def verify(onnx_model: Any, model: Any, x: Any, *, tol: float | None = None) -> float:
    """Run ``onnx_model`` (a path, bytes or a ``ModelProto``) in ONNX Runtime on the batch ``x``
    and compare its first output with ``model(x)`` (in evaluation mode, without recording).

    Returns the largest difference, measured as |onnx - chainrule| / max(1, |chainrule|)
    (absolute for small values, relative for large ones; equal NaNs and infinities agree).

    Raises:
        InvalidValueError: the difference exceeds ``tol`` (default :func:`tolerance` of the
            output's dtype), or onnxruntime is not installed.
    """
    import chainrule as cr

    ort = _onnxruntime()
    if isinstance(onnx_model, (str, os.PathLike)):
        blob = Path(onnx_model).read_bytes()
    elif isinstance(onnx_model, bytes):
        blob = onnx_model
    else:
        blob = onnx_model.SerializeToString()
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    dtype = {"tensor(float)": np.float32, "tensor(double)": np.float64}.get(spec.type)
    if dtype is None:
        raise DTypeError(f"verify: the ONNX model's input is a {spec.type}")
    data = np.asarray(x.numpy() if isinstance(x, cr.Tensor) else x, dtype=dtype)
    got = session.run(None, {spec.name: data})[0]
    was_training = model.training
    model.eval()
    try:
        with cr.no_grad():
            want = model(cr.tensor(data)).numpy()
    finally:
        model.train(was_training)
    if got.shape != want.shape:
        raise ShapeError(f"verify: ONNX Runtime gives shape {got.shape}, chainrule "
                         f"{want.shape}")
    err = _difference(got, want)
    limit = tolerance(want.dtype) if tol is None else tol
    if not err <= limit:
        raise InvalidValueError(f"ONNX Runtime's outputs differ from chainrule's by {err:.3g} "
                                f"(more than {limit:g})")
    return err


def _difference(got: np.ndarray, want: np.ndarray) -> float:
    a = got.astype(np.float64)
    b = want.astype(np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.where(same, 0.0, np.abs(a - b) / np.maximum(1.0, np.abs(b)))
    d = np.where(np.isnan(d), np.inf, d)
    return float(d.max()) if d.size else 0.0


def export_run(run_model: Any, path: str | os.PathLike[str] | None = None, *,
               opset: int = DEFAULT_OPSET) -> Any:
    """Export a trained run's model (``chainrule.runs.load_run_model``): raw rows in (its
    preprocessing included), the network's outputs and, for a classifier, the ``label`` output,
    with the run's description in the metadata: ``task``, ``prediction``, ``class_names``,
    ``feature_names`` (the input's columns, in order), ``categories`` (the names of each
    categorical column's codes 0..k-1), ``target``, ``loss``, ``dataset``."""
    run = run_model.run
    columns = run["columns"]
    meta = {"task": run["task"], "loss": run["loss"], "dataset": run["dataset"],
            "feature_names": json.dumps(columns["columns"]),
            "categories": json.dumps(columns["categories"], sort_keys=True),
            "target": json.dumps(columns["target"])}
    classes = run["class_names"] if run["task"] == "classification" else None
    prediction = run["prediction"] if classes is not None else None
    if classes is None:
        meta["prediction"] = run["prediction"]
    return export(run_model.model, path, (None, len(columns["columns"])), opset=opset,
                  class_names=classes, prediction=prediction, metadata=meta)


def sample_rows(run_model: Any, n: int = 256, seed: int = 0) -> np.ndarray:
    """Random raw rows a run's model accepts, to check an export on: numeric columns around the
    training statistics (when the model standardizes), valid codes in categorical columns, and
    some missing values when the model imputes."""
    from ..nn import Impute, OneHot, Standardize

    rng = np.random.default_rng(seed)
    kinds = run_model.run["columns"]["kinds"]
    d = len(kinds)
    mods = _leaves(run_model.model)
    X = rng.standard_normal((n, d)) * 2
    oh = next((m for m in mods if isinstance(m, OneHot)), None)
    codes = dict(zip(oh.columns, oh.categories)) if oh is not None else {}
    st = next((m for m in mods if isinstance(m, Standardize)), None)
    if st is not None:     # the statistics are of the encoded columns: find the numeric ones
        pos = 0
        mean, scale = st.mean.numpy(), st.scale.numpy()
        for j in range(d):
            if j in codes:
                pos += codes[j]
            else:
                X[:, j] = X[:, j] * scale[pos] + mean[pos]
                pos += 1
    for j, k in codes.items():
        X[:, j] = rng.integers(0, k, n)
    if any(isinstance(m, Impute) for m in mods):
        X[rng.random((n, d)) < 0.1] = np.nan
    return X


__all__ = ["export", "export_run", "verify", "tolerance", "sample_rows", "DEFAULT_OPSET",
           "MIN_OPSET", "BATCH"]
