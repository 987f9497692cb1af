"""chainrule playground in a real browser: Playwright driving Debian's chromium, headless.

The server is the real command (``python -m chainrule playground --port 0``) in a subprocess.
The tests load the page, build spirals with two hidden layers of 8 tanh units by clicking, play
until the test loss is below 0.1, click a point and compare its delta table with what
``chainrule explain`` prints for the same weights, load the lecture's preset and read
h(x) = 0.489, and check ``chromium --headless --dump-dom`` of ``/?preset=lecture``. Screenshots go
to ``$CHAINRULE_PLAYGROUND_SHOTS`` (default: a temporary folder).

Chromium is found as ``$CHAINRULE_CHROMIUM``, ``chromium`` or ``chromium-browser`` on the PATH
(Playwright never downloads a browser here); without it the tests skip, except under CI
(``CI`` set), where a missing browser is a failure: ``.ci/run`` installs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
playwright_api = pytest.importorskip("playwright.sync_api")

from typer.testing import CliRunner  # noqa: E402

from chainrule.cli import app as cli_app  # noqa: E402
from chainrule.explain import _fmt, explain  # noqa: E402

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps",
    "--no-default-browser-check", "--metrics-recording-only", "--mute-audio",
]
TRAIN_TIMEOUT_S = 60    # spirals reach a test loss below 0.1 in a few seconds here


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHAINRULE_CHROMIUM"), shutil.which("chromium"),
                      shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


CHROMIUM = _chromium()
if CHROMIUM is None:
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing: .ci/run installs it (apt-get install chromium)")
    pytest.skip("no chromium to drive (set CHAINRULE_CHROMIUM)", allow_module_level=True)


@pytest.fixture(scope="module")
def server():
    """``chainrule playground`` on a free port; yields its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "chainrule", "playground", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if m is None:
            proc.kill()
            pytest.fail(f"the server did not start: {line!r} {proc.stderr.read()!r}")
        url = m.group(0)
        urllib.request.urlopen(url, timeout=10).read()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield pg
    context.close()
    # a 400 is the server refusing an invalid choice, which the page shows; anything else fails
    assert not [e for e in errors if "status of 400" not in e], errors


@pytest.fixture(scope="module")
def shots():
    folder = Path(os.environ.get("CHAINRULE_PLAYGROUND_SHOTS") or
                  tempfile.mkdtemp(prefix="playground-shots-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _idle(page) -> None:
    page.wait_for_selector("body[data-ready='1']:not([data-busy])")


def _set_units(page, layer: int, units: int) -> None:
    """Click a hidden layer's + or - until it has ``units`` units."""
    for _ in range(70):
        _idle(page)
        have = page.evaluate(f"playground.config.hidden[{layer - 1}]")
        if have == units:
            return
        sign = "add" if have < units else "remove"
        page.click(f".unit-{sign}[data-layer='{layer}']")
    raise AssertionError(f"layer {layer} did not reach {units} units")


def _table(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"{selector} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")


def test_lecture_preset_shows_h_0489_and_its_deltas(page, server, shots):
    page.goto(server + "?preset=lecture")
    playwright_api.expect(page.locator("#explain-h")).to_have_text("h(x) = 0.489")
    e = explain(target=[1])                          # what `chainrule explain --target 1` shows
    expected = [[str(l)] + [_fmt(v) for v in e.trace.delta[l][0]] for l in (1, 2, 3)]
    rows = [[c for c in r if c] for r in _table(page, "#delta-table")]
    assert rows == expected
    assert expected[2] == ["3", "-1.022"]
    assert page.locator("#epoch").text_content() == "000,000"
    page.screenshot(path=str(shots / "lecture.png"), full_page=True)


def test_spirals_two_layers_of_8_tanh_train_and_a_point_explains(page, server, shots):
    page.goto(server)
    _idle(page)
    page.click("#dataset-spirals")
    _idle(page)
    assert page.evaluate("playground.config.dataset") == "spirals"
    _set_units(page, 1, 8)
    _set_units(page, 2, 8)
    page.select_option("#activation", "tanh")
    _idle(page)
    config = page.evaluate("playground.config")
    assert config["hidden"] == [8, 8] and config["activation"] == "tanh"
    assert page.locator(".node.hidden").count() == 16

    start = time.monotonic()
    page.click("#play")
    page.wait_for_function(
        "() => { const v = document.getElementById('test-loss').dataset.value;"
        " return v !== '' && v !== undefined && parseFloat(v) < 0.1; }",
        timeout=TRAIN_TIMEOUT_S * 1000, polling=100)
    took = time.monotonic() - start
    page.click("#play")                               # pause
    page.wait_for_selector("#play[aria-label='play']")
    epoch = page.evaluate("playground.frame.epoch")
    # the curve went below 0.1 (SGD goes on a little after the pause, and its loss wobbles)
    assert epoch > 10 and page.evaluate(
        "Math.min(...playground.history.filter(p => p[2] !== null).map(p => p[2]))") < 0.1
    page.screenshot(path=str(shots / "spirals.png"), full_page=True)

    # click a test point: its forward pass and deltas appear
    box = page.locator("#regions").bounding_box()
    p = page.evaluate("playground.pointPixel('test', 0)")
    page.mouse.click(box["x"] + p["x"], box["y"] + p["y"])
    playwright_api.expect(page.locator("#explain")).to_be_visible()
    page.wait_for_function("() => document.querySelectorAll('#delta-table tbody tr').length "
                           "== 3")
    sel = page.evaluate("playground.selected")
    sid = page.evaluate("playground.sid")
    with urllib.request.urlopen(f"{server}api/sessions/{sid}/explain?part={sel['part']}"
                                f"&index={sel['index']}") as r:
        e = json.load(r)
    with urllib.request.urlopen(f"{server}api/sessions/{sid}/weights") as r:
        weights = json.load(r)
    assert page.locator("#explain-h").text_content() == f"h(x) = {e['h'][0]}"

    # the same weights, input and target through `chainrule explain`
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "w.json"
        path.write_text(json.dumps(weights))
        out = CliRunner().invoke(cli_app, [
            "explain", "--weights", str(path), "--input",
            ",".join(repr(v) for v in e["x0_values"]), "--target", str(e["target"]),
            "--eta", repr(config["learning_rate"]), "--format", "json"])
    assert out.exit_code == 0, out.output
    ref = json.loads(out.output)
    deltas = [[c for c in r[1:] if c] for r in _table(page, "#delta-table")]
    assert deltas == [[_fmt(v) for v in layer["delta"]] for layer in ref["layers"]]
    for l, layer in enumerate(ref["layers"], start=1):
        rows = _table(page, f".layer-table[data-layer='{l}']")
        assert [r[2] for r in rows] == [_fmt(v) for v in layer["s"]]        # s_j^(l)
        assert [r[3] for r in rows] == [_fmt(v) for v in layer["x"]]        # x_j^(l)
        assert [r[5] for r in rows] == [_fmt(v) for v in layer["grad_b"]]   # de/db_j^(l)
    assert _fmt(ref["h"][0]) == e["h"][0]
    page.screenshot(path=str(shots / "spirals-explained.png"), full_page=True)
    print(f"spirals 2x8 tanh: test loss < 0.1 after {took:.1f} s, epoch {epoch:.0f}")


def test_invalid_choice_shows_the_servers_message(page, server):
    page.goto(server)
    _idle(page)
    page.click("#dataset-blobs")                      # 3 classes under the square loss
    playwright_api.expect(page.locator("#message")).to_contain_text("choose cross-entropy")
    page.select_option("#loss", "cross-entropy")
    _idle(page)
    page.click("#dataset-blobs")
    _idle(page)
    assert page.evaluate("playground.config.dataset") == "blobs"
    assert page.locator("#message").is_hidden()


def dump_dom(url: str, budget_ms: int = 5000, timeout: float = 60) -> str:
    """``chromium --headless --dump-dom`` of a page after ``budget_ms`` of virtual time."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.run(
            [CHROMIUM, "--headless", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
            capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_dump_dom_of_the_lecture_preset_contains_0489(server):
    dom = dump_dom(server + "?preset=lecture")
    assert "h(x) = 0.489" in dom
