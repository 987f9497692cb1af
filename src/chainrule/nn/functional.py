"""Functional forms of the layers, activations and losses (``chainrule.nn.functional``, PyTorch's
``torch.nn.functional``): stateless functions of tensors, with any parameters passed in.

    import chainrule.nn.functional as F
    loss = F.cross_entropy(F.linear(F.relu(F.linear(x, W1, b1)), W2, b2), y)
"""

from __future__ import annotations

from chainrule.ops import linear

from .activation import (
    elu, gelu, identity, leaky_relu, log_softmax, relu, sigmoid, sign, silu, softmax, softplus,
    tanh,
)
from .dropout import dropout
from .loss import (
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, hinge_loss, mse_loss,
    nll_loss, square_loss,
)

__all__ = [
    "linear", "dropout", "identity", "sign", "sigmoid", "tanh", "relu", "leaky_relu", "elu",
    "softplus", "gelu", "silu", "softmax", "log_softmax", "mse_loss", "square_loss",
    "hinge_loss", "cross_entropy", "nll_loss", "binary_cross_entropy_with_logits",
    "binary_cross_entropy",
]
