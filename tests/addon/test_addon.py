"""The Home Assistant add-on of the agent (``addon/lan_guard_agent``) and ``repository.yaml``.

The Supervisor validates an add-on's ``config.yaml`` with its own voluptuous schema
(``supervisor/apps/validate.py``, options grammar in ``supervisor/apps/options.py``). This
module checks the same rules, for the fields this add-on uses, written here from reading
them; the Dockerfile is linted for its structure. Where Docker works (``docker info``) the
image is built from a local copy of the agent and started; elsewhere that test is skipped
and says why. The launcher runs for real against a local stand-in for the Supervisor's
services API and hands its mapping to the real agent's ``check-config``.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import tarfile
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
import yaml

ROOT = Path(__file__).resolve().parents[2]
ADDON = ROOT / "addon" / "lan_guard_agent"
LAUNCHER = ADDON / "rootfs" / "usr" / "bin" / "lan_guard_addon.py"
AGENT_CLI = Path(sys.executable).with_name("lan-guard-agent")

# --- the Supervisor's rules (as of its 2026 releases) for the fields this add-on uses -------
ARCHES = ["aarch64", "amd64"]  # armhf, armv7 and i386 are deprecated
CAPABILITIES = [
    "BPF", "CHECKPOINT_RESTORE", "DAC_READ_SEARCH", "IPC_LOCK", "NET_ADMIN", "NET_RAW",
    "PERFMON", "SYS_ADMIN", "SYS_MODULE", "SYS_NICE", "SYS_PTRACE", "SYS_RAWIO",
    "SYS_RESOURCE", "SYS_TIME",
]  # fmt: skip
SLUG = r"^[-_.A-Za-z0-9]+$"
SERVICE = r"^(mqtt|mysql):(provide|want|need)$"
# One option's type: bool, email, url, port, str/password/int/float with optional bounds,
# match(regex), list(a|b|c); a trailing "?" makes it optional.
ELEMENT = re.compile(
    r"^(?:bool|email|url|port|device(?:\(subsystem=[a-z]+\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>-?\d+)?,(?P<i_max>-?\d+)?\))?"
    r"|float(?:\((?P<f_min>-?\d*\.?\d+)?,(?P<f_max>-?\d*\.?\d+)?\))?"
    r"|match\((?P<match>.*)\)|list\((?P<list>.+)\))\??$"
)


def _element(value: Any) -> Any:
    if isinstance(value, str) and ELEMENT.match(value):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str | dict):
        return [_element(value[0])]
    if isinstance(value, dict):
        return {str(key): _element(item) for key, item in value.items()}
    raise vol.Invalid(f"not an option type: {value!r}")


ADDON_CONFIG = vol.Schema(
    {
        vol.Required("name"): str,
        vol.Required("version"): vol.All(str, vol.Match(r"^\d+\.\d+\.\d+$")),
        vol.Required("slug"): vol.Match(SLUG),
        vol.Required("description"): str,
        vol.Required("arch"): [vol.In(ARCHES)],
        vol.Optional("url"): vol.Url(),
        vol.Optional("startup"): vol.In(
            ["initialize", "system", "services", "application", "once"]
        ),
        vol.Optional("boot"): vol.In(["auto", "manual", "manual_only"]),
        vol.Optional("init"): bool,
        vol.Optional("host_network"): bool,
        vol.Optional("privileged"): [vol.In(CAPABILITIES)],
        vol.Optional("services"): [vol.Match(SERVICE)],
        vol.Optional("options"): dict,
        vol.Optional("schema"): vol.Any({str: _element}, False),
    },
    extra=vol.PREVENT_EXTRA,  # stricter than the Supervisor: a typo'd key fails here
)
TRANSLATION = vol.Schema(
    {
        vol.Required("configuration"): {
            str: {vol.Required("name"): str, vol.Optional("description"): vol.Maybe(str)}
        },
        vol.Optional("network"): {str: str},
    }
)
REPOSITORY = vol.Schema(
    {vol.Required("name"): str, vol.Optional("url"): vol.Url(), vol.Optional("maintainer"): str}
)


def option_validator(element: Any) -> Any:
    """A validator for option values of one schema element (the Supervisor's meaning)."""
    if isinstance(element, list):
        return [option_validator(element[0])]
    if isinstance(element, dict):
        return vol.Schema({key: option_validator(item) for key, item in element.items()})
    match = ELEMENT.match(element)
    assert match is not None
    kind = element.rstrip("?").split("(")[0]
    if kind == "bool":
        return bool
    if kind == "port":
        return vol.All(int, vol.Range(min=1, max=65535))
    if kind in ("str", "password"):
        low, high = (
            match.group("s_min") or match.group("p_min"),
            match.group("s_max") or match.group("p_max"),
        )
        return vol.All(
            str, vol.Length(min=int(low) if low else None, max=int(high) if high else None)
        )
    if kind == "match":
        return vol.All(str, vol.Match(f"^(?:{match.group('match')})$"))
    if kind == "list":
        return vol.In(match.group("list").split("|"))
    raise AssertionError(f"this test does not know {element!r}")


def options_schema(schema: dict[str, Any]) -> vol.Schema:
    """Options as the Supervisor accepts them: required unless the type ends in '?'."""
    fields = {}
    for key, element in schema.items():
        optional = isinstance(element, str) and element.endswith("?")
        marker = vol.Optional(key) if optional else vol.Required(key)
        fields[marker] = option_validator(element)
    return vol.Schema(fields)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data: dict[str, Any] = load(ADDON / "config.yaml")
    return data


# --- config.yaml, translations, repository.yaml ---------------------------------------------


def test_config_follows_the_supervisors_schema(config: dict[str, Any]) -> None:
    ADDON_CONFIG(config)
    assert config["slug"] == ADDON.name
    assert config["host_network"] is True  # it watches the LAN itself
    assert set(config["privileged"]) == {"NET_RAW", "NET_ADMIN"}
    assert config["services"] == ["mqtt:need"]


def test_the_default_options_are_valid_options(config: dict[str, Any]) -> None:
    schema = options_schema(config["schema"])
    schema(config["options"])
    with pytest.raises(vol.Invalid):
        schema({**config["options"], "enforcer": "iptables"})
    with pytest.raises(vol.Invalid):
        schema({**config["options"], "shared_key": "too short"})
    with pytest.raises(vol.Invalid):
        schema({**config["options"], "decoy_ports": [70000]})


def test_versions_agree(config: dict[str, Any]) -> None:
    """The add-on installs the agent of its own version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    version = project["project"]["version"]
    assert config["version"] == version
    dockerfile = (ADDON / "Dockerfile").read_text(encoding="utf-8")
    assert f"/v{version}.tar.gz" in dockerfile
    assert f'io.hass.version="{version}"' in dockerfile


@pytest.mark.parametrize("language", ["en", "ja"])
def test_translations_name_every_option(config: dict[str, Any], language: str) -> None:
    translation = TRANSLATION(load(ADDON / "translations" / f"{language}.yaml"))
    assert set(translation["configuration"]) == set(config["schema"])
    for field in translation["configuration"].values():
        assert field["name"] and field["description"]


def test_repository_file() -> None:
    repository = REPOSITORY(load(ROOT / "repository.yaml"))
    assert repository["name"] == "LAN Guard"


# --- the Dockerfile ------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = (ADDON / "Dockerfile").read_text(encoding="utf-8")
    logical = re.sub(r"\\\n", " ", text)
    result = []
    for line in logical.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            result.append((instruction.upper(), arguments.strip()))
    return result


def test_dockerfile_structure() -> None:
    instructions = dockerfile_instructions()
    names = [name for name, _ in instructions]
    allowed = {"ARG", "FROM", "RUN", "COPY", "ENV", "LABEL", "CMD", "WORKDIR"}
    assert set(names) <= allowed, set(names) - allowed
    # The base image comes from BUILD_FROM (the Supervisor may pass one), pinned by default.
    assert instructions[0][0] == "ARG" and instructions[0][1].startswith("BUILD_FROM=")
    base = instructions[0][1].removeprefix("BUILD_FROM=")
    assert re.fullmatch(r"ghcr\.io/home-assistant/[a-z-]+:[\w.-]+", base) and "latest" not in base
    assert instructions[1] == ("FROM", "${BUILD_FROM}")
    assert names.count("FROM") == 1 and names.count("CMD") == 1
    assert ("COPY", "rootfs /") in instructions
    # CMD in exec form, naming the launcher that rootfs/ installs, executable.
    command = json.loads(dict(instructions)["CMD"])
    assert command == ["/usr/bin/lan_guard_addon.py"]
    assert (ADDON / "rootfs" / command[0].lstrip("/")).exists()
    assert os.access(LAUNCHER, os.X_OK)
    assert LAUNCHER.read_text(encoding="utf-8").startswith("#!/usr/bin/env python3\n")
    assert any(name == "RUN" and "pip install" in args for name, args in instructions)


# --- the launcher --------------------------------------------------------------------------


class FakeSupervisor(BaseHTTPRequestHandler):
    """The Supervisor's services API as an add-on sees it (only on 127.0.0.1)."""

    token = "addon-token"
    service: dict[str, Any] | None = {
        "host": "core-mosquitto",
        "port": 1883,
        "ssl": False,
        "protocol": "3.1.1",
        "username": "addons",
        "password": "generated-by-mosquitto",
        "app": "core_mosquitto",
    }

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self._answer(401, {"result": "error", "message": "Unauthorized"})
        elif self.path != "/services/mqtt" or self.service is None:
            self._answer(400, {"result": "error", "message": "Service not enabled"})
        else:
            self._answer(200, {"result": "ok", "data": self.service})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def supervisor() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), FakeSupervisor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def launch(
    tmp_path: Path, supervisor: str, options: dict[str, Any], token: str = FakeSupervisor.token
) -> subprocess.CompletedProcess[str]:
    """The launcher with the agent's check-config as the command (prints what it resolved)."""
    (tmp_path / "options.json").write_text(json.dumps(options), encoding="utf-8")
    env = {
        "PATH": f"{AGENT_CLI.parent}{os.pathsep}{os.environ['PATH']}",
        "SUPERVISOR_TOKEN": token,
        "LAN_GUARD_ADDON_OPTIONS": str(tmp_path / "options.json"),
        "LAN_GUARD_ADDON_SUPERVISOR": supervisor,
    }
    return subprocess.run(
        [sys.executable, str(LAUNCHER), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_the_launcher_hands_options_and_the_brokers_credentials_to_the_agent(
    config: dict[str, Any], supervisor: str, tmp_path: Path
) -> None:
    options = {
        **config["options"],
        "interface": "eth0",
        "agent_id": "ha-green",
        "shared_key": "a-shared-key-of-20-chars",
        "decoy_ports": [445, 139],
        "enforcer": "nftables",
        "enforcer_allowlist": ["192.168.1.10"],
    }
    done = launch(tmp_path, supervisor, options)
    assert done.returncode == 0, done.stderr
    resolved = json.loads(done.stdout)
    assert resolved["agent_id"] == "ha-green"
    assert resolved["network"]["interface"] == "eth0"
    mqtt = resolved["mqtt"]
    assert (mqtt["host"], mqtt["port"], mqtt["username"]) == ("core-mosquitto", 1883, "addons")
    assert mqtt["password"] == "***" and mqtt["shared_key"] == "***"  # set, and never printed
    assert mqtt["outbox_path"] == "/data/outbox.sqlite"
    assert resolved["decoys"]["ports"] == [445, 139]
    assert resolved["enforcer"]["backend"] == "nftables"
    assert resolved["enforcer"]["allowlist"] == ["192.168.1.10"]
    assert resolved["stdout"] is False


def test_the_agents_own_check_refuses_what_the_options_cannot_express(
    config: dict[str, Any], supervisor: str, tmp_path: Path
) -> None:
    """nftables without a shared key: the agent refuses (exit 2) and says why in the log."""
    done = launch(tmp_path, supervisor, {**config["options"], "enforcer": "nftables"})
    assert done.returncode == 2
    assert "shared_key" in done.stderr


def test_without_a_broker_the_launcher_says_what_is_missing(
    config: dict[str, Any], supervisor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeSupervisor, "service", None)
    done = launch(tmp_path, supervisor, config["options"])
    assert done.returncode == 1
    assert "Mosquitto" in done.stderr
    bad_token = launch(tmp_path, supervisor, config["options"], token="wrong")
    assert bad_token.returncode == 1


def test_the_default_interface_is_the_default_routes(tmp_path: Path) -> None:
    launcher = runpy.run_path(str(LAUNCHER))  # not imported: no bytecode next to it
    routes = tmp_path / "route"
    routes.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
        "end0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
        "end0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\n",
        encoding="ascii",
    )
    assert launcher["default_interface"](routes) == "end0"
    assert launcher["default_interface"](tmp_path / "missing") is None


# --- a real build, where Docker works ---------------------------------------------------------


def docker_works() -> str | None:
    """None when ``docker info`` answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    done = subprocess.run(
        ["docker", "info"], capture_output=True, text=True, timeout=30, check=False
    )
    return None if done.returncode == 0 else f"docker info failed: {done.stderr.strip()[:200]}"


@pytest.mark.skipif(docker_works() is not None, reason=f"needs Docker: {docker_works()}")
def test_the_image_builds_and_the_agent_starts(tmp_path: Path) -> None:
    context = tmp_path / "context"
    shutil.copytree(ADDON, context)
    source = context / "rootfs" / "tmp" / "lan-guard-agent.tar.gz"
    source.parent.mkdir(parents=True)
    with tarfile.open(source, "w:gz") as archive:
        for name in ("pyproject.toml", "README.md", "sensor_agent"):
            archive.add(ROOT / name, arcname=f"lan-guard-agent/{name}")
    tag = "lan-guard-agent-addon:test"
    build_arg = "AGENT_SOURCE=/tmp/lan-guard-agent.tar.gz"  # where rootfs/ puts it
    subprocess.run(
        ["docker", "build", "--build-arg", build_arg, "-t", tag, str(context)],
        check=True,
        timeout=900,
    )
    done = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "lan-guard-agent", tag, "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "lan-guard-agent" in done.stdout
