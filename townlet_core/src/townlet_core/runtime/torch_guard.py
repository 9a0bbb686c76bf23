"""Find out whether torch can be used without importing it (importing it costs seconds)."""

from __future__ import annotations

import importlib.util

from townlet_core.errors import TorchNotAvailableError

__all__ = ["TorchNotAvailableError", "require_torch", "torch_available"]


def torch_available() -> bool:
    """True when `import torch` would find a module; never imports torch itself."""
    return importlib.util.find_spec("torch") is not None


def require_torch(what: str = "This strategy", extra: str | None = None) -> None:
    """Raise `TorchNotAvailableError` (naming `pip install 'townlet-core[extra]'`) without torch."""
    if not torch_available():
        raise TorchNotAvailableError(what, extra)
