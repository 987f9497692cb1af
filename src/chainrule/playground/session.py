"""One playground tab: its data, its network, its optimizer and its training, all in chainrule.

A :class:`Session` is built from a :class:`Config` (checked here, with the bounds the server
enforces) and trained a step at a time with chainrule's public API: ``nn.MLP`` in float64,
``nn.functional.mse_loss`` (the lecture's square loss, labels -1/+1, prediction sign(h(x))) or
``nn.functional.cross_entropy`` (softmax, prediction argmax), and ``chainrule.optim``. What the
page draws comes from :meth:`Session.frame`; what it shows for a clicked point comes from
:meth:`Session.explain_point`, which hands the network's weights to
:func:`chainrule.explain.explain` (the lecture's reference implementation), so the page shows the
numbers ``chainrule explain`` prints for the same weights, input and target.

Nothing here knows about HTTP; errors a user can cause are :class:`PlaygroundError`.
"""

from __future__ import annotations

import base64
import math
import numbers
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

import chainrule as cr
from chainrule.errors import InvalidValueError
from chainrule.explain import WORKED_EXAMPLE, _fmt, _rows, _summary_lines, explain
from chainrule.nn import functional as F
from chainrule.reference import lecture

MAX_HIDDEN_LAYERS = 8
MAX_UNITS = 64
MAX_POINTS = 5000
MIN_POINTS = 10

DATASETS = ("xor", "moons", "circles", "spirals", "blobs", "gaussians")
#: feature name -> (label on the page, function of the raw coordinates x1, x2)
FEATURES: dict[str, tuple[str, Any]] = {
    "x1": ("x₁", lambda X: X[:, 0]),
    "x2": ("x₂", lambda X: X[:, 1]),
    "x1^2": ("x₁²", lambda X: X[:, 0] * X[:, 0]),
    "x2^2": ("x₂²", lambda X: X[:, 1] * X[:, 1]),
    "x1*x2": ("x₁x₂", lambda X: X[:, 0] * X[:, 1]),
    "sin(x1)": ("sin x₁", lambda X: np.sin(X[:, 0])),
    "sin(x2)": ("sin x₂", lambda X: np.sin(X[:, 1])),
}
ACTIVATIONS = ("tanh", "relu", "sigmoid", "leaky_relu")
#: the last layer's activation under the square loss: "same" is theta, as in the lecture
OUTPUT_ACTIVATIONS = ("tanh", "identity", "same")
LOSSES = ("square", "cross-entropy")
OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop", "adagrad")
PRESETS = ("lecture",)

GRID = 64        # the decision-region picture: GRID x GRID points of the input plane
UNIT_GRID = 24   # each unit's picture (12 when a layer is wider than 16 units)


class PlaygroundError(InvalidValueError):
    """A parameter the playground cannot take (unknown name, out of bounds, wrong type)."""


@dataclass
class Config:
    """Everything the page can choose. ``dataset="lecture"`` is the lecture's worked example:
    one point x = (1.5, -1, 1.3) with y = +1 and the 3-3-2-1 network with its weights."""

    dataset: str = "circles"
    noise: float = 0.05
    points: int = 500
    train_ratio: float = 0.5
    seed: int = 0
    features: list[str] = field(default_factory=lambda: ["x1", "x2"])
    hidden: list[int] = field(default_factory=lambda: [4, 2])
    activation: str = "tanh"
    output_activation: str = "tanh"
    loss: str = "square"
    learning_rate: float = 0.03
    batch_size: int = 10
    l2: float = 0.0
    optimizer: str = "sgd"

    @classmethod
    def lecture(cls) -> Config:
        return cls(dataset="lecture", noise=0.0, points=1, train_ratio=1.0,
                   features=["x1", "x2", "x3"], hidden=[3, 2],
                   activation=WORKED_EXAMPLE["activation"], output_activation="same",
                   loss="square", learning_rate=0.1, batch_size=1, optimizer="sgd")

    @classmethod
    def from_dict(cls, data: Any, base: Config | None = None) -> Config:
        """A checked config from JSON: keys not given keep ``base``'s (the defaults'); an unknown
        key, a wrong type or a value out of bounds is a :class:`PlaygroundError`."""
        if not isinstance(data, dict):
            raise PlaygroundError("the configuration must be a JSON object")
        data = dict(data)
        preset = data.pop("preset", None)
        if preset is not None and preset not in PRESETS:
            raise PlaygroundError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise PlaygroundError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; the "
                                  f"parameters are {', '.join(sorted(names))}")
        to_lecture = preset == "lecture" or data.get("dataset") == "lecture"
        in_lecture = base is not None and base.dataset == "lecture" and "dataset" not in data
        if to_lecture or in_lecture:   # the example's data and network are fixed
            base = cls.lecture() if to_lecture else base
            fixed = {"dataset", "noise", "points", "train_ratio", "features", "hidden", "loss",
                     "batch_size", "seed"}
            data = {k: v for k, v in data.items() if k not in fixed}
        elif base is not None and base.dataset == "lecture":
            base = None    # leaving the lecture's example: the defaults, not its network
        values = asdict(base if base is not None else cls())
        values.update(data)
        c = cls(**values)
        c._check()
        return c

    def _check(self) -> None:
        lecture_set = self.dataset == "lecture"
        _choice("dataset", self.dataset, DATASETS + (("lecture",) if lecture_set else ()))
        self.noise = _real("noise", self.noise, 0.0, 1.0)
        self.points = _int("points", self.points, 1 if lecture_set else MIN_POINTS, MAX_POINTS)
        self.train_ratio = _real("train_ratio", self.train_ratio, 0.1, 1.0 if lecture_set else 0.9)
        self.seed = _int("seed", self.seed, 0, 2**31 - 1)
        if not isinstance(self.features, list) or not self.features:
            raise PlaygroundError("features must be a non-empty list of feature names")
        allowed = ("x1", "x2", "x3") if lecture_set else tuple(FEATURES)
        for f in self.features:
            _choice("feature", f, allowed)
        if len(set(self.features)) != len(self.features):
            raise PlaygroundError("features must not repeat")
        self.features = [f for f in allowed if f in self.features]    # the page's order
        if not isinstance(self.hidden, list) or len(self.hidden) > MAX_HIDDEN_LAYERS:
            raise PlaygroundError(f"hidden must be a list of at most {MAX_HIDDEN_LAYERS} layer "
                                  "widths")
        self.hidden = [_int("units in a hidden layer", n, 1, MAX_UNITS) for n in self.hidden]
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        _choice("loss", self.loss, LOSSES)
        self.learning_rate = _real("learning_rate", self.learning_rate, 0.0, 10.0,
                                   open_low=True)
        self.l2 = _real("l2", self.l2, 0.0, 1.0)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        n_train = max(1, round(self.points * self.train_ratio))
        self.batch_size = _int("batch_size", self.batch_size, 1, MAX_POINTS)
        if self.batch_size > n_train:
            raise PlaygroundError(f"batch_size {self.batch_size} is larger than the {n_train} "
                                  "training points")
        if self.points - n_train < 1 and not lecture_set:
            raise PlaygroundError("the test part would be empty: lower train_ratio or add points")
        if self.loss == "square" and self.num_classes > 2:
            raise PlaygroundError(f"{self.dataset} has {self.num_classes} classes: the square "
                                  "loss with sign(h(x)) is for two; choose cross-entropy")

    @property
    def num_classes(self) -> int:
        return 3 if self.dataset == "blobs" else 2

    def training_only_change(self, other: Config) -> bool:
        """Whether ``other`` differs from this config only in how training goes on (learning
        rate, batch size, L2, optimizer), so the network keeps its weights."""
        keep = {"learning_rate", "batch_size", "l2", "optimizer"}
        a, b = asdict(self), asdict(other)
        return all(a[k] == b[k] for k in a if k not in keep)


def _choice(what: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise PlaygroundError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")


def _real(what: str, value: Any, lo: float, hi: float, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not math.isfinite(value):
        raise PlaygroundError(f"{what} must be a finite number, got {value!r}")
    if value > hi or value < lo or (open_low and value == lo):
        low = f"> {lo:g}" if open_low else f">= {lo:g}"
        raise PlaygroundError(f"{what} must be {low} and <= {hi:g}, got {value!r}")
    return float(value)


def _int(what: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise PlaygroundError(f"{what} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise PlaygroundError(f"{what} must be between {lo} and {hi}, got {value}")
    return int(value)


def make_points(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """The raw points (N, 2), or (1, 3) for the lecture's example, and their class labels,
    from ``chainrule.data``'s seeded generators, in float64."""
    from chainrule.data import synthetic

    if config.dataset == "lecture":
        return np.array([WORKED_EXAMPLE["x"]], dtype=np.float64), np.array([1])
    kw: dict[str, Any] = {}
    if config.dataset == "blobs":   # three clusters in the unit square's neighbourhood
        kw["center_box"] = (-1.0, 1.0)
    make = synthetic.GENERATORS[config.dataset][0]
    X, y = make(n_samples=config.points, noise=config.noise, seed=config.seed,
                dtype="float64", **kw)
    return X.astype(np.float64), y.astype(np.int64)


def feature_matrix(raw: np.ndarray, features: list[str]) -> np.ndarray:
    """x^(0) for each raw point: the chosen features of its coordinates."""
    if raw.shape[1] == 3:   # the lecture's example: x1, x2, x3 as they are
        return raw[:, [int(f[1]) - 1 for f in features]].astype(np.float64)
    return np.stack([FEATURES[f][1](raw) for f in features], axis=1).astype(np.float64)


def _b64(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii")


def _float32(a: np.ndarray) -> np.ndarray:
    big = float(np.finfo(np.float32).max)
    return np.nan_to_num(np.clip(a, -big, big), nan=0.0).astype(np.float32)


def _picture(values: np.ndarray, scale: float | None = None) -> dict[str, Any]:
    """Values on a grid as bytes 0..255 for [-scale, scale] (127.5 is 0), base64."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=1e300,
                      neginf=-1e300)
    if scale is None:
        scale = max(1.0, float(np.abs(v).max()) if v.size else 1.0)
    q = np.rint((np.clip(v / scale, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return {"scale": scale, "data": _b64(q)}


class Session:
    """A tab's training session. Not thread-safe: the server calls it from its event loop."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.resets = 0
        self.playing = False
        self._build()

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        c = self.config
        raw, labels = make_points(c)
        n_train = max(1, round(c.points * c.train_ratio)) if c.dataset != "lecture" else 1
        self.raw, self.labels = raw, labels
        self.part = np.array(["train"] * n_train + ["test"] * (len(labels) - n_train))
        X = feature_matrix(raw, c.features)
        self.X_train, self.X_test = X[:n_train], X[n_train:]
        self.y_train, self.y_test = labels[:n_train], labels[n_train:]
        self.targets_train = self._targets(self.y_train)
        self.targets_test = self._targets(self.y_test)
        lo, hi = raw[:, :2].min(0), raw[:, :2].max(0)
        if c.dataset == "lecture":
            lo, hi = np.array([-3.0, -3.0]), np.array([3.0, 3.0])
        centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2 * 1.1, 0.5)
        self.domain = [float(centre[0] - half), float(centre[0] + half),
                       float(centre[1] - half), float(centre[1] + half)]
        self._grid = self._grid_features(GRID)
        wide = max(c.hidden, default=0) > 16
        self.unit_grid = 12 if wide else UNIT_GRID
        self._unit_grid = self._grid_features(self.unit_grid)
        self.reset(count=False)

    def _grid_features(self, g: int) -> np.ndarray:
        """x^(0) at g x g points of the input plane, row 0 at the top (largest x2); for the
        lecture's example the other coordinate x3 is held at the point's value."""
        x0, x1, y0, y1 = self.domain
        xs = x0 + (np.arange(g) + 0.5) * (x1 - x0) / g
        ys = y1 - (np.arange(g) + 0.5) * (y1 - y0) / g
        gx, gy = np.meshgrid(xs, ys)
        pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
        if self.raw.shape[1] == 3:
            pts = np.concatenate([pts, np.full((len(pts), 1), self.raw[0, 2])], axis=1)
        return feature_matrix(pts, self.config.features)

    def _targets(self, y: np.ndarray) -> np.ndarray:
        if self.config.loss == "square":
            return (2.0 * y - 1.0)[:, None]          # the lecture's labels: -1 and +1
        return y.astype(np.int64)

    def reset(self, count: bool = True) -> None:
        """New initial weights (seeded: the config's seed plus the number of resets), a new
        optimizer, epoch 0."""
        c = self.config
        if count:
            self.resets += 1
        d_out = 1 if c.loss == "square" else c.num_classes
        sizes = [len(c.features), *c.hidden, d_out]
        out_act = self.output_activation
        self.model = cr.nn.MLP(sizes, activation=c.activation, output_activation=out_act,
                               dtype="float64", generator=cr.Generator(c.seed + self.resets))
        self.linears = [m for m in self.model.modules() if isinstance(m, cr.nn.Linear)]
        if c.dataset == "lecture":   # the worked example's weights, no biases
            with cr.no_grad():
                for m, W in zip(self.linears, WORKED_EXAMPLE["W"]):
                    m.weight.copy_(np.asarray(W, dtype=np.float64))
                    m.bias.copy_(np.zeros(m.out_features))
        self._make_optimizer()
        self.rng = np.random.default_rng(c.seed + 7919 * (self.resets + 1))
        self.order = self.rng.permutation(len(self.y_train))
        self.cursor = 0
        self.steps = 0
        self.epoch = 0.0
        self.history: list[list[float]] = []
        self.speed = 0.0
        self._record()

    def _make_optimizer(self) -> None:
        c = self.config
        params = self.model.parameters()
        lr = c.learning_rate
        if c.optimizer == "sgd":
            self.optimizer = cr.optim.SGD(params, lr=lr)
        elif c.optimizer == "momentum":
            self.optimizer = cr.optim.SGD(params, lr=lr, momentum=0.9)
        elif c.optimizer == "adam":
            self.optimizer = cr.optim.Adam(params, lr=lr)
        elif c.optimizer == "rmsprop":
            self.optimizer = cr.optim.RMSprop(params, lr=lr)
        else:
            self.optimizer = cr.optim.Adagrad(params, lr=lr)

    @property
    def output_activation(self) -> str | None:
        """The last layer's activation: none for cross-entropy (logits), else the config's."""
        c = self.config
        if c.loss == "cross-entropy":
            return None
        return c.activation if c.output_activation == "same" else (
            None if c.output_activation == "identity" else c.output_activation)

    def update(self, config: Config) -> bool:
        """Take a new config. Returns True when the network was rebuilt (new data or
        architecture), False when only the training options changed and the weights stay."""
        old, self.config = self.config, config
        if old.training_only_change(config):
            if old.optimizer != config.optimizer:
                self._make_optimizer()
            else:
                for g in self.optimizer.param_groups:
                    g["lr"] = config.learning_rate
            return False
        resets, self.resets = self.resets, 0
        try:
            self._build()
        except Exception:   # keep the session as it was
            self.config, self.resets = old, resets
            self._build()
            raise
        return True

    # ------------------------------------------------------------------ training
    def _loss(self, out: Any, target: np.ndarray) -> Any:
        if self.config.loss == "square":
            return F.mse_loss(out, cr.tensor(target))    # e = (h(x) - y)^2, mean over the batch
        return F.cross_entropy(out, cr.tensor(target))

    def train_step(self) -> float:
        """One optimizer step on the next batch of the shuffled training points."""
        c = self.config
        n = len(self.y_train)
        idx = self.order[self.cursor:self.cursor + c.batch_size]
        self.cursor += len(idx)
        if self.cursor >= n:
            self.order = self.rng.permutation(n)
            self.cursor = 0
        with np.errstate(over="ignore", invalid="ignore"):
            loss = self._loss(self.model(cr.tensor(self.X_train[idx])), self.targets_train[idx])
        value = loss.item()
        if not math.isfinite(value):   # stop before the step: the weights stay as they were
            raise PlaygroundError(f"the loss is not finite at epoch {self.epoch:.1f}: lower the "
                                  "learning rate and reset")
        if c.l2 > 0:   # (lambda / 2) sum w^2 over the weights (not the biases)
            penalty = None
            for m in self.linears:
                term = (m.weight * m.weight).sum()
                penalty = term if penalty is None else penalty + term
            loss = loss + penalty * (c.l2 / 2)
        self.optimizer.zero_grad()
        with np.errstate(over="ignore", invalid="ignore"):
            loss.backward()
            self.optimizer.step()
        self.steps += 1
        self.epoch += len(idx) / n
        return value

    def train_epoch(self) -> None:
        """Steps until one more epoch (a pass over the training points) is complete."""
        target = math.floor(self.epoch + 1e-9) + 1
        while self.epoch < target - 1e-9:
            self.train_step()
        self.epoch = float(round(self.epoch))
        self._record()

    def train_for(self, seconds: float, max_steps: int = 100_000) -> int:
        """Train for about ``seconds`` of wall time (at least one step); returns the steps."""
        start = time.perf_counter()
        e0, done = self.epoch, 0
        while done < max_steps:
            self.train_step()
            done += 1
            if time.perf_counter() - start >= seconds:
                break
        elapsed = time.perf_counter() - start
        self.speed = (self.epoch - e0) / elapsed if elapsed > 0 else 0.0
        self._record()
        return done

    def losses(self) -> tuple[float, float | None]:
        """The mean training and test loss (without the L2 term)."""
        with cr.no_grad():
            tr = self._loss(self.model(cr.tensor(self.X_train)), self.targets_train).item()
            te = (self._loss(self.model(cr.tensor(self.X_test)), self.targets_test).item()
                  if len(self.y_test) else None)
        return float(tr), (None if te is None else float(te))

    def _record(self) -> None:
        with np.errstate(over="ignore", invalid="ignore"):
            tr, te = self.losses()
        if not all(math.isfinite(v) for v in (tr, te) if v is not None):
            self.train_loss = self.test_loss = None
            raise PlaygroundError(f"the loss is not finite at epoch {self.epoch:.1f}: lower the "
                                  "learning rate and reset")
        self.train_loss, self.test_loss = tr, te
        point = [round(self.epoch, 4), tr, te]
        if self.history and self.history[-1][0] == point[0]:
            self.history[-1] = point
        else:
            self.history.append(point)
        if len(self.history) > 4000:        # keep every other point of the older half
            self.history = self.history[:2000:2] + self.history[2000:]

    # ------------------------------------------------------------------ what the page shows
    def weights(self) -> tuple[list[Any], list[Any]]:
        """[None, W1, ..., WL] and [None, b1, ..., bL] in float64 (the lecture's indexing)."""
        W = [None] + [m.weight.numpy().astype(np.float64) for m in self.linears]
        b = [None] + [m.bias.numpy().astype(np.float64) for m in self.linears]
        return W, b

    def _trace(self, x0: np.ndarray) -> lecture.Trace:
        W, b = self.weights()
        return lecture.forward(W, b, x0, self.config.activation, self.config.loss,
                               self.output_activation or "identity")

    def frame(self) -> dict[str, Any]:
        """What changes while training: counters, losses, weights, and the pictures of the
        output and of every hidden unit over the input plane."""
        with np.errstate(over="ignore", invalid="ignore"):
            return self._frame()

    def _frame(self) -> dict[str, Any]:
        c = self.config
        W, b = self.weights()
        t = self._trace(self._grid)
        L = t.L
        if c.loss == "square":
            out = {"kind": "signed", **_picture(t.h[:, 0], 1.0)}
        elif c.num_classes == 2:
            p = lecture.softmax(t.s[L])
            out = {"kind": "signed", **_picture(p[:, 1] - p[:, 0], 1.0)}
        else:
            p = lecture.softmax(t.s[L])
            out = {"kind": "classes", "classes": _b64(p.argmax(1).astype(np.uint8)),
                   "confidence": _b64(np.rint(p.max(1) * 255).astype(np.uint8))}
        tu = self._trace(self._unit_grid)
        units = [[_picture(tu.x[l][:, j]) for j in range(tu.x[l].shape[1])]
                 for l in range(1, L + 1)]
        return {
            "epoch": self.epoch, "steps": self.steps, "speed": self.speed,
            "playing": self.playing,
            "train_loss": self.train_loss, "test_loss": self.test_loss,
            "history_point": self.history[-1],
            "weights": [{"W": _b64(_float32(W[l])), "b": _b64(_float32(b[l])),
                         "shape": list(W[l].shape)} for l in range(1, L + 1)],
            "output": out, "units": units,
        }

    def state(self) -> dict[str, Any]:
        """Everything the page needs after a (re)configuration: the config, the points, the
        layer sizes, the feature pictures, the loss history and a frame."""
        c = self.config
        feats = self._unit_grid
        labels = [FEATURES[f][0] if f in FEATURES else {"x3": "x₃"}[f] for f in c.features]
        return {
            "config": asdict(c),
            "sizes": [len(c.features), *c.hidden, 1 if c.loss == "square" else c.num_classes],
            "feature_labels": labels,
            "feature_pictures": [_picture(feats[:, i]) for i in range(feats.shape[1])],
            "grid": GRID, "unit_grid": self.unit_grid, "domain": self.domain,
            "num_classes": c.num_classes, "output_activation": self.output_activation,
            "points": {"x": np.round(self.raw[:, 0], 5).tolist(),
                       "y": np.round(self.raw[:, 1], 5).tolist(),
                       "label": self.labels.tolist(), "part": self.part.tolist()},
            "history": self.history,
            "frame": self.frame(),
        }

    def point(self, part: str, index: Any) -> tuple[np.ndarray, np.ndarray, int]:
        """The raw coordinates, x^(0) and class of a training or test point."""
        if part not in ("train", "test"):
            raise PlaygroundError(f"part must be 'train' or 'test', got {part!r}")
        X, y = (self.X_train, self.y_train) if part == "train" else (self.X_test, self.y_test)
        i = _int("index", index, 0, max(len(y) - 1, 0))
        if not len(y):
            raise PlaygroundError(f"there are no {part} points")
        offset = 0 if part == "train" else len(self.y_train)
        return self.raw[offset + i], X[i], int(y[i])

    def target_of(self, label: int) -> float | int:
        """The lecture's y for a class: -1/+1 under the square loss, the class index under
        cross-entropy."""
        return (2 * label - 1) if self.config.loss == "square" else label

    def explain_point(self, part: str, index: Any) -> dict[str, Any]:
        """The forward pass of one point and, for its label, every delta and gradient, as
        ``chainrule explain`` computes and prints them (its 6-digit strings)."""
        c = self.config
        raw, x0, label = self.point(part, index)
        y = self.target_of(label)
        W, b = self.weights()
        e = explain(W=W[1:], b=b[1:], x=x0, activation=c.activation, target=[float(y)],
                    loss=c.loss, eta=c.learning_rate,
                    output_activation=self._explain_output_activation())
        t = e.trace
        numbers = [*t.s[1:], *t.x[1:], *t.delta[1:], *t.grad_W[1:], *e.new_W[1:]]
        if not all(np.isfinite(a).all() for a in numbers):
            raise PlaygroundError("this point's numbers overflow for the present weights: lower "
                                  "the learning rate and reset")
        layers = []
        for l in range(1, t.L + 1):
            head, rows = _rows(e, l)
            act = "s" if c.loss == "cross-entropy" and l == t.L else f"θ(s^({l}))"
            layers.append({
                "l": l, "title": f"layer {l}: s^({l}) = W{l} x^({l - 1}) + b^({l}), "
                                 f"x^({l}) = {act}",
                "activation": t.act[l], "head": head, "rows": rows,
                "grad_title": f"∂e/∂w_ij^({l}) = x_i^({l - 1}) δ_j^({l}) → w_ij^({l}) − "
                              f"{c.learning_rate:g} ∂e/∂w_ij^({l})",
                "grad_head": ["j \\ i"] + [f"i={i + 1}: grad → new w"
                                           for i in range(t.W[l].shape[1])],
                "grad_rows": [[str(j + 1)] + [f"{_fmt(t.grad_W[l][j, i])} → "
                                              f"{_fmt(e.new_W[l][j, i])}"
                                              for i in range(t.W[l].shape[1])]
                              for j in range(t.W[l].shape[0])],
            })
        d = e.to_dict()
        return {
            "part": part, "index": int(index), "raw": raw.tolist(), "label": label,
            "x0": [_fmt(v) for v in x0], "x0_values": x0.tolist(), "features": c.features,
            "target": y,
            "activation": c.activation, "loss": c.loss, "eta": c.learning_rate,
            "h": [_fmt(v) for v in d["h"]], "prediction": d.get("prediction"),
            "e": _fmt(d["e"]), "summary": _summary_lines(e), "layers": layers,
            "epoch": self.epoch,
            "command": self._command(x0, y),
        }

    def _explain_output_activation(self) -> str | None:
        if self.config.loss == "cross-entropy":
            return None
        return self.output_activation or "identity"

    def _command(self, x0: np.ndarray, y: float | int) -> str:
        c = self.config
        return (f"chainrule explain --weights playground-weights.json --input "
                f"{','.join(repr(float(v)) for v in x0)} --target {y} --eta {c.learning_rate!r} "
                f"--loss {c.loss}")

    def weights_file(self) -> dict[str, Any]:
        """The network as ``chainrule explain --weights`` reads it (exact float64 values)."""
        W, b = self.weights()
        out: dict[str, Any] = {"W": [w.tolist() for w in W[1:]], "b": [v.tolist() for v in b[1:]],
                               "activation": self.config.activation}
        if self.config.loss == "square":
            out["output_activation"] = self._explain_output_activation()
        return out
