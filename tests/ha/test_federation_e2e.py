"""Federated learning end to end: labels stay at home, the global model comes back and decides.

The real parts on 127.0.0.1: the PSOC broker (accounts, ACL) and a site broker bridged to it
with the configuration ``lan-guard-psoc site add`` wrote; three ``lan-guard-agent federate``
processes (sites A, B and C: the examples' intake and a Flower SuperNode each, from the
agent's venv); the provider's Flower SuperLink and ``lan-guard-psoc federate`` (the ServerApp,
two rounds, at least three sites); Home Assistant with its MQTT integration and LAN Guard for
two agents of site A: ``pi-a`` contributes its owner's labels, ``pi-d`` does not. The
SuperLink speaks TLS and admits only the SuperNodes whose keys the provider registered with
``lan-guard-psoc federate-node`` (each agent made its key pair and printed the public key);
a fourth node with a key nobody registered is refused and never trains.

Sites B and C have learned from their owners that a low-level flood of a new device is an
alarm and a sweep is not (their integrations sent those examples, signed, to their agents);
site A's owner labelled three sweeps. Before the federation site A's classifier, on its
hand-set prior, does not call a level-1 flood an alarm (at most it asks the owner); after two
rounds the global model reaches it, and the same kind of flood is an alarm. The run uses
differential privacy's whole path (clipping, noise, Flower's accountant; the budget shown in
HA) with negligible noise. On the PSOC broker: no training example ever, nothing of
``pi-d``, and the global model only for the agents that trained.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import pytest
from homeassistant.components import mqtt
from homeassistant.core import Event, HomeAssistant, callback
from paho.mqtt.enums import CallbackAPIVersion
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.lan_guard.const import (
    CONF_AGENT_ID,
    CONF_CONTRIBUTE_LABELS,
    CONF_SIGNING_KEY,
    CONF_TOPIC_PREFIX,
    DOMAIN,
    EVENT_LAN_GUARD,
)
from custom_components.lan_guard.learning.classifier import Classifier
from custom_components.lan_guard.learning.features import FEATURE_VERSION
from custom_components.lan_guard.learning.model import OnlineLogisticModel
from psoc import bridge
from psoc import cli as psoc_cli
from psoc.db.engine import make_engine
from psoc.federation.flower import FlowerEnv, SuperLinkTls, registered_nodes
from psoc.federation.rounds import RoundStore
from psoc.store import Store
from sensor_agent import signing
from sensor_agent.federation import logreg
from sensor_agent.federation.examples import ExampleStore
from tests.broker import Collector, Mosquitto, Pki, free_port, make_pki

from .conftest import PREFIX, default_options, make_event, until

pytestmark = [pytest.mark.broker]

ROOT = Path(__file__).resolve().parents[2]
# Flower cannot be installed next to Home Assistant: its processes run from the agent's venv.
FLOWER_BIN = ROOT / ".venv-agent" / "bin"
SITES = {"A": "pi-a", "B": "pi-b", "C": "pi-c"}
NOT_CONSENTING = "pi-d"  # site A's second agent, whose owner does not contribute
INTRUDER = "pi-x"  # a node whose key the provider never registered, claiming to be site A
SERVICE_PASSWORD = "psoc-service-password"


class Psoc:
    """The PSOC's database and broker files, made with its own command."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.db = f"sqlite:///{directory / 'psoc.sqlite'}"
        self.passwords, self.acl = directory / "passwords", directory / "acl"
        self.port = free_port()
        self.bridges: dict[str, str] = {}
        for site_id in SITES:
            out = directory / f"bridge-{site_id}.conf"
            assert (
                self.cli(
                    "site",
                    "add",
                    site_id,
                    "--passwords",
                    str(self.passwords),
                    "--acl",
                    str(self.acl),
                    "--psoc-host",
                    "127.0.0.1",
                    "--psoc-port",
                    str(self.port),
                    "--no-tls",
                    "--bridge-out",
                    str(out),
                )
                == 0
            )
            self.bridges[site_id] = out.read_text()
        assert (
            self.cli(
                "service-user", "psoc", "--passwords", str(self.passwords), "--acl", str(self.acl)
            )
            == 0
        )
        # The command makes a random password; the test sets its own to log in with.
        bridge.set_password(self.passwords, "psoc", SERVICE_PASSWORD)
        self.keys = Store(make_engine(self.db)).site_keys()

    def cli(self, *args: str) -> int:
        return psoc_cli.main(["--db", self.db, "--log-level", "WARNING", *args])

    def broker_config(self) -> str:
        return f"allow_anonymous false\npassword_file {self.passwords}\nacl_file {self.acl}\n"


def signed_example(
    site_id: str, agent_id: str, key: bytes, *, i: int, features: list[float], label: str
) -> tuple[str, bytes]:
    payload = {
        "schema": 1,
        "id": f"{site_id}-{i}",
        "feature_version": FEATURE_VERSION,
        "features": features,
        "label": label,
    }
    signed = signing.sign(payload, key, time.time(), agent_id=agent_id, topic="training/example")
    return f"{PREFIX}/{agent_id}/training/example", json.dumps(signed).encode()


def features_of(event: dict[str, Any]) -> list[float]:
    """What a site's integration computes for a new device's event (a fresh history)."""
    classifier = Classifier()
    classifier.assess(event)
    found = classifier.features_of(event["id"])
    assert found is not None
    return found


def flood(mac: str) -> dict[str, Any]:
    return make_event("flood", level=1, mac=mac, ip=None)


def sweep(mac: str) -> dict[str, Any]:
    return make_event("arp_scan", level=1, mac=mac, ip=None)


class Agents:
    """``lan-guard-agent federate`` for each site, with its own example store and node key."""

    def __init__(
        self, directory: Path, site_broker: Mosquitto, keys: dict[str, bytes], superlink: str
    ) -> None:
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.directory, self.broker, self.keys, self.superlink = (
            directory,
            site_broker,
            keys,
            superlink,
        )

    def node_key(self, agent_id: str) -> Path:
        return self.directory / f"node-{agent_id}.key"

    async def federate(
        self, site_id: str, agent_id: str, *extra: str
    ) -> asyncio.subprocess.Process:
        env = {
            **os.environ,
            "FLWR_HOME": str(self.directory / f"flwr-{agent_id}"),
            "LAN_GUARD_AGENT_ID": agent_id,
            "LAN_GUARD_MQTT_SHARED_KEY": self.keys[site_id].decode(),
            "LAN_GUARD_MQTT_OUTBOX_PATH": str(self.directory / f"outbox-{agent_id}.sqlite"),
            "LAN_GUARD_FEDERATION_EXAMPLES_PATH": str(
                self.directory / f"examples-{agent_id}.sqlite"
            ),
            "LAN_GUARD_FEDERATION_AUTH_KEY_PATH": str(self.node_key(agent_id)),
            "LAN_GUARD_FEDERATION_SUPERLINK": self.superlink,
            "LAN_GUARD_FEDERATION_SITE_ID": site_id,
            "LAN_GUARD_FEDERATION_ROOT_CERTIFICATES": str(self.directory / "pki" / "ca.crt"),
            "LAN_GUARD_FEDERATION_MIN_EXAMPLES": "3",
            "LAN_GUARD_FEDERATION_RUNTIME_PORT": str(free_port()),
        }
        log = (self.directory / f"agent-{agent_id}.log").open("ab")
        return await asyncio.create_subprocess_exec(
            str(FLOWER_BIN / "lan-guard-agent"),
            "federate",
            "--mqtt-host",
            self.broker.host,
            "--mqtt-port",
            str(self.broker.port),
            "--mqtt-topic-prefix",
            PREFIX,
            *extra,
            stdout=asyncio.subprocess.PIPE if extra else log,
            stderr=log,
            env=env,
        )

    async def public_key(self, site_id: str, agent_id: str) -> str:
        """What the agent prints for its provider (the pair made on the way)."""
        printing = await self.federate(site_id, agent_id, "--node-key")
        out, _ = await asyncio.wait_for(printing.communicate(), timeout=30)
        assert printing.returncode == 0
        return out.decode().strip()

    async def start(self, sites: dict[str, str]) -> None:
        for site_id, agent_id in sites.items():
            self.processes[agent_id] = await self.federate(site_id, agent_id)

    async def stop(self) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                process.terminate()
        for process in self.processes.values():
            await asyncio.wait_for(process.wait(), timeout=20)


@pytest.fixture
async def world(
    hass: HomeAssistant, socket_enabled: None, mock_hass_config: None, tmp_path: Path
) -> AsyncIterator[tuple[Psoc, Mosquitto, Mosquitto]]:
    assert (FLOWER_BIN / "flwr").exists(), "scripts/setup.sh installs Flower in .venv-agent"
    psoc = Psoc(tmp_path)
    with (
        Mosquitto(port=psoc.port, extra_config=psoc.broker_config()) as psoc_broker,
        Mosquitto(extra_config=psoc.bridges["A"]) as site_broker,
    ):
        entry = MockConfigEntry(
            domain=mqtt.DOMAIN,
            data={mqtt.CONF_BROKER: site_broker.host, "port": site_broker.port},
            options={mqtt.CONF_BIRTH_MESSAGE: {}, mqtt.CONF_WILL_MESSAGE: {}},
            version=mqtt.CONFIG_ENTRY_VERSION,
            minor_version=mqtt.CONFIG_ENTRY_MINOR_VERSION,
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await until(lambda: mqtt.is_connected(hass), 10, "HA's MQTT client to connect")
        yield psoc, psoc_broker, site_broker
        for loaded in hass.config_entries.async_entries(DOMAIN):
            assert await hass.config_entries.async_unload(loaded.entry_id)
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()


async def lan_guard(hass: HomeAssistant, agent_id: str, key: bytes, contribute: bool) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"LAN Guard {agent_id}",
        unique_id=agent_id,
        data={CONF_TOPIC_PREFIX: PREFIX, CONF_AGENT_ID: agent_id},
        options=default_options(
            evacuation_trigger="manual",
            **{CONF_SIGNING_KEY: key.decode(), CONF_CONTRIBUTE_LABELS: contribute},
        ),
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await asyncio.wait_for(entry.runtime_data.coordinator.subscribed.wait(), timeout=10)


async def node_command(psoc: Psoc, pki: Pki, flower: FlowerEnv, *args: str) -> None:
    """``lan-guard-psoc federate-node ...`` or ``federate-node-remove ...`` at this SuperLink."""
    command = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "psoc.cli", "--db", psoc.db, *args),
        *("--superlink", flower.superlink, "--superlink-ca", str(pki.ca_file)),
        *("--flower-bin", str(FLOWER_BIN), "--flower-home", str(flower.home)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(command.communicate(), timeout=60)
    assert command.returncode == 0, output.decode()[-2000:]


async def register_nodes(psoc: Psoc, agents: Agents, pki: Pki, flower: FlowerEnv) -> None:
    """Each site's agent makes its key pair and prints the public key; the provider registers
    it for that site. The intruder makes a key too, which nobody registers."""
    for site_id, agent_id in SITES.items():
        printed = await agents.public_key(site_id, agent_id)
        assert printed.startswith("ecdsa-sha2-nistp384 ")
        public = agents.node_key(agent_id).with_suffix(".key.pub")
        assert public.read_text().strip() == printed
        assert agents.node_key(agent_id).stat().st_mode & 0o077 == 0
        await node_command(psoc, pki, flower, "federate-node", site_id, str(public))
    # The ServerApp credits each node's update to the site it was registered for.
    assert sorted(registered_nodes(flower.nodes).values()) == sorted(SITES)
    await agents.public_key("A", INTRUDER)


def listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
    except OSError:
        return False
    return True


async def start_superlink(
    tmp_path: Path,
) -> tuple[Pki, FlowerEnv, asyncio.subprocess.Process]:
    """The provider's SuperLink (TLS, SuperNode authentication) on a free loopback port."""
    pki = make_pki(tmp_path / "pki")
    flower = FlowerEnv(
        FLOWER_BIN, tmp_path / "flower", f"127.0.0.1:{free_port()}", ca_certfile=pki.ca_file
    )
    flower.prepare()
    superlink = await asyncio.create_subprocess_exec(
        *flower.superlink_command(SuperLinkTls(pki.server_cert, pki.server_key, pki.ca_file)),
        env=flower.environ(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await until(lambda: listening(flower.superlink), 30, "the SuperLink")
    return pki, flower, superlink


async def federate(
    tmp_path: Path, psoc: Psoc, flower: FlowerEnv, psoc_broker: Mosquitto | None, *extra: str
) -> bytes:
    """``lan-guard-psoc federate``: rounds with the three sites from a fresh model, the
    global model sent to the sites through ``psoc_broker`` (none: stored only)."""
    initial = tmp_path / "initial-model.json"
    initial.write_text(json.dumps(OnlineLogisticModel().to_dict()))
    sending = (
        ["--mqtt-port", str(psoc_broker.port), "--mqtt-username", "psoc"]
        if psoc_broker
        else ["--no-publish"]
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "psoc.cli",
        "--db",
        psoc.db,
        "federate",
        *sending,
        "--initial-model",
        str(initial),
        "--superlink",
        flower.superlink,
        "--superlink-ca",
        str(tmp_path / "pki" / "ca.crt"),
        "--flower-bin",
        str(FLOWER_BIN),
        "--flower-home",
        str(flower.home),
        "--rounds-db",
        str(tmp_path / "rounds.sqlite"),
        "--min-sites",
        "3",
        "--round-timeout",
        "60",
        "--timeout",
        "120",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "LAN_GUARD_PSOC_MQTT_PASSWORD": SERVICE_PASSWORD},
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=150)
    assert process.returncode == 0, output.decode()[-3000:]
    return output


def examples_kept(status: Collector) -> Callable[[str], int]:
    """How many examples an agent's intake says it keeps (its retained training/status), -1
    before it said anything."""

    def kept(agent_id: str) -> int:
        found = status.payloads(f"{PREFIX}/{agent_id}/training/status")
        return int(json.loads(found[-1])["examples"]) if found else -1

    return kept


def site_client(broker: Mosquitto) -> paho.Client:
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


async def test_labels_stay_home_and_the_global_model_changes_a_homes_verdicts(
    hass: HomeAssistant, world: tuple[Psoc, Mosquitto, Mosquitto], tmp_path: Path
) -> None:
    psoc, psoc_broker, site_broker = world
    key_a = psoc.keys["A"]
    verdicts: dict[str, str | None] = {}

    @callback
    def on_event(event: Event) -> None:
        verdicts[event.data["event_id"]] = event.data["verdict"]

    hass.bus.async_listen(EVENT_LAN_GUARD, on_event)
    wire = Collector(
        psoc_broker.port, "sites/#", username="psoc", password=SERVICE_PASSWORD
    ).start()
    await lan_guard(hass, SITES["A"], key_a, contribute=True)
    await lan_guard(hass, NOT_CONSENTING, key_a, contribute=False)
    # The provider's SuperLink runs as a service (TLS, SuperNode authentication), before any
    # site connects.
    pki, flower, superlink = await start_superlink(tmp_path)
    agents = Agents(tmp_path, site_broker, psoc.keys, flower.superlink)
    await register_nodes(psoc, agents, pki, flower)
    await agents.start({"A": INTRUDER})
    await agents.start(SITES)
    publisher = site_client(site_broker)
    # Each agent's intake says it is there (its retained status) before anything is sent.
    status = Collector(site_broker.port, f"{PREFIX}/+/training/status").start()

    kept = examples_kept(status)

    try:
        await until(lambda: min(map(kept, SITES.values())) == 0, 30, "the agents' intakes")
        # The SuperLink refused the node it does not know: its SuperNode is gone, and the
        # agent says why.
        intruder = agents.processes[INTRUDER]
        await asyncio.wait_for(intruder.wait(), timeout=30)
        assert intruder.returncode == 1
        log = (tmp_path / f"agent-{INTRUDER}.log").read_text()
        assert "Failed to activate SuperNode" in log and "registered its public key" in log

        def send_event(agent_id: str, event: dict[str, Any]) -> None:
            event = {**event, "agent_id": agent_id}
            signed = signing.sign(event, key_a, time.time(), agent_id=agent_id, topic="event")
            publisher.publish(f"{PREFIX}/{agent_id}/event", json.dumps(signed), qos=1)

        # Before: site A's classifier has its hand-set prior and three labels of sweeps.
        before = flood("02:00:00:0a:00:01")
        send_event(SITES["A"], before)
        labelled = [sweep(f"02:00:00:0a:01:{i:02x}") for i in range(3)]
        for event in labelled:
            send_event(SITES["A"], event)
        for event in labelled:  # and the same sweeps on the agent that does not contribute
            send_event(NOT_CONSENTING, {**event, "id": event["id"][::-1]})
        ids = [before["id"], *(e["id"] for e in labelled), *(e["id"][::-1] for e in labelled)]
        await until(lambda: all(i in verdicts for i in ids), 15, "the events in HA")
        assert verdicts[before["id"]] in ("normal", "unsure")  # no alarm
        for agent_id, event_ids in ((SITES["A"], labelled), (NOT_CONSENTING, labelled)):
            for event in event_ids:
                event_id = event["id"] if agent_id == SITES["A"] else event["id"][::-1]
                await hass.services.async_call(
                    DOMAIN,
                    "label_event",
                    {"event_id": event_id, "verdict": "normal"},
                    blocking=True,
                )
        # Sites B and C: their integrations' examples, signed with their sites' keys.
        for site_id in ("B", "C"):
            for i in range(10):
                for event, label in (
                    (flood(f"02:00:00:0b:{i:02x}:01"), "alarm"),
                    (sweep(f"02:00:00:0b:{i:02x}:02"), "normal"),
                ):
                    topic, raw = signed_example(
                        site_id,
                        SITES[site_id],
                        psoc.keys[site_id],
                        i=2 * i + (label == "alarm"),
                        features=features_of(event),
                        label=label,
                    )
                    publisher.publish(topic, raw, qos=1)

        try:
            await until(
                lambda: kept("pi-a") == 3 and kept("pi-b") == kept("pi-c") == 20,
                30,
                "every agent to keep its examples",
            )
        finally:
            status.stop()

        output = await federate(
            tmp_path,
            psoc,
            flower,
            psoc_broker,
            "--rounds",
            "2",
            "--no-evaluate",
            # Differential privacy's path (clipping, noise, Flower's accountant, the budget
            # in HA) with noise too small to matter here: what DP costs is the benchmark's
            # part, and the test of secure aggregation runs it with real noise.
            "--dp",
            "--noise-multiplier",
            "0.001",
            "--clipping-norm",
            "100",
        )
        assert b"sent to 3 site agents" in output

        # After: the global model reached site A's integration through the bridge ...
        sensor = "sensor.lan_guard_pi_a_global_model"
        await until(
            lambda: (state := hass.states.get(sensor)) is not None and state.state == "2",
            20,
            "the global model in HA",
        )
        assert hass.states.get(sensor).attributes["round"] == 2  # type: ignore[union-attr]
        assert hass.states.get(sensor).attributes["sites"] == 3  # type: ignore[union-attr]
        assert hass.states.get(sensor).attributes["epsilon"] > 0  # type: ignore[union-attr]
        # ... and a level-1 flood of a new device is now an alarm there.
        after = flood("02:00:00:0a:00:02")
        send_event(SITES["A"], after)
        await until(lambda: after["id"] in verdicts, 10, "the new event in HA")
        assert verdicts[after["id"]] == "alarm"
        # The agent that does not contribute neither sent nor got anything.
        assert hass.states.get("sensor.lan_guard_pi_d_global_model") is None
    finally:
        publisher.loop_stop()
        await agents.stop()
        superlink.terminate()
        await asyncio.wait_for(superlink.wait(), timeout=20)
        wire.stop()

    topics = {message.topic for message in wire.messages}
    assert not any("/training/" in topic for topic in topics)
    assert not any(f"/{NOT_CONSENTING}/" in topic for topic in topics if "/event" not in topic)
    models = {t for t in topics if t.endswith("/site/global_model")}
    assert models == {f"sites/{s}/lan_guard/{a}/site/global_model" for s, a in SITES.items()}


def expected_weights(tmp_path: Path, norm: float) -> tuple[logreg.FloatArray, float]:
    """What each site's ClientApp computes from a fresh model and its stored examples (its
    change of the weights, clipped to ``norm``), averaged with one weight per site, computed
    here from the sites' own stores; and the longest change before clipping."""
    start = OnlineLogisticModel().to_dict()
    mean = np.asarray(start["weights"], dtype=np.float64)
    precision = np.asarray(start["precision"], dtype=np.float64)
    changes, longest = [], 0.0
    for agent_id in SITES.values():
        store = ExampleStore(tmp_path / f"examples-{agent_id}.sqlite")
        xs, ys = store.arrays(FEATURE_VERSION, len(mean), time.time())
        store.close()
        change = logreg.train(mean, precision, zip(xs, ys, strict=True)).mean - mean
        longest = max(longest, float(np.linalg.norm(change)))
        changes.append(change * min(1.0, norm / float(np.linalg.norm(change))))
    return mean + np.mean(changes, axis=0), longest


async def test_secure_aggregation_gives_the_psoc_only_the_mean_of_the_sites_clipped_changes(
    socket_enabled: None, tmp_path: Path
) -> None:
    """Three registered sites and the PSOC under SecAgg+ (Flower's SecAggPlusWorkflow and
    secaggplus_mod): the stored global weights are the fresh model's plus the mean of the
    sites' changes, each clipped at its site, to SecAgg+'s quantization precision; then the same
    rounds with Flower's DP noise at a real multiplier, under SecAgg+ and in the central path
    the other test uses: the noise on the weights is what the multiplier says, and Flower's
    accountant reports the budget. Last, site C leaves (``federate-node-remove``): its node
    is unregistered at the SuperLink, credited to nobody, and its SuperNode refused."""
    psoc = Psoc(tmp_path)
    norm = 0.5
    with Mosquitto() as site_broker:
        pki, flower, superlink = await start_superlink(tmp_path)
        agents = Agents(tmp_path, site_broker, psoc.keys, flower.superlink)
        publisher = site_client(site_broker)
        status = Collector(site_broker.port, f"{PREFIX}/+/training/status").start()

        kept = examples_kept(status)

        try:
            await register_nodes(psoc, agents, pki, flower)
            await agents.start(SITES)
            await until(lambda: min(map(kept, SITES.values())) == 0, 30, "the agents' intakes")
            # Three owners who disagree in different measure: different changes to average.
            mixes = {"A": (2, 6), "B": (8, 2), "C": (5, 5)}  # (floods, sweeps), floods alarm
            for site_id, (floods, sweeps) in mixes.items():
                events = [(flood(f"02:00:00:0c:{i:02x}:01"), "alarm") for i in range(floods)]
                events += [(sweep(f"02:00:00:0c:{i:02x}:02"), "normal") for i in range(sweeps)]
                for i, (event, label) in enumerate(events):
                    topic, raw = signed_example(
                        site_id,
                        SITES[site_id],
                        psoc.keys[site_id],
                        i=i,
                        features=features_of(event),
                        label=label,
                    )
                    publisher.publish(topic, raw, qos=1)
            await until(
                lambda: [kept(SITES[s]) for s in mixes] == [sum(m) for m in mixes.values()],
                30,
                "every agent to keep its examples",
            )
            secure = ("--rounds", "1", "--clipping-norm", str(norm), "--secure-aggregation")
            output = await federate(tmp_path, psoc, flower, None, *secure)
            assert b"Secure aggregation commencing" in output
            noisy = ("--dp", "--noise-multiplier", "0.5")
            await federate(tmp_path, psoc, flower, None, *secure, "--no-evaluate", *noisy)
            central = ("--rounds", "1", "--clipping-norm", str(norm), "--no-evaluate", *noisy)
            await federate(tmp_path, psoc, flower, None, *central)
            # Site C leaves the federation: its node is unregistered and credited to nobody.
            await node_command(psoc, pki, flower, "federate-node-remove", "C")
            left = {node for node, site in registered_nodes(flower.nodes).items() if site == "C"}
            assert sorted(registered_nodes(flower.nodes).values()) == ["A", "B"] and not left
            listing = await asyncio.create_subprocess_exec(
                *(str(FLOWER_BIN / "flwr"), "supernode", "ls", "lan-guard", "--format", "json"),
                env=flower.environ(),
                stdout=asyncio.subprocess.PIPE,
            )
            shown, _ = await asyncio.wait_for(listing.communicate(), timeout=60)
            states = [node["status"] for node in json.loads(shown)["nodes"]]
            assert states.count("unregistered") == 1
            # The SuperLink refuses C's SuperNode from then on: its agent's federate stops.
            gone = agents.processes[SITES["C"]]
            assert await asyncio.wait_for(gone.wait(), timeout=60) == 1
            assert agents.processes[SITES["A"]].returncode is None
        finally:
            status.stop()
            publisher.loop_stop()
            await agents.stop()
            superlink.terminate()
            await asyncio.wait_for(superlink.wait(), timeout=20)

    rounds = RoundStore(tmp_path / "rounds.sqlite")
    exact, secure_dp, central_dp = rounds.all()
    rounds.close()
    mean, longest = expected_weights(tmp_path, norm)
    assert longest > norm  # the sites' clipping mattered
    # SecAgg+ quantizes each number to 2**22 steps of [-norm, norm]: the sum is that exact.
    assert np.allclose(exact.model["weights"], mean, rtol=0, atol=1e-6)
    # The weights only are shared under clipping: the precision stays the initial model's.
    assert exact.model["precision"] == OnlineLogisticModel().to_dict()["precision"]
    assert sorted(exact.sites) == sorted(SITES.items())
    assert exact.model["labels"] == {"alarm": 15, "normal": 13}
    assert exact.privacy is None and exact.metrics["sites"] == 3
    # The sites scored the round's model on their own examples: only the figures came back.
    evaluation = exact.metrics["evaluation"]
    assert evaluation["sites"] == 3 and 0.0 <= evaluation["accuracy"] <= 1.0
    assert {"log-loss", "alarm-recall", "false-alarm-rate"} <= evaluation.keys()
    assert secure_dp.metrics["evaluation"] is None  # --no-evaluate
    # With DP: Gaussian noise of standard deviation multiplier * norm / sites on each weight,
    # added by Flower's wrappers; 55 weights estimate it well (a chi-square bound far out).
    for noised in (secure_dp, central_dp):
        noise = np.asarray(noised.model["weights"]) - mean
        assert 0.6 < float(np.std(noise)) / (0.5 * norm / 3) < 1.5
        assert noised.privacy is not None and noised.privacy["epsilon"] > 0
        assert noised.privacy["noise_multiplier"] == 0.5
    # The same release (3 of 3 sites, multiplier 0.5, one round) costs the same budget.
    assert secure_dp.privacy["epsilon"] == pytest.approx(central_dp.privacy["epsilon"])  # type: ignore[index]
