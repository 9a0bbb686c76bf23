"""`bc.streaming`: training from trajectories left on disk, with everything else as in memory."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import torch

from townlet_core.checkpoints import NetworkSpec
from townlet_core.data import DatasetWriter, ReplayDataset, build_trajectory
from townlet_core.nn import build_network, load_checkpoint
from townlet_strategies_bc.splits import sample_of, split_in_memory
from townlet_strategies_bc.trainer import (
    SCORE_BATCH,
    STREAM_SHUFFLE_BUFFER,
    StreamedSplit,
    _observation_spec,
    _score,
)

SMALL = {
    "capture": {"episodes": 4, "max_episode_steps": 60},
    "epochs": 3,
    "early_stopping_patience": None,
    "eval_episodes": 1,
    "streaming": True,
}


def _rule_data(folder, trajectories, steps, features=32, actions=4, seed=0):
    """Demonstrations whose action is the quartile of feature 0; returns the folder and the
    bytes of all its arrays together."""
    rng = np.random.default_rng(seed)
    total = 0
    with DatasetWriter(folder, flush_interval=0) as writer:
        for _ in range(trajectories):
            observed = rng.random((steps, features), dtype=np.float32)
            arrays = {
                "features": observed,
                "actions": np.minimum((observed[:, 0] * actions).astype(np.int64), actions - 1),
                "old_log_probs": np.zeros(steps, np.float32),
                "value_preds": np.zeros(steps + 1, np.float32),
                "rewards": np.zeros(steps, np.float32),
                "dones": np.eye(1, steps, steps - 1, dtype=bool)[0],
            }
            total += sum(a.nbytes for a in arrays.values())
            writer.add(build_trajectory(arrays))
    return folder, total


@pytest.mark.slow
def test_streamed_training_from_the_cli_clones_the_cartpole_expert(townlet, tmp_path):
    # The bug: every streamed run ended "arrays() needs an in-memory dataset".
    code, out, err = townlet(
        "train",
        "--strategy",
        "bc",
        "--set",
        "bc.streaming=true",
        "--set",
        "bc.capture.episodes=10",
        "--seed",
        "0",
        "--run-dir",
        str(tmp_path / "run"),
        "--json",
        "--quiet",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded"
    assert result["val_accuracy"] >= 0.95  # the in-memory test's targets
    assert result["eval_mean_return"] >= 475
    assert result["samples"] + result["val_samples"] == 5000
    assert (tmp_path / "run" / "checkpoint" / "checkpoint.json").exists()


def test_streamed_run_writes_one_metrics_line_per_epoch_and_a_loadable_checkpoint(
    train_bc, tmp_path
):
    result = train_bc(SMALL)
    lines = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "samples_per_second"} <= set(
        lines[0]
    )
    assert result.val_accuracy == lines[-1]["val_accuracy"]
    assert result.samples + result.val_samples == 240
    _, info = load_checkpoint(tmp_path / "run" / "checkpoint")
    assert info.observation.features_dim == 4 and info.action_dim == 2


def test_streamed_runs_with_the_same_seed_give_identical_weights(train_bc, tmp_path):
    train_bc(SMALL, seed=3, name="a")
    train_bc(SMALL, seed=3, name="b")
    weights = [(tmp_path / n / "checkpoint" / "weights.safetensors").read_bytes() for n in "ab"]
    assert weights[0] == weights[1]


def test_streamed_validation_split_and_scores_equal_the_in_memory_ones(tmp_path):
    folder, _ = _rule_data(tmp_path / "data", trajectories=12, steps=700)
    scores = {}
    for streaming in (False, True):
        dataset = ReplayDataset(folder, streaming=streaming)
        train_set, val_set = dataset.split(0.25, seed=4)
        network = build_network(NetworkSpec(), _observation_spec(dataset), 4, seed=0)
        split = (
            StreamedSplit(train_set, torch.device("cpu"), seed=0)
            if streaming
            else split_in_memory(train_set, torch.device("cpu"))
        )
        scores[streaming] = (
            [e.sample.name for e in val_set.entries],
            split.size,
            _score(network, split),
            _score(network, sample_of(split, 4096, seed=0)),
        )
    assert scores[True] == scores[False]


@pytest.mark.slow
def test_streaming_holds_far_less_than_the_dataset_and_still_learns(train_bc, tmp_path):
    steps, row_bytes = 400, 32 * 4 + 8 + 4 + 4 + 4 + 1  # features, action and the rest
    folder, total = _rule_data(tmp_path / "data", trajectories=500, steps=steps)
    # What streaming holds at once, by design: two score reads (or the shuffle buffer and a
    # batch) and one trajectory, besides the 4,096-step accuracy sample.
    held = (2 * max(SCORE_BATCH, STREAM_SHUFFLE_BUFFER) + steps) * row_bytes
    assert total >= 10 * held
    warm_up, _ = _rule_data(tmp_path / "warm-up-data", trajectories=4, steps=50)
    train_bc({"dataset": str(warm_up), "epochs": 1, "streaming": True}, name="warm-up")
    section = {"dataset": str(folder), "epochs": 1, "batch_size": 256, "learning_rate": 3e-3}
    peaks = {}
    for streaming in (True, False):
        tracemalloc.start()  # after the warm-up: lazy imports are not the data
        try:
            result = train_bc(section | {"streaming": streaming}, name=f"streaming-{streaming}")
            peaks[streaming] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert result.val_accuracy is not None and result.val_accuracy >= 0.95
    assert peaks[False] >= total  # the measure sees a materialised dataset...
    assert peaks[True] <= total / 5, peaks  # ...and streaming holds a fraction of one
