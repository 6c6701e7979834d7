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
