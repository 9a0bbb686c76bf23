"""`townlet export`: the exported file takes the checkpoint's own greedy actions.

Reference actions are those of `TorchPolicy` (what `townlet evaluate` runs): equal for the
discrete kinds, within 1e-5 for Box. The ONNX file runs in onnxruntime and the TorchScript
file in plain `torch.jit.load`, neither importing Townlet's network code. Synthetic
checkpoints (untrained, seeded weights; observation statistics set by hand) cover every
action space, masks, maps and normalisation quickly; tiny real PPO runs (CartPole,
Pendulum with squashed actions and observation normalisation, MiniGrid with a CNN) are the
slow end-to-end checks.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from townlet_core.checkpoints import NetworkSpec, ObservationSpec
from townlet_core.data.action_space import ActionSpace
from townlet_core.errors import ConfigError, DataError
from townlet_core.nn import TorchPolicy, build_network, save_checkpoint
from townlet_core.nn import export as export_module
from townlet_core.nn.export import (
    ExportDependencyError,
    ExportError,
    export_policy,
)

#: `env_actions` (the reference) computes squashed values for unbounded dimensions too,
#: then discards them: inf - inf warns there, harmlessly.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in:RuntimeWarning")
ROWS = 1000
needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None,
    reason="needs townlet-core[onnx] (onnx, onnxruntime)",
)
FORMATS = [pytest.param("onnx", marks=needs_onnx), "torchscript"]

CNN = NetworkSpec(
    hidden_sizes=(16,),
    encoder_hidden=16,
    map_encoder="cnn",
    cnn_channels=(4, 8),
    cnn_kernels=(2, 2),
    cnn_strides=(1, 1),
)
#: name -> (observation, action space, network, action mapping, export a mask input)
SYNTHETIC: dict[str, tuple[ObservationSpec, ActionSpace, NetworkSpec, str, bool]] = {
    "discrete-masked": (
        ObservationSpec(features_dim=4),
        ActionSpace("discrete", (), n=5),
        NetworkSpec(hidden_sizes=(16,)),
        "clip",
        True,
    ),
    "box-clip": (
        ObservationSpec(features_dim=3),
        # bounds narrow enough that the means are clipped often
        ActionSpace("box", (2,), low=(-0.005, -1.0), high=(0.005, 1.0)),
        NetworkSpec(hidden_sizes=(16, 16), shared_trunk=True),
        "clip",
        False,
    ),
    "box-squash": (
        ObservationSpec(features_dim=3),
        ActionSpace("box", (2,), low=(-2.0, float("-inf")), high=(3.0, float("inf"))),
        NetworkSpec(hidden_sizes=(16, 16)),
        "squash",
        False,
    ),
    "multi-discrete-masked": (
        ObservationSpec(features_dim=3),
        ActionSpace("multi_discrete", (3,), nvec=(3, 4, 2)),
        NetworkSpec(hidden_sizes=(16,), activation="relu"),
        "clip",
        True,
    ),
    "multi-binary": (
        ObservationSpec(features_dim=3),
        ActionSpace("multi_binary", (4,)),
        NetworkSpec(hidden_sizes=(16,)),
        "clip",
        False,
    ),
    "map-and-features": (
        ObservationSpec(features_dim=4, map_shape=(3, 5, 5)),
        ActionSpace("discrete", (), n=3),
        NetworkSpec(hidden_sizes=(16,), encoder_hidden=16, normalize_observations=True),
        "clip",
        False,
    ),
    "image-only-cnn": (
        ObservationSpec(features_dim=0, map_shape=(3, 7, 7)),
        ActionSpace("discrete", (), n=3),
        CNN,
        "clip",
        False,
    ),
}


def make_checkpoint(
    path: Path,
    observation: ObservationSpec,
    space: ActionSpace,
    spec: NetworkSpec,
    mapping: str = "clip",
    *,
    seed: int = 0,
) -> Path:
    """A seeded, untrained checkpoint whose actions vary with the observation; a normalising
    one gets statistics far from the identity (mean 3, standard deviation 2 to 5), so
    dropping them changes the actions."""
    network = build_network(spec, observation, space.count, seed=seed, action_space=space)
    state = network.state_dict()  # the layers by their checkpoint names
    state["policy_head.weight"].mul_(100.0)  # a fresh head (gain 0.01) barely varies
    network.load_state_dict(state)
    if network.observation_normalizer is not None:
        width = observation.features_dim
        network.observation_normalizer.mean.fill_(3.0)
        network.observation_normalizer.var.copy_(torch.linspace(4.0, 25.0, width).double())
    save_checkpoint(
        path, network, strategy="test", strategy_version="0", seed=seed, action_mapping=mapping
    )
    return path


def observations(
    observation: ObservationSpec, rows: int, seed: int = 1, *, around: float = 0.0
) -> dict[str, np.ndarray]:
    """`rows` float32 observations: features normal around `around` (spread 4), maps
    standard normal (centred, so that an untrained CNN's actions vary)."""
    rng = np.random.default_rng(seed)
    batch = {}
    if observation.features_dim:
        batch["features"] = around + 4.0 * rng.standard_normal((rows, observation.features_dim))
    if observation.map_shape is not None:
        batch["map"] = rng.standard_normal((rows, *observation.map_shape))
    return {key: value.astype(np.float32) for key, value in batch.items()}


def random_mask(space: ActionSpace, rows: int, seed: int = 2) -> np.ndarray:
    """Each action legal with probability 0.5; the first of a group where none was."""
    rng = np.random.default_rng(seed)
    mask = rng.random((rows, int(space.mask_width or 0))) < 0.5
    start = 0
    for size in space.nvec or (space.mask_width or 0,):
        block = mask[:, start : start + size]
        block[~block.any(axis=1), 0] = True
        start += size
    return mask


def reference_actions(
    checkpoint: Path, batch: dict[str, np.ndarray], mask: np.ndarray | None = None
) -> np.ndarray:
    """The checkpoint's own greedy actions (`townlet evaluate`'s policy)."""
    policy = TorchPolicy.from_checkpoint(checkpoint)
    if "map" not in batch:
        return policy(batch["features"], action_mask=mask).actions
    no_features = {"features": np.zeros((len(batch["map"]), 0), np.float32)}
    return policy({**no_features, **batch}, action_mask=mask).actions


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    result: np.ndarray = session.run(["actions"], feeds)[0]
    return result


def run_torchscript(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The TorchScript file with plain torch, its inputs positional in the documented order."""
    with warnings.catch_warnings():  # torch 2.9+ deprecates TorchScript; it still runs
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path))
    order = [name for name in ("features", "map", "action_mask") if name in feeds]
    with torch.no_grad():
        result: np.ndarray = module(*(torch.from_numpy(feeds[name]) for name in order)).numpy()
    return result


RUNNERS: dict[str, Callable[[Path, dict[str, np.ndarray]], np.ndarray]] = {
    "onnx": run_onnx,
    "torchscript": run_torchscript,
}


def assert_same_actions(space: ActionSpace, found: np.ndarray, expected: np.ndarray) -> None:
    assert found.shape == expected.shape
    assert found.dtype == expected.dtype
    if space.kind == "box":
        np.testing.assert_allclose(found, expected, rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(found, expected)


# ------------------------------------------------------------------ every space, both formats


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(SYNTHETIC))
def test_the_exported_file_takes_the_checkpoints_greedy_actions(
    tmp_path: Path, case: str, fmt: str
) -> None:
    observation, space, spec, mapping, masked = SYNTHETIC[case]
    checkpoint = make_checkpoint(tmp_path / "ckpt", observation, space, spec, mapping)
    exported = export_policy(checkpoint, tmp_path / f"policy.{fmt}", format=fmt, action_mask=masked)
    batch = observations(observation, ROWS, around=3.0 if spec.normalize_observations else 0.0)
    mask = random_mask(space, ROWS) if masked else None
    expected = reference_actions(checkpoint, batch, mask)
    assert len(np.unique(expected, axis=0)) > 1, "a constant policy would prove nothing"
    feeds = {**batch, **({"action_mask": mask} if mask is not None else {})}
    assert set(exported.inputs) == set(feeds)
    assert_same_actions(space, RUNNERS[fmt](exported.path, feeds), expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_batch_axis_is_free(tmp_path: Path, fmt: str) -> None:
    observation, space, spec, mapping, _ = SYNTHETIC["map-and-features"]
    checkpoint = make_checkpoint(tmp_path / "ckpt", observation, space, spec, mapping)
    path = export_policy(checkpoint, tmp_path / "policy", format=fmt).path
    for rows in (1, 3, 257):
        batch = observations(observation, rows, seed=rows)
        assert RUNNERS[fmt](path, batch).shape == (rows,)


@needs_onnx
def test_the_normalisation_statistics_are_part_of_the_file(tmp_path: Path) -> None:
    """Raw features in, the trained statistics applied inside: the same actions as the
    checkpoint, and other actions than the same network without its statistics."""
    observation = ObservationSpec(features_dim=4)
    space = ActionSpace("discrete", (), n=4)
    normalised = NetworkSpec(hidden_sizes=(16,), normalize_observations=True)
    with_stats = make_checkpoint(tmp_path / "stats", observation, space, normalised)
    path = export_policy(with_stats, tmp_path / "p.onnx", format="onnx").path
    batch = observations(observation, ROWS, around=3.0)
    found = run_onnx(path, batch)
    np.testing.assert_array_equal(found, reference_actions(with_stats, batch))
    identity = build_network(normalised, observation, 4, seed=0, action_space=space)
    with torch.no_grad():
        unnormalised = identity(torch.from_numpy(batch["features"]))[0].argmax(-1).numpy()
    assert (found != unnormalised).mean() > 0.1


@needs_onnx
def test_box_actions_come_out_inside_the_bounds(tmp_path: Path) -> None:
    observation, space, spec, mapping, _ = SYNTHETIC["box-clip"]
    checkpoint = make_checkpoint(tmp_path / "ckpt", observation, space, spec, mapping)
    path = export_policy(checkpoint, tmp_path / "p.onnx", format="onnx").path
    found = run_onnx(path, observations(observation, ROWS))
    assert found[:, 0].min() >= -0.005 and found[:, 0].max() <= 0.005
    assert np.isclose(np.abs(found[:, 0]), 0.005).mean() > 0.1  # clipping did happen


@needs_onnx
def test_a_masked_action_is_never_taken(tmp_path: Path) -> None:
    observation, space, spec, mapping, _ = SYNTHETIC["discrete-masked"]
    checkpoint = make_checkpoint(tmp_path / "ckpt", observation, space, spec, mapping)
    path = export_policy(checkpoint, tmp_path / "p.onnx", format="onnx", action_mask=True).path
    batch = observations(observation, ROWS)
    everything = np.ones((ROWS, 5), dtype=bool)
    free = run_onnx(path, {**batch, "action_mask": everything})
    assert len(np.unique(free)) > 1
    np.testing.assert_array_equal(free, reference_actions(checkpoint, batch))
    forbidden = everything.copy()
    forbidden[np.arange(ROWS), free] = False  # forbid each row's favourite
    again = run_onnx(path, {**batch, "action_mask": forbidden})
    assert not np.any(again == free)


@needs_onnx
def test_the_onnx_file_describes_itself(tmp_path: Path) -> None:
    import onnx

    observation, space, spec, mapping, _ = SYNTHETIC["box-squash"]
    checkpoint = make_checkpoint(tmp_path / "ckpt", observation, space, spec, mapping)
    path = export_policy(checkpoint, tmp_path / "p.onnx", format="onnx").path
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["features"]
    assert [o.name for o in model.graph.output] == ["actions"]
    described = json.loads({p.key: p.value for p in model.metadata_props}["townlet"])
    assert described["action_mapping"] == "squash"
    assert described["action_space"]["kind"] == "box"
    assert described["inputs"] == {"features": ["N", 3]}


# ------------------------------------------------------------------ errors and atomic writes


def test_an_unknown_format_names_the_formats(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path / "ckpt", *SYNTHETIC["multi-binary"][:3])
    with pytest.raises(ConfigError) as caught:
        export_policy(checkpoint, tmp_path / "p", format="onxx")
    assert str(caught.value) == (
        "unknown export format 'onxx' (the formats are onnx, torchscript); did you mean 'onnx'?"
    )


def test_the_cli_refuses_a_folder_that_is_no_checkpoint(tmp_path: Path, townlet: Any) -> None:
    (tmp_path / "empty").mkdir()
    code, _out, err = townlet("export", str(tmp_path / "empty"), "--format", "onnx", "-o", "p")
    assert code == 2
    assert err.startswith(f"townlet: error: {tmp_path / 'empty'}: not a Townlet checkpoint")
    assert not (tmp_path / "p").exists()


def test_the_cli_reports_an_unknown_format_in_one_line(tmp_path: Path, townlet: Any) -> None:
    checkpoint = make_checkpoint(tmp_path / "ckpt", *SYNTHETIC["multi-binary"][:3])
    code, _out, err = townlet("export", str(checkpoint), "--format", "tflite", "-o", "p")
    assert (code, err) == (
        2,
        "townlet: error: unknown export format 'tflite' (the formats are onnx, torchscript)\n",
    )


def test_missing_onnxruntime_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = make_checkpoint(tmp_path / "ckpt", *SYNTHETIC["multi-binary"][:3])
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    with pytest.raises(ExportDependencyError, match=r"pip install 'townlet-core\[onnx\]'"):
        export_policy(checkpoint, tmp_path / "p.onnx", format="onnx")
    assert not (tmp_path / "p.onnx").exists()
    # TorchScript needs neither package
    export_policy(checkpoint, tmp_path / "p.pt", format="torchscript")


def test_a_mask_input_for_a_box_policy_is_refused(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path / "ckpt", *SYNTHETIC["box-clip"][:3])
    with pytest.raises(ExportError, match="masks restrict discrete and multi_discrete"):
        export_policy(checkpoint, tmp_path / "p.onnx", format="onnx", action_mask=True)


@needs_onnx
def test_a_file_that_does_not_reproduce_the_policy_is_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before writing can fail, and then the file already there is untouched."""
    checkpoint = make_checkpoint(tmp_path / "ckpt", *SYNTHETIC["discrete-masked"][:3])
    target = tmp_path / "p.onnx"
    target.write_bytes(b"the previous export")
    real = export_module._run_onnx

    def off_by_one(*args: Any) -> np.ndarray:
        return (real(*args) + 1) % 5  # type: ignore[no-any-return]

    monkeypatch.setattr(export_module, "_run_onnx", off_by_one)
    with pytest.raises(ExportError, match="does not reproduce the policy"):
        export_policy(checkpoint, target, format="onnx")
    assert target.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "p.onnx"]  # no temporaries


def test_a_run_folder_means_its_final_checkpoint_and_best_its_best(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_checkpoint(run / "checkpoint", *SYNTHETIC["box-clip"][:3], seed=1)
    make_checkpoint(run / "checkpoint-best", *SYNTHETIC["box-clip"][:3], seed=2)
    (run / "result.json").write_text(
        json.dumps({"checkpoint": "checkpoint", "best_checkpoint": "checkpoint-best"})
    )
    assert export_policy(run, tmp_path / "f.pt", format="torchscript").checkpoint == (
        run / "checkpoint"
    )
    best = export_policy(run, tmp_path / "b.pt", format="torchscript", best=True)
    assert best.checkpoint == run / "checkpoint-best"


def test_a_result_naming_a_checkpoint_outside_the_run_is_refused(tmp_path: Path) -> None:
    make_checkpoint(tmp_path / "elsewhere", *SYNTHETIC["box-clip"][:3])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "result.json").write_text(json.dumps({"checkpoint": "../elsewhere"}))
    with pytest.raises(DataError, match="points outside the run folder"):
        export_policy(tmp_path / "run", tmp_path / "p.pt", format="torchscript")


def test_the_cli_prints_the_inputs_as_json(tmp_path: Path, townlet: Any) -> None:
    checkpoint = make_checkpoint(tmp_path / "ckpt", *SYNTHETIC["multi-discrete-masked"][:3])
    target = tmp_path / "p.pt"
    args = ("export", str(checkpoint), "--format", "torchscript", "-o", str(target))
    code, out, err = townlet(*args, "--action-mask", "--json")
    assert code == 0, err
    described = json.loads(out)
    assert described["inputs"] == {"features": ["N", 3], "action_mask": ["N", 9]}
    assert described["output"] == {"actions": ["N", 3], "dtype": "int64"}
    assert target.is_file()


def test_export_help_imports_no_torch() -> None:
    probe = (
        "import sys\n"
        "from townlet_core.cli import main\n"
        "assert main(['export', '--help']) == 0\n"
        "assert not [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "--format onnx|torchscript" in done.stdout


# ------------------------------------------------------------------ real, briefly trained runs

#: Tiny PPO runs (a few seconds each): CartPole (Discrete); Pendulum (Box, squashed, with
#: observation normalisation); MiniGrid with a CNN (image map + direction features).
RUNS: dict[str, dict[str, Any]] = {
    "cartpole": {
        "env": "CartPole-v1",
        "num_envs": 4,
        "num_steps": 64,
        "total_timesteps": 4096,
        "update_epochs": 4,
    },
    "pendulum": {
        "env": "Pendulum-v1",
        "num_envs": 2,
        "num_steps": 64,
        "minibatch_size": 64,
        "total_timesteps": 1024,
        "normalize_observations": True,
        "action_mapping": "squash",
    },
    "minigrid": {
        "env": "minigrid:MiniGrid-Empty-5x5-v0",
        "wrappers": [
            {
                "wrapper": "gymnasium.wrappers:FilterObservation",
                "kwargs": {"filter_keys": ["image", "direction"]},
            }
        ],
        "num_envs": 2,
        "num_steps": 64,
        "minibatch_size": 64,
        "total_timesteps": 512,
        "network": {
            "map_encoder": "cnn",
            "cnn_channels": [8, 16],
            "cnn_kernels": [2, 2],
            "cnn_strides": [1, 1],
            "encoder_hidden": 32,
        },
    },
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The RUNS, trained at once by `townlet train` in subprocesses; name -> run folder."""
    pytest.importorskip("minigrid")
    root = tmp_path_factory.mktemp("trained")
    started = {}
    for name, section in RUNS.items():
        config = root / f"{name}.json"
        quiet = {"eval_every": None, "eval_episodes": 1, "stop_return": None}
        config.write_text(json.dumps({"strategy": "ppo", "ppo": {**section, **quiet}}))
        command = [sys.executable, "-m", "townlet_core.cli", "train", "-c", str(config)]
        started[name] = subprocess.Popen(
            [*command, "--seed", "0", "--run-dir", str(root / name), "-q"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, process in started.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, f"{name}: {out}{err}"
    return {name: root / name for name in RUNS}


def rollout(name: str, rows: int) -> list[Any]:
    """`rows` raw observations of the run's env under random actions."""
    import gymnasium

    if name == "minigrid":
        import minigrid  # noqa: F401 (registers the ids)
        from gymnasium.wrappers import FilterObservation

        env = FilterObservation(
            gymnasium.make("MiniGrid-Empty-5x5-v0"), filter_keys=["image", "direction"]
        )
    else:
        env = gymnasium.make(RUNS[name]["env"])
    env.action_space.seed(0)
    seen = []
    observation, _ = env.reset(seed=0)
    while len(seen) < rows:
        seen.append(observation)
        observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            observation, _ = env.reset()
    env.close()
    return seen


def adapted(name: str, raw: list[Any]) -> dict[str, np.ndarray]:
    """Raw observations as the policy reads them (MiniGrid's through Townlet's adapter)."""
    if name != "minigrid":
        return {"features": np.stack(raw).astype(np.float32)}
    import gymnasium
    import minigrid  # noqa: F401
    from gymnasium.wrappers import FilterObservation

    from townlet_core.envs.observations import adapter_for

    env = FilterObservation(
        gymnasium.make("MiniGrid-Empty-5x5-v0"), filter_keys=["image", "direction"]
    )
    adapter = adapter_for(env.observation_space, "MiniGrid-Empty-5x5-v0")
    rows = [adapter(observation) for observation in raw]
    return {key: np.stack([row[key] for row in rows]) for key in ("features", "map")}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_trained_policy_exports_with_the_same_actions_on_its_env(
    trained: dict[str, Path], tmp_path: Path, townlet: Any, name: str, fmt: str
) -> None:
    """1,000 observations of the env: the exported file's actions are the checkpoint's."""
    path = tmp_path / f"{name}.{fmt}"
    code, out, err = townlet("export", str(trained[name]), "--format", fmt, "-o", str(path))
    assert code == 0, err
    assert out.startswith(f"wrote {path} ({fmt}) from {trained[name] / 'checkpoint'}")
    batch = adapted(name, rollout(name, ROWS))
    expected = reference_actions(trained[name] / "checkpoint", batch)
    assert len(np.unique(expected.round(3), axis=0)) > 1, "a constant policy would prove nothing"
    space = TorchPolicy.from_checkpoint(trained[name] / "checkpoint").network.action_space
    assert_same_actions(space, RUNNERS[fmt](path, batch), expected)
