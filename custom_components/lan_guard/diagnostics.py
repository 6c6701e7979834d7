"""Diagnostics: the agent's last reports, refused payloads, and the stored events (redacted)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .const import (
    CONF_ALLOWLIST,
    CONF_NOTIFY_TARGETS,
    CONF_PROTECTED_HOSTS,
    CONF_QUARANTINE_ENTITIES,
    CONF_SIGNING_KEY,
)
from .federation import Federation
from .learner import Learner
from .runtime import LanGuardConfigEntry

# Who is on the owner's network, and the shared secret, never leave the house.
TO_REDACT = {
    CONF_SIGNING_KEY,
    CONF_ALLOWLIST,
    CONF_NOTIFY_TARGETS,
    CONF_PROTECTED_HOSTS,
    CONF_QUARANTINE_ENTITIES,
    "mac",
    "ip",
    "hostname",
    "targets",
    "sample",
    "old_mac",
    "new_mac",
    "gateway",
    "gateway_mac",
    "sig",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: LanGuardConfigEntry
) -> dict[str, Any]:
    """Everything useful to understand what the integration saw, without identities."""
    coordinator = entry.runtime_data.coordinator
    verifier = coordinator.verifier
    data = {
        "entry": {"data": dict(entry.data), "options": dict(entry.options)},
        "agent": {
            "status": coordinator.status,
            "mqtt_connected": coordinator.mqtt_connected,
            "info": coordinator.info,
            "state": coordinator.agent_state,
            "hosts": coordinator.hosts,
            "quarantine": coordinator.quarantine,
        },
        "incidents": [incident.summary() for incident in coordinator.incidents.values()],
        "acknowledged": coordinator.history.acknowledged,
        "refused_payloads": {
            "counts": {reason.value: count for reason, count in coordinator.bad_payloads.items()},
            "last": {
                reason.value: {
                    "topic": refused.topic,
                    "reason": refused.reason,
                    "at": refused.at.isoformat(),
                }
                for reason, refused in coordinator.last_refused.items()
            },
        },
        "signing": {
            "enabled": verifier is not None,
            "legacy_signatures": coordinator.legacy,
            "agent_format": verifier.agent_format if verifier else None,
            "remembered_ids": verifier.remembered_ids if verifier else 0,
        },
        "delivery": coordinator.delivery.diagnostics(),
        "history": coordinator.history.export(),
        "evacuation": entry.runtime_data.evacuation.attributes(),
        "classifier": _classifier(entry.runtime_data.learner),
        "provider": entry.runtime_data.provider.diagnostics(),
        "federation": _federation(entry.runtime_data.federation),
    }
    redacted: dict[str, Any] = async_redact_data(data, TO_REDACT)
    return redacted


def _federation(federation: Federation) -> dict[str, Any]:
    """Consent, what was contributed, the global model in use (without its arrays)."""
    prior = federation.learner.global_prior or {}
    return {
        "contribute": federation.contribute,
        "active": federation.active,
        "contributed_labels": federation.contributed,
        "refused": federation.refused,
        "global_model": {k: v for k, v in prior.items() if k not in ("weights", "precision")},
    }


def _classifier(learner: Learner) -> dict[str, Any]:
    """Label counts, accuracy, the cut-off, the question budget and why a stored model was
    reset (no weights)."""
    questions = learner.classifier.questions
    return {
        **learner.stats(),
        "alarm_from": learner.classifier.model.alarm_from,
        "questions_per_day": questions.per_day,
        "ask_from": questions.ask_from,
        "open_questions": len(questions.open),
        "reset_reason": learner.reset_reason,
    }
