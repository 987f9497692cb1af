"""``chainrule playground``: the lecture's network in the browser, trained live by chainrule."""

from __future__ import annotations

import typer

from .app import app, fail, user_errors


@app.command()
@user_errors
def playground(
    port: int = typer.Option(8765, "--port", help="The port to listen on (0: any free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on (the "
                             "default is this machine only)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default web "
                                      "browser."),
) -> None:
    """A local web app: choose data, features, layers and training options, watch chainrule
    train the network, click a point for its forward pass and deltas in the lecture's symbols
    (/?preset=lecture: the lecture's worked example)."""
    import socket

    try:
        import uvicorn

        from ..playground.server import create_app
    except ImportError as exc:
        fail(f"chainrule playground needs the playground extra ({exc.name} is missing): "
             "pip install 'chainrule[playground]'")
    if not 0 <= port <= 65535:
        fail(f"--port must be between 0 and 65535, got {port}")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)   # connections wait from now on, so the URL below works at once
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another --port or "
             "--host)")
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    config = uvicorn.Config(create_app(), log_level="warning", access_log=False,
                            ws_max_size=1 << 20, lifespan="off")
    server = uvicorn.Server(config)
    if open_browser:
        _open_when_ready(server, url)
    typer.echo(f"chainrule playground on {url} (the lecture's example: {url}?preset=lecture); "
               "Ctrl-C stops it", err=False)
    server.run(sockets=[sock])


def _open_when_ready(server: object, url: str) -> None:
    import threading
    import time
    import webbrowser

    def wait_and_open() -> None:
        for _ in range(200):
            if getattr(server, "started", False):
                webbrowser.open(url)
                return
            time.sleep(0.05)

    threading.Thread(target=wait_and_open, daemon=True).start()
