"""Holding a port for a group of worker processes that share it through
SO_REUSEPORT, while refusing a port some other server already holds.

Binding with SO_REUSEPORT alone would silently join any server of the same
user that set it too (gRPC sets it by default), so the port is claimed in
two steps on one socket, without a moment where it is free:

1. bind with SO_REUSEADDR only. This fails when any socket listens on the
   port, or holds it without SO_REUSEADDR, whatever its SO_REUSEPORT; it
   succeeds over connections of a previous server still in TIME_WAIT.
2. clear SO_REUSEADDR and set SO_REUSEPORT. From then on the kernel lets
   only sockets with SO_REUSEPORT of the same user bind the port: the
   workers' gRPC servers. A single `netspec serve` (gRPC with SO_REUSEADDR
   and no SO_REUSEPORT) and another group's first step both fail on it.

The socket never listens: connections go only to the workers' listening
sockets (a listening socket of the parent would take its share of them and
never accept). This is grpc's multiprocessing example's reservation, with
the first step added.
"""

from __future__ import annotations

import errno
import socket


class PortBusy(OSError):
    """The address is held by another server; the message says which."""


def _addresses(host: str, port: int) -> list[tuple]:
    """Every address `host` names, as gRPC binds them (localhost: both 127.0.0.1 and ::1)."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    seen, out = set(), []
    for family, _, _, _, address in infos:
        if (family, address[0]) not in seen:
            seen.add((family, address[0]))
            out.append((family, address))
    return out


def _claim(family: int, address: tuple, share: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:  # as gRPC binds [::]: IPv4 too
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        if share:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except BaseException:
        sock.close()
        raise
    return sock


class Reservation:
    """The held port; close() lets it go."""

    def __init__(self, sockets: list[socket.socket]):
        self.sockets = sockets
        self.port = sockets[0].getsockname()[1]

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def check_free(host: str, port: int) -> None:
    """Raise PortBusy when a single server could not bind host:port now: the
    first step alone, so that a busy port is one clear line before anything
    heavy is imported, rather than gRPC's log line and error."""
    reserve(host, port, share=False).close()


def reserve(host: str, port: int, share: bool = True) -> Reservation:
    """Hold host:port for SO_REUSEPORT workers (`port` 0: a free one).
    Raises PortBusy when another server holds it."""
    if share and not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("--workers needs SO_REUSEPORT, which this system lacks")
    try:
        addresses = _addresses(host, port)
    except socket.gaierror as e:
        raise OSError(f"cannot resolve {host!r}: {e.strerror}") from e
    sockets: list[socket.socket] = []
    try:
        for family, address in addresses:
            if port == 0 and sockets:  # the other addresses of `host` on the port the first one got
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sockets.append(_claim(family, address, share))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise PortBusy(f"port {address[1]} is already in use by another server") from e
                if e.errno == errno.EADDRNOTAVAIL and len(addresses) > 1:
                    continue  # e.g. ::1 on a host without IPv6, as gRPC skips it
                raise
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise OSError(f"cannot listen on {host}:{port}")
    return Reservation(sockets)
