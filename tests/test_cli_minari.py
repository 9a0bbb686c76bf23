"""`townlet dataset import-minari|export-minari`: one summary line, errors as one line."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from townlet_core.data import ReplayDataset

from .data.test_minari import load, make_cartpole_dataset


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.mark.parametrize("command", ["import-minari", "export-minari"])
def test_minari_commands_have_help(townlet, command):
    code, out, _ = townlet("dataset", command, "--help")
    assert code == 0
    assert out.startswith(f"Usage: townlet dataset {command}")


def test_import_then_export_prints_one_line_each(townlet, minari_root, tmp_path):
    make_cartpole_dataset("cartpole/random-v0", episodes=2)
    steps = load("cartpole/random-v0").total_steps
    out_dir = tmp_path / "out"

    code, out, err = townlet(
        "dataset", "import-minari", "cartpole/random-v0", "--out", str(out_dir),
        "--data-path", str(minari_root),
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out == (
        f"imported 2 episodes ({steps} transitions) from Minari cartpole/random-v0 into {out_dir}\n"
    )
    assert ReplayDataset(out_dir).num_trajectories == 2

    code, out, err = townlet(
        "dataset", "export-minari", str(out_dir), "cartpole/back-v0",
        "--data-path", str(minari_root), "--env", "CartPole-v1",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out == (
        f"exported 2 episodes ({steps} transitions) to Minari cartpole/back-v0 "
        f"at {minari_root / 'cartpole' / 'back-v0'}\n"
    )
    back, original = load("cartpole/back-v0"), load("cartpole/random-v0")
    for mine, theirs in zip(back, original, strict=True):
        np.testing.assert_array_equal(mine.observations, theirs.observations)


def test_export_notes_repeated_final_observations(townlet, minari_root, tmp_path):
    make_cartpole_dataset("cartpole/random-v0", episodes=1)
    out_dir = tmp_path / "out"
    assert townlet("dataset", "import-minari", "cartpole/random-v0", "--out", str(out_dir))[0] == 0
    for sidecar in out_dir.glob("episode_*.json"):  # as if Townlet had written it itself
        text = sidecar.read_text().replace('"final_observation"', '"dropped"')
        sidecar.write_text(text)
    code, out, _ = townlet("dataset", "export-minari", str(out_dir), "cartpole/back-v0")
    assert code == 0
    assert "(1 with the last observation repeated as the final one)" in out


def test_missing_dataset_is_one_error_line(townlet, minari_root, tmp_path):
    code, out, err = townlet(
        "dataset", "import-minari", "cartpole/absent-v0", "--out", str(tmp_path / "out")
    )
    assert code == 2
    assert out == ""
    assert err.startswith("townlet: error: Minari dataset cartpole/absent-v0 is not available")
    assert "minari download cartpole/absent-v0" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_extra_is_reported_with_the_install_hint(townlet, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "minari", None)
    code, _, err = townlet(
        "dataset", "import-minari", "cartpole/random-v0", "--out", str(tmp_path / "out")
    )
    assert code == 2
    assert err == (
        "townlet: error: Minari support needs the extra: pip install 'townlet-core[minari]'\n"
    )
