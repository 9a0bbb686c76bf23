"""`World`: which of a run's processes this is, for data-parallel runs under torchrun.

`townlet train --nproc N` (or plain `torchrun ... -m townlet_core.cli train ...`) starts N
processes, the ranks of one run. Each reads its place from the variables torchrun sets
(`RANK`, `WORLD_SIZE`, `LOCAL_RANK`); a plain run is rank 0 of 1. Rank 0 alone writes the
run directory; every rank trains. Torch-free: strategies that support it
(`StrategySpec.supports_distributed`) open the process group themselves
(`townlet_core.nn.distributed`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from townlet_core.errors import ConfigError

#: The variables torchrun sets in each process it starts.
RANK_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """This process's rank among the `size` processes of one run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_writer(self) -> bool:
        """Rank 0 writes the run directory, the metrics and the checkpoints; no other does."""
        return self.rank == 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> World:
        """The world torchrun describes in `environ` (default: this process's), or a
        single process when it describes none."""
        env = os.environ if environ is None else environ
        if "WORLD_SIZE" not in env:
            return cls()
        try:
            rank, size = int(env.get("RANK", "0")), int(env["WORLD_SIZE"])
            local_rank = int(env.get("LOCAL_RANK", "0"))
        except ValueError:
            values = ", ".join(f"{k}={env.get(k)!r}" for k in RANK_VARIABLES)
            raise ConfigError(
                f"the torchrun variables are not integers ({values}); start the run with "
                "'townlet train --nproc N' or torchrun"
            ) from None
        if not 0 <= rank < size:
            raise ConfigError(f"RANK={rank} is outside WORLD_SIZE={size}")
        return cls(rank=rank, size=size, local_rank=local_rank)


SINGLE = World()
