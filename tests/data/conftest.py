"""Helpers for data tests: the shared fixtures folder and synthetic Townlet-shaped samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: Real files written by the original Townlet tools (copied from the team's shared fixtures).
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "townlet"


def make_arrays(
    steps: int = 5,
    features: int = 3,
    map_shape: tuple[int, ...] | None = (2, 3, 3),
    actions: int = 3,
    seed: int = 0,
    bootstrap: bool = True,
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {
        "features": rng.normal(size=(steps, features)).astype(np.float32),
        "actions": rng.integers(0, actions, size=steps).astype(np.int64),
        "old_log_probs": rng.normal(size=steps).astype(np.float32),
        "value_preds": rng.normal(size=steps + int(bootstrap)).astype(np.float32),
        "rewards": rng.normal(size=steps).astype(np.float32),
        "dones": np.zeros(steps, dtype=bool),
    }
    arrays["dones"][-1] = True
    if map_shape is not None:
        arrays["map"] = rng.normal(size=(steps, *map_shape)).astype(np.float32)
    return arrays


def save_sample(
    directory: Path, name: str, arrays: dict[str, Any], meta: dict[str, Any] | None = None
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.npz"
    np.savez(path, **arrays)
    if meta is not None:
        import json

        path.with_suffix(".json").write_text(json.dumps(meta))
    return path


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
