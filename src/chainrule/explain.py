"""``chainrule.explain``: one forward (and backward) pass, printed in the lecture's symbols.

With no arguments it runs the lecture's worked example: x = (1.5, -1.0, 1.3), ReLU,
W1 = [[0.3,0.4,0.2],[0.3,0.5,0.2],[0.8,1.0,-1.0]], W2 = [[0,-1.2,0.5],[0.9,1.0,0]],
W3 = [[-1.0,1.0]], no biases, giving h(x) = 0.489. With a target it continues with the loss, every
delta^(l), every de/dw_ij^(l) and de/db_j^(l), and the SGD update for a learning rate eta.

The numbers come from :mod:`chainrule.reference.lecture`, which is independent of the autodiff
engine; the tests check both against each other.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidValueError
from .reference import lecture

FORMATS = ("text", "markdown", "latex", "json")

WORKED_EXAMPLE = {
    "x": [1.5, -1.0, 1.3],
    "W": [
        [[0.3, 0.4, 0.2], [0.3, 0.5, 0.2], [0.8, 1.0, -1.0]],
        [[0.0, -1.2, 0.5], [0.9, 1.0, 0.0]],
        [[-1.0, 1.0]],
    ],
    "activation": "relu",
}


class WeightsFileError(InvalidValueError):
    """A weights file or input that cannot describe a network (shapes, numbers, JSON)."""


@dataclass
class Explanation:
    """A forward (and optionally backward) pass in the lecture's symbols."""

    trace: lecture.Trace
    activation: str
    loss: str
    target: Any | None
    eta: float
    new_W: list[Any] | None = None
    new_b: list[Any] | None = None

    @property
    def h(self) -> Any:
        return self.trace.h[0]

    def to_dict(self) -> dict[str, Any]:
        t = self.trace
        layers = []
        for l in range(1, t.L + 1):
            layer: dict[str, Any] = {"l": l, "W": t.W[l].tolist(), "b": t.b[l].tolist(),
                                     "s": t.s[l][0].tolist(), "x": t.x[l][0].tolist()}
            if self.target is not None:
                layer.update(delta=t.delta[l][0].tolist(), grad_W=t.grad_W[l].tolist(),
                             grad_b=t.grad_b[l].tolist(), new_W=self.new_W[l].tolist(),
                             new_b=self.new_b[l].tolist())
            layers.append(layer)
        out: dict[str, Any] = {"activation": self.activation, "loss": self.loss,
                               "x0": t.x[0][0].tolist(), "layers": layers,
                               "h": t.h[0].tolist()}
        if self.loss == "cross-entropy":
            out["p"] = lecture.softmax(t.s[t.L])[0].tolist()
            out["prediction"] = int(np.argmax(t.s[t.L][0]))
        elif t.h.shape[1] == 1:
            out["prediction"] = float(np.sign(t.h[0, 0]))
        if self.target is not None:
            out.update(target=np.asarray(self.target).tolist(), e=t.loss, eta=self.eta)
        return out

    def render(self, fmt: str = "text") -> str:
        """The explanation as ``text`` (rich tables), ``markdown``, ``latex`` or ``json``."""
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        if fmt == "markdown":
            return _markdown(self)
        if fmt == "latex":
            return _latex(self)
        if fmt == "text":
            return _text(self)
        raise InvalidValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def explain(
    W: list[Any] | None = None,
    b: list[Any] | None = None,
    x: Any | None = None,
    activation: str | None = None,
    target: Any | None = None,
    loss: str = "square",
    eta: float = 0.1,
    output_activation: str | None = None,
) -> Explanation:
    """Run the lecture's forward pass (and, with ``target``, backpropagation and one SGD step).

    Args:
        W: weight matrices W1..WL, ``W[l-1]`` of shape (d_l, d_{l-1}); the worked example's when
            omitted.
        b: biases b1..bL (zeros when omitted).
        x: one input vector of length d_0 (the worked example's when omitted).
        activation: theta: identity, sign, sigmoid, tanh, relu or leaky_relu (slope 0.01; relu
            by default).
        target: y: a number (square loss, one output) / a vector of d_L numbers, or for
            cross-entropy a class index or a one-hot/probability vector of length K.
        loss: ``"square"`` or ``"cross-entropy"``.
        eta: the SGD learning rate.
        output_activation: the last layer's activation when it differs from theta (a saved MLP
            with a linear output has ``"identity"``); theta by default, as in the lecture.
    """
    activation = activation or WORKED_EXAMPLE["activation"]
    if activation not in lecture.ACTIVATIONS:  # checked here for a clear message
        raise InvalidValueError(f"unknown activation {activation!r}; choose one of "
                                f"{', '.join(lecture.ACTIVATIONS)}")
    if loss not in lecture.LOSSES:
        raise InvalidValueError(f"unknown loss {loss!r}; choose one of {', '.join(lecture.LOSSES)}")
    W_list = [_matrix(w, f"W{l + 1}") for l, w in enumerate(W if W is not None
                                                             else WORKED_EXAMPLE["W"])]
    if not W_list:
        raise WeightsFileError("the network needs at least one layer")
    x0 = _vector(x if x is not None else WORKED_EXAMPLE["x"], "x")
    b_list = ([np.zeros(w.shape[0]) for w in W_list] if b is None
              else [_vector(v, f"b{l + 1}") for l, v in enumerate(b)])
    _check_shapes(W_list, b_list, x0)
    Ws, bs = [None, *W_list], [None, *b_list]
    if output_activation is not None and output_activation not in lecture.ACTIVATIONS:
        raise InvalidValueError(f"unknown output activation {output_activation!r}")
    t = lecture.forward(Ws, bs, x0[None, :], activation, loss, output_activation)
    result = Explanation(trace=t, activation=activation, loss=loss, target=target, eta=eta)
    if target is not None:
        if activation == "sign":
            raise InvalidValueError("sign is forward only: no deltas can be backpropagated "
                                    "through it (choose identity, sigmoid, tanh, relu or "
                                    "leaky_relu)")
        y = _target(target, loss, W_list[-1].shape[0])
        lecture.backward(t, y[None, :], activation, loss)
        result.new_W, result.new_b = lecture.sgd_step(t, eta)
    return result


def load_weights(path: str | Path) -> dict[str, Any]:
    """Read W and b per layer (and optionally x and activation) from a JSON file or a saved
    chainrule MLP (``.safetensors``)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsFileError(f"{p}: no such file")
    if p.suffix == ".safetensors":
        return _weights_from_model(p)
    try:
        data = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WeightsFileError(f"{p}: not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(data, dict) or "W" not in data:
        raise WeightsFileError(f"{p}: expected a JSON object with a list \"W\" of weight "
                               "matrices (and optionally \"b\", \"x\", \"activation\")")
    unknown = set(data) - {"W", "b", "x", "activation", "output_activation"}
    if unknown:
        raise WeightsFileError(f"{p}: unknown keys {sorted(unknown)}")
    for key in ("W", "b"):
        if key in data and not isinstance(data[key], list):
            raise WeightsFileError(f"{p}: \"{key}\" must be a list of "
                                   f"{'matrices' if key == 'W' else 'vectors'}, one per layer")
    if "b" in data and len(data["b"]) != len(data["W"]):
        raise WeightsFileError(f"{p}: {len(data['W'])} weight matrices but {len(data['b'])} "
                               "bias vectors")
    for key in ("activation", "output_activation"):
        if key in data and not isinstance(data[key], str):
            raise WeightsFileError(f"{p}: \"{key}\" must be an activation name")
    return data


def _weights_from_model(p: Path) -> dict[str, Any]:
    from . import nn
    from .io import load

    model = load(p)
    pre = []
    if isinstance(model, nn.Sequential) and not isinstance(model, nn.MLP):
        pre = [m for m in model if isinstance(m, nn.preprocessing.PREPROCESSING)]
        if pre:
            model = model[len(pre)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise WeightsFileError(f"{p}: the model has no Linear layers")
    out: dict[str, Any] = {"W": [m.weight.numpy().astype(np.float64) for m in linears],
                           "b": [m.bias.numpy().astype(np.float64) if m.bias is not None
                                 else np.zeros(m.out_features) for m in linears]}
    config = (model.spec().get("config") or {}) if hasattr(model, "spec") else {}
    act = config.get("activation")
    if isinstance(act, str) and act in lecture.ACTIVATIONS:
        out["activation"] = act
    out_act = config.get("output_activation")
    out["output_activation"] = out_act if isinstance(out_act, str) else "identity"
    if pre:
        out["preprocess"] = _preprocessor(pre, linears[0].in_features)
    return out


def _preprocessor(layers: list[Any], width: int) -> Any:
    """raw x -> x^(0): the model's own preprocessing layers (the network sees exactly this)."""
    from . import nn, no_grad, tensor

    def run(x: Any) -> np.ndarray:
        raw = _vector(x, "x")
        n = layers[0].num_features
        if raw.shape != (n,):
            raise WeightsFileError(f"the model takes {n} raw input values, got {raw.shape[0]}")
        with no_grad():
            out = nn.Sequential(*layers)(tensor(raw[None, :].astype(np.float64))).numpy()
        return out[0].astype(np.float64)

    run.raw_width = layers[0].num_features  # type: ignore[attr-defined]
    return run


def _matrix(w: Any, name: str) -> np.ndarray:
    arr = _numbers(w, name)
    if arr.ndim != 2 or 0 in arr.shape:
        raise WeightsFileError(f"{name} must be a non-empty matrix (a list of rows), got shape "
                               f"{arr.shape}")
    return arr


def _vector(v: Any, name: str) -> np.ndarray:
    arr = _numbers(v, name)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1:
        raise WeightsFileError(f"{name} must be a vector, got shape {arr.shape}")
    return arr


def _numbers(v: Any, name: str) -> np.ndarray:
    if isinstance(v, (str, bytes, dict)):
        raise WeightsFileError(f"{name} must hold numbers, got {type(v).__name__}")
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError, RecursionError, OverflowError):
        raise WeightsFileError(f"{name} must hold numbers only (rows of equal length)") from None
    if not np.isfinite(arr).all():
        raise WeightsFileError(f"{name} holds NaN or infinity")
    return arr


def _check_shapes(W: list[np.ndarray], b: list[np.ndarray], x0: np.ndarray) -> None:
    if len(b) != len(W):
        raise WeightsFileError(f"{len(W)} weight matrices but {len(b)} bias vectors")
    if W[0].shape[1] != x0.shape[0]:
        raise WeightsFileError(f"the input has {x0.shape[0]} values but W1 has {W[0].shape[1]} "
                               "columns (one per input)")
    for l in range(1, len(W)):
        if W[l].shape[1] != W[l - 1].shape[0]:
            raise WeightsFileError(
                f"W{l + 1} has {W[l].shape[1]} columns but layer {l} has {W[l - 1].shape[0]} "
                f"neurons (W{l} has shape {W[l - 1].shape})")
    for l, (w, bias) in enumerate(zip(W, b), start=1):
        if bias.shape[0] != w.shape[0]:
            raise WeightsFileError(f"b{l} has {bias.shape[0]} entries but W{l} has {w.shape[0]} "
                                   "rows (one per neuron)")


def _target(target: Any, loss: str, d_out: int) -> np.ndarray:
    y = _vector(target, "target")
    if loss == "cross-entropy":
        if y.shape[0] == 1 and d_out > 1:
            k = y[0]
            if not float(k).is_integer() or not 0 <= k < d_out:
                raise InvalidValueError(f"target class {k} is not in 0..{d_out - 1}")
            y = np.eye(d_out)[int(k)]
        if y.shape[0] != d_out:
            raise InvalidValueError(f"target has {y.shape[0]} entries for {d_out} classes")
        return y
    if y.shape[0] != d_out:
        raise InvalidValueError(f"target has {y.shape[0]} entries but the network has {d_out} "
                                "outputs")
    return y


# --------------------------------------------------------------------------- rendering
def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _rows(e: Explanation, l: int) -> tuple[list[str], list[list[str]]]:
    t = e.trace
    head = ["j", f"b_j^({l})", f"s_j^({l})", f"x_j^({l})"]
    if e.target is not None:
        head += [f"δ_j^({l})", f"∂e/∂b_j^({l})"]
    rows = []
    for j in range(t.s[l].shape[1]):
        row = [str(j + 1), _fmt(t.b[l][j]), _fmt(t.s[l][0, j]), _fmt(t.x[l][0, j])]
        if e.target is not None:
            row += [_fmt(t.delta[l][0, j]), _fmt(t.grad_b[l][j])]
        rows.append(row)
    return head, rows


def _summary_lines(e: Explanation) -> list[str]:
    d = e.to_dict()
    lines = [f"h(x) = {', '.join(_fmt(v) for v in d['h'])}"]
    if "p" in d:
        lines.append(f"p = softmax(s^(L)) = ({', '.join(_fmt(v) for v in d['p'])}), "
                     f"prediction argmax_i f_i = {d['prediction']}")
    elif "prediction" in d:
        lines.append(f"prediction sign(h(x)) = {d['prediction']:+g}")
    if e.target is not None:
        name = "(h(x) - y)^2" if e.loss == "square" else "-sum_i y_i log p_i"
        lines.append(f"e = {name} = {_fmt(d['e'])}  (y = {d['target']}, eta = {e.eta})")
    return lines


def _text(e: Explanation) -> str:
    from rich.console import Console
    from rich.table import Table

    console = Console(record=True, width=120, file=io.StringIO(), color_system=None)
    t = e.trace
    console.print(f"x^(0) = ({', '.join(_fmt(v) for v in t.x[0][0])}),  θ = {e.activation}, "
                  f"loss = {e.loss}")
    for l in range(1, t.L + 1):
        head, rows = _rows(e, l)
        act = "s" if e.loss == "cross-entropy" and l == t.L else f"θ(s^({l}))"
        table = Table(title=f"layer {l}: s^({l}) = W{l} x^({l - 1}) + b^({l}), x^({l}) = {act}",
                      title_justify="left")
        for h in head:
            table.add_column(h, justify="right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        if e.target is not None:
            g = Table(title=f"∂e/∂w_ij^({l}) = x_i^({l - 1}) δ_j^({l}) → w_ij^({l}) − "
                      f"{e.eta} ∂e/∂w_ij^({l})", title_justify="left")
            g.add_column("j \\ i", justify="right")
            for i in range(t.W[l].shape[1]):
                g.add_column(f"i={i + 1}: grad → new w", justify="right")
            for j in range(t.W[l].shape[0]):
                g.add_row(str(j + 1), *(f"{_fmt(t.grad_W[l][j, i])} → {_fmt(e.new_W[l][j, i])}"
                                        for i in range(t.W[l].shape[1])))
            console.print(g)
    for line in _summary_lines(e):
        console.print(line)
    return console.export_text()


def _markdown(e: Explanation) -> str:
    t = e.trace
    out = [f"**Input** $x^{{(0)}} = ({', '.join(_fmt(v) for v in t.x[0][0])})$, "
           f"θ = {e.activation}, loss = {e.loss}", ""]
    for l in range(1, t.L + 1):
        head, rows = _rows(e, l)
        out.append(f"**Layer {l}**")
        out.append("")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---:|" * len(head))
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out.append("")
        if e.target is not None:
            cols = t.W[l].shape[1]
            out.append(f"∂e/∂w_ij^({l}) (row j, column i):")
            out.append("")
            out.append("| j \\ i | " + " | ".join(str(i + 1) for i in range(cols)) + " |")
            out.append("|" + "---:|" * (cols + 1))
            out += ["| " + str(j + 1) + " | " + " | ".join(_fmt(v) for v in t.grad_W[l][j]) + " |"
                    for j in range(t.W[l].shape[0])]
            out.append("")
    out += [line + "  " for line in _summary_lines(e)]
    return "\n".join(out) + "\n"


def _latex_vec(v: Any) -> str:
    return r"\begin{pmatrix}" + r" \\ ".join(_fmt(x) for x in v) + r"\end{pmatrix}"


def _latex_mat(m: Any) -> str:
    return r"\begin{pmatrix}" + r" \\ ".join(" & ".join(_fmt(x) for x in row) for row in m) + \
        r"\end{pmatrix}"


def _latex(e: Explanation) -> str:
    t = e.trace
    lines = [r"\begin{align*}", rf"x^{{(0)}} &= {_latex_vec(t.x[0][0])} \\"]
    for l in range(1, t.L + 1):
        lines.append(rf"s^{{({l})}} &= W^{{({l})}} x^{{({l - 1})}} + b^{{({l})}} "
                     rf"= {_latex_vec(t.s[l][0])}, & x^{{({l})}} &= {_latex_vec(t.x[l][0])} \\")
    lines.append(rf"h(x) &= {_latex_vec(t.h[0])} \\")
    if e.target is not None:
        lines.append(rf"e &= {_fmt(t.loss)} \\")
        for l in range(t.L, 0, -1):
            lines.append(rf"\delta^{{({l})}} &= {_latex_vec(t.delta[l][0])}, & "
                         rf"\frac{{\partial e}}{{\partial W^{{({l})}}}} &= "
                         rf"{_latex_mat(t.grad_W[l])} \\")
    lines[-1] = lines[-1].rstrip(" \\")
    lines.append(r"\end{align*}")
    return "\n".join(lines) + "\n"
