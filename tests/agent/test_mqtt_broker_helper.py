"""tests/broker.py itself: the mosquitto helper other test suites build on."""

from __future__ import annotations

import socket
from pathlib import Path

import paho.mqtt.publish as paho_publish
import pytest

from tests.broker import HOST, Collector, Mosquitto, free_port

pytestmark = pytest.mark.broker


def test_start_stop_kill_restart_keep_the_same_port_and_clean_up() -> None:
    broker = Mosquitto()
    port, directory = broker.port, broker.dir
    with broker:
        assert broker.running
        broker.restart()
        assert broker.running and broker.port == port
        broker.kill()
        assert not broker.running
        with pytest.raises(OSError):
            socket.create_connection((HOST, port), timeout=1).close()
        broker.start()
        with Collector(port, "t/#") as seen:
            paho_publish.single("t/x", b"hello", qos=1, hostname=HOST, port=port)
            assert seen.wait_for(lambda m: [x.payload for x in m] == [b"hello"], 5)
        assert "mosquitto version" in broker.log()
    assert not broker.running
    assert not Path(directory).exists()


def test_a_port_in_use_gives_an_error_with_the_broker_log() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        broker = Mosquitto(port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="mosquitto exited at start-up"):
            broker.start()
        broker.close()


def test_persistence_keeps_retained_messages_across_a_clean_stop() -> None:
    with Mosquitto(persistence=True) as broker:
        paho_publish.single("t/kept", b"v1", qos=1, retain=True, hostname=HOST, port=broker.port)
        broker.stop()
        broker.start()
        with Collector(broker.port, "t/#") as seen:
            assert seen.wait_for(lambda m: len(m) == 1, 5)
            assert (seen.messages[0].payload, seen.messages[0].retain) == (b"v1", True)


def test_users_turn_anonymous_access_off() -> None:
    with Mosquitto(users={"u": "p"}) as broker:
        with Collector(broker.port, "t/#", username="u", password="p") as seen:
            paho_publish.single(
                "t/a",
                b"1",
                qos=1,
                hostname=HOST,
                port=broker.port,
                auth={"username": "u", "password": "p"},
            )
            assert seen.wait_for(lambda m: len(m) == 1, 5)
        with pytest.raises(TimeoutError):
            Collector(broker.port, "t/#").start(timeout=1.5)


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind((HOST, port))
