"""The agent's side of the MQTT contract in one place: topics, status payloads,
capabilities, command actions, event kinds, the payload format version and the default topic
prefix.

``schema/`` defines the payloads; the Home Assistant integration is installed on its own and
keeps its copy of these values (``custom_components/lan_guard/const.py``). A test checks the
three against each other.
"""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 1  # every payload's "schema"
DEFAULT_TOPIC_PREFIX: Final = "lan_guard"  # topics are <prefix>/<agent_id>/<topic>

TOPIC_STATUS: Final = "status"
TOPIC_INFO: Final = "info"
TOPIC_EVENT: Final = "event"
TOPIC_STATE: Final = "state"
TOPIC_HOSTS: Final = "hosts"
TOPIC_QUARANTINE: Final = "quarantine"
TOPIC_COMMAND: Final = "command"
TOPIC_COMMAND_RESULT: Final = "command/result"
RETAINED_TOPICS: Final = (TOPIC_INFO, TOPIC_STATE, TOPIC_HOSTS, TOPIC_QUARANTINE)

STATUS_ONLINE: Final = "online"
STATUS_OFFLINE: Final = "offline"  # also the last will

# What the info payload says the agent can do.
CAPABILITY_DETECT: Final = "detect"
CAPABILITY_HOSTS: Final = "hosts"
CAPABILITY_DECOYS: Final = "decoys"
CAPABILITY_SIGNING: Final = "signing"
CAPABILITY_ENFORCER: Final = "enforcer"
BASE_CAPABILITIES: Final = (CAPABILITY_DETECT, CAPABILITY_HOSTS)  # every agent

# Command actions: the enforcer's, and a receiver's request for events it missed.
ACTION_QUARANTINE: Final = "quarantine"
ACTION_RELEASE: Final = "release"
ACTION_REPLAY: Final = "replay"
ACTIONS: Final = (ACTION_QUARANTINE, ACTION_RELEASE, ACTION_REPLAY)

# Event kinds (the detectors' ``kind``, and host_left from the hosts inventory), in the
# order of the kinds list versions (schema/common.schema.json says which version added what).
KINDS: Final = (
    "arp_scan",
    "syn_scan",
    "session",
    "flood",
    "arp_spoof",
    "host_left",
    # version 2
    "arp_spray",
    "source_spray",
    # version 3
    "stealth_scan",
    "udp_scan",
    "ipv6_sweep",
    "ndp_spoof",
    "rogue_ra",
    "dhcp_starvation",
    "rogue_dhcp",
    "cache_exhaustion",
    "echonet_control",
    "echonet_sweep",
)
