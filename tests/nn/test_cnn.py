"""The convolutional map encoder: shapes, a clear error for small maps, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from townlet_core.checkpoints import NetworkSpec, ObservationSpec, read_info
from townlet_core.errors import ConfigError
from townlet_core.nn import build_network, load_checkpoint, save_checkpoint
from townlet_core.nn.network import ConvEncoder

IMAGE = ObservationSpec(features_dim=0, map_shape=(3, 84, 84))


def test_the_nature_dqn_default_reads_an_84x84_image() -> None:
    network = build_network(NetworkSpec(map_encoder="cnn"), IMAGE, 6, seed=0)
    assert isinstance(network.encoder.map_branch, ConvEncoder)
    params, values = network(torch.zeros(5, 0), torch.rand(5, 3, 84, 84))
    assert params.shape == (5, 6) and values.shape == (5,)
    kernels = [
        m.kernel_size
        for m in network.encoder.map_branch.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    assert kernels == [(8, 8), (4, 4), (3, 3)]  # fmt: skip


def test_a_map_too_small_for_the_kernels_says_what_to_set() -> None:
    small = ObservationSpec(features_dim=4, map_shape=(3, 7, 7))
    with pytest.raises(ConfigError, match=r"7x7 map is too small .*cnn_kernels to \[2, 2, 2\]"):
        build_network(NetworkSpec(map_encoder="cnn"), small, 7, seed=0)


def test_cnn_sizes_need_one_entry_per_convolution() -> None:
    with pytest.raises(ValueError, match="one entry per convolution"):
        NetworkSpec(map_encoder="cnn", cnn_channels=(16, 32), cnn_kernels=(2,), cnn_strides=(1,))


def test_an_observation_needs_features_or_a_map() -> None:
    with pytest.raises(ValueError, match="needs features"):
        ObservationSpec(features_dim=0)


def test_a_cnn_checkpoint_round_trips(tmp_path: Path) -> None:
    spec = NetworkSpec(
        map_encoder="cnn", cnn_channels=(8, 8), cnn_kernels=(2, 2), cnn_strides=(1, 1)
    )
    observation = ObservationSpec(features_dim=4, map_shape=(3, 7, 7))
    network = build_network(spec, observation, 7, seed=0)
    save_checkpoint(tmp_path / "ckpt", network, strategy="t", strategy_version="0", seed=0)
    assert read_info(tmp_path / "ckpt").format_version == 2
    loaded, _ = load_checkpoint(tmp_path / "ckpt")
    features, map_ = torch.rand(2, 4), torch.rand(2, 3, 7, 7)
    assert torch.equal(loaded(features, map_)[0], network(features, map_)[0])
