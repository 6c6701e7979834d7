"""The classifier the integration calls: event in, verdict out; label in, model learns.

It ties the per-source :class:`History`, the models and the question policy together.
Features are taken when an event arrives (what was known then), and a label that comes later
trains on those, not on features recomputed with hindsight. Three bounded stores keep them:

* the last ``max_recent`` events (any verdict: the owner may label one from the log);
* the events the owner may have been notified or asked about (verdict alarm or unsure, or level
  2 and up), for ``keep_for_s`` (30 days) and at most ``max_kept``: an answer to a notification
  is learned however many events came after it, and only an answer older than that finds
  nothing (the caller says so: :meth:`learn` raises ``KeyError``);
* one record per labelled event, so a second answer to the same event replaces the first
  (the models are rebuilt from the records) and the same answer again changes nothing.

Models: ``own`` learns this home's labels (it is what ``export`` gives away: never anything
imported, so evidence cannot travel back and count twice); imported models are kept by their
``model_id`` (importing the same one again changes nothing, a newer export of the same home
replaces the older); ``model``, which judges, is ``own`` merged with the imports.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

import numpy as np

from . import federated
from .features import (
    FEATURE_VERSION,
    N_FEATURES,
    History,
    Shape,
    event_shape,
    event_time,
    extract,
)
from .model import LABELS, Assessment, Label, ModelError, OnlineLogisticModel
from .policy import QuestionPolicy

STATE_FORMAT: Final = 2
DEFAULT_MAX_RECENT: Final = 1000
DEFAULT_MAX_KEPT: Final = 2000
DEFAULT_KEEP_FOR_S: Final = 30 * 86400.0
DEFAULT_MAX_LABELLED: Final = 5000
MAX_IMPORTS: Final = 16
# How ``from_dict`` names a stored own model it could not restore (it starts afresh).
MODEL_RESET: Final = "model reset"


@dataclass
class _Example:
    """What learning a label of one event needs."""

    features: np.ndarray[Any, np.dtype[np.float64]]
    mac: str
    shapes: tuple[Shape, ...]  # the shapes a label of it covers (its incident's so far)
    assessment: Assessment
    at: float  # the event's time (unix seconds)
    label: Label | None = None
    # Its stored form but the label, made once: the state is written every few seconds while
    # events flow (thousands of examples), and an example never changes but for its label.
    stored: dict[str, Any] | None = field(default=None, compare=False, repr=False)


class Classifier:
    """Verdicts for events and learning from the owner's labels, with a persistent state."""

    def __init__(
        self,
        own: OnlineLogisticModel | None = None,
        history: History | None = None,
        *,
        tz: tzinfo = UTC,
        questions: QuestionPolicy | None = None,
        max_recent: int = DEFAULT_MAX_RECENT,
        max_kept: int = DEFAULT_MAX_KEPT,
        keep_for_s: float = DEFAULT_KEEP_FOR_S,
        max_labelled: int = DEFAULT_MAX_LABELLED,
    ) -> None:
        self.own = own or OnlineLogisticModel()
        self.history = history or History()
        self.tz = tz
        self.questions = questions or QuestionPolicy()
        self.max_recent = max_recent
        self.max_kept = max_kept
        self.keep_for_s = keep_for_s
        self.max_labelled = max_labelled
        self.imports: dict[str, OnlineLogisticModel] = {}
        self.model = self.own
        # ``own`` is ``_folded`` (labels too old to keep a record of) plus the records.
        self._folded = self.own.copy()
        self._recent: OrderedDict[str, _Example] = OrderedDict()
        self._kept: OrderedDict[str, _Example] = OrderedDict()
        self._labelled: OrderedDict[str, _Example] = OrderedDict()
        self._newest = 0.0

    # -- verdicts -----------------------------------------------------------------------
    def assess(self, event: Mapping[str, Any]) -> Assessment:
        """The verdict of an event, and remember it (a repeated id is not counted twice)."""
        event_id = str(event["id"])
        known = self._example(event_id)
        if known is not None:
            return known.assessment
        features = extract(event, self.history, self.tz)
        assessment = self.model.assess(features)
        when = event_time(event)
        mac = str(event["source"]["mac"])
        if assessment.verdict == "normal":
            key = f"{mac}/{event_shape(event).rhythm_key}"
            day = datetime.fromtimestamp(when, self.tz).toordinal()
            if self.questions.consider(
                event_id,
                key,
                probability=assessment.probability,
                alarm_from=self.model.alarm_from,
                when=when,
                day=day,
            ):
                assessment = replace(assessment, verdict="unsure")
        self.history.observe(event, self.tz)
        example = _Example(features, mac, self.history.incident_shapes(mac), assessment, when)
        self._newest = max(self._newest, when)
        self._recent[event_id] = example
        while len(self._recent) > self.max_recent:
            self._recent.popitem(last=False)
        if assessment.verdict != "normal" or int(event.get("level", 0)) >= 2:
            self._keep(event_id, example)
        return assessment

    def _keep(self, event_id: str, example: _Example) -> None:
        self._kept[event_id] = example
        horizon = self._newest - self.keep_for_s
        while self._kept and (
            len(self._kept) > self.max_kept or next(iter(self._kept.values())).at < horizon
        ):
            self._kept.popitem(last=False)

    def keep(self, event_id: str) -> bool:
        """The owner was notified of ``event_id``: keep what learning its label needs as long
        as answers are accepted. False when the event is no longer known."""
        example = self._example(event_id)
        if example is None:
            return False
        self._keep(event_id, example)
        return True

    def _example(self, event_id: str) -> _Example | None:
        for store in (self._labelled, self._kept, self._recent):
            if (found := store.get(event_id)) is not None:
                return found
        return None

    def can_learn(self, event_id: str) -> bool:
        """Whether a label of ``event_id`` can still be learned without the event itself."""
        return self._example(event_id) is not None

    # -- labels -------------------------------------------------------------------------
    def learn(
        self, event_id: str, label: str, event: Mapping[str, Any] | None = None
    ) -> bool | None:
        """Learn the owner's label of an event. Returns whether the model had it right
        (prequential), or None when the event already had this very label (nothing changes).
        A different label replaces the earlier one. An event no longer kept is assessed
        afresh from ``event`` when given; otherwise raises KeyError (the answer came too late)."""
        if label not in LABELS:
            raise ModelError(f"label must be 'normal' or 'alarm', not {label!r}")
        checked: Label = "alarm" if label == "alarm" else "normal"
        example = self._example(event_id)
        if example is None:
            if event is None:
                raise KeyError(event_id)
            self.assess(event)
            example = self._example(event_id)
            assert example is not None
        self.questions.answered(event_id)
        previous = example.label
        if previous == checked:
            return None
        if previous is not None:
            self.history.add_label(example.mac, previous, example.shapes, -1)
        example.label = checked
        self.history.add_label(example.mac, checked, example.shapes)
        self._labelled[event_id] = example
        self._labelled.move_to_end(event_id)
        if previous is not None:
            right = (example.assessment.probability >= 0.5) == (checked == "alarm")
            self._rebuild()
            return right
        right = self.own.learn(example.features, checked)
        while len(self._labelled) > self.max_labelled:
            # Too old to keep a record of: learned for good, no longer answerable.
            oldest_id, oldest = self._labelled.popitem(last=False)
            assert oldest.label is not None
            self._folded.learn(oldest.features, oldest.label)
            self._kept.pop(oldest_id, None)
            self._recent.pop(oldest_id, None)
        self._combine()
        return right

    def _rebuild(self) -> None:
        """``own`` afresh from the folded labels and the records (a label was replaced)."""
        self.own = self._folded.copy()
        for example in self._labelled.values():
            assert example.label is not None
            self.own.learn(example.features, example.label)
        self._combine()

    def _combine(self) -> None:
        model = self.own
        for imported in self.imports.values():
            model = model.merge(imported)
        self.model = model

    def features_of(self, event_id: str) -> list[float] | None:
        """The features taken when the event arrived (None once no store keeps it)."""
        example = self._example(event_id)
        return None if example is None else [float(v) for v in example.features]

    # -- the model's life ---------------------------------------------------------------
    def reset_model(self) -> None:
        """Forget what was learned: a fresh model (new id), no imports, no labels (the owner's
        labels are also taken out of the source history, which stays)."""
        for example in self._labelled.values():
            assert example.label is not None
            self.history.add_label(example.mac, example.label, example.shapes, -1)
            example.label = None
        self._labelled.clear()
        self.own = self.own.blank()
        self._folded = self.own.copy()
        self.imports.clear()
        self.model = self.own

    def replace_prior(self, old: federated.Prior, new: federated.Prior) -> None:
        """Swap the prior ``old`` under this home's own labels for ``new`` (the federation's
        global model for the hand-set prior, a newer global model for an older one): in
        ``own`` and in the folded labels a rebuild starts from, so a replaced label keeps the
        new prior; imported models keep theirs. Raises ModelError, changing nothing, when
        ``new`` does not fit."""
        own = federated.replace_prior(self.own, old, new)
        folded = federated.replace_prior(self._folded, old, new)
        self.own, self._folded = own, folded
        self._combine()

    def merge(self, exported: Mapping[str, Any]) -> bool:
        """Import a model exported by another home; False when that very model was already
        imported (nothing changes). Raises ModelError when it does not fit or is this home's."""
        model = OnlineLogisticModel.from_dict(exported)
        if model.model_id == self.own.model_id:
            raise ModelError("this is this home's own model")
        known = self.imports.get(model.model_id)
        if known is not None and known.to_dict() == model.to_dict():
            return False
        if known is None and len(self.imports) >= MAX_IMPORTS:
            raise ModelError(f"at most {MAX_IMPORTS} models can be imported; reset first")
        self.imports[model.model_id] = model
        self._combine()
        return True

    def export(self) -> dict[str, Any]:
        """This home's own model (never the imported ones); raises ModelError when too few
        labels."""
        return self.own.export()

    def stats(self) -> dict[str, Any]:
        """Labels learned and prequential accuracy, for the sensor."""
        return {
            "labels": self.own.labels,
            "labels_normal": self.own.label_counts["normal"],
            "labels_alarm": self.own.label_counts["alarm"],
            "accuracy": self.own.accuracy,
            "imported_models": len(self.imports),
            "imported_labels": self.model.labels - self.own.labels,
            "decided_by": self.model.decided_by,
            "feature_version": FEATURE_VERSION,
            "model_id": self.own.model_id,
        }

    # -- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state for local storage."""
        examples: dict[str, dict[str, Any]] = {}
        stores = {"recent": self._recent, "kept": self._kept, "labelled": self._labelled}
        listed = {name: list(store) for name, store in stores.items()}
        for store in stores.values():
            for event_id, example in store.items():
                examples.setdefault(event_id, _example_dict(example))
        return {
            "format": STATE_FORMAT,
            "feature_version": FEATURE_VERSION,
            "own": self.own.to_dict(),
            "folded": self._folded.to_dict(),
            "imports": [model.to_dict() for model in self.imports.values()],
            "history": self.history.to_dict(),
            "questions": self.questions.to_dict(),
            "examples": examples,
            **listed,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, tz: tzinfo = UTC, questions: QuestionPolicy | None = None
    ) -> tuple[Classifier, str | None]:
        """Restore a stored state. Whatever does not fit this feature version (or is
        malformed) starts afresh, and the reason is returned (None when all was restored).
        ``questions`` gives the question policy's current settings."""
        questions = questions or QuestionPolicy()
        if not isinstance(data, Mapping) or data.get("feature_version") != FEATURE_VERSION:
            version = data.get("feature_version") if isinstance(data, Mapping) else None
            return cls(tz=tz, questions=questions), (
                f"stored classifier has feature version {version!r}, this version uses "
                f"{FEATURE_VERSION}: the model starts afresh"
            )
        reasons: list[str] = []
        own: OnlineLogisticModel | None = None
        folded: OnlineLogisticModel | None = None
        try:
            own = OnlineLogisticModel.from_dict(data["own"])
            folded = OnlineLogisticModel.from_dict(data["folded"])
        except (ModelError, KeyError) as err:
            own = folded = None
            reasons.append(f"{MODEL_RESET} ({err})")
        try:
            history = History.from_dict(data["history"])
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            history = None
            reasons.append(f"source history reset ({err!r})")
        try:
            questions = QuestionPolicy.from_dict(
                data["questions"], per_day=questions.per_day, ask_from=questions.ask_from
            )
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            reasons.append(f"question budget reset ({err!r})")
        classifier = cls(own, history, tz=tz, questions=questions)
        if folded is not None:
            classifier._folded = folded
        try:
            for raw in data.get("imports", []):
                imported = OnlineLogisticModel.from_dict(raw)
                classifier.imports[imported.model_id] = imported
        except ModelError as err:
            classifier.imports.clear()
            reasons.append(f"imported models dropped ({err})")
        try:
            examples = {
                str(event_id): _example_of(raw) for event_id, raw in data["examples"].items()
            }
            for name in ("recent", "kept", "labelled"):
                store = getattr(classifier, f"_{name}")
                for event_id in data[name]:
                    store[str(event_id)] = examples[str(event_id)]
            classifier._newest = max((e.at for e in examples.values()), default=0.0)
            if any(e.label is None for e in classifier._labelled.values()):
                raise ValueError("a labelled record without its label")
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            for store in (classifier._recent, classifier._kept, classifier._labelled):
                store.clear()
            reasons.append(f"recent event features dropped ({err!r})")
        classifier._combine()
        return classifier, "; ".join(reasons) or None


def _example_dict(example: _Example) -> dict[str, Any]:
    if example.stored is None:
        nonzero = np.flatnonzero(example.features)
        example.stored = {
            # Sparse and rounded: most features are 0 for any one event; a third of the size.
            "features": [[int(i), round(float(example.features[i]), 4)] for i in nonzero],
            "mac": example.mac,
            "shapes": [[s.bucket, s.size, sorted(s.ports)] for s in example.shapes],
            "assessment": example.assessment.as_dict(),
            "at": example.at,
        }
    return {**example.stored, "label": example.label}


def _example_of(raw: Mapping[str, Any]) -> _Example:
    features = np.zeros(N_FEATURES, dtype=np.float64)
    for index, value in raw["features"]:
        if not 0 <= int(index) < N_FEATURES:
            raise ValueError("feature index out of range")
        features[int(index)] = float(value)
    if not np.all(np.isfinite(features)):
        raise ValueError("features not finite")
    stored = raw["assessment"]
    decided_by = stored["decided_by"]
    if stored["verdict"] not in ("normal", "alarm", "unsure") or decided_by not in (
        "rule",
        "prior",
        "model",
    ):
        raise ValueError("unknown verdict or decider")
    label = raw.get("label")
    return _Example(
        features,
        str(raw["mac"]),
        tuple(
            Shape(str(b), str(s), frozenset(int(p) for p in ports)) for b, s, ports in raw["shapes"]
        ),
        Assessment(
            stored["verdict"], float(stored["probability"]), decided_by, int(stored["labels"])
        ),
        float(raw["at"]),
        label if label in LABELS else None,
    )
