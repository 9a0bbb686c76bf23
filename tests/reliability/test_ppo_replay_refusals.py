"""PPO on replay data runs the same dataset checks as `townlet dataset validate` before its
run directory exists (issue 10, item 16): mixed feature widths used to crash inside torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

import townlet_strategies_ppo.plugin
from townlet_core import StrategyRegistry
from townlet_core.errors import DataError


def _sample(steps: int, features: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(features)
    dones = np.zeros(steps, dtype=bool)
    dones[-1] = True
    return {
        "features": rng.normal(size=(steps, features)).astype(np.float32),
        "actions": np.zeros(steps, dtype=np.int64),
        "old_log_probs": np.zeros(steps, np.float32),
        "value_preds": np.zeros(steps + 1, np.float32),
        "rewards": np.ones(steps, np.float32),
        "dones": dones,
    }


@pytest.mark.parametrize(
    ("widths", "actions", "match"),
    [
        ((4, 5), None, "observations differ in shape"),  # two widths in one dataset
        ((4, 4), 2**40, "action"),  # an id that would size a 281 TB network
    ],
)
def test_replay_data_validate_rejects_never_reaches_a_run_directory(
    townlet_registry: StrategyRegistry,
    townlet_train: Any,
    tmp_path: Path,
    widths: tuple[int, int],
    actions: int | None,
    match: str,
) -> None:
    townlet_registry.add_plugin(
        townlet_strategies_ppo.plugin, distribution="townlet-strategies-ppo"
    )
    data = tmp_path / "data"
    data.mkdir()
    for index, width in enumerate(widths):
        arrays = _sample(10, width)
        if actions is not None:
            arrays["actions"][0] = actions
        np.savez(data / f"s{index}.npz", **arrays)
    (data / "manifest.json").write_text(json.dumps(["s0.npz", "s1.npz"]))
    with pytest.raises(DataError, match=match):
        townlet_train("ppo", {"dataset": str(data / "manifest.json")})
    assert not (tmp_path / "run").exists()
