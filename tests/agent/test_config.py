"""Configuration: file, environment and flags; invalid values refused naming key and reason."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

import pytest

from sensor_agent.cli import _command_handler
from sensor_agent.config import ConfigError, env_names, load, load_raw, mqtt_settings
from sensor_agent.outbox import DEFAULT_MAX_ROWS
from sensor_agent.pipeline import Pipeline
from sensor_agent.sinks.mqtt import MqttSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "lan-guard.toml"


def test_defaults_without_any_source() -> None:
    config = load(None, environ={}, default_agent_id="node1")
    assert config.agent_id == "node1"
    assert config.decoys.ports == (554, 445, 9100, 80, 515, 139)
    assert config.pipeline.arp_scan.min_targets == 10
    assert config.pipeline.syn_scan.min_ports == 3
    assert config.stdout is True and config.events_jsonl is None
    assert config.capture.buffer_mb == 8
    assert mqtt_settings(config) is None


def test_every_detector_bounds_its_sources_at_4096_by_default_and_configurably() -> None:
    pipeline = load(None, environ={}).pipeline
    detectors = (
        pipeline.arp_scan,
        pipeline.syn_scan,
        pipeline.session,
        pipeline.flood,
        pipeline.arp_spray,
        pipeline.source_spray,
    )
    assert [d.max_sources for d in detectors] == [4096] * 6
    env = {
        "LAN_GUARD_DETECTORS_SESSION_MAX_SOURCES": "100",
        "LAN_GUARD_DETECTORS_FLOOD_MAX_SOURCES": "200",
    }
    running = Pipeline(load(None, environ=env).pipeline)
    assert (running.session.sources.max_items, running.flood.sources.max_items) == (100, 200)
    with pytest.raises(ConfigError, match=r"detectors\.flood\.max_sources: value must be at"):
        load_raw(None, environ={"LAN_GUARD_DETECTORS_FLOOD_MAX_SOURCES": "0"})


def test_the_subnet_from_the_file_reaches_the_pipeline_and_the_command_handler() -> None:
    config = load(None, environ={"LAN_GUARD_NETWORK_SUBNET": "198.18.10.7/24"})
    assert config.pipeline.subnet == IPv4Network("198.18.10.0/24")  # the network, not a host
    handler, _ = _command_handler(config, may_enforce=False)
    assert handler.protected.subnet == IPv4Network("198.18.10.0/24")
    live = load(None, environ={}).with_network(None, None, None, IPv4Network("192.0.2.0/28"))
    assert live.pipeline.subnet == IPv4Network("192.0.2.0/28")  # else from the interface
    with pytest.raises(ConfigError, match=r"network\.subnet: .* is not an IPv4 network"):
        load(None, environ={"LAN_GUARD_NETWORK_SUBNET": "198.18.10.0/33"})
    with pytest.raises(ConfigError, match=r"network\.subnet: the node's IP 198\.18\.11\.2 is not"):
        load(
            None,
            environ={
                "LAN_GUARD_NETWORK_SUBNET": "198.18.10.0/24",
                "LAN_GUARD_NETWORK_NODE_IP": "198.18.11.2",
            },
        )


def test_spray_thresholds_are_configurable() -> None:
    env = {
        "LAN_GUARD_DETECTORS_ARP_SPRAY_MIN_ADDRESSES": "32",
        "LAN_GUARD_DETECTORS_SOURCE_SPRAY_WINDOW_S": "5",
    }
    pipeline = load(None, environ=env).pipeline
    assert (pipeline.arp_spray.min_addresses, pipeline.source_spray.window_s) == (32, 5.0)
    with pytest.raises(ConfigError, match=r"detectors\.arp_spray\.min_addresses: value must"):
        load_raw(None, environ={"LAN_GUARD_DETECTORS_ARP_SPRAY_MIN_ADDRESSES": "1"})


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        'agent_id = "from-file"\n'
        "[detectors.arp_scan]\nmin_targets = 20\nwindow_s = 5\n"
        '[mqtt]\nhost = "broker.lan"\n'
    )
    env = {"LAN_GUARD_DETECTORS_ARP_SCAN_MIN_TARGETS": "30", "LAN_GUARD_MQTT_PORT": "8883"}
    config = load(path, environ=env, overrides={("agent_id",): "from-flag"})
    assert config.agent_id == "from-flag"
    assert config.pipeline.arp_scan.min_targets == 30
    assert config.pipeline.arp_scan.window_s == 5
    assert config.raw["mqtt"]["port"] == 8883


def test_lists_from_the_environment_are_comma_separated() -> None:
    config = load(None, environ={"LAN_GUARD_DECOYS_PORTS": "8080, 8443"})
    assert config.decoys.ports == (8080, 8443)
    assert config.pipeline.decoy_ports == (8080, 8443)


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        (
            "[detectors.arp_scan]\nmin_targets = 1\n",
            {},
            r"detectors\.arp_scan\.min_targets: value must be at least 2",
        ),
        ("[detectors.arp_scan]\nwindo_s = 3\n", {}, r"detectors\.arp_scan\.windo_s: unknown key"),
        ("", {"LAN_GUARD_MQTT_PORT": "eighty"}, r"mqtt\.port: expected int"),
        ("", {"LAN_GUARD_DECOYS_PORTS": "80,70000"}, r"decoys\.ports.*at most 65535"),
        (
            '[network]\nnode_ip = "10.0.0"\n',
            {},
            r"network\.node_ip: '10\.0\.0' is not an IPv4 address",
        ),
        ('[network]\ngateway_mac = "zz"\n', {}, r"network\.gateway_mac: .* is not a MAC"),
        ('agent_id = "has space"\n', {}, r"agent_id: must be 1-64 of"),
        ('[mqtt]\npassword = "x"\n', {}, r"mqtt\.password: set without mqtt\.username"),
        ('[mqtt]\nshared_key = "short"\n', {}, r"mqtt\.shared_key: use at least 16 characters"),
        ("[decoys]\nports = [80, 80]\n", {}, r"decoys\.ports: a port is listed twice"),
        ('log_level = "LOUD"\n', {}, r"log_level: value must be one of"),
        ('[enforcer]\nbackend = "iptables"\n', {}, r"enforcer: .*not 'nftables' or 'none'"),
        (
            '[enforcer]\nbackend = "nftables"\n',
            {},
            r"enforcer\.backend: 'nftables' needs mqtt\.shared_key",
        ),
        (
            "[enforcer]\nenabled = true\n",
            {},
            r"enforcer\.backend: 'nftables' needs mqtt\.shared_key",
        ),
        ("", {"LAN_GUARD_ENFORCER_BACKEND": "nftables"}, r"needs mqtt\.shared_key"),
        ('[enforcer]\nalowlist = ["aa:bb:cc:dd:ee:ff"]\n', {}, r"enforcer\.alowlist: unknown key"),
        ("[detectors\n", {}, r"not valid TOML"),
        ("[capture]\nbuffer_mb = 0\n", {}, r"capture\.buffer_mb: value must be at least 1"),
    ],
)
def test_invalid_config_names_key_and_reason(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_raw(path, environ=env)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_raw(tmp_path / "missing.toml", environ={})


def test_unknown_environment_variable_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    load_raw(None, environ={"LAN_GUARD_MQTT_HOTS": "typo"})
    assert "LAN_GUARD_MQTT_HOTS" in caplog.text


def test_every_key_has_an_environment_variable() -> None:
    names = env_names()
    assert names["LAN_GUARD_MQTT_HOST"] == ("mqtt", "host")
    assert names["LAN_GUARD_DETECTORS_FLOOD_SOURCE_FPS"] == ("detectors", "flood", "source_fps")
    assert names["LAN_GUARD_AGENT_ID"] == ("agent_id",)


def test_mqtt_settings_are_mapped_for_the_mqtt_sink() -> None:
    env = {
        "LAN_GUARD_MQTT_HOST": "127.0.0.1",
        "LAN_GUARD_MQTT_USERNAME": "agent",
        "LAN_GUARD_MQTT_PASSWORD": "secret",
        "LAN_GUARD_MQTT_SHARED_KEY": "0123456789abcdef0123",
        "LAN_GUARD_MQTT_TOPIC_PREFIX": "home/lan_guard",
        "LAN_GUARD_MQTT_OUTBOX_PATH": "/tmp/lgc-outbox.sqlite",
        "LAN_GUARD_MQTT_OUTBOX_MAX": "500",
    }
    settings = mqtt_settings(load(None, environ=env, default_agent_id="node1"))
    assert settings.host == "127.0.0.1" and settings.port == 1883
    assert (settings.username, settings.password) == ("agent", "secret")
    assert settings.topic("event") == "home/lan_guard/node1/event"
    assert settings.shared_key == "0123456789abcdef0123"
    assert (settings.outbox_path, settings.outbox_max) == ("/tmp/lgc-outbox.sqlite", 500)
    assert settings.tls is None


def test_tls_files_are_checked_when_the_sink_is_built(tmp_path: Path) -> None:
    env = {"LAN_GUARD_MQTT_HOST": "broker", "LAN_GUARD_MQTT_TLS_CA": str(tmp_path / "none.pem")}
    settings = mqtt_settings(load(None, environ=env))
    assert settings.tls is not None and settings.tls.ca_file == str(tmp_path / "none.pem")


def test_the_example_config_in_deploy_is_valid() -> None:
    config = load(EXAMPLE, environ={})
    assert config.interface == "eth0"


def test_the_nftables_enforcer_with_a_shared_key_is_accepted() -> None:
    env = {"LAN_GUARD_ENFORCER_BACKEND": "nftables", "LAN_GUARD_MQTT_SHARED_KEY": "k" * 16}
    assert load_raw(None, environ=env)["enforcer"]["backend"] == "nftables"


def test_replay_retention_and_legacy_signatures_are_configurable() -> None:
    raw = load_raw(None, environ={})["mqtt"]
    assert (raw["replay_events"], raw["replay_age_s"]) == (10_000, 7 * 86_400.0)
    assert raw["accept_legacy_signatures"] is False
    env = {
        "LAN_GUARD_MQTT_HOST": "127.0.0.1",
        "LAN_GUARD_MQTT_REPLAY_EVENTS": "0",
        "LAN_GUARD_MQTT_REPLAY_AGE_S": "3600",
        "LAN_GUARD_MQTT_ACCEPT_LEGACY_SIGNATURES": "true",
    }
    config = load(None, environ=env)
    settings = mqtt_settings(config)
    assert (settings.replay_events, settings.replay_age_s) == (0, 3600.0)
    assert config.raw["mqtt"]["accept_legacy_signatures"] is True
    with pytest.raises(ConfigError, match=r"mqtt\.replay_events: value must be at least 0"):
        load_raw(None, environ={"LAN_GUARD_MQTT_REPLAY_EVENTS": "-1"})


def test_one_outbox_default_for_the_config_and_the_mqtt_settings() -> None:
    assert load_raw(None, environ={})["mqtt"]["outbox_max"] == DEFAULT_MAX_ROWS == 100_000
    assert MqttSettings(host="127.0.0.1").outbox_max == DEFAULT_MAX_ROWS
    configured = mqtt_settings(load(None, environ={"LAN_GUARD_MQTT_HOST": "127.0.0.1"}))
    assert configured.outbox_max == DEFAULT_MAX_ROWS


def test_the_new_detectors_are_configured_from_the_environment() -> None:
    config = load(
        environ={
            "LAN_GUARD_NETWORK_NODE_IP6": "fd00::10, FE80::1",
            "LAN_GUARD_DETECTORS_SLOW_SWEEP_HORIZON_S": "600",
            "LAN_GUARD_DETECTORS_STEALTH_SCAN_MIN_PORTS": "5",
            "LAN_GUARD_DETECTORS_DHCP_SERVERS": "02:00:00:00:00:53",
            "LAN_GUARD_DETECTORS_ECHONET_LEARN_S": "3600",
            "LAN_GUARD_DECOYS_ECHONET": "false",
        }
    )
    pipeline = config.pipeline
    assert pipeline.node_ip6 == (b"\xfd" + bytes(14) + b"\x10", b"\xfe\x80" + bytes(13) + b"\x01")
    assert pipeline.slow_sweep.horizon_s == 600
    assert pipeline.stealth_scan.min_ports == 5 and pipeline.udp_scan.min_ports == 3
    assert pipeline.dhcp.servers == (bytes.fromhex("020000000053"),)
    assert pipeline.echonet.learn_s == 3600
    assert config.decoys.echonet is False
    with pytest.raises(ConfigError, match=r"network\.node_ip6"):
        load(environ={"LAN_GUARD_NETWORK_NODE_IP6": "192.0.2.1"})
    live = config.with_network(None, None, None, node_ip6=(b"\x20\x01" + bytes(14),))
    assert live.pipeline.node_ip6 == pipeline.node_ip6  # configured: kept
    found = load(environ={}).with_network(bytes(4), None, None, node_ip6=(b"\x20\x01" + bytes(14),))
    assert found.pipeline.node_ip6 == (b"\x20\x01" + bytes(14),)
    assert found.decoys.bind6 == ("2001::",)
