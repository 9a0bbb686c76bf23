"""The `TrainingStrategy` protocol: what a strategy's factory must return.

A protocol rather than a base class: a strategy is any object with these members, so plugin
authors depend on no class hierarchy, and `isinstance(obj, TrainingStrategy)` still checks it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from townlet_core.contract.context import TrainingContext
    from townlet_core.dto import TrainingResultDTO


@runtime_checkable
class TrainingStrategy(Protocol):
    """A training algorithm the orchestrator can run by name."""

    #: The strategy's registered name.
    name: str
    #: Whether `run` needs PyTorch; the orchestrator checks before calling it.
    requires_torch: bool

    def prepare(self, context: TrainingContext, config: Any) -> None:
        """Check preconditions (data present, environment known) before anything runs.

        Called before the run directory exists: check, do not write. Raise a
        `townlet_core.errors.TownletError` subclass with the fix in its message.
        """

    def run(self, context: TrainingContext, config: Any) -> TrainingResultDTO:
        """Train with `config` (an instance of the strategy's config model) and return the
        result DTO. Write artifacts under `context.run_dir` and metrics via `context.metrics`."""
        ...
