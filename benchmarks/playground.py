"""``chainrule playground``: how fast it starts, how long a training step takes from the page's
point of view, and whether a headless browser's DOM of ``/?preset=lecture`` holds h(x) = 0.489.

It measures, each in a fresh server process started as the user starts it (the ``chainrule``
console script next to this Python, else ``python -m chainrule``):

    start       from launching ``chainrule playground --port 0`` to the first 200 for ``GET /``
                (and to the first session, ``POST /api/sessions``); median of several starts
    step        the round trip of ``{"cmd": "step"}`` over the session's WebSocket to the frame it
                answers with, for the default network (circles, 500 points, 2-4-2-1 tanh, batch
                10): one epoch (25 SGD steps) plus the frame (the output over a 64 x 64 grid,
                every unit over 24 x 24, the weights); also over HTTP ``POST .../step``, and the
                parts inside the server (one SGD step, one epoch, one frame) in process
    play        frames and epochs per second while playing for a few seconds
    dump-dom    ``chromium --headless --dump-dom --virtual-time-budget=5000
                http://127.0.0.1:PORT/?preset=lecture`` (Debian's chromium): its time and
                whether the DOM contains ``h(x) = 0.489``

Run:  python -m benchmarks.playground [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps",
    "--no-default-browser-check", "--mute-audio",
]


def _command() -> list[str]:
    script = Path(sys.executable).parent / "chainrule"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "playground", "--port", "0"]
    return [sys.executable, "-m", "chainrule", "playground", "--port", "0"]


class Server:
    """A ``chainrule playground`` process; ``started`` is the seconds to the first page."""

    def __init__(self) -> None:
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(_command(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m is None:
            self.close()
            raise RuntimeError(f"the server did not start: {line!r}")
        self.url, self.port = m.group(0), int(m.group(1))
        while True:
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.005)
        self.started = time.perf_counter() - t0
        self.sid, self.state = self.new_session()
        self.first_session = time.perf_counter() - t0

    def new_session(self, config: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        req = urllib.request.Request(self.url + "api/sessions", method="POST",
                                     data=json.dumps(config or {}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            body = json.load(r)
        return body["id"], body["state"]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _stats(values: list[float]) -> dict[str, float]:
    v = sorted(values)
    return {"median": statistics.median(v), "min": v[0], "max": v[-1],
            "p90": v[min(len(v) - 1, int(0.9 * len(v)))], "n": len(v)}


def measure_start(reps: int) -> dict[str, Any]:
    page, session = [], []
    for _ in range(reps):
        s = Server()
        page.append(s.started)
        session.append(s.first_session)
        s.close()
    return {"command": " ".join(_command()), "to_page_s": _stats(page),
            "to_first_session_s": _stats(session)}


def measure_step(server: Server, reps: int) -> dict[str, Any]:
    from websockets.sync.client import connect

    ws_ms, http_ms = [], []
    with connect(f"ws://127.0.0.1:{server.port}/api/sessions/{server.sid}/ws") as ws:
        for i in range(reps + 10):
            t0 = time.perf_counter()
            ws.send(json.dumps({"cmd": "step"}))
            frame = json.loads(ws.recv())
            dt = (time.perf_counter() - t0) * 1e3
            assert frame["type"] == "frame"
            ws.send(json.dumps({"cmd": "ack"}))
            if i >= 10:
                ws_ms.append(dt)
        frame_bytes = len(json.dumps(frame))
        epoch = frame["epoch"]
        # play for a while: frames and epochs per second
        ws.send(json.dumps({"cmd": "play"}))
        frames, t0, e0 = 0, time.perf_counter(), epoch
        seconds = 1.0 if reps < 100 else 3.0
        while time.perf_counter() - t0 < seconds:
            m = json.loads(ws.recv())
            if m["type"] == "frame":
                frames += 1
                epoch = m["epoch"]
                ws.send(json.dumps({"cmd": "ack"}))
        played = time.perf_counter() - t0
        ws.send(json.dumps({"cmd": "pause"}))
        while json.loads(ws.recv())["type"] != "status":
            pass
    sid, _ = server.new_session()
    for i in range(reps + 10):
        req = urllib.request.Request(f"{server.url}api/sessions/{sid}/step", method="POST")
        t0 = time.perf_counter()
        with urllib.request.urlopen(req) as r:
            r.read()
        if i >= 10:
            http_ms.append((time.perf_counter() - t0) * 1e3)
    return {"network": "circles, 500 points (250 train), features x1 x2, 2-4-2-1 tanh, "
                       "square loss, SGD lr 0.03, batch 10: one step = one epoch = 25 SGD "
                       "steps, then the frame",
            "websocket_round_trip_ms": _stats(ws_ms), "http_round_trip_ms": _stats(http_ms),
            "frame_json_bytes": frame_bytes,
            "play": {"seconds": played, "frames_per_s": frames / played,
                     "epochs_per_s": (epoch - e0) / played}}


def measure_in_process(reps: int) -> dict[str, Any]:
    from chainrule.playground import Session

    s = Session()
    for _ in range(20):
        s.train_step()
    t0 = time.perf_counter()
    for _ in range(reps * 25):
        s.train_step()
    sgd = (time.perf_counter() - t0) / (reps * 25) * 1e3
    t0 = time.perf_counter()
    for _ in range(reps):
        s.train_epoch()
    epoch = (time.perf_counter() - t0) / reps * 1e3
    t0 = time.perf_counter()
    for _ in range(reps):
        json.dumps(s.frame())
    frame = (time.perf_counter() - t0) / reps * 1e3
    return {"sgd_step_ms": sgd, "epoch_ms": epoch, "frame_with_json_ms": frame}


def _chromium() -> str | None:
    for c in (os.environ.get("CHAINRULE_CHROMIUM"), shutil.which("chromium"),
              shutil.which("chromium-browser")):
        if c:
            return c
    return None


def measure_dump_dom(server: Server) -> dict[str, Any]:
    chromium = _chromium()
    if chromium is None:
        return {"skipped": "no chromium"}
    url = server.url + "?preset=lecture"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        t0 = time.perf_counter()
        proc = subprocess.run([chromium, "--headless", *CHROMIUM_FLAGS,
                               f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                               "--dump-dom", url], capture_output=True, text=True, timeout=120)
        took = time.perf_counter() - t0
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"h\(x\) = [0-9.]+", proc.stdout)
    return {"command": "chromium --headless --dump-dom --virtual-time-budget=5000 "
                       "http://127.0.0.1:PORT/?preset=lecture",
            "chromium": version.strip(), "returncode": proc.returncode, "seconds": took,
            "found": found.group(0) if found else None,
            "contains_0.489": "h(x) = 0.489" in proc.stdout, "dom_bytes": len(proc.stdout)}


def run(quick: bool) -> dict[str, Any]:
    import numpy as np

    import chainrule as cr

    start = measure_start(2 if quick else 7)
    server = Server()
    try:
        step = measure_step(server, 30 if quick else 300)
        dom = measure_dump_dom(server)
    finally:
        server.close()
    return {
        "meta": {"quick": quick, "python": sys.version.split()[0], "numpy": np.__version__,
                 "machine": platform.machine(), "cpus": os.cpu_count(),
                 "chainrule": cr.__version__,
                 # other work on the machine slows every number here: its load when this began
                 "load_average_1_5_15": list(os.getloadavg())},
        "start": start, "step": step, "in_process": measure_in_process(20 if quick else 200),
        "dump_dom": dom,
        "targets": {"start_s": 3.0, "step_round_trip_ms": 20.0},
    }


def summary(r: dict[str, Any]) -> str:
    s, st, d = r["start"], r["step"], r["dump_dom"]
    lines = [
        f"start (to the page): median {s['to_page_s']['median']:.2f} s "
        f"(min {s['to_page_s']['min']:.2f}, max {s['to_page_s']['max']:.2f}); to the first "
        f"session {s['to_first_session_s']['median']:.2f} s   [target < 3 s]",
        f"step round trip, WebSocket: median {st['websocket_round_trip_ms']['median']:.2f} ms, "
        f"p90 {st['websocket_round_trip_ms']['p90']:.2f} ms; HTTP: median "
        f"{st['http_round_trip_ms']['median']:.2f} ms   [target < 20 ms]",
        f"  in process: SGD step {r['in_process']['sgd_step_ms']:.3f} ms, epoch "
        f"{r['in_process']['epoch_ms']:.2f} ms, frame + JSON "
        f"{r['in_process']['frame_with_json_ms']:.2f} ms; frame {st['frame_json_bytes']} bytes",
        f"playing: {st['play']['frames_per_s']:.0f} frames/s, "
        f"{st['play']['epochs_per_s']:.0f} epochs/s",
    ]
    if "skipped" in d:
        lines.append(f"dump-dom: skipped ({d['skipped']})")
    else:
        lines.append(f"dump-dom of /?preset=lecture: {d['found']!r}, contains 0.489: "
                     f"{d['contains_0.489']} ({d['seconds']:.1f} s, {d['chromium']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds (CI smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS / "playground.json",
                        help="where to save the JSON (default benchmarks/results/playground.json)")
    args = parser.parse_args(argv)
    result = run(args.quick)
    print(summary(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")
    return result


if __name__ == "__main__":
    main()
