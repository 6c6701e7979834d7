"""Running Flower's own processes: the Flower App's files, the CLI's connection, and commands.

Flower runs a ServerApp by building a "Flower App" from a folder with a ``pyproject.toml`` that
names the components and their run config, and submitting it to a SuperLink with ``flwr run``.
Ours names installed modules (``psoc.federation.server_app``, ``sensor_agent.federation.
client_app``), so the folder holds nothing but that file, written here. Flower's processes
find each other's executables on ``PATH`` and keep their state under ``FLWR_HOME``; both are
set for every command, so a PSOC's service environment needs no Flower set-up of its own.
Runtime dependency installation is off: a SuperLink must not fetch packages for an app.

SuperNode authentication is always on: a SuperLink started here admits only SuperNodes whose
public key the provider registered (``flwr supernode register``, through
``lan-guard-psoc federate-node``), so nothing else that reaches it can join a round and steer
the global model. Flower allows that only over TLS, so the SuperLink always speaks TLS. The
node ids Flower gives at registration are kept with their sites (:data:`NODES_FILE`): the
ServerApp credits a node's update to the site the provider registered it for, never to the
site the node says it is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CONNECTION = "lan-guard"
NODES_FILE = "nodes.json"  # in Flower's home: {node id: site id}, written by federate-node
MAX_NODES_BYTES = 4_000_000

RUN_CONFIG_DEFAULTS: Mapping[str, str | int | float | bool] = {
    "initial-model": "",
    "nodes": "",
    "rounds-db": "",
    "num-rounds": 3,
    "min-sites": 3,
    "round-timeout": 300.0,
    "evaluate": True,
    "dp": False,
    "noise-multiplier": 1.0,
    "clipping-norm": 1.0,
    "target-delta": 1e-5,
    "max-epsilon": 0.0,
    "population": 3,
    "secure-aggregation": False,
}


def _toml(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    return repr(value)


def app_pyproject() -> str:
    """The Flower App's ``pyproject.toml``."""
    lines = [
        "# Written by lan-guard-psoc federate: the LAN Guard Flower App.",
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        'name = "lan-guard-federation"',
        'version = "1.0.0"',
        'description = "LAN Guard: the home classifier, learned from every consenting home"',
        'license = "Apache-2.0"',
        "dependencies = []",
        "",
        "[tool.flwr.app]",
        'publisher = "lan-guard"',
        "",
        "[tool.flwr.app.components]",
        'serverapp = "psoc.federation.server_app:app"',
        'clientapp = "sensor_agent.federation.client_app:app"',
        "",
        "[tool.flwr.app.config]",
    ]
    lines += [f"{key} = {_toml(value)}" for key, value in RUN_CONFIG_DEFAULTS.items()]
    return "\n".join(lines) + "\n"


def run_config(values: Mapping[str, str | int | float | bool]) -> str:
    """A TOML file's text for ``flwr run --run-config`` (only keys the app declares). A file,
    not key=value words: Flower splits those on spaces and cannot take a quote in a value."""
    unknown = set(values) - set(RUN_CONFIG_DEFAULTS)
    if unknown:
        raise ValueError(f"not run config keys of the app: {sorted(unknown)}")
    return "".join(f"{key} = {_toml(value)}\n" for key, value in values.items())


def registered_nodes(path: Path) -> dict[int, str]:
    """Each registered node's site (none when nothing was registered yet)."""
    if not path.is_file():
        return {}
    if path.stat().st_size > MAX_NODES_BYTES:
        raise ValueError(f"{path}: too large for a node list")
    found = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(found, dict):
        raise ValueError(f"{path}: not a node list")
    return {int(node): str(site) for node, site in found.items()}


def record_node(path: Path, node_id: int, site_id: str) -> None:
    """Remember that ``node_id`` is ``site_id``'s node (replaced atomically)."""
    nodes = registered_nodes(path)
    nodes[node_id] = site_id
    _write_nodes(path, nodes)


def forget_node(path: Path, node_id: int) -> None:
    """``node_id`` is no site's node any more (replaced atomically)."""
    nodes = registered_nodes(path)
    nodes.pop(node_id, None)
    _write_nodes(path, nodes)


def _write_nodes(path: Path, nodes: dict[int, str]) -> None:
    staged = path.with_name(path.name + ".new")
    staged.write_text(
        json.dumps({str(node): site for node, site in sorted(nodes.items())}, indent=1),
        encoding="utf-8",
    )
    staged.replace(path)


@dataclass(frozen=True)
class SuperLinkTls:
    """A SuperLink's certificate and key, and the CA that signed it."""

    certfile: Path
    keyfile: Path
    ca_certfile: Path


@dataclass(frozen=True)
class FlowerEnv:
    """Where Flower's executables are and where its state lives."""

    bin_dir: Path
    home: Path
    superlink: str  # host:port of the SuperLink's HTTP API
    ca_certfile: Path | None = None  # the SuperLink's CA for Flower's CLI; else the system's

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["FLWR_HOME"] = str(self.home)
        return env

    def prepare(self) -> Path:
        """Write the CLI's connection and the app folder; returns the app folder."""
        self.home.mkdir(parents=True, exist_ok=True)
        trust = (
            f"root-certificates = {_toml(str(self.ca_certfile.absolute()))}\n"
            if self.ca_certfile
            else ""
        )
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "{self.superlink}"\n{trust}',
            encoding="utf-8",
        )
        app = self.home / "lan-guard-app"
        app.mkdir(exist_ok=True)
        (app / "pyproject.toml").write_text(app_pyproject(), encoding="utf-8")
        return app

    def superlink_command(self, tls: SuperLinkTls) -> list[str]:
        host, _, port = self.superlink.rpartition(":")
        return [
            str(self.bin_dir / "flower-superlink"),
            "--ssl-certfile",
            str(tls.certfile),
            "--ssl-keyfile",
            str(tls.keyfile),
            "--ssl-ca-certfile",
            str(tls.ca_certfile),
            "--enable-supernode-auth",
            "--host",
            host,
            "--port",
            port,
            "--database",
            str(self.home / "superlink.db"),
            "--disable-runtime-dependency-installation",
        ]

    @property
    def nodes(self) -> Path:
        return self.home / NODES_FILE

    def register_command(self, public_key: Path, name: str) -> list[str]:
        """``flwr supernode register``: the SuperLink admits the node with this public key
        (its answer in JSON: the node id, or why not)."""
        return [
            str(self.bin_dir / "flwr"),
            "supernode",
            "register",
            str(public_key),
            CONNECTION,
            "--name",
            name,
            "--format",
            "json",
        ]

    def unregister_command(self, node_id: int) -> list[str]:
        """``flwr supernode unregister``: the SuperLink refuses the node from now on."""
        return [
            str(self.bin_dir / "flwr"),
            "supernode",
            "unregister",
            str(node_id),
            CONNECTION,
            "--format",
            "json",
        ]

    def run_command(self, app: Path, values: Mapping[str, str | int | float | bool]) -> list[str]:
        """``flwr run`` of the app with ``values`` (written to the run's config file)."""
        config = self.home / "run-config.toml"
        config.write_text(run_config(values), encoding="utf-8")
        return [
            str(self.bin_dir / "flwr"),
            "run",
            str(app),
            CONNECTION,
            "--run-config",
            str(config),
            "--stream",
        ]
