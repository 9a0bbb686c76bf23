"""Checkpoints record the action space and the observation statistics, and old ones load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from townlet_core.checkpoints import NetworkSpec, ObservationSpec, read_info
from townlet_core.data.action_space import ActionSpace
from townlet_core.errors import DataError
from townlet_core.nn import build_network, load_checkpoint, save_checkpoint

OBSERVATION = ObservationSpec(features_dim=3)
SPACES = {
    "box": ActionSpace("box", (2,), low=(-2.0, -1.0), high=(2.0, 1.0)),
    "multi_discrete": ActionSpace("multi_discrete", (2,), nvec=(3, 4)),
    "multi_binary": ActionSpace("multi_binary", (4,)),
}


def _save(path: Path, space: ActionSpace | None, spec: NetworkSpec | None = None, **kw):
    network = build_network(
        spec or NetworkSpec(hidden_sizes=(8,)),
        OBSERVATION,
        space.count if space else 2,
        seed=0,
        action_space=space,
    )
    save_checkpoint(path, network, strategy="test", strategy_version="0", seed=0, **kw)
    return network


@pytest.mark.parametrize("kind", sorted(SPACES))
def test_each_action_space_round_trips_with_its_outputs(tmp_path: Path, kind: str) -> None:
    space = SPACES[kind]
    network = _save(tmp_path / "ckpt", space)
    loaded, info = load_checkpoint(tmp_path / "ckpt")
    assert info.format_version == 2
    assert info.space() == space
    assert loaded.action_space == space
    features = torch.randn(5, 3)
    torch.testing.assert_close(loaded(features)[0], network(features)[0], rtol=0, atol=0)


def test_the_gaussian_log_std_is_saved(tmp_path: Path) -> None:
    network = _save(tmp_path / "ckpt", SPACES["box"], NetworkSpec(log_std_init=-1.0))
    with torch.no_grad():
        network.distribution.log_std.add_(0.25)
    save_checkpoint(tmp_path / "later", network, strategy="t", strategy_version="0", seed=0)
    loaded, _ = load_checkpoint(tmp_path / "later")
    assert torch.equal(loaded.distribution.log_std, torch.full((2,), -0.75))


def test_a_discrete_checkpoint_is_still_written_as_version_1(tmp_path: Path) -> None:
    _save(tmp_path / "ckpt", None)
    data = json.loads((tmp_path / "ckpt" / "checkpoint.json").read_text())
    assert data["format_version"] == 1
    assert data["action_space"] is None
    assert read_info(tmp_path / "ckpt").space() == ActionSpace("discrete", (), n=2)


def test_a_version_1_description_without_the_new_fields_loads(tmp_path: Path) -> None:
    _save(tmp_path / "ckpt", None)
    path = tmp_path / "ckpt" / "checkpoint.json"
    data = json.loads(path.read_text())
    for key in ("action_space", "action_mapping"):
        data.pop(key)
    for key in ("normalize_observations", "log_std_init"):
        data["network"].pop(key)
    path.write_text(json.dumps(data))
    network, info = load_checkpoint(tmp_path / "ckpt")
    assert (info.space().kind, network.action_dim) == ("discrete", 2)


def test_action_mapping_is_recorded(tmp_path: Path) -> None:
    _save(tmp_path / "ckpt", SPACES["box"], action_mapping="squash")
    assert read_info(tmp_path / "ckpt").action_mapping == "squash"


def test_a_checkpoint_for_another_action_space_is_refused_by_name(tmp_path: Path) -> None:
    _save(tmp_path / "ckpt", SPACES["box"])
    with pytest.raises(DataError, match=r"checkpoint acts in box, shape \(2,\).*multi_binary"):
        load_checkpoint(
            tmp_path / "ckpt",
            observation=OBSERVATION,
            action_dim=2,
            action_space=ActionSpace("multi_binary", (2,)),
        )


def test_an_action_space_that_contradicts_action_dim_is_refused(tmp_path: Path) -> None:
    _save(tmp_path / "ckpt", SPACES["box"])
    path = tmp_path / "ckpt" / "checkpoint.json"
    data = json.loads(path.read_text())
    data["action_dim"] = 3
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="action_dim 3 does not fit action_space"):
        read_info(tmp_path / "ckpt")


def test_observation_statistics_are_in_the_weights_bit_for_bit(tmp_path: Path) -> None:
    network = build_network(
        NetworkSpec(hidden_sizes=(8,), normalize_observations=True), OBSERVATION, 2, seed=0
    )
    normalizer = network.observation_normalizer
    assert normalizer is not None
    normalizer.update(torch.randn(100, 3, generator=torch.Generator().manual_seed(0)) * 5 + 2)
    save_checkpoint(tmp_path / "ckpt", network, strategy="t", strategy_version="0", seed=0)
    weights = load_file(str(tmp_path / "ckpt" / "weights.safetensors"))
    assert weights["observation_normalizer.mean"].dtype == torch.float64
    loaded, info = load_checkpoint(tmp_path / "ckpt")
    assert info.format_version == 2
    assert loaded.observation_normalizer is not None
    for name in ("mean", "var", "count"):
        assert torch.equal(getattr(loaded.observation_normalizer, name), getattr(normalizer, name))
    features = torch.randn(4, 3)
    assert torch.equal(loaded(features)[0], network(features)[0])


def test_a_multi_discrete_space_that_would_pad_to_gigabytes_is_refused(tmp_path: Path) -> None:
    """nvec [65536, 1, 1, ...] has few outputs but pads to 65,536 x 65,536 choices."""
    _save(tmp_path / "ckpt", SPACES["multi_discrete"])
    path = tmp_path / "ckpt" / "checkpoint.json"
    data = json.loads(path.read_text())
    nvec = [65_536] + [1] * 65_535
    data["action_space"] = {"kind": "multi_discrete", "shape": [len(nvec)], "nvec": nvec}
    data["action_dim"] = len(nvec)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="choices .* above the 16,777,216 a policy supports"):
        read_info(tmp_path / "ckpt")
