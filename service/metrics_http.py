"""The /metrics HTTP endpoint: prometheus_client's WSGI app on a threaded
server, for any collector. Neither torch nor grpc is imported here, since
the parent of a --workers group serves its merged figures through it.

A collector that cannot give its figures now raises ScrapeFailed: the
scrape answers 503 with the reason in one line (and the log says it),
rather than a traceback and a 500, or figures that would look like a
counter reset to Prometheus.
"""

from __future__ import annotations

import logging
import socket
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

log = logging.getLogger("netspec.serve")


class MetricsPortError(OSError):
    """The metrics port cannot be listened on; the message says which and why."""


class ScrapeFailed(Exception):
    """The figures cannot be read now; the message says why."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # one line per scrape on stderr otherwise
        pass


def _guarded(app):
    def guarded(environ, start_response):
        try:
            return app(environ, start_response)
        except ScrapeFailed as e:
            log.warning("metrics scrape failed: %s", e)
            start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{e}\n".encode()]

    return guarded


def start(registry, host: str, port: int):
    """Serve `registry` at http://host:port/metrics in a daemon thread; returns
    the server (its `server_port` is the real port when `port` is 0)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
        server = make_server(host, port, _guarded(make_wsgi_app(registry)), server_class, handler_class=_QuietHandler)
    except OSError as e:
        raise MetricsPortError(f"cannot serve metrics on {host}:{port}: {e.strerror or e} "
                               f"(--metrics-port: choose another, or 0 to turn metrics off)") from e
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def stop(server) -> None:
    """Stop serving and free the port; waits for the serving loop's next
    poll (up to half a second)."""
    server.shutdown()
    server.server_close()
