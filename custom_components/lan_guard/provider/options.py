"""The provider section of the options form: what the owner allows their provider's PSOC.

Both off by default. "May start evacuation mode" needs "may see this site" (the provider must
see what its request did), and either needs the signing key (the provider verifies every
payload of the site, and the integration every request).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import BooleanSelector

from ..const import CONF_PROVIDER_MAY_EVACUATE, CONF_PROVIDER_MAY_SEE

DEFAULTS: dict[str, bool] = {CONF_PROVIDER_MAY_SEE: False, CONF_PROVIDER_MAY_EVACUATE: False}


class InvalidProviderOption(Exception):
    """``args``: (field, error key)."""


def suggested(options: Mapping[str, Any]) -> dict[str, bool]:
    """The section's values from the stored options (or the defaults)."""
    return {key: bool(options.get(key, default)) for key, default in DEFAULTS.items()}


def section_schema() -> section:
    """The form's collapsed "provider" section."""
    return section(
        vol.Schema(
            {
                vol.Optional(CONF_PROVIDER_MAY_SEE, default=False): BooleanSelector(),
                vol.Optional(CONF_PROVIDER_MAY_EVACUATE, default=False): BooleanSelector(),
            }
        ),
        {"collapsed": True},
    )


def parse(values: Mapping[str, Any], has_key: bool) -> dict[str, bool]:
    """The options to store; ``InvalidProviderOption`` names what cannot work."""
    chosen = {key: bool(values.get(key, default)) for key, default in DEFAULTS.items()}
    if chosen[CONF_PROVIDER_MAY_EVACUATE] and not chosen[CONF_PROVIDER_MAY_SEE]:
        raise InvalidProviderOption(CONF_PROVIDER_MAY_EVACUATE, "provider_evacuate_needs_see")
    if chosen[CONF_PROVIDER_MAY_SEE] and not has_key:
        raise InvalidProviderOption(CONF_PROVIDER_MAY_SEE, "provider_needs_signing_key")
    return chosen
