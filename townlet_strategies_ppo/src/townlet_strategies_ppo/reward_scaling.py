"""Reward scaling's statistics on their way into and out of checkpoints.

`ppo.normalize_rewards` divides rewards by the running standard deviation of the
discounted return (`townlet_core.nn.normalize.RewardScaler`). Its statistics are the
trainer's, not the policy's (a policy never sees rewards), so they are saved twice:

- in every checkpoint's description, as `extra["reward_scaler"]` (mean, var, count: plain
  JSON), which a warm start reads to go on scaling rewards as the run it starts from did;
- in the training state of every periodic checkpoint, with the per-env discounted returns
  in flight too, so a resume continues the scaling exactly.

Both are data from disk: each number is checked before it is used, and a bad one is a
DataError naming the file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from townlet_core.errors import DataError
from townlet_core.nn.normalize import RewardScaler

#: The key of a checkpoint's `extra` (and of a training state) that holds the statistics.
EXTRA_KEY = "reward_scaler"


def checkpoint_record(scaler: RewardScaler) -> dict[str, float]:
    """What a checkpoint's description records: the statistics, not the returns in flight
    (they belong to the run's own environments)."""
    state = scaler.state_dict()
    return {"mean": state["mean"], "var": state["var"], "count": state["count"]}


def restore(scaler: RewardScaler, saved: Any, where: Path | str) -> None:
    """Load statistics saved by `checkpoint_record` or `RewardScaler.state_dict` (then with
    the per-env returns) into `scaler`, after checking every number."""
    if not isinstance(saved, dict):
        raise DataError(f"{where}: {EXTRA_KEY} is not a mapping; the checkpoint is damaged")
    checked: dict[str, Any] = {}
    for name, lowest in (("mean", -math.inf), ("var", 0.0), ("count", 0.0)):
        value = saved.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            value = math.nan  # reported below as not a number
        if not math.isfinite(value) or value < lowest:
            raise DataError(
                f"{where}: {EXTRA_KEY}.{name}={repr(saved.get(name))[:80]} is not a finite number"
                f"{' >= 0' if lowest == 0.0 else ''}; the checkpoint is damaged"
            )
        checked[name] = float(value)
    if checked["count"] <= 0.0:
        raise DataError(f"{where}: {EXTRA_KEY}.count must be positive; the checkpoint is damaged")
    returns = saved.get("returns")
    if returns is not None:
        if (
            not isinstance(returns, list)
            or len(returns) != len(scaler.returns)
            or not all(type(r) in (int, float) and math.isfinite(r) for r in returns)
        ):
            raise DataError(
                f"{where}: {EXTRA_KEY}.returns is not {len(scaler.returns)} finite numbers "
                "(one per environment); the checkpoint is damaged or from another run"
            )
        checked["returns"] = [float(r) for r in returns]
    scaler.load_state_dict(checked)
