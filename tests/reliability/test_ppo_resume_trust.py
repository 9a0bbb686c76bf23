"""PPO's resume trusts nothing it reads and can always finish (issue 10, items 1, 2, 6, 12, 13).

Each test stops a tiny CartPole run at a chosen point (or hands it a tampered run
directory), resumes it, and compares with a run that was never stopped.
"""

from __future__ import annotations

import json
import pathlib
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

import townlet_strategies_ppo.trainer as trainer_module
from townlet_core import Orchestrator, StrategyRegistry
from townlet_core.contract.world import World
from townlet_core.errors import DataError
from townlet_core.nn import load_checkpoint
from townlet_core.runtime.metrics import read_metrics
from townlet_strategies_ppo import checkpointing
from townlet_strategies_ppo.resume import ENVIRONMENTS_FORMAT
from townlet_strategies_ppo.telemetry import TIMING_FIELDS

#: Four quick CartPole updates, a checkpoint after each, episodes cut at 30 steps.
QUICK: dict[str, Any] = {
    "num_envs": 2,
    "num_steps": 16,
    "minibatch_size": 16,
    "update_epochs": 1,
    "total_timesteps": 32 * 4,
    "eval_every": None,
    "eval_episodes": 2,
    "stop_return": None,
    "checkpoint_every": 1,
    "max_episode_steps": 30,
}

#: Result fields that differ between two runs with one seed (times) or by design (resume).
UNCOMPARABLE = {
    "started_at",
    "finished_at",
    "duration_sec",
    "resumed_from_update",
    "updates_run",
    "artifacts",
    *TIMING_FIELDS,
}


@pytest.fixture
def train_ppo(ppo_registry: StrategyRegistry, townlet_train: Any, tmp_path: Path) -> Any:
    """`train_ppo(section, name=...)` runs into tmp_path/NAME. The run that gets stopped
    ("parts") uses tmp_path/runs, the runs root its resume carries state to (the working
    directory's default); every other run has a runs root of its own."""

    def run(section: dict[str, Any], *, name: str, seed: int = 3) -> Any:
        root = tmp_path / ("runs" if name == "parts" else f"root-{name}")
        return townlet_train("ppo", section, seed=seed, name=name, config={"runs_root": str(root)})

    return run


@pytest.fixture
def resume(ppo_registry: StrategyRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`resume(name)` resumes tmp_path/name (from tmp_path) and returns (result, log lines)."""
    monkeypatch.chdir(tmp_path)

    def run(name: str) -> tuple[Any, list[str]]:
        messages: list[str] = []
        orchestrator = Orchestrator(ppo_registry, progress=False, log=messages.append)
        return orchestrator.resume(tmp_path / name), messages

    return run


Patch = Callable[[pytest.MonkeyPatch], None]


def _stop_after_checkpoint(update: int) -> Patch:
    def patch(mp: pytest.MonkeyPatch) -> None:
        original = checkpointing.Checkpoints.save_periodic

        def stop(self: Any, at: int, *args: Any, **kwargs: Any) -> Path:
            path = original(self, at, *args, **kwargs)
            if at == update:
                raise KeyboardInterrupt
            return path

        mp.setattr(checkpointing.Checkpoints, "save_periodic", stop)

    return patch


def _stop_once(owner: Any, name: str, on_call: int = 1) -> Patch:
    def patch(mp: pytest.MonkeyPatch) -> None:
        original = getattr(owner, name)
        calls = {"n": 0}

        def stop(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == on_call:
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        mp.setattr(owner, name, stop)

    return patch


def _interrupted(
    train_ppo: Any, patch: Patch, section: dict[str, Any], name: str = "parts"
) -> None:
    """Run `section` into tmp_path/NAME with `patch` applied (only to this run): it stops."""
    with pytest.MonkeyPatch.context() as mp:
        patch(mp)
        with pytest.raises(KeyboardInterrupt):
            train_ppo(section, name=name)


def _lines(run: Path) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in line.items() if k not in TIMING_FIELDS}
        for line in read_metrics(run / "metrics.jsonl")
    ]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_checkpoint(a)[0].state_dict(), load_checkpoint(b)[0].state_dict()
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def _comparable(result: Any) -> dict[str, Any]:
    return {k: v for k, v in result.model_dump().items() if k not in UNCOMPARABLE}


def _assert_same_run(whole: Path, parts: Path) -> None:
    _assert_same_weights(whole / "checkpoint", parts / "checkpoint")
    assert _lines(whole) == _lines(parts)
    assert json.loads((parts / "run.json").read_text())["state"] == "succeeded"


def _state_path(run: Path, update: int) -> Path:
    return run / "checkpoints" / f"update-{update:06d}" / "state.pt"


def _resave(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


class _Payload:
    """Unpickling this creates `marker`: stands for any code a pickle could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (pathlib.Path.touch, (self.marker,))


# ------------------------------------------------------------------ item 1: data, not pickles


def test_pickled_environments_in_a_state_pt_are_never_unpickled(
    train_ppo: Any, resume: Any, tmp_path: Path
) -> None:
    _interrupted(train_ppo, _stop_after_checkpoint(2), QUICK)
    marker = tmp_path / "marker"
    blob = pickle.dumps(_Payload(marker))
    pickle.loads(pickle.dumps(_Payload(tmp_path / "proof")))  # the payload is live
    assert (tmp_path / "proof").exists()

    def plant(state: dict[str, Any]) -> None:  # how an older Townlet saved environments
        state["environments"] = torch.frombuffer(bytearray(blob), dtype=torch.uint8)

    _resave(_state_path(tmp_path / "parts", 2), plant)
    result, messages = resume("parts")
    assert not marker.exists()
    assert result.status == "succeeded" and result.resumed_from_update == 2
    warning = next(m for m in messages if "never unpickles" in m)
    assert "state.pt" in warning and "not an exact continuation" in warning
    resumes = json.loads((tmp_path / "parts" / "resumes.json").read_text())
    assert resumes[-1]["exact"] is False and resumes[-1]["from_update"] == 2
    assert result.artifacts["resumes"] == "resumes.json"


def test_a_state_pt_that_is_a_malicious_pickle_is_refused_naming_the_file(
    train_ppo: Any, resume: Any, tmp_path: Path
) -> None:
    _interrupted(train_ppo, _stop_after_checkpoint(2), QUICK)
    marker = tmp_path / "marker"
    state_path = _state_path(tmp_path / "parts", 2)
    torch.save({"position": _Payload(marker)}, state_path)
    with pytest.raises(DataError, match=r"update-000002/state\.pt: unreadable training state"):
        resume("parts")
    assert not marker.exists()


def test_state_pt_holds_environments_as_data_and_a_native_vector_env_resumes_exactly(
    train_ppo: Any, resume: Any, tmp_path: Path
) -> None:
    section = {**QUICK, "num_envs": 5, "minibatch_size": 40, "total_timesteps": 80 * 4}
    train_ppo(section, name="whole")
    _interrupted(train_ppo, _stop_after_checkpoint(2), section)
    state = torch.load(_state_path(tmp_path / "parts", 2), weights_only=True)
    environments = state["environments"]
    assert isinstance(environments, dict)
    assert environments["format"] == ENVIRONMENTS_FORMAT
    assert environments["snapshot"]["layers"][0]["class"].endswith("CartPoleVectorEnv")
    result, _messages = resume("parts")
    assert result.resumed_from_update == 2 and result.updates_run == 2
    _assert_same_run(tmp_path / "whole", tmp_path / "parts")
    resumes = json.loads((tmp_path / "parts" / "resumes.json").read_text())
    assert resumes == [{**resumes[0], "from_update": 2, "exact": True, "reason": None}]


class _Machine(gymnasium.Env[np.ndarray, int]):
    """A toy env with a lock in it, like an env around a physics engine: not plain data."""

    observation_space = gymnasium.spaces.Box(-10.0, 10.0, (4,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def __init__(self) -> None:
        self.engine = threading.Lock()
        self.position = np.zeros(4, dtype=np.float32)
        self.ticks = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-0.5, 0.5, 4).astype(np.float32)
        self.ticks = 0
        return self.position.copy(), {}

    def step(self, action: Any) -> Any:
        self.ticks += 1
        self.position = (self.position + (0.1 if action else -0.1)).astype(np.float32)
        done = bool(abs(self.position[0]) > 1.0)
        return self.position.copy(), 1.0, done, self.ticks >= 20, {}


MACHINE_ID = "TownletTestMachine-v0"


def test_an_env_that_is_not_data_resumes_with_fresh_episodes_and_says_so(
    train_ppo: Any, resume: Any, tmp_path: Path
) -> None:
    if MACHINE_ID not in gymnasium.registry:
        gymnasium.register(MACHINE_ID, entry_point=_Machine)
    section = {**QUICK, "env": MACHINE_ID, "max_episode_steps": None}
    _interrupted(train_ppo, _stop_after_checkpoint(2), section)
    result, messages = resume("parts")
    assert result.status == "succeeded" and result.resumed_from_update == 2
    warning = next(m for m in messages if "not an exact continuation" in m)
    assert "engine" in warning and "seeded" in warning
    resumes = json.loads((tmp_path / "parts" / "resumes.json").read_text())
    assert resumes[-1]["exact"] is False and "engine" in resumes[-1]["reason"]


def test_a_damaged_training_position_is_refused_naming_state_pt(
    train_ppo: Any, resume: Any, tmp_path: Path
) -> None:
    _interrupted(train_ppo, _stop_after_checkpoint(2), QUICK)

    def damage(state: dict[str, Any]) -> None:
        state["position"]["next_update"] = "2; rm -rf /"

    _resave(_state_path(tmp_path / "parts", 2), damage)
    with pytest.raises(DataError, match=r"state\.pt: training position next_update="):
        resume("parts")


# ------------------------------------------------------------------ item 2: latest.json


def _fake_checkpoints(run_dir: Path, keep: int = 3) -> tuple[checkpointing.Checkpoints, list[str]]:
    messages: list[str] = []
    context = SimpleNamespace(run_dir=run_dir, log=messages.append, world=World())
    return checkpointing.Checkpoints(context, keep, "CartPole-v1"), messages  # type: ignore[arg-type]


def _complete_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    for name in checkpointing.PERIODIC_FILES:
        (path / name).write_text("x")
    return path


def test_latest_json_naming_a_folder_outside_the_run_is_ignored(tmp_path: Path) -> None:
    run = tmp_path / "run"
    own = _complete_folder(run / "checkpoints" / "update-000002")
    _complete_folder(tmp_path / "elsewhere" / "update-000004")
    (run / "checkpoints" / "latest.json").write_text(
        json.dumps({"name": "../../elsewhere/update-000004", "update": 4})
    )
    checkpoints, messages = _fake_checkpoints(run)
    assert checkpoints.latest() == own
    assert any("latest.json" in m and "../../elsewhere" in m for m in messages)


def test_a_checkpoint_folder_that_links_elsewhere_is_never_followed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    own = _complete_folder(run / "checkpoints" / "update-000002")
    outside = _complete_folder(tmp_path / "elsewhere" / "update-000009")
    (run / "checkpoints" / "update-000009").symlink_to(outside, target_is_directory=True)
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"name": "update-000009"}))
    checkpoints, messages = _fake_checkpoints(run)
    assert checkpoints.latest() == own
    assert any("leads outside" in m for m in messages)


def test_an_unreadable_latest_json_is_named_and_the_newest_folder_used(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _complete_folder(run / "checkpoints" / "update-000001")
    newest = _complete_folder(run / "checkpoints" / "update-000003")
    (run / "checkpoints" / "latest.json").write_text('{"name": "upd')
    checkpoints, messages = _fake_checkpoints(run)
    assert checkpoints.latest() == newest
    assert any(
        m.startswith("townlet: warning: ") and "latest.json: unreadable" in m for m in messages
    )


# ------------------------------------------------------------------ item 6: finishing


@pytest.mark.parametrize(
    ("owner", "name"),
    [(trainer_module, "evaluate_policy"), (checkpointing.Checkpoints, "save_final")],
    ids=["final evaluation", "final checkpoint"],
)
def test_a_stop_after_the_last_periodic_checkpoint_is_finished_by_resume(
    train_ppo: Any,
    resume: Any,
    tmp_path: Path,
    owner: Any,
    name: str,
) -> None:
    whole = train_ppo(QUICK, name="whole")
    _interrupted(train_ppo, _stop_once(owner, name), QUICK)
    assert not (tmp_path / "parts" / "result.json").exists()
    result, _messages = resume("parts")
    assert result.resumed_from_update == 4 and result.updates_run == 0
    assert _comparable(result) == _comparable(whole)
    assert (tmp_path / "parts" / "result.json").exists()
    _assert_same_run(tmp_path / "whole", tmp_path / "parts")


def test_a_run_that_stopped_early_does_not_train_further_on_resume(
    train_ppo: Any, resume: Any, tmp_path: Path
) -> None:
    section = {**QUICK, "eval_every": 1, "stop_return": 1.0}
    whole = train_ppo(section, name="whole")
    assert whole.stopped_early and whole.epoch == 1
    _interrupted(train_ppo, _stop_once(checkpointing.Checkpoints, "save_final"), section)
    result, _messages = resume("parts")
    assert result.stopped_early and result.epoch == 1 and result.updates_run == 0
    assert _comparable(result) == _comparable(whole)
    assert sorted(p.name for p in (tmp_path / "parts" / "checkpoints").iterdir()) == [
        "latest.json",
        "update-000001",
    ]


# ------------------------------------------------------------------ item 12: leftovers


def test_rotation_never_leaves_a_half_deleted_checkpoint_folder(
    train_ppo: Any, resume: Any, tmp_path: Path
) -> None:
    original = checkpointing.shutil.rmtree
    deleting: list[str] = []

    def killed_half_way(path: Any, *args: Any, **kwargs: Any) -> None:
        path = Path(path)
        if path.is_dir() and not deleting:  # the first deletion is killed after one file
            deleting.append(path.name)
            (path / "weights.safetensors").unlink()
            raise KeyboardInterrupt
        original(path, *args, **kwargs)

    def patch(mp: pytest.MonkeyPatch) -> None:
        mp.setattr(checkpointing.shutil, "rmtree", killed_half_way)

    _interrupted(train_ppo, patch, {**QUICK, "keep_checkpoints": 1})
    folder = tmp_path / "parts" / "checkpoints"
    visible = [p for p in folder.iterdir() if p.name.startswith("update-")]
    assert visible and all((p / "weights.safetensors").exists() for p in visible), deleting
    resume("parts")
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def _plant_leftovers(run: Path) -> list[Path]:
    planted = [
        run / "checkpoints" / ".update-000003.tmp-0badf00d",
        run / "checkpoints" / ".update-000001.trash-00c0ffee",
        run / "checkpoints" / "update-000007",  # half deleted: no weights, no state
        run / ".checkpoint.new-deadbeef",
        run / ".checkpoint.old-deadbeef",
        run / "..checkpoint-best.new-0123abcd.tmp-4567cdef",
    ]
    for path in planted:
        path.mkdir(parents=True)
        (path / "checkpoint.json").write_text("{}")
    return planted


def test_resume_removes_what_stops_left_behind(train_ppo: Any, resume: Any, tmp_path: Path) -> None:
    train_ppo(QUICK, name="whole")
    _interrupted(train_ppo, _stop_after_checkpoint(2), QUICK)
    planted = _plant_leftovers(tmp_path / "parts")
    _result, messages = resume("parts")
    assert [p for p in planted if p.exists()] == []
    assert any("update-000007" in m for m in messages)
    _assert_same_run(tmp_path / "whole", tmp_path / "parts")


def test_every_periodic_checkpoint_removes_what_stops_left_behind(
    train_ppo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = checkpointing.Checkpoints.save_periodic
    planted: list[Path] = []

    def plant_then_save(self: Any, update: int, *args: Any, **kwargs: Any) -> Path:
        if update == 3:
            planted.extend(_plant_leftovers(tmp_path / "run"))
        return original(self, update, *args, **kwargs)

    monkeypatch.setattr(checkpointing.Checkpoints, "save_periodic", plant_then_save)
    train_ppo(QUICK, name="run")
    assert planted and [p for p in planted if p.exists()] == []


def test_the_folder_latest_json_names_is_never_removed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    pointed = run / "checkpoints" / "update-000002"
    pointed.mkdir(parents=True)  # incomplete, but named by latest.json
    (run / "checkpoints" / "update-000003").mkdir()
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"name": "update-000002"}))
    checkpoints, _messages = _fake_checkpoints(run)
    assert checkpoints.clean() == ["checkpoints/update-000003"]
    assert pointed.is_dir()


# ------------------------------------------------------------------ item 13: before any checkpoint


def test_resume_before_the_first_checkpoint_starts_the_run_over(
    train_ppo: Any, resume: Any, tmp_path: Path
) -> None:
    section = {**QUICK, "checkpoint_every": 3}
    whole = train_ppo(section, name="whole")
    _interrupted(train_ppo, _stop_once(trainer_module, "ppo_update", on_call=2), section)
    run = tmp_path / "parts"
    assert len(read_metrics(run / "metrics.jsonl")) == 1
    staging = run / "checkpoints" / ".update-000003.tmp-0badf00d"
    staging.mkdir(parents=True)
    result, messages = resume("parts")
    assert any("no checkpoint yet; starting the run over" in m for m in messages)
    assert result.resumed_from_update is None and result.updates_run == 4
    assert _comparable(result) == _comparable(whole)
    assert not staging.exists()
    _assert_same_run(tmp_path / "whole", run)


@pytest.mark.parametrize(
    ("damaged", "named"),
    [
        ("state.pt", r"update-000002/state\.pt"),
        ("checkpoint.json", r"update-000002/checkpoint\.json"),
    ],
)
def test_resume_errors_name_the_unreadable_file(
    train_ppo: Any,
    resume: Any,
    tmp_path: Path,
    damaged: str,
    named: str,
) -> None:
    _interrupted(train_ppo, _stop_after_checkpoint(2), QUICK)
    (tmp_path / "parts" / "checkpoints" / "update-000002" / damaged).write_bytes(
        b"not a checkpoint file"
    )
    with pytest.raises(DataError, match=named):
        resume("parts")
