"""``MLPClassifier`` and ``MLPRegressor``: scikit-learn estimators trained by chainrule."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, mean_squared_error, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d, validate_data

from ._base import BaseMLP
from ._heads import (
    HalfPoisson, HalfSquaredError, Head, Hinge, SigmoidCrossEntropy, SignedSquare,
    SoftmaxCrossEntropy,
)
from ._params import HIDDEN_ACTIVATIONS, check_output_activation, fail

_COMMON_PARAMS = """
    hidden_layer_sizes : int or array-like of ints, default=(100,)
        The widths of the hidden layers (``()``: none, a linear model).
    activation : str, default="relu"
        Hidden activation: scikit-learn's ``"identity"``, ``"logistic"``, ``"tanh"``,
        ``"relu"``, or chainrule's ``"sigmoid"`` (= logistic), ``"leaky_relu"``, ``"elu"``,
        ``"softplus"``, ``"gelu"``, ``"silu"``.
    solver : {"adam", "sgd", "adamw", "rmsprop", "adagrad"}, default="adam"
        The optimizer (chainrule's, with PyTorch's update rules). ``"sgd"`` makes exactly
        scikit-learn's updates at a constant rate; ``"adam"`` adds epsilon after the bias
        correction (scikit-learn before it), which changes only the steps of parameters with
        tiny gradients. With ``"adamw"`` ``alpha`` is AdamW's decoupled weight decay of the
        weights instead of a penalty in the loss.
    alpha : float, default=1e-4
        L2 penalty: alpha / (2 sum_i w_i) * sum_l ||W_l||^2 over the weights (not the biases) is
        added to each batch's loss, as in scikit-learn.
    batch_size : int or "auto", default="auto"
        Minibatch size; ``"auto"`` is min(200, n_samples).
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        scikit-learn's schedules for ``solver="sgd"``. The momentum buffer is PyTorch's (not
        scaled by the rate), so while the rate changes the steps differ slightly from
        scikit-learn's.
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
        Exponent of ``"invscaling"``: lr = learning_rate_init / (t + 1) ** power_t.
    max_iter : int, default=200
        Maximum number of epochs.
    shuffle : bool, default=True
        Shuffle the samples every epoch.
    random_state : int, RandomState instance or None, default=None
        Initial weights, validation split, batch order and dropout masks.
    tol : float, default=1e-4
        Required improvement of the training loss (or validation metric) per epoch.
    verbose : bool or int, default=False
        Print the loss (and validation score) of every epoch.
    warm_start : bool, default=False
        Start ``fit`` from the previous solution.
    momentum : float, default=0.9
        Momentum of ``solver="sgd"``.
    nesterovs_momentum : bool, default=True
        Nesterov momentum for ``solver="sgd"``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified for single-output
        classification), stop when the validation metric has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and restore the weights of the best epoch.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's (and AdamW's) moment decays and epsilon; epsilon is also RMSprop's.
    n_iter_no_change : int, default=10
    dropout : float, default=0.0
        Dropout probability after every hidden activation (training only).
    dtype : {None, "float32", "float64"}, default=None
        Dtype of the parameters and of training; None keeps float32 input in float32 and
        uses float64 otherwise. Predictions are computed in NumPy's promotion of the input's
        and the parameters' dtypes and returned in the input's (float32 or float64).
    checkpoint_segments : int or None, default=None
        Train with activation checkpointing in this many segments (less memory, one more
        forward pass; identical gradients).
    device : str, default="cpu"
        ``"cpu"``, or ``"cuda"``/``"cuda:N"`` (needs CuPy).
    compile : bool, default=True
        Replay the training step with ``chainrule.compile`` (traced once per batch size;
        the same fitted values bit for bit, faster). Fits with sample or class weights, or with
        ``checkpoint_segments``, run the step eagerly whatever this says.
"""

_COMMON_ATTRIBUTES = """
    n_features_in_, feature_names_in_ : int, ndarray
        Seen in fit (``feature_names_in_`` only for input with string column names).
    loss_ : float
        The training loss (with the penalty) of the last epoch.
    loss_curve_ : list of float
        The training loss of every epoch.
    best_loss_ : float or None
        The smallest training loss (None with early stopping).
    validation_scores_ : list of float or None
        With early stopping, the validation metric of every epoch.
    validation_loss_curve_ : list of float or None
        With early stopping, the validation loss (without the penalty) of every epoch.
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs run by the last call.
    t_ : int
        Training samples seen.
    coefs_, intercepts_ : list of ndarray
        Weights (fan_in, fan_out) and biases (fan_out,) per layer, scikit-learn's layout.
    n_layers_, n_outputs_ : int
    out_activation_ : str
        The output function that ``predict`` applies.
    network_ : chainrule.nn.MLP
        The trained network: ``chainrule.save(est.network_, path)`` exports it; it maps X to
        the decision values (logits for ``log_loss``, log-means for ``poisson``).
"""


class MLPClassifier(ClassifierMixin, BaseMLP):
    __doc__ = """Multi-layer perceptron classifier trained by chainrule, a drop-in for
    ``sklearn.neural_network.MLPClassifier`` with class and sample weights, dropout, more
    activations, a choice of loss, validation-loss curves and float32 training.

    Losses (``loss``):

    - ``"log_loss"`` (default): softmax cross-entropy for several classes, sigmoid
      cross-entropy for two classes and for multilabel targets (``predict_proba`` available);
    - ``"squared_error"``: the lecture's square loss e = (h(x) - y)^2 with y in {-1, +1} per
      output and h(x) = tanh(s) (``output_activation``); the prediction is sign(h(x))
      (argmax of h for several classes, sign per label for multilabel);
    - ``"hinge"``: max(0, 1 - y s), y in {-1, +1} (one-vs-rest for several classes).

    The objective of a batch is sum_i w_i l_i / sum_i w_i plus the L2 penalty, with w_i the
    product of ``sample_weight`` and ``class_weight``; the training loop is scikit-learn's
    (same initial weights, batches and stopping rule for the same ``random_state``).

    Parameters
    ----------""" + _COMMON_PARAMS + """\
    loss : {"log_loss", "squared_error", "hinge"}, default="log_loss"
    output_activation : {"tanh", "identity"} or None, default=None
        For ``loss="squared_error"`` only: the output activation, "tanh" when None (outputs
        symmetric about 0, as the targets -1/+1 and the sign rule need).
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes (single-output targets), multiplied into ``sample_weight``;
        "balanced" is n_samples / (n_classes * count(class)).
    validation_metric : {"accuracy", "loss"} or None, default=None
        What early stopping watches: accuracy (None, scikit-learn's) or the validation loss.

    Attributes
    ----------
    classes_ : ndarray
        The class labels (for multilabel targets, the label indices).""" + _COMMON_ATTRIBUTES

    _LOSSES = ("log_loss", "squared_error", "hinge")
    _VALIDATION_METRICS = ("accuracy", "loss")

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: Any = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001,
                 power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: Any = False,
                 warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: Any = 10, loss: str = "log_loss",
                 output_activation: str | None = None, dropout: float = 0.0,
                 class_weight: Any = None, validation_metric: str | None = None,
                 dtype: Any = None, checkpoint_segments: int | None = None,
                 device: str = "cpu", compile: bool = True) -> None:  # noqa: A002
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.loss = loss
        self.output_activation = output_activation
        self.dropout = dropout
        self.class_weight = class_weight
        self.validation_metric = validation_metric
        self.dtype = dtype
        self.checkpoint_segments = checkpoint_segments
        self.device = device
        self.compile = compile

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Fit the network to X (n_samples, n_features) and labels y (n_samples,) or a
        multilabel indicator matrix (n_samples, n_labels); ``sample_weight`` (n_samples,)
        weighs each sample's loss. Returns self."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None,
                    classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y), continuing from the current state; ``classes`` (all the
        labels that will ever appear) is required on the first call. Returns self."""
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._check_params()
            self.classes_ = unique_labels(classes)
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        elif classes is not None and not np.array_equal(self.classes_, unique_labels(classes)):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to "
                             f"partial_fit, was: {self.classes_!r}")
        return self._fit(X, y, sample_weight, incremental=True)

    def _check_params(self) -> None:
        super()._check_params()
        check_output_activation(self, self.loss == "squared_error",
                                 "its output function is fixed")
        if self.output_activation not in (None, "tanh", "identity"):
            # the targets are -1/+1 and the prediction is the sign: the output must be symmetric
            fail(self, "output_activation", "None, 'tanh' or 'identity' for the square loss")
        cw = self.class_weight
        if not (cw is None or cw == "balanced" or isinstance(cw, dict)):
            fail(self, "class_weight", "a dict, 'balanced' or None")

    def _output_activation(self) -> str | None:
        if self.loss != "squared_error":
            return None
        act = self.output_activation or "tanh"
        return None if act == "identity" else act

    def _validate_input(self, X: Any, y: Any, incremental: bool,
                        reset: bool) -> tuple[Any, np.ndarray, np.ndarray]:
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        Y = self._label_binarizer.transform(y)
        return X, np.asarray(Y), y

    def _class_sample_weight(self, labels: np.ndarray, incremental: bool) -> np.ndarray | None:
        cw = self.class_weight
        if cw is None:
            return None
        if labels.ndim != 1:
            raise ValueError("class_weight is not supported for multilabel targets; use "
                             "sample_weight")
        if incremental and cw == "balanced":
            raise ValueError(
                "class_weight 'balanced' is not supported for partial_fit. In order to use "
                "'balanced' weights, use compute_class_weight('balanced', classes=classes, "
                "y=y). In place of y you can use a large enough sample of the full training set "
                "target to properly estimate the class frequency distributions. Pass the "
                "resulting weights as the class_weight parameter.")
        classes = self.classes_ if cw != "balanced" else unique_labels(labels)
        weights = compute_class_weight(cw, classes=classes, y=labels)
        return weights[np.searchsorted(classes, labels)]

    def _make_head(self, Y: np.ndarray) -> Head:
        if self.loss == "log_loss":
            if self._label_binarizer.y_type_ == "multiclass":
                return SoftmaxCrossEntropy()
            return SigmoidCrossEntropy()
        if self.loss == "hinge":
            return Hinge("identity")
        return SignedSquare(self.output_activation or "tanh")

    def _score_val(self, d: np.ndarray, y_val: np.ndarray, sw: Any) -> float:
        if not np.isfinite(d).all():
            return np.nan
        pred = self._labels(d)
        if y_val.ndim == 1 and pred.ndim == 1 and pred.dtype == y_val.dtype:
            # accuracy_score's own arithmetic for one label per sample (np.average of the
            # matches), without its input checks: those cost 0.4 ms per epoch, a third of an
            # early-stopping epoch on digits, for labels that come from this fit.
            return float(np.average(y_val == pred, weights=sw))
        return float(accuracy_score(y_val, pred, sample_weight=sw))

    # ------------------------------------------------------------------ predicting
    def _labels(self, d: np.ndarray) -> np.ndarray:
        lb = self._label_binarizer
        if lb.y_type_ == "multiclass" and isinstance(d, np.ndarray):
            # LabelBinarizer.inverse_transform's rule for multiclass (the class of the largest
            # score, the index clipped) without its checks: 4 instead of 40 us per call.
            return lb.classes_.take(d.argmax(axis=1), mode="clip")
        return lb.inverse_transform(d, threshold=0.0)

    def decision_function(self, X: Any) -> np.ndarray:
        """The network's output: logits for ``log_loss`` (> 0 means ``classes_[1]`` for two
        classes), h(x) for the square loss, the margins for the hinge loss. Shape (n_samples,)
        for two classes, else (n_samples, n_classes)."""
        d = self._validated_decision(X)
        return d.ravel() if d.shape[1] == 1 else d

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (an indicator matrix for multilabel targets): the argmax of the
        decision values, or their sign for one output per label."""
        return self._labels(self._validated_decision(X))

    def _has_proba(self) -> bool:
        head = getattr(self, "_head", None)
        return head.probabilistic if head is not None else self.loss == "log_loss"

    @available_if(_has_proba)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (``loss="log_loss"`` only): softmax of the logits, or
        [1 - p, p] with p = sigmoid(logit) for two classes; for multilabel targets the
        probability of each label, (n_samples, n_labels)."""
        d = self._validated_decision(X)
        p = self._head.link(d)
        if p.shape[1] == 1:
            p = np.hstack([1.0 - p, p])
        return p

    @available_if(_has_proba)
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log(predict_proba(X))``."""
        p = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(p, out=p)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMLP):
    __doc__ = """Multi-layer perceptron regressor trained by chainrule, a drop-in for
    ``sklearn.neural_network.MLPRegressor`` with sample weights, dropout, more activations, an
    output activation, MSE or loss for early stopping, validation-loss curves and float32.

    Losses (``loss``): ``"squared_error"`` (default), scikit-learn's half squared error
    l_i = (1 / 2K) sum_k (h_k(x_i) - y_ik)^2 over the K outputs; ``"poisson"``, half the Poisson
    deviance with the mean exp(s) (needs y >= 0). The objective of a batch is
    sum_i w_i l_i / sum_i w_i plus the L2 penalty.

    Parameters
    ----------""" + _COMMON_PARAMS + """\
    loss : {"squared_error", "poisson"}, default="squared_error"
    output_activation : str or None, default=None
        For ``loss="squared_error"``: an activation applied to the output (e.g. "relu" or
        "softplus" for non-negative targets); None is the identity.
    validation_metric : {"r2", "mse", "loss"} or None, default=None
        What early stopping watches: R^2 (None, scikit-learn's), the mean squared error, or the
        validation loss (for "mse" and "loss" lower is better).

    Attributes
    ----------""" + _COMMON_ATTRIBUTES

    _LOSSES = ("squared_error", "poisson")
    _VALIDATION_METRICS = ("r2", "mse", "loss")

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: Any = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001,
                 power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: Any = False,
                 warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: Any = 10,
                 loss: str = "squared_error", output_activation: str | None = None,
                 dropout: float = 0.0, validation_metric: str | None = None, dtype: Any = None,
                 checkpoint_segments: int | None = None, device: str = "cpu",
                 compile: bool = True) -> None:  # noqa: A002
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.loss = loss
        self.output_activation = output_activation
        self.dropout = dropout
        self.validation_metric = validation_metric
        self.dtype = dtype
        self.checkpoint_segments = checkpoint_segments
        self.device = device
        self.compile = compile

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Fit the network to X (n_samples, n_features) and targets y (n_samples,) or
        (n_samples, n_outputs); ``sample_weight`` (n_samples,) weighs each sample's loss.
        Returns self."""
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y), continuing from the current state. Returns self."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _check_params(self) -> None:
        super()._check_params()
        check_output_activation(self, self.loss == "squared_error", "its mean is exp(s)")

    def _output_activation(self) -> str | None:
        if self.loss != "squared_error" or self.output_activation is None:
            return None
        act = HIDDEN_ACTIVATIONS[self.output_activation]
        return None if act == "identity" else act

    def _validate_input(self, X: Any, y: Any, incremental: bool,
                        reset: bool) -> tuple[Any, np.ndarray, np.ndarray]:
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson "
                             "regression.")
        return X, np.asarray(y, dtype=np.float64), y

    def _make_head(self, Y: np.ndarray) -> Head:
        if self.loss == "poisson":
            return HalfPoisson()
        return HalfSquaredError(self.output_activation or "identity")

    def _predictions(self, d: np.ndarray) -> np.ndarray:
        p = self._head.link(d)
        return p.ravel() if p.shape[1] == 1 else p

    def _score_val(self, d: np.ndarray, y_val: np.ndarray, sw: Any) -> float:
        pred = self._predictions(d)
        if not np.isfinite(pred).all():
            return np.nan
        if self.validation_metric == "mse":
            return float(mean_squared_error(y_val, pred, sample_weight=sw))
        return float(r2_score(y_val, pred, sample_weight=sw))

    def predict(self, X: Any) -> np.ndarray:
        """Predictions, (n_samples,) or (n_samples, n_outputs)."""
        return self._predictions(self._validated_decision(X))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        if self.loss == "poisson":
            tags.target_tags.positive_only = True
        return tags


__all__ = ["MLPClassifier", "MLPRegressor"]
