"""Continuous (Box), MultiDiscrete and MultiBinary actions in the Townlet `.npz` layout.

Continuous actions are float arrays (T, A) under the same key `actions`; MultiDiscrete and
MultiBinary ones integer (or, for MultiBinary, boolean) arrays (T, A); integer ids (T,) stay
discrete exactly as before. Each test here fails on the data layer that knew only ids.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from townlet_core.data import DatasetWriter, ReplayDataset, TransitionLoader, read_sample
from townlet_core.data.report import inspect_dataset
from townlet_core.data.trajectory import build_trajectory
from townlet_core.data.validation import check_dataset, require_valid_dataset
from townlet_core.errors import DataError

from .conftest import FIXTURES, make_arrays, save_sample


def _box_arrays(steps: int = 6, width: int = 2, seed: int = 0, dtype: Any = np.float32):
    arrays = make_arrays(steps=steps, map_shape=None, seed=seed)
    rng = np.random.default_rng(100 + seed)
    arrays["actions"] = rng.uniform(-2.0, 2.0, size=(steps, width)).astype(dtype)
    return arrays


def _manifest(folder: Path, samples: list[dict[str, np.ndarray]], metas: Any = None) -> Path:
    names = []
    for index, arrays in enumerate(samples):
        meta = metas[index] if metas is not None else None
        names.append(save_sample(folder, f"s{index}", arrays, meta).name)
    (folder / "manifest.json").write_text(json.dumps(names))
    return folder / "manifest.json"


BOX_META = {"action_space": {"kind": "box", "shape": [2], "low": [-2.0, -2.0], "high": [2, 2]}}


# ------------------------------------------------------------------ reading and the loader


def test_continuous_actions_load_as_float_arrays_of_shape_t_by_a(tmp_path):
    arrays = _box_arrays()
    trajectory = read_sample(save_sample(tmp_path, "s", arrays))
    assert trajectory.actions.dtype == np.float32
    assert trajectory.actions.shape == (6, 2)
    np.testing.assert_array_equal(trajectory.actions, arrays["actions"])


def test_float64_actions_are_kept_as_float32(tmp_path):
    arrays = _box_arrays(dtype=np.float64)
    trajectory = read_sample(save_sample(tmp_path, "s", arrays))
    assert trajectory.actions.dtype == np.float32
    np.testing.assert_allclose(trajectory.actions, arrays["actions"], rtol=1e-6)


def test_a_one_dimensional_float_action_array_is_refused_with_the_fix(tmp_path):
    arrays = make_arrays(map_shape=None)
    arrays["actions"] = arrays["actions"].astype(np.float32)
    with pytest.raises(DataError, match=r"integer action ids.*\(T, A\).*\(T, 1\)"):
        build_trajectory(arrays, source="s.npz")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_continuous_actions_are_refused_naming_file_and_index(tmp_path, bad):
    arrays = _box_arrays()
    arrays["actions"][3, 1] = bad
    path = save_sample(tmp_path, "s", arrays)
    with pytest.raises(DataError, match=r"s\.npz: 'actions' has 1 NaN or infinite.*\(3, 1\)"):
        read_sample(path)
    report = check_dataset(path)
    assert not report.ok and "NaN or infinite" in report.problems[0]["problem"]


def test_float64_actions_beyond_float32_range_are_refused(tmp_path):
    arrays = _box_arrays(dtype=np.float64)
    arrays["actions"][0, 0] = 1e300
    with pytest.raises(DataError, match="'actions' has 1 NaN or infinite"):
        read_sample(save_sample(tmp_path, "s", arrays))


def test_complex_actions_are_refused(tmp_path):
    arrays = _box_arrays()
    arrays["actions"] = arrays["actions"].astype(np.complex64)
    with pytest.raises(DataError, match="'actions' holds complex numbers"):
        read_sample(save_sample(tmp_path, "s", arrays))


def test_an_action_array_without_dimensions_is_refused(tmp_path):
    arrays = _box_arrays()
    arrays["actions"] = np.zeros((6, 0), np.float32)
    with pytest.raises(DataError, match="'actions' has no action dimensions"):
        read_sample(save_sample(tmp_path, "s", arrays))


@pytest.mark.parametrize("streaming", [False, True])
def test_replay_batches_hold_float_actions_of_shape_b_t_a(tmp_path, streaming):
    manifest = _manifest(tmp_path, [_box_arrays(seed=0), _box_arrays(seed=1)])
    (batch,) = list(ReplayDataset(manifest, batch_size=2, streaming=streaming))
    assert batch.actions.dtype == np.float32
    assert batch.actions.shape == (2, 6, 2)
    np.testing.assert_array_equal(batch.actions[1], _box_arrays(seed=1)["actions"])


@pytest.mark.parametrize(
    "options",
    [
        {"streaming": False},
        {"streaming": True},
        {"streaming": True, "shuffle_buffer": 8},
    ],
)
def test_transition_batches_keep_every_action_dimension_as_floats(tmp_path, options):
    samples = [_box_arrays(seed=s, width=3) for s in range(3)]
    manifest = _manifest(tmp_path, samples)
    dataset = ReplayDataset(manifest, streaming=options["streaming"])
    loader = TransitionLoader(
        dataset, batch_size=4, seed=0, shuffle_buffer=options.get("shuffle_buffer")
    )
    batches = list(loader)
    actions = np.concatenate([b.actions for b in batches])
    features = np.concatenate([b.features for b in batches])
    assert actions.dtype == np.float32 and actions.shape == (18, 3)
    # every step's action travels with its own observation, all three dimensions intact
    by_features = {
        tuple(f.tolist()): a.tolist()
        for s in samples
        for f, a in zip(s["features"], s["actions"], strict=True)
    }
    for f, a in zip(features, actions, strict=True):
        assert by_features[tuple(f.tolist())] == a.tolist()


def test_multi_discrete_transitions_stay_integer_vectors(tmp_path):
    arrays = make_arrays(map_shape=None)
    arrays["actions"] = np.array([[0, 1], [2, 0], [1, 1], [0, 0], [2, 1]], np.int64)
    dataset = ReplayDataset(save_sample(tmp_path, "s", arrays))
    (batch,) = list(TransitionLoader(dataset, batch_size=8, shuffle=False))
    assert batch.actions.dtype == np.int64
    np.testing.assert_array_equal(batch.actions, arrays["actions"])


# ------------------------------------------------------------------ the action space


def test_the_original_fixtures_are_discrete_with_their_counts():
    summary = require_valid_dataset(FIXTURES / "queue_conflict_capture")
    assert summary.action_kind == "discrete"
    assert summary.as_dict()["action_space"] == {"kind": "discrete", "n": 4}
    assert ReplayDataset(FIXTURES / "bc_idle_v1").action_space.as_dict() == {
        "kind": "discrete",
        "n": 1,
    }


def test_a_declared_box_space_is_the_summary_action_space(tmp_path):
    manifest = _manifest(tmp_path, [_box_arrays(seed=0), _box_arrays(seed=1)], [BOX_META] * 2)
    summary = require_valid_dataset(manifest, action_kinds=("box",))
    assert summary.action_kind == "box"
    assert summary.as_dict()["action_space"] == {
        "kind": "box",
        "shape": [2],
        "low": [-2.0, -2.0],
        "high": [2.0, 2.0],
    }


def test_an_undeclared_box_space_is_inferred_from_dtype_and_shape(tmp_path):
    summary = require_valid_dataset(
        save_sample(tmp_path, "s", _box_arrays(width=3)), action_kinds=("box",)
    )
    assert summary.as_dict()["action_space"] == {
        "kind": "box",
        "shape": [3],
        "low": None,
        "high": None,
    }


def test_infinite_declared_bounds_are_written_as_null_and_read_back(tmp_path):
    meta = {"action_space": {"kind": "box", "shape": [2], "low": [None, -1], "high": [None, 1]}}
    dataset = ReplayDataset(save_sample(tmp_path, "s", _box_arrays(), meta))
    space = dataset.action_space
    assert space.low == (-np.inf, -1.0) and space.high == (np.inf, 1.0)
    assert space.as_dict()["low"] == [None, -1.0]


def test_integer_vectors_are_multi_discrete_with_inferred_counts(tmp_path):
    first = make_arrays(map_shape=None, seed=0)
    first["actions"] = np.array([[0, 1], [2, 0], [1, 1], [0, 0], [2, 1]], np.int64)
    second = make_arrays(map_shape=None, seed=1)
    second["actions"] = np.array([[0, 4], [1, 0], [1, 1], [0, 0], [0, 1]], np.int32)
    manifest = _manifest(tmp_path, [first, second])
    summary = require_valid_dataset(manifest, action_kinds=("multi_discrete",))
    assert summary.as_dict()["action_space"] == {
        "kind": "multi_discrete",
        "shape": [2],
        "nvec": [3, 5],
    }


def test_a_declared_nvec_wins_and_ids_at_or_above_it_are_refused(tmp_path):
    arrays = make_arrays(map_shape=None)
    arrays["actions"] = np.array([[0, 1], [2, 0], [1, 1], [0, 0], [2, 1]], np.int64)
    meta = {"action_space": {"kind": "multi_discrete", "nvec": [4, 2]}}
    space = ReplayDataset(save_sample(tmp_path, "ok", arrays, meta)).action_space
    assert space.nvec == (4, 2)
    meta = {"action_space": {"kind": "multi_discrete", "nvec": [3, 1]}}
    report = check_dataset(save_sample(tmp_path, "bad", arrays, meta))
    assert [p["file"] for p in report.problems] == [str(tmp_path / "bad.npz")]
    assert "dimension 1" in report.problems[0]["problem"]
    assert "nvec" in report.problems[0]["problem"]


def test_bool_vectors_are_multi_binary_and_stay_so_through_the_writer(tmp_path):
    arrays = make_arrays(map_shape=None)
    arrays["actions"] = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0], [1, 0, 0]], bool)
    trajectory = read_sample(save_sample(tmp_path / "in", "s", arrays))
    assert trajectory.actions.dtype == np.int64  # integer arrays, whatever was stored
    with DatasetWriter(tmp_path / "out") as writer:
        writer.add(trajectory)
    summary = require_valid_dataset(tmp_path / "out", action_kinds=("multi_binary",))
    assert summary.as_dict()["action_space"] == {"kind": "multi_binary", "shape": [3], "n": 3}


def test_a_declared_multi_binary_space_refuses_values_other_than_0_and_1(tmp_path):
    arrays = make_arrays(map_shape=None)
    arrays["actions"] = np.array([[1, 0], [0, 2], [1, 1], [0, 0], [1, 0]], np.int64)
    meta = {"action_space": {"kind": "multi_binary", "n": 2}}
    report = check_dataset(save_sample(tmp_path, "s", arrays, meta))
    assert not report.ok
    assert "0 or 1" in report.problems[0]["problem"]


@pytest.mark.parametrize(
    ("declared", "match"),
    [
        ({"kind": "box", "shape": [3]}, r"declares shape \[3\] but the actions are \(T, 2\)"),
        ({"kind": "box", "shape": [2], "low": [0.0]}, "'low' must list 2 bounds"),
        ({"kind": "box", "shape": [2], "low": [1, 1], "high": [0, 2]}, "low above high"),
        ({"kind": "box", "shape": [2], "low": ["a", 1]}, "'low' must list 2 bounds"),
        ({"kind": "discrete", "n": 3}, "discrete actions are integer ids of shape"),
        ({"kind": "multi_discrete", "nvec": [3, 3]}, "multi_discrete actions are integer"),
        ({"kind": "lever"}, "kind must be one of discrete, box, multi_discrete, multi_binary"),
        ("box", "metadata action_space must be a mapping"),
    ],
)
def test_a_declared_action_space_that_does_not_fit_is_a_problem_naming_the_file(
    tmp_path, declared, match
):
    path = save_sample(tmp_path, "s", _box_arrays(), {"action_space": declared})
    report = check_dataset(path)
    assert report.problems and report.problems[0]["file"] == str(path)
    assert any(re.search(match, p["problem"]) for p in report.problems), report.problems


def test_a_discrete_declaration_must_agree_with_action_dim(tmp_path):
    meta = {"action_dim": 3, "action_space": {"kind": "discrete", "n": 4}}
    report = check_dataset(save_sample(tmp_path, "s", make_arrays(map_shape=None), meta))
    assert not report.ok and "action_dim 3" in report.problems[0]["problem"]


def test_action_dim_checks_apply_to_discrete_only(tmp_path):
    """A continuous sample's `action_dim` (a capture may record the width) sizes no head, so
    it is not an action count: values in any range are fine."""
    meta = {**BOX_META, "action_dim": 1}
    summary = require_valid_dataset(
        save_sample(tmp_path, "s", _box_arrays(), meta), action_kinds=("box",)
    )
    assert summary.action_kind == "box" and summary.action_dim == 2


def test_mixing_kinds_across_samples_is_a_problem_naming_both_files(tmp_path):
    manifest = _manifest(tmp_path, [make_arrays(map_shape=None), _box_arrays()])
    report = check_dataset(manifest)
    (problem,) = report.problems
    assert problem["file"] == str(tmp_path / "s1.npz")
    assert "box" in problem["problem"] and "discrete" in problem["problem"]
    assert str(tmp_path / "s0.npz") in problem["problem"]
    with pytest.raises(DataError, match="s0.npz"):
        ReplayDataset(manifest).action_space  # noqa: B018


def test_mixing_widths_across_samples_is_a_problem_naming_both_files(tmp_path):
    manifest = _manifest(tmp_path, [_box_arrays(width=2), _box_arrays(width=3)])
    (problem,) = check_dataset(manifest).problems
    assert problem["file"] == str(tmp_path / "s1.npz")
    assert "(3,)" in problem["problem"] and "(2,)" in problem["problem"]
    assert str(tmp_path / "s0.npz") in problem["problem"]


def test_differing_declared_bounds_are_a_problem(tmp_path):
    other = {"action_space": {**BOX_META["action_space"], "high": [1.0, 2.0]}}
    manifest = _manifest(tmp_path, [_box_arrays(), _box_arrays(seed=1)], [BOX_META, other])
    (problem,) = check_dataset(manifest).problems
    assert "bounds" in problem["problem"] and str(tmp_path / "s0.npz") in problem["problem"]


# ------------------------------------------------------------------ what trainers see


def test_training_gates_refuse_continuous_data_unless_the_caller_accepts_it(tmp_path):
    path = save_sample(tmp_path, "s", _box_arrays(), BOX_META)
    with pytest.raises(DataError, match=r"s\.npz: the dataset's actions are box.*discrete"):
        require_valid_dataset(path)
    assert require_valid_dataset(path, action_kinds=("discrete", "box")).action_kind == "box"


def test_a_discrete_action_count_is_refused_for_continuous_data(tmp_path):
    dataset = ReplayDataset(save_sample(tmp_path, "s", _box_arrays(), BOX_META))
    with pytest.raises(DataError, match="box.*no number of actions.*action_space"):
        dataset.action_dim  # noqa: B018
    assert dataset.action_kind == "box"


def test_bc_trains_on_a_continuous_dataset(tmp_path, townlet_registry, townlet_train):
    pytest.importorskip("torch")
    import townlet_strategies_bc.plugin

    townlet_registry.add_plugin(townlet_strategies_bc.plugin, distribution="townlet-strategies-bc")
    manifest = _manifest(tmp_path / "data", [_box_arrays(seed=0), _box_arrays(seed=1)])
    result = townlet_train("bc", {"dataset": str(manifest), "epochs": 1})
    assert result.accuracy is None and result.action_mse is not None


def test_ppo_refuses_a_continuous_dataset_before_its_run_directory(
    tmp_path, townlet_registry, townlet_train
):
    pytest.importorskip("torch")
    import townlet_strategies_ppo.plugin

    townlet_registry.add_plugin(
        townlet_strategies_ppo.plugin, distribution="townlet-strategies-ppo"
    )
    manifest = _manifest(tmp_path / "data", [_box_arrays(seed=0), _box_arrays(seed=1)])
    with pytest.raises(DataError, match="actions are box"):
        townlet_train("ppo", {"dataset": str(manifest)})
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ writing, stats, report


def test_the_writer_round_trips_continuous_actions_and_their_metadata(tmp_path):
    trajectory = build_trajectory(_box_arrays(), dict(BOX_META))
    with DatasetWriter(tmp_path / "out") as writer:
        writer.add(trajectory)
    (back,) = list(ReplayDataset(tmp_path / "out").trajectories())
    np.testing.assert_array_equal(back.actions, trajectory.actions)
    assert back.metadata["action_space"] == BOX_META["action_space"]
    metrics = back.metadata["metrics"]
    assert metrics["action_total"] == 6.0
    assert metrics["action_mean"] == pytest.approx(float(trajectory.actions.mean()), rel=1e-5)
    assert "action_entropy" not in metrics  # an entropy of distinct floats means nothing


def test_inspect_reports_the_action_space_and_per_dimension_statistics(tmp_path):
    manifest = _manifest(tmp_path, [_box_arrays(seed=0), _box_arrays(seed=1)], [BOX_META] * 2)
    summary = inspect_dataset(manifest)
    assert summary["action_space"] == BOX_META["action_space"] | {
        "low": [-2.0, -2.0],
        "high": [2.0, 2.0],
    }
    both = np.concatenate([_box_arrays(seed=0)["actions"], _box_arrays(seed=1)["actions"]])
    assert summary["actions"]["0"]["min"] == pytest.approx(float(both[:, 0].min()))
    assert summary["actions"]["1"]["mean"] == pytest.approx(float(both[:, 1].mean()), rel=1e-5)
    assert summary["arrays"]["actions"] == ["(T, 2) float32"]


def test_the_cli_prints_the_action_space(townlet, tmp_path):
    path = save_sample(tmp_path, "s", _box_arrays(), BOX_META)
    code, out, _ = townlet("dataset", "inspect", str(path))
    assert code == 0
    assert "  action_space: box, shape (2,), low [-2, -2], high [2, 2]" in out
    code, out, _ = townlet("dataset", "inspect", str(path), "--json")
    assert code == 0
    assert json.loads(out)["action_space"]["kind"] == "box"


def test_a_dataset_whose_actions_would_make_a_huge_policy_is_refused(tmp_path):
    """4,097 dimensions of 4,097 choices pad to 16.8M entries: refused before any network."""
    from townlet_core.data.validation import require_valid_dataset

    width = 4_097
    arrays = {**_box_arrays(steps=2), "actions": np.zeros((2, width), dtype=np.int64)}
    meta = {"action_space": {"kind": "multi_discrete", "shape": [width], "nvec": [width] * width}}
    manifest = _manifest(tmp_path / "data", [arrays], [meta])
    expected = r"too large to train: multi_discrete actions of shape \(4097,\) lay out 16,785,409"
    with pytest.raises(DataError, match=expected):
        require_valid_dataset(manifest, action_kinds={"multi_discrete"})
