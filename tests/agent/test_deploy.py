"""deploy/: the systemd unit agrees with the agent's configuration keys, paths and needs."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from sensor_agent.cli import _parser
from sensor_agent.config import env_names, load
from sensor_agent.sinks.mqtt import default_outbox_path
from tests import systemd
from tests.systemd import DEPLOY

UNIT = DEPLOY / "lan-guard-agent.service"
FEDERATE_UNIT = DEPLOY / "lan-guard-agent-federate.service"
EXAMPLE = DEPLOY / "lan-guard.toml"


def unit_settings(unit: Path = UNIT) -> dict[str, list[str]]:
    return systemd.unit_settings(unit)


def test_the_outbox_default_lies_in_the_units_state_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (state_dir,) = unit_settings()["StateDirectory"]
    assert state_dir == "lan-guard-agent"
    monkeypatch.setenv("STATE_DIRECTORY", f"/var/lib/{state_dir}")  # what systemd sets
    assert default_outbox_path() == f"/var/lib/{state_dir}/outbox.sqlite"
    # the example's paths are where the unit lets the agent write (ProtectSystem=strict)
    for key in ("events_jsonl", "outbox_path"):
        (line,) = [ln for ln in EXAMPLE.read_text().splitlines() if f"{key} = " in ln]
        assert f'"/var/lib/{state_dir}/' in line, line


def test_exec_start_is_a_valid_run_command_reading_the_configuration_directory() -> None:
    settings = unit_settings()
    (exec_start,) = settings["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0].endswith("/bin/lan-guard-agent")
    args = _parser().parse_args(argv[1:])
    assert args.command == "run"
    (config_dir,) = settings["ConfigurationDirectory"]
    assert args.config.parent == Path("/etc") / config_dir
    assert load(EXAMPLE, environ={}).interface  # the file it names, as shipped, is valid


def test_secrets_named_for_the_environment_file_are_configuration_variables() -> None:
    header = "\n".join(ln for ln in UNIT.read_text().splitlines() if ln.startswith("#"))
    named = set(re.findall(r"\b(LAN_GUARD_[A-Z_]+)=", header))
    assert named == {"LAN_GUARD_MQTT_PASSWORD", "LAN_GUARD_MQTT_SHARED_KEY"}
    assert named <= env_names().keys()


def test_capabilities_are_only_what_the_agent_needs() -> None:
    settings = unit_settings()
    needed = {"CAP_NET_RAW", "CAP_NET_BIND_SERVICE"}  # capture and probes; decoys < 1024
    assert set(settings["AmbientCapabilities"][0].split()) == needed
    assert set(settings["CapabilityBoundingSet"][0].split()) == needed
    enforcer = [ln for ln in UNIT.read_text().splitlines() if ln.startswith("#Ambient")]
    assert enforcer and set(enforcer[0].split("=", 1)[1].split()) == needed | {"CAP_NET_ADMIN"}
    families = set(settings["RestrictAddressFamilies"][0].split())
    assert {"AF_PACKET", "AF_INET", "AF_NETLINK"} <= families  # capture, MQTT, nftables


def test_the_federation_node_runs_federate_with_the_agents_files_and_no_capabilities() -> None:
    settings = unit_settings(FEDERATE_UNIT)
    (exec_start,) = settings["ExecStart"]
    args = _parser().parse_args(shlex.split(exec_start)[1:])
    assert args.command == "federate"
    assert args.config == Path("/etc/lan-guard/agent.toml")
    # Its examples and node key default beside the agent's outbox, in the agent's state.
    assert settings["StateDirectory"] == unit_settings()["StateDirectory"]
    assert settings["ConfigurationDirectory"] == unit_settings()["ConfigurationDirectory"]
    assert settings["CapabilityBoundingSet"] == [""] and settings["AmbientCapabilities"] == [""]
    (flwr_home,) = settings["Environment"]
    assert flwr_home.startswith(f"FLWR_HOME=/var/lib/{settings['StateDirectory'][0]}/")


@pytest.mark.skipif(systemd.NO_VERIFY is not None, reason=str(systemd.NO_VERIFY))
@pytest.mark.parametrize("shipped", [UNIT, FEDERATE_UNIT], ids=lambda p: p.name)
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path, shipped: Path) -> None:
    """The unit as shipped, with ExecStart pointing at this venv's agent."""
    agent = Path(sys.executable).parent / "lan-guard-agent"
    systemd.verify([shipped], ("/opt/lan-guard/venv/bin/lan-guard-agent", agent), tmp_path)
