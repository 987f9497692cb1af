"""Learning-rate schedules, with the semantics of ``torch.optim.lr_scheduler``.

A scheduler owns no learning rate: it rewrites ``group["lr"]`` of its optimizer's parameter
groups. Construct it after the optimizer (construction sets the epoch-0 rate and records
``group["initial_lr"]``), then call ``scheduler.step()`` once per epoch (or per iteration),
*after* ``optimizer.step()``::

    opt = cr.optim.SGD(params, lr=0.1, momentum=0.9)
    sched = cr.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    for epoch in range(100):
        train_one_epoch(opt)          # calls opt.step()
        sched.step()

Like PyTorch's, the epoch-based schedules are *chainable*: each step multiplies the current
``group["lr"]`` by the schedule's ratio, so two schedulers on one optimizer compose and an lr
changed from outside is respected. Alone, each follows its closed form (given in its docstring)
up to rounding. ``state_dict()`` holds only Python numbers, strings, bools and lists.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidValueError
from .optimizer import Optimizer, check_real


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


class LRScheduler:
    """Base class: subclasses implement :meth:`get_lr` (and, to restart exactly inside
    :class:`SequentialLR`, :meth:`_closed_form_lr`).

    Args:
        optimizer: the optimizer whose groups' ``lr`` this scheduler sets.
        last_epoch: the index of the last epoch; -1 (default) starts afresh. A value >= 0 resumes
            and needs ``"initial_lr"`` in every group (restore the optimizer's state first).

    Attributes:
        base_lrs: each group's ``initial_lr``.
        last_epoch: the current epoch index.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise InvalidValueError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, int) or last_epoch < -1:
            raise InvalidValueError(f"last_epoch must be an integer >= -1, got {last_epoch!r}")
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise InvalidValueError(
                        f"param_groups[{i}] has no 'initial_lr', needed to resume a scheduler "
                        f"at last_epoch={last_epoch}: load the optimizer's state_dict first"
                    )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The rates for the epoch ``last_epoch`` has just become (a hook for :meth:`step`; to
        read the current rate use :meth:`get_last_lr`)."""
        raise NotImplementedError

    def _closed_form_lr(self) -> list[float]:
        """The rates at ``last_epoch`` computed from ``base_lrs`` alone (used when
        :class:`SequentialLR` restarts a schedule); falls back on :meth:`get_lr`."""
        return self.get_lr()

    def step(self) -> None:
        """Advance one epoch and write the new rates into the optimizer's groups."""
        self._step_count += 1
        self._update_lr()

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            values = self._closed_form_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The rate of each parameter group, as last set by this scheduler."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer: numbers, bools, strings and lists of numbers."""
        return {k: (list(v) if isinstance(v, list) else v)
                for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the optimizer's groups keep their own ``lr``: restore the
        optimizer's state_dict too)."""
        base = state_dict.get("base_lrs")
        if base is not None and len(base) != len(self.optimizer.param_groups):
            raise InvalidValueError(
                f"the loaded scheduler state has {len(base)} base_lrs, the optimizer "
                f"{len(self.optimizer.param_groups)} parameter groups"
            )
        self.__dict__.update({k: (list(v) if isinstance(v, list) else v)
                              for k, v in state_dict.items()})

    def _group_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]


class StepLR(LRScheduler):
    r"""Multiply the rate by ``gamma`` every ``step_size`` epochs.

    .. math:: \eta_t = \eta_0 \, \gamma^{\lfloor t / \text{step\_size} \rfloor}

    Args:
        optimizer: the optimizer.
        step_size: period of the decay (>= 1).
        gamma: multiplicative factor (> 0). Default: 0.1.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.step_size = _check_int("step_size", step_size, 1)
        self.gamma = check_real("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The rates for the new epoch: multiplied by ``gamma`` when it is a multiple of
        ``step_size``, else unchanged.
        """
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class ExponentialLR(LRScheduler):
    r"""Multiply the rate by ``gamma`` every epoch.

    .. math:: \eta_t = \eta_0 \, \gamma^{t}

    Args:
        optimizer: the optimizer.
        gamma: multiplicative factor (> 0).
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = check_real("gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The rates for the new epoch: the previous ones times ``gamma``."""
        if self._is_initial:
            return self._group_lrs()
        return [lr * self.gamma for lr in self._group_lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [b * self.gamma ** self.last_epoch for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from the initial rate down to ``eta_min`` over ``T_max`` epochs
    (SGDR without restarts; Loshchilov & Hutter, 2017).

    .. math:: \eta_t = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})
              \left(1 + \cos\frac{\pi t}{T_{\max}}\right)

    Past ``T_max`` the rate rises again along the same cosine (period ``2 T_max``), as in
    PyTorch. Computed recursively (chainable), like PyTorch's.

    Args:
        optimizer: the optimizer.
        T_max: half-period in epochs (>= 1).
        eta_min: the lowest rate (>= 0). Default: 0.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,  # noqa: N803
                 last_epoch: int = -1) -> None:
        self.T_max = _check_int("T_max", T_max, 1)
        self.eta_min = check_real("eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The rates for the new epoch, one recursive step along the cosine (see the class)."""
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._group_lrs()
        if (t - 1 - T) % (2 * T) == 0:
            # the trough: the ratio below would divide by 1 + cos(pi) = 0
            return [lr + (b - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for lr, b in zip(self._group_lrs(), self.base_lrs)]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (lr - eta_min) + eta_min for lr in self._group_lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [self.eta_min + (b - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch
                                                                   / self.T_max)) / 2
                for b in self.base_lrs]


class LinearLR(LRScheduler):
    r"""Scale the rate by a factor that moves linearly from ``start_factor`` to ``end_factor``
    over ``total_iters`` epochs, then leave it alone (PyTorch's ``LinearLR``).

    .. math:: \eta_t = \eta_0 \left(f_s + (f_e - f_s)\,\frac{\min(t, T)}{T}\right)

    Args:
        optimizer: the optimizer.
        start_factor: :math:`f_s \in (0, 1]`. Default: 1/3.
        end_factor: :math:`f_e \in [0, 1]`. Default: 1.
        total_iters: :math:`T \ge 1`. Default: 5.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1) -> None:
        self.start_factor = check_real("start_factor", start_factor, 0.0, 1.0)
        if self.start_factor == 0.0:
            raise InvalidValueError("start_factor must be > 0 (the schedule is multiplicative)")
        self.end_factor = check_real("end_factor", end_factor, 0.0, 1.0)
        self.total_iters = _check_int("total_iters", total_iters, 1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The rates for the new epoch, one recursive step of the linear factor (see the class)."""
        t, T, fs, fe = self.last_epoch, self.total_iters, self.start_factor, self.end_factor
        if t == 0:
            return [lr * fs for lr in self._group_lrs()]
        if self._is_initial or t > T:
            return self._group_lrs()
        ratio = 1.0 + (fe - fs) / (T * fs + (t - 1) * (fe - fs))
        return [lr * ratio for lr in self._group_lrs()]

    def _closed_form_lr(self) -> list[float]:
        t, T, fs, fe = self.last_epoch, self.total_iters, self.start_factor, self.end_factor
        return [b * (fs + (fe - fs) * min(T, t) / T) for b in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]`` (restarted at its
    epoch 0), and so on (PyTorch's ``SequentialLR``).

    Args:
        optimizer: the optimizer all the schedulers act on.
        schedulers: the schedules, constructed on ``optimizer``.
        milestones: increasing epochs at which to switch; ``len(schedulers) - 1`` of them.
    """

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler],
                 milestones: Sequence[int], last_epoch: int = -1) -> None:
        _check_children(optimizer, schedulers, type(self).__name__)
        if len(milestones) != len(schedulers) - 1:
            raise InvalidValueError(
                f"SequentialLR needs one milestone fewer than schedulers: got {len(schedulers)} "
                f"schedulers and {len(milestones)} milestones"
            )
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise InvalidValueError(f"milestones must increase, got {list(milestones)}")
        self._schedulers = list(schedulers)
        self._milestones = [int(m) for m in milestones]
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        # undo the initial step each child took when it was constructed, then take it again
        # for the child that runs at epoch 0 only
        for s in self._schedulers:
            s.last_epoch -= 1
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self) -> None:
        """Advance one epoch in the schedule whose turn it is (restarting it at a milestone)."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        """This scheduler's attributes (not the optimizer) with each child's state_dict."""
        state = {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()
                 if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`, the children's states included.

        Raises:
            InvalidValueError: the state has a different number of schedulers.
        """
        children = state_dict["_schedulers"]
        if len(children) != len(self._schedulers):
            raise InvalidValueError(
                f"the loaded state has {len(children)} schedulers, this one {len(self._schedulers)}"
            )
        self.__dict__.update({k: (list(v) if isinstance(v, list) else v)
                              for k, v in state_dict.items() if k != "_schedulers"})
        for s, child in zip(self._schedulers, children):
            s.load_state_dict(child)


class LinearWarmup(SequentialLR):
    r"""Linear warm-up for ``warmup_iters`` epochs, then ``after`` (or the initial rate).

    .. math:: \eta_t = \eta_0 \left(f_s + (1 - f_s) \frac{t}{W}\right) \ (t < W), \qquad
              \eta_t = \text{after}_{\,t - W} \ (t \ge W)

    Exactly ``SequentialLR(optimizer, [LinearLR(optimizer, start_factor, 1.0, warmup_iters),
    after], milestones=[warmup_iters])``.

    Args:
        optimizer: the optimizer.
        warmup_iters: :math:`W \ge 1`, the length of the warm-up.
        after: the schedule to run from epoch :math:`W` on, constructed on ``optimizer``
            (it starts at its own epoch 0 there); None keeps the initial rate. Default: None.
        start_factor: :math:`f_s \in (0, 1]`, the fraction of the rate at epoch 0. Default: 1/3.
    """

    def __init__(self, optimizer: Optimizer, warmup_iters: int,
                 after: LRScheduler | None = None, start_factor: float = 1.0 / 3) -> None:
        warmup = LinearLR(optimizer, start_factor, 1.0, _check_int("warmup_iters", warmup_iters, 1))
        if after is None:
            super().__init__(optimizer, [warmup], [])
        else:
            super().__init__(optimizer, [warmup, after], [warmup_iters])


class ChainedScheduler(LRScheduler):
    """Step several chainable schedulers together, so their factors multiply (PyTorch's
    ``ChainedScheduler``), e.g. a linear warm-up and a cosine decay running at once.

    Args:
        schedulers: the schedules, all on one optimizer.
    """

    def __init__(self, schedulers: Sequence[LRScheduler],
                 optimizer: Optimizer | None = None) -> None:
        if not schedulers:
            raise InvalidValueError("ChainedScheduler needs at least one scheduler")
        optimizer = optimizer if optimizer is not None else schedulers[0].optimizer
        _check_children(optimizer, schedulers, type(self).__name__)
        self._schedulers = list(schedulers)
        self.optimizer = optimizer
        self._last_lr = self._group_lrs()

    def step(self) -> None:
        """Step every scheduler once, in order, so their factors multiply."""
        for s in self._schedulers:
            s.step()
        self._last_lr = self._group_lrs()

    state_dict = SequentialLR.state_dict
    load_state_dict = SequentialLR.load_state_dict


def _check_children(optimizer: Optimizer, schedulers: Sequence[LRScheduler], who: str) -> None:
    if not schedulers:
        raise InvalidValueError(f"{who} needs at least one scheduler")
    for i, s in enumerate(schedulers):
        if isinstance(s, ReduceLROnPlateau):
            raise InvalidValueError(
                f"{who} cannot hold ReduceLROnPlateau (index {i}): its step() needs a metric"
            )
        if not isinstance(s, LRScheduler):
            raise InvalidValueError(f"{who}: item {i} is not a scheduler")
        if s.optimizer is not optimizer:
            raise InvalidValueError(f"{who}: scheduler {i} belongs to another optimizer")


class ReduceLROnPlateau(LRScheduler):
    r"""Multiply the rate by ``factor`` when a metric has stopped improving (PyTorch's).

    Call ``step(metric)`` once per epoch with the monitored value (e.g. the validation loss).
    A value is an improvement when it beats the best so far by the threshold: in ``"min"`` mode
    ``a < best (1 - threshold)`` (``rel``) or ``a < best - threshold`` (``abs``); ``"max"`` mode
    mirrors it. After more than ``patience`` epochs without improvement each group's rate becomes
    :math:`\max(\eta \cdot \text{factor}, \text{min\_lr})` (unless that changes it by less than
    ``eps``), and the next ``cooldown`` epochs do not count as bad.

    Args:
        optimizer: the optimizer.
        mode: ``"min"`` or ``"max"``. Default: ``"min"``.
        factor: in [0, 1). Default: 0.1.
        patience: epochs (>= 0). Default: 10.
        threshold: >= 0. Default: 1e-4.
        threshold_mode: ``"rel"`` or ``"abs"``. Default: ``"rel"``.
        cooldown: epochs (>= 0). Default: 0.
        min_lr: a lower bound, one for all groups or a list with one per group. Default: 0.
        eps: the smallest change of rate applied. Default: 1e-8.
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float | Sequence[float] = 0.0,
                 eps: float = 1e-8) -> None:
        if not isinstance(optimizer, Optimizer):
            raise InvalidValueError(f"{type(optimizer).__name__} is not an Optimizer")
        if mode not in ("min", "max"):
            raise InvalidValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise InvalidValueError(
                f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.optimizer = optimizer
        self.mode = mode
        self.factor = check_real("factor", factor, 0.0, 1.0, high_open=True)
        self.patience = _check_int("patience", patience, 0)
        self.threshold = check_real("threshold", threshold)
        self.threshold_mode = threshold_mode
        self.cooldown = _check_int("cooldown", cooldown, 0)
        self.eps = check_real("eps", eps)
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise InvalidValueError(
                    f"expected {n} min_lr values (one per group), got {len(min_lr)}")
            self.default_min_lr = None
            self.min_lrs = [check_real("min_lr", m) for m in min_lr]
        else:
            self.default_min_lr = check_real("min_lr", min_lr)
            self.min_lrs = [self.default_min_lr] * n
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = self._group_lrs()

    def step(self, metrics: Any) -> None:  # type: ignore[override]
        """Record one epoch's metric (a number or a one-element tensor); maybe reduce the rate."""
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._match_min_lrs()
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._group_lrs()

    def _match_min_lrs(self) -> None:
        """One ``min_lr`` per group, also for groups added after construction."""
        n = len(self.optimizer.param_groups)
        if len(self.min_lrs) == n:
            return
        if self.default_min_lr is None:
            raise InvalidValueError(
                f"the optimizer now has {n} parameter groups but min_lr lists "
                f"{len(self.min_lrs)}: set scheduler.min_lrs to one value per group"
            )
        self.min_lrs = [self.default_min_lr] * n

    @property
    def in_cooldown(self) -> bool:
        """True during the ``cooldown`` epochs after a reduction."""
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel"
                        else best - self.threshold)
        return a > (best * (1.0 + self.threshold) if self.threshold_mode == "rel"
                    else best + self.threshold)
