"""chainrule playground without a browser: the session (chainrule's engine, the lecture's numbers)
and the server's HTTP and WebSocket interface (Starlette's TestClient): bounds, 4xx JSON errors,
per-tab sessions, one training loop per session."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

with warnings.catch_warnings():   # newer Starlette prefers httpx2 for its TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from typer.testing import CliRunner

from chainrule.cli import app as cli_app
from chainrule.explain import explain
from chainrule.playground import Config, PlaygroundError, Session
from chainrule.playground.server import create_app
from chainrule.playground.session import MAX_HIDDEN_LAYERS, MAX_POINTS, MAX_UNITS


@pytest.fixture
def client():
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def _new(client, **config):
    r = client.post("/api/sessions", json=config)
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["state"]


# ---------------------------------------------------------------------------- the session
def test_lecture_preset_is_the_worked_example():
    s = Session(Config.from_dict({"preset": "lecture"}))
    e = s.explain_point("train", 0)
    assert e["h"] == ["0.489"] and e["raw"] == [1.5, -1.0, 1.3] and e["target"] == 1
    assert e["summary"][0] == "h(x) = 0.489"
    assert e["summary"][2] == "e = (h(x) - y)^2 = 0.261121  (y = [1.0], eta = 0.1)"
    # the CLI prints the same tables for the same example and target
    out = CliRunner().invoke(cli_app, ["explain", "--target", "1", "--format", "markdown"])
    assert out.exit_code == 0, out.output
    for layer in e["layers"]:
        for row in layer["rows"]:
            assert "| " + " | ".join(row) + " |" in out.output
    assert "δ_j^(3)" in e["layers"][2]["head"]
    assert e["layers"][2]["rows"][0][4] == "-1.022"     # delta^(3) = 2 (0.489 - 1) relu'


def test_explained_point_equals_chainrule_explain_for_the_trained_weights(tmp_path):
    for cfg in ({"dataset": "moons", "hidden": [5, 3], "activation": "leaky_relu",
                 "features": ["x1", "x2", "x1*x2", "sin(x1)"]},
                {"dataset": "blobs", "loss": "cross-entropy", "hidden": [4],
                 "activation": "sigmoid", "optimizer": "adam"},
                {"dataset": "xor", "output_activation": "identity", "l2": 0.01}):
        s = Session(Config.from_dict(cfg))
        for _ in range(3):
            s.train_epoch()
        e = s.explain_point("test", 4)
        path = tmp_path / "w.json"
        path.write_text(json.dumps(s.weights_file()))
        x = ",".join(repr(float(v)) for v in s.X_test[4])
        args = ["explain", "--weights", str(path), "--input", x, "--target", str(e["target"]),
                "--eta", repr(s.config.learning_rate), "--loss", s.config.loss,
                "--format", "markdown"]
        out = CliRunner().invoke(cli_app, args)
        assert out.exit_code == 0, out.output
        for layer in e["layers"]:
            for row in layer["rows"]:
                assert "| " + " | ".join(row) + " |" in out.output, (cfg, row)
        assert f"h(x) = {', '.join(e['h'])}" in out.output
        for line in e["summary"]:                      # h(x), the prediction, e and y
            assert line + "  \n" in out.output, (line, out.output)
        # and the explanation's forward pass is the network's own output
        h = s.model(s.X_test[4:5].copy()).numpy()[0]
        ref = explain(W=s.weights()[0][1:], b=s.weights()[1][1:], x=s.X_test[4],
                      activation=s.config.activation, loss=s.config.loss,
                      output_activation=s._explain_output_activation()).trace.h[0]
        np.testing.assert_allclose(h, ref, rtol=0, atol=1e-12)


def test_every_dataset_and_feature_trains():
    for name in ("xor", "moons", "circles", "spirals", "blobs", "gaussians"):
        loss = "cross-entropy" if name == "blobs" else "square"
        s = Session(Config.from_dict({"dataset": name, "loss": loss, "points": 200,
                                      "features": ["x1", "x2", "x1^2", "x2^2", "x1*x2",
                                                   "sin(x1)", "sin(x2)"]}))
        before = s.train_loss
        for _ in range(30):
            s.train_epoch()
        assert s.train_loss < before, name
        frame = s.frame()
        assert len(frame["units"]) == 3 and len(frame["weights"]) == 3


def test_training_only_changes_keep_the_weights():
    s = Session()
    s.train_epoch()
    W = s.weights()[0][1].copy()
    assert s.update(Config.from_dict({"learning_rate": 0.3, "optimizer": "adam"},
                                     base=s.config)) is False
    np.testing.assert_array_equal(s.weights()[0][1], W)
    assert s.epoch == 1
    assert s.update(Config.from_dict({"hidden": [3]}, base=s.config)) is True
    assert s.epoch == 0 and s.weights()[0][1].shape == (3, 2)


def test_lecture_preset_keeps_its_network_and_leaves_it_for_the_defaults():
    lec = Config.from_dict({"preset": "lecture"})
    c = Config.from_dict({"learning_rate": 0.3, "hidden": [7]}, base=lec)
    assert c.dataset == "lecture" and c.hidden == [3, 2] and c.learning_rate == 0.3
    d = Config.from_dict({"dataset": "spirals"}, base=lec)
    assert d.dataset == "spirals" and d.features == ["x1", "x2"] and d.hidden == [4, 2]
    # one SGD step on the example is the lecture's update
    s = Session(lec)
    e = explain(target=[1], eta=0.1)
    s.train_epoch()
    for l in (1, 2, 3):
        np.testing.assert_allclose(s.weights()[0][l], e.new_W[l], rtol=0, atol=1e-15)


@pytest.mark.parametrize("bad, message", [
    ({"hidden": [8] * (MAX_HIDDEN_LAYERS + 1)}, "at most 8"),
    ({"hidden": [MAX_UNITS + 1]}, "between 1 and 64"),
    ({"hidden": [0]}, "between 1 and 64"),
    ({"hidden": "8,8"}, "list"),
    ({"points": MAX_POINTS + 1}, "between 10 and 5000"),
    ({"dataset": "mnist"}, "unknown dataset"),
    ({"features": []}, "non-empty"),
    ({"features": ["x1", "x1"]}, "repeat"),
    ({"features": ["x3"]}, "unknown feature"),
    ({"activation": "sign"}, "unknown activation"),
    ({"loss": "hinge"}, "unknown loss"),
    ({"learning_rate": 0}, "learning_rate must be > 0"),
    ({"learning_rate": float("nan")}, "finite"),
    ({"learning_rate": "0.1"}, "finite number"),
    ({"batch_size": 1.5}, "integer"),
    ({"batch_size": 300}, "larger than the 250"),
    ({"train_ratio": 0.95}, "<= 0.9"),
    ({"noise": -1}, ">= 0"),
    ({"dataset": "blobs"}, "choose cross-entropy"),
    ({"optimizer": "lbfgs"}, "unknown optimizer"),
    ({"seed": True}, "integer"),
    ({"preset": "zoo"}, "unknown preset"),
    ({"units": 3}, "unknown parameter"),
])
def test_invalid_parameters(bad, message):
    with pytest.raises(PlaygroundError, match=re.escape(message)):
        Config.from_dict(bad)


# ---------------------------------------------------------------------------- the server
def test_page_and_static_files_are_served_locally(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "/static/app.js" in r.text and "/static/style.css" in r.text
    assert not re.search(r"(src|href)=\"(https?:)?//", r.text)    # nothing from elsewhere
    for name in ("app.js", "style.css", "index.html"):
        assert client.get(f"/static/{name}").status_code == 200
    opts = client.get("/api/options").json()
    assert opts["max_hidden_layers"] == 8 and opts["max_units"] == 64
    assert opts["max_points"] == 5000 and "gaussians" in opts["datasets"]


@pytest.mark.parametrize("bad", [
    {"hidden": [64] * 9}, {"hidden": [65]}, {"points": 5001}, {"learning_rate": -1},
    {"dataset": "nope"}, {"features": "x1"}, {"batch_size": "ten"}, [1, 2], "lecture",
])
def test_invalid_parameters_are_400_with_a_message(client, bad):
    r = client.post("/api/sessions", json=bad)
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"error"} and body["error"] and "Traceback" not in r.text
    sid, _ = _new(client)
    r = client.put(f"/api/sessions/{sid}/config", json=bad)
    assert r.status_code == 400 and set(r.json()) == {"error"}


def test_malformed_requests_are_4xx_json(client):
    sid, _ = _new(client)
    cases = [
        client.post("/api/sessions", content=b"{not json", headers={"content-type":
                                                                    "application/json"}),
        client.post("/api/sessions", content=b"{}", headers={"content-type": "text/plain"}),
        client.post("/api/sessions", content=b"[" * 100_000,
                    headers={"content-type": "application/json"}),
        client.get("/api/sessions/nosuchsession"),
        client.get(f"/api/sessions/{sid}/explain?part=train&index=99999"),
        client.get(f"/api/sessions/{sid}/explain?part=middle&index=0"),
        client.get(f"/api/sessions/{sid}/explain?part=train&index=one"),
        client.get(f"/api/sessions/{sid}/explain"),
        client.put("/api/sessions/nosuchsession/config", json={}),
        client.delete("/api/sessions"),
        client.get("/nowhere"),
        client.get("/static/../session.py"),
    ]
    expected = [400, 415, 413, 404, 400, 400, 400, 400, 404, 405, 404, 404]
    for r, code in zip(cases, expected):
        assert r.status_code == code, (r.request.url, r.status_code, r.text)
        assert "error" in r.json() and "Traceback" not in r.text


def test_session_lifecycle_over_http(client):
    sid, state = _new(client, dataset="xor", hidden=[3], points=100)
    assert state["sizes"] == [2, 3, 1] and len(state["points"]["x"]) == 100
    assert state["points"]["part"].count("train") == 50
    other, _ = _new(client)
    assert other != sid                                      # one session per tab
    f = client.post(f"/api/sessions/{sid}/step").json()
    assert f["epoch"] == 1 and f["steps"] == 5
    r = client.put(f"/api/sessions/{sid}/config", json={"learning_rate": 0.1})
    assert r.json()["rebuilt"] is False and r.json()["state"]["frame"]["epoch"] == 1
    e = client.get(f"/api/sessions/{sid}/explain?part=test&index=0").json()
    assert e["layers"][0]["head"][4] == "δ_j^(1)" and len(e["layers"]) == 2
    w = client.get(f"/api/sessions/{sid}/weights")
    assert "attachment" in w.headers["content-disposition"]
    assert np.array(w.json()["W"][0]).shape == (3, 2)
    assert client.post(f"/api/sessions/{sid}/reset").json()["state"]["frame"]["epoch"] == 0
    assert client.delete(f"/api/sessions/{sid}").status_code == 204
    assert client.get(f"/api/sessions/{sid}").status_code == 404


def test_session_count_is_bounded():
    with TestClient(create_app(max_sessions=2), raise_server_exceptions=False) as c:
        _new(c)
        _new(c)
        r = c.post("/api/sessions", json={})
        assert r.status_code == 503 and "sessions are open" in r.json()["error"]


def test_websocket_streams_training_with_one_loop_per_session(client):
    sid, _ = _new(client, dataset="circles", hidden=[4])
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        ws.send_json({"cmd": "step"})
        f = ws.receive_json()
        assert f["type"] == "frame" and f["epoch"] == 1
        ws.send_json({"cmd": "play"})
        ws.send_json({"cmd": "play"})       # a second play is a no-op: still one loop
        assert ws.receive_json() == {"type": "status", "playing": True}
        epochs = []
        while len(epochs) < 4:
            m = ws.receive_json()
            assert m["type"] == "frame", m
            epochs.append(m["epoch"])
            ws.send_json({"cmd": "ack"})
        assert epochs == sorted(epochs) and epochs[-1] > 1
        ws.send_json({"cmd": "pause"})
        while (m := ws.receive_json())["type"] != "status":
            pass
        assert m == {"type": "status", "playing": False}
        ws.send_json({"cmd": "dance"})
        assert "unknown command" in ws.receive_json()["message"]
        ws.send_text("not json")
        assert ws.receive_json()["type"] == "error"
        # a second connection to the same session is refused
        with pytest.raises(Exception):
            with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws2:
                ws2.receive_json()
    # the tab is gone: so is its session
    assert client.get(f"/api/sessions/{sid}").status_code == 404


def test_websocket_from_another_origin_is_refused(client):
    sid, _ = _new(client)
    with pytest.raises(Exception):
        with client.websocket_connect(f"/api/sessions/{sid}/ws",
                                      headers={"origin": "http://evil.example"}) as ws:
            ws.receive_json()


def test_divergence_is_a_message_not_a_crash(client):
    sid, _ = _new(client, dataset="xor", learning_rate=10.0, activation="relu",
                  output_activation="identity", optimizer="sgd", batch_size=1, hidden=[64] * 8)
    with client.websocket_connect(f"/api/sessions/{sid}/ws") as ws:
        ws.send_json({"cmd": "play"})
        for _ in range(200):
            m = json.loads(ws.receive_text(), parse_constant=_no_nan)   # what JSON.parse takes
            if m["type"] == "frame":
                ws.send_json({"cmd": "ack"})
            if m["type"] == "error":
                assert "not finite" in m["message"]
                break
        else:
            pytest.fail("a learning rate of 10 with 8 ReLU layers did not diverge")
        m = json.loads(ws.receive_text(), parse_constant=_no_nan)   # the last frame: finite
        assert m["type"] == "frame"
        assert ws.receive_json() == {"type": "status", "playing": False}


def _no_nan(name):
    raise AssertionError(f"{name} in a message: a browser's JSON.parse refuses it")


# ---------------------------------------------------------------------------- the command
def test_command_refuses_a_busy_port_and_a_bad_one_in_one_line():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        out = CliRunner().invoke(cli_app, ["playground", "--port", str(port)])
    assert out.exit_code == 2 and "cannot listen on 127.0.0.1" in out.output
    assert "Traceback" not in out.output
    out = CliRunner().invoke(cli_app, ["playground", "--port", "70000"])
    assert out.exit_code == 2 and "between 0 and 65535" in out.output
    out = CliRunner().invoke(cli_app, ["--help"])
    assert "playground" in out.output
