"""Training: empirical risk minimisation by mini-batch SGD, with metrics, early stopping and
checkpoints that resume bit for bit.

One epoch is the lecture's loop: shuffle, take a mini-batch, forward, backward, update, repeat.
:class:`Trainer` adds what a real run needs around it: per-epoch metrics (loss, and accuracy for
classification or MSE and R^2 for regression), early stopping on a validation metric with the best
weights restored, learning-rate schedulers, gradient clipping, a clear stop on a NaN/Inf loss, a
progress display, and atomic checkpoints of everything that determines the rest of the run (model,
optimizer, scheduler, random states, epoch, metrics).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import random as _random
from .anomaly import set_position as set_anomaly_position
from .autograd import no_grad
from .backend import to_numpy
from .compile import traceable
from .errors import ChainruleError, FileFormatError, InvalidValueError
from .io import atomic_write
from .tensor import Tensor

CHECKPOINT_NAME = "checkpoint.safetensors"
"""The file name of a training checkpoint inside a run directory."""
_TIMINGS = ("seconds", "samples_per_second")


class TrainingDivergedError(ChainruleError, FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch and the batch."""


# --------------------------------------------------------------------------- predictions/metrics
def predict_classes(output: Any, kind: str) -> np.ndarray:
    """Class predictions from a network's output array.

    ``kind``: ``"argmax"`` (K outputs, argmax_i f_i), ``"sign"`` (one output, sign(h(x)) in
    {-1, +1}, 0 counted as +1) or ``"logit"`` (one output, class 1 when the logit is > 0).
    """
    out = to_numpy(output)
    if kind == "argmax":
        return out.argmax(axis=-1)
    flat = out.reshape(out.shape[0], -1)[:, 0]
    if kind == "sign":
        return np.where(flat >= 0, 1, -1)
    if kind == "logit":
        return (flat > 0).astype(np.int64)
    raise InvalidValueError(f"unknown prediction kind {kind!r}")


def _targets_as_labels(y: Any, kind: str) -> np.ndarray:
    arr = to_numpy(y)
    if kind == "argmax" and arr.ndim == 2:  # one-hot / probability targets
        return arr.argmax(axis=-1)
    return arr.reshape(arr.shape[0], -1)[:, 0] if arr.ndim > 1 else arr


class _Accumulator:
    """Running sums for one pass over a loader."""

    def __init__(self, task: str, prediction: str) -> None:
        self.task, self.prediction = task, prediction
        self.n = 0
        self.loss = 0.0
        self.correct = 0
        self.sse = 0.0
        self.sum_y = 0.0
        self.sum_y2 = 0.0
        self.width = 1  # regression outputs per sample

    def add(self, loss: float, output: Any, target: Any) -> None:
        n = int(output.shape[0])
        self.n += n
        self.loss += loss * n
        if self.task == "classification":
            pred = predict_classes(output, self.prediction)
            self.correct += int((pred == _targets_as_labels(target, self.prediction)).sum())
        else:
            out = to_numpy(output).astype(np.float64).reshape(n, -1)
            y = to_numpy(target).astype(np.float64).reshape(n, -1)
            self.sse += float(((out - y) ** 2).sum())
            self.sum_y += float(y.sum())
            self.sum_y2 += float((y * y).sum())
            self.width = y.shape[1]

    def totals(self) -> np.ndarray:
        """The running sums, to add up over data-parallel ranks."""
        return np.array([self.n, self.loss, self.correct, self.sse, self.sum_y, self.sum_y2],
                        dtype=np.float64)

    def set_totals(self, t: np.ndarray) -> None:
        self.n, self.correct = int(t[0]), int(t[2])
        self.loss, self.sse, self.sum_y, self.sum_y2 = (float(v) for v in t[[1, 3, 4, 5]])

    def metrics(self, prefix: str) -> dict[str, float]:
        if self.n == 0:
            return {}
        out = {f"{prefix}loss": self.loss / self.n}
        if self.task == "classification":
            out[f"{prefix}accuracy"] = self.correct / self.n
        else:
            count = self.n * self.width
            out[f"{prefix}mse"] = self.sse / count
            total = self.sum_y2 - self.sum_y ** 2 / count
            out[f"{prefix}r2"] = 1.0 - self.sse / total if total > 0 else float("nan")
        return out


# --------------------------------------------------------------------------- history
@dataclass
class History:
    """Per-epoch metrics of a run, and how it ended; ``history["val_loss"]`` lists one metric
    over the epochs that have it.

    Attributes:
        epochs: one dict of metrics per epoch (``"epoch"``, ``"train_loss"``, ``"val_loss"``, ...).
        best_epoch: the epoch whose weights early stopping kept, or None.
        best_value: the watched metric at ``best_epoch``, or None.
        stopped_early: whether early stopping ended the run.
        baseline: the watched loss of the initial weights (the divergence check's reference).
    """

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    stopped_early: bool = False
    baseline: float | None = None     # the watched loss of the initial weights

    def __getitem__(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs if key in e]

    @property
    def last(self) -> dict[str, float]:
        """The metrics of the last epoch (an empty dict before the first)."""
        return self.epochs[-1] if self.epochs else {}


# --------------------------------------------------------------------------- trainer
class Trainer:
    """Trains ``model`` on mini-batches from a loader.

    Args:
        model: a ``chainrule.nn.Module``.
        loss_fn: ``loss_fn(output, target) -> scalar Tensor`` (mean over the batch).
        optimizer: a ``chainrule.optim`` optimizer over the model's parameters.
        task: ``"classification"`` (accuracy is reported) or ``"regression"`` (MSE and R^2).
        prediction: how classes are read from outputs: ``"argmax"`` (softmax / K outputs),
            ``"sign"`` (sign(h(x)) with labels ±1) or ``"logit"`` (binary logits, labels 0/1).
        scheduler: a learning-rate scheduler stepped once per epoch (``ReduceLROnPlateau`` gets
            the monitored metric).
        clip_grad_norm: clip the global gradient norm to this value before each step.
        early_stopping: stop after this many epochs without improvement of ``monitor``, then
            restore the best weights.
        monitor: the metric that early stopping and ``ReduceLROnPlateau`` watch (default
            ``val_loss`` with validation data, else ``train_loss``); ``*accuracy``/``*r2`` are
            maximised, everything else minimised.
        run_dir: where ``checkpoint.safetensors`` and ``metrics.jsonl`` are written.
        checkpoint_every: write a checkpoint every this many epochs (0: never).
        progress: ``"auto"`` (a rich bar on a terminal, one line per epoch otherwise),
            ``"bar"``, ``"lines"`` or ``"none"``.
        callbacks: functions called as ``callback(trainer, epoch, metrics)`` after each epoch;
            one returning True stops training.
        divergence_factor: stop (:class:`TrainingDivergedError`) when the monitored loss grows
            past this many times its value for the initial weights (None: never).
        gradient_sync: data-parallel training: called as ``gradient_sync(n_local)`` after each
            backward and before the step (``chainrule.distributed.GradientAverager``); the
            loader then yields this rank's share of each global batch, possibly empty.
        reduce_sums: data-parallel training: sums an array over the ranks (the epoch's
            training-metric totals), e.g. ``chainrule.distributed.allreduce_sum``.
        compile: run the training step through ``cr.compile`` (traced once per batch shape,
            then replayed; the same numbers as the eager step, bit for bit). Default: True;
            data-parallel training (``gradient_sync``) always runs eagerly.

    Training health: a non-finite loss, or non-finite weights after an update (checked after
    every step), stop the run naming epoch and batch.
    """

    def __init__(self, model: Any, loss_fn: Callable[[Tensor, Tensor], Tensor], optimizer: Any,
                 *, task: str = "classification", prediction: str = "argmax",
                 scheduler: Any = None, clip_grad_norm: float | None = None,
                 early_stopping: int | None = None, monitor: str | None = None,
                 run_dir: str | Path | None = None, checkpoint_every: int = 1,
                 progress: str = "auto", callbacks: Sequence[Callable[..., Any]] = (),
                 divergence_factor: float | None = None,
                 gradient_sync: Callable[[int], Any] | None = None,
                 reduce_sums: Callable[[np.ndarray], np.ndarray] | None = None,
                 compile: bool = True) -> None:  # noqa: A002 - the option's name
        if task not in ("classification", "regression"):
            raise InvalidValueError(f"task must be 'classification' or 'regression', got {task!r}")
        if prediction not in ("argmax", "sign", "logit"):
            raise InvalidValueError(f"prediction must be argmax, sign or logit, got {prediction!r}")
        if progress not in ("auto", "bar", "lines", "none"):
            raise InvalidValueError(f"progress must be auto, bar, lines or none, got {progress!r}")
        if early_stopping is not None and (not isinstance(early_stopping, int) or
                                           early_stopping < 1):
            raise InvalidValueError("early_stopping must be a positive number of epochs")
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise InvalidValueError("clip_grad_norm must be positive")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.task, self.prediction = task, prediction
        self.scheduler, self.clip_grad_norm = scheduler, clip_grad_norm
        self.early_stopping, self.monitor = early_stopping, monitor
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.progress, self.callbacks = progress, list(callbacks)
        if divergence_factor is not None and not divergence_factor > 1:
            raise InvalidValueError("divergence_factor must be a number > 1")
        self.divergence_factor = divergence_factor
        self.gradient_sync, self.reduce_sums = gradient_sync, reduce_sums
        self.compile = bool(compile)
        self._step: tuple[tuple[Any, ...], Any] | None = None  # (what it was made for, step)
        self._snapshot: dict[str, Any] | None = None   # the last finished epoch, if not on disk
        self._saved_epoch = -1
        self.history = History()
        self.epoch = 0
        self._bad_epochs = 0
        self._best_state: dict[str, np.ndarray] | None = None
        self._loader: Any = None

    # ------------------------------------------------------------------ one pass
    def _batches(self, loader: Iterable[Any]) -> Iterable[tuple[Tensor, Tensor]]:
        for batch in loader:
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise InvalidValueError("a loader must yield (inputs, targets) pairs")
            yield batch[0], batch[1]

    def train_epoch(self, loader: Any, bar: Any = None) -> dict[str, float]:
        """One epoch of forward, backward, (clip), step; returns ``train_*`` metrics."""
        from .optim import clip_grad_norm_

        self.model.train()
        acc = _Accumulator(self.task, self.prediction)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        watched = _weight_arrays(params)
        step = self._compiled_step(params)
        for i, (x, y) in enumerate(self._batches(loader)):
            n = int(x.shape[0])
            set_anomaly_position(self.epoch + 1, i + 1)  # for detect_anomaly's errors
            if step is not None and n:
                try:
                    loss, output = step(x, y)
                except _NonFiniteLoss as exc:
                    raise TrainingDivergedError(
                        f"the loss became {exc.value} at epoch {self.epoch + 1}, batch {i + 1}: "
                        "lower the learning rate, standardise the inputs, or clip gradients"
                    ) from None
                value = loss.item()
                if not _all_finite(watched):
                    raise TrainingDivergedError(
                        f"the weights became non-finite at epoch {self.epoch + 1}, batch "
                        f"{i + 1}: lower the learning rate, standardise the inputs, or clip "
                        "gradients")
                acc.add(value, output.data, y.data)
                if bar is not None:
                    bar(n, value)
                continue
            self.optimizer.zero_grad()
            if n:
                output = self.model(x)
                loss = self.loss_fn(output, y)
                value = loss.item()
                # data-parallel: a non-finite loss reaches every rank through the gradient
                # allreduce and stops them all at the weights check below, together
                if not math.isfinite(value) and self.gradient_sync is None:
                    raise TrainingDivergedError(
                        f"the loss became {value} at epoch {self.epoch + 1}, batch {i + 1}: "
                        "lower the learning rate, standardise the inputs, or clip gradients")
                loss.backward()
            if self.gradient_sync is not None:
                self.gradient_sync(n)
            if self.clip_grad_norm is not None:
                clip_grad_norm_(params, self.clip_grad_norm)
            self.optimizer.step()
            if not _all_finite(watched):   # one isfinite pass; names the batch exactly
                raise TrainingDivergedError(
                    f"the weights became non-finite at epoch {self.epoch + 1}, batch {i + 1}: "
                    "lower the learning rate, standardise the inputs, or clip gradients")
            if n:
                acc.add(value, output.data, y.data)
                if bar is not None:
                    bar(n, value)
        set_anomaly_position(None)
        if step is not None:  # (a CUDA graph's device flags: read once per epoch)
            try:
                step.check()
            except FloatingPointError as exc:
                raise TrainingDivergedError(f"epoch {self.epoch + 1}: {exc}: lower the learning "
                                            "rate, standardise the inputs, or clip gradients"
                                            ) from None
        if self.reduce_sums is not None:
            acc.set_totals(self.reduce_sums(acc.totals()))
        return acc.metrics("train_")

    def _compiled_step(self, params: list[Any]) -> Any:
        """The training step (zero_grad, forward, loss, backward, clip, step) under
        ``cr.compile``, made once per (model, loss, optimizer, clipping); None when the step
        runs eagerly (``compile=False``, or data-parallel training, whose gradient allreduce
        happens between backward and the update)."""
        from .anomaly import is_anomaly_enabled

        if not self.compile or self.gradient_sync is not None or is_anomaly_enabled():
            return None
        key = (self.model, self.loss_fn, self.optimizer, self.clip_grad_norm)
        if self._step is not None and all(a is b for a, b in zip(self._step[0], key)):
            return self._step[1]
        from .compile import compile as cr_compile
        from .optim import clip_grad_norm_

        model, loss_fn, optimizer, clip = key

        def training_step(x: Any, y: Any) -> tuple[Tensor, Tensor]:
            optimizer.zero_grad()
            output = model(x)
            loss = loss_fn(output, y)
            if not _loss_is_finite(loss.data):  # (a traced check: replays re-run it)
                raise _NonFiniteLoss(float(loss.data))
            loss.backward()
            if clip is not None:
                clip_grad_norm_(params, clip)
            optimizer.step()
            return loss, output

        step = cr_compile(training_step)
        self._step = (key, step)
        return step

    def evaluate(self, loader: Any, prefix: str = "val_", sharded: bool = False
                 ) -> dict[str, float]:
        """Metrics of the model (in eval mode, without recording) over ``loader``; ``sharded``:
        the loader yields this rank's share, and the totals are summed over the ranks."""
        was_training = getattr(self.model, "training", True)
        self.model.eval()
        acc = _Accumulator(self.task, self.prediction)
        try:
            with no_grad():
                for x, y in self._batches(loader):
                    output = self.model(x)
                    acc.add(self.loss_fn(output, y).item(), output.data, y.data)
        finally:
            self.model.train(was_training)
        if sharded and self.reduce_sums is not None:
            acc.set_totals(self.reduce_sums(acc.totals()))
        return acc.metrics(prefix)

    # ------------------------------------------------------------------ the run
    def fit(self, train_loader: Any, val_loader: Any = None, epochs: int = 10) -> History:
        """Train until ``epochs`` epochs have run in total (a resumed run continues its count),
        early stopping triggers, or a callback asks to stop."""
        if not isinstance(epochs, int) or epochs < 1:
            raise InvalidValueError(f"epochs must be a positive integer, got {epochs!r}")
        self._loader = train_loader
        monitor = self.monitor or ("val_loss" if val_loader is not None else "train_loss")
        if monitor.startswith("val_") and val_loader is None:
            raise InvalidValueError(f"monitor {monitor!r} needs validation data")
        display = _Display(self.progress, epochs)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        watched = "val_loss" if val_loader is not None else "train_loss"
        if self.divergence_factor is not None and self.history.baseline is None and \
                self.epoch == 0:
            self.history.baseline = self.evaluate(val_loader or train_loader, "",
                                                  sharded=val_loader is None)["loss"]
        self._in_epoch = False
        while self.epoch < epochs and not self.history.stopped_early:
            start = time.perf_counter()
            self._in_epoch = True
            with display.epoch(self.epoch + 1, _safe_len(train_loader)) as bar:
                metrics = self.train_epoch(train_loader, bar)
            seconds = time.perf_counter() - start
            if val_loader is not None:
                metrics.update(self.evaluate(val_loader))
            self.epoch += 1
            n_train = _dataset_size(train_loader)
            metrics.update(epoch=self.epoch, lr=self._lr(), seconds=seconds,
                           samples_per_second=(n_train / seconds if seconds > 0 else float("nan")))
            if monitor not in metrics:
                raise InvalidValueError(f"monitor {monitor!r} is not a metric; have "
                                        f"{sorted(metrics)}")
            self._after_epoch(metrics, monitor)
            self.history.epochs.append(metrics)
            display.log(metrics)
            stop = any(bool(cb(self, self.epoch, metrics)) for cb in self.callbacks)
            if self.run_dir is not None:
                with open(self.run_dir / "metrics.jsonl", "a") as fh:
                    fh.write(json.dumps(_json_safe(metrics)) + "\n")
            self._in_epoch = False
            if self.run_dir is not None:
                if self.checkpoint_every and self.epoch % self.checkpoint_every == 0:
                    self.save_checkpoint(self.run_dir / CHECKPOINT_NAME)
                    self._saved_epoch = self.epoch
                else:   # kept so that Ctrl-C can still checkpoint this finished epoch
                    self._snapshot = _copy_state(self.state())
            self._check_divergence(metrics, watched)
            if stop:
                break
        if self.early_stopping is not None and self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        return self.history

    def _check_divergence(self, metrics: dict[str, float], watched: str) -> None:
        base = self.history.baseline
        if self.divergence_factor is None or watched not in metrics:
            return
        if base is None:   # a run resumed from an older checkpoint: its first epoch
            base = self.history.epochs[0].get(watched) if self.history.epochs else None
        value = metrics[watched]
        if base is not None and base > 0 and value > self.divergence_factor * base:
            raise TrainingDivergedError(
                f"training diverged at epoch {self.epoch}: {watched} {value:.4g} is more than "
                f"{self.divergence_factor:g}x its initial {base:.4g}; lower the learning rate "
                "(--lr), or pass --no-divergence-check to go on")

    def checkpoint_last_epoch(self) -> bool:
        """After an interruption: make sure the checkpoint on disk holds the last finished
        epoch; False when no epoch has finished (or there is no run directory)."""
        if self.run_dir is None or self.epoch == 0:
            return False
        path = self.run_dir / CHECKPOINT_NAME
        if self._saved_epoch == self.epoch:
            return True
        if not getattr(self, "_in_epoch", False):
            self.save_checkpoint(path)           # the live state is the finished epoch
        elif self._snapshot is not None and self._snapshot["epoch"] == self.epoch:
            self.save_checkpoint(path, state=self._snapshot)
        else:
            return path.is_file()
        self._saved_epoch = self.epoch
        return True

    def _after_epoch(self, metrics: dict[str, float], monitor: str) -> None:
        value = metrics[monitor]
        maximise = monitor.endswith("accuracy") or monitor.endswith("r2")
        best = self.history.best_value
        improved = best is None or (value > best if maximise else value < best)
        if improved:
            self.history.best_value, self.history.best_epoch = value, self.epoch
            self._bad_epochs = 0
            if self.early_stopping is not None:
                self._best_state = {k: to_numpy(v.data).copy()
                                    for k, v in self.model.state_dict().items()}
        else:
            self._bad_epochs += 1
            if self.early_stopping is not None and self._bad_epochs >= self.early_stopping:
                self.history.stopped_early = True
        if self.scheduler is not None:
            from .optim.lr_scheduler import ReduceLROnPlateau

            if isinstance(self.scheduler, ReduceLROnPlateau):
                self.scheduler.step(value)
            else:
                self.scheduler.step()

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        """Everything that determines the rest of the run."""
        loader_state = None
        if self._loader is not None and hasattr(self._loader, "state_dict"):
            loader_state = self._loader.state_dict()
        return {
            "epoch": self.epoch,
            "model": {k: v.data for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": _random.default_generator.get_state(),
            "loader": loader_state,
            # wall-clock timings stay in metrics.jsonl: without them identical runs write
            # identical checkpoint bytes
            "history": {"epochs": [{k: v for k, v in e.items() if k not in _TIMINGS}
                                   for e in self.history.epochs],
                        "best_epoch": self.history.best_epoch,
                        "best_value": self.history.best_value,
                        "stopped_early": self.history.stopped_early,
                        "baseline": self.history.baseline},
            "bad_epochs": self._bad_epochs,
            "best_state": self._best_state,
        }

    def save_checkpoint(self, path: str | Path, state: dict[str, Any] | None = None) -> Path:
        """Write :meth:`state` (or a ``state`` kept earlier) atomically: a safetensors file with
        the arrays as tensors and the rest as JSON (``chainrule.checkpoint_file``), the same bytes
        for the same state."""
        from .checkpoint_file import checkpoint_bytes

        return atomic_write(path, checkpoint_bytes(self.state() if state is None else state))

    def load_checkpoint(self, path: str | Path, train_loader: Any = None) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` (before calling ``fit``).

        The file is checked completely first (its structure, every array finite, the random
        generators' states, then that it fits this model, optimizer, scheduler and loader:
        ``chainrule.checkpoint_file.read_checkpoint`` and ``check_fits``), so a damaged, forged or
        mismatched file raises :class:`FileFormatError` naming it and leaves the trainer as it
        was.
        """
        from .checkpoint_file import check_fits, read_checkpoint

        loader = train_loader if train_loader is not None else self._loader
        if not (hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict")):
            loader = None
        state = read_checkpoint(path)
        check_fits(state, str(path), model=self.model, optimizer=self.optimizer,
                   scheduler=self.scheduler, loader=loader)
        # The optimizer judges its own options and the loader whether the state is its own;
        # undo the optimizer if the loader refuses, so that nothing changes on failure.
        before = self.optimizer.state_dict()
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            try:
                if loader is not None and state["loader"] is not None:
                    loader.load_state_dict(state["loader"])
            except BaseException:
                self.optimizer.load_state_dict(before)
                raise
        except Exception as exc:  # noqa: BLE001 - whatever the objects refuse is a file defect
            raise FileFormatError(f"{path}: checkpoint does not fit this run ({exc})") from None
        # Checked by check_fits and read_checkpoint: none of this can fail.
        self.model.load_state_dict(state["model"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        _random.default_generator.set_state(state["rng"])
        h = state["history"]
        self.history = History(epochs=h["epochs"], best_epoch=h["best_epoch"],
                               best_value=h["best_value"], stopped_early=h["stopped_early"],
                               baseline=h.get("baseline"))
        self.epoch = state["epoch"]
        self._bad_epochs = state["bad_epochs"]
        self._best_state = state["best_state"]
        self._saved_epoch = self.epoch           # the file on disk holds this epoch


def fit(model: Any, loss_fn: Callable[[Tensor, Tensor], Tensor], optimizer: Any,
        train_data: Any, val_data: Any = None, *, epochs: int = 10, **options: Any) -> History:
    """Train ``model``; ``train_data``/``val_data`` are loaders yielding (inputs, targets).

    A convenience wrapper over :class:`Trainer` (the keyword options are its arguments).
    """
    return Trainer(model, loss_fn, optimizer, **options).fit(train_data, val_data, epochs)


class _NonFiniteLoss(Exception):
    """Raised inside the compiled step before backward, as the eager loop checks the loss."""

    def __init__(self, value: float) -> None:
        super().__init__(value)
        self.value = value


@traceable
def _loss_is_finite(loss: Any) -> bool:
    """Whether the 0-d loss array is finite (read once per step, before backward)."""
    return math.isfinite(float(loss))


def _all_finite(arrays: Sequence[Any]) -> bool:
    return all(bool(np.isfinite(a).all()) for a in arrays)


def _weight_arrays(params: Sequence[Any]) -> list[Any]:
    """The arrays to check for non-finite weights: the one flat buffer when the parameters are
    exactly its views (``nn.MLP`` keeps them so), else each parameter's array."""
    datas = [to_numpy(p.data) for p in params]
    bases = {id(d.base): d.base for d in datas if d.base is not None}
    if len(bases) == 1 and all(d.base is not None for d in datas):
        base = next(iter(bases.values()))
        if base.ndim == 1 and base.size == sum(d.size for d in datas):
            return [base]
    return datas


def _copy_state(obj: Any) -> Any:
    """A deep copy of :meth:`Trainer.state` (arrays copied, so later steps cannot change it)."""
    if isinstance(obj, dict):
        return {k: _copy_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copy_state(v) for v in obj)
    if isinstance(obj, Tensor):
        return np.array(to_numpy(obj.data), copy=True)
    if hasattr(obj, "shape") and hasattr(obj, "copy") and not np.isscalar(obj):
        return obj.copy()
    return obj


# --------------------------------------------------------------------------- display
def _safe_len(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def _dataset_size(loader: Any) -> int:
    ds = getattr(loader, "dataset", None)
    try:
        return len(ds) if ds is not None else 0
    except TypeError:
        return 0


def _json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in metrics.items()}


def format_metrics(metrics: dict[str, float]) -> str:
    """``epoch 3  train_loss 0.1234  val_accuracy 0.9712 ...`` on one line."""
    parts = [f"epoch {int(metrics['epoch'])}"]
    for k, v in metrics.items():
        if k in ("epoch",):
            continue
        if k == "samples_per_second":
            parts.append(f"{v:,.0f} samples/s")
        elif k == "seconds":
            parts.append(f"{v:.2f}s")
        elif k == "lr":
            parts.append(f"lr {v:.3g}")
        else:
            parts.append(f"{k} {v:.4f}")
    return "  ".join(parts)


class _Display:
    """A rich progress bar per epoch on a terminal; one plain line per epoch otherwise."""

    def __init__(self, mode: str, epochs: int) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.epochs = mode, epochs

    def epoch(self, number: int, batches: int | None) -> Any:
        return _EpochBar(self.mode == "bar", number, self.epochs, batches)

    def log(self, metrics: dict[str, float]) -> None:
        if self.mode != "none":
            print(format_metrics(metrics), file=sys.stderr, flush=True)


class _EpochBar:
    def __init__(self, enabled: bool, number: int, epochs: int, batches: int | None) -> None:
        self.enabled, self.number, self.epochs, self.batches = enabled, number, epochs, batches
        self.progress: Any = None

    def __enter__(self) -> Callable[[int, float], None] | None:
        if not self.enabled:
            return None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        self.progress = Progress(TextColumn(f"epoch {self.number}/{self.epochs}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                                 TextColumn("{task.fields[rate]} samples/s"),
                                 TimeElapsedColumn(), transient=True)
        self.progress.start()
        task = self.progress.add_task("train", total=self.batches, loss="-", rate="-")
        start = time.perf_counter()
        seen = [0]

        def update(n: int, loss: float) -> None:
            seen[0] += n
            rate = seen[0] / max(time.perf_counter() - start, 1e-9)
            self.progress.update(task, advance=1, loss=f"{loss:.4f}", rate=f"{rate:,.0f}")

        return update

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
