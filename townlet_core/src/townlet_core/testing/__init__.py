"""Test kit for strategy authors (`pip install 'townlet-core[testing]'`; import it only from
tests).

* Fixtures, registered automatically through the `pytest11` entry point of townlet-core:
  ``townlet_registry`` (an isolated registry: no entry-point discovery; register plugins with
  ``townlet_registry.add_plugin(module)``), ``townlet_orchestrator`` (an orchestrator over
  that registry, writing runs under ``tmp_path``) and ``townlet_train`` (run a strategy by
  name with one config section).
* ``StrategyContract``: subclass it in your tests, set the class attributes, and pytest runs
  the checks every strategy must pass (entry point, config schema, torch isolation, the
  spec builds a strategy, and a short real run: a valid result, the same result from the
  same seed, a checkpoint that exists, reads back and warm-starts a second run).
* ``WarmStartPlugin``: a one-stage composing strategy, ``contract_warm_start``, that runs a
  strategy warm-started from a checkpoint (config section: ``warm_start_section(...)``).

Names are imported lazily so that loading the pytest plugin stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from townlet_core.testing.contract import (
        WARM_START_STAGE,
        WARM_START_STRATEGY,
        StrategyContract,
        WarmStartPlugin,
        register_plugins,
        warm_start_section,
    )

__all__ = [
    "WARM_START_STAGE",
    "WARM_START_STRATEGY",
    "StrategyContract",
    "WarmStartPlugin",
    "register_plugins",
    "warm_start_section",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("townlet_core.testing.contract"), name)
    raise AttributeError(f"module 'townlet_core.testing' has no attribute {name!r}")
