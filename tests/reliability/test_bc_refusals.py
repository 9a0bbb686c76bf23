"""Behaviour cloning refuses bad data before its run directory exists, and stops when it
diverges (issue 10, items 15 (bc), 16, 18 and 19).

Every refusal here is checked twice: the error names what is wrong, and `tmp_path/run` (the
run directory `townlet_train` would create) was never made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

from townlet_core.errors import ConfigError, DataError, TrainingDivergedError
from townlet_strategies_bc.divergence import DIVERGENCE_FACTOR, DIVERGENCE_MARGIN, first_diverged

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "townlet"


def _arrays(
    steps: int = 20, features: int = 4, actions: int = 2, seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    observed = rng.normal(size=(steps, features)).astype(np.float32)
    dones = np.zeros(steps, dtype=bool)
    dones[-1] = True
    return {
        "features": observed,
        "actions": (observed[:, 0] > 0).astype(np.int64) % actions,
        "old_log_probs": np.zeros(steps, np.float32),
        "value_preds": np.zeros(steps + 1, np.float32),
        "rewards": np.ones(steps, np.float32),
        "dones": dones,
    }


def _dataset(folder: Path, samples: list[dict[str, np.ndarray]], metas: Any = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index, arrays in enumerate(samples):
        np.savez(folder / f"s{index}.npz", **arrays)
        if metas is not None and metas[index] is not None:
            (folder / f"s{index}.json").write_text(json.dumps(metas[index]))
        names.append(f"s{index}.npz")
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps(names))
    return manifest


def _refused(train_bc: Any, tmp_path: Path, section: dict[str, Any], error: type, match: str):
    with pytest.raises(error, match=match) as caught:
        train_bc({"epochs": 1, **section})
    assert not (tmp_path / "run").exists(), "the run directory was created before refusing"
    return caught.value


# ---------------------------------------------------------------- item 16


def test_mixed_feature_widths_are_refused_before_the_run_directory(train_bc, tmp_path):
    manifest = _dataset(tmp_path / "d", [_arrays(features=4), _arrays(features=5, seed=1)])
    _refused(train_bc, tmp_path, {"dataset": str(manifest)}, DataError, "observations differ")


def test_a_map_in_one_sample_only_is_refused_before_the_run_directory(train_bc, tmp_path):
    with_map = _arrays(seed=1)
    with_map["map"] = np.zeros((20, 1, 2, 2), np.float32)
    manifest = _dataset(tmp_path / "d", [_arrays(), with_map])
    _refused(train_bc, tmp_path, {"dataset": str(manifest)}, DataError, "observations differ")


def test_action_ids_above_the_declared_action_dim_are_refused(train_bc, tmp_path):
    arrays = _arrays()
    arrays["actions"][3] = 5
    manifest = _dataset(tmp_path / "d", [arrays], metas=[{"action_dim": 2}])
    _refused(
        train_bc, tmp_path, {"dataset": str(manifest)}, DataError, r"action id 5.*action_dim 2"
    )


def test_an_action_id_of_2_to_the_40_is_refused_without_allocating(train_bc, tmp_path):
    arrays = _arrays()
    arrays["actions"][0] = 2**40
    manifest = _dataset(tmp_path / "d", [arrays])
    _refused(train_bc, tmp_path, {"dataset": str(manifest)}, DataError, "TOWNLET_MAX_ACTIONS")


@pytest.mark.parametrize("declared", [0, -1, "2", 1.5])
def test_an_invalid_declared_action_dim_is_refused(train_bc, tmp_path, declared):
    manifest = _dataset(tmp_path / "d", [_arrays()], metas=[{"action_dim": declared}])
    _refused(train_bc, tmp_path, {"dataset": str(manifest)}, DataError, "positive integer")


def test_complex_features_are_refused(train_bc, tmp_path):
    arrays: dict[str, Any] = _arrays()
    arrays["features"] = arrays["features"].astype(np.complex64)
    manifest = _dataset(tmp_path / "d", [arrays])
    _refused(train_bc, tmp_path, {"dataset": str(manifest)}, DataError, "complex")


# ---------------------------------------------------------------- item 15 (bc)


def test_an_eval_env_with_other_observations_is_refused_naming_both_sides(train_bc, tmp_path):
    manifest = _dataset(tmp_path / "d", [_arrays(features=3)])
    error = _refused(
        train_bc,
        tmp_path,
        {"dataset": str(manifest), "eval_env": "CartPole-v1"},
        DataError,
        "CartPole-v1",
    )
    assert str(manifest) in str(error)
    assert "4" in str(error) and "3" in str(error) and "features" in str(error)


def test_an_eval_env_with_fewer_actions_is_refused(train_bc, tmp_path):
    arrays = _arrays(features=4)
    arrays["actions"][:3] = [0, 1, 2]
    manifest = _dataset(tmp_path / "d", [arrays])
    error = _refused(
        train_bc,
        tmp_path,
        {"dataset": str(manifest), "eval_env": "CartPole-v1"},
        DataError,
        "actions",
    )
    assert "CartPole-v1" in str(error) and "3" in str(error) and "2" in str(error)


def test_an_eval_env_unlike_the_capture_env_is_refused(train_bc, tmp_path):
    section = {"capture": {"env": "CartPole-v1", "episodes": 1}, "eval_env": "Acrobot-v1"}
    _refused(train_bc, tmp_path, section, ConfigError, r"'Acrobot-v1' does not fit.*CartPole-v1")


def test_an_eval_env_that_fits_trains(train_bc, tmp_path):
    manifest = _dataset(tmp_path / "d", [_arrays(), _arrays(seed=1)])
    result = train_bc(
        {"dataset": str(manifest), "eval_env": "CartPole-v1", "eval_episodes": 1, "epochs": 1}
    )
    assert result.eval_episodes == 1


# ---------------------------------------------------------------- item 18


@pytest.mark.parametrize("streaming", [False, True])
def test_a_huge_learning_rate_stops_as_diverged(train_bc, tmp_path, streaming):
    manifest = _dataset(tmp_path / "d", [_arrays(steps=64, seed=i) for i in range(4)])
    section = {"learning_rate": 1e30, "batch_size": 8, "epochs": 3, "streaming": streaming}
    with pytest.raises(TrainingDivergedError) as caught:
        train_bc({"dataset": str(manifest), **section})
    message = str(caught.value)
    assert "epoch 1" in message and "batch" in message
    assert "bc.learning_rate" in message
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    assert status["state"] == "error"
    assert not (tmp_path / "run" / "result.json").exists()


def test_the_divergence_rule():
    reference = 0.69
    limit = DIVERGENCE_FACTOR * reference + DIVERGENCE_MARGIN
    healthy = np.array([0.69, 0.5, 3.0, 20.0, limit * 0.99])
    assert first_diverged(healthy, reference) is None
    assert first_diverged(np.array([0.6, limit * 1.01, 0.1]), reference) == 1
    assert first_diverged(np.array([0.6, 0.5, np.nan]), reference) == 2
    assert first_diverged(np.array([np.inf]), reference) == 0
    # a warm start that already fits (tiny reference loss) may still wobble by nats
    assert first_diverged(np.array([1e-6, 5.0, 40.0]), 1e-6) is None


# ---------------------------------------------------------------- item 19


def _cwd_only(tmp_path: Path) -> Path:
    """A manifest in `elsewhere/` naming `s1.npz`, which exists only in tmp_path (the cwd
    `townlet_train` runs from)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    np.savez(elsewhere / "s0.npz", **_arrays())
    np.savez(tmp_path / "s1.npz", **_arrays(seed=1))
    manifest = elsewhere / "manifest.json"
    manifest.write_text(json.dumps(["s0.npz", "s1.npz"]))
    return manifest


def test_strict_paths_refuse_a_working_directory_entry_before_the_run(train_bc, tmp_path):
    manifest = _cwd_only(tmp_path)
    _refused(
        train_bc,
        tmp_path,
        {"dataset": str(manifest), "strict_paths": True},
        DataError,
        r"'s1\.npz'.*strict",
    )


def test_the_run_records_which_rule_found_each_file(train_bc, tmp_path, capsys):
    manifest = _cwd_only(tmp_path)
    result = train_bc({"dataset": str(manifest), "epochs": 1})
    assert "townlet: warning:" in capsys.readouterr().err
    assert result.artifacts["dataset"] == "dataset.json"
    record = json.loads((tmp_path / "run" / "dataset.json").read_text())
    assert [(Path(f["sample"]).name, f["found_by"]) for f in record["files"]] == [
        ("s0.npz", "manifest folder"),
        ("s1.npz", "working directory"),
    ]
    assert record["strict_paths"] is False
    assert record["action_dim"] == 2


def test_the_original_fixture_still_trains(train_bc):
    result = train_bc({"dataset": str(FIXTURES / "bc_idle_v1" / "manifest.json"), "epochs": 1})
    assert result.action_dim == 1
