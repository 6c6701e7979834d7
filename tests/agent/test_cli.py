"""The ``lan-guard-agent`` command, run as a subprocess like a user would."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sensor_agent import __version__
from sensor_agent.cli import _load, _parser
from sensor_agent.formats import default_agent_id
from sensor_agent.sinks.mqtt import MqttSettings
from sensor_agent.synth import CULPRIT, NODE, ROUTER
from tests.contract import validate_from_pipeline

AGENT = str(Path(sys.executable).parent / "lan-guard-agent")


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENT, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


@pytest.fixture(scope="module")
def demo_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "demo.pcap"
    done = run("generate", "demo", str(path))
    assert done.returncode == 0, done.stderr
    return path


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"lan-guard-agent {__version__}"


def test_demo_prints_a_graded_timeline(tmp_path: Path) -> None:
    keep = tmp_path / "kept.pcap"
    done = run("demo", "--write-pcap", str(keep), "--json")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for text in (
        "L1  ARP scan",
        "L2  SYN scan",
        "L3  session",
        "host left",
        CULPRIT.name,
        "no events",
    ):
        assert text in out
    assert out.index("L1  ARP scan") < out.index("L2  SYN scan") < out.index("L3  session")
    assert keep.stat().st_size > 10_000
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert {e["level"] for e in events} == {0, 1, 2, 3}
    for event in events:
        validate_from_pipeline("event", event)


def test_replay_prints_events_and_writes_the_same_to_jsonl(demo_pcap: Path, tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    done = run(
        "replay",
        str(demo_pcap),
        "--node-ip",
        NODE.ip,
        "--gateway-ip",
        ROUTER.ip,
        "--events-jsonl",
        str(log),
        "--agent-id",
        "cli-test",
    )
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    stored = [json.loads(line) for line in log.read_text().splitlines()]
    assert printed == stored
    assert [e["kind"] for e in printed][:3] == ["arp_scan", "syn_scan", "session"]
    assert {e["agent_id"] for e in printed} == {"cli-test"}
    for event in printed:
        validate_from_pipeline("event", event)
    assert "frames/s" in done.stderr and "parse errors 0" in done.stderr


def test_replay_appends_to_an_existing_event_log(demo_pcap: Path, tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    counts = []
    for _ in range(2):
        done = run(
            "replay",
            str(demo_pcap),
            "--node-ip",
            NODE.ip,
            "--no-stdout",
            "--events-jsonl",
            str(log),
        )
        assert done.returncode == 0 and done.stdout == ""
        counts.append(len(log.read_text().splitlines()))
    assert counts[0] > 0 and counts[1] == 2 * counts[0]
    lines = log.read_text().splitlines()
    assert len({json.loads(x)["id"] for x in lines}) == len(lines)


def test_replay_environment_configures_the_agent(demo_pcap: Path) -> None:
    env = {
        "LAN_GUARD_NETWORK_NODE_IP": NODE.ip,
        "LAN_GUARD_DETECTORS_SYN_SCAN_MIN_PORTS": "50",
        "PATH": "",
    }
    done = run("replay", str(demo_pcap), env=env)
    assert done.returncode == 0, done.stderr
    kinds = {json.loads(line)["kind"] for line in done.stdout.splitlines()}
    assert "syn_scan" not in kinds and "session" in kinds


def test_replay_of_a_missing_file_fails_clearly(tmp_path: Path) -> None:
    done = run("replay", str(tmp_path / "missing.pcap"))
    assert done.returncode == 1
    assert "cannot open" in done.stderr and "Traceback" not in done.stderr


def test_replay_of_a_non_capture_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a capture")
    done = run("replay", str(path))
    assert done.returncode == 1
    assert "not a pcap or pcapng file" in done.stderr


def test_replay_of_a_pcapng_with_no_interface_block_fails_clearly(tmp_path: Path) -> None:
    from tests.agent.test_replay import FRAMES, SHB, epb

    path = tmp_path / "no-idb.pcapng"
    path.write_bytes(SHB + b"".join(epb(frame, int(ts * 1e6)) for ts, frame in FRAMES))
    done = run("replay", str(path))
    assert done.returncode == 1
    assert "no packet could be replayed" in done.stderr and "Traceback" not in done.stderr


def test_invalid_config_exits_2_naming_key_and_reason(tmp_path: Path, demo_pcap: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[detectors.arp_scan]\nmin_targets = 0\n")
    done = run("replay", str(demo_pcap), "--config", str(config))
    assert done.returncode == 2
    assert (
        "configuration error: detectors.arp_scan.min_targets: value must be at least 2"
        in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_nftables_without_a_shared_key_exits_2_naming_both_keys(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[enforcer]\nbackend = "nftables"\n')
    done = run("check-config", "--config", str(config))
    assert done.returncode == 2
    assert "enforcer.backend" in done.stderr and "mqtt.shared_key" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_config_prints_the_effective_configuration(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[mqtt]\nhost = "127.0.0.1"\n')
    done = run("check-config", "--config", str(config), "--decoy-ports", "8080,8443")
    assert done.returncode == 0, done.stderr
    effective = json.loads(done.stdout)
    assert effective["mqtt"]["host"] == "127.0.0.1"
    assert effective["decoys"]["ports"] == [8080, 8443]


def test_check_config_masks_the_secrets_that_are_set(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[mqtt]\nhost = "127.0.0.1"\nusername = "agent"\n')
    env = {
        **os.environ,
        "LAN_GUARD_MQTT_PASSWORD": "broker-password-secret",
        "LAN_GUARD_MQTT_SHARED_KEY": "shared-key-secret-0123",
    }
    done = run("check-config", "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr
    assert "secret" not in done.stdout + done.stderr
    effective = json.loads(done.stdout)
    assert (effective["mqtt"]["password"], effective["mqtt"]["shared_key"]) == ("***", "***")
    assert effective["mqtt"]["username"] == "agent"
    unset = run("check-config", "--config", str(config), env={**os.environ})
    assert unset.returncode == 0, unset.stderr
    mqtt = json.loads(unset.stdout)["mqtt"]
    assert (mqtt["password"], mqtt["shared_key"]) == (None, None)  # unset: not masked


def test_the_default_agent_id_is_the_same_for_the_cli_and_the_mqtt_sink() -> None:
    expected = default_agent_id()
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", expected)  # the host name, made a valid id
    assert MqttSettings(host="127.0.0.1").agent_id == expected
    assert _load(_parser().parse_args(["check-config"])).agent_id == expected


def test_run_needs_an_interface() -> None:
    done = run("run")
    assert done.returncode == 2
    assert "network.interface: required" in done.stderr


def test_run_on_a_missing_interface_fails_clearly() -> None:
    done = run("run", "--interface", "lgc-missing0")
    assert done.returncode == 1
    assert "lgc-missing0" in done.stderr and "Traceback" not in done.stderr


def test_usage_error_exits_2() -> None:
    done = run("replay")
    assert done.returncode == 2
    assert "usage" in done.stderr


def test_generate_many_sources(tmp_path: Path) -> None:
    path = tmp_path / "many.pcap"
    done = run("generate", "many-sources", str(path), "--count", "300")
    assert done.returncode == 0
    assert "300 frames" in done.stderr


def test_capture_filter_leaves_out_the_nodes_own_frames() -> None:
    from sensor_agent.cli import capture_filter

    mac = bytes.fromhex("02000000a00a")
    assert capture_filter("", None) == ""
    assert capture_filter("", mac) == "not ether src 02:00:00:00:a0:0a"
    assert capture_filter("arp or tcp", mac) == "(arp or tcp) and not ether src 02:00:00:00:a0:0a"


@pytest.mark.skipif(os.geteuid() != 0, reason="packet capture needs root (CAP_NET_RAW)")
def test_run_starts_on_loopback_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a free high port for the decoy
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "agent.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [AGENT, "run", "-i", "lo", "--decoy-ports", str(port), "--no-stdout"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            deadline = time.monotonic() + 20
            while "watching lo" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
            assert f"decoys [{port}]" in log.read_text()
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass  # the decoy listens
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=10)
    assert code == 0, log.read_text()
    assert "stopping" in log.read_text()


def test_generate_scans_gives_one_event_per_port_with_updates_at_once(tmp_path: Path) -> None:
    path = tmp_path / "scans.pcap"
    done = run("generate", "scans", str(path), "--count", "90")
    assert done.returncode == 0, done.stderr
    assert "170 frames" in done.stderr  # 40 sources: 2 frames each below the threshold
    env = {**os.environ, "LAN_GUARD_INCIDENTS_UPDATE_INTERVAL_S": "0"}
    replayed = run("replay", str(path), "--node-ip", "198.18.0.10", env=env)
    assert replayed.returncode == 0, replayed.stderr
    events = [json.loads(line) for line in replayed.stdout.splitlines()]
    assert len(events) == 90
    assert {event["kind"] for event in events} == {"syn_scan"}


def test_replay_speed_must_be_positive(demo_pcap: Path) -> None:
    done = run("replay", str(demo_pcap), "--speed", "0")
    assert done.returncode == 2
    assert "--speed: 0 is not a positive factor" in done.stderr
