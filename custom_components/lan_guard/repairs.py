"""Fix flows: an agent offline too long (restart it, or allow it longer)."""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant import data_entry_flow
from homeassistant.components.repairs import RepairsFlow
from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
)

from .const import CONF_AGENT_ID, CONF_OFFLINE_MINUTES, DEFAULT_OFFLINE_MINUTES, ISSUE_AGENT_OFFLINE


class AgentOfflineRepairFlow(RepairsFlow):
    """Confirm once the agent runs again (or set a longer limit); the entry reloads and checks."""

    def __init__(self, entry_id: str) -> None:
        """The flow fixes the issue of one config entry."""
        self._entry_id = entry_id

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Start at the form (the input here is the issue's data, not the owner's)."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Ask for the offline limit; submitting reloads the entry (which re-checks)."""
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None:
            return self.async_abort(reason="entry_removed")
        if user_input is not None:
            self.hass.config_entries.async_update_entry(
                entry,
                options={
                    **entry.options,
                    CONF_OFFLINE_MINUTES: int(user_input[CONF_OFFLINE_MINUTES]),
                },
            )
            self.hass.config_entries.async_schedule_reload(entry.entry_id)
            return self.async_create_entry(data={})
        minutes = entry.options.get(CONF_OFFLINE_MINUTES, DEFAULT_OFFLINE_MINUTES)
        return self.async_show_form(
            step_id="confirm",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_OFFLINE_MINUTES, default=minutes): NumberSelector(
                        NumberSelectorConfig(min=1, max=1440, step=1, mode=NumberSelectorMode.BOX)
                    )
                }
            ),
            description_placeholders={
                "agent": entry.data[CONF_AGENT_ID],
                "minutes": f"{minutes:g}",
            },
        )


async def async_create_fix_flow(
    hass: HomeAssistant,
    issue_id: str,
    data: dict[str, str | int | float | None] | None,
) -> RepairsFlow:
    """The fix flow of one of our fixable issues."""
    if issue_id.startswith(ISSUE_AGENT_OFFLINE) and data and "entry_id" in data:
        return AgentOfflineRepairFlow(str(data["entry_id"]))
    raise ValueError(f"unknown fixable issue {issue_id}")
