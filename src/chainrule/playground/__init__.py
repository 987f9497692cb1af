"""``chainrule playground``: the lecture's network in the browser, trained live by chainrule.

:mod:`.session` holds one tab's data, network and training (chainrule's ``nn.MLP``, losses and
optimizers; the clicked point's numbers from :func:`chainrule.explain.explain`); :mod:`.server`
serves the page (``static/``: plain HTML, JavaScript and CSS, no build step, nothing from a CDN)
and streams training over a WebSocket. Needs the ``playground`` extra (Starlette, uvicorn,
websockets).
"""

from .session import Config, PlaygroundError, Session

__all__ = ["Config", "PlaygroundError", "Session"]
