"""Configuration: a TOML file, then ``LAN_GUARD_...`` environment variables, then CLI flags.

Later sources win. Everything is validated once, with voluptuous, against one schema; an
invalid value is refused with a message naming the key and the reason, e.g.
``detectors.arp_scan.min_targets: value must be at least 2``. Unknown keys are refused too
(a typo must not silently fall back to a default). The defaults and why each was chosen are
documented next to the settings they feed (``detectors/*``, ``incidents``, ``hosts``).

Environment variables are the upper-cased key path joined with ``_``:
``LAN_GUARD_MQTT_HOST``, ``LAN_GUARD_DETECTORS_ARP_SCAN_MIN_TARGETS``, ``LAN_GUARD_DECOYS_PORTS``
(lists as comma-separated values).
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network, ip_address
from pathlib import Path
from typing import Any

import voluptuous as vol

from .contract import DEFAULT_TOPIC_PREFIX
from .detectors.arp_scan import ArpScanConfig
from .detectors.arp_spoof import ArpSpoofConfig
from .detectors.cache_exhaustion import CacheExhaustionConfig
from .detectors.dhcp import DhcpConfig
from .detectors.echonet import EchonetConfig
from .detectors.flood import FloodConfig
from .detectors.ipv6 import Ipv6Config
from .detectors.port_scan import PortProbeConfig
from .detectors.session import SessionConfig
from .detectors.slow_sweep import SlowSweepConfig
from .detectors.spray import SprayConfig
from .detectors.syn_scan import SynScanConfig
from .enforcer import DEFAULT_ALLOWED_SERVICES, EnforcerSettings
from .formats import addr_bytes, addr_str, ip_bytes, ip_str, mac_bytes
from .hosts import HostsConfig
from .incidents import IncidentConfig
from .outbox import DEFAULT_KEEP_ROWS, DEFAULT_KEEP_S, DEFAULT_MAX_ROWS
from .pipeline import DEFAULT_DECOY_PORTS, PipelineConfig

ENV_PREFIX = "LAN_GUARD_"
log = logging.getLogger(__name__)


class ConfigError(Exception):
    """Invalid configuration; the message names the key and the reason."""


# --- validators ----------------------------------------------------------------------------


def _ipv4(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        ip_bytes(str(value))
    except ValueError as exc:
        raise vol.Invalid(f"{value!r} is not an IPv4 address") from exc
    return str(value)


def _ipv6(value: Any) -> str:
    text = str(value)
    try:
        raw = addr_bytes(text)
    except ValueError as exc:
        raise vol.Invalid(f"{value!r} is not an IPv6 address") from exc
    if len(raw) != 16:
        raise vol.Invalid(f"{value!r} is not an IPv6 address")
    return addr_str(raw)


def _mac(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return mac_bytes(str(value)).hex(":")
    except ValueError as exc:
        raise vol.Invalid(f"{value!r} is not a MAC address (aa:bb:cc:dd:ee:ff)") from exc


def _subnet(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return str(IPv4Network(str(value), strict=False))
    except ValueError as exc:
        raise vol.Invalid(f"{value!r} is not an IPv4 network (e.g. 192.168.1.0/24)") from exc


def _list(item: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    """A list (TOML) or a comma-separated string (environment, flags)."""

    def validate(value: Any) -> list[Any]:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            raise vol.Invalid("expected a list")
        return [item(v) for v in value]

    return validate


def _int(low: int, high: int | None = None) -> vol.All:
    return vol.All(vol.Coerce(int), vol.Range(min=low, max=high))


def _seconds(low: float = 0.1) -> vol.All:
    return vol.All(vol.Coerce(float), vol.Range(min=low))


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``None`` passes; anything else must pass ``check`` (whose message is kept)."""

    def validate(value: Any) -> Any:
        return None if value is None else check(value)

    return validate


_PORT = _int(1, 65535)
_TEXT = _optional(vol.All(vol.Coerce(str), vol.Length(max=4096)))
_BOOL = vol.Boolean()


def _port(value: Any) -> int:
    result: int = _PORT(value)
    return result


def _section(fields: Mapping[str, tuple[Any, Any]]) -> dict[Any, Any]:
    """{key: (default, validator)} -> voluptuous mapping with defaults."""
    return {vol.Optional(key, default=default): check for key, (default, check) in fields.items()}


_ARP = ArpScanConfig()
_SYN = SynScanConfig()
_SESSION = SessionConfig()
_FLOOD = FloodConfig()
_SPOOF = ArpSpoofConfig()
_SPRAY = SprayConfig()
_INCIDENTS = IncidentConfig()
_HOSTS = HostsConfig()
_PROBE = PortProbeConfig()
_SLOW = SlowSweepConfig()
_IPV6 = Ipv6Config()
_DHCP = DhcpConfig()
_EXHAUSTION = CacheExhaustionConfig()
_ECHONET = EchonetConfig()

SECTIONS: dict[str, dict[str, tuple[Any, Any]]] = {
    "": {
        "agent_id": (
            None,
            _optional(vol.Match(r"^[A-Za-z0-9_-]{1,64}$", msg="must be 1-64 of A-Z a-z 0-9 _ -")),
        ),
        "log_level": ("INFO", vol.All(vol.Upper, vol.In(["DEBUG", "INFO", "WARNING", "ERROR"]))),
        "events_jsonl": (None, _TEXT),
        "stdout": (True, _BOOL),
    },
    "network": {
        "interface": (None, _TEXT),
        "node_ip": (None, _ipv4),
        "node_mac": (None, _mac),
        "gateway_ip": (None, _ipv4),
        "gateway_mac": (None, _mac),
        # None: the interface's IPv6 addresses (run); [] watches no IPv6 address of the node
        "node_ip6": (None, _optional(vol.All(_list(_ipv6), vol.Length(max=16)))),
        "subnet": (None, _subnet),
    },
    "capture": {
        "snaplen": (512, _int(64, 65535)),
        "bpf_filter": ("", vol.All(vol.Coerce(str), vol.Length(max=1024))),
        "promiscuous": (False, _BOOL),
        "buffer_mb": (8, _int(1, 512)),
    },
    "decoys": {
        "enabled": (True, _BOOL),
        "ports": (list(DEFAULT_DECOY_PORTS), vol.All(_list(_port), vol.Length(max=64))),
        "bind": (None, _ipv4),  # None: the node's IP (0.0.0.0 would include a router's WAN)
        "max_bytes": (4096, _int(1, 1 << 20)),
        "timeout_s": (5.0, _seconds()),
        "idle_s": (0.5, _seconds(0.05)),
        "max_connections": (64, _int(1, 4096)),
        "echonet": (True, _BOOL),
    },
    "detectors.arp_scan": {
        "min_targets": (_ARP.min_targets, _int(2)),
        "window_s": (_ARP.window_s, _seconds()),
        "max_sources": (_ARP.max_sources, _int(1)),
    },
    "detectors.syn_scan": {
        "min_ports": (_SYN.min_ports, _int(2)),
        "window_s": (_SYN.window_s, _seconds()),
        "max_sources": (_SYN.max_sources, _int(1)),
    },
    "detectors.stealth_scan": {
        "min_ports": (_PROBE.min_ports, _int(2)),
        "window_s": (_PROBE.window_s, _seconds()),
        "max_sources": (_PROBE.max_sources, _int(1)),
    },
    "detectors.udp_scan": {
        "min_ports": (_PROBE.min_ports, _int(2)),
        "window_s": (_PROBE.window_s, _seconds()),
        "max_sources": (_PROBE.max_sources, _int(1)),
    },
    "detectors.slow_sweep": {
        "horizon_s": (_SLOW.horizon_s, _seconds(10)),
        "min_dark_targets": (_SLOW.min_dark_targets, _int(2, 400)),
        "min_ports": (_SLOW.min_ports, _int(2, 400)),
        "max_sources": (_SLOW.max_sources, _int(1)),
    },
    "detectors.ipv6": {
        "min_targets": (_IPV6.min_targets, _int(2)),
        "window_s": (_IPV6.window_s, _seconds()),
        "hold_s": (_IPV6.hold_s, _seconds()),
        "max_sources": (_IPV6.max_sources, _int(1)),
    },
    "detectors.dhcp": {
        "min_clients_per_sender": (_DHCP.min_clients_per_sender, _int(2)),
        "min_new_clients": (_DHCP.min_new_clients, _int(2)),
        "window_s": (_DHCP.window_s, _seconds()),
        "servers": ([], vol.All(_list(_mac), vol.Length(max=16))),
        "probe_interval_s": (_DHCP.probe_interval_s, vol.Any(0, _seconds(10))),
    },
    "detectors.cache_exhaustion": {
        "min_addresses": (_EXHAUSTION.min_addresses, _int(2)),
        "window_s": (_EXHAUSTION.window_s, _seconds()),
        "max_sources": (_EXHAUSTION.max_sources, _int(1)),
    },
    "detectors.echonet": {
        "min_objects": (_ECHONET.min_objects, _int(2)),
        "window_s": (_ECHONET.window_s, _seconds()),
        "learn_s": (_ECHONET.learn_s, _seconds(0)),
    },
    "detectors.session": {
        "sample_bytes": (_SESSION.sample_bytes, _int(0, 256)),
        "max_sources": (_SESSION.max_sources, _int(1)),
    },
    "detectors.flood": {
        "source_fps": (_FLOOD.source_fps, _int(10)),
        "total_fps": (_FLOOD.total_fps, _int(10)),
        "max_sources": (_FLOOD.max_sources, _int(1)),
    },
    "detectors.arp_spoof": {
        "hold_s": (_SPOOF.hold_s, _seconds()),
    },
    "detectors.arp_spray": {
        "min_addresses": (_SPRAY.min_addresses, _int(2)),
        "window_s": (_SPRAY.window_s, _seconds()),
        "max_sources": (_SPRAY.max_sources, _int(1)),
    },
    "detectors.source_spray": {
        "min_addresses": (_SPRAY.min_addresses, _int(2)),
        "window_s": (_SPRAY.window_s, _seconds()),
        "max_sources": (_SPRAY.max_sources, _int(1)),
    },
    "incidents": {
        "update_interval_s": (_INCIDENTS.update_interval_s, _seconds(0)),
        "close_after_s": (_INCIDENTS.close_after_s, _seconds(1)),
    },
    "hosts": {
        "left_after_s": (_HOSTS.left_after_s, _seconds(1)),
        "max_hosts": (_HOSTS.max_hosts, _int(1)),
        "probe": (True, _BOOL),
    },
    "mqtt": {
        "host": (None, _TEXT),
        "port": (1883, _PORT),
        "username": (None, _TEXT),
        "password": (None, _TEXT),
        "tls": (False, _BOOL),
        "tls_ca": (None, _TEXT),
        "tls_cert": (None, _TEXT),
        "tls_key": (None, _TEXT),
        "tls_insecure": (False, _BOOL),
        "topic_prefix": (DEFAULT_TOPIC_PREFIX, vol.All(str, vol.Match(r"^[^#+\x00]+$"))),
        "shared_key": (
            None,
            _optional(vol.All(str, vol.Length(min=16, msg="use at least 16 characters"))),
        ),
        "outbox_path": (None, _TEXT),
        "outbox_max": (DEFAULT_MAX_ROWS, _int(1)),
        "replay_events": (DEFAULT_KEEP_ROWS, _int(0)),
        "replay_age_s": (DEFAULT_KEEP_S, vol.All(vol.Coerce(float), vol.Range(min=0))),
        # Commands signed in format 1 (no agent id, no topic): only for an integration or
        # service centre that is not upgraded yet.
        "accept_legacy_signatures": (False, _BOOL),
    },
    # Federated learning (``lan-guard-agent federate``): the provider's Flower SuperLink, and
    # the owner's labelled examples that the integration sends to this agent.
    "federation": {
        "superlink": (None, _optional(vol.Match(r"^[A-Za-z0-9.\-\[\]:]{1,255}:[0-9]{1,5}$"))),
        "root_certificates": (None, _TEXT),  # the SuperLink's CA (PEM); else the system's
        "insecure": (False, _BOOL),  # plain HTTP to the SuperLink: loopback tests only
        "site_id": (None, _optional(vol.Match(r"^[A-Za-z0-9_-]{1,64}$"))),
        "examples_path": (None, _TEXT),
        # The SuperNode's private key (OpenSSH, made if missing; ``.pub`` beside it).
        "auth_key_path": (None, _TEXT),
        "max_examples": (5_000, _int(1)),
        "max_age_days": (365.0, vol.All(vol.Coerce(float), vol.Range(min=1))),
        "min_examples": (10, _int(1)),
        "runtime_port": (9094, _PORT),  # the SuperNode's own API, on loopback
    },
    # Shapes here; the values (backend, family, allowlist entries, allowed_services) are
    # checked by sensor_agent.enforcer.EnforcerSettings, in _check_consistency().
    "enforcer": {
        "enabled": (False, _BOOL),
        "backend": (None, vol.Any(None, str)),  # "nftables" | "none"; enabled=true: nftables
        "family": ("inet", str),  # "inet" on the router, "bridge" on a bridge in the path
        "allowlist": ([], _list(str)),
        "allowed_services": (list(DEFAULT_ALLOWED_SERVICES), _list(str)),
    },
}


def _schema() -> vol.Schema:
    tree: dict[Any, Any] = {}
    for name, fields in SECTIONS.items():
        node = tree
        if name:
            for part in name.split("."):
                key = vol.Optional(part, default={})
                node = node.setdefault(key, {})
        node.update(_section(fields))
    return vol.Schema(tree)


def env_names() -> dict[str, tuple[str, ...]]:
    """``LAN_GUARD_MQTT_HOST`` -> ("mqtt", "host"), for every known key."""
    names = {}
    for section, fields in SECTIONS.items():
        path = tuple(section.split(".")) if section else ()
        for key in fields:
            full = (*path, key)
            names[ENV_PREFIX + "_".join(full).upper()] = full
    return names


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
    tree[path[-1]] = value


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_raw(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, ...], Any] | None = None,
) -> dict[str, Any]:
    """File, then environment, then flags, validated; raises :class:`ConfigError`."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    environ = os.environ if environ is None else environ
    from_env: dict[str, Any] = {}
    for name, key_path in env_names().items():
        if name in environ:
            _set(from_env, key_path, environ[name])
    for name in sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in env_names()):
        log.warning("%s: not a configuration variable of the agent, ignored", name)
    from_flags: dict[str, Any] = {}
    for key_path, value in (overrides or {}).items():
        if value is not None:
            _set(from_flags, key_path, value)
    merged = _merge(_merge(raw, from_env), from_flags)
    try:
        validated: dict[str, Any] = _schema()(merged)
    except vol.MultipleInvalid as exc:
        raise ConfigError("; ".join(_describe(e) for e in exc.errors)) from exc
    _check_consistency(validated)
    return validated


def _describe(error: vol.Invalid) -> str:
    key = ".".join(str(p) for p in error.path) or "(top level)"
    message = error.error_message or str(error)
    if message == "extra keys not allowed":
        message = "unknown key"
    return f"{key}: {message}"


def _check_consistency(raw: dict[str, Any]) -> None:
    mqtt = raw["mqtt"]
    if mqtt["password"] is not None and mqtt["username"] is None:
        raise ConfigError("mqtt.password: set without mqtt.username")
    if (mqtt["tls_cert"] is None) != (mqtt["tls_key"] is None):
        raise ConfigError("mqtt.tls_cert: a client certificate needs both tls_cert and tls_key")
    if len(set(raw["decoys"]["ports"])) != len(raw["decoys"]["ports"]):
        raise ConfigError("decoys.ports: a port is listed twice")
    net = raw["network"]
    node_ip, subnet = net["node_ip"], net["subnet"]
    if subnet and node_ip and ip_address(node_ip) not in IPv4Network(subnet):
        raise ConfigError(f"network.subnet: the node's IP {node_ip} is not in {subnet}")
    try:
        enforcer = EnforcerSettings.from_config(raw)
    except ValueError as exc:
        raise ConfigError(f"enforcer: {exc}") from exc
    if enforcer.kind == "nftables" and mqtt["shared_key"] is None:
        # unsigned commands would let anyone on the broker change the firewall
        raise ConfigError(
            "enforcer.backend: 'nftables' needs mqtt.shared_key (commands must be signed)"
        )


# --- typed view ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DecoyConfig:
    enabled: bool = True
    ports: tuple[int, ...] = DEFAULT_DECOY_PORTS
    # None: the capture interface's address (filled in by ``with_network``). Never 0.0.0.0
    # by default: on a router that would put the decoys on the WAN too.
    bind: str | None = None
    # Read at most 4096 bytes per connection: enough for a sample, bounded for a flood.
    max_bytes: int = 4096
    # A connection is closed after 5 s, or 0.5 s after its last data (we speak no protocol).
    timeout_s: float = 5.0
    idle_s: float = 0.5
    max_connections: int = 64
    # The decoy ECHONET Lite node (UDP 3610 on the node's IPv4 address and the group).
    echonet: bool = True
    # The node's global IPv6 addresses the TCP decoys also listen on (filled in by
    # ``with_network``); link-local ones need a scope and are left out.
    bind6: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaptureConfig:
    # 512 bytes per frame: every header, DHCP options and mDNS answers, a payload sample.
    snaplen: int = 512
    bpf_filter: str = ""
    promiscuous: bool = False
    # 8 MB of kernel buffer (the PACKET_MMAP ring): about 0.5 s of a 60,000 frames/s flood
    # while the agent is busy elsewhere (a tick, a publish), at 8 MB of memory.
    buffer_mb: int = 8


@dataclass(frozen=True)
class AgentConfig:
    raw: dict[str, Any]
    agent_id: str
    interface: str | None
    log_level: str
    events_jsonl: Path | None
    stdout: bool
    capture: CaptureConfig
    decoys: DecoyConfig
    probe_hosts: bool
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def with_network(
        self,
        node_ip: bytes | None,
        node_mac: bytes | None,
        gateway_ip: bytes | None,
        subnet: IPv4Network | None = None,
        node_ip6: tuple[bytes, ...] = (),
    ) -> AgentConfig:
        """Fill in what the live interface tells (values from the config still win)."""
        p = self.pipeline
        interface_ip = node_ip or p.node_ip
        decoys = self.decoys
        if decoys.bind is None and interface_ip is not None:
            decoys = replace(decoys, bind=ip_str(interface_ip))
        configured = self.raw["network"]["node_ip6"] is not None
        ip6 = p.node_ip6 if configured else node_ip6
        if not decoys.bind6:
            global_ip6 = tuple(addr_str(a) for a in ip6 if a[:2] != b"\xfe\x80")
            decoys = replace(decoys, bind6=global_ip6)
        pipeline = PipelineConfig(
            **{
                **{f: getattr(p, f) for f in p.__dataclass_fields__},
                "node_ip": p.node_ip or node_ip,
                "node_mac": p.node_mac or node_mac,
                "gateway_ip": p.gateway_ip or gateway_ip,
                "node_ip6": ip6,
                "subnet": p.subnet or subnet,
            }
        )
        return AgentConfig(
            self.raw,
            self.agent_id,
            self.interface,
            self.log_level,
            self.events_jsonl,
            self.stdout,
            self.capture,
            decoys,
            self.probe_hosts,
            pipeline,
        )


def load(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, ...], Any] | None = None,
    default_agent_id: str = "lan_guard_agent",
) -> AgentConfig:
    """The validated, typed configuration; raises :class:`ConfigError`."""
    raw = load_raw(path, environ, overrides)
    net = raw["network"]
    det = raw["detectors"]
    decoys = raw["decoys"]
    agent_id = raw["agent_id"] or default_agent_id

    def opt(value: str | None, convert: Callable[[str], bytes]) -> bytes | None:
        return convert(value) if value else None

    pipeline = PipelineConfig(
        agent_id=agent_id,
        node_ip=opt(net["node_ip"], ip_bytes),
        node_mac=opt(net["node_mac"], mac_bytes),
        gateway_ip=opt(net["gateway_ip"], ip_bytes),
        gateway_mac=opt(net["gateway_mac"], mac_bytes),
        node_ip6=tuple(addr_bytes(a) for a in net["node_ip6"] or ()),
        subnet=IPv4Network(net["subnet"]) if net["subnet"] else None,
        decoy_ports=tuple(decoys["ports"]),
        arp_scan=ArpScanConfig(**det["arp_scan"]),
        syn_scan=SynScanConfig(**det["syn_scan"]),
        session=SessionConfig(**det["session"]),
        flood=FloodConfig(**det["flood"]),
        arp_spoof=ArpSpoofConfig(**det["arp_spoof"]),
        stealth_scan=PortProbeConfig(**det["stealth_scan"]),
        udp_scan=PortProbeConfig(**det["udp_scan"]),
        slow_sweep=SlowSweepConfig(**det["slow_sweep"]),
        ipv6=Ipv6Config(**det["ipv6"]),
        dhcp=DhcpConfig(
            min_clients_per_sender=det["dhcp"]["min_clients_per_sender"],
            min_new_clients=det["dhcp"]["min_new_clients"],
            window_s=det["dhcp"]["window_s"],
            servers=tuple(mac_bytes(m) for m in det["dhcp"]["servers"]),
            probe_interval_s=float(det["dhcp"]["probe_interval_s"]),
        ),
        cache_exhaustion=CacheExhaustionConfig(**det["cache_exhaustion"]),
        echonet=EchonetConfig(**det["echonet"]),
        arp_spray=SprayConfig(**det["arp_spray"]),
        source_spray=SprayConfig(**det["source_spray"]),
        incidents=IncidentConfig(**raw["incidents"]),
        hosts=HostsConfig(
            left_after_s=raw["hosts"]["left_after_s"], max_hosts=raw["hosts"]["max_hosts"]
        ),
    )
    return AgentConfig(
        raw=raw,
        agent_id=agent_id,
        interface=net["interface"],
        log_level=raw["log_level"],
        events_jsonl=Path(raw["events_jsonl"]) if raw["events_jsonl"] else None,
        stdout=raw["stdout"],
        capture=CaptureConfig(**raw["capture"]),
        decoys=DecoyConfig(
            enabled=decoys["enabled"],
            ports=tuple(decoys["ports"]),
            bind=decoys["bind"],
            max_bytes=decoys["max_bytes"],
            timeout_s=decoys["timeout_s"],
            idle_s=decoys["idle_s"],
            max_connections=decoys["max_connections"],
            echonet=decoys["echonet"],
        ),
        probe_hosts=raw["hosts"]["probe"],
        pipeline=pipeline,
    )


def mqtt_settings(config: AgentConfig) -> Any:
    """``MqttSettings`` for ``sensor_agent.sinks.mqtt`` (``None`` when no broker is set).

    Imported lazily: replay and the demo need no paho. Raises :class:`ConfigError`.
    """
    mqtt = config.raw["mqtt"]
    if not mqtt["host"]:
        return None
    from .sinks.mqtt import MqttSettings, TlsSettings  # noqa: PLC0415 - paho only when needed

    tls = None
    if mqtt["tls"] or mqtt["tls_ca"] or mqtt["tls_cert"]:
        tls = TlsSettings(
            ca_file=mqtt["tls_ca"],
            cert_file=mqtt["tls_cert"],
            key_file=mqtt["tls_key"],
            insecure=mqtt["tls_insecure"],
        )
    extra = {"outbox_path": mqtt["outbox_path"]} if mqtt["outbox_path"] else {}
    try:
        return MqttSettings(
            host=mqtt["host"],
            port=mqtt["port"],
            username=mqtt["username"],
            password=mqtt["password"],
            tls=tls,
            topic_prefix=mqtt["topic_prefix"],
            agent_id=config.agent_id,
            shared_key=mqtt["shared_key"],
            outbox_max=mqtt["outbox_max"],
            replay_events=mqtt["replay_events"],
            replay_age_s=mqtt["replay_age_s"],
            **extra,
        )
    except ValueError as exc:
        raise ConfigError(f"mqtt: {exc}") from exc
