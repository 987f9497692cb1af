"""Built-in data sets: documented shapes, seeded synthetic sets, MNIST-1D generation and cache."""

from __future__ import annotations

import os
import random
import socket
import warnings

import numpy as np
import pytest

from chainrule.data import (
    DataLoader,
    list_datasets,
    load_dataset,
    make_blobs,
    make_circles,
    make_gaussians,
    make_moons,
    make_spirals,
    make_xor,
    mnist1d_data,
)
from chainrule.errors import InvalidValueError

SHAPES = {   # name: (n_train, n_test, n_features, num_classes), as documented
    "digits": (1347, 450, 64, 10),
    "iris": (112, 38, 4, 3),
    "wine": (133, 45, 13, 3),
    "breast_cancer": (426, 143, 30, 2),
    "xor": (750, 250, 2, 2),
    "moons": (750, 250, 2, 2),
    "circles": (750, 250, 2, 2),
    "spirals": (750, 250, 2, 2),
    "blobs": (750, 250, 2, 3),
    "gaussians": (750, 250, 2, 2),
    "mnist1d": (4000, 1000, 40, 10),
}


class _NoNetwork:
    """Make every attempt to open a network connection fail loudly."""

    def __init__(self, monkeypatch):
        self.attempts = []

        def refuse(sock, address, *a, **k):
            self.attempts.append(address)
            raise AssertionError(f"network access attempted: {address}")

        monkeypatch.setattr(socket.socket, "connect", refuse)
        monkeypatch.setattr(socket.socket, "connect_ex", refuse)
        monkeypatch.setattr(socket, "create_connection",
                            lambda address, *a, **k: refuse(None, address))
        monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: refuse(None, host))


@pytest.fixture(scope="module")
def mnist1d_cache(tmp_path_factory):
    """Generate MNIST-1D once into a temporary cache, with the network switched off."""
    import mnist1d.data

    cache = tmp_path_factory.mktemp("chainrule-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHAINRULE_CACHE", str(cache))
        guard = _NoNetwork(mp)

        def no_download(*a, **k):
            raise AssertionError("mnist1d.data.get_dataset (the download path) was called")

        mp.setattr(mnist1d.data, "get_dataset", no_download)
        state, py_state = np.random.get_state(), random.getstate()
        bundle = load_dataset("mnist1d")
        after = np.random.get_state()
        assert guard.attempts == []
    # make_dataset reseeds the global generators; chainrule puts their states back
    assert all(np.array_equal(a, b) for a, b in zip(state[1:], after[1:]))
    assert random.getstate() == py_state
    return cache, bundle


def test_list_datasets_documents_every_set():
    infos = {i.name: i for i in list_datasets()}
    assert set(infos) == set(SHAPES)
    for name, (ntr, nte, d, c) in SHAPES.items():
        info = infos[name]
        assert (info.n_train, info.n_test, info.n_features, info.num_classes) == (ntr, nte, d, c)
        assert info.task == "classification" and info.source and info.description
        assert info.shapes == f"train ({ntr}, {d}), test ({nte}, {d})"


@pytest.mark.parametrize("name", [n for n in SHAPES if n != "mnist1d"])
def test_builtin_set_loads_with_documented_shapes(name):
    ntr, nte, d, c = SHAPES[name]
    b = load_dataset(name)
    assert b.X_train.shape == (ntr, d) and b.X_test.shape == (nte, d)
    assert b.y_train.shape == (ntr,) and b.y_test.shape == (nte,)
    assert b.X_train.dtype == np.float32 and b.y_train.dtype == np.int64
    assert b.num_classes == c and b.task == "classification"
    assert set(np.unique(b.y_train)) == set(range(c))
    assert len(b.feature_names) == d and len(b.class_names) == c
    assert b.X_val is None and b.source and b.description


def test_mnist1d_generated_offline_with_standard_split(mnist1d_cache):
    cache, b = mnist1d_cache
    assert b.X_train.shape == (4000, 40) and b.X_test.shape == (1000, 40)
    assert b.y_train.shape == (4000,) and b.y_test.shape == (1000,)
    assert b.num_classes == 10 and b.X_train.dtype == np.float32
    assert np.bincount(b.y_train).min() > 350           # ten roughly balanced classes
    files = os.listdir(cache)
    assert files == [mnist1d_data.cache_path().name]     # cached, no temporary left behind


def test_mnist1d_cache_is_reused_and_corrupt_cache_regenerated(mnist1d_cache, monkeypatch):
    cache, b = mnist1d_cache
    monkeypatch.setenv("CHAINRULE_CACHE", str(cache))
    path = mnist1d_data.cache_path()
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == ["x", "x_test", "y", "y_test"]

    def must_not_generate(seed=42):
        raise AssertionError("regenerated although the cache is valid")

    monkeypatch.setattr(mnist1d_data, "generate", must_not_generate)
    again = load_dataset("mnist1d", val_size=0.1)
    assert again.X_val.shape == (400, 40) and again.X_train.shape == (3600, 40)
    np.testing.assert_array_equal(again.X_test, b.X_test)
    monkeypatch.undo()

    monkeypatch.setenv("CHAINRULE_CACHE", str(cache))
    path.write_bytes(b"PK\x03\x04 this is not a zip archive")
    _NoNetwork(monkeypatch)
    with pytest.warns(RuntimeWarning, match="corrupt; regenerating"):
        regen = load_dataset("mnist1d")
    np.testing.assert_array_equal(regen.X_train, b.X_train)
    np.testing.assert_array_equal(regen.y_test, b.y_test)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset("mnist1d")                         # the rewritten cache is valid


@pytest.mark.parametrize("make", [make_xor, make_moons, make_circles, make_spirals, make_blobs,
                                  make_gaussians])
def test_synthetic_sets_are_seeded(make):
    X1, y1 = make(n_samples=200, seed=3)
    X2, y2 = make(n_samples=200, seed=3)
    X3, _ = make(n_samples=200, seed=4)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3)
    assert X1.shape[0] == 200 and X1.dtype == np.float32 and y1.dtype == np.int64
    counts = np.bincount(y1)
    assert counts.max() - counts.min() <= 1                 # balanced classes


def test_noise_option():
    # circles: without noise every point lies exactly on its circle
    X, y = make_circles(n_samples=400, noise=0.0, factor=0.5, seed=0)
    r = np.linalg.norm(X.astype(np.float64), axis=1)
    np.testing.assert_allclose(r, np.where(y == 1, 0.5, 1.0), atol=1e-6)
    Xn, yn = make_circles(n_samples=400, noise=0.1, factor=0.5, seed=0)
    resid = np.linalg.norm(Xn.astype(np.float64), axis=1) - np.where(yn == 1, 0.5, 1.0)
    assert 0.05 < resid.std() < 0.15
    # xor: noise-free points obey the sign rule exactly; noisy ones do not
    X, y = make_xor(n_samples=1000, noise=0.0)
    np.testing.assert_array_equal(y, (np.sign(X[:, 0]) != np.sign(X[:, 1])).astype(int))
    X, y = make_xor(n_samples=1000, noise=0.3)
    assert np.mean(y != (np.sign(X[:, 0]) != np.sign(X[:, 1]))) > 0.05
    # blobs: noise is the cluster standard deviation
    X, y = make_blobs(n_samples=3000, noise=0.5, seed=1)
    spread = np.mean([X[y == c].std(0).mean() for c in range(3)])
    assert abs(spread - 0.5) < 0.05
    # gaussians: noise is each cloud's standard deviation around its centre
    X, y = make_gaussians(n_samples=4000, noise=0.2, seed=2, distance=1.0)
    centres = np.stack([X[y == c].mean(0) for c in (0, 1)])
    np.testing.assert_allclose(np.linalg.norm(centres[1] - centres[0]), 1.0, atol=0.03)
    assert abs(np.mean([X[y == c].std(0).mean() for c in (0, 1)]) - 0.2) < 0.02
    # the option reaches the generator through load_dataset
    a = load_dataset("moons", noise=0.0, n_samples=100)
    b = load_dataset("moons", noise=0.3, n_samples=100)
    assert a.X_train.shape == (75, 2) and not np.array_equal(a.X_train, b.X_train)
    with pytest.raises(InvalidValueError, match="noise"):
        make_moons(noise=-1.0)
    with pytest.raises(InvalidValueError, match="n_samples"):
        make_spirals(n_samples=1)


def test_load_dataset_options_and_errors():
    b = load_dataset("Breast-Cancer", val_size=0.1, seed=1)
    assert b.X_val.shape == (57, 30) and b.X_train.shape == (569 - 57 - 143, 30)
    s = load_dataset("iris", standardize=True)
    np.testing.assert_allclose(s.X_train.mean(0), 0, atol=1e-5)
    assert s.standardizer is not None and abs(s.X_test.mean()) < 0.5
    with pytest.raises(InvalidValueError) as err:
        load_dataset("mnist")
    for name in SHAPES:
        assert name in str(err.value)
    with pytest.raises(InvalidValueError, match=r"unknown option\(s\) \['nosie'\].*noise"):
        load_dataset("moons", nosie=0.1)
    with pytest.raises(InvalidValueError, match="unsupported file type .txt"):
        load_dataset("data/train.txt")


def test_bundle_feeds_a_loader():
    b = load_dataset("spirals", n_samples=200)
    loader = DataLoader(b.dataset("train"), batch_size=32, shuffle=True, seed=0)
    xb, yb = next(iter(loader))
    assert xb.shape == (32, 2) and xb.dtype == np.float32 and yb.dtype == np.int64
    assert np.shares_memory(b.dataset("test").arrays[0], b.X_test)
    with pytest.raises(InvalidValueError, match="no validation part"):
        b.dataset("val")


def test_network_guard_catches_the_download_path(monkeypatch):
    """The guard used above would catch mnist1d's download (requests.get of its pickle URL)."""
    import requests

    guard = _NoNetwork(monkeypatch)
    with pytest.raises(AssertionError, match="network access attempted"):
        requests.get("https://github.com/greydanus/mnist1d/raw/master/mnist1d_data.pkl",
                     timeout=1)
    assert guard.attempts
