"""Every failure a user can act on has its own exception type, with the fix in the message.

The CLI turns a `TownletError` into one line on stderr and exit code 2 (a traceback only
with `-v`). Code that is not user-facing may raise anything; it then reads as a bug.
"""

from __future__ import annotations


class TownletError(Exception):
    """Base of user-actionable errors. `exit_code` is what the CLI exits with."""

    exit_code = 2


class ConfigError(TownletError, ValueError):
    """A config file, `--set` override or option value is missing, malformed or invalid."""


class UnknownStrategyError(TownletError, LookupError):
    """No installed (and enabled) distribution provides the requested strategy."""


class StrategyConflictError(TownletError):
    """Two distributions provide a strategy with the same name."""


class PluginLoadError(TownletError):
    """A strategy plugin could not be imported, or registered something unusable."""


class IncompatiblePluginError(PluginLoadError):
    """A plugin targets a core version or strategy API this core does not provide."""


class DataError(TownletError):
    """A dataset, manifest or sample is missing, unreadable or malformed.

    The message names the file and what to do about it; nothing trains on bad data silently.
    """


class RunDirectoryError(TownletError):
    """The run directory cannot be created or would overwrite an earlier run."""


class StrategyRunError(TownletError):
    """A strategy broke its contract at run time (for example returned no result DTO)."""


class TrainingDivergedError(TownletError):
    """Training produced NaN or infinite numbers (or cannot go on); the message names where,
    and the last good checkpoint is left intact."""


class RankLostError(TownletError):
    """A rank of a data-parallel run lost contact with the others (one of them stopped or
    was killed); every rank stops, and the run's last checkpoint is left intact."""


class UnknownRunError(TownletError, LookupError):
    """A run named on the command line is neither a run under the runs root nor a run folder."""


class RunInterruptedError(TownletError):
    """The user stopped a run (Ctrl-C, SIGINT); its files are kept. Exit code 130, as shells use."""

    exit_code = 130


class TorchNotAvailableError(TownletError, RuntimeError):
    """A strategy needs PyTorch, which is not installed. The message names the extra."""

    def __init__(self, what: str = "This strategy", extra: str | None = None) -> None:
        self.extra = extra
        install = f"pip install 'townlet-core[{extra}]'" if extra else "pip install torch"
        super().__init__(
            f"{what} requires PyTorch, which is not installed. Install with: {install}"
        )
