"""Pictures render headlessly, and the decision regions really separate the classes."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import chainrule as cr
from chainrule import viz
from chainrule.cli import _xor_model_and_data, app

runner = CliRunner()


@pytest.fixture(scope="module")
def xor():
    return _xor_model_and_data(seed=0)


def test_decision_regions_differ_between_classes(tmp_path, xor):
    model, X, y = xor
    _, _, classes = viz.predict_grid(model, (-1.2, 1.2), (-1.2, 1.2), resolution=41)
    # XOR: the quadrant corners must be predicted with their own labels
    assert classes[0, 0] == -1 and classes[-1, -1] == -1      # (-1,-1) and (1,1)
    assert classes[0, -1] == 1 and classes[-1, 0] == 1        # (1,-1) and (-1,1)
    assert set(np.unique(classes)) == {-1, 1}


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_each_picture_renders_to_a_file(tmp_path, xor, suffix):
    model, X, y = xor
    paths = [viz.plot_decision_regions(model, X, y, tmp_path / f"regions{suffix}"),
             viz.plot_activations(tmp_path / f"act{suffix}"),
             viz.plot_network(model, tmp_path / f"net{suffix}")]
    for p in paths:
        assert p.exists() and p.stat().st_size > 5_000
    if suffix == ".png":
        assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert b"<svg" in paths[0].read_bytes()[:2000]


def test_png_regions_have_two_class_colours(tmp_path, xor):
    import matplotlib.image as mpimg

    model, X, y = xor
    path = viz.plot_decision_regions(model, X, y, tmp_path / "r.png", hyperplanes=False)
    img = mpimg.imread(path)[..., :3]
    # sample the plot area near two corners of different class: colours must differ clearly
    h, w, _ = img.shape
    a = img[int(h * 0.2), int(w * 0.3)]
    b = img[int(h * 0.2), int(w * 0.85)]
    assert np.abs(a - b).sum() > 0.1


def test_multiclass_regions(tmp_path):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.3, (30, 2)) for c in ([0, 0], [3, 0], [0, 3])])
    y = np.repeat([0, 1, 2], 30)
    cr.manual_seed(0)
    model = cr.nn.MLP([2, 8, 3], activation="relu")
    opt = cr.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        loss = cr.nn.functional.cross_entropy(model(cr.tensor(X.astype(np.float32))),
                                              cr.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, _, classes = viz.predict_grid(model, (-1, 4), (-1, 4), resolution=30)
    assert set(np.unique(classes)) == {0, 1, 2}
    assert viz.plot_decision_regions(model, X, y, tmp_path / "m.png").stat().st_size > 5_000


def test_bad_arguments(tmp_path, xor):
    model, X, y = xor
    with pytest.raises(cr.InvalidValueError, match=".png or .svg"):
        viz.plot_activations(tmp_path / "a.jpg")
    with pytest.raises(cr.ShapeError, match="2-D inputs"):
        viz.plot_decision_regions(model, np.zeros((4, 3)), y, tmp_path / "r.png")


def test_plot_command(tmp_path):
    for sub in ("regions", "activations", "network"):
        out = tmp_path / f"{sub}.png"
        result = runner.invoke(app, ["plot", sub, str(out)])
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 5_000
    result = runner.invoke(app, ["plot", "activations", str(tmp_path / "x.gif")])
    assert result.exit_code == 2 and result.output.startswith("error:")
