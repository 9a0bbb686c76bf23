"""Bad config is refused before anything is written (issue 10, items 14 and 15).

Every case is driven through `townlet train` in-process from an empty working directory
(`tmp_path`), into `--run-dir tmp/run`: the error must name the field, exit 2, and leave
no file behind (no run directory, no `runs/state.json`), only the config the test wrote.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from townlet_core.checkpoints import (
    INFO_FILE,
    CheckpointInfo,
    NetworkSpec,
    ObservationSpec,
    Producer,
)
from townlet_core.contract.world import World
from townlet_core.errors import ConfigError
from townlet_core.runtime.config import build_run_config, load_config_file

Townlet = Callable[..., tuple[int, str, str]]

#: The largest seed a run takes: SQLite (the promotion ledger) stores it as a signed 64-bit
#: integer; NumPy, torch and Gymnasium take more.
MAX_SEED = 2**63 - 1

#: A PPO run small enough to start in a second, should a check let it through.
TINY = [
    "--set",
    "ppo.num_envs=2",
    "--set",
    "ppo.num_steps=16",
    "--set",
    "ppo.minibatch_size=16",
    "--set",
    "ppo.total_timesteps=64",
    "--set",
    "ppo.update_epochs=1",
    "--set",
    "ppo.eval_every=null",
    "--set",
    "ppo.eval_episodes=1",
    "--set",
    "ppo.stop_return=null",
    "--set",
    "ppo.max_episode_steps=20",
]
INPUTS = "inputs"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / INPUTS
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _refused(townlet: Townlet, tmp_path: Path, *args: str) -> str:
    """Run `townlet train ARGS --run-dir tmp/run`; it must exit 2 having written nothing.

    Returns stderr (the one-line error)."""
    code, _out, err = townlet("train", "-q", *args, "--run-dir", "tmp/run")
    written = sorted(
        str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if INPUTS not in p.parts
    )
    assert code == 2, err
    assert written == [], f"files written before the refusal: {written}; stderr: {err}"
    return err


# --------------------------------------------------------------------------- item 14


NON_FINITE_PPO_FIELDS = [
    "learning_rate",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "target_kl",
    "value_clip",
    "stop_return",
    "accept_return",
]


@pytest.mark.parametrize("field", NON_FINITE_PPO_FIELDS)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_non_finite_set_values_are_refused_naming_the_field(
    townlet_in_tmp: Townlet, tmp_path: Path, field: str, value: str
) -> None:
    err = _refused(
        townlet_in_tmp, tmp_path, "--strategy", "ppo", *TINY, "--set", f"ppo.{field}={value}"
    )
    assert f"ppo.{field}" in err
    assert "finite" in err


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("c.yaml", "strategy: ppo\nppo:\n  learning_rate: .inf\n"),
        ("c.yml", "strategy: ppo\nppo:\n  learning_rate: .nan\n"),
        ("c.toml", 'strategy = "ppo"\n[ppo]\nlearning_rate = inf\n'),
        ("n.toml", 'strategy = "ppo"\n[ppo]\nlearning_rate = nan\n'),
        ("c.json", '{"strategy": "ppo", "ppo": {"learning_rate": Infinity}}'),
        ("n.json", '{"strategy": "ppo", "ppo": {"learning_rate": NaN}}'),
    ],
)
def test_non_finite_values_are_refused_in_every_file_syntax(
    townlet_in_tmp: Townlet, tmp_path: Path, name: str, text: str
) -> None:
    config = _write(tmp_path, name, text)
    err = _refused(townlet_in_tmp, tmp_path, "-c", str(config), *TINY)
    assert "ppo.learning_rate: must be a finite number" in err
    assert str(config) in err


@pytest.mark.parametrize("field", ["learning_rate", "weight_decay"])
def test_non_finite_bc_values_are_refused(
    townlet_in_tmp: Townlet, tmp_path: Path, field: str
) -> None:
    err = _refused(townlet_in_tmp, tmp_path, "--strategy", "bc", "--set", f"bc.{field}=inf")
    assert f"bc.{field}: must be a finite number, got inf" in err


def test_non_finite_guardrail_tolerance_is_refused(townlet_in_tmp: Townlet, tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        "anneal.yaml",
        "strategy: anneal\nanneal:\n  guardrails:\n"
        "    - {metric: loss_total, direction: both, tolerance: .inf}\n",
    )
    err = _refused(townlet_in_tmp, tmp_path, "-c", str(config))
    assert "anneal.guardrails.0.tolerance: must be a finite number, got inf" in err


def test_non_finite_value_in_an_anneal_stage_override_is_refused(
    townlet_in_tmp: Townlet, tmp_path: Path
) -> None:
    config = _write(
        tmp_path,
        "anneal.yaml",
        "strategy: anneal\nanneal:\n  schedule:\n"
        "    - {cycle: 0, strategy: ppo, overrides: {learning_rate: .nan}}\n",
    )
    err = _refused(townlet_in_tmp, tmp_path, "-c", str(config))
    assert "learning_rate: must be a finite number, got nan" in err


class ThirdParty(BaseModel):
    """A config model from another distribution: no `allow_inf_nan`, no bounds."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")

    rate: float = 0.1
    weights: list[float] = Field(default_factory=lambda: [1.0])
    horizon: float = Field(
        1.0, json_schema_extra={"allow_non_finite": True}, description="inf: no horizon"
    )


@pytest.mark.parametrize(
    ("section", "where"),
    [({"rate": math.inf}, "tp.rate"), ({"weights": [1.0, math.nan]}, "tp.weights.1")],
)
def test_non_finite_values_are_refused_for_any_strategy_model(
    section: dict[str, Any], where: str
) -> None:
    with pytest.raises(ConfigError, match=rf"config mapping: {where}: must be a finite number"):
        build_run_config("tp", {"tp": ThirdParty}, data={"tp": section})


def test_a_field_may_opt_out_of_the_finite_check() -> None:
    config = build_run_config("tp", {"tp": ThirdParty}, data={"tp": {"horizon": math.inf}})
    assert config.section("tp").horizon == math.inf  # type: ignore[attr-defined]
    json.dumps(config.snapshot(), allow_nan=False)  # the model writes it as "Infinity"


# --------------------------------------------------------------------------- item 15


def test_unknown_environment_is_refused_with_close_ids(
    townlet_in_tmp: Townlet, tmp_path: Path
) -> None:
    err = _refused(
        townlet_in_tmp, tmp_path, "--strategy", "ppo", *TINY, "--set", "ppo.env=CartPle-v1"
    )
    assert "ppo.env" in err and "'CartPle-v1'" in err
    assert "CartPole-v1" in err


def test_unavailable_cuda_device_is_refused(townlet_in_tmp: Townlet, tmp_path: Path) -> None:
    import torch

    missing = f"cuda:{torch.cuda.device_count() + 7}"
    err = _refused(townlet_in_tmp, tmp_path, "--strategy", "ppo", *TINY, "--device", missing)
    assert f"--device {missing}" in err


def test_unavailable_mps_device_is_refused(townlet_in_tmp: Townlet, tmp_path: Path) -> None:
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    err = _refused(townlet_in_tmp, tmp_path, "--strategy", "ppo", *TINY, "--device", "mps")
    assert "--device mps" in err


def test_check_device_available() -> None:
    import torch

    from townlet_core.nn.device import check_device_available

    check_device_available("cpu")
    check_device_available("auto")
    with pytest.raises(ConfigError, match="cuda:"):
        check_device_available(f"cuda:{torch.cuda.device_count()}")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cuda: CUDA is not available"):
            check_device_available("cuda")


@pytest.mark.parametrize("seed", [str(MAX_SEED + 1), str(2**64), str(2**70)])
def test_seed_out_of_range_is_refused(townlet_in_tmp: Townlet, tmp_path: Path, seed: str) -> None:
    err = _refused(townlet_in_tmp, tmp_path, "--strategy", "ppo", *TINY, "--seed", seed)
    assert "seed" in err and str(MAX_SEED) in err


def test_seed_out_of_range_in_a_file_is_refused(townlet_in_tmp: Townlet, tmp_path: Path) -> None:
    config = _write(tmp_path, "c.yaml", f"strategy: ppo\nseed: {2**64}\n")
    err = _refused(townlet_in_tmp, tmp_path, "-c", str(config), *TINY)
    assert f"{config}: seed: must be between 0 and {MAX_SEED}" in err


def test_the_largest_seed_trains(townlet_in_tmp: Townlet, tmp_path: Path) -> None:
    """The bound is what every consumer accepts: a tiny PPO run at MAX_SEED succeeds."""
    code, _out, err = townlet_in_tmp(
        "train", "-q", "--strategy", "ppo", *TINY, "--seed", str(MAX_SEED), "--run-dir", "tmp/run"
    )
    assert code == 0, err
    assert json.loads((tmp_path / "tmp" / "run" / "config.json").read_text())["seed"] == MAX_SEED


def test_rollout_memory_beyond_the_machine_is_refused(
    townlet_in_tmp: Townlet, tmp_path: Path
) -> None:
    err = _refused(
        townlet_in_tmp,
        tmp_path,
        "--strategy",
        "ppo",
        *TINY,
        "--set",
        "ppo.num_steps=1000000000000",
        "--set",
        "ppo.total_timesteps=10000000000000",
    )
    assert "ppo.num_envs" in err and "ppo.num_steps" in err
    assert "GiB" in err


def test_network_memory_beyond_the_machine_is_refused(
    townlet_in_tmp: Townlet, tmp_path: Path
) -> None:
    err = _refused(
        townlet_in_tmp,
        tmp_path,
        "--strategy",
        "ppo",
        *TINY,
        "--set",
        f"ppo.network.hidden_sizes=[{', '.join(['60000'] * 40)}]",
    )
    assert "ppo.network.hidden_sizes" in err and "GiB" in err


def test_a_rollout_larger_than_the_budget_is_refused(
    townlet_in_tmp: Townlet, tmp_path: Path
) -> None:
    err = _refused(
        townlet_in_tmp,
        tmp_path,
        "--strategy",
        "ppo",
        *TINY,
        "--set",
        "ppo.num_envs=64",
        "--set",
        "ppo.total_timesteps=100",
    )
    assert "ppo: one rollout (num_envs 64 x num_steps 16 = 1024 steps)" in err
    assert (
        "total_timesteps to at least 1024" in err
    )  # what one rollout collects: the least total_timesteps to set


def test_anneal_naming_itself_in_its_schedule_is_refused(
    townlet_in_tmp: Townlet, tmp_path: Path
) -> None:
    config = _write(
        tmp_path,
        "self.yaml",
        "strategy: anneal\nanneal:\n  schedule:\n    - {cycle: 0, strategy: bc}\n"
        "    - {cycle: 1, strategy: anneal}\n",
    )
    err = _refused(townlet_in_tmp, tmp_path, "-c", str(config))
    assert "anneal.schedule.1.strategy" in err and "itself" in err


def test_anneal_run_inside_an_anneal_stage_is_refused() -> None:
    """A cycle through another composing strategy (anneal -> x -> anneal) is found by name
    when the inner anneal prepares, before it writes anything."""
    from townlet_strategies_anneal.config import AnnealConfig
    from townlet_strategies_anneal.schedule import prepare

    def context(name: str, parent: Any) -> Any:
        return SimpleNamespace(spec=SimpleNamespace(name=name), parent=parent)

    outer = context("anneal", None)
    inner = context("anneal", context("composer", outer))
    with pytest.raises(ConfigError, match="anneal -> composer -> anneal"):
        prepare(inner, AnnealConfig())


def _fake_checkpoint(folder: Path, hidden_sizes: tuple[int, ...]) -> Path:
    """A CartPole checkpoint description (no weights: prepare reads only the description)."""
    info = CheckpointInfo(
        network=NetworkSpec(hidden_sizes=hidden_sizes),
        observation=ObservationSpec(features_dim=4),
        action_dim=2,
        env_id="CartPole-v1",
        producer=Producer(strategy="bc", strategy_version="0", townlet_core="0"),
        seed=0,
        created_at="2024-01-01T00:00:00+00:00",
        weights_sha256="0" * 64,
        parameters=0,
    )
    folder.mkdir(parents=True)
    (folder / INFO_FILE).write_text(info.model_dump_json(), encoding="utf-8")
    return folder


def test_init_checkpoint_contradicting_the_network_is_refused(
    townlet_in_tmp: Townlet, tmp_path: Path
) -> None:
    checkpoint = _fake_checkpoint(tmp_path / INPUTS / "ckpt", (8,))
    err = _refused(
        townlet_in_tmp,
        tmp_path,
        "--strategy",
        "ppo",
        *TINY,
        "--set",
        f"ppo.init_checkpoint={checkpoint}",
        "--set",
        "ppo.network.hidden_sizes=[16, 16]",
        "--set",
        "ppo.network.activation=relu",
    )
    assert "ppo.network.hidden_sizes" in err and "ppo.network.activation" in err
    assert "(8,)" in err or "[8]" in err
    assert str(checkpoint) in err


def test_init_checkpoint_with_the_network_left_unset_is_not_refused(tmp_path: Path) -> None:
    from townlet_strategies_ppo.checks import prepare
    from townlet_strategies_ppo.config import PPOConfig

    checkpoint = _fake_checkpoint(tmp_path / "ckpt", (8,))
    context = SimpleNamespace(warm_start=None, device="cpu", resume=False, world=World())
    same = {"hidden_sizes": [8]}
    for config in (
        PPOConfig(init_checkpoint=checkpoint),
        PPOConfig(init_checkpoint=checkpoint, network=same),  # type: ignore[arg-type]
    ):
        prepare(context, config)  # type: ignore[arg-type]


def test_missing_init_checkpoint_is_refused(townlet_in_tmp: Townlet, tmp_path: Path) -> None:
    err = _refused(
        townlet_in_tmp,
        tmp_path,
        "--strategy",
        "ppo",
        *TINY,
        "--set",
        "ppo.init_checkpoint=nowhere/ckpt",
    )
    assert "ppo.init_checkpoint" in err and "nowhere" in err


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("strategy: ppo\nppo:\n  num_envs: 2\n  num_steps: 16\n  num_envs: 4\n", "num_envs", 5),
        ("strategy: ppo\nppo: {num_envs: 2}\nseed: 1\nppo: {num_steps: 16}\n", "ppo", 4),
    ],
)
def test_yaml_duplicate_keys_are_refused(
    townlet_in_tmp: Townlet, tmp_path: Path, text: str, key: str, line: int
) -> None:
    config = _write(tmp_path, "dup.yaml", text)
    err = _refused(townlet_in_tmp, tmp_path, "-c", str(config))
    assert f"duplicate key '{key}'" in err and f"line {line}" in err and str(config) in err


def test_yaml_merge_keys_are_still_allowed(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        "merge.yaml",
        "base: &b {num_envs: 2, num_steps: 16}\nppo:\n  <<: *b\n  num_envs: 4\n",
    )
    assert load_config_file(config)["ppo"] == {"num_envs": 4, "num_steps": 16}


def test_yaml_still_refuses_arbitrary_objects(tmp_path: Path) -> None:
    config = _write(tmp_path, "obj.yaml", "seed: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config_file(config)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("strategy: ppo\nppo:\n  num_envs: true\n", "ppo.num_envs"),
        ("strategy: ppo\nppo:\n  learning_rate: yes\n", "ppo.learning_rate"),
        ("strategy: ppo\nppo:\n  max_episode_steps: true\n", "ppo.max_episode_steps"),
        (
            "strategy: ppo\nppo:\n  network: {hidden_sizes: [true, 8]}\n",
            "ppo.network.hidden_sizes.0",
        ),
        ("strategy: ppo\nseed: true\n", "seed"),
    ],
)
def test_booleans_for_number_fields_are_refused(
    townlet_in_tmp: Townlet, tmp_path: Path, text: str, where: str
) -> None:
    config = _write(tmp_path, "bool.yaml", text)
    err = _refused(townlet_in_tmp, tmp_path, "-c", str(config))
    assert f"{where}: must be a number, got a boolean" in err


def test_numbers_given_as_strings_still_work() -> None:
    from townlet_strategies_ppo.config import PPOConfig

    config = build_run_config(
        "ppo",
        {"ppo": PPOConfig},
        overrides=["ppo.num_envs=9", "ppo.learning_rate=0.01", "seed=5", "ppo.recompute_old=true"],
    )
    ppo = config.section("ppo")
    assert (ppo.num_envs, ppo.learning_rate, config.run.seed) == (9, 0.01, 5)  # type: ignore[attr-defined]
    assert ppo.recompute_old is True  # type: ignore[attr-defined]
