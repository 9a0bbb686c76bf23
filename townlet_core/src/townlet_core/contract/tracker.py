"""`TrackerSpec`: what a tracker plugin registers. Plain data with an import string, so that
nothing a tracker needs (TensorBoard, MLflow, a client library) is imported unless a run is
tracked with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from townlet_core.contract.spec import _IMPORT_STRING_RE, _NAME_RE


@dataclass(frozen=True)
class TrackerSpec:
    """One tracker, declared once, as its plugin module registers it."""

    #: The name users type (`townlet train --track NAME`); equals the entry-point name.
    name: str
    #: One line saying where the tracker sends a run.
    summary: str
    #: Import string of a zero-argument callable (usually a class) returning the tracker: an
    #: object whose `@hookimpl` methods implement some of the run hooks (`townlet_run_started`,
    #: `townlet_metrics_recorded`, `townlet_artifact_written`, `townlet_run_finished`). One
    #: object is made per tracked top-level run, on the tracker's own thread.
    factory: str
    #: Top-level modules the tracker imports (`"mlflow"`), checked without importing them
    #: before a tracked run starts.
    requires: Sequence[str] = field(default_factory=tuple)
    #: What installs `requires`, for the error when one is missing.
    install: str | None = None

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(
                f"tracker name {self.name!r} must be lower case letters, digits and '_', "
                "starting with a letter"
            )
        if not _IMPORT_STRING_RE.match(self.factory):
            raise ValueError(
                f"TrackerSpec {self.name!r}: factory must be an import string "
                f"'package.module:attribute', got {self.factory!r}"
            )
        object.__setattr__(self, "requires", tuple(self.requires))


class TrackerCollector:
    """What a `townlet_register_trackers` implementation receives as `trackers`."""

    def __init__(self) -> None:
        self.specs: list[TrackerSpec] = []

    def add(self, spec: TrackerSpec) -> None:
        """Register one tracker. Call once per tracker the plugin provides."""
        if not isinstance(spec, TrackerSpec):
            raise TypeError(f"trackers.add() takes a TrackerSpec, got {type(spec).__name__}")
        if any(existing.name == spec.name for existing in self.specs):
            raise ValueError(f"tracker {spec.name!r} registered twice by one plugin")
        self.specs.append(spec)
