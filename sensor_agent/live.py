"""The live shell: one selector loop for capture, decoy listeners and timers (no threads).

Frames read from the capture socket and connections seen by the decoys go into the same
:class:`Pipeline` a replay uses; once a second the loop reads the kernel's drop counter,
closes stale decoy connections and ticks the pipeline (expiry, held-back updates, host
left, retained payloads). Nothing a frame or a decoy's peer sends stops the loop: such
exceptions are counted (``handler_errors``) and logged once per kind; a capture socket that
fails ends the run (exit 1), for systemd to restart the agent.
"""

from __future__ import annotations

import logging
import selectors
import threading
import time
from collections.abc import Callable, Sequence

from . import __version__
from .capture import ArpProber, LiveCapture, kernel_arp_lookup
from .config import AgentConfig
from .contract import BASE_CAPABILITIES, CAPABILITY_DECOYS
from .decoys import Decoys, EchonetDecoy
from .formats import addr_bytes, mac_str
from .pipeline import Pipeline, info_payload
from .sinks import Sink

log = logging.getLogger(__name__)

_CAPTURE = object()


class LiveAgent:
    def __init__(
        self,
        config: AgentConfig,
        sinks: Sequence[Sink],
        capture: LiveCapture | None,
        *,
        prober: ArpProber | None = None,
        dhcp_prober: Callable[[], None] | None = None,
        capabilities: Sequence[str] = BASE_CAPABILITIES,
        clock: Callable[[], float] = time.time,
        kernel_gateway_mac: bytes | None = None,
    ) -> None:
        self.config = config
        # The gateway's MAC in the node's ARP table at start: published until the pipeline
        # hears the gateway itself. Not given to the ARP-spoofing detector: a stale (or
        # poisoned) entry there would make the real gateway look like the spoofer.
        self.kernel_gateway_mac = kernel_gateway_mac
        self.sinks = list(sinks)
        self.capture = capture
        self.prober = prober
        self.dhcp_prober = dhcp_prober
        self._next_dhcp_probe = clock() + 5.0  # once the capture has settled
        self.clock = clock
        self.selector = selectors.DefaultSelector()
        self.pipeline = Pipeline(config.pipeline, self.sinks, prober=prober)
        self.decoys = Decoys(config.decoys, self.selector, self._decoy_report)
        self.echonet: EchonetDecoy | None = None
        if config.decoys.enabled and config.decoys.echonet and config.decoys.bind is not None:
            self.echonet = EchonetDecoy(config.decoys.bind, self.selector)
        self.capabilities = list(capabilities)
        self.started_at = clock()
        self._info_gateway_mac: bytes | None = None

    def _decoy_report(self, ts: float, ip: str, port: int, nbytes: int, data: bytes) -> None:
        mac = self.pipeline.hosts.mac_of(addr_bytes(ip)) or kernel_arp_lookup(ip)
        self.pipeline.observe_session(ts, ip, port, nbytes=nbytes, data=data, mac=mac)

    def start(self) -> None:
        if self.config.decoys.enabled:
            self.decoys.open()
            self.pipeline.set_live_decoys(self.decoys.ports)
            if self.decoys.ports:
                self.capabilities.append(CAPABILITY_DECOYS)
            if self.echonet is not None and not self.echonet.open(self.clock()):
                self.echonet = None
        if self.capture is not None:
            self.selector.register(self.capture.sock, selectors.EVENT_READ, _CAPTURE)
        self._publish_info()

    def gateway_mac(self) -> bytes | None:
        """The gateway's MAC: configured or heard by the pipeline, else the kernel's entry."""
        return self.pipeline.gateway_mac() or self.kernel_gateway_mac

    def _publish_info(self) -> None:
        interface = self.capture.interface if self.capture else "none"
        self._info_gateway_mac = self.pipeline.gateway_mac()
        gateway_mac = self.gateway_mac()
        info = info_payload(
            self.config.pipeline,
            version=__version__,
            interface=interface,
            decoy_ports=self.decoys.ports,
            decoy_errors=self.decoys.errors,
            capabilities=self.capabilities,
            started_at=self.started_at,
            gateway_mac=gateway_mac,
        )
        for sink in self.sinks:
            sink.retained("info", info)

    def run(self, stop: threading.Event, tick_s: float = 1.0) -> None:
        """Serve until ``stop`` is set."""
        pipeline = self.pipeline
        next_tick = self.clock()
        while not stop.is_set():
            timeout = max(0.0, min(next_tick - self.clock(), tick_s))
            for key, _events in self.selector.select(timeout):
                if key.data is _CAPTURE and self.capture is not None:
                    pipeline.feed_many(*self.capture.read_batch())  # never raises on frames
                elif isinstance(key.data, EchonetDecoy):
                    try:
                        key.data.ready(key.fileobj, self.clock())  # type: ignore[arg-type]
                    except Exception as exc:  # one peer's datagram never stops the agent
                        pipeline.failed(exc, "an ECHONET Lite request")
                else:
                    try:
                        self.decoys.ready(key.data, self.clock())
                    except Exception as exc:  # one peer's connection never stops the agent
                        pipeline.failed(exc, "a decoy connection")
            now = self.clock()
            if now >= next_tick:
                next_tick = now + tick_s
                if self.capture is not None:
                    pipeline.kernel_drops += self.capture.drops()
                self.decoys.tick(now)
                self._probe_dhcp(now)
                pipeline.tick(now)
                if self._info_gateway_mac is None and pipeline.gateway_mac() is not None:
                    self._gateway_learnt()
                    self._publish_info()  # heard from the gateway's first ARP reply

    def _gateway_learnt(self) -> None:
        """The gateway's MAC, learnt from its first claim, is kept until the agent restarts:
        say which it is, and loudly when the node's own ARP table named another at start
        (the router replaced while the node was down, or one of them is a spoofer)."""
        learnt, kernel = self.pipeline.gateway_mac(), self.kernel_gateway_mac
        if learnt is None or self.config.pipeline.gateway_mac is not None:
            return
        if kernel is not None and kernel != learnt:
            log.warning(
                "the gateway's MAC is now %s, first heard on the LAN, but the node's ARP table "
                "had %s at start: if %s is not your router, set network.gateway_mac to the "
                "router's MAC and restart the agent",
                mac_str(learnt),
                mac_str(kernel),
                mac_str(learnt),
            )
        else:
            log.info("the gateway's MAC is %s (first heard; kept until restart)", mac_str(learnt))

    def _probe_dhcp(self, now: float) -> None:
        interval = self.config.pipeline.dhcp.probe_interval_s
        if self.dhcp_prober is not None and interval > 0 and now >= self._next_dhcp_probe:
            self._next_dhcp_probe = now + interval
            self.dhcp_prober()

    def close(self) -> None:
        self.pipeline.finish(self.clock())
        self.decoys.close()
        if self.echonet is not None:
            self.echonet.close()
        if self.capture is not None:
            self.selector.unregister(self.capture.sock)
            self.capture.close()
        if self.prober is not None:
            self.prober.close()
        self.selector.close()
