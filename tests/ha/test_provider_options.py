"""The provider section of the options form: defaults, what cannot work, what is stored."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.lan_guard.const import (
    CONF_NOTIFY_LEVEL,
    CONF_OFFLINE_MINUTES,
    CONF_PROVIDER,
    CONF_PROVIDER_MAY_EVACUATE,
    CONF_PROVIDER_MAY_SEE,
    CONF_SIGNING_KEY,
)
from custom_components.lan_guard.provider import options
from custom_components.lan_guard.provider.options import InvalidProviderOption

from .conftest import make_entry

OFF = {CONF_PROVIDER_MAY_SEE: False, CONF_PROVIDER_MAY_EVACUATE: False}


def test_off_by_default() -> None:
    assert options.suggested({}) == OFF
    assert options.parse({}, has_key=False) == OFF
    assert options.suggested({CONF_PROVIDER_MAY_SEE: True})[CONF_PROVIDER_MAY_SEE] is True


@pytest.mark.parametrize(
    ("values", "has_key", "error"),
    [
        ({CONF_PROVIDER_MAY_EVACUATE: True}, True, "provider_evacuate_needs_see"),
        ({CONF_PROVIDER_MAY_SEE: True}, False, "provider_needs_signing_key"),
    ],
)
def test_what_cannot_work_is_refused(values: dict[str, Any], has_key: bool, error: str) -> None:
    with pytest.raises(InvalidProviderOption) as raised:
        options.parse(values, has_key)
    assert raised.value.args[1] == error


async def test_the_options_form_stores_the_owners_consent(hass: HomeAssistant) -> None:
    entry = make_entry()
    entry.add_to_hass(hass)  # not loaded: the form works on the stored options alone
    form = {CONF_NOTIFY_LEVEL: "2", CONF_OFFLINE_MINUTES: 10}
    both = {CONF_PROVIDER_MAY_SEE: True, CONF_PROVIDER_MAY_EVACUATE: True}

    flow = await hass.config_entries.options.async_init(entry.entry_id)
    assert flow["type"] is FlowResultType.FORM
    refused = await hass.config_entries.options.async_configure(
        flow["flow_id"], {**form, CONF_PROVIDER: both}
    )
    assert refused["errors"] == {CONF_PROVIDER_MAY_SEE: "provider_needs_signing_key"}
    done = await hass.config_entries.options.async_configure(
        refused["flow_id"], {**form, CONF_SIGNING_KEY: "a-site-key-0123456789", CONF_PROVIDER: both}
    )
    assert done["type"] is FlowResultType.CREATE_ENTRY
    assert {key: entry.options[key] for key in both} == both
