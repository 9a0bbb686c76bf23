"""The plugin contract, as pluggy hook specifications. Read this file first.

A strategy distribution declares an entry point in the `townlet_core.strategies` group whose
name is the strategy name and whose value is a light module (no torch at import). That module
implements the hooks below with `@townlet_core.hookimpl`. Hooks are always called with keyword
arguments, are prefixed `townlet_`, and only ever gain arguments: an implementation may accept
fewer arguments than the specification, so a plugin written today keeps working tomorrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from townlet_core.contract.spec import SpecCollector

PROJECT_NAME = "townlet"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class TownletHookSpecs:
    """Hook specifications of the `townlet` plugin project."""

    @hookspec
    def townlet_register_strategies(self, specs: SpecCollector) -> None:
        """Add this plugin's strategies with `specs.add(StrategySpec(...))`.

        .. versionadded:: 0.1
        """
