"""Trackers are plugins: what TensorBoard and MLflow hold after a real run (read back with
each library's own reader) equals metrics.jsonl; stages are tracked under their names; a
tracker that raises or hangs costs the run one warning and nothing else; a tracker plugin
written as the docs print it works."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import townlet_example_cem.plugin
import townlet_strategies_anneal.plugin
from townlet_core import (
    Orchestrator,
    StrategyRegistry,
    TrackerCollector,
    TrackerSpec,
    TrainingResultDTO,
    hookimpl,
)
from townlet_core.contract.world import World
from townlet_core.errors import ConfigError, PluginLoadError
from townlet_core.runtime import tracking
from townlet_core.runtime.config import RunSettings
from townlet_core.runtime.metrics import read_metrics

CEM = {"iterations": 3, "population": 8, "max_episode_steps": 100, "eval_episodes": 2}
DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
THIS = __name__  # the name the factories below import this module by


# ----------------------------------------------------------------- test trackers

EVENTS: list[tuple[str, dict[str, Any]]] = []
RELEASE = threading.Event()


class Recorder:
    """Records every hook call, with the arguments that identify it."""

    @hookimpl
    def townlet_run_started(self, run_dir: Path, config: Any, strategy: str, stage: Any) -> None:
        EVENTS.append(("started", {"stage": stage, "strategy": strategy, "config": config}))

    @hookimpl
    def townlet_metrics_recorded(self, stage: Any, lines: Any, first_step: int) -> None:
        EVENTS.append(("metrics", {"stage": stage, "lines": list(lines), "first": first_step}))

    @hookimpl
    def townlet_artifact_written(self, stage: Any, path: Path, kind: str) -> None:
        EVENTS.append(("artifact", {"stage": stage, "path": path, "kind": kind}))

    @hookimpl
    def townlet_run_finished(self, stage: Any, state: str, result: Any) -> None:
        EVENTS.append(("finished", {"stage": stage, "state": state, "result": result}))


class Broken:
    @hookimpl
    def townlet_metrics_recorded(self, lines: Any) -> None:
        raise RuntimeError("the tracking server said no")


class Hanging:
    """Stuck in its first call, like a client waiting on a server that never answers."""

    @hookimpl
    def townlet_run_started(self, run_dir: Path) -> None:
        RELEASE.wait(60)


class _TestTrackers:
    @hookimpl
    def townlet_register_trackers(self, trackers: TrackerCollector) -> None:
        for name, factory in [("recorder", "Recorder"), ("broken", "Broken"), ("hang", "Hanging")]:
            trackers.add(TrackerSpec(name=name, summary="test", factory=f"{THIS}:{factory}"))
        trackers.add(
            TrackerSpec(
                name="needy",
                summary="needs a library nobody has",
                factory=f"{THIS}:Recorder",
                requires=("no_such_tracking_library",),
                install="pip install no-such-tracking-library",
            )
        )


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    EVENTS.clear()
    RELEASE.clear()
    yield
    RELEASE.set()  # a hanging tracker's thread returns, and stops


def registry() -> StrategyRegistry:
    """cem, anneal and the test trackers; no installed plugin (first-party trackers are in)."""
    found = StrategyRegistry(discover=False)
    found.add_plugin(townlet_example_cem.plugin, distribution="townlet-example-cem")
    found.add_plugin(townlet_strategies_anneal.plugin, distribution="townlet-strategies-anneal")
    found.trackers.add_plugin(_TestTrackers(), distribution="test-trackers")
    return found


def train(
    tmp_path: Path,
    name: str,
    track: list[str],
    *,
    strategy: str = "cem",
    section: dict[str, Any] | None = None,
    using: StrategyRegistry | None = None,
    **settings: Any,
) -> TrainingResultDTO:
    config = {
        "runs_root": str(tmp_path / "runs"),
        "track": track,
        strategy: CEM if section is None else section,
        **settings,
    }
    orchestrator = Orchestrator(using or registry(), quiet=True, progress=False)
    return orchestrator.run(strategy, config=config, run_dir=tmp_path / name, seed=3)


def numbers(line: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in line.items() if isinstance(v, (int, float))}


def board(logdir: Path) -> Any:
    """TensorBoard's own reader of the event files in `logdir`, loaded."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    found.Reload()
    return found


def scalars_by_step(found: Any) -> dict[tuple[str, int], float]:
    return {
        (tag, event.step): event.value
        for tag in found.Tags()["scalars"]
        for event in found.Scalars(tag)
    }


def numbers_by_step(lines: list[dict[str, Any]]) -> dict[tuple[str, int], float]:
    return {
        (tag, step): value
        for step, line in enumerate(lines)
        for tag, value in numbers(line).items()
    }


def text(found: Any, tag: str) -> Any:
    """The JSON of a text summary the tensorboard tracker wrote (a Markdown code block)."""
    block = found.Tensors(tag)[0].tensor_proto.string_val[0].decode()
    return json.loads(block.removeprefix("```json\n").removesuffix("\n```"))


def cem_stage(cycle: int) -> dict[str, Any]:
    return {"cycle": cycle, "strategy": "cem", "overrides": CEM}


# ----------------------------------------------------------------- first-party trackers


def test_tensorboard_holds_every_number_of_metrics_jsonl_at_its_line(townlet_in_tmp, tmp_path):
    pytest.importorskip("tensorboard")
    args = ["train", "-s", "cem", "--seed", "3", "--run-dir", "run", "--track", "tensorboard"]
    sets = [f"--set=cem.{key}={value}" for key, value in CEM.items()]
    code, _out, err = townlet_in_tmp(*args, *sets, "-q")
    assert code == 0, err
    lines = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(lines) == CEM["iterations"]
    written = scalars_by_step(board(tmp_path / "run" / "tensorboard"))
    assert written == pytest.approx(numbers_by_step(lines), rel=1e-6)  # TensorBoard: float32


def test_tensorboard_keeps_the_config_hparams_and_result(tmp_path):
    result = train(tmp_path, "run", ["tensorboard"])
    found = board(tmp_path / "run" / "tensorboard")
    snapshot = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert text(found, "config") == snapshot
    assert "_hparams_/session_start_info" in found.Tags()["tensors"]
    assert text(found, "result") == {"state": "succeeded", "result": result.model_dump(mode="json")}


#: A tracked cem run and what MLflow's own client reads back, in a fresh interpreter:
#: importing MLflow puts importlib_metadata's finder on sys.meta_path, which would change how
#: later tests in this process see installed distributions.
MLFLOW_PROBE = """
import json, sys
from pathlib import Path
import townlet_example_cem.plugin
from mlflow.tracking import MlflowClient
from townlet_core import Orchestrator, StrategyRegistry
from townlet_core.runtime import tracking

tracking.FINISH_STALL_SECONDS = 60.0  # a slow machine loses nothing
tmp, uri, cem = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
registry = StrategyRegistry(discover=False)
registry.add_plugin(townlet_example_cem.plugin, distribution="townlet-example-cem")
config = {"runs_root": str(tmp / "runs"), "track": ["mlflow"], "cem": cem}
if uri:
    config["track_uri"] = uri
orchestrator = Orchestrator(registry, quiet=True, progress=False)
result = orchestrator.run("cem", config=config, run_dir=tmp / "run", seed=3)
client = MlflowClient(uri or f"sqlite:///{tmp / 'runs' / 'mlruns' / 'mlflow.db'}")
experiment = client.get_experiment_by_name("townlet")
runs = []
for run in client.search_runs([experiment.experiment_id]):
    history = {k: client.get_metric_history(run.info.run_id, k) for k in run.data.metrics}
    runs.append({
        "name": run.info.run_name,
        "status": run.info.status,
        "params": run.data.params,
        "metrics": {k: [[m.step, m.value] for m in ms] for k, ms in history.items()},
        "artifacts": sorted(a.path for a in client.list_artifacts(run.info.run_id)),
    })
print(json.dumps({"result": result.model_dump(mode="json"), "runs": runs}))
"""


def mlflow_probe(tmp_path: Path, uri: str = "", **env: str) -> dict[str, Any]:
    if importlib.util.find_spec("mlflow") is None:  # not importorskip: see MLFLOW_PROBE
        pytest.skip("mlflow is not installed: pip install 'townlet-core[mlflow]'")
    environ = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [sys.executable, "-c", MLFLOW_PROBE, str(tmp_path), uri, json.dumps(CEM)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**environ, **env},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return found


@pytest.mark.slow  # importing MLflow and creating its store take seconds
def test_mlflow_holds_the_params_metrics_and_artifacts_of_the_run(tmp_path):
    found = mlflow_probe(tmp_path)
    (run,) = found["runs"]
    assert (run["name"], run["status"]) == ("run", "FINISHED")
    assert run["params"]["cem.iterations"] == "3"
    assert run["params"]["seed"] == "3"
    lines = read_metrics(tmp_path / "run" / "metrics.jsonl")
    for key in numbers(lines[0]):
        assert run["metrics"][key] == [[step, float(line[key])] for step, line in enumerate(lines)]
    assert run["metrics"]["result.eval_mean_return"] == [[0, found["result"]["eval_mean_return"]]]
    assert run["artifacts"] == ["policy.npz", "result.json"]


@pytest.mark.slow
def test_mlflow_writes_where_track_uri_says(tmp_path):
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    found = mlflow_probe(tmp_path, uri, MLFLOW_TRACKING_URI="sqlite:///nowhere-else.db")
    assert [run["name"] for run in found["runs"]] == ["run"]  # track_uri won over the variable
    assert not (tmp_path / "runs" / "mlruns").exists()
    assert not (tmp_path / "nowhere-else.db").exists()


@pytest.mark.slow  # a short real ppo run: a few seconds
def test_a_ppo_run_is_in_tensorboard_line_for_line(tmp_path, ppo_registry):
    pytest.importorskip("tensorboard")
    ppo = {
        "env": "CartPole-v1",
        "total_timesteps": 1024,
        "num_envs": 2,
        "num_steps": 64,
        "minibatch_size": 64,
    }
    train(tmp_path, "run", ["tensorboard"], strategy="ppo", section=ppo, using=ppo_registry)
    lines = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(lines) == 1024 // (2 * 64)  # one line per update
    written = scalars_by_step(board(tmp_path / "run" / "tensorboard"))
    assert written == pytest.approx(numbers_by_step(lines), rel=1e-6, abs=1e-30)


# ----------------------------------------------------------------- stages


def test_an_anneal_run_and_each_of_its_stages_are_tracked_under_their_names(tmp_path):
    section = {"schedule": [cem_stage(0), cem_stage(1)]}
    train(tmp_path, "run", ["recorder"], strategy="anneal", section=section)
    stages = ["00-cycle0-cem", "01-cycle1-cem"]
    started = [e for kind, e in EVENTS if kind == "started"]
    assert [(e["stage"], e["strategy"]) for e in started] == [
        (None, "anneal"),
        (stages[0], "cem"),
        (stages[1], "cem"),
    ]
    assert started[1]["config"]["cem"]["iterations"] == CEM["iterations"]
    finished = [(e["stage"], e["state"]) for kind, e in EVENTS if kind == "finished"]
    assert finished == [(stages[0], "succeeded"), (stages[1], "succeeded"), (None, "succeeded")]
    for stage in stages:
        lines = [
            line for k, e in EVENTS if k == "metrics" and e["stage"] == stage for line in e["lines"]
        ]
        written = read_metrics(tmp_path / "run" / "stages" / stage / "metrics.jsonl")
        assert lines == written  # anneal's own fields on each line included
        assert any(
            k == "artifact" and e["stage"] == stage and e["kind"] == "checkpoint" for k, e in EVENTS
        )


def test_tensorboard_writes_each_stage_beside_the_run(tmp_path):
    pytest.importorskip("tensorboard")
    section = {"schedule": [cem_stage(0), cem_stage(1)]}
    train(tmp_path, "run", ["tensorboard"], strategy="anneal", section=section)
    stage = board(tmp_path / "run" / "tensorboard" / "01-cycle1-cem")
    lines = read_metrics(tmp_path / "run" / "stages" / "01-cycle1-cem" / "metrics.jsonl")
    assert [e.value for e in stage.Scalars("mean_return")] == pytest.approx(
        [line["mean_return"] for line in lines], rel=1e-6
    )


def test_a_tracked_run_leaves_no_thread_behind(tmp_path):
    train(tmp_path, "run", ["recorder", "broken"])
    deadline = time.monotonic() + 2.0  # a finished thread may take a moment to be gone
    while time.monotonic() < deadline and any(
        t.name.startswith("townlet-track") for t in threading.enumerate()
    ):
        time.sleep(0.01)
    assert [t.name for t in threading.enumerate() if t.name.startswith("townlet-track")] == []


# ----------------------------------------------------------------- a tracker in trouble


def test_a_tracker_that_raises_warns_once_and_changes_nothing_of_the_run(tmp_path, capsys):
    plain = train(tmp_path, "plain", [])
    tracked = train(tmp_path, "tracked", ["broken", "recorder"])
    err = capsys.readouterr().err
    assert err.count("warning") == 1, err
    assert (
        "townlet: warning: tracker 'broken' failed in townlet_metrics_recorded: RuntimeError: the "
        "tracking server said no; it is off for the rest of this run, which goes on without it"
    ) in err
    assert (tmp_path / "tracked" / "metrics.jsonl").read_bytes() == (
        tmp_path / "plain" / "metrics.jsonl"
    ).read_bytes()
    assert tracked.status == plain.status == "succeeded"
    assert tracked.eval_mean_return == plain.eval_mean_return  # type: ignore[attr-defined]
    assert ("finished", {"stage": None, "state": "succeeded", "result": tracked}) in EVENTS


def test_a_hanging_tracker_delays_the_end_of_a_run_by_the_stall_bound_at_most(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(tracking, "FINISH_STALL_SECONDS", 0.5)
    start = time.monotonic()
    train(tmp_path, "plain", [])
    plain = time.monotonic() - start
    start = time.monotonic()
    result = train(tmp_path, "hung", ["hang", "recorder"])
    hung = time.monotonic() - start
    assert result.status == "succeeded"
    assert hung < plain + 0.5 + 1.0, (plain, hung)
    err = capsys.readouterr().err
    assert err.count("warning") == 1, err
    assert "tracker 'hang' was still busy (in townlet_run_started)" in err
    assert "the run stopped waiting for it, and what it had not written is lost" in err
    assert EVENTS[-1][0] == "finished"  # the other tracker got everything


def test_a_tracker_stuck_in_a_call_is_switched_off_while_the_run_goes_on(monkeypatch):
    monkeypatch.setattr(tracking, "HUNG_SECONDS", 0.2)
    warnings: list[str] = []
    (spec,) = registry().trackers.check(["hang"])
    worker = tracking._Worker(spec, warnings.append)
    worker.start()
    started = {"run_dir": Path("x"), "config": {}, "strategy": "cem", "stage": None}
    worker.submit(("townlet_run_started", started))
    time.sleep(0.4)
    artifact = {"run_dir": Path("x"), "stage": None, "path": Path("x"), "kind": "result"}
    worker.submit(("townlet_artifact_written", artifact))  # the next call finds it stuck
    assert worker.off is not None
    assert warnings == [
        f"tracker 'hang' has been stuck in townlet_run_started for over 0.2 s; it is off for the "
        f"rest of this run, which goes on without it: {tracking.ADVICE}"
    ]


# ----------------------------------------------------------------- choosing trackers


def test_an_unknown_tracker_is_an_error_listing_the_known_ones(townlet_in_tmp, tmp_path):
    code, _out, err = townlet_in_tmp("train", "-s", "cem", "--track", "tensorbord")
    assert code == 2
    assert err.strip() == (
        "townlet: error: unknown tracker 'tensorbord' in track (--track); did you mean 'tensorboard'?; "
        "available: mlflow, tensorboard (a tracker plugin adds more: see "
        "docs/tracking.md)"
    )
    assert not (tmp_path / "runs").exists()


def test_a_tracker_whose_library_is_missing_names_what_installs_it(tmp_path):
    with pytest.raises(PluginLoadError) as caught:
        train(tmp_path, "run", ["needy"])
    assert str(caught.value) == (
        "tracker 'needy' needs no_such_tracking_library, which is not installed; install with: "
        "pip install no-such-tracking-library"
    )
    assert not (tmp_path / "run").exists()


def test_the_config_and_set_name_trackers_as_a_list_or_a_comma_list():
    assert RunSettings.model_validate({"track": "tensorboard, mlflow"}).track == [
        "tensorboard",
        "mlflow",
    ]
    assert RunSettings.model_validate({"track": ["mlflow"]}).track == ["mlflow"]
    assert RunSettings.model_validate({"track": ""}).track == []


def test_only_the_writing_rank_of_a_data_parallel_run_tracks():
    settings = RunSettings.model_validate({"track": ["no_such_tracker"]})
    assert tracking.tracker_specs(registry(), settings, World(rank=1, size=2)) == []
    with pytest.raises(ConfigError):
        tracking.tracker_specs(registry(), settings, World(rank=0, size=2))


def test_no_tracker_library_is_imported_unless_a_run_is_tracked(tmp_path):
    probe = f"""
import sys
from townlet_core.cli import main
for args in (['--help'], ['train', '--help'], ['strategies', 'list']):
    assert main(args) == 0
train = ['train', '-s', 'cem', '-q', '--set', 'cem.iterations=1']
assert main([*train, '--set', 'runs_root={tmp_path / "runs"}']) == 0
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorboard', 'mlflow', 'torch'))
assert not heavy, heavy[:5]
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("ok")


# ----------------------------------------------------------------- a third-party tracker


BLOCK = re.compile(r"<!-- file: (?P<path>[\w.]+) -->\n```(?:python|toml)\n(?P<code>.*?)```", re.S)


@pytest.fixture
def doc_tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """docs/plugins.md's tracker plugin, installed as a distribution: its module and a
    dist-info whose entry points are the doc's pyproject table."""
    blocks = {m["path"]: m["code"] for m in BLOCK.finditer(DOC.read_text(encoding="utf-8"))}
    assert {"jsonl_copy.py", "pyproject.toml"} <= set(blocks)
    site = tmp_path / "site"
    site.mkdir()
    (site / "jsonl_copy.py").write_text(blocks["jsonl_copy.py"], encoding="utf-8")
    table = tomllib.loads(blocks["pyproject.toml"])["project"]["entry-points"]
    info = site / "jsonl_copy-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: jsonl-copy\nVersion: 0.1.0\n")
    entry_points = "".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in points.items())
        for group, points in table.items()
    )
    (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("jsonl_copy", None)


def test_the_docs_tracker_plugin_tracks_a_run_when_installed(tmp_path, doc_tracker):
    found = StrategyRegistry(path=[str(doc_tracker)], environ={})
    found.add_plugin(townlet_example_cem.plugin, distribution="townlet-example-cem")
    assert found.trackers.names() == ["jsonl_copy", "mlflow", "tensorboard"]
    train(tmp_path, "run", ["jsonl_copy"], using=found)
    copied = [
        json.loads(line) for line in (tmp_path / "run" / "copy.jsonl").read_text().splitlines()
    ]
    written = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert copied == [{"step": step, **line} for step, line in enumerate(written)]
