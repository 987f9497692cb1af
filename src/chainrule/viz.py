"""Pictures of the hypothesis: decision regions, activation functions, layer diagrams.

All functions draw with matplotlib's headless Agg backend and write PNG or SVG (by the file's
suffix). They use only the public API: a model is any callable module of chainrule.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidValueError, ShapeError

_SUFFIXES = (".png", ".svg")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise InvalidValueError("pictures need matplotlib: pip install 'chainrule[plot]'") from exc
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _out_path(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix.lower() not in _SUFFIXES:
        raise InvalidValueError(f"{p}: pictures are written as .png or .svg")
    if not p.parent.exists():
        raise InvalidValueError(f"{p}: folder {p.parent} does not exist")
    return p


def predict_grid(model: Any, xlim: tuple[float, float], ylim: tuple[float, float],
                 resolution: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class predictions of a 2-input model over a grid.

    Returns ``(xx, yy, classes)``, each of shape (resolution, resolution). One output gives
    sign(h(x)) in {-1, +1} (0 counted as +1); K outputs give argmax_i f_i.
    """
    xs = np.linspace(*xlim, resolution)
    ys = np.linspace(*ylim, resolution)
    xx, yy = np.meshgrid(xs, ys)
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    return xx, yy, predict_points(model, grid).reshape(xx.shape)


def predict_points(model: Any, X: Any) -> np.ndarray:
    """Classes of raw points ``X`` (N, 2): sign(h(x)) in {-1, +1} (0 counted as +1) for one
    output, argmax_i f_i for K; the picture's regions are these."""
    import chainrule as cr

    dtype = _model_dtype(model)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with cr.no_grad():
            out = np.asarray(model(cr.tensor(np.asarray(X).astype(dtype))).numpy())
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    if out.ndim != 2:
        raise ShapeError(f"the model's output has shape {out.shape}; expected (N, outputs)")
    return np.where(out[:, 0] >= 0, 1, -1) if out.shape[1] == 1 else out.argmax(axis=1)


def _model_dtype(model: Any) -> Any:
    from .nn import Module
    from .nn.preprocessing import input_dtype

    if isinstance(model, Module):
        return input_dtype(model)
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    return params[0].dtype if params else np.float32


def first_layer(model: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(W, b) of the model's first Linear layer, or None."""
    from . import nn

    scale = shift = None
    for m in model.modules() if hasattr(model, "modules") else []:
        if isinstance(m, nn.Standardize):      # s = W (x - mean) / scale + b, in raw x
            shift, scale = m.mean.numpy(), m.scale.numpy()
        elif isinstance(m, (nn.Impute, nn.OneHot)):
            return None
        if isinstance(m, nn.Linear):
            W = m.weight.numpy().astype(np.float64)
            b = m.bias.numpy().astype(np.float64) if m.bias is not None else \
                np.zeros(m.weight.shape[0])
            if scale is not None:
                W = W / scale
                b = b - W @ shift
            return W, b
    return None


def plot_decision_regions(model: Any, X: Any, y: Any, path: str | Path,
                          resolution: int = 200, hyperplanes: bool = True,
                          title: str | None = None) -> Path:
    """Decision regions of a 2-input model with the data on top.

    The dashed lines are where each first-layer hidden unit's signal is zero,
    s_j^(1) = w_1j x_1 + w_2j x_2 + b_j = 0: the hyperplanes that the network combines into a
    nonlinear hypothesis.

    Args:
        model: a chainrule module taking (N, 2) inputs.
        X: the data, shape (N, 2).
        y: labels, shape (N,) (±1 or class indices).
        path: ``.png`` or ``.svg`` file to write.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ShapeError(f"decision regions need 2-D inputs, got data of shape {X.shape}")
    if y.shape[0] != X.shape[0]:
        raise ShapeError(f"{X.shape[0]} points but {y.shape[0]} labels")
    out = _out_path(path)
    plt = _pyplot()
    pad = 0.1 * (X.max(axis=0) - X.min(axis=0) + 1e-9)
    xlim = (X[:, 0].min() - pad[0], X[:, 0].max() + pad[0])
    ylim = (X[:, 1].min() - pad[1], X[:, 1].max() + pad[1])
    xx, yy, classes = predict_grid(model, xlim, ylim, resolution)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    labels = np.unique(np.concatenate([np.unique(classes), np.unique(y)]))
    cmap = plt.get_cmap("coolwarm" if len(labels) <= 2 else "tab10")
    index = {v: i for i, v in enumerate(labels)}
    region = np.vectorize(index.get)(classes)
    ax.contourf(xx, yy, region, levels=np.arange(len(labels) + 1) - 0.5, cmap=cmap, alpha=0.3)
    ax.scatter(X[:, 0], X[:, 1], c=[index[v] for v in y], cmap=cmap, vmin=-0.5,
               vmax=len(labels) - 0.5, edgecolors="k", s=25)
    if hyperplanes and (layer := first_layer(model)) is not None:
        W, b = layer
        line_x = np.linspace(*xlim, 2)
        for j in range(W.shape[0]):
            w1, w2 = W[j]
            if abs(w2) > 1e-12:
                ax.plot(line_x, -(w1 * line_x + b[j]) / w2, "k--", lw=0.8, alpha=0.6)
            elif abs(w1) > 1e-12:
                ax.axvline(-b[j] / w1, color="k", ls="--", lw=0.8, alpha=0.6)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title or "decision regions; dashed: $s_j^{(1)} = 0$")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_activations(path: str | Path, names: Sequence[str] = ("sigmoid", "tanh", "relu",
                                                                   "leaky_relu", "sign"),
                     span: float = 4.0) -> Path:
    """Each activation theta(s) (solid) with its derivative theta'(s) (dashed), computed by the
    engine's own backward pass (sign has derivative 0 where it is defined)."""
    import chainrule as cr

    out = _out_path(path)
    plt = _pyplot()
    s = np.linspace(-span, span, 401)
    fig, axes = plt.subplots(1, len(names), figsize=(3 * len(names), 3), squeeze=False)
    for ax, name in zip(axes[0], names):
        fn = getattr(cr, name, None)
        if fn is None:
            raise InvalidValueError(f"unknown activation {name!r}")
        x = cr.tensor(s, dtype="float64", requires_grad=True)
        y = fn(x)
        if y.requires_grad:
            y.sum().backward()
            dy = x.grad
        else:
            dy = np.zeros_like(s)
        ax.plot(s, y.numpy(), label=r"$\theta(s)$")
        ax.plot(s, dy, "--", label=r"$\theta'(s)$")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(name)
        ax.set_xlabel("s")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_network(model: Any, path: str | Path, max_neurons: int = 12) -> Path:
    """A layer diagram: neurons as circles, weights as lines (width ~ |w|, red < 0 < blue)."""
    from . import nn

    out = _out_path(path)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InvalidValueError("the model has no Linear layers to draw")
    sizes = [linears[0].in_features] + [m.out_features for m in linears]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.8 * len(sizes) + 1, 4))
    shown = [min(n, max_neurons) for n in sizes]

    def ypos(n: int) -> np.ndarray:
        return np.linspace(0, 1, n) if n > 1 else np.array([0.5])

    wmax = max(float(np.abs(m.weight.numpy()).max()) for m in linears) or 1.0
    for l, m in enumerate(linears):
        W = m.weight.numpy()
        y0, y1 = ypos(shown[l]), ypos(shown[l + 1])
        for j in range(shown[l + 1]):
            for i in range(shown[l]):
                w = W[j, i]
                ax.plot([l, l + 1], [y0[i], y1[j]], color="tab:blue" if w >= 0 else "tab:red",
                        lw=0.3 + 2.5 * abs(w) / wmax, alpha=0.7, zorder=1)
    for l, n in enumerate(shown):
        ys = ypos(n)
        ax.scatter(np.full(n, l), ys, s=220, c="white", edgecolors="k", zorder=2)
        label = "input $x^{(0)}$" if l == 0 else f"layer {l}"
        suffix = f" ({sizes[l]} shown {n})" if sizes[l] > n else f" ({sizes[l]})"
        ax.text(l, -0.12, label + suffix, ha="center", fontsize=8)
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    ax.set_ylim(-0.2, 1.1)
    ax.axis("off")
    ax.set_title("weights $w_{ij}^{(l)}$: blue > 0, red < 0, width ~ |w|")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_confusion(confusion: np.ndarray, path: Path, class_names: Any = None) -> Path:
    """The confusion matrix (rows: true class, columns: predicted) as a heat map."""
    plt = _pyplot()
    k = confusion.shape[0]
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * k, 1 + 0.45 * k))
    ax.imshow(confusion, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if confusion[i, j] > confusion.max() / 2 else "black")
    names = [str(c) for c in class_names] if class_names is not None else [str(i)
                                                                           for i in range(k)]
    ax.set_xticks(range(k), names, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
