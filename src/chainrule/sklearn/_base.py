"""What the two estimators share: the network, the training loop with scikit-learn's MLP
semantics, early stopping, prediction, the ``coefs_``/``intercepts_`` views and pickling.

The training loop follows ``sklearn.neural_network.MLPClassifier`` step for step, so the same
``random_state`` gives the same initial weights, validation split and batch order:

- weights start from Glorot's uniform rule, U(-a, a) with a = sqrt(6 / (fan_in + fan_out))
  (2 instead of 6 for a logistic activation), drawn for coefficients then intercepts, layer by
  layer, from ``check_random_state(random_state)``;
- each epoch shuffles the sample order (``sklearn.utils.shuffle``) and walks it in batches of
  ``batch_size`` (``"auto"``: min(200, n_samples));
- the objective of a batch B is the weighted mean loss plus the L2 penalty on the weights (not the
  biases) alpha / (2 sum_{i in B} w_i) * sum_l ||W_l||^2 (w_i = 1 without weights), whose gradient
  (alpha / sum_i w_i) W is added to the weights' gradient before the optimizer's step (as a
  ``weight_decay`` of alpha / sum_i w_i on the weights alone would add it);
- ``loss_curve_`` holds the epoch's batch objectives averaged by batch size; training stops when
  the training loss (or, with ``early_stopping``, the validation metric) has not improved by
  ``tol`` for ``n_iter_no_change`` epochs, and warns with ``ConvergenceWarning`` at ``max_iter``;
- ``early_stopping`` holds out a (stratified) ``validation_fraction`` and restores the weights of
  the best validation epoch at the end;
- unlike scikit-learn, after each epoch every parameter and optimizer-state entry below the
  dtype's smallest normal number (1.2e-38 in float32) is set to zero, as a CPU's flush-to-zero
  mode would (``FlatParams.flush_subnormals``: subnormal weights make every product several
  times slower); a fit that never produces one is unchanged.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

import chainrule as cr
from chainrule.backend import move_to, normalize_device, to_numpy
from chainrule.checkpoint import checkpoint_sequential

from ._direct import direct_step
from ._heads import Head
from ._optim import make_optimizer
from ._params import HIDDEN_ACTIVATIONS, check_common, compute_dtype, hidden_sizes

PREDICT_CHUNK = 8192  # rows per forward pass in predict: bounds memory, not results


# --------------------------------------------------------------------------- the base class
class BaseMLP(BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor` (not public).

    Subclasses define ``__init__`` (the parameters), ``_LOSSES``, ``_validate_input``,
    ``_class_sample_weight``, ``_make_head``, ``_score_val`` and the prediction methods.
    """

    _LOSSES: tuple[str, ...] = ()
    _VALIDATION_METRICS: tuple[str, ...] = ()

    # ------------------------------------------------------------------ hyper-parameters
    def _check_params(self) -> None:
        check_common(self)

    def _output_activation(self) -> str | None:
        """The activation after the last layer inside the network (None: a linear output)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the network
    def _initialize(self, layer_units: list[int], dtype: np.dtype, head: Head) -> None:
        """Fresh network, fitted-state attributes and curves (the first fit, or a cold one)."""
        rng = self._random_state
        factor = 2.0 if HIDDEN_ACTIVATIONS[self.activation] == "sigmoid" else 6.0
        inits = []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = rng.uniform(-bound, bound, (fan_in, fan_out))
            intercept = rng.uniform(-bound, bound, fan_out)
            inits.append((coef, intercept))
        # Dropout masks need their own stream; drawing its seed only when it is used keeps the
        # random sequence (hence the fit) identical to scikit-learn's otherwise.
        seed = int(rng.randint(np.iinfo(np.int32).max)) if self.dropout > 0 else 0
        out_act = self._output_activation()
        net = cr.nn.MLP(layer_units, activation=HIDDEN_ACTIVATIONS[self.activation],
                        output_activation=out_act, dropout=float(self.dropout),
                        dtype=str(dtype), generator=cr.Generator(seed))
        for layer, (coef, intercept) in zip(net.linears, inits):
            layer.weight.data = np.ascontiguousarray(coef.T, dtype=dtype)
            layer.bias.data = np.ascontiguousarray(intercept, dtype=dtype)
        self.network_ = net
        self.n_layers_ = len(layer_units)
        self.n_outputs_ = layer_units[-1]
        self.out_activation_ = head.out_activation
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self.validation_loss_curve_ = [] if self.early_stopping else None
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = (np.inf if self._lower_is_better() else -np.inf)
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
        self.__dict__.pop("_optimizer", None)
        self.__dict__.pop("_flat", None)

    @property
    def coefs_(self) -> list[np.ndarray]:
        """The weight matrices in scikit-learn's layout: ``coefs_[i]`` has shape
        (fan_in, fan_out), so layer i computes ``X @ coefs_[i] + intercepts_[i]``. On the CPU
        these are views of the live parameters (``W.T``): writing into them changes the model
        (until the next ``fit``, which may move the parameters to new buffers)."""
        check_is_fitted(self, "network_")
        return [_host_view(layer.weight.data).T for layer in self.network_.linears]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """The bias vectors, ``intercepts_[i]`` of shape (fan_out,) (views, like ``coefs_``)."""
        check_is_fitted(self, "network_")
        return [_host_view(layer.bias.data) for layer in self.network_.linears]

    # ------------------------------------------------------------------ optimizer
    def _make_optimizer(self) -> Any:
        self._flat, optimizer = make_optimizer(self, self.network_)
        return optimizer

    def _set_lr(self, lr: float) -> None:
        for group in self._optimizer.param_groups:
            group["lr"] = lr

    # ------------------------------------------------------------------ fitting
    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool) -> BaseMLP:
        self._check_params()
        hidden = hidden_sizes(self)
        first_pass = not hasattr(self, "network_") or (not self.warm_start and not incremental)
        X, Y, labels = self._validate_input(X, y, incremental, reset=first_pass)
        sw = self._sample_weight(sample_weight, X, labels, incremental)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        self._random_state = check_random_state(self.random_state)
        head = self._make_head(Y)
        dtype = compute_dtype(self, X.dtype)
        if first_pass:
            self._initialize([X.shape[1], *hidden, Y.shape[1]], dtype, head)
        elif self.network_.linears[-1].out_features != Y.shape[1]:
            raise ValueError(f"y has {Y.shape[1]} outputs but the fitted network has "
                             f"{self.network_.linears[-1].out_features}; refit from scratch")
        self._head = head
        device = normalize_device(self.device)
        if self.network_.linears[0].weight.device != device:
            self.network_.to(device=device)
            self.__dict__.pop("_optimizer", None)  # its state and flat views live elsewhere
        X = X.astype(self.network_.linears[0].weight.dtype, copy=False)
        if sp.issparse(X):
            X = X.tocsr()
        T = head.encode(Y, X.dtype)
        self._fit_stochastic(X, T, labels, sw, incremental)
        if not all(np.isfinite(to_numpy(p.data)).all() for p in self.network_.parameters()):
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed.")
        return self

    def _sample_weight(self, sample_weight: Any, X: Any, labels: Any,
                       incremental: bool) -> np.ndarray | None:
        sw = None
        if sample_weight is not None:
            sw = check_array(sample_weight, ensure_2d=False, dtype=np.float64,
                             input_name="sample_weight", copy=True)
            if sw.ndim == 0:
                sw = np.full(X.shape[0], float(sw))
            if sw.ndim != 1 or sw.shape[0] != X.shape[0]:
                raise ValueError(f"sample_weight.shape == {sw.shape}, expected "
                                 f"({X.shape[0]},)!")
            if (sw < 0).any():
                raise ValueError("Negative values in data passed to `sample_weight`")
            if not sw.sum() > 0:
                raise ValueError("Sample weights must contain at least one non-zero number.")
        cw = self._class_sample_weight(labels, incremental)
        if cw is not None:
            sw = cw if sw is None else sw * cw
        return sw

    def _class_sample_weight(self, labels: Any, incremental: bool) -> np.ndarray | None:
        return None

    def _fit_stochastic(self, X: Any, T: np.ndarray, labels: Any, sw: np.ndarray | None,
                        incremental: bool) -> None:
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if (not incremental or not hasattr(self, "_optimizer")
                or not self._flat.views(self.network_)):
            # (a partial_fit after the user replaced or moved network_ starts a new optimizer:
            # the old one's flat buffer is no longer what the layers hold)
            self._optimizer = self._make_optimizer()
        self._match_stopping_state()
        rng = self._random_state
        val = None
        n_all = X.shape[0]
        if self.early_stopping:
            # Stratified for single-output classification (scikit-learn's own MLP stratifies
            # only binary problems, as its binarized multiclass target is 2-D).
            stratify = labels if is_classifier(self) and labels.ndim == 1 else None
            train_idx, val_idx = train_test_split(np.arange(n_all), random_state=rng,
                                                  test_size=self.validation_fraction,
                                                  stratify=stratify)
            if val_idx.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            val = (X[val_idx], T[val_idx], labels[val_idx],
                   None if sw is None else sw[val_idx])
            X, T, sw = X[train_idx], T[train_idx], (None if sw is None else sw[train_idx])
            self._best_state = {k: to_numpy(v.data).copy()
                                for k, v in self.network_.state_dict().items()}

        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n))

        device = normalize_device(self.device)
        const = self._head.row_constant(T)
        T_dev = T if device == "cpu" else move_to(T, device)
        step = self._make_step(X, T_dev, sw, const, device)
        # The batches' bounds, and the sample order, shuffled in place each epoch:
        # rng.shuffle makes the swaps that sklearn.utils.shuffle(sample_idx, random_state=rng)
        # makes on a fresh arange before indexing with it, so the order is the same, without
        # the arange, the indexing and shuffle's parameter validation.
        bounds = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
        shuffle = self.shuffle
        sample_idx = np.arange(n)
        net = self.network_
        net.train()
        self.n_iter_ = 0
        try:
            for _ in range(self.max_iter):
                if shuffle:
                    rng.shuffle(sample_idx)
                accumulated = 0.0
                for start, stop in bounds:
                    loss = step(sample_idx[start:stop] if shuffle else slice(start, stop))
                    accumulated += loss * (stop - start)
                self.n_iter_ += 1
                self._flat.flush_subnormals(self._optimizer)
                self.loss_ = accumulated / n
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                self._update_no_improvement_count(val)
                if self.learning_rate == "invscaling" and self.solver == "sgd":
                    self._set_lr(self.learning_rate_init / (self.t_ + 1) ** self.power_t)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = ("Validation score" if self.early_stopping else "Training loss")
                    msg = (f"{what} did not improve more than tol={self.tol:f} for "
                           f"{self.n_iter_no_change} consecutive epochs.")
                    if self._trigger_stopping(msg):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                                  "reached and the optimization hasn't converged yet.",
                                  ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        finally:
            net.eval()
            self._flat.release_grads()
        if self.early_stopping:
            net.load_state_dict(self._best_state)
            del self._best_state

    def _make_step(self, X: Any, T: Any, sw: np.ndarray | None, const: np.ndarray | None,
                   device: str) -> Callable[[Any], float]:
        """The training step of this fit: ``step(idx)`` makes one update on the rows ``idx`` (an
        index array or a slice) and returns the batch objective (before the update).

        Everything that stays the same for the whole fit (the network, head, optimizer, input
        kind, penalty) is looked up once here rather than at every step; dense rows are gathered
        with ``take`` (2.1 against 3.0 us for 200 x 64 float32 rows). With the lighter gradient
        gathering of ``FlatParams`` this saves about 43 000 of 2.4 million instructions per step
        of the digits fit (float32, 64-100-10, batch 200); the arithmetic, hence every fitted
        value, is unchanged."""
        net = self.network_
        head_loss = self._head.loss
        flat = self._flat
        optimizer = self._optimizer
        layers = list(net) if self.checkpoint_segments is not None else None
        segments = self.checkpoint_segments
        gather = X.take if type(X) is np.ndarray else None
        sparse = sp.issparse(X)
        on_cpu = device == "cpu"
        penalty = self.alpha > 0 and self.solver != "adamw"
        alpha = self.alpha
        half_alpha = 0.5 * alpha
        weights = flat.weights
        Tensor = cr.Tensor
        dtype = weights.data.dtype
        direct = None
        compiled = None
        if (getattr(self, "compile", True) and sw is None and segments is None and not sparse
                and getattr(X, "dtype", None) == dtype):
            compiled = self._compiled_step(optimizer)
        elif getattr(X, "dtype", None) == dtype:
            direct = direct_step(net, self._head, device, segments, dtype)
        views = flat.grad_views(direct.params) if direct is not None else None
        xp = cr.get_xp(weights.data)

        def step(idx: Any) -> float:
            xb = X[idx] if gather is None or type(idx) is slice else gather(idx, axis=0)
            if sparse:
                xb = xb.toarray()
            wb = None if sw is None else sw[idx]
            if wb is not None:
                total = float(wb.sum())
                if total <= 0:  # a batch of zero weight carries no information: no step
                    return 0.0
            else:
                total = float(xb.shape[0])
            if compiled is not None:  # the step under cr.compile: same bits, replayed
                pen = decay = 0.0
                if penalty:  # (the penalty's value from the weights before the update)
                    w = weights.data
                    pen = half_alpha * float(w @ w) / total
                    decay = alpha / total
                x = xb if on_cpu else move_to(xb, device)
                value = compiled(x, T[idx], xp.asarray(decay, dtype=dtype)).data.item()
                if const is not None:
                    value += float(np.average(const[idx], weights=wb))
                return value + pen if penalty else value
            if direct is not None:  # the same step without the graph (``_direct``): same bits
                loss, grads = direct(xb, T[idx], wb)
                value = loss.item()
            else:
                x = Tensor(xb if on_cpu else move_to(xb, device))
                d = net(x) if layers is None else checkpoint_sequential(layers, segments, x)
                loss = head_loss(d, T[idx], wb)
                value = loss.data.item()
            if const is not None:  # (the loss's constant part, outside the graph)
                value += float(np.average(const[idx], weights=wb))
            decay = 0.0
            if penalty:
                w = weights.data
                value += half_alpha * float(w @ w) / total
                decay = alpha / total
            if direct is not None:
                flat.gather_grads(decay, grads, views)
            else:
                flat.release_grads()
                loss.backward()
                flat.gather_grads(decay)
            optimizer.step()
            return value

        return step

    def _compiled_step(self, optimizer: Any) -> Any:
        """The training step of ``_make_step`` under ``cr.compile``: ``step(x, t, decay)`` for
        a batch's rows ``x`` (on the network's device), its encoded targets ``t`` and the L2
        penalty's coefficient as a 0-d array of the parameters' dtype (``alpha / n``; 0
        without penalty), returning the batch loss (a 0-d tensor). Kept across fits of the same
        network, head and optimizer (``partial_fit`` calls replay the same plan)."""
        net, head, flat = self.network_, self._head, self._flat
        key = (net, type(head), flat, optimizer)
        kept = self.__dict__.get("_compiled")
        if kept is not None and all(a is b for a, b in zip(kept[0], key)):
            return kept[1]  # (a head of the same type computes the same loss)
        Tensor = cr.Tensor

        def fit_step(x: Any, t: Any, decay: Any) -> Any:
            net.zero_grad()
            loss = head.loss(net(Tensor(x)), t, None)
            loss.backward()
            flat.gather_grads(decay)
            optimizer.step()
            return loss

        step = cr.compile(fit_step)
        self.__dict__["_compiled"] = (key, step)
        return step

    def _match_stopping_state(self) -> None:
        """Make the attributes that track improvement fit the current ``early_stopping``. They
        are set up for the setting of the fit that initialised the network, and a warm start
        (``warm_start=True`` or ``partial_fit``) may come with the other setting; scikit-learn's
        MLP then fails with a TypeError or AttributeError. Switching to early stopping starts
        an empty validation record; switching it off tracks the best training loss so far."""
        if self.early_stopping:
            if self.validation_scores_ is None:
                self.validation_scores_ = []
                self.validation_loss_curve_ = []
                self.best_validation_score_ = (np.inf if self._lower_is_better() else -np.inf)
                self._no_improvement_count = 0
        elif self.best_loss_ is None:
            self.best_loss_ = min(self.loss_curve_, default=np.inf)
            self._no_improvement_count = 0

    def _trigger_stopping(self, msg: str) -> bool:
        """scikit-learn's rule: stop, except that SGD with an adaptive rate first divides the
        rate by 5 (and stops once it is below 1e-6)."""
        if self.solver == "sgd" and self.learning_rate == "adaptive":
            lr = self._optimizer.param_groups[0]["lr"]
            if lr <= 1e-6:
                if self.verbose:
                    print(msg + " Learning rate too small. Stopping.")
                return True
            self._set_lr(lr / 5.0)
            if self.verbose:
                print(msg + f" Setting learning rate to {lr / 5.0:f}")
            return False
        if self.verbose:
            print(msg + " Stopping.")
        return True

    def _lower_is_better(self) -> bool:
        return self.validation_metric in ("loss", "mse")

    def _update_no_improvement_count(self, val: Any) -> None:
        if val is None:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]
            return
        X_val, T_val, y_val, sw_val = val
        d = self._decision_values(X_val)
        if sw_val is not None and not sw_val.sum() > 0:  # nothing to measure
            v_loss = score = np.nan
        else:
            with cr.no_grad():
                v_loss = float(self._head.loss(cr.Tensor(d), T_val, sw_val).item())
            const = self._head.row_constant(T_val)
            if const is not None:
                v_loss += float(np.average(const, weights=sw_val))
            score = v_loss if self.validation_metric == "loss" else self._score_val(d, y_val,
                                                                                   sw_val)
        self.validation_loss_curve_.append(v_loss)
        self.validation_scores_.append(score)
        if self.verbose:
            print(f"Validation score: {score:f}")
        # A NaN score is no improvement (scikit-learn would reset the count instead).
        best = self.best_validation_score_
        if self._lower_is_better():
            improved_enough, better = score <= best - self.tol, score < best
        else:
            improved_enough, better = score >= best + self.tol, score > best
        self._no_improvement_count = 0 if improved_enough else self._no_improvement_count + 1
        if better:
            self.best_validation_score_ = score
            self._best_state = {k: to_numpy(v.data).copy()
                                for k, v in self.network_.state_dict().items()}

    # ------------------------------------------------------------------ predicting
    def _decision_values(self, X: Any) -> np.ndarray:
        """The network's output for validated ``X`` (dense or CSR), on the host, in evaluation
        mode, computed in chunks of rows, in NumPy's promotion of the input's and the
        parameters' dtypes (a float32 network given float64 input computes in float64, as
        scikit-learn's float32 MLP does)."""
        net = self.network_
        dtype = np.result_type(X.dtype, net.linears[0].weight.dtype)
        if dtype != net.linears[0].weight.dtype:
            net = copy.deepcopy(net).to(dtype=dtype)
        device = net.linears[0].weight.device
        was_training = net.training
        net.eval()
        out = []
        try:
            with cr.no_grad():
                for start in range(0, max(X.shape[0], 1), PREDICT_CHUNK):
                    xb = X[start:start + PREDICT_CHUNK]
                    if sp.issparse(xb):
                        xb = xb.toarray()
                    x = cr.tensor(np.asarray(xb, dtype=dtype), device=device)
                    out.append(to_numpy(net(x).data))
        finally:
            net.train(was_training)
        return np.concatenate(out, axis=0) if len(out) > 1 else out[0]

    def _validated_decision(self, X: Any) -> np.ndarray:
        """The decision values of ``X`` after scikit-learn's checks (float32 input stays
        float32; other input is float64)."""
        check_is_fitted(self, "network_")
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                          dtype=(np.float64, np.float32))
        return self._decision_values(X)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """The estimator's state with the network and the optimizer as NumPy arrays (so a model
        fitted on a GPU unpickles on a machine without one)."""
        state = dict(super().__getstate__())  # object.__getstate__ gives __dict__ itself
        net = state.pop("network_", None)
        if net is not None:
            state["network_"] = {"config": net.config(), "generator": net.generator.get_state(),
                                 "state": {k: to_numpy(v.data).copy()
                                           for k, v in net.state_dict().items()}}
        state.pop("_flat", None)  # rebuilt with the optimizer
        state.pop("_compiled", None)  # a traced step: made again at the next fit
        opt = state.pop("_optimizer", None)
        if opt is not None:
            sd = opt.state_dict()
            sd["state"] = {i: {k: (to_numpy(v) if hasattr(v, "shape") else v)
                               for k, v in s.items()} for i, s in sd["state"].items()}
            state["_optimizer"] = sd
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        net = state.pop("network_", None)
        opt = state.pop("_optimizer", None)
        super().__setstate__(state)
        if net is not None:
            gen = cr.Generator()
            gen.set_state(net["generator"])
            model = cr.nn.MLP(**net["config"], generator=gen)
            model.load_state_dict(net["state"])
            gen.set_state(net["generator"])  # the draws of the constructor are undone
            model.eval()
            self.network_ = model
            if opt is not None:
                self._optimizer = self._make_optimizer()
                if len(opt["param_groups"]) == len(self._optimizer.param_groups):
                    self._optimizer.load_state_dict(opt)
                else:  # pickled by an older chainrule, whose optimizer had other groups
                    warnings.warn("the optimizer state in this pickle comes from another "
                                  "version of chainrule and was dropped: the network is "
                                  "restored, and further partial_fit calls start the "
                                  "optimizer afresh", UserWarning)

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _host_view(a: Any) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else to_numpy(a)


__all__ = ["BaseMLP"]
