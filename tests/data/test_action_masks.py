"""Optional per-step action masks in a dataset: stored as `action_masks` (T, W) bool in the
same `.npz`, checked against the actions, and exposed to trainers; original Townlet files
(which have none) load exactly as before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from townlet_core.data import ReplayDataset, TransitionLoader, read_sample
from townlet_core.data.validation import check_dataset, require_valid_dataset
from townlet_core.errors import DataError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "townlet"


def _arrays(actions: np.ndarray, masks: np.ndarray | None) -> dict[str, np.ndarray]:
    steps = len(actions)
    arrays = {
        "features": np.zeros((steps, 3), np.float32),
        "actions": actions,
        "old_log_probs": np.zeros(steps, np.float32),
        "value_preds": np.zeros(steps, np.float32),
        "rewards": np.ones(steps, np.float32),
        "dones": np.eye(1, steps, steps - 1, dtype=bool)[0],
    }
    if masks is not None:
        arrays["action_masks"] = masks
    return arrays


def _write(folder: Path, samples: list[tuple[dict[str, np.ndarray], dict]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, (arrays, metadata) in enumerate(samples):
        np.savez(folder / f"s{index}.npz", **arrays)
        (folder / f"s{index}.json").write_text(json.dumps(metadata))
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps([f"s{i}.npz" for i in range(len(samples))]))
    return manifest


MASKS = np.array([[1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 1, 1]], dtype=np.int8)
ACTIONS = np.array([2, 1, 0])


def test_masks_load_as_booleans_and_reach_every_batch(tmp_path):
    manifest = _write(tmp_path / "d", [(_arrays(ACTIONS, MASKS), {"action_dim": 4})] * 2)
    dataset = ReplayDataset(manifest, batch_size=2)
    assert dataset.action_mask_width == 4
    trajectory = dataset.trajectory(0)
    assert trajectory.action_masks is not None and trajectory.action_masks.dtype == np.bool_
    np.testing.assert_array_equal(trajectory.action_masks, MASKS.astype(bool))
    (batch,) = list(dataset)
    assert batch.action_masks is not None and batch.action_masks.shape == (2, 3, 4)
    loader = TransitionLoader(dataset, batch_size=6, shuffle=False)
    (steps,) = list(loader)
    assert steps.action_masks is not None and steps.action_masks.shape == (6, 4)
    assert loader.arrays()["action_masks"].shape == (6, 4)  # type: ignore[union-attr]
    summary = require_valid_dataset(manifest)
    assert summary.action_mask_width == 4 and summary.as_dict()["action_mask_width"] == 4
    assert dataset.sample_metrics()[0]["action_blocked_ratio"] == pytest.approx(3 / 12)


def test_samples_without_masks_read_as_allowing_everything_beside_masked_ones(tmp_path):
    manifest = _write(
        tmp_path / "d",
        [(_arrays(ACTIONS, MASKS), {"action_dim": 4}), (_arrays(ACTIONS, None), {"action_dim": 4})],
    )
    for streaming in (False, True):
        dataset = ReplayDataset(manifest, streaming=streaming)
        rows = np.concatenate(
            [b.action_masks for b in TransitionLoader(dataset, batch_size=3, shuffle=False)]
        )
        np.testing.assert_array_equal(rows[3:], np.ones((3, 4), bool))
        np.testing.assert_array_equal(rows[:3], MASKS.astype(bool))


def test_datasets_without_masks_expose_none():
    dataset = ReplayDataset(FIXTURES / "replay_samples" / "replay_manifest.json")
    assert dataset.action_mask_width is None
    assert all(t.action_masks is None for t in dataset.trajectories())
    assert next(iter(TransitionLoader(dataset, batch_size=4))).action_masks is None
    assert next(iter(dataset)).action_masks is None
    assert (
        "action_mask_width"
        not in require_valid_dataset(FIXTURES / "replay_samples" / "replay_manifest.json").as_dict()
    )


def test_original_townlet_fixtures_still_load_exactly():
    """Every array of every original sample reads back with the dtype and values numpy sees."""
    samples = sorted(FIXTURES.rglob("*.npz"))
    assert samples
    for path in samples:
        trajectory = read_sample(path)
        with np.load(path) as raw:
            assert set(trajectory.arrays()) == set(raw.files)
            np.testing.assert_array_equal(trajectory.actions, raw["actions"])
            assert trajectory.actions.dtype == np.int64
        assert trajectory.action_masks is None


@pytest.mark.parametrize(
    ("masks", "actions", "metadata", "message"),
    [
        (MASKS[:, :3].astype(float), ACTIONS, {}, "must hold booleans"),
        (MASKS[:2], ACTIONS, {}, r"must be \(T, W\) with T=3"),
        (MASKS.reshape(-1), ACTIONS, {}, r"must be \(T, W\)"),
        (
            MASKS,
            np.array([1, 1, 0]),
            {"action_dim": 4},
            r"action \[?1\]? at step 0 is one its mask",
        ),
        (MASKS, ACTIONS, {"action_dim": 5}, "has 4 entries per step, but discrete, 5 actions"),
        (
            np.array([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]]),
            ACTIONS,
            {"action_dim": 4},
            "allows no action at step 1",
        ),
    ],
    ids=["floats", "short", "1-d", "forbidden-action", "width", "empty-row"],
)
def test_masks_that_do_not_fit_are_problems_naming_the_file(
    tmp_path, masks, actions, metadata, message
):
    manifest = _write(tmp_path / "d", [(_arrays(actions, masks), metadata)])
    report = check_dataset(manifest)
    assert not report.ok
    assert any(p["file"].endswith("s0.npz") and message_in(message, p["problem"])
               for p in report.problems), report.problems  # fmt: skip
    with pytest.raises(DataError):
        require_valid_dataset(manifest)


def message_in(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def test_masks_of_different_widths_in_one_dataset_are_refused(tmp_path):
    wide = np.ones((3, 5), dtype=bool)
    manifest = _write(
        tmp_path / "d",
        [(_arrays(ACTIONS, MASKS), {}), (_arrays(ACTIONS, wide), {})],
    )
    with pytest.raises(DataError, match="differ in width"):
        _ = ReplayDataset(manifest).action_mask_width
    with pytest.raises(DataError, match="'action_masks' has 5 entries per step, but .*s0.npz"):
        require_valid_dataset(manifest)


def test_multi_discrete_masks_are_checked_dimension_by_dimension(tmp_path):
    space = {"action_space": {"kind": "multi_discrete", "nvec": [2, 3]}}
    actions = np.array([[0, 2], [1, 0]])
    good = np.array([[1, 0, 0, 1, 1], [1, 1, 1, 0, 0]], dtype=bool)
    manifest = _write(tmp_path / "ok", [(_arrays(actions, good), space)])
    assert require_valid_dataset(manifest, action_kinds=("multi_discrete",)).action_mask_width == 5
    # dimension 1's entries swapped: step 1's choice 0 of dimension 1 is forbidden
    forbidden = _write(tmp_path / "bad", [(_arrays(actions, good[:, [0, 1, 3, 2, 4]]), space)])
    with pytest.raises(DataError, match=r"action \[1, 0\] at step 1 is one its mask forbids"):
        require_valid_dataset(forbidden, action_kinds=("multi_discrete",))
    empty = _write(tmp_path / "empty", [(_arrays(actions, np.array([[1, 0, 0, 0, 0]] * 2)), space)])
    with pytest.raises(DataError, match="allows no action at step 0"):
        require_valid_dataset(empty, action_kinds=("multi_discrete",))


def test_masks_on_continuous_actions_are_refused(tmp_path):
    arrays = _arrays(np.zeros((3, 2), np.float32), np.ones((3, 2), bool))
    manifest = _write(tmp_path / "d", [(arrays, {})])
    with pytest.raises(DataError, match="masks apply to discrete and multi_discrete actions only"):
        require_valid_dataset(manifest, action_kinds=("box",))
