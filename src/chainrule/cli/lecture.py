"""``chainrule explain`` and ``chainrule plot``: the lecture's worked example and its pictures."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from .app import app, fail, plot_app, user_errors


class Format(str, Enum):
    text = "text"
    markdown = "markdown"
    latex = "latex"
    json = "json"


class Loss(str, Enum):
    square = "square"
    cross_entropy = "cross-entropy"


def _numbers(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        fail(f"{what} must be comma-separated numbers, got {text!r}")
    return []


@app.command()
@user_errors
def explain(
    target: str = typer.Option(None, "--target", "-y", help="y: a number, a comma-separated "
                               "vector, or a class index for cross-entropy. Adds the loss, every "
                               "delta, every gradient and the SGD update."),
    activation: str = typer.Option(None, "--activation", "-a",
                                   help="theta: identity, sign, sigmoid, tanh, relu or "
                                   "leaky_relu (default relu, or the saved model's)."),
    loss: Loss = typer.Option(Loss.square, "--loss", help="square or cross-entropy."),
    weights: Path = typer.Option(None, "--weights", "-w", help="JSON file with \"W\" (list of "
                                 "matrices) and optionally \"b\", \"x\", \"activation\"; or a "
                                 "saved chainrule MLP (.safetensors)."),
    input: str = typer.Option(None, "--input", "-x", help="x: comma-separated input values."),
    eta: float = typer.Option(0.1, "--eta", help="SGD learning rate for the update."),
    format: Format = typer.Option(Format.text, "--format", "-f", help="Output format."),
) -> None:
    """Forward pass (and backpropagation) in the lecture's symbols; the worked example by
    default."""
    from ..explain import explain as run, load_weights

    spec: dict[str, Any] = load_weights(weights) if weights is not None else {}
    x = _numbers(input, "--input") if input is not None else spec.get("x")
    if "preprocess" in spec:   # a trained model: --input is a raw row, x^(0) its preprocessing
        if x is None:
            fail(f"--input: give one raw row of {spec['preprocess'].raw_width} values for "
                 "this model")
        raw = x
        x = spec["preprocess"](raw).tolist()
        if format is Format.text:
            typer.echo(f"raw input {raw} -> the model's preprocessing -> x^(0)")
    y = _numbers(target, "--target") if target is not None else None
    result = run(W=spec.get("W"), b=spec.get("b"), x=x,
                 activation=activation or spec.get("activation"), target=y,
                 loss=loss.value, eta=eta, output_activation=spec.get("output_activation"))
    sys.stdout.write(result.render(format.value))


def _xor_model_and_data(seed: int) -> tuple[Any, Any, Any]:
    """A 2-4-1 tanh MLP trained on XOR with SGD and square loss (labels ±1)."""
    import numpy as np

    import chainrule as cr

    X = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=np.float32)
    y = np.array([-1, 1, 1, -1], dtype=np.float32)
    cr.manual_seed(seed)
    model = cr.nn.MLP([2, 4, 1], activation="tanh", output_activation="tanh")
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    xt, yt = cr.tensor(X), cr.tensor(y[:, None])
    for _ in range(1000):
        loss = cr.nn.functional.mse_loss(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, X, y


@plot_app.command("regions")
@user_errors
def plot_regions(
    out: Path = typer.Argument(..., help="Output file (.png or .svg)."),
    model: Path = typer.Option(None, "--model", "-m", help="A saved chainrule model with 2 "
                               "inputs; without it a 2-4-1 tanh MLP is trained on XOR."),
    data: Path = typer.Option(None, "--data", help="Labelled raw rows to draw (CSV/NPZ with "
                              "the model's columns); default with a run directory: its test "
                              "part."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Decision regions of sign(h(x)) or argmax, with the data and the first-layer hyperplanes."""
    from ..viz import plot_decision_regions

    if model is None:
        net, X, y = _xor_model_and_data(seed)
        title = "XOR: 2-4-1 tanh MLP, sign(h(x)); dashed: $s_j^{(1)}=0$"
    else:
        net, X, y = _model_and_points(model, data)
        title = None
    path = plot_decision_regions(net, X, y, out, title=title)
    typer.echo(f"wrote {path}")


def _model_and_points(model: Path, data: Path | None) -> tuple[Any, Any, Any]:
    """A trained model (with its preprocessing) and raw labelled rows to draw over it."""
    from ..runs import load_run_model

    rm = load_run_model(model)
    if len(rm.schema.columns) != 2 or rm.schema.categories:
        fail(f"{model}: decision regions are drawn for models with 2 numeric inputs; this one "
             f"has {len(rm.schema.columns)}")
    if rm.task != "classification":
        fail(f"{model}: decision regions need a classifier")
    if data is not None:
        table = rm.read(data, need_target=True)
        X, y = table.X, rm.targets(table.y, str(data))
    elif Path(model).is_dir():
        from ..runs.evaluation import recorded_rows

        X, y, _ = recorded_rows(Path(model), "test", rm.task)
    else:
        fail("--data FILE (labelled rows) is needed to draw a model file's regions")
    if rm.run["prediction"] == "sign":
        y = 2 * y - 1
    return rm.model, X, y


@plot_app.command("activations")
@user_errors
def plot_activations_cmd(out: Path = typer.Argument(..., help="Output file (.png or .svg).")
                         ) -> None:
    """The activation functions theta(s) with their derivatives theta'(s)."""
    from ..viz import plot_activations

    typer.echo(f"wrote {plot_activations(out)}")


@plot_app.command("network")
@user_errors
def plot_network_cmd(
    out: Path = typer.Argument(..., help="Output file (.png or .svg)."),
    model: Path = typer.Option(None, "--model", "-m", help="A saved chainrule model; without "
                               "it the XOR network is trained and drawn."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """A layer diagram of a small network with its weights."""
    from ..viz import plot_network

    if model is None:
        net = _xor_model_and_data(seed)[0]
    else:
        from ..io import load

        net = load(model)
    typer.echo(f"wrote {plot_network(net, out)}")
