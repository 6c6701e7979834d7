"""The PSOC's side of federated learning without Flower itself: the Flower App's files
(psoc/federation/flower.py), the round store (rounds.py), the global model's payload and
its sending (publish.py). Flower's run is tested end to end in tests/ha/test_federation_e2e.py."""

from __future__ import annotations

import json
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from psoc import cli as psoc_cli
from psoc.federation import flower, publish
from psoc.federation.rounds import RoundStore
from sensor_agent import signing
from tests import systemd
from tests.systemd import DEPLOY

ROOT = Path(__file__).resolve().parents[2]
MODEL: dict[str, Any] = {
    "format": 1,
    "feature_version": 2,
    "features": ["bias", "level"],
    "weights": [-3.0, 4.0],
    "precision": [[12.0, 1.0], [1.0, 11.0]],
    "labels": {"normal": 30, "alarm": 10},
    "correct": 0,
}


def test_the_flower_app_names_the_project_components_and_every_run_setting() -> None:
    app = tomllib.loads(flower.app_pyproject())
    assert app["tool"]["flwr"]["app"]["components"] == {
        "serverapp": "psoc.federation.server_app:app",
        "clientapp": "sensor_agent.federation.client_app:app",
    }
    assert app["tool"]["flwr"]["app"]["config"] == dict(flower.RUN_CONFIG_DEFAULTS)


def test_run_config_is_toml_and_refuses_keys_the_app_does_not_declare() -> None:
    text = flower.run_config({"initial-model": '/m "x".json', "dp": True, "num-rounds": 2})
    assert tomllib.loads(text) == {
        "initial-model": '/m "x".json',
        "dp": True,
        "num-rounds": 2,
    }
    with pytest.raises(ValueError, match="not run config keys"):
        flower.run_config({"rm -rf": 1})


def test_flower_runs_with_its_own_home_and_this_venvs_executables(tmp_path: Path) -> None:
    env = flower.FlowerEnv(
        Path("/venv/bin"), tmp_path / "flwr", "127.0.0.1:9092", ca_certfile=Path("/pki/ca.crt")
    )
    app = env.prepare()
    assert tomllib.loads((tmp_path / "flwr" / "config.toml").read_text())["superlink"] == {
        "default": "lan-guard",
        "lan-guard": {"address": "127.0.0.1:9092", "root-certificates": "/pki/ca.crt"},
    }
    assert env.environ()["PATH"].startswith("/venv/bin") and (app / "pyproject.toml").exists()
    assert env.run_command(app, {"num-rounds": 1})[:4] == [
        "/venv/bin/flwr",
        "run",
        str(app),
        "lan-guard",
    ]
    # Without a CA of its own, Flower's CLI trusts the system's CAs: never plain HTTP.
    system = flower.FlowerEnv(Path("/venv/bin"), tmp_path / "sys", "psoc.example:9092")
    system.prepare()
    connection = tomllib.loads((tmp_path / "sys" / "config.toml").read_text())["superlink"]
    assert connection["lan-guard"] == {"address": "psoc.example:9092"}


def test_the_superlink_admits_only_registered_supernodes_over_tls(tmp_path: Path) -> None:
    env = flower.FlowerEnv(Path("/venv/bin"), tmp_path, "127.0.0.1:9092")
    tls = flower.SuperLinkTls(Path("/pki/link.crt"), Path("/pki/link.key"), Path("/pki/ca.crt"))
    command = env.superlink_command(tls)
    assert "--enable-supernode-auth" in command and "--insecure" not in command
    assert command[command.index("--ssl-certfile") + 1] == "/pki/link.crt"
    assert command[command.index("--ssl-keyfile") + 1] == "/pki/link.key"
    assert command[command.index("--ssl-ca-certfile") + 1] == "/pki/ca.crt"
    assert "--disable-runtime-dependency-installation" in command
    assert env.register_command(Path("/keys/a.pub"), "site-a") == [
        "/venv/bin/flwr",
        "supernode",
        "register",
        "/keys/a.pub",
        "lan-guard",
        "--name",
        "site-a",
        "--format",
        "json",
    ]


def test_federate_refuses_an_unknown_site_a_superlink_without_tls_and_secagg_of_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    db = f"sqlite:///{tmp_path / 'psoc.sqlite'}"
    key = tmp_path / "node.pub"
    key.write_text("ecdsa-sha2-nistp384 AAAA\n")
    common = ["--flower-home", str(tmp_path / "flwr"), "--flower-bin", str(tmp_path / "none")]
    assert psoc_cli.main(["--db", db, "federate-node", "nowhere", str(key), *common]) == 2
    assert "no site nowhere" in caplog.text
    assert psoc_cli.main(["--db", db, "federate", "--initial-model", str(key),
                          "--start-superlink", *common]) == 2  # fmt: skip
    assert "--start-superlink needs --superlink-cert" in capsys.readouterr().err
    # Under SecAgg+ with two sites each could take its own update from the sum.
    assert psoc_cli.main(["--db", db, "federate", "--initial-model", str(key),
                          "--secure-aggregation", "--min-sites", "2", *common]) == 2  # fmt: skip
    assert "--secure-aggregation needs --min-sites of at least 3" in capsys.readouterr().err


def stored(tmp_path: Path) -> RoundStore:
    rounds = RoundStore(tmp_path / "rounds.sqlite")
    for number in (1, 2):
        rounds.add(
            run_id="a" * 32,
            round_number=number,
            feature_version=2,
            model=MODEL,
            metrics={"sites": 2},
            privacy=None,
            sites=[("s2", "pi-b"), ("s1", "pi-a"), ("s1", "pi-a")],
            now=1_800_000_000.0 + number,
        )
    return rounds


def test_rounds_are_numbered_across_runs_and_the_newest_is_the_latest(tmp_path: Path) -> None:
    rounds = stored(tmp_path)
    latest = rounds.latest()
    assert latest is not None and (latest.version, latest.round) == (2, 2)
    assert latest.sites == [("s1", "pi-a"), ("s2", "pi-b")] and latest.model == MODEL
    assert [r.version for r in rounds.all()] == [1, 2]
    assert RoundStore(tmp_path / "empty.sqlite").latest() is None


class Channel:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, str, dict[str, Any], bool]] = []
        self.closed = False

    def send(
        self,
        site_id: str,
        key: bytes,
        sub: str,
        payload: dict[str, Any],
        timeout: float = 5.0,
        *,
        retain: bool = False,
    ) -> None:
        self.sent.append((site_id, key, sub, payload, retain))

    def close(self) -> None:
        self.closed = True


def test_the_model_goes_retained_to_each_agent_that_trained_it_at_a_known_site(
    tmp_path: Path,
) -> None:
    latest = stored(tmp_path).latest()
    assert latest is not None
    channel = Channel()
    sent = publish.publish(latest, {"s1": b"key-one-0123456789"}, channel)  # s2 unknown here
    assert sent == [("s1", "pi-a")]
    [(site_id, key, sub, payload, retain)] = channel.sent
    assert (site_id, key, sub, retain) == ("s1", b"key-one-0123456789", "site/global_model", True)
    assert payload["agent_id"] == "pi-a" and payload["version"] == 2 and payload["sites"] == 2
    signed = signing.sign(payload, key, 1_800_000_000.0, agent_id="pi-a", topic=sub)
    assert list(_validator().iter_errors(signed)) == []


def _validator() -> Draft202012Validator:
    resources = []
    for path in [*(ROOT / "schema").glob("*.schema.json"), *(ROOT / "schema/site").glob("*.json")]:
        contents = json.loads(path.read_text())
        if "$id" in contents:
            resources.append((contents["$id"], Resource.from_contents(contents)))
    schema = json.loads((ROOT / "schema/site/global_model.schema.json").read_text())
    return Draft202012Validator(schema, registry=Registry().with_resources(resources))


def test_a_nodes_site_is_what_the_provider_registered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """federate-node keeps Flower's node id with the site, and only when Flower registered it
    (its CLI exits 0 with JSON either way). Flower's CLI is a stand-in here: the real one is
    in tests/ha/test_federation_e2e.py."""
    db = f"sqlite:///{tmp_path / 'psoc.sqlite'}"
    files = ["--passwords", str(tmp_path / "pw"), "--acl", str(tmp_path / "acl")]
    assert psoc_cli.main(["--db", db, "site", "add", "A", *files, "--psoc-host", "127.0.0.1"]) == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    flwr = bin_dir / "flwr"
    key = tmp_path / "node.pub"
    key.write_text("ecdsa-sha2-nistp384 AAAA\n")
    args = ["--db", db, "federate-node", "A", str(key), "--flower-bin", str(bin_dir),
            "--flower-home", str(tmp_path / "flwr")]  # fmt: skip
    for answer, code in (
        ({"success": False, "error-message": "Public key already in use."}, 1),
        ({"success": True, "node-id": 3478988645920431647}, 0),
    ):
        flwr.write_text(f"#!/bin/sh\necho '{json.dumps(answer)}'\n")
        flwr.chmod(0o755)
        assert psoc_cli.main(args) == code
    assert "Public key already in use" in caplog.text
    nodes = flower.registered_nodes(tmp_path / "flwr" / flower.NODES_FILE)
    assert nodes == {3478988645920431647: "A"}
    assert flower.registered_nodes(tmp_path / "nowhere.json") == {}


def test_federate_node_remove_forgets_a_node_only_when_flower_unregistered_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """federate-node-remove unregisters the site's nodes (or the one named: key rotation) and
    forgets them only when Flower did (stand-in CLI; the real one is in the e2e test)."""
    nodes_file = tmp_path / "flwr" / flower.NODES_FILE
    nodes_file.parent.mkdir()
    for node, site in ((1, "A"), (2, "A"), (3, "B")):
        flower.record_node(nodes_file, node, site)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    flwr = bin_dir / "flwr"
    db = f"sqlite:///{tmp_path / 'psoc.sqlite'}"
    common = ["--flower-bin", str(bin_dir), "--flower-home", str(tmp_path / "flwr")]
    remove = ["--db", db, "federate-node-remove"]
    assert psoc_cli.main([*remove, "C", *common]) == 2
    assert "no node of site C is registered" in caplog.text
    assert psoc_cli.main([*remove, "B", "--node-id", "1", *common]) == 2
    assert "no node 1 of site B is registered" in caplog.text
    flwr.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path / "calls"}\n'
        '[ "$3" = 1 ] && echo \'{"success": true}\' '
        '|| echo \'{"success": false, "error-message": "busy"}\'\n'
    )
    flwr.chmod(0o755)
    assert psoc_cli.main([*remove, "A", *common]) == 1  # node 2 was not unregistered
    assert "did not unregister node 2: busy" in caplog.text
    assert flower.registered_nodes(nodes_file) == {2: "A", 3: "B"}
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [
        "supernode unregister 1 lan-guard --format json",
        "supernode unregister 2 lan-guard --format json",
    ]


def test_the_rounds_run_nightly_with_privacy_and_keep_their_state_in_the_state_directory() -> None:
    service = systemd.unit_settings(DEPLOY / "lan-guard-psoc-federate.service")
    (exec_start,) = service["ExecStart"]
    args = psoc_cli._parser().parse_args(shlex.split(exec_start)[1:])
    assert args.command == "federate" and args.dp and args.secure_aggregation
    assert args.min_sites >= 3  # what SecAgg+ needs
    (state,) = service["StateDirectory"]
    for path in (args.flower_home, args.rounds_db):
        assert path.is_relative_to(Path("/var/lib") / state)
    assert service["Environment"] == [f"FLWR_HOME={args.flower_home}"]
    assert args.initial_model.is_relative_to(Path("/etc") / service["ConfigurationDirectory"][0])
    timer = systemd.unit_settings(DEPLOY / "lan-guard-psoc-federate.timer")
    assert timer["Persistent"] == ["true"] and timer["OnCalendar"]


@pytest.mark.skipif(systemd.NO_VERIFY is not None, reason=str(systemd.NO_VERIFY))
def test_systemd_analyze_verify_accepts_the_rounds_service_and_timer(tmp_path: Path) -> None:
    """As shipped, with ExecStart pointing at this venv's lan-guard-psoc."""
    psoc = Path(sys.executable).parent / "lan-guard-psoc"
    units = [DEPLOY / "lan-guard-psoc-federate.service", DEPLOY / "lan-guard-psoc-federate.timer"]
    systemd.verify(units, ("/opt/lan-guard-psoc/venv/bin/lan-guard-psoc", psoc), tmp_path)
