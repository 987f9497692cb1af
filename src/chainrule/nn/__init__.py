"""``chainrule.nn``: layers, activations, losses, initialisers and the ``Module`` base class.

    import chainrule as cr
    model = cr.nn.MLP([784, 256, 10], activation="relu")
    loss = cr.nn.functional.cross_entropy(model(x), y)

Models made of built-in layers can be rebuilt from data: ``model.spec()`` gives a JSON-able
description, :func:`build` turns it back into a module (see ``chainrule.nn.module``), and
``state_dict``/``load_state_dict`` carry the weights.
"""

from . import functional, init
from .activation import (
    ACTIVATIONS, ELU, GELU, Identity, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Sign, SiLU, Softmax,
    Softplus, Tanh, activation_name, get_activation,
)
from .container import MLP, Sequential
from .dropout import Dropout
from .linear import Flatten, Linear
from .loss import (
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HingeLoss, MSELoss, NLLLoss, SquareLoss,
)
from .module import LAYERS, LoadResult, Module, Parameter, build, register_layer
from .preprocessing import Impute, OneHot, Standardize

__all__ = [
    "Module", "Parameter", "LoadResult", "LAYERS", "build", "register_layer",
    "Linear", "Flatten", "Sequential", "MLP", "Dropout",
    "Identity", "Sign", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "Softplus", "GELU",
    "SiLU", "Softmax", "LogSoftmax", "ACTIVATIONS", "get_activation", "activation_name",
    "MSELoss", "SquareLoss", "HingeLoss", "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss",
    "BCELoss", "functional", "init", "Standardize", "Impute", "OneHot",
]
