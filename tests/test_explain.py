"""``chainrule explain``: the worked example's numbers, the deltas against the engine, bad files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import chainrule as cr
from chainrule.cli import app
from chainrule.explain import WORKED_EXAMPLE, explain

runner = CliRunner()

# Hand computation of the worked example (ReLU, no biases):
#   s1 = W1 x = (0.45-0.4+0.26, 0.45-0.5+0.26, 1.2-1.0-1.3) = (0.31, 0.21, -1.1), x1 = (0.31, 0.21, 0)
#   s2 = W2 x1 = (0-0.252+0, 0.279+0.21+0) = (-0.252, 0.489),             x2 = (0, 0.489)
#   s3 = W3 x2 = -0 + 0.489 = 0.489,                                      h(x) = 0.489
HAND = {1: ([0.31, 0.21, -1.1], [0.31, 0.21, 0.0]), 2: ([-0.252, 0.489], [0.0, 0.489]),
        3: ([0.489], [0.489])}


def test_worked_example_python_api():
    e = explain()
    assert e.h == pytest.approx(0.489, abs=1e-12)
    d = e.to_dict()
    for layer in d["layers"]:
        s, x = HAND[layer["l"]]
        np.testing.assert_allclose(layer["s"], s, atol=1e-12)
        np.testing.assert_allclose(layer["x"], x, atol=1e-12)


def test_cli_worked_example_prints_every_signal_and_h():
    result = runner.invoke(app, ["explain"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "h(x) = 0.489" in out
    for l, (s, x) in HAND.items():
        assert f"layer {l}:" in out
    for value in ("0.31", "0.21", "-1.1", "-0.252", "0.489"):
        assert value in out


def test_cli_json_values_match_hand_computation():
    result = runner.invoke(app, ["explain", "--format", "json"])
    d = json.loads(result.output)
    assert d["h"] == pytest.approx([0.489], abs=1e-12)
    for layer in d["layers"]:
        np.testing.assert_allclose(layer["s"], HAND[layer["l"]][0], atol=1e-12)


def _engine_gradients(activation):
    """The worked example's network in the engine (float64), square loss against y = 1."""
    Ws = [cr.tensor(w, dtype="float64", requires_grad=True) for w in WORKED_EXAMPLE["W"]]
    bs = [cr.zeros(w.shape[0], dtype="float64", requires_grad=True) for w in Ws]
    x = cr.tensor([WORKED_EXAMPLE["x"]], dtype="float64")
    signals = []
    for W, b in zip(Ws, bs):
        s = x @ W.T + b
        s.retain_grad()
        signals.append(s)
        x = getattr(cr, activation)(s)
    e = ((x - 1.0) ** 2).sum()
    e.backward()
    return e.item(), Ws, bs, signals


def test_target_tanh_deltas_and_gradients_equal_engine():
    result = runner.invoke(app, ["explain", "--target", "1", "--activation", "tanh",
                                 "--eta", "0.5", "--format", "json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    e, Ws, bs, signals = _engine_gradients("tanh")
    assert d["e"] == pytest.approx(e, abs=1e-10)
    for layer, W, b, s in zip(d["layers"], Ws, bs, signals):
        np.testing.assert_allclose(layer["delta"], s.grad[0], rtol=0, atol=1e-10)   # de/ds
        np.testing.assert_allclose(layer["grad_W"], W.grad, rtol=0, atol=1e-10)
        np.testing.assert_allclose(layer["grad_b"], b.grad, rtol=0, atol=1e-10)
        np.testing.assert_allclose(layer["new_W"], W.numpy() - 0.5 * W.grad, atol=1e-12)


def test_cross_entropy_delta_is_p_minus_y():
    e = explain(W=[[[1.0, -1.0], [0.5, 0.5]], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]],
                x=[0.2, -0.4], activation="tanh", loss="cross-entropy", target=2)
    d = e.to_dict()
    p = np.array(d["p"])
    np.testing.assert_allclose(d["layers"][-1]["delta"], p - np.eye(3)[2], atol=1e-12)
    assert d["prediction"] == int(np.argmax(d["h"]))


@pytest.mark.parametrize("fmt, marker", [("markdown", "| j |"), ("latex", r"\begin{align*}")])
def test_markdown_and_latex_formats(fmt, marker):
    result = runner.invoke(app, ["explain", "--target", "1", "--format", fmt])
    assert result.exit_code == 0
    assert marker in result.output and "0.489" in result.output


@pytest.mark.parametrize(
    "content, message",
    [
        ({"W": [[[1, 2]], [[1], [2]]]}, "columns"),                   # layers don't chain
        ({"W": [[[1, 2, 3]]], "x": [1, 2]}, "input has 2 values"),    # wrong input length
        ({"W": [[["a", 2, 3]]]}, "numbers"),                          # not numbers
        ({"W": [[[1, 2, 3]]], "b": [[1, 2]]}, "b1 has 2 entries"),     # bias length
        ({"weights": []}, "\"W\""),                                   # wrong key
    ],
)
def test_bad_weights_file_exit_code_2(tmp_path, content, message):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(content))
    result = runner.invoke(app, ["explain", "--weights", str(path)])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_not_json_and_missing_file_exit_code_2(tmp_path):
    bad = tmp_path / "w.json"
    bad.write_text("{not json")
    for args in (["--weights", str(bad)], ["--weights", str(tmp_path / "nope.json")],
                 ["--activation", "cosine"], ["--input", "1,x,2"]):
        result = runner.invoke(app, ["explain", *args])
        assert result.exit_code == 2, args
        assert result.output.startswith("error:")


def test_weights_from_json_and_saved_model(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"W": [[[2.0, -1.0]]], "b": [[0.5]], "x": [1.0, 1.0],
                                "activation": "identity"}))
    d = json.loads(runner.invoke(app, ["explain", "-w", str(path), "-f", "json"]).output)
    assert d["h"] == pytest.approx([1.5])

    cr.manual_seed(0)
    model = cr.nn.MLP([2, 3, 1], activation="tanh")
    model_path = cr.save(model, tmp_path / "m.safetensors")
    result = runner.invoke(app, ["explain", "-w", str(model_path), "-x", "0.5,-0.5", "-f", "json"])
    assert result.exit_code == 0, result.output
    with cr.no_grad():
        h = model(cr.tensor([[0.5, -0.5]])).numpy()
    assert json.loads(result.output)["h"] == pytest.approx(h[0].tolist(), abs=1e-6)


def test_command_runs_as_a_subprocess():
    proc = subprocess.run([sys.executable, "-m", "chainrule", "explain"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "h(x) = 0.489" in proc.stdout
