"""The classifier the integration calls: event in, verdict out; label in, model learns.

It ties the per-source :class:`History`, the :class:`OnlineLogisticModel` and a bounded cache
of recent events' features together. Features are taken when the event arrives (what was
known then), and a label that comes later trains on those, not on features recomputed with
hindsight.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any, Final

import numpy as np

from .features import FEATURE_VERSION, History, event_ports, extract
from .model import LABELS, Assessment, Label, ModelError, OnlineLogisticModel

STATE_FORMAT: Final = 1
DEFAULT_MAX_PENDING: Final = 1000


@dataclass
class _Pending:
    features: list[float]
    mac: str
    level: int
    kind: str
    ports: frozenset[int]
    assessment: Assessment
    label: Label | None = None


class Classifier:
    """Verdicts for events and learning from the owner's labels, with a persistent state."""

    def __init__(
        self,
        model: OnlineLogisticModel | None = None,
        history: History | None = None,
        *,
        tz: tzinfo = UTC,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.model = model or OnlineLogisticModel()
        self.history = history or History()
        self.tz = tz
        self.max_pending = max_pending
        self._pending: OrderedDict[str, _Pending] = OrderedDict()

    def assess(self, event: Mapping[str, Any]) -> Assessment:
        """The verdict of an event, and remember it (a repeated id is not counted twice)."""
        event_id = str(event["id"])
        known = self._pending.get(event_id)
        if known is not None:
            return known.assessment
        features = extract(event, self.history, self.tz)
        level = int(event.get("level", 0))
        assessment = self.model.assess(features, level)
        self.history.observe(event)
        self._pending[event_id] = _Pending(
            [float(v) for v in features],
            str(event["source"]["mac"]),
            level,
            str(event.get("kind")),
            event_ports(event.get("evidence") or {}),
            assessment,
        )
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
        return assessment

    def learn(self, event_id: str, label: str, event: Mapping[str, Any] | None = None) -> bool:
        """Learn the owner's label of an event; returns whether the model had it right
        (prequential). An event no longer cached is re-assessed from ``event`` when given;
        otherwise raises KeyError. A changed label moves the source's label counts."""
        if label not in LABELS:
            raise ModelError(f"label must be 'normal' or 'alarm', not {label!r}")
        checked: Label = "alarm" if label == "alarm" else "normal"
        pending = self._pending.get(event_id)
        if pending is None:
            if event is None:
                raise KeyError(event_id)
            self.assess(event)
            pending = self._pending[event_id]
        behaviour = (pending.kind, pending.ports)
        if pending.label is not None:
            self.history.add_label(pending.mac, pending.label, behaviour, -1)
        pending.label = checked
        self.history.add_label(pending.mac, checked, behaviour)
        return self.model.learn(np.asarray(pending.features), checked, pending.level)

    def features_of(self, event_id: str) -> list[float] | None:
        """The features taken when the event arrived (None once it left the cache)."""
        pending = self._pending.get(event_id)
        return None if pending is None else list(pending.features)

    def reset_model(self) -> None:
        """Forget what was learned (a fresh model with the same settings); keep the history."""
        self.model = self.model.blank()

    def merge(self, exported: Mapping[str, Any]) -> None:
        """Merge a model exported by another home into this one (raises ModelError)."""
        self.model = self.model.merge(OnlineLogisticModel.from_dict(exported))

    def stats(self) -> dict[str, Any]:
        """Labels learned and prequential accuracy, for the sensor."""
        return {
            "labels": self.model.labels,
            "labels_normal": self.model.label_counts["normal"],
            "labels_alarm": self.model.label_counts["alarm"],
            "accuracy": self.model.accuracy,
            "source": "prior" if self.model.uses_prior else "model",
            "feature_version": FEATURE_VERSION,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state for local storage (model, source history, recent features)."""
        return {
            "format": STATE_FORMAT,
            "feature_version": FEATURE_VERSION,
            "model": self.model.to_dict(),
            "history": self.history.to_dict(),
            "pending": {
                event_id: {
                    "features": [round(v, 4) for v in item.features],  # a third of the size
                    "mac": item.mac,
                    "level": item.level,
                    "kind": item.kind,
                    "ports": sorted(item.ports),
                    "assessment": item.assessment.as_dict(),
                    "label": item.label,
                }
                for event_id, item in self._pending.items()
            },
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, tz: tzinfo = UTC
    ) -> tuple[Classifier, str | None]:
        """Restore a stored state. Whatever does not fit this feature version (or is
        malformed) starts afresh, and the reason is returned (None when all was restored)."""
        if not isinstance(data, Mapping) or data.get("feature_version") != FEATURE_VERSION:
            version = data.get("feature_version") if isinstance(data, Mapping) else None
            return cls(tz=tz), (
                f"stored classifier has feature version {version!r}, this version uses "
                f"{FEATURE_VERSION}: the model starts afresh"
            )
        reasons: list[str] = []
        try:
            model = OnlineLogisticModel.from_dict(data["model"])
        except (ModelError, KeyError) as err:
            model = None
            reasons.append(f"model reset ({err})")
        try:
            history = History.from_dict(data["history"])
        except (KeyError, TypeError, ValueError) as err:
            history = None
            reasons.append(f"source history reset ({err!r})")
        classifier = cls(model, history, tz=tz)
        try:
            for event_id, raw in data.get("pending", {}).items():
                features = [float(v) for v in raw["features"]]
                if len(features) != len(classifier.model.mean):
                    raise ValueError("feature vector of the wrong length")
                stored = raw["assessment"]
                classifier._pending[str(event_id)] = _Pending(
                    features,
                    str(raw["mac"]),
                    int(raw["level"]),
                    str(raw["kind"]),
                    frozenset(int(port) for port in raw["ports"]),
                    Assessment(stored["verdict"], float(stored["probability"]), stored["source"]),
                    raw["label"] if raw.get("label") in LABELS else None,
                )
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            classifier._pending.clear()
            reasons.append(f"recent event features dropped ({err!r})")
        return classifier, "; ".join(reasons) or None
