"""Decoy TCP listeners on the node: whoever connects is probing, whoever sends data attacks.

Each configured port gets a non-blocking listening socket registered in the agent's one
selector (no threads). A connection is reported at once (a completed handshake: level-2
evidence), then every chunk of data it sends (level 3, with a sample); it is closed after
``max_bytes``, ``idle_s`` after its last data, or ``timeout_s`` in all, since the decoy
speaks no protocol. A port that cannot be bound is logged and listed in ``errors`` (the
``info`` payload's ``decoy_errors``); the other ports keep working. The listeners are on the
node's IPv4 address and on its global IPv6 addresses, never on a wildcard address (on a
router that would put them on the WAN).

:class:`EchonetDecoy` carries the decoy ECHONET Lite node (:mod:`.echonet`) over UDP: it only
answers; what it is sent is seen by the capture like any other frame.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
from collections.abc import Callable
from dataclasses import dataclass

from . import echonet
from .config import DecoyConfig

log = logging.getLogger(__name__)

Report = Callable[[float, str, int, int, bytes], None]
"""(time, peer IPv4 or IPv6, decoy port, bytes in this chunk (0: the connection), data)."""


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
        binds = [
            (socket.AF_INET, self.config.bind),
            *((socket.AF_INET6, a) for a in self.config.bind6),
        ]
        for port in self.config.ports:
            bound = None
            for family, address in binds:
                bound = self._listen(family, address, port if bound is None else bound) or bound
            if bound is not None:
                self.ports.append(bound)
        if self.ports:
            log.info("decoys listening on %s", ", ".join(map(str, self.ports)))

    def _listen(self, family: int, address: str, port: int) -> int | None:
        """One listening socket; the port it got, or ``None`` (the error is recorded)."""
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address, port))
            sock.listen(32)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            reason = exc.strerror or str(exc)
            if isinstance(exc, PermissionError) and port < 1024:
                reason += " (ports below 1024 need CAP_NET_BIND_SERVICE)"
            if family == socket.AF_INET6:
                reason += f" ({address})"
            self.errors.append((port, reason))
            log.error("decoy port %d on %s: cannot listen: %s", port, address, reason)
            return None
        bound = int(sock.getsockname()[1])
        listener = _Listener(sock, bound)
        self._listeners.append(listener)
        self.selector.register(sock, selectors.EVENT_READ, listener)
        return bound

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


class EchonetDecoy:
    """The decoy ECHONET Lite node on UDP 3610: the node's IPv4 address and the group.

    Two sockets, neither on a wildcard address: one bound to the node's address (unicast
    requests, and the source of every answer), one bound to the group 224.0.23.0 and joined
    on the node's interface. Answers are bounded (``max_replies_per_s``) so the decoy never
    amplifies a flood of requests with forged sources.
    """

    def __init__(
        self,
        address: str,
        selector: selectors.BaseSelector,
        node: echonet.DecoyNode | None = None,
        max_replies_per_s: int = 50,
    ) -> None:
        self.address = address
        self.selector = selector
        self.node = node or echonet.DecoyNode()
        self.max_replies_per_s = max_replies_per_s
        self.error: str | None = None
        self.replies = 0
        self.refused = 0  # answers left out by the rate bound
        self._second = 0
        self._sent_this_second = 0
        self._sockets: list[socket.socket] = []
        self._unicast: socket.socket | None = None

    def open(self, now: float) -> bool:
        try:
            unicast = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sockets.append(unicast)
            unicast.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            unicast.bind((self.address, echonet.PORT))
            unicast.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.address)
            )
            unicast.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            group = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sockets.append(group)
            group.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            group.bind((echonet.MULTICAST_GROUP, echonet.PORT))
            membership = socket.inet_aton(echonet.MULTICAST_GROUP) + socket.inet_aton(self.address)
            group.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            log.error("decoy ECHONET Lite node on %s: cannot listen: %s", self.address, self.error)
            self.close()
            return False
        self._unicast = unicast
        for sock in self._sockets:
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, self)
        self._send(self.node.announcement(), (echonet.MULTICAST_GROUP, echonet.PORT), now)
        log.info("decoy ECHONET Lite node on %s:%d", self.address, echonet.PORT)
        return True

    def ready(self, sock: socket.socket, now: float) -> None:
        """Answer what is waiting on ``sock`` (a bounded batch)."""
        for _ in range(64):
            try:
                data, peer = sock.recvfrom(1500)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if peer[0] == self.address:
                continue
            for reply in self.node.handle(data):
                target = echonet.MULTICAST_GROUP if reply.multicast else str(peer[0])
                self._send(reply.data, (target, echonet.PORT), now)

    def _send(self, data: bytes, target: tuple[str, int], now: float) -> None:
        second = int(now)
        if second != self._second:
            self._second, self._sent_this_second = second, 0
        if self._sent_this_second >= self.max_replies_per_s:
            self.refused += 1
            return
        self._sent_this_second += 1
        if self._unicast is None:
            return
        try:
            self._unicast.sendto(data, target)
            self.replies += 1
        except OSError as exc:
            log.debug("decoy ECHONET Lite node: cannot answer %s: %s", target[0], exc)

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(sock)
            sock.close()
        self._sockets.clear()
        self._unicast = None
