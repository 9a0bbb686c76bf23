"""Registering one plugin with pluggy and collecting what its registration hook adds:
the one way strategies (`townlet_register_strategies`) and trackers
(`townlet_register_trackers`) are taken in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from townlet_core.errors import PluginLoadError


def register_and_collect(
    manager: Any,
    plugin: object,
    plugin_name: str,
    *,
    hook: str,
    argument: str,
    collector: object,
    invalid: Callable[[str], Exception],
    reuse_registered: bool = False,
) -> None:
    """Register `plugin` (unless `reuse_registered` and it already is), then call its own
    implementations of `hook` with `collector` as `argument`, passing only the arguments
    an implementation asks for (pluggy's opt-in rule). An invalid hook implementation is
    `invalid(message)`, with the plugin unregistered again; a plugin without the hook is a
    PluginLoadError."""
    from pluggy import PluginValidationError

    if not (reuse_registered and manager.is_registered(plugin)):
        try:
            manager.register(plugin, name=plugin_name)
            manager.check_pending()
        except PluginValidationError as exc:
            if manager.is_registered(plugin):
                manager.unregister(plugin)
            raise invalid(f"invalid hook implementation: {exc}") from exc
    impls = [impl for impl in getattr(manager.hook, hook).get_hookimpls() if impl.plugin is plugin]
    if not impls:
        raise PluginLoadError(f"implements no {hook} hook")
    for impl in impls:
        impl.function(**{arg: collector for arg in impl.argnames if arg == argument})
