"""Seeds, checkpoints that round-trip and explain what is wrong with them, warm starts."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from townlet_core.checkpoints import ObservationSpec, read_info
from townlet_core.errors import ConfigError, DataError, TorchNotAvailableError
from townlet_core.nn import TorchPolicy, load_checkpoint
from townlet_core.testing import (
    WARM_START_STAGE,
    WARM_START_STRATEGY,
    WarmStartPlugin,
    warm_start_section,
)

SMALL = {"capture": {"episodes": 4, "max_episode_steps": 60}, "epochs": 3, "eval_episodes": 2}


def test_a_different_seed_gives_different_weights(train_bc, tmp_path):
    # the same seed giving identical files is the contract's check (test_contract.py)
    train_bc(SMALL, seed=5, name="a")
    train_bc(SMALL, seed=6, name="b")
    weights = "checkpoint/weights.safetensors"
    assert (tmp_path / "a" / weights).read_bytes() != (tmp_path / "b" / weights).read_bytes()


def test_training_leaves_the_global_torch_rng_alone(train_bc):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_bc(SMALL, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_checkpoint_round_trip_gives_the_same_greedy_actions(train_bc, tmp_path):
    train_bc(SMALL)
    folder = tmp_path / "run" / "checkpoint"
    info = read_info(folder)
    assert info.producer.strategy == "bc"
    assert info.observation.features_dim == 4 and info.action_dim == 2
    assert info.env_id == "CartPole-v1"
    network, _ = load_checkpoint(folder)
    observations = np.random.default_rng(0).normal(size=(256, 4)).astype(np.float32)
    first = TorchPolicy(network)(observations).actions
    again = TorchPolicy.from_checkpoint(folder)(observations).actions
    assert np.array_equal(first, again)
    assert len(set(first.tolist())) == 2


def test_corrupt_weights_are_detected(train_bc, tmp_path):
    train_bc(SMALL)
    folder = tmp_path / "run" / "checkpoint"
    weights = folder / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(DataError, match="does not match the checksum in checkpoint.json"):
        load_checkpoint(folder)


def test_mismatched_checkpoint_says_what_differs(train_bc, tmp_path):
    train_bc(SMALL)
    folder = tmp_path / "run" / "checkpoint"
    with pytest.raises(DataError) as info:
        load_checkpoint(
            folder, observation=ObservationSpec(features_dim=6, map_shape=(2, 3, 3)), action_dim=3
        )
    message = str(info.value)
    assert "features: checkpoint reads 4, the data has 6" in message
    assert "map: checkpoint reads no map, the data has (2, 3, 3)" in message
    assert "actions: checkpoint has 2, the data needs 3" in message


def test_missing_and_malformed_checkpoints(tmp_path, train_bc):
    with pytest.raises(DataError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a Townlet checkpoint"):
        load_checkpoint(tmp_path / "empty")
    train_bc(SMALL)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "run" / "checkpoint", copy)
    info = json.loads((copy / "checkpoint.json").read_text())
    info["format_version"] = 99
    (copy / "checkpoint.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="format version 99 is newer than this townlet-core reads"):
        load_checkpoint(copy)
    info["format_version"] = 1
    del info["action_dim"]
    (copy / "checkpoint.json").write_text(json.dumps(info))
    with pytest.raises(
        DataError, match="invalid checkpoint description: action_dim: Field required"
    ):
        load_checkpoint(copy)


def test_warm_start_from_a_checkpoint_continues_from_its_weights(
    train_bc, townlet_registry, townlet_train, tmp_path
):
    train_bc(SMALL, name="first")
    source = tmp_path / "first" / "checkpoint"
    townlet_registry.add_plugin(WarmStartPlugin())
    townlet_train(
        WARM_START_STRATEGY,
        warm_start_section("bc", source, {"learning_rate": 1e-12, "epochs": 1}),
        config={"bc": SMALL},
        name="second",
        seed=99,  # a fresh network from this seed would differ from the checkpoint entirely
    )
    before, _ = load_checkpoint(source)
    after, _ = load_checkpoint(tmp_path / "second" / "stages" / WARM_START_STAGE / "checkpoint")
    for name, tensor in before.state_dict().items():
        torch.testing.assert_close(after.state_dict()[name], tensor, rtol=0, atol=1e-6)


def test_no_demonstrations_says_how_to_give_them(train_bc):
    with pytest.raises(ConfigError, match=r"set bc.dataset=PATH .* or bc.capture.env=CartPole-v1"):
        train_bc({})


def test_missing_dataset_is_named(train_bc, tmp_path):
    with pytest.raises(DataError, match="no such dataset"):
        train_bc({"dataset": str(tmp_path / "missing.json")})


def test_without_torch_the_error_names_the_extra(train_bc, monkeypatch):
    monkeypatch.setattr("townlet_core.runtime.torch_guard.torch_available", lambda: False)
    with pytest.raises(TorchNotAvailableError, match=r"pip install 'townlet-core\[bc\]'"):
        train_bc(SMALL)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error(train_bc, tmp_path):
    with pytest.raises(
        ConfigError, match=r"--device cuda: CUDA is not available here .*; use --device cpu or auto"
    ):
        train_bc(SMALL, device="cuda")
    assert not (tmp_path / "run" / "checkpoint").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_auto_device_without_cuda_is_the_cpu():
    from townlet_core.nn import select_device

    device, described = select_device("auto")
    assert (device.type, described) == ("cpu", "cpu (no CUDA device available)")
