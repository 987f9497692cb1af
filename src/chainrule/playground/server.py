"""The playground's web server: a Starlette app that serves the page and runs one training
session per tab.

HTTP (JSON in and out; every error a JSON object ``{"error": message}`` with a 4xx status, never a
traceback):

========================================  ====================================================
``GET /``                                 the page (``static/index.html``); ``/?preset=lecture``
                                          opens the lecture's worked example
``GET /api/options``                      the choices and the bounds
``POST /api/sessions``                    a new session from a config (or ``{"preset":
                                          "lecture"}``): 201 with its id and state
``GET /api/sessions/{id}``                its state: config, points, sizes, history, a frame
``PUT /api/sessions/{id}/config``         a new config (the weights stay if only the learning
                                          rate, batch size, L2 or optimizer changed)
``POST /api/sessions/{id}/step``          one epoch, then a frame
``POST /api/sessions/{id}/reset``         new initial weights, epoch 0
``GET /api/sessions/{id}/explain``        ``?part=train|test&index=i``: the point's forward pass,
                                          deltas and gradients as ``chainrule explain`` prints
``GET /api/sessions/{id}/weights``        the network as ``chainrule explain --weights`` reads it
``DELETE /api/sessions/{id}``             the end of a session
``WS /api/sessions/{id}/ws``              the training stream (below)
========================================  ====================================================

The WebSocket takes ``{"cmd": "play" | "pause" | "step" | "reset" | "ack"}`` and sends
``{"type": "frame", "id": n, ...}`` (the counters, losses, weights and pictures of
:meth:`Session.frame`), ``{"type": "status", "playing": bool}`` and ``{"type": "error",
"message": ...}``. While playing, a session trains in slices of about 30 ms on the server's event
loop and sends a frame after each slice as long as fewer than two frames wait for the page's
``ack`` (a slow page slows the pictures, not the training). One training loop per session: a
second ``play`` is a no-op. A session ends when its socket closes, or after ``IDLE_SECONDS``
without a request; at most ``MAX_SESSIONS`` live at once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import ChainruleError
from .session import (
    ACTIVATIONS,
    DATASETS,
    FEATURES,
    LOSSES,
    MAX_HIDDEN_LAYERS,
    MAX_POINTS,
    MAX_UNITS,
    MIN_POINTS,
    OPTIMIZERS,
    OUTPUT_ACTIVATIONS,
    Config,
    PlaygroundError,
    Session,
)

STATIC = Path(__file__).parent / "static"
MAX_SESSIONS = 32
IDLE_SECONDS = 600.0
MAX_BODY = 64 * 1024
SLICE_SECONDS = 0.03
MAX_UNACKED = 2

log = logging.getLogger("chainrule.playground")


class _Live:
    """A session with what the server keeps for it: its socket, its loop, its frame count."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.socket: WebSocket | None = None
        self.task: asyncio.Task[None] | None = None
        self.frames = itertools.count(1)
        self.unacked = 0
        self.touched = time.monotonic()


class Playground:
    """The sessions of one server."""

    def __init__(self, max_sessions: int = MAX_SESSIONS, idle_seconds: float = IDLE_SECONDS
                 ) -> None:
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self.sessions: dict[str, _Live] = {}

    def get(self, sid: str) -> _Live:
        live = self.sessions.get(sid)
        if live is None:
            raise HTTPException(404, f"no session {sid!r} (it ended, or the server restarted: "
                                     "reload the page)")
        live.touched = time.monotonic()
        return live

    def create(self, config: Config) -> tuple[str, _Live]:
        self._expire()
        if len(self.sessions) >= self.max_sessions:
            raise HTTPException(503, f"{self.max_sessions} sessions are open: close a tab and "
                                     "try again")
        sid = secrets.token_urlsafe(12)
        live = _Live(Session(config))
        self.sessions[sid] = live
        return sid, live

    def end(self, sid: str) -> None:
        live = self.sessions.pop(sid, None)
        if live is not None:
            live.session.playing = False

    def _expire(self) -> None:
        now = time.monotonic()
        for sid, live in list(self.sessions.items()):
            if live.socket is None and now - live.touched > self.idle_seconds:
                self.end(sid)


# ---------------------------------------------------------------------------- HTTP
async def _json_body(request: Request) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPException(415, "send the configuration as JSON (Content-Type: "
                                 "application/json)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"the request body is larger than {MAX_BODY} bytes")
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise HTTPException(400, "the request body is not valid JSON") from None


def _pg(request: Request) -> Playground:
    return request.app.state.playground


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def options(request: Request) -> Response:
    return JSONResponse({
        "datasets": list(DATASETS), "features": {k: v[0] for k, v in FEATURES.items()},
        "activations": list(ACTIVATIONS), "output_activations": list(OUTPUT_ACTIVATIONS),
        "losses": list(LOSSES), "optimizers": list(OPTIMIZERS),
        "max_hidden_layers": MAX_HIDDEN_LAYERS, "max_units": MAX_UNITS,
        "max_points": MAX_POINTS, "min_points": MIN_POINTS, "defaults": Config().__dict__,
    })


async def create_session(request: Request) -> Response:
    config = Config.from_dict(await _json_body(request))
    sid, live = _pg(request).create(config)
    return JSONResponse({"id": sid, "state": live.session.state()}, status_code=201)


async def session_state(request: Request) -> Response:
    live = _pg(request).get(request.path_params["sid"])
    return JSONResponse({"id": request.path_params["sid"], "state": live.session.state()})


async def delete_session(request: Request) -> Response:
    pg = _pg(request)
    pg.get(request.path_params["sid"])
    pg.end(request.path_params["sid"])
    return Response(status_code=204)


async def configure(request: Request) -> Response:
    live = _pg(request).get(request.path_params["sid"])
    config = Config.from_dict(await _json_body(request), base=live.session.config)
    await _stop(live)
    rebuilt = live.session.update(config)
    return JSONResponse({"rebuilt": rebuilt, "state": live.session.state()})


async def step(request: Request) -> Response:
    live = _pg(request).get(request.path_params["sid"])
    await _stop(live)
    live.session.train_epoch()
    return JSONResponse(live.session.frame())


async def reset(request: Request) -> Response:
    live = _pg(request).get(request.path_params["sid"])
    await _stop(live)
    live.session.reset()
    return JSONResponse({"state": live.session.state()})


async def explain_point(request: Request) -> Response:
    live = _pg(request).get(request.path_params["sid"])
    q = request.query_params
    try:
        index = int(q.get("index", ""))
    except ValueError:
        raise PlaygroundError(f"index must be an integer, got {q.get('index')!r}") from None
    return JSONResponse(live.session.explain_point(q.get("part", "train"), index))


async def weights(request: Request) -> Response:
    live = _pg(request).get(request.path_params["sid"])
    return JSONResponse(live.session.weights_file(), headers={
        "Content-Disposition": 'attachment; filename="playground-weights.json"'})


# ---------------------------------------------------------------------------- WebSocket
async def _stop(live: _Live) -> None:
    live.session.playing = False
    task = live.task
    if task is not None and not task.done() and task is not asyncio.current_task():
        try:
            await task
        except Exception:   # its error was reported to the page already
            pass
    live.task = None


async def _send_frame(live: _Live) -> None:
    if live.socket is None:
        return
    live.unacked += 1
    await live.socket.send_json({"type": "frame", "id": next(live.frames),
                                 **live.session.frame()})


async def _play(live: _Live) -> None:
    """The session's one training loop: slices of training, a frame after each one the page
    can take."""
    s = live.session
    try:
        while s.playing:
            s.train_for(SLICE_SECONDS)
            if live.unacked < MAX_UNACKED:
                await _send_frame(live)
            await asyncio.sleep(0.002)   # a real pause: the loop reads the socket (acks, pause)
    except ChainruleError as exc:
        s.playing = False
        if live.socket is not None:
            await live.socket.send_json({"type": "error", "message": str(exc)})
    except Exception as exc:   # a bug: log it, tell the page without a traceback
        log.error("internal error in the training loop", exc_info=exc)
        if live.socket is not None:
            await live.socket.send_json({"type": "error", "message": "internal error: "
                                         f"{type(exc).__name__} (the server's log has it)"})
    finally:
        s.playing = False
        if live.socket is not None:
            try:
                await _send_frame(live)
                await live.socket.send_json({"type": "status", "playing": False})
            except Exception:   # the socket closed meanwhile
                pass


async def stream(ws: WebSocket) -> None:
    pg: Playground = ws.app.state.playground
    origin, host = ws.headers.get("origin"), ws.headers.get("host")
    if origin is not None and origin.split("://", 1)[-1] != host:
        await ws.close(code=1008, reason="cross-origin connections are refused")
        return
    live = pg.sessions.get(ws.path_params["sid"])
    if live is None:
        await ws.close(code=4404, reason="no such session")
        return
    if live.socket is not None:
        await ws.close(code=4409, reason="the session has a connection already")
        return
    await ws.accept()
    live.socket = ws
    try:
        while True:
            try:
                msg = await ws.receive_json()
            except (ValueError, KeyError):
                await ws.send_json({"type": "error", "message": "messages are JSON objects "
                                    "like {\"cmd\": \"play\"}"})
                continue
            live.touched = time.monotonic()
            cmd = msg.get("cmd") if isinstance(msg, dict) else None
            try:
                await _command(live, cmd)
            except ChainruleError as exc:
                await ws.send_json({"type": "error", "message": str(exc)})
    except WebSocketDisconnect:
        pass
    finally:
        live.socket = None
        live.session.playing = False
        pg.end(ws.path_params["sid"])


async def _command(live: _Live, cmd: Any) -> None:
    s = live.session
    if cmd == "ack":
        live.unacked = max(0, live.unacked - 1)
    elif cmd == "play":
        if live.task is None or live.task.done():   # one training loop per session
            s.playing = True
            live.unacked = 0
            live.task = asyncio.create_task(_play(live))
            await live.socket.send_json({"type": "status", "playing": True})
    elif cmd == "pause":
        await _stop(live)
    elif cmd == "step":
        await _stop(live)
        s.train_epoch()
        await _send_frame(live)
    elif cmd == "reset":
        await _stop(live)
        s.reset()
        await live.socket.send_json({"type": "reset", "state": s.state()})
    else:
        raise PlaygroundError(f"unknown command {cmd!r}; the commands are play, pause, step, "
                              "reset, ack")


# ---------------------------------------------------------------------------- errors
async def _user_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("internal error in %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": f"internal error: {type(exc).__name__} (this is a bug; the "
                                  "server's log has the details)"}, status_code=500)


def create_app(max_sessions: int = MAX_SESSIONS, idle_seconds: float = IDLE_SECONDS) -> Starlette:
    """The playground's Starlette application."""
    sid = "/api/sessions/{sid}"
    routes = [
        Route("/", index, methods=["GET"]),
        Route("/api/options", options, methods=["GET"]),
        Route("/api/sessions", create_session, methods=["POST"]),
        Route(sid, session_state, methods=["GET"]),
        Route(sid, delete_session, methods=["DELETE"]),
        Route(sid + "/config", configure, methods=["PUT"]),
        Route(sid + "/step", step, methods=["POST"]),
        Route(sid + "/reset", reset, methods=["POST"]),
        Route(sid + "/explain", explain_point, methods=["GET"]),
        Route(sid + "/weights", weights, methods=["GET"]),
        WebSocketRoute(sid + "/ws", stream),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={
        ChainruleError: _user_error, HTTPException: _http_error, Exception: _server_error})
    app.state.playground = Playground(max_sessions, idle_seconds)
    return app
