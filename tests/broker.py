"""A real mosquitto for tests and benchmarks, plus a paho subscriber that records messages.

No pytest in here, so any test suite or script can use it::

    with Mosquitto() as broker:                    # 127.0.0.1, a free port
        with Collector(broker.port, "lan_guard/#") as seen:
            ...                                     # publish something
            seen.wait_for(lambda msgs: len(msgs) >= 3, timeout=5)
        broker.kill()                               # SIGKILL: abrupt, like a crash
        broker.start()                              # again on the same port
    # stopped, temp dir removed

- ``Mosquitto(port=None, users=None, tls=None, persistence=False, extra_config="")``:
  ``start()``, ``stop()`` (SIGTERM: mosquitto saves its persistence file), ``kill()``
  (SIGKILL), ``restart()``, ``close()``; ``.host``, ``.port``, ``.running``, ``log()``.
  ``users={"name": "password"}`` turns anonymous access off. The listener is on 127.0.0.1
  only. ``persistence=True`` keeps retained messages and persistent sessions across a
  ``stop()``/``start()`` (not across ``kill()``, which saves nothing).
- ``make_pki(directory, server_names=("127.0.0.1", "localhost"))`` writes a throw-away CA,
  a server certificate for those names and a client certificate (openssl CLI); pass
  ``BrokerTls.from_pki(pki)`` to ``Mosquitto``.
- ``Collector(port, topics, ...)``: subscribes (QoS 1 by default), reconnects by itself,
  records every ``Received`` message; ``wait_for(predicate, timeout)``.
- ``free_port()``: a TCP port nobody listens on at the moment.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Pki:
    """Files of a throw-away certificate authority and two certificates it signed."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(directory: Path, server_names: Sequence[str] = ("127.0.0.1", "localhost")) -> Pki:
    """Create a CA, a server cert (for ``server_names``) and a client cert with openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    server_alt = ",".join(
        f"IP:{name}" if name.replace(".", "").isdigit() else f"DNS:{name}" for name in server_names
    )

    def openssl(*args: str) -> None:
        done = subprocess.run(["openssl", *args], cwd=directory, capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.decode(errors='replace')}")

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=LAN Guard test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    for name, usage, alt in (
        ("server", "serverAuth", server_alt),
        ("client", "clientAuth", "DNS:lan-guard-agent"),
    ):
        (directory / f"{name}.ext").write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyAgreement\n"
            f"extendedKeyUsage={usage}\nsubjectAltName={alt}\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n",
            encoding="utf-8",
        )
        openssl(
            "req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"
        )
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
        )  # fmt: skip
    for path in directory.glob("*.key"):
        path.chmod(0o600)
    return Pki(
        directory / "ca.crt",
        directory / "server.crt",
        directory / "server.key",
        directory / "client.crt",
        directory / "client.key",
    )


@dataclass(frozen=True)
class BrokerTls:
    """A TLS listener: the broker's certificate and the CA that signs client certificates."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_client_cert: bool = False

    @classmethod
    def from_pki(cls, pki: Pki, require_client_cert: bool = False) -> BrokerTls:
        return cls(pki.ca_file, pki.server_cert, pki.server_key, require_client_cert)


class Mosquitto:
    """One mosquitto process on 127.0.0.1, restartable on the same port (see module doc)."""

    host = HOST

    def __init__(
        self,
        port: int | None = None,
        *,
        users: Mapping[str, str] | None = None,
        tls: BrokerTls | None = None,
        persistence: bool = False,
        extra_config: str = "",
    ) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lan-guard-mosquitto-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path = self.dir / "mosquitto.log"
        self._config = self.dir / "mosquitto.conf"
        lines = [
            f"listener {self.port} {HOST}",
            f"allow_anonymous {'false' if users else 'true'}",
            f"user {'root' if os.geteuid() == 0 else getpass.getuser()}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_queued_messages 100000",
        ]
        if users:
            passwords = self.dir / "passwords"
            passwords.write_text("", encoding="utf-8")
            for name, password in users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwords), name, password],
                    check=True,
                    capture_output=True,
                )
            lines.append(f"password_file {passwords}")
        if tls:
            lines += [
                f"cafile {tls.ca_file}",
                f"certfile {tls.cert_file}",
                f"keyfile {tls.key_file}",
                f"require_certificate {'true' if tls.require_client_cert else 'false'}",
            ]
        if persistence:
            lines += ["persistence true", f"persistence_location {self.dir}/"]
        self._config.write_text("\n".join(lines) + "\n" + extra_config + "\n", encoding="utf-8")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """Everything mosquitto logged so far (all runs)."""
        return self._log_path.read_text(encoding="utf-8", errors="replace")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        """Start and wait until the port accepts connections."""
        if self.running:
            raise RuntimeError("mosquitto is already running")
        log_start = self._log_path.stat().st_size if self._log_path.exists() else 0
        with self._log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                ["mosquitto", "-c", str(self._config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"mosquitto exited at start-up:\n{self.log()}")
            # "running" is logged once every listener is open (a bare connect could reach
            # some other program on a port that mosquitto failed to take).
            if b" running" in self._log_path.read_bytes()[log_start:]:
                try:
                    with socket.create_connection((HOST, self.port), timeout=0.5):
                        return self
                except OSError:
                    pass
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {HOST}:{self.port}:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: a clean shutdown (saves the persistence file when enabled)."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes at once, like a crash or a power cut."""
        self._end(signal.SIGKILL, 10.0)

    def restart(self) -> None:
        """Clean stop (if running), then start again on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop (if running) and delete the temporary directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class Received:
    """One message as a subscriber saw it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    at: float  # time.monotonic() on arrival


class Collector:
    """A paho subscriber that records what arrives; reconnects on its own (see module doc).

    ``clean_session=False`` (with a ``client_id``) keeps the subscription and queued QoS 1
    messages in the broker while the collector is away.
    """

    def __init__(
        self,
        port: int,
        topics: str | Sequence[str] = "#",
        *,
        qos: int = 1,
        client_id: str = "",
        clean_session: bool = True,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        host: str = HOST,
    ) -> None:
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.qos = qos
        self.messages: list[Received] = []
        self.connections = 0
        self._host, self._port = host, port
        self._cond = threading.Condition()
        self._subscribed = False
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=paho.MQTTv311,
        )
        self._client.reconnect_delay_set(1, 2)
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls is not None:
            self._client.tls_set_context(tls)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect

    def start(self, timeout: float = 10.0) -> Collector:
        """Connect, subscribe, and return once the broker acknowledged the subscription."""
        self._client.connect_async(self._host, self._port, keepalive=10)
        self._client.loop_start()
        if not self.wait_subscribed(timeout):
            self.stop()
            raise TimeoutError(f"collector not subscribed to {self.topics} within {timeout} s")
        return self

    def wait_subscribed(self, timeout: float) -> bool:
        """Wait until the current connection's subscription is acknowledged."""
        with self._cond:
            return self._cond.wait_for(lambda: self._subscribed, timeout)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def payloads(self, topic: str) -> list[bytes]:
        """Payloads received on ``topic``, in arrival order."""
        with self._cond:
            return [m.payload for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float) -> bool:
        """Wait until ``predicate(messages)`` holds (checked on every arrival)."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.messages), timeout)

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            return
        with self._cond:
            self.connections += 1
        client.subscribe([(topic, self.qos) for topic in self.topics])

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._subscribed = True
            self._cond.notify_all()

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._subscribed = False
            self._cond.notify_all()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        received = Received(msg.topic, bytes(msg.payload), msg.qos, msg.retain, time.monotonic())
        with self._cond:
            self.messages.append(received)
            self._cond.notify_all()

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
