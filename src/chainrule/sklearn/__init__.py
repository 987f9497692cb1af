"""scikit-learn estimators trained by chainrule: ``MLPClassifier`` and ``MLPRegressor``.

    from chainrule.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64,), activation="leaky_relu", dropout=0.1,
                        class_weight="balanced", early_stopping=True, dtype="float32")
    clf.fit(X_train, y_train).score(X_test, y_test)
    chainrule.save(clf.network_, "digits.safetensors")   # the network alone

They accept scikit-learn's MLP parameters (same names, same meaning, same training loop and
random sequence) plus chainrule's: ``loss``, ``output_activation``, ``dropout``,
``class_weight``, ``validation_metric``, ``dtype``, ``checkpoint_segments`` and ``device``.
Requires scikit-learn >= 1.6.
"""

from ._estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
