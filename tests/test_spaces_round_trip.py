"""MultiDiscrete, MultiBinary and masked actions end to end through the commands a user runs:
`townlet capture` -> `townlet train --strategy bc` -> the checkpoint -> `townlet evaluate`."""

from __future__ import annotations

import json

import pytest

from townlet_core.checkpoints import read_info
from townlet_core.data import ReplayDataset

CASES = {
    # env, expert, recorded action kind, expert's return (best 8.0 / 6.5), threshold, random
    "multi_discrete": ("MultiDiscreteMatch", "multi_discrete_expert", 8.0, 7.5, 2.33),
    "multi_binary": ("MultiBinaryMatch", "multi_binary_expert", 8.0, 7.5, 4.0),
    "discrete_masked": ("MaskedChoice", "masked_choice_expert", 6.5, 5.5, 3.25),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CASES))
def test_capture_clone_and_evaluate(townlet_in_tmp, spaces_envs, tmp_path, kind):
    """Thresholds sit near the expert (8.0 and 6.5 are the best returns) and far above a
    uniform random policy (the last column; masked-random for MaskedChoice)."""
    pytest.importorskip("torch")
    env_class, expert, _best, threshold, _random = CASES[kind]
    env = f"spaces_envs:{env_class}"
    code, _out, err = townlet_in_tmp(
        "capture", "--env", env, "--policy", f"spaces_envs:{expert}", "--episodes", "40",
        "--out", "demos", "--json",
    )  # fmt: skip
    assert code == 0, err
    recorded = ReplayDataset(tmp_path / "demos")
    expected_kind = "discrete" if kind == "discrete_masked" else kind
    assert recorded.action_kind == expected_kind
    if kind == "discrete_masked":
        assert next(recorded.trajectories()).action_masks is not None
    code, _out, err = townlet_in_tmp(
        "train", "--strategy", "bc", "-q", "--run-dir", "run",
        "--set", "bc.dataset=demos", "--set", "bc.epochs=30",
    )  # fmt: skip
    assert code == 0, err
    info = read_info(tmp_path / "run" / "checkpoint")
    assert info.space().kind == expected_kind
    code, out, err = townlet_in_tmp(
        "evaluate", "run/checkpoint", "--env", env, "--episodes", "20", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["mean_return"] >= threshold
