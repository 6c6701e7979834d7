"""Constants of the LAN Guard integration."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Final

from homeassistant.const import Platform

DOMAIN: Final = "lan_guard"

PLATFORMS: Final = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.EVENT,
    Platform.SENSOR,
    Platform.SWITCH,
]

# Config entry data (what identifies the agent).
CONF_TOPIC_PREFIX: Final = "topic_prefix"
CONF_AGENT_ID: Final = "agent_id"
DEFAULT_TOPIC_PREFIX: Final = "lan_guard"

# Config entry options (what the owner tunes).
CONF_NOTIFY_TARGETS: Final = "notify_targets"
CONF_NOTIFY_LEVEL: Final = "notify_level"
CONF_SIGNING_KEY: Final = "signing_key"
CONF_ALLOWLIST: Final = "allowlist"
CONF_OFFLINE_MINUTES: Final = "offline_minutes"
CONF_QUESTIONS_PER_DAY: Final = "questions_per_day"
# Accept agents signing in format 1 (no agent id, no topic): only while upgrading agents.
CONF_LEGACY_SIGNATURES: Final = "legacy_signatures"
CONF_CONTRIBUTE_LABELS: Final = "contribute_labels"

# Level 1 (ARP scan) is also what HA's own nmap tracker and NetAlertX do every few minutes,
# so by default only a scan of the monitoring node (level 2) or worse notifies.
DEFAULT_NOTIFY_LEVEL: Final = 2
# An agent restarting (updates, reboots) is offline for a minute or two; ten is a real outage.
DEFAULT_OFFLINE_MINUTES: Final = 10
# Questions the classifier may ask a day (active learning): an owner answers a few, not more.
DEFAULT_QUESTIONS_PER_DAY: Final = 3
MAX_QUESTIONS_PER_DAY: Final = 20

# How long the config flow waits for the agent's retained info before saying it did not answer.
AGENT_ANSWER_TIMEOUT: Final = 10.0

# MQTT topics below <prefix>/<agent_id>/.
TOPIC_STATUS: Final = "status"
TOPIC_INFO: Final = "info"
TOPIC_EVENT: Final = "event"
TOPIC_STATE: Final = "state"
TOPIC_HOSTS: Final = "hosts"
TOPIC_QUARANTINE: Final = "quarantine"
TOPIC_COMMAND: Final = "command"
TOPIC_COMMAND_RESULT: Final = "command/result"
# Federated learning: the owner's labelled examples to the agent's node (never bridged) and
# the request to forget them (the provider's global model comes on TOPIC_SITE_GLOBAL_MODEL).
SUB_TRAINING_EXAMPLE: Final = "training/example"
SUB_TRAINING_DELETE: Final = "training/delete"

STATUS_ONLINE: Final = "online"
STATUS_OFFLINE: Final = "offline"
# The agent's info lists this capability when its nftables enforcer runs.
CAPABILITY_ENFORCER: Final = "enforcer"
# Commands to the agent: its enforcer's, and replaying events Home Assistant missed.
ACTION_QUARANTINE: Final = "quarantine"
ACTION_RELEASE: Final = "release"
ACTION_REPLAY: Final = "replay"

# The owner's inbox (sidebar panel): /lan-guard, linked from the notifications.
PANEL_URL_PATH: Final = "lan-guard"

# Bus event fired for every accepted agent event (same data as the event entity).
EVENT_LAN_GUARD: Final = "lan_guard_event"
# Fired by the companion app when a notification button is pressed.
EVENT_MOBILE_APP_NOTIFICATION_ACTION: Final = "mobile_app_notification_action"
# Action ids of the notification buttons: LAN_GUARD_<VERDICT>_<event id>.
ACTION_PREFIX: Final = "LAN_GUARD_"

# Storage: the last MAX_EVENTS events, plus up to MAX_LABELLED labelled ones (training data).
STORAGE_VERSION: Final = 1
MAX_EVENTS: Final = 1000
MAX_LABELLED: Final = 5000
SAVE_DELAY: Final = 10.0

EVENTS_WINDOW: Final = timedelta(hours=24)
EVENTS_WINDOW_REFRESH: Final = timedelta(minutes=1)

SERVICE_LABEL_EVENT: Final = "label_event"
SERVICE_EXPORT_EVENTS: Final = "export_events"
ATTR_EVENT_ID: Final = "event_id"
ATTR_VERDICT: Final = "verdict"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_LABELLED_ONLY: Final = "labelled_only"

ISSUE_MQTT_NOT_SETUP: Final = "mqtt_not_setup"
ISSUE_AGENT_OFFLINE: Final = "agent_offline"
ISSUE_NOTIFY_FAILED: Final = "notify_failed"

# Evacuation mode: options, their defaults, actions, storage.
CONF_EVACUATION: Final = "evacuation"  # the options form's section
CONF_EVACUATION_TRIGGER: Final = "evacuation_trigger"
CONF_EVACUATION_LEVEL: Final = "evacuation_level"
CONF_EVACUATION_RESTORE: Final = "evacuation_restore"
CONF_ISOLATE_ENTITIES: Final = "isolate_entities"
CONF_QUARANTINE_BACKEND: Final = "quarantine_backend"
CONF_QUARANTINE_ENTITIES: Final = "quarantine_entities"
CONF_QUARANTINE_BLOCK_STATE: Final = "quarantine_block_state"
CONF_PROTECTED_HOSTS: Final = "protected_hosts"
TRIGGER_LEVEL: Final = "level"
TRIGGER_VERDICT: Final = "verdict"
TRIGGER_MANUAL: Final = "manual"
RESTORE_AUTO: Final = "auto"
RESTORE_CONFIRM: Final = "confirm"
BACKEND_AGENT: Final = "agent"
BACKEND_ENTITY: Final = "entity"
BACKEND_NONE: Final = "none"
# A scan of the monitoring node (level 2) is what LAN-aware malware does and legitimate
# devices do not; level 1 is also HA's own nmap tracker, so it never evacuates by default.
DEFAULT_EVACUATION_LEVEL: Final = 2
# The agent answers a command within milliseconds; ten seconds covers a busy broker.
COMMAND_TIMEOUT: Final = 10.0
# A turn_off/turn_on of one appliance; a stuck integration must not hold evacuation up.
APPLIANCE_TIMEOUT: Final = 10.0
EVACUATION_STORAGE_VERSION: Final = 1
SERVICE_START_EVACUATION: Final = "start_evacuation"
SERVICE_STOP_EVACUATION: Final = "stop_evacuation"
ATTR_MAC: Final = "mac"
ATTR_IP: Final = "ip"
# Notification buttons of evacuation: LAN_GUARD_EVAC_<RESTORE|KEEP>_<config entry id>.
EVACUATION_ACTION_PREFIX: Final = "LAN_GUARD_EVAC_"
ISSUE_EVACUATION_INCOMPLETE: Final = "evacuation_incomplete"

# The owner's provider and its operations center (PSOC), over the site channel: what the
# owner allows, in the options form's "provider" section. Both off by default.
CONF_PROVIDER: Final = "provider"  # the options form's section
CONF_PROVIDER_MAY_SEE: Final = "provider_may_see"
CONF_PROVIDER_MAY_EVACUATE: Final = "provider_may_evacuate"
# Site channel sub-topics below <prefix>/<agent_id>/ (schema/site/).
TOPIC_SITE_CONSENT: Final = "site/consent"
TOPIC_SITE_EVACUATION: Final = "site/evacuation"
TOPIC_SITE_VERDICT: Final = "site/verdict"
TOPIC_SITE_LABEL: Final = "site/label"
TOPIC_SITE_ACK: Final = "site/ack"
TOPIC_SITE_REQUEST: Final = "site/request"
TOPIC_SITE_REQUEST_RESULT: Final = "site/request/result"
TOPIC_SITE_PROVIDER_LABEL: Final = "site/provider_label"
TOPIC_SITE_GLOBAL_MODEL: Final = "site/global_model"  # federated learning (PSOC -> HA)
# One provider notification per agent: each request replaces the text.
PROVIDER_NOTIFICATION_PREFIX: Final = "lan_guard_provider_"


class Kind(StrEnum):
    """What the agent saw (``schema/common.schema.json#/$defs/kind``)."""

    ARP_SCAN = "arp_scan"
    SYN_SCAN = "syn_scan"
    SESSION = "session"
    FLOOD = "flood"
    ARP_SPOOF = "arp_spoof"
    HOST_LEFT = "host_left"
    # kinds list version 2
    ARP_SPRAY = "arp_spray"
    SOURCE_SPRAY = "source_spray"
    # kinds list version 3
    STEALTH_SCAN = "stealth_scan"
    UDP_SCAN = "udp_scan"
    IPV6_SWEEP = "ipv6_sweep"
    NDP_SPOOF = "ndp_spoof"
    ROGUE_RA = "rogue_ra"
    DHCP_STARVATION = "dhcp_starvation"
    ROGUE_DHCP = "rogue_dhcp"
    CACHE_EXHAUSTION = "cache_exhaustion"
    ECHONET_CONTROL = "echonet_control"
    ECHONET_SWEEP = "echonet_sweep"


class Label(StrEnum):
    """The owner's judgement of an event."""

    NORMAL = "normal"
    ALARM = "alarm"


class BadPayload(StrEnum):
    """Why an MQTT payload was refused (counted in diagnostics, logged once per kind)."""

    NOT_JSON = "not_json"
    SCHEMA = "schema"
    AGENT_MISMATCH = "agent_mismatch"
    SIGNATURE_MISSING = "signature_missing"
    SIGNATURE_BAD = "signature_bad"
    SIGNATURE_LEGACY = "signature_legacy"  # format 1 while legacy signatures are off
    STALE = "stale"
    REPLAYED = "replayed"
    # Bounds on what a payload may contain (``intake.py``).
    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    TOO_LONG = "too_long"
    TOO_MANY = "too_many"
    BAD_NUMBER = "bad_number"
    FUTURE = "future"
    # An accepted payload that a handler failed on: a bug, but never an unhandled exception.
    HANDLER_ERROR = "handler_error"
