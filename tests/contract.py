"""Validate payloads against the JSON Schema files in ``schema/`` (the MQTT contract)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"


@cache
def _registry() -> Registry:
    resources = []
    for path in SCHEMA_DIR.glob("*.schema.json"):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(contents)
        resources.append((contents["$id"], resource))
        resources.append((path.name, resource))
    return Registry().with_resources(resources)


@cache
def validator(name: str) -> Draft202012Validator:
    """Validator for ``schema/<name>.schema.json`` (e.g. ``event``, ``state``)."""
    contents = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(
        contents, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def validate(name: str, payload: Any) -> None:
    """Raise ``jsonschema.ValidationError`` when ``payload`` breaks the contract for ``name``."""
    validator(name).validate(payload)


def errors(name: str, payload: Any) -> list[str]:
    """Every contract violation of ``payload``, as readable messages (empty when valid)."""
    return [e.message for e in validator(name).iter_errors(payload)]


STORE_FIELDS = {"event": ("seq", "epoch"), "state": ("epoch", "last_seq", "oldest_seq")}
"""Fields the MQTT sink adds from the agent's event store (``sensor_agent.outbox``)."""


@cache
def _pipeline_validator(name: str) -> Draft202012Validator:
    contents = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    contents["required"] = [key for key in contents["required"] if key not in STORE_FIELDS[name]]
    return Draft202012Validator(
        contents, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def validate_from_pipeline(name: str, payload: Any) -> None:
    """Raise unless ``payload`` is a ``name`` payload as the pipeline hands it to its sinks:
    an ``event`` or ``state`` without the fields only the event store gives (stdout and JSON
    lines carry events as detected; the MQTT sink adds the rest), any other as published."""
    if name not in STORE_FIELDS:
        validate(name, payload)
        return
    present = sorted(set(STORE_FIELDS[name]) & set(payload))
    if present:
        raise AssertionError(f"the pipeline set {present}: only the event store may")
    _pipeline_validator(name).validate(payload)


SITE_DIR = SCHEMA_DIR / "site"


@cache
def site_validator(name: str) -> Draft202012Validator:
    """Validator for ``schema/site/<name>.schema.json`` (the site channel, e.g. ``request``)."""
    resources = []
    for path in [*SCHEMA_DIR.glob("*.schema.json"), *SITE_DIR.glob("*.schema.json")]:
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    contents = json.loads((SITE_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(
        contents,
        registry=Registry().with_resources(resources),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def site_errors(name: str, payload: Any) -> list[str]:
    """Every violation of the site channel's ``name`` contract (empty when valid)."""
    return [e.message for e in site_validator(name).iter_errors(payload)]
