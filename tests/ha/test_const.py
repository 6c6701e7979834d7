"""What the agent and the integration share is defined once on each side (the agent's
``sensor_agent/contract.py``, the integration's ``const.py``: it is installed on its own) and
both agree with each other and with the contract in ``schema/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

from custom_components.lan_guard import const, payloads, signing
from custom_components.lan_guard.coordinator import _RETAINED
from psoc import topics
from sensor_agent import contract as agent
from sensor_agent import signing as agent_signing
from sensor_agent.config import SECTIONS
from sensor_agent.pipeline import Pipeline, PipelineConfig
from sensor_agent.sinks import RetainedTopic
from sensor_agent.sinks.mqtt import MqttSettings

ROOT = Path(__file__).resolve().parents[2]


def _schema(name: str) -> Any:
    return json.loads((ROOT / "schema" / f"{name}.schema.json").read_text(encoding="utf-8"))


def test_topics() -> None:
    integration = {value for key, value in vars(const).items() if key.startswith("TOPIC_")}
    ours = {value for key, value in vars(agent).items() if key.startswith("TOPIC_")}
    # The site channel's sub-topics are the integration's and the PSOC's, not the agent's.
    site = {value for value in integration if value.startswith("site/")}
    assert integration - site == ours
    assert site == {sub for sub in (*topics.OUTBOUND, *topics.INBOUND) if sub.startswith("site/")}
    assert set(agent.RETAINED_TOPICS) == set(get_args(RetainedTopic)) == set(_RETAINED)
    # Every topic but the raw status string has its schema.
    with_schema = {topic.replace("/", "_") for topic in ours} - {"status"}
    schemas = {path.name.removesuffix(".schema.json") for path in (ROOT / "schema").glob("*.json")}
    assert schemas >= with_schema


def test_status_payloads() -> None:
    assert (const.STATUS_ONLINE, const.STATUS_OFFLINE) == (
        agent.STATUS_ONLINE,
        agent.STATUS_OFFLINE,
    )
    assert _schema("status")["enum"] == [agent.STATUS_ONLINE, agent.STATUS_OFFLINE]


def test_the_default_topic_prefix() -> None:
    assert const.DEFAULT_TOPIC_PREFIX == agent.DEFAULT_TOPIC_PREFIX
    assert MqttSettings(host="broker").topic_prefix == agent.DEFAULT_TOPIC_PREFIX
    assert SECTIONS["mqtt"]["topic_prefix"][0] == agent.DEFAULT_TOPIC_PREFIX  # its default
    manifest = json.loads((ROOT / "custom_components/lan_guard/manifest.json").read_text("utf-8"))
    assert manifest["mqtt"] == [f"{agent.DEFAULT_TOPIC_PREFIX}/+/{agent.TOPIC_INFO}"]


def test_event_kinds() -> None:
    schema = _schema("common")["$defs"]["kind"]["enum"]
    assert [kind.value for kind in const.Kind] == list(agent.KINDS) == schema
    pipeline = Pipeline(PipelineConfig())
    detectors = [
        pipeline.arp_scan,
        pipeline.syn_scan,
        pipeline.session,
        pipeline.flood,
        pipeline.arp_spoof,
        pipeline.arp_spray,
        pipeline.source_spray,
        pipeline.stealth_scan,
        pipeline.udp_scan,
        pipeline.ipv6_sweep,
        pipeline.ndp_spoof,
        pipeline.rogue_ra,
        pipeline.dhcp_starvation,
        pipeline.rogue_dhcp,
        pipeline.cache_exhaustion,
    ]
    # The slow sweep detector reports the kinds of the fast scans it paces.
    kinds = {detector.kind for detector in detectors} | {"host_left"} | set(pipeline.echonet.kinds)
    assert kinds == set(agent.KINDS)


def test_capabilities_and_actions() -> None:
    offered = set(_schema("info")["properties"]["capabilities"]["items"]["enum"])
    ours = {value for key, value in vars(agent).items() if key.startswith("CAPABILITY_")}
    assert ours == offered
    assert const.CAPABILITY_ENFORCER == agent.CAPABILITY_ENFORCER
    actions = _schema("command")["properties"]["action"]["enum"]
    assert list(agent.ACTIONS) == actions
    assert actions == [const.ACTION_QUARANTINE, const.ACTION_RELEASE, const.ACTION_REPLAY]


def test_format_version_and_signature_window() -> None:
    assert payloads.SCHEMA_VERSION == agent.SCHEMA_VERSION
    assert _schema("common")["$defs"]["schema_version"]["const"] == agent.SCHEMA_VERSION
    assert signing.MAX_SKEW_S == agent_signing.MAX_SKEW_S
    assert signing.FORMAT == agent_signing.FORMAT
