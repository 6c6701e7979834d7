"""``site add``'s broker files and bridge configuration, on real mosquittos: exactly the listed
sub-topics cross, each in its direction; training data and agent commands never leave the
site; a site can neither write nor read another site's topics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from psoc import bridge, topics
from tests.broker import Collector, Mosquitto

pytestmark = pytest.mark.broker


@dataclass
class Pair:
    psoc: Mosquitto
    site: Mosquitto
    passwords: dict[str, str]


def client(port: int, user: str | None = None, password: str | None = None) -> paho.Client:
    c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    if user:
        c.username_pw_set(user, password)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    directory: Path = tmp_path_factory.mktemp("bridge")
    passwords = {
        "psoc": "service-password-1",
        "site-s1": "site-one-password",
        "site-s2": "site-two-password",
    }
    for user, password in passwords.items():
        bridge.set_password(directory / "passwords", user, password)
    bridge.write_acl(
        directory / "acl", bridge.acl_text("psoc", [("s1", "site-s1"), ("s2", "site-s2")])
    )
    psoc = Mosquitto(
        extra_config=f"allow_anonymous false\npassword_file {directory / 'passwords'}\n"
        f"acl_file {directory / 'acl'}\n"
    ).start()
    config = bridge.bridge_config(
        "s1", passwords["site-s1"], psoc_host="127.0.0.1", psoc_port=psoc.port, tls=False
    )
    site = Mosquitto(extra_config=config).start()
    try:
        yield Pair(psoc, site, passwords)
    finally:
        site.close()
        psoc.close()


def test_only_the_listed_sub_topics_cross_to_the_psoc(pair: Pair) -> None:
    with Collector(pair.psoc.port, "#", username="psoc", password=pair.passwords["psoc"]) as seen:
        assert seen.wait_for(
            lambda m: any(x.topic == "sites/s1/bridge" and x.payload == b"1" for x in m), 15
        )
        sender = client(pair.site.port)
        never = [
            "pi/training/example",  # the owner's labelled examples (federated learning)
            "pi/training/delete",
            "pi/training/status",
            "pi/training/model",
            "pi/training/data/x",
            "pi/site/global_model",  # comes in from the PSOC, never goes out
            "pi/command",
            "pi/other",
            "pi/site/request",
        ]
        for sub in never:
            sender.publish(f"lan_guard/{sub}", b"private", qos=1)
        for sub in topics.OUTBOUND:
            sender.publish(f"lan_guard/pi/{sub}", sub.encode(), qos=1)
        assert seen.wait_for(lambda m: len({x.topic for x in m}) >= len(topics.OUTBOUND) + 1, 10)
        time.sleep(0.5)
        sender.loop_stop()
        crossed = {x.topic: x.payload for x in seen.messages if x.topic != "sites/s1/bridge"}
    assert crossed == {f"sites/s1/lan_guard/pi/{sub}": sub.encode() for sub in topics.OUTBOUND}


def test_only_requests_for_this_site_come_in(pair: Pair) -> None:
    with Collector(pair.site.port, "lan_guard/#") as seen:
        psoc = client(pair.psoc.port, "psoc", pair.passwords["psoc"])
        time.sleep(0.5)
        for sub in topics.INBOUND:
            psoc.publish(topics.agent_topic("s1", "pi", sub), sub.encode(), qos=1)
            psoc.publish(topics.agent_topic("s2", "pi", sub), b"for another site", qos=1)
        psoc.publish(
            topics.agent_topic("s1", "pi", "training/model"), b"x", qos=1
        )  # refused by the ACL
        assert seen.wait_for(lambda m: len(m) >= len(topics.INBOUND), 10)
        time.sleep(0.5)
        psoc.loop_stop()
        arrived = {x.topic: x.payload for x in seen.messages}
    assert arrived == {f"lan_guard/pi/{sub}": sub.encode() for sub in topics.INBOUND}


def test_a_site_cannot_write_or_read_another_sites_topics(pair: Pair) -> None:
    with Collector(
        pair.psoc.port, "sites/s2/#", username="psoc", password=pair.passwords["psoc"]
    ) as psoc_sees:
        intruder = client(pair.psoc.port, "site-s1", pair.passwords["site-s1"])
        time.sleep(0.3)
        intruder.publish(
            topics.agent_topic("s2", "pi", "event"), b"forged", qos=1
        ).wait_for_publish(5)
        time.sleep(0.5)
        intruder.loop_stop()
        assert psoc_sees.messages == []
    with Collector(
        pair.psoc.port, "sites/s2/#", username="site-s1", password=pair.passwords["site-s1"]
    ) as spy:
        psoc = client(pair.psoc.port, "psoc", pair.passwords["psoc"])
        psoc.publish(
            topics.agent_topic("s2", "pi", "site/request"), b"secret", qos=1
        ).wait_for_publish(5)
        time.sleep(0.5)
        psoc.loop_stop()
        assert spy.messages == []


def test_the_bridge_configuration_names_what_never_crosses() -> None:
    config = bridge.bridge_config("s1", "pw", psoc_host="psoc.example", cafile="/ca.crt")
    lines = [line for line in config.splitlines() if line.startswith("topic ")]
    assert len(lines) == len(topics.OUTBOUND) + len(topics.INBOUND)
    assert not any("training" in line or "#" in line for line in lines)
    assert "bridge_cafile /ca.crt" in config and "bridge_insecure false" in config
