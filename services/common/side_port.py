"""The web components' side port: ``/metrics`` and ``/errors``, served by gunicorn's arbiter.

Apart from :mod:`services.common.web` (the Flask side) so that the arbiter, which
only serves this, never imports Flask (about 7 MB of RSS).
"""
from __future__ import annotations

import logging

from . import logs, metrics


def side_app(environ, start_response):
    """The web components' metrics port: ``/metrics`` and ``/errors`` (never on the public port)."""
    import json

    path = environ.get("PATH_INFO", "")
    if path == "/metrics":
        body, content_type = metrics.exposition()
    elif path == "/errors":
        body, content_type = json.dumps({"errors": logs.recent_errors.latest()}).encode(), "application/json"
    elif path == "/healthz":
        body, content_type = b'{"status": "ok"}', "application/json"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def serve_side_port(host: str, port: int) -> None:
    """Serve :func:`side_app` on ``host:port`` from a daemon thread."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):  # scrapes every 15 s are not news
            pass

    try:
        server = make_server(host, port, side_app, handler_class=Quiet)
    except OSError as exc:  # e.g. two web components on one host: they still serve requests
        logging.getLogger(__name__).warning("cannot serve metrics on %s:%s (%s); set METRICS_PORT", host, port, exc)
        return
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
