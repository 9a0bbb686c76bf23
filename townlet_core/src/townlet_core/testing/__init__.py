"""Test kit for strategy authors (needs pytest; import it only from tests).

* Fixtures, registered automatically through the `pytest11` entry point of townlet-core:
  ``townlet_registry`` (an isolated registry: no entry-point discovery; register plugins with
  ``townlet_registry.add_plugin(module)``) and ``townlet_orchestrator`` (an orchestrator over
  that registry, writing runs under ``tmp_path``).
* ``StrategyContract``: subclass it in your tests, set the class attributes, and pytest runs
  the checks every strategy must pass (entry point, config schema, torch isolation,
  protocol, and a short real run returning a valid result DTO).

Names are imported lazily so that loading the pytest plugin stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from townlet_core.testing.contract import StrategyContract

__all__ = ["StrategyContract"]


def __getattr__(name: str) -> Any:
    if name == "StrategyContract":
        from townlet_core.testing.contract import StrategyContract

        return StrategyContract
    raise AttributeError(f"module 'townlet_core.testing' has no attribute {name!r}")
