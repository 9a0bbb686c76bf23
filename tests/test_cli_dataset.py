"""`townlet dataset inspect|validate` on the real fixtures and on broken data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .data.conftest import FIXTURES, make_arrays, save_sample


@pytest.mark.parametrize("command", [["dataset"], ["dataset", "inspect"], ["dataset", "validate"]])
def test_dataset_commands_have_help(townlet, command):
    code, out, _ = townlet(*command, "--help")
    assert code == 0
    assert out.startswith(f"Usage: townlet {' '.join(command)}")


def test_inspect_a_capture_directory(townlet):
    code, out, _ = townlet("dataset", "inspect", str(FIXTURES / "queue_conflict_capture"))
    assert code == 0
    assert "  trajectories: 3" in out
    assert "  transitions:  180" in out
    assert "    map            (T, 4, 11, 11) float32" in out
    assert "    value_preds    (T+1,) float32" in out
    assert "       2:       60 (33.3%)" in out
    assert "    reward_sum: -36" in out


def test_inspect_json(townlet):
    code, out, _ = townlet(
        "dataset", "inspect", "--json", str(FIXTURES / "bc_idle_v1" / "manifest.json")
    )
    summary = json.loads(out)
    assert code == 0
    assert (summary["trajectories"], summary["transitions"], summary["action_dim"]) == (2, 400, 1)
    assert summary["actions"] == {"0": {"count": 400, "share": 1.0}}
    assert summary["rewards_per_step"]["mean"] == pytest.approx(-0.2)
    assert summary["arrays"]["features"] == ["(T, 68) float32"]


def test_inspect_single_sample(townlet):
    code, out, _ = townlet(
        "dataset",
        "inspect",
        str(FIXTURES / "replay_samples" / "observation_hybrid_sample_base.npz"),
    )
    assert code == 0
    assert "  transitions:  2" in out


def test_validate_fixture_with_townlet_schema(townlet):
    code, out, _ = townlet(
        "dataset", "validate", "--schema", "townlet", str(FIXTURES / "queue_conflict_capture")
    )
    assert (code, out) == (0, "ok: 3 trajectories, 180 transitions, schema 'townlet' satisfied\n")


def test_validate_lists_every_problem_with_its_file_and_exits_1(townlet, tmp_path):
    good = make_arrays()
    save_sample(tmp_path, "good", good, meta={"feature_names": ["a", "b", "c"]})
    nan = make_arrays()
    nan["rewards"][1] = np.nan
    save_sample(tmp_path, "nan", nan)
    short = make_arrays()
    short["dones"] = short["dones"][:3]
    save_sample(tmp_path, "short", short)
    (tmp_path / "cut.npz").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "m.json").write_text(
        json.dumps(["good.npz", "nan.npz", "short.npz", "cut.npz", "gone.npz"])
    )
    code, out, err = townlet("dataset", "validate", "--schema", "townlet", str(tmp_path / "m.json"))
    assert code == 1
    lines = out.splitlines()
    assert (
        lines[0]
        == f"{tmp_path / 'm.json'}: listed file 'gone.npz' not found (looked in {tmp_path} and {tmp_path.cwd()}); fix the path or remove the entry"
    )
    assert (
        lines[1]
        == f"{tmp_path / 'good.npz'}: schema 'townlet': feature_names lacks the conflict feature(s) rivalry_max, rivalry_avoid_count"
    )
    assert lines[2].startswith(f"{tmp_path / 'nan.npz'}: 'rewards' has 1 NaN")
    assert lines[3].startswith(f"{tmp_path / 'short.npz'}: per-step arrays disagree")
    assert lines[4].startswith(f"{tmp_path / 'cut.npz'}: not a readable .npz")
    assert len(lines) == 5
    assert err == f"5 problem(s) in {tmp_path / 'm.json'}\n"


def test_validate_json_report(townlet, tmp_path):
    save_sample(tmp_path, "good", make_arrays())
    code, out, _ = townlet("dataset", "validate", "--json", str(tmp_path / "good.npz"))
    assert code == 0
    assert json.loads(out) == {
        "path": str(tmp_path / "good.npz"),
        "ok": True,
        "trajectories": 1,
        "transitions": 5,
        "problems": [],
    }


def test_validate_flags_observation_shapes_that_differ(townlet, tmp_path):
    save_sample(tmp_path, "a", make_arrays(features=3))
    save_sample(tmp_path, "b", make_arrays(features=4))
    (tmp_path / "m.json").write_text('["a.npz", "b.npz"]')
    code, out, _ = townlet("dataset", "validate", str(tmp_path / "m.json"))
    assert code == 1
    assert "observations differ in shape across samples" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["dataset", "inspect", "nowhere.json"],
            "nowhere.json: no such dataset (expected a manifest, capture directory or .npz)",
        ),
        (
            ["dataset", "validate", "--schema", "nope", "x.npz"],
            "unknown schema 'nope'; known: townlet",
        ),
    ],
)
def test_dataset_usage_errors_exit_2_with_one_line(townlet, args, message):
    code, _out, err = townlet(*args)
    assert code == 2
    assert err == f"townlet: error: {message}\n"
