"""Decoy TCP listeners on the node: whoever connects is probing, whoever sends data attacks.

Each configured port gets a non-blocking listening socket registered in the agent's one
selector (no threads). A connection is reported at once (a completed handshake: level-2
evidence), then every chunk of data it sends (level 3, with a sample); it is closed after
``max_bytes``, ``idle_s`` after its last data, or ``timeout_s`` in all, since the decoy
speaks no protocol. A port that cannot be bound is logged and listed in ``errors`` (the
``info`` payload's ``decoy_errors``); the other ports keep working.
"""

from __future__ import annotations

import logging
import selectors
import socket
from collections.abc import Callable
from dataclasses import dataclass

from .config import DecoyConfig

log = logging.getLogger(__name__)

Report = Callable[[float, str, int, int, bytes], None]
"""(time, peer IPv4, decoy port, bytes in this chunk (0: the connection itself), data)."""


@dataclass(frozen=True, slots=True)
class _Listener:
    sock: socket.socket
    port: int


class _Connection:
    __slots__ = ("deadline", "idle_deadline", "ip", "port", "received", "sock")

    def __init__(self, sock: socket.socket, ip: str, port: int, deadline: float) -> None:
        self.sock = sock
        self.ip = ip
        self.port = port
        self.received = 0
        self.deadline = deadline
        self.idle_deadline = deadline


class Decoys:
    def __init__(
        self, config: DecoyConfig, selector: selectors.BaseSelector, report: Report
    ) -> None:
        self.config = config
        self.selector = selector
        self.report = report
        self.ports: list[int] = []  # bound ports (the actual port when 0 was asked for)
        self.errors: list[tuple[int, str]] = []
        self.refused = 0  # connections over max_connections, closed at once
        self._listeners: list[_Listener] = []
        self._connections: dict[socket.socket, _Connection] = {}

    def open(self) -> None:
        if self.config.bind is None:  # no node IP (and no decoys.bind): nowhere safe to listen
            reason = "no node IPv4 address to listen on (set decoys.bind)"
            self.errors.extend((port, reason) for port in self.config.ports)
            log.error("decoys: %s", reason)
            return
        for port in self.config.ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.config.bind, port))
                sock.listen(32)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                reason = exc.strerror or str(exc)
                if isinstance(exc, PermissionError) and port < 1024:
                    reason += " (ports below 1024 need CAP_NET_BIND_SERVICE)"
                self.errors.append((port, reason))
                log.error("decoy port %d: cannot listen: %s", port, reason)
                continue
            bound = int(sock.getsockname()[1])
            listener = _Listener(sock, bound)
            self._listeners.append(listener)
            self.ports.append(bound)
            self.selector.register(sock, selectors.EVENT_READ, listener)
        if self.ports:
            log.info("decoys listening on %s", ", ".join(map(str, self.ports)))

    def owns(self, data: object) -> bool:
        return isinstance(data, _Listener | _Connection)

    def ready(self, data: object, now: float) -> None:
        """The selector says the listener or connection ``data`` is readable."""
        if isinstance(data, _Listener):
            self._accept(data, now)
        elif isinstance(data, _Connection):
            self._read(data, now)

    def _accept(self, listener: _Listener, now: float) -> None:
        for _ in range(64):
            try:
                sock, peer = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("decoy port %d: accept failed: %s", listener.port, exc)
                return
            ip = str(peer[0])
            if len(self._connections) >= self.config.max_connections:
                self.refused += 1
                sock.close()
            else:
                sock.setblocking(False)
                conn = _Connection(sock, ip, listener.port, now + self.config.timeout_s)
                self._connections[sock] = conn
                self.selector.register(sock, selectors.EVENT_READ, conn)
            self.report(now, ip, listener.port, 0, b"")

    def _read(self, conn: _Connection, now: float) -> None:
        want = self.config.max_bytes - conn.received
        try:
            data = conn.sock.recv(max(want, 1))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        conn.received += len(data)
        conn.idle_deadline = min(conn.deadline, now + self.config.idle_s)
        self.report(now, conn.ip, conn.port, len(data), data)
        if conn.received >= self.config.max_bytes:
            self._close(conn)

    def tick(self, now: float) -> None:
        """Close connections past their deadline (total, or idle after data)."""
        for conn in list(self._connections.values()):
            if now >= conn.deadline or (conn.received and now >= conn.idle_deadline):
                self._close(conn)

    def _close(self, conn: _Connection) -> None:
        if self._connections.pop(conn.sock, None) is not None:
            self.selector.unregister(conn.sock)
        conn.sock.close()

    @property
    def connections(self) -> int:
        return len(self._connections)

    def close(self) -> None:
        for conn in list(self._connections.values()):
            self._close(conn)
        for listener in self._listeners:
            self.selector.unregister(listener.sock)
            listener.sock.close()
        self._listeners.clear()
