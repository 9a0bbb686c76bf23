"""A multi-agent capture is written in the original Townlet capture layout, field by field
as `tests/fixtures/townlet/queue_conflict_capture/` (files the original tools wrote), and
reads back with the same readers as those files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from townlet_core.data.dataset import ReplayDataset
from townlet_core.data.manifest import open_source
from townlet_core.envs.capture import capture

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "townlet" / "queue_conflict_capture"
PREFIX = "rollout_sample"
#: The seven arrays of an original sample, with their dtypes.
ORIGINAL_ARRAYS = {
    "map": np.float32,
    "features": np.float32,
    "actions": np.int64,
    "old_log_probs": np.float32,
    "value_preds": np.float32,
    "rewards": np.float32,
    "dones": np.bool_,
}


@pytest.fixture(scope="module")
def town_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("town") / "capture"
    capture("townlet/Town-v0", "scripted", episodes=6, num_envs=6, seed=2, out=out)
    return out


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_files_are_named_per_agent_and_counted_from_one(town_capture: Path) -> None:
    samples = sorted(p.name for p in town_capture.glob("*.npz"))
    assert len(samples) == 6
    pattern = re.compile(rf"{PREFIX}_(agent_\d)_(\d{{3}})\.npz")
    numbers = []
    for name in samples:
        match = pattern.fullmatch(name)
        assert match is not None, name
        numbers.append(int(match.group(2)))
        assert (town_capture / name.replace(".npz", ".json")).exists()
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]
    assert {p.name for p in town_capture.glob("*_manifest.json")} == {f"{PREFIX}_manifest.json"}
    assert (town_capture / f"{PREFIX}_metrics.json").exists()
    # the fixture follows the same naming
    assert all(
        re.fullmatch(rf"{PREFIX}_[a-z]+_\d{{3}}\.npz", p.name) for p in FIXTURE.glob("*.npz")
    )


def test_each_sample_has_the_original_arrays_dtypes_and_shapes(town_capture: Path) -> None:
    fixture = np.load(FIXTURE / f"{PREFIX}_anna_001.npz")
    for path in town_capture.glob("*.npz"):
        with np.load(path) as arrays:
            for name, dtype in ORIGINAL_ARRAYS.items():
                assert arrays[name].dtype == dtype, (path.name, name)
                assert arrays[name].ndim == fixture[name].ndim, (path.name, name)
            steps = arrays["actions"].shape[0]
            assert arrays["value_preds"].shape == (steps + 1,)
            assert arrays["map"].shape[1:] == (4, 11, 11) == fixture["map"].shape[1:]


def test_each_sample_metadata_carries_every_original_field(town_capture: Path) -> None:
    original = _json(FIXTURE / f"{PREFIX}_anna_001.json")
    for path in town_capture.glob(f"{PREFIX}_agent_*.json"):
        meta = _json(path)
        for key, value in original.items():
            assert key in meta, (path.name, key)
            assert type(meta[key]) is type(value), (path.name, key)
        with np.load(path.with_suffix(".npz")) as arrays:
            steps = int(arrays["actions"].shape[0])
        assert meta["agent_id"] == path.stem.split("_", 2)[2].rsplit("_", 1)[0]
        assert meta["frame_count"] == meta["timesteps"] == steps
        assert meta["value_pred_steps"] == steps + 1
        assert meta["map_channels"] == original["map_channels"]
        assert meta["map_shape"] == original["map_shape"]
        assert meta["variant"] == original["variant"]
        assert set(meta["training_arrays"]) == set(original["training_arrays"])
        assert len(meta["feature_names"]) == arrays_width(path)
        assert sorted(meta["action_lookup"].values()) == list(range(meta["action_dim"]))
        # the original's per-sample metrics, by the same names
        for key in ("timesteps", "reward_sum", "reward_mean", "log_prob_mean", "value_pred_last"):
            assert key in meta["metrics"]
            assert key in original["metrics"]
        assert meta["capture_metadata"]["env_id"] == "townlet/Town-v0"


def arrays_width(meta_path: Path) -> int:
    with np.load(meta_path.with_suffix(".npz")) as arrays:
        return int(arrays["features"].shape[1])


def test_manifest_and_metrics_file_list_every_sample(town_capture: Path) -> None:
    manifest = _json(town_capture / f"{PREFIX}_manifest.json")
    original = _json(FIXTURE / f"{PREFIX}_manifest.json")
    entries = manifest["samples"]
    assert len(entries) == 6
    for entry in entries:
        # the original entry's keys, plus the agent and its frame count
        assert set(original[0]) <= set(entry)
        assert set(entry) == {"sample", "meta", "agent_id", "frame_count"}
        meta = _json(town_capture / entry["meta"])
        assert (entry["agent_id"], entry["frame_count"]) == (meta["agent_id"], meta["frame_count"])
    assert manifest["metadata"]["env_id"] == "townlet/Town-v0"
    metrics = _json(town_capture / f"{PREFIX}_metrics.json")["samples"]
    assert set(metrics) == {entry["sample"] for entry in entries}
    fixture_metrics = _json(FIXTURE / f"{PREFIX}_metrics.json")
    for name, values in metrics.items():
        assert values == _json(town_capture / name.replace(".npz", ".json"))["metrics"]
        shared = set(values) & set(next(iter(fixture_metrics.values())))
        assert {"timesteps", "reward_sum", "reward_mean", "action_total"} <= shared


@pytest.mark.parametrize("folder", ["ours", "fixture"])
def test_ours_and_the_originals_load_with_the_same_readers(town_capture: Path, folder: str) -> None:
    path = town_capture if folder == "ours" else FIXTURE
    source = open_source(path)
    assert source.label == path.name
    assert source.metrics_map  # the metrics file was found and read
    dataset = ReplayDataset(path)
    count = 6 if folder == "ours" else 3
    assert len(dataset) == count
    assert dataset.baseline_metrics["sample_count"] == count
    streamed = ReplayDataset(path, streaming=True)
    assert len(streamed) == count


def test_agents_that_leave_are_recorded_up_to_their_last_step(tmp_path: Path) -> None:
    from townlet_core.envs.settings import EnvSettings

    settings = EnvSettings(
        id="townlet/Town-v0", kwargs={"size": 5, "leave_when_rested": True, "max_steps": 120}
    )
    out = tmp_path / "leaving"
    capture(settings, "scripted", episodes=3, num_envs=3, seed=0, out=out)
    lengths = {}
    for path in out.glob(f"{PREFIX}_agent_*.json"):
        meta = _json(path)
        lengths[meta["agent_id"]] = meta["frame_count"]
        assert meta["terminated"] != meta["truncated"]
    assert sorted(lengths) == ["agent_0", "agent_1", "agent_2"]
    assert min(lengths.values()) < 120  # someone left early, and its trajectory ends there
