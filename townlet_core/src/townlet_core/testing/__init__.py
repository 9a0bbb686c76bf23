"""Test kit for strategy authors (needs pytest; import it only from tests).

Two pieces:

* fixtures: add ``pytest_plugins = ["townlet_core.testing"]`` to your ``conftest.py`` to get
  ``townlet_registry`` (an isolated registry: no entry-point discovery, register plugins
  with ``townlet_registry.add_plugin(module)``) and ``townlet_orchestrator`` (an orchestrator
  over that registry, writing runs under ``tmp_path``);
* ``StrategyContract``: subclass it in your tests, set the class attributes, and pytest runs
  the checks every strategy must pass (entry point, config schema, torch isolation,
  protocol, and a short real run returning a valid result DTO).
"""

from townlet_core.testing.contract import StrategyContract
from townlet_core.testing.fixtures import townlet_orchestrator, townlet_registry

__all__ = ["StrategyContract", "townlet_orchestrator", "townlet_registry"]
