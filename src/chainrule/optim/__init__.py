"""Optimizers, learning-rate schedules and gradient clipping.

    opt = cr.optim.Adam(model.parameters(), lr=1e-3)
    sched = cr.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    for xb, yb in batches:
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        cr.optim.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
    sched.step()

Every optimizer has PyTorch's defaults and update order, so hyper-parameters carry over, and
each docstring states its update rule.
"""

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .clip import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler",
    "clip_grad_norm_", "clip_grad_value_",
]
