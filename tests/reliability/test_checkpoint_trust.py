"""Checkpoints are data: reading one never imports code it names, and a bad one is refused
with the file and field named before anything large is allocated."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from townlet_core.checkpoints import NetworkSpec, ObservationSpec
from townlet_core.data.action_space import ActionSpace
from townlet_core.errors import DataError
from townlet_core.nn import checkpoint as nn_checkpoint
from townlet_core.nn.checkpoint import load_checkpoint, save_checkpoint
from townlet_core.nn.network import PolicyNetwork, build_network

MARKER_MODULE = "townlet_marker_env"
CARTPOLE = ObservationSpec(features_dim=4)


def make_checkpoint(
    path: Path,
    *,
    env_id: str | None = "CartPole-v1",
    observation: ObservationSpec = CARTPOLE,
    action_dim: int = 2,
    spec: NetworkSpec | None = None,
    edit: Callable[[PolicyNetwork], None] | None = None,
) -> Path:
    """A tiny checkpoint written through the real writer (no training needed)."""
    network = build_network(spec or NetworkSpec(hidden_sizes=(8,)), observation, action_dim, seed=0)
    if edit is not None:
        with torch.no_grad():
            edit(network)
    save_checkpoint(path, network, strategy="test", strategy_version="0", seed=0, env_id=env_id)
    return path


def edit_info(path: Path, **changes: Any) -> None:
    info_path = path / "checkpoint.json"
    info = json.loads(info_path.read_text())
    for key, value in changes.items():
        target = info
        *parents, leaf = key.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    info_path.write_text(json.dumps(info))


@pytest.fixture
def marker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A module beside the checkpoint (importable, as the working directory is under
    `python -m`) that leaves a marker file when imported; yields the marker's path."""
    marker = tmp_path / "imported.marker"
    (tmp_path / f"{MARKER_MODULE}.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('imported')\n"
        "from gymnasium.envs.classic_control import CartPoleEnv as Env\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield marker
    sys.modules.pop(MARKER_MODULE, None)


def test_evaluate_never_imports_an_environment_a_checkpoint_names(marker_env, tmp_path, townlet):
    folder = make_checkpoint(tmp_path / "ckpt", env_id=f"{MARKER_MODULE}:Env")
    code, out, err = townlet("evaluate", str(folder), "--episodes", "1")
    assert (code, out) == (2, "")
    assert err == (
        f"townlet: error: checkpoint {folder} was trained on '{MARKER_MODULE}:Env'; pass "
        f"--env {MARKER_MODULE}:Env to run that code\n"
    )
    assert not marker_env.exists()
    assert MARKER_MODULE not in sys.modules


def test_python_m_evaluate_never_imports_a_module_beside_the_checkpoint(marker_env, tmp_path):
    """The reproduction: `python -m` puts the working directory first on sys.path, so a
    .py file handed over beside a checkpoint was imported as the environment's module."""
    import os
    import subprocess

    folder = make_checkpoint(tmp_path / "ckpt", env_id=f"{MARKER_MODULE}:Env")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOWNLET_")}
    result = subprocess.run(
        [sys.executable, "-m", "townlet_core.cli", "evaluate", "ckpt", "--episodes", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "pass --env townlet_marker_env:Env to run that code" in result.stderr
    assert not marker_env.exists()
    assert folder.exists()


def test_evaluate_never_calls_a_callable_a_checkpoint_names(tmp_path, townlet, monkeypatch):
    import os

    called: list[str] = []
    monkeypatch.setattr(os, "getcwd", lambda: called.append("getcwd") or str(tmp_path))
    folder = make_checkpoint(tmp_path / "ckpt", env_id="os:getcwd")
    code, _, err = townlet("evaluate", str(folder), "--episodes", "1")
    assert code == 2
    assert "pass --env os:getcwd to run that code" in err
    assert called == []


def test_an_import_string_runs_when_the_user_passes_it(marker_env, tmp_path, townlet):
    folder = make_checkpoint(tmp_path / "ckpt", env_id=f"{MARKER_MODULE}:Env")
    code, out, err = townlet(
        "evaluate", str(folder), "--env", f"{MARKER_MODULE}:Env", "--episodes", "1", "--json"
    )
    assert (code, err) == (0, "")
    assert json.loads(out)["episodes"] == 1
    assert marker_env.exists()


def test_a_registered_gymnasium_id_from_a_checkpoint_runs(tmp_path, townlet):
    folder = make_checkpoint(tmp_path / "ckpt")
    code, out, err = townlet("evaluate", str(folder), "--episodes", "1", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["env_id"] == "CartPole-v1"


def test_an_unregistered_id_from_a_checkpoint_is_refused_naming_it(tmp_path, townlet):
    folder = make_checkpoint(tmp_path / "ckpt", env_id="Nowhere/Pong-v5")
    code, _, err = townlet("evaluate", str(folder), "--episodes", "1")
    assert code == 2
    assert err == (
        f"townlet: error: checkpoint {folder} was trained on 'Nowhere/Pong-v5', which is not a "
        "registered Gymnasium id here; install the package that registers it and pass "
        "--env MODULE:Nowhere/Pong-v5 (MODULE registers the id when imported), or --env ID\n"
    )


def test_capture_refuses_a_policy_checkpoint_that_does_not_fit(tmp_path, townlet_in_tmp):
    folder = make_checkpoint(tmp_path / "ckpt", observation=ObservationSpec(features_dim=6))
    code, out, err = townlet_in_tmp(
        "capture", "--env", "CartPole-v1", "--policy", str(folder), "--episodes", "1",
        "--out", "data",
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err == (
        f"townlet: error: {folder}: checkpoint does not fit (features: checkpoint reads 6, the "
        "data has 4); use a checkpoint trained on the same observation and action spaces\n"
    )
    assert not (tmp_path / "data").exists()


def test_capture_runs_a_policy_checkpoint_that_fits(tmp_path, townlet_in_tmp):
    folder = make_checkpoint(tmp_path / "ckpt")
    code, _, err = townlet_in_tmp(
        "capture", "--env", "CartPole-v1", "--policy", str(folder), "--episodes", "1",
        "--out", "data", "--json",
    )  # fmt: skip
    assert (code, err) == (0, "")


@pytest.mark.parametrize("version", ["1", "2", None, 1.5, True])
def test_a_format_version_that_is_not_an_integer_names_the_file_and_field(tmp_path, version):
    folder = make_checkpoint(tmp_path / "ckpt")
    edit_info(folder, format_version=version)
    with pytest.raises(DataError) as info:
        load_checkpoint(folder)
    assert str(info.value) == (
        f"{folder / 'checkpoint.json'}: invalid checkpoint description: format_version must "
        f"be an integer (this townlet-core reads versions 1 to 2), got {json.dumps(version)}"
    )


def test_a_description_that_is_not_an_object_names_the_file(tmp_path):
    folder = make_checkpoint(tmp_path / "ckpt")
    (folder / "checkpoint.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"checkpoint\.json: invalid checkpoint description: "):
        load_checkpoint(folder)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, value):
    def poison(network: PolicyNetwork) -> None:
        state = network.state_dict()  # the layers by their checkpoint names
        state["policy_head.weight"][1, 3] = value
        network.load_state_dict(state)

    folder = make_checkpoint(tmp_path / "ckpt", edit=poison)
    with pytest.raises(DataError) as info:
        load_checkpoint(folder)
    assert str(info.value) == (
        f"{folder / 'weights.safetensors'}: tensor policy_head.weight holds 1 NaN or infinite "
        "value(s); the policy is unusable (training diverged or the file was edited): use an "
        "earlier checkpoint"
    )


def test_capture_with_non_finite_weights_writes_no_data(tmp_path, townlet_in_tmp):
    def poison(network: PolicyNetwork) -> None:
        state = network.state_dict()
        state["value_head.bias"].fill_(float("nan"))
        network.load_state_dict(state)

    folder = make_checkpoint(tmp_path / "ckpt", edit=poison)
    code, _, err = townlet_in_tmp(
        "capture", "--env", "CartPole-v1", "--policy", str(folder), "--episodes", "1",
        "--out", "data",
    )  # fmt: skip
    assert code == 2
    assert "tensor value_head.bias holds 1 NaN or infinite value(s)" in err
    assert not (tmp_path / "data").exists()


@pytest.fixture
def no_real_network(monkeypatch: pytest.MonkeyPatch) -> list[NetworkSpec]:
    """Fail the test if `load_checkpoint` builds a network with real memory for a spec the
    weights do not hold (a network on the "meta" device allocates nothing)."""
    built: list[NetworkSpec] = []

    class Guarded(PolicyNetwork):
        def __init__(
            self,
            spec: NetworkSpec,
            observation: ObservationSpec,
            action_dim: int,
            action_space: ActionSpace | None = None,
        ) -> None:
            if torch.empty(0).device.type != "meta":
                built.append(spec)
                if (spec.hidden_sizes, observation) != ((8,), CARTPOLE):
                    raise AssertionError(f"allocated a network for {spec}, {observation}")
            super().__init__(spec, observation, action_dim, action_space)

    monkeypatch.setattr(nn_checkpoint, "PolicyNetwork", Guarded)
    return built


def test_declared_widths_are_checked_against_the_weights_header_before_building(
    tmp_path, no_real_network
):
    folder = make_checkpoint(tmp_path / "ckpt")
    edit_info(folder, network__hidden_sizes=[40_000, 40_000])
    with pytest.raises(DataError) as info:
        load_checkpoint(folder)
    message = str(info.value)
    assert message.startswith(
        f"{folder}: weights do not match the network described in checkpoint.json ("
    )
    assert "actor_body.0.weight (8, 4) vs (40000, 4)" in message
    assert no_real_network == []


def test_declared_observation_is_checked_against_the_weights_header_before_building(
    tmp_path, no_real_network
):
    folder = make_checkpoint(tmp_path / "ckpt")
    edit_info(folder, observation__map_shape=[64, 1000, 1000])
    with pytest.raises(DataError, match="weights do not match the network described"):
        load_checkpoint(folder)
    assert no_real_network == []


def test_a_matching_checkpoint_still_loads_after_the_header_check(tmp_path, no_real_network):
    folder = make_checkpoint(tmp_path / "ckpt")
    network, info = load_checkpoint(folder)
    assert info.network.hidden_sizes == (8,)
    assert no_real_network == [NetworkSpec(hidden_sizes=(8,))]
    assert all(t.device.type == "cpu" for t in network.state_dict().values())


def test_hidden_sizes_of_200000_in_a_checkpoint_are_refused_as_invalid(tmp_path, no_real_network):
    folder = make_checkpoint(tmp_path / "ckpt")
    edit_info(folder, network__hidden_sizes=[200_000, 200_000])
    with pytest.raises(DataError) as info:
        load_checkpoint(folder)
    assert str(info.value).startswith(
        f"{folder / 'checkpoint.json'}: invalid checkpoint description: network.hidden_sizes.0: "
    )


@pytest.mark.parametrize("sizes", [(0,), (-5,), (64, 0), (1_000_000,)])
def test_hidden_sizes_must_be_positive_and_bounded(sizes):
    with pytest.raises(ValidationError, match="hidden_sizes"):
        NetworkSpec(hidden_sizes=sizes)


def test_no_hidden_layers_is_a_linear_policy_that_round_trips(tmp_path):
    folder = make_checkpoint(tmp_path / "ckpt", spec=NetworkSpec(hidden_sizes=()))
    network, info = load_checkpoint(folder)
    assert info.network.hidden_sizes == ()
    logits, value = network(torch.zeros(3, 4))
    assert (tuple(logits.shape), tuple(value.shape)) == ((3, 2), (3,))


@pytest.mark.parametrize("sizes", ["[0]", "[-5]"])
def test_train_refuses_non_positive_hidden_sizes_before_a_run_directory(
    tmp_path, townlet_in_tmp, monkeypatch, sizes
):
    monkeypatch.setenv("TOWNLET_LOAD_PLUGINS", "townlet-strategies-ppo")
    code, _, err = townlet_in_tmp(
        "train", "-s", "ppo", "--set", f"ppo.network.hidden_sizes={sizes}",
        "--set", "ppo.total_timesteps=64", "--set", "ppo.num_envs=2", "--set", "ppo.num_steps=16",
        "--set", "ppo.minibatch_size=16", "--set", "ppo.eval_episodes=1", "--quiet",
    )  # fmt: skip
    assert code == 2
    assert "ppo.network.hidden_sizes.0" in err
    assert "Input should be greater than or equal to 1" in err
    assert not (tmp_path / "runs").exists()
