"""LAN Guard sensor agent: sees LAN reconnaissance before an attack and publishes graded events.

Data flows one way; I/O only at the edges (functional core, imperative shell)::

    capture.py / replay.py      frames (timestamp, bytes) from an interface or a pcap file
      -> pipeline.py            one-second counts per source, ethertype dispatch
         -> parse.py            bytes -> header fields (struct/slices, never scapy);
            parse6.py, echonet.py   IPv6 (extension headers, ICMPv6/NDP), ECHONET Lite frames
         -> detectors/          arp_scan (1), syn_scan (2), session (3), flood, arp_spoof,
                                arp_spray / source_spray, port_scan (stealth/UDP),
                                slow_sweep, ipv6 (sweep, NDP spoof, rogue RA), dhcp,
                                cache_exhaustion, echonet; bindings.py (ARP/NDP, the
                                gateway's pinned); state in bounded.py's tables
         -> incidents.py        per-source incidents: first crossing, escalation, rate limit
         -> hosts.py            inventory: IP, vendor (OUI), hostname, host left
      -> sinks/                 stdout, jsonl, mqtt (signing.py; outbox.py: the event store,
                                seq and epoch, kept for replay)
    decoys.py                   TCP listeners on the node -> pipeline.observe_session; the
                                decoy ECHONET Lite node
    live.py                     the selector loop: capture + decoys + timers
    config.py / cli.py          TOML + environment + flags -> ``lan-guard-agent``
    synth.py / timeline.py      generated captures (demo, benchmarks), the demo's timeline
    enforcer.py / commands.py   quarantine on signed commands (nftables); safejson.py
    redelivery.py               replay commands: kept events published again, bounded
"""

__version__ = "0.2.0"
