"""`lan-guard-agent federate`: settings and SuperNode command (sensor_agent/federation/node.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sensor_agent import cli
from sensor_agent.federation.node import FederationError, NodeSettings, supernode_command

SECTION: dict[str, Any] = {"superlink": "psoc.example:9092", "site_id": "home-1"}


def test_the_examples_live_beside_the_event_store_unless_configured() -> None:
    settings = NodeSettings.from_config(SECTION, "/var/lib/lan-guard-agent/outbox.sqlite")
    assert settings.examples_path == Path("/var/lib/lan-guard-agent/examples.sqlite")
    assert settings.auth_key_path == Path("/var/lib/lan-guard-agent/supernode_key")
    assert settings.max_age_s == 365 * 86_400.0 and settings.min_examples == 10
    own = NodeSettings.from_config({**SECTION, "examples_path": "/srv/ex.sqlite"}, "/x/o.sqlite")
    assert own.examples_path == Path("/srv/ex.sqlite")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"superlink": None}, "superlink"),
        ({"site_id": None}, "site_id"),
        ({"root_certificates": "/ca.pem", "insecure": True}, "exclude each other"),
    ],
)
def test_what_federate_cannot_start_with(change: dict[str, Any], why: str) -> None:
    with pytest.raises(FederationError, match=why):
        NodeSettings.from_config({**SECTION, **change}, "/x/o.sqlite")


def test_the_supernode_speaks_tls_to_the_superlink_unless_told_otherwise() -> None:
    settings = NodeSettings.from_config(
        {**SECTION, "root_certificates": "/etc/lan-guard/psoc-ca.pem"}, "/x/o.sqlite"
    )
    command = supernode_command(settings, "pi-hall", Path("/venv/bin"))
    assert command[:3] == ["/venv/bin/flower-supernode", "--superlink", "psoc.example:9092"]
    assert "--insecure" not in command
    # It signs in with the node's own key, which the provider registered.
    assert command[command.index("--auth-supernode-private-key") + 1] == "/x/supernode_key"
    assert command[command.index("--root-certificates") + 1] == "/etc/lan-guard/psoc-ca.pem"
    # Its own API stays on loopback; the ClientApp finds the examples and who it is.
    assert command[command.index("--host") + 1] == "127.0.0.1"
    node_config = command[command.index("--node-config") + 1]
    assert node_config == (
        'examples-db="/x/examples.sqlite" site-id="home-1" agent-id="pi-hall" min-examples=10'
    )
    plain = NodeSettings.from_config({**SECTION, "insecure": True}, "/x/o.sqlite")
    assert "--insecure" in supernode_command(plain, "pi-hall", Path("/venv/bin"))


def test_federate_refuses_to_start_without_what_it_needs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in os.environ if n.startswith("LAN_GUARD_")]:
        monkeypatch.delenv(name)
    assert cli.main(["federate"]) == 2
    assert "federate needs mqtt.host" in capsys.readouterr().err
    assert cli.main(["federate", "--mqtt-host", "127.0.0.1"]) == 2
    assert "federation.superlink" in capsys.readouterr().err
    args = ["federate", "--mqtt-host", "127.0.0.1", "--superlink", "127.0.0.1:9", "--site-id", "s"]
    assert cli.main(args) == 2  # examples must be signed: no shared key, no federation
    assert "mqtt.shared_key" in capsys.readouterr().err


def test_node_key_prints_the_public_key_for_the_provider(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in [n for n in os.environ if n.startswith("LAN_GUARD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LAN_GUARD_MQTT_OUTBOX_PATH", str(tmp_path / "outbox.sqlite"))
    args = ["federate", "--mqtt-host", "127.0.0.1", "--superlink", "127.0.0.1:9", "--site-id", "s"]
    assert cli.main([*args, "--node-key"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == (tmp_path / "supernode_key.pub").read_text().strip()
    assert cli.main([*args, "--node-key"]) == 0  # the same key every time
    assert capsys.readouterr().out.strip() == printed
    (tmp_path / "supernode_key").write_text("not a key")
    (tmp_path / "supernode_key.pub").unlink()
    monkeypatch.setenv("LAN_GUARD_FEDERATION_AUTH_KEY_PATH", str(tmp_path / "supernode_key"))
    assert cli.main([*args, "--node-key"]) == 2
    assert "federation.auth_key_path" in capsys.readouterr().err
