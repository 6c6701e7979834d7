"""Config flow: discover agents from their retained info, or add one by prefix and id."""

from __future__ import annotations

import asyncio
from typing import Any

import voluptuous as vol
from homeassistant.components import mqtt
from homeassistant.config_entries import (
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util

from .allowlist import normalize_entry
from .const import (
    AGENT_ANSWER_TIMEOUT,
    CONF_AGENT_ID,
    CONF_ALLOWLIST,
    CONF_CONTRIBUTE_LABELS,
    CONF_EVACUATION,
    CONF_LEGACY_SIGNATURES,
    CONF_NOTIFY_LEVEL,
    CONF_NOTIFY_TARGETS,
    CONF_OFFLINE_MINUTES,
    CONF_PROVIDER,
    CONF_QUESTIONS_PER_DAY,
    CONF_SIGNING_KEY,
    CONF_TOPIC_PREFIX,
    DEFAULT_NOTIFY_LEVEL,
    DEFAULT_OFFLINE_MINUTES,
    DEFAULT_QUESTIONS_PER_DAY,
    DEFAULT_TOPIC_PREFIX,
    DOMAIN,
    MAX_QUESTIONS_PER_DAY,
    TOPIC_INFO,
)
from .evacuation import options as evacuation_options
from .intake import Refused, decode
from .notifications import phone_targets
from .payloads import AGENT_ID
from .provider import options as provider_options
from .runtime import LanGuardConfigEntry
from .untrusted import inert

DEFAULT_OPTIONS: dict[str, Any] = {
    CONF_NOTIFY_TARGETS: [],
    CONF_NOTIFY_LEVEL: DEFAULT_NOTIFY_LEVEL,
    CONF_ALLOWLIST: [],
    CONF_OFFLINE_MINUTES: DEFAULT_OFFLINE_MINUTES,
}


class AgentCheckError(Exception):
    """The agent could not be confirmed; ``args[0]`` is the form's error key."""


def _valid_prefix(prefix: str) -> bool:
    if not prefix or any(char in prefix for char in "+#") or prefix.endswith("/"):
        return False
    try:
        mqtt.valid_subscribe_topic(f"{prefix}/agent/{TOPIC_INFO}")
    except vol.Invalid:
        return False
    return True


def _valid_agent_id(agent_id: str) -> bool:
    try:
        AGENT_ID(agent_id)
    except vol.Invalid:
        return False
    return True


def _parse_info(raw: str | bytes | bytearray, agent_id: str | None) -> dict[str, Any]:
    """A retained info payload, checked against the contract (and the expected agent)."""
    decoded = decode("info", raw, dt_util.utcnow())
    if isinstance(decoded, Refused):
        raise AgentCheckError("invalid_info")
    info: dict[str, Any] = decoded.payload
    if agent_id is not None and info["agent_id"] != agent_id:
        raise AgentCheckError("invalid_info")
    return info


async def async_fetch_agent_info(hass: HomeAssistant, prefix: str, agent_id: str) -> dict[str, Any]:
    """Wait for the agent's retained info; ``AgentCheckError`` names what is wrong."""
    if not mqtt.is_connected(hass):
        raise AgentCheckError("mqtt_not_connected")
    answer: asyncio.Future[str | bytes | bytearray] = hass.loop.create_future()

    @callback
    def _received(msg: mqtt.ReceiveMessage) -> None:
        if not answer.done():
            answer.set_result(msg.payload)

    unsubscribe = await mqtt.async_subscribe(
        hass, f"{prefix}/{agent_id}/{TOPIC_INFO}", _received, qos=1, encoding=None
    )
    try:
        async with asyncio.timeout(AGENT_ANSWER_TIMEOUT):
            raw = await answer
    except TimeoutError as err:
        raise AgentCheckError("no_answer") from err
    finally:
        unsubscribe()
    return _parse_info(raw, agent_id)


def _agent_schema(prefix: str, with_agent_id: bool) -> vol.Schema:
    fields: dict[Any, Any] = {vol.Required(CONF_TOPIC_PREFIX, default=prefix): TextSelector()}
    if with_agent_id:
        fields[vol.Required(CONF_AGENT_ID)] = TextSelector()
    return vol.Schema(fields)


class LanGuardConfigFlow(ConfigFlow, domain=DOMAIN):
    """One config entry per agent (unique id: the agent id)."""

    VERSION = 1

    def __init__(self) -> None:
        """Nothing discovered yet."""
        self._prefix = DEFAULT_TOPIC_PREFIX
        self._info: dict[str, Any] = {}

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: LanGuardConfigEntry) -> LanGuardOptionsFlow:
        """Notifications, signing key, allowlist, offline limit."""
        return LanGuardOptionsFlow()

    async def async_step_mqtt(self, discovery_info: MqttServiceInfo) -> ConfigFlowResult:
        """An agent's retained info appeared on ``<prefix>/<agent_id>/info``."""
        parts = discovery_info.topic.split("/")
        if len(parts) < 3 or parts[-1] != TOPIC_INFO:
            return self.async_abort(reason="invalid_discovery_info")
        prefix, agent_id = "/".join(parts[:-2]), parts[-2]
        try:
            self._info = _parse_info(discovery_info.payload, agent_id)
        except AgentCheckError:
            return self.async_abort(reason="invalid_discovery_info")
        await self.async_set_unique_id(agent_id)
        self._abort_if_unique_id_configured()
        self._prefix = prefix
        self.context["title_placeholders"] = {"agent_id": agent_id}
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show what the agent announced and ask before adding it."""
        info = self._info
        if user_input is not None:
            return self._create_entry(self._prefix, info["agent_id"])
        self._set_confirm_only()
        return self.async_show_form(
            step_id="discovery_confirm",
            # Whoever can publish on the broker wrote these: inert in the Markdown dialog.
            description_placeholders={
                "agent_id": info["agent_id"],
                "version": inert(info["version"]),
                "interface": inert(info["interface"]),
                "node_ip": info["node"]["ip"] or "-",
            },
        )

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Add an agent by topic prefix and agent id."""
        if not await mqtt.async_wait_for_mqtt_client(self.hass):
            return self.async_abort(reason="mqtt_not_configured")
        errors: dict[str, str] = {}
        if user_input is not None:
            prefix = user_input[CONF_TOPIC_PREFIX].strip()
            agent_id = user_input[CONF_AGENT_ID].strip()
            if not _valid_prefix(prefix):
                errors[CONF_TOPIC_PREFIX] = "invalid_prefix"
            if not _valid_agent_id(agent_id):
                errors[CONF_AGENT_ID] = "invalid_agent_id"
            if not errors:
                await self.async_set_unique_id(agent_id)
                self._abort_if_unique_id_configured()
                try:
                    await async_fetch_agent_info(self.hass, prefix, agent_id)
                except AgentCheckError as err:
                    errors["base"] = str(err.args[0])
                else:
                    return self._create_entry(prefix, agent_id)
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                _agent_schema(DEFAULT_TOPIC_PREFIX, with_agent_id=True), user_input
            ),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Move an agent to another topic prefix (its id stays: it is the unique id)."""
        entry = self._get_reconfigure_entry()
        agent_id: str = entry.data[CONF_AGENT_ID]
        errors: dict[str, str] = {}
        if user_input is not None:
            prefix = user_input[CONF_TOPIC_PREFIX].strip()
            if not _valid_prefix(prefix):
                errors[CONF_TOPIC_PREFIX] = "invalid_prefix"
            else:
                try:
                    await async_fetch_agent_info(self.hass, prefix, agent_id)
                except AgentCheckError as err:
                    errors["base"] = str(err.args[0])
                else:
                    return self.async_update_reload_and_abort(
                        entry, data_updates={CONF_TOPIC_PREFIX: prefix}
                    )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=_agent_schema(entry.data[CONF_TOPIC_PREFIX], with_agent_id=False),
            description_placeholders={"agent_id": agent_id},
            errors=errors,
        )

    def _create_entry(self, prefix: str, agent_id: str) -> ConfigFlowResult:
        return self.async_create_entry(
            title=f"LAN Guard {agent_id}",
            data={CONF_TOPIC_PREFIX: prefix, CONF_AGENT_ID: agent_id},
            options=dict(DEFAULT_OPTIONS),
        )


class LanGuardOptionsFlow(OptionsFlowWithReload):
    """What the owner tunes; saving reloads the agent's entry (an evacuation keeps running)."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form for all options; every entry is checked before anything is saved."""
        errors: dict[str, str] = {}
        placeholders = {"entry": ""}
        info = self._agent_info()
        stored = self.config_entry.options
        section = {
            **evacuation_options.suggested(stored, info),
            **((user_input or {}).get(CONF_EVACUATION) or {}),
        }
        provider = {
            **provider_options.suggested(stored),
            **((user_input or {}).get(CONF_PROVIDER) or {}),
        }
        if user_input is not None:
            try:
                options = self._parse(user_input, info) | evacuation_options.parse(section, info)
                options |= provider_options.parse(provider, CONF_SIGNING_KEY in options)
            except evacuation_options.InvalidOption as err:
                errors[err.args[0]] = err.args[1]
                placeholders["entry"] = err.args[2]
            except provider_options.InvalidProviderOption as err:
                errors[err.args[0]] = err.args[1]
            else:
                return self.async_create_entry(data=options)
        current = {**DEFAULT_OPTIONS, **stored, **(user_input or {})}
        current[CONF_NOTIFY_LEVEL] = str(current[CONF_NOTIFY_LEVEL])
        current[CONF_NOTIFY_TARGETS] = _targets(current[CONF_NOTIFY_TARGETS])
        current[CONF_ALLOWLIST] = "\n".join(evacuation_options.lines(current[CONF_ALLOWLIST]))
        current[CONF_EVACUATION] = evacuation_options.suggested(section, info)
        current[CONF_PROVIDER] = provider
        warning = ""
        if evacuation_options.cannot_quarantine(section, info):
            warning = await _async_text(self.hass, "options_no_quarantine")
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                self._schema(current[CONF_NOTIFY_TARGETS], info), current
            ),
            errors=errors,
            description_placeholders={**placeholders, "warning": warning},
        )

    def _agent_info(self) -> dict[str, Any] | None:
        """The agent's info as last reported (None while the entry is not loaded)."""
        entry: LanGuardConfigEntry = self.config_entry
        if entry.state is not ConfigEntryState.LOADED:
            return None
        return entry.runtime_data.coordinator.info

    def _parse(self, user_input: dict[str, Any], info: dict[str, Any] | None) -> dict[str, Any]:
        """The general options; ``InvalidOption`` names the field and the entry."""
        allowlist: list[str] = []
        for entry in evacuation_options.lines(user_input.get(CONF_ALLOWLIST)):
            try:
                allowlist.append(normalize_entry(entry))
            except ValueError as err:
                raise evacuation_options.InvalidOption(
                    CONF_ALLOWLIST, "invalid_allowlist", entry
                ) from err
        phones = phone_targets(self.hass)
        targets = _targets(user_input.get(CONF_NOTIFY_TARGETS, []))
        for target in targets:
            if target not in phones:
                raise evacuation_options.InvalidOption(
                    CONF_NOTIFY_TARGETS, "unknown_notify_target", f"notify.{target}"
                )
        options: dict[str, Any] = {
            CONF_NOTIFY_TARGETS: targets,
            CONF_NOTIFY_LEVEL: int(user_input[CONF_NOTIFY_LEVEL]),
            CONF_ALLOWLIST: allowlist,
            CONF_OFFLINE_MINUTES: int(user_input[CONF_OFFLINE_MINUTES]),
        }
        if key := (user_input.get(CONF_SIGNING_KEY) or "").strip():
            options[CONF_SIGNING_KEY] = key
        if user_input.get(CONF_LEGACY_SIGNATURES):
            options[CONF_LEGACY_SIGNATURES] = True
        if CONF_QUESTIONS_PER_DAY in user_input:  # absent: the default (3 a day)
            options[CONF_QUESTIONS_PER_DAY] = int(user_input[CONF_QUESTIONS_PER_DAY])
        if user_input.get(CONF_CONTRIBUTE_LABELS):
            options[CONF_CONTRIBUTE_LABELS] = True
        return options

    def _schema(self, chosen: list[str], info: dict[str, Any] | None) -> vol.Schema:
        # Phones that exist, companion apps first; a chosen one that is gone stays visible so
        # the owner can see it and take it out (saving refuses it).
        phones = phone_targets(self.hass)
        offered = phones + [target for target in chosen if target not in phones]
        return vol.Schema(
            {
                vol.Optional(CONF_NOTIFY_TARGETS): SelectSelector(
                    SelectSelectorConfig(options=offered, multiple=True)
                ),
                vol.Required(CONF_NOTIFY_LEVEL): SelectSelector(
                    SelectSelectorConfig(
                        options=["1", "2", "3"],
                        mode=SelectSelectorMode.DROPDOWN,
                        translation_key=CONF_NOTIFY_LEVEL,
                    )
                ),
                vol.Optional(CONF_SIGNING_KEY): TextSelector(
                    TextSelectorConfig(type=TextSelectorType.PASSWORD)
                ),
                vol.Optional(CONF_LEGACY_SIGNATURES, default=False): BooleanSelector(),
                vol.Optional(CONF_CONTRIBUTE_LABELS, default=False): BooleanSelector(),
                vol.Optional(CONF_ALLOWLIST): TextSelector(TextSelectorConfig(multiline=True)),
                vol.Required(CONF_OFFLINE_MINUTES): NumberSelector(
                    NumberSelectorConfig(
                        min=1,
                        max=1440,
                        step=1,
                        mode=NumberSelectorMode.BOX,
                        unit_of_measurement="min",
                    )
                ),
                vol.Optional(
                    CONF_QUESTIONS_PER_DAY, default=DEFAULT_QUESTIONS_PER_DAY
                ): NumberSelector(
                    NumberSelectorConfig(
                        min=0, max=MAX_QUESTIONS_PER_DAY, step=1, mode=NumberSelectorMode.BOX
                    )
                ),
                vol.Optional(CONF_EVACUATION): evacuation_options.section_schema(self.hass, info),
                vol.Optional(CONF_PROVIDER): provider_options.section_schema(),
            }
        )


async def _async_text(hass: HomeAssistant, key: str) -> str:
    """A ``common`` text in HA's language (the form's placeholders are not translated)."""
    texts = await async_get_translations(hass, hass.config.language, "common", [DOMAIN])
    return texts[f"component.{DOMAIN}.common.{key}"]


def _targets(values: Any) -> list[str]:
    """Notify targets as service names (``notify.`` is optional in stored options)."""
    return [str(value).removeprefix("notify.") for value in values or []]
