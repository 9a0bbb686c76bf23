"""Reading Townlet samples: the real fixtures load exactly; bad files fail with the file named."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from townlet_core.data import build_trajectory, read_sample, sample_metrics
from townlet_core.data.npz import read_array_info
from townlet_core.errors import DataError

from .conftest import make_arrays, save_sample


def test_every_fixture_sample_loads_with_the_shapes_and_dtypes_it_was_written_with(fixtures_dir):
    for path in sorted(fixtures_dir.glob("*/*.npz")):
        trajectory = read_sample(path)
        with np.load(path) as raw:
            for name in raw.files:
                loaded = trajectory.arrays()[name]
                assert loaded.dtype == raw[name].dtype, (path, name)
                np.testing.assert_array_equal(loaded, raw[name])


def test_bc_idle_fixture_metadata_is_kept(fixtures_dir):
    trajectory = read_sample(fixtures_dir / "bc_idle_v1" / "idle_alice.npz")
    assert trajectory.timesteps == 200
    assert trajectory.map.shape == (200, 4, 11, 11)
    assert trajectory.value_preds.shape == (201,)
    assert len(trajectory.metadata["feature_names"]) == 68
    assert trajectory.metadata["agent_id"] == "alice"


def test_metrics_match_the_original_capture_metrics_file(fixtures_dir):
    capture = fixtures_dir / "queue_conflict_capture"
    original = json.loads((capture / "rollout_sample_metrics.json").read_text())
    original = original.get("samples", original)
    assert len(original) == 3
    for name, expected in original.items():
        ours = sample_metrics(read_sample(capture / name))
        assert ours == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_header_info_reads_shapes_without_loading(fixtures_dir):
    info = read_array_info(fixtures_dir / "replay_samples" / "observation_hybrid_sample_base.npz")
    assert info["map"][0] == (2, 4, 11, 11)
    assert info["value_preds"][0] == (3,)
    assert str(info["dones"][1]) == "bool"


def test_single_step_arrays_are_promoted():
    arrays = make_arrays(steps=1)
    arrays["features"] = arrays["features"][0]
    arrays["map"] = arrays["map"][0]
    arrays["actions"] = np.int64(2)
    trajectory = build_trajectory(arrays)
    assert trajectory.features.shape == (1, 3)
    assert trajectory.map.shape == (1, 2, 3, 3)
    assert trajectory.actions.tolist() == [2]


def test_map_is_optional_and_metadata_defaults_are_filled():
    trajectory = build_trajectory(make_arrays(map_shape=None, bootstrap=False))
    assert trajectory.map is None
    assert trajectory.metadata["timesteps"] == 5
    assert trajectory.metadata["value_pred_steps"] == 5
    assert trajectory.metadata["training_arrays"] == [
        "actions",
        "old_log_probs",
        "value_preds",
        "rewards",
        "dones",
    ]


def test_integer_dones_become_booleans():
    arrays = make_arrays()
    arrays["dones"] = arrays["dones"].astype(np.int8)
    assert build_trajectory(arrays).dones.dtype == np.bool_


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("actions"), r"missing array\(s\) actions"),
        (
            lambda a: a.update(rewards=a["rewards"][:-1]),
            r"per-step arrays disagree on the number of steps \(actions=5, old_log_probs=5, rewards=4, dones=5\)",
        ),
        (
            lambda a: a.update(value_preds=np.zeros(7, np.float32)),
            "'value_preds' has 7 entries; expected 5 or 6",
        ),
        (
            lambda a: a.update(map=np.zeros((5, 3, 3), np.float32)),
            r"'map' must be \(T, C, H, W\) or \(C, H, W\) with T=5, found \(5, 3, 3\)",
        ),
        (
            lambda a: a.update(map=np.zeros((4, 2, 3, 3), np.float32)),
            r"'map' must be .* found \(4, 2, 3, 3\)",
        ),
        (
            lambda a: a.update(features=np.zeros((5, 2, 2), np.float32)),
            r"'features' must be \(T, F\)",
        ),
        (lambda a: a.update(actions=np.zeros((5, 1, 1), np.int64)), "'actions' must be 1-D or 2-D"),
        (
            lambda a: a.update(actions=a["actions"].astype(np.float32)),
            "'actions' must be integer action ids, found dtype float32",
        ),
        (lambda a: a.update(actions=-a["actions"] - 1), "negative ids"),
        (lambda a: a.update(dones=np.full(5, 2, np.int64)), "'dones' must be booleans"),
        (lambda a: a.update(rewards=np.array(["a"] * 5)), "'rewards' must hold numbers"),
        (
            lambda a: a["rewards"].__setitem__(2, np.nan),
            r"'rewards' has 1 NaN or infinite value\(s\), first at index \(2,\)",
        ),
        (
            lambda a: a["features"].__setitem__((1, 2), np.inf),
            r"'features' has 1 NaN or infinite value\(s\), first at index \(1, 2\)",
        ),
        (lambda a: a["map"].__setitem__((0, 0, 0, 0), -np.inf), "'map' has 1 NaN"),
        (
            lambda a: a.update(terminated=np.zeros(3, bool)),
            "extra array 'terminated' must have one entry per step",
        ),
    ],
)
def test_malformed_samples_are_refused_with_the_file_named(tmp_path, change, message):
    arrays = make_arrays()
    change(arrays)
    path = save_sample(tmp_path, "bad", arrays)
    with pytest.raises(DataError, match=message) as info:
        read_sample(path)
    assert str(info.value).startswith(f"{path}: ")


def test_missing_sample_file(tmp_path):
    with pytest.raises(DataError, match="sample file does not exist"):
        read_sample(tmp_path / "nope.npz")


def test_truncated_npz_says_it_is_corrupt(tmp_path):
    path = save_sample(tmp_path, "cut", make_arrays(steps=50))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated") as info:
        read_sample(path)
    assert str(path) in str(info.value)


def test_npz_with_damaged_member_says_it_is_corrupt(tmp_path):
    path = tmp_path / "damaged.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in make_arrays().items():
            archive.writestr(
                f"{name}.npy", b"\x93NUMPY garbage" if name == "rewards" else array.tobytes()
            )
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_sample(path)


def test_not_an_npz_at_all(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("hello")
    with pytest.raises(DataError, match="not a readable .npz"):
        read_sample(path)


def test_unreadable_metadata_sidecar(tmp_path):
    path = save_sample(tmp_path, "s", make_arrays())
    path.with_suffix(".json").write_text("{oops")
    with pytest.raises(DataError, match=r"s\.json: unreadable sample metadata"):
        read_sample(path)


def test_explicit_metadata_path_must_exist(tmp_path):
    path = save_sample(tmp_path, "s", make_arrays())
    with pytest.raises(DataError, match="metadata file named for s.npz does not exist"):
        read_sample(path, tmp_path / "other.json")
