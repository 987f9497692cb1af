"""Train the lecture's network on scikit-learn's bundled digits and print the test accuracy.

An MLP 64-128-10 with ReLU, softmax cross-entropy, SGD with momentum; a few seconds on a laptop.
Run:  python examples/quickstart.py
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import chainrule as cr


def main(epochs: int = 30, batch_size: int = 32, seed: int = 0) -> float:
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0) + 1e-8   # fitted on training data only
    X_train = ((X_train - mean) / std).astype(np.float32)
    X_test = ((X_test - mean) / std).astype(np.float32)

    cr.manual_seed(seed)
    model = cr.nn.MLP([64, 128, 10], activation="relu")
    opt = cr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(X_train))
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = cr.nn.functional.cross_entropy(model(cr.tensor(X_train[idx])),
                                                  cr.tensor(y_train[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    model.eval()
    with cr.no_grad():
        predictions = model(cr.tensor(X_test)).argmax(axis=1).numpy()
    accuracy = float((predictions == y_test).mean())
    print(f"digits: MLP 64-128-10 relu, {epochs} epochs in {seconds:.1f}s, "
          f"test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
