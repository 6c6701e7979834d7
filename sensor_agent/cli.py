"""``lan-guard-agent``: run live, replay a capture, show the demo, check a config.

Exit codes: 0 success, 1 runtime failure (unreadable capture, interface, broker set-up),
2 usage or configuration error. Logs go to stderr; events (JSON lines) to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from . import __version__
from .capture import (
    ArpProber,
    CaptureOpenError,
    DhcpProber,
    LiveCapture,
    default_gateway,
    interface_addresses,
    interface_addresses6,
    interface_subnet,
    kernel_arp_lookup,
)
from .commands import CommandHandler, build_command_handler
from .config import AgentConfig, ConfigError, load, mqtt_settings
from .contract import BASE_CAPABILITIES, CAPABILITY_ENFORCER, CAPABILITY_SIGNING
from .enforcer import EnforcerSettings
from .formats import default_agent_id, ip_bytes, ip_str, mac_str
from .live import LiveAgent
from .pipeline import Pipeline, PipelineConfig, info_payload
from .replay import CaptureError, replay
from .sinks import Sink
from .sinks.jsonl import JsonlSink
from .sinks.stdout import StdoutSink
from .timeline import render

log = logging.getLogger("lan_guard_agent")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

# flag dest -> config key path
_FLAG_KEYS: dict[str, tuple[str, ...]] = {
    "agent_id": ("agent_id",),
    "log_level": ("log_level",),
    "events_jsonl": ("events_jsonl",),
    "interface": ("network", "interface"),
    "node_ip": ("network", "node_ip"),
    "node_mac": ("network", "node_mac"),
    "gateway_ip": ("network", "gateway_ip"),
    "gateway_mac": ("network", "gateway_mac"),
    "subnet": ("network", "subnet"),
    "decoy_ports": ("decoys", "ports"),
    "bpf_filter": ("capture", "bpf_filter"),
    "mqtt_host": ("mqtt", "host"),
    "mqtt_port": ("mqtt", "port"),
    "mqtt_username": ("mqtt", "username"),
    "mqtt_topic_prefix": ("mqtt", "topic_prefix"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lan-guard-agent",
        description="LAN Guard sensor agent: sees LAN reconnaissance (ARP scans, SYN scans of "
        "this node, sessions to its decoy ports, floods, ARP spoofing) and reports graded events.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", type=Path, help="TOML configuration file")
    common.add_argument("--log-level", help="DEBUG, INFO (default), WARNING or ERROR")
    common.add_argument("--agent-id", help="agent id in topics and events (default: host name)")
    common.add_argument("--events-jsonl", help="also append every event to this JSON-lines file")
    common.add_argument("--no-stdout", action="store_true", help="do not print events on stdout")
    net = argparse.ArgumentParser(add_help=False)
    net.add_argument("--node-ip", help="the monitoring node's IPv4 (live: from the interface)")
    net.add_argument("--node-mac", help="the monitoring node's MAC (live: from the interface)")
    net.add_argument("--gateway-ip", help="the LAN's gateway (live: from the routing table)")
    net.add_argument("--gateway-mac", help="pin the gateway's MAC for ARP-spoofing detection")
    net.add_argument(
        "--subnet", help="the LAN, e.g. 192.168.1.0/24 (live: from the interface's netmask)"
    )
    net.add_argument("--decoy-ports", help="comma-separated decoy TCP ports")
    mqtt = argparse.ArgumentParser(add_help=False)
    mqtt.add_argument("--mqtt-host", help="MQTT broker host (none: events on stdout only)")
    mqtt.add_argument("--mqtt-port", type=int, help="MQTT broker port (default 1883)")
    mqtt.add_argument("--mqtt-username", help="MQTT user (password: config or env only)")
    mqtt.add_argument("--mqtt-topic-prefix", help="topic prefix (default lan_guard)")

    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", parents=[common, net, mqtt], help="watch a live interface (root/CAP_NET_RAW)"
    )
    run.add_argument("-i", "--interface", help="interface to watch, e.g. eth0")
    run.add_argument("--bpf-filter", help="extra kernel BPF filter (tcpdump syntax)")
    replay = commands.add_parser(
        "replay", parents=[common, net, mqtt], help="push a pcap/pcapng file through the pipeline"
    )
    replay.add_argument("capture", type=Path, help="capture file (pcap or pcapng)")
    replay.add_argument(
        "--speed",
        type=float,
        help="replay at this multiple of the capture's own pace (1 = as recorded);"
        " default: as fast as possible",
    )
    replay.add_argument(
        "--stay",
        action="store_true",
        help="with a broker: after the capture, stay connected (online, answering commands"
        " and replays) until SIGTERM or SIGINT",
    )
    replay.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    demo = commands.add_parser(
        "demo", parents=[common], help="generate a ransomware-like capture and show the timeline"
    )
    demo.add_argument("--write-pcap", type=Path, help="keep the generated capture here")
    demo.add_argument("--json", action="store_true", help="also print the events as JSON lines")
    check = commands.add_parser(
        "check-config", parents=[common, net, mqtt], help="validate the configuration and print it"
    )
    check.add_argument("-i", "--interface")
    federate = commands.add_parser(
        "federate",
        parents=[common, mqtt],
        help="federated learning: keep the owner's labelled examples, run a Flower SuperNode",
    )
    federate.add_argument("--superlink", help="the provider's SuperLink, host:port")
    federate.add_argument("--site-id", help="this site's id at the provider")
    federate.add_argument(
        "--node-key",
        action="store_true",
        help="print this node's public key for the provider to register (made if missing), "
        "then exit",
    )
    generate = commands.add_parser(
        "generate",
        help="write a generated capture (demo, mixed benchmark, many sources, a stream of scans)",
    )
    generate.add_argument("kind", choices=["demo", "mixed", "many-sources", "scans"])
    generate.add_argument("output", type=Path)
    generate.add_argument(
        "--count",
        type=int,
        help="frames (mixed), sources (many-sources) or events (scans: each port of a SYN scan"
        " is an event with incidents.update_interval_s = 0)",
    )
    return parser


def _overrides(args: argparse.Namespace) -> dict[tuple[str, ...], Any]:
    found = {path: getattr(args, dest, None) for dest, path in _FLAG_KEYS.items()}
    if getattr(args, "no_stdout", False):
        found[("stdout",)] = False
    return found


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _load(args: argparse.Namespace) -> AgentConfig:
    return load(args.config, overrides=_overrides(args), default_agent_id=default_agent_id())


def _sinks(config: AgentConfig) -> list[Sink]:
    sinks: list[Sink] = []
    if config.stdout:
        sinks.append(StdoutSink())
    if config.events_jsonl is not None:
        try:
            sinks.append(JsonlSink(config.events_jsonl))
        except OSError as exc:
            raise ConfigError(f"events_jsonl: cannot open {config.events_jsonl}: {exc}") from exc
    return sinks


def _mqtt(config: AgentConfig, *, may_enforce: bool) -> tuple[Any, CommandHandler, list[str]]:
    """The MQTT sink, its command handler and the capabilities for ``info``; the event store
    is shared: the sink publishes from it, the handler's replays re-queue in it."""
    settings = mqtt_settings(config)
    from .redelivery import Redelivery  # noqa: PLC0415 - with the sink: paho only when needed
    from .sinks.mqtt import MqttSink  # noqa: PLC0415

    try:
        outbox = settings.open_outbox()
    except (ValueError, OSError) as exc:
        raise ConfigError(f"mqtt: {exc}") from exc
    handler, capabilities = _command_handler(
        config, may_enforce=may_enforce, replay=Redelivery(outbox)
    )
    try:
        return MqttSink(settings, command_handler=handler, outbox=outbox), handler, capabilities
    except (ValueError, OSError) as exc:
        outbox.close()
        raise ConfigError(f"mqtt: {exc}") from exc


def _close(sinks: Sequence[Sink]) -> None:
    for sink in sinks:
        try:
            sink.close()
        except Exception:
            log.exception("closing %s failed", type(sink).__name__)


def _command_handler(
    config: AgentConfig,
    *,
    may_enforce: bool,
    replay: Callable[[int, int | None], dict[str, Any]] | None = None,
) -> tuple[CommandHandler, list[str]]:
    """The MQTT command handler and the capabilities for ``info``. Built even without an
    enforcer (backend ``none``, or a replay, which never touches the firewall): commands are
    then refused with the reason, and the retained ``quarantine`` says ``enforcer: none``.
    ``replay`` re-publishes kept events (``Redelivery`` over the sink's event store).

    The gateway is the resolved one (``config.pipeline``: configured, else the default
    route's); a MAC not configured is looked up per command (see :func:`_wire_mqtt`)."""
    node = config.pipeline
    settings = dataclasses.replace(
        EnforcerSettings.from_config(config.raw),
        gateway_ip=ip_str(node.gateway_ip) if node.gateway_ip else None,
        gateway_mac=mac_str(node.gateway_mac) if node.gateway_mac else None,
    )
    if not may_enforce:
        settings = dataclasses.replace(settings, kind="none")
    key = config.raw["mqtt"]["shared_key"]
    handler = build_command_handler(
        settings,
        agent_id=config.agent_id,
        node_ips=[ip_str(node.node_ip)] if node.node_ip else [],
        node_macs=[mac_str(node.node_mac)] if node.node_mac else [],
        key=key.encode() if key else None,
        accept_legacy=config.raw["mqtt"]["accept_legacy_signatures"],
        replay=replay,
        subnet=node.subnet,
        learns=True,  # the lookups come with _wire_mqtt, once the pipeline exists
    )
    capabilities = list(BASE_CAPABILITIES)
    if handler.enforcer.kind != "none":  # not when nftables failed to start
        capabilities.append(CAPABILITY_ENFORCER)
    if key:
        capabilities.append(CAPABILITY_SIGNING)
    return handler, capabilities


def _wire_mqtt(
    mqtt: Any,
    handler: CommandHandler,
    pipeline: Pipeline,
    gateway_mac: Callable[[], bytes | None] | None = None,
) -> None:
    """Quarantine state on its retained topic (now and after each change); the sink's
    counters in the state payload; the handler's lookups of what the agent learns: the
    gateway's MAC (``gateway_mac``, default the pipeline's) and which MAC holds an IP."""
    find_gateway_mac = gateway_mac or pipeline.gateway_mac

    def gateway_mac_str() -> str | None:
        mac = find_gateway_mac()
        return mac_str(mac) if mac else None

    def host_mac(ip: str) -> str | None:
        mac = pipeline.hosts.established_mac_of(ip_bytes(ip))
        return mac_str(mac) if mac else None

    handler.wire(
        gateway_mac=gateway_mac_str,
        host_mac=host_mac,
        on_change=lambda state: mqtt.retained("quarantine", state),
    )
    mqtt.retained("quarantine", handler.state_payload())
    pipeline.extra_counters["outbox_dropped"] = lambda: mqtt.counters()["dropped"]
    pipeline.extra_counters["outbox_pending"] = lambda: mqtt.counters()["pending"]
    pipeline.extra_counters["outbox_kept"] = lambda: mqtt.counters()["kept"]
    pipeline.extra_counters["mqtt_reconnects"] = lambda: mqtt.counters()["reconnects"]


def cmd_replay(args: argparse.Namespace) -> int:
    config = _load(args)
    _setup_logging(config.log_level)
    sinks = _sinks(config)
    mqtt, handler, capabilities = None, None, list(BASE_CAPABILITIES)
    if config.raw["mqtt"]["host"]:
        mqtt, handler, capabilities = _mqtt(config, may_enforce=False)
        sinks.append(mqtt)
    if config.pipeline.node_ip is None:
        log.warning("no --node-ip: SYN scans of the node and decoy sessions cannot be seen")
    pipeline = Pipeline(config.pipeline, sinks)
    if mqtt is not None and handler is not None:
        _wire_mqtt(mqtt, handler, pipeline)
        # what `run` says on start: Home Assistant discovers agents from the retained info
        mqtt.retained(
            "info",
            info_payload(
                config.pipeline,
                version=__version__,
                interface=f"replay:{args.capture.name}",
                decoy_ports=[],
                decoy_errors=[],
                capabilities=capabilities,
                started_at=time.time(),
            ),
        )
    stop = _stop_on_signals() if args.stay else None
    try:
        if args.speed is not None and args.speed <= 0:
            raise ConfigError(f"--speed: {args.speed:g} is not a positive factor")
        stats = replay(args.capture, pipeline, show_progress=args.progress, speed=args.speed)
        print(stats.summary(), file=sys.stderr, flush=True)
        if stop is not None and mqtt is not None:
            log.info("capture replayed; staying connected until SIGTERM or SIGINT")
            stop.wait()
    except CaptureError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    finally:
        _close(sinks)
    return EXIT_OK


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (a clean stop: the sinks are closed)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def cmd_demo(args: argparse.Namespace) -> int:
    from .synth import (  # noqa: PLC0415 - scapy (for crafting) only when asked
        BENIGN,
        CULPRIT,
        DEMO_HOSTS,
        demo_frames,
        demo_node,
        write_pcap,
    )

    config = _load(args)
    _setup_logging(config.log_level)
    node_ip, node_mac, gateway_ip = demo_node()
    p = config.pipeline
    pipeline_config = PipelineConfig(
        **{
            **{f: getattr(p, f) for f in p.__dataclass_fields__},
            "agent_id": config.raw["agent_id"] or "demo",
            "node_ip": node_ip,
            "node_mac": node_mac,
            "gateway_ip": gateway_ip,
        }
    )
    collected: list[dict[str, Any]] = []

    class Collect:
        def event(self, event: Any) -> None:
            collected.append(dict(event))

        def retained(self, topic: Any, payload: Any) -> None:
            return None

        def close(self) -> None:
            return None

    sinks: list[Sink] = [Collect()]
    if args.json:
        sinks.append(StdoutSink())
    if config.events_jsonl is not None:
        sinks.append(JsonlSink(config.events_jsonl))
    with tempfile.TemporaryDirectory(prefix="lan-guard-demo-") as tmp:
        path = args.write_pcap or Path(tmp) / "demo.pcap"
        frames = write_pcap(path, demo_frames())
        pipeline = Pipeline(pipeline_config, sinks)
        stats = replay(path, pipeline, show_progress=False)
    _close(sinks)
    out = sys.stdout
    print("LAN Guard demo: a generated capture of a small home LAN in which one laptop", file=out)
    print("behaves like ransomware, replayed through the agent's real pipeline.\n", file=out)
    print("The LAN (documentation addresses 192.0.2.0/24):", file=out)
    for host in DEMO_HOSTS:
        print(f"  {host.ip:<12} {host.mac}  {host.name:<16} {host.role}", file=out)
    span = stats.capture_span_s
    print(f"\nCapture: {frames:,} frames over {span / 60:.0f} minutes", end="", file=out)
    if args.write_pcap:
        print(f", kept in {args.write_pcap}", end="", file=out)
    print(".\n\nTimeline (capture time UTC, incident #, level, what the agent saw):", file=out)
    for line in render(collected):
        print(line, file=out)
    culprit_mac = CULPRIT.mac
    blamed = {e["source"]["mac"] for e in collected}
    benign_blamed = sorted(blamed & {h.mac for h in BENIGN})
    culprit_levels = sorted(
        {e["level"] for e in collected if e["source"]["mac"] == culprit_mac and e["level"]}
    )
    print("\nVerdict:", file=out)
    print(
        f"  {CULPRIT.name} ({CULPRIT.ip}) reached levels {', '.join(map(str, culprit_levels))}"
        " - the ransomware-like sequence, in order.",
        file=out,
    )
    if benign_blamed:
        print(f"  unexpected events for benign hosts: {', '.join(benign_blamed)}", file=out)
    else:
        names = ", ".join(h.name for h in BENIGN)
        print(f"  benign hosts ({names}): no events.", file=out)
    print(
        f"\nReplay: {stats.frames:,} frames in {stats.seconds:.3f} s; node "
        f"{ip_str(node_ip)} / {mac_str(node_mac)}; events as JSON lines: --json or "
        "--events-jsonl PATH.",
        file=out,
    )
    ok = not benign_blamed and {1, 2, 3} <= set(culprit_levels)
    return EXIT_OK if ok else EXIT_FAILURE


def capture_filter(extra: str, node_mac: bytes | None) -> str:
    """The kernel BPF filter: never the node's own frames (no evidence, and the agent's MQTT
    traffic would cost a copy each), and the configured extra filter, if any."""
    parts = [f"({extra})"] if extra else []
    if node_mac is not None:
        parts.append(f"not ether src {mac_str(node_mac)}")
    return " and ".join(parts)


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    _setup_logging(config.log_level)
    interface = config.interface
    if not interface:
        raise ConfigError("network.interface: required for run (--interface IFACE)")
    ip, mac = interface_addresses(interface)
    config = config.with_network(
        ip,
        mac,
        default_gateway(interface),
        interface_subnet(interface),
        tuple(interface_addresses6(interface)),
    )
    node = config.pipeline
    if node.node_ip is None:
        log.warning(
            "%s has no IPv4 address: SYN scans of the node cannot be seen", config.interface
        )
    bpf = capture_filter(config.capture.bpf_filter, node.node_mac)
    try:
        capture = LiveCapture(
            interface,
            config.capture.snaplen,
            bpf,
            config.capture.promiscuous,
            buffer_mb=config.capture.buffer_mb,
        )
    except CaptureOpenError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    # the gateway's MAC as the kernel resolved it (and the first ARP reply the pipeline hears)
    kernel_gateway_mac = (
        kernel_arp_lookup(ip_str(node.gateway_ip))
        if node.gateway_ip and not node.gateway_mac
        else None
    )
    sinks = _sinks(config)
    mqtt, handler, capabilities = None, None, list(BASE_CAPABILITIES)
    if config.raw["mqtt"]["host"]:
        mqtt, handler, capabilities = _mqtt(config, may_enforce=True)
        sinks.append(mqtt)
    prober = None
    if config.probe_hosts and node.node_ip and node.node_mac:
        try:
            prober = ArpProber(interface, node.node_mac, node.node_ip)
        except OSError as exc:
            log.warning("no ARP probing of silent culprits: %s", exc)
    dhcp_prober = None
    if node.node_mac and node.dhcp.probe_interval_s > 0:
        try:
            dhcp_prober = DhcpProber(interface, node.node_mac)
        except OSError as exc:
            log.warning("no DHCP discovery of rogue servers: %s", exc)
    agent = LiveAgent(
        config,
        sinks,
        capture,
        prober=prober,
        dhcp_prober=dhcp_prober,
        capabilities=capabilities,
        kernel_gateway_mac=kernel_gateway_mac,
    )
    if mqtt is not None and handler is not None:
        _wire_mqtt(mqtt, handler, agent.pipeline, agent.gateway_mac)
    stop = _stop_on_signals()
    agent.start()
    log.info(
        "watching %s (node %s), decoys %s",
        config.interface,
        "unknown" if node.node_ip is None else ".".join(map(str, node.node_ip)),
        agent.decoys.ports or "none",
    )
    try:
        agent.run(stop)
    finally:
        agent.close()
        if dhcp_prober is not None:
            dhcp_prober.close()
        if handler is not None:
            handler.enforcer.close()
        _close(sinks)
    return EXIT_OK


SECRET_KEYS: tuple[tuple[str, str], ...] = (("mqtt", "password"), ("mqtt", "shared_key"))


def masked(raw: dict[str, Any]) -> dict[str, Any]:
    """The configuration tree with each secret that is set shown as ``***``."""
    shown = {key: dict(value) if isinstance(value, dict) else value for key, value in raw.items()}
    for section, key in SECRET_KEYS:
        if shown[section].get(key) is not None:
            shown[section][key] = "***"
    return shown


def cmd_federate(args: argparse.Namespace) -> int:
    """Needs the ``federation`` extra (Flower), installed on the agent's node only."""
    from .federation.node import FederationError, NodeSettings, node_key  # noqa: PLC0415
    from .federation.node import run as run_node  # noqa: PLC0415

    config = _load(args)
    settings = mqtt_settings(config)
    if settings is None:
        raise ConfigError("federate needs mqtt.host: examples arrive on the site's broker")
    section = dict(config.raw["federation"])
    for key in ("superlink", "site_id"):
        if getattr(args, key):
            section[key] = getattr(args, key)
    try:
        node = NodeSettings.from_config(section, settings.outbox_path)
        if args.node_key:
            print(node_key(node))
            return EXIT_OK
        _setup_logging(config.log_level)
        return run_node(node, settings, _stop_on_signals())
    except FederationError as err:
        raise ConfigError(str(err)) from err


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args)
    mqtt_settings(config)
    print(json.dumps(masked(config.raw), indent=2, sort_keys=True, default=str))
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from . import synth  # noqa: PLC0415 - scapy (for crafting) only when asked

    if args.kind == "demo":
        frames = synth.write_pcap(args.output, synth.demo_frames())
    elif args.kind == "mixed":
        frames = synth.write_pcap(args.output, synth.mixed_frames(args.count or 200_000))
    elif args.kind == "scans":
        frames = synth.write_pcap(args.output, synth.scan_frames(args.count or 4000))
    else:
        frames = synth.write_pcap(args.output, synth.many_sources_frames(args.count or 100_000))
    print(f"{args.output}: {frames:,} frames", file=sys.stderr)
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "replay": cmd_replay,
    "demo": cmd_demo,
    "check-config": cmd_check_config,
    "federate": cmd_federate,
    "generate": cmd_generate,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"lan-guard-agent: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
