"""Every stop leaves one true state (issue 10, items 2, 7-11, 13): the run directory's lock,
the commit order, torn metrics lines, full disks, output locations checked up front, and
state carried across concurrent runs without lost updates."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from townlet_core import Orchestrator, StrategyRegistry
from townlet_core.errors import RunDirectoryError
from townlet_core.runtime.metrics import MetricsSink, read_metrics
from townlet_core.runtime.run_dir import RunDirectory, RunLock
from townlet_core.runtime.state import StateStore, three_way_merge


@pytest.fixture
def lifecycle(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Orchestrator:
    """An orchestrator over the `lifecycle` test strategy, in tmp_path."""
    import lifecycle_strategy_impl

    monkeypatch.chdir(tmp_path)
    registry = StrategyRegistry(discover=False, strict=True)
    registry.add_plugin(lifecycle_strategy_impl.LifecyclePlugin())
    return Orchestrator(registry, quiet=True, progress=False)


def _status(run: Path) -> dict[str, Any]:
    return json.loads((run / "run.json").read_text())


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ---------------------------------------------------------------- item 10: one writer


def test_a_run_directory_in_use_is_refused_and_left_alone(lifecycle, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = RunLock(run)
    holder.acquire()  # another process would hold it; a second open file conflicts alike
    try:
        with pytest.raises(RunDirectoryError, match="in use by another townlet process.*pid"):
            lifecycle.run("lifecycle", run_dir=run)
        assert _files(run) == [".townlet.lock"]
    finally:
        holder.release()
    lifecycle.run("lifecycle", run_dir=run)  # free again: the run goes ahead
    assert _status(run)["state"] == "succeeded"


def test_resume_of_a_run_in_use_is_refused(lifecycle, tmp_path):
    run = tmp_path / "run"
    lifecycle.run("lifecycle", run_dir=run)
    RunDirectory(run).mark("interrupted")
    holder = RunLock(run)
    holder.acquire()
    try:
        with pytest.raises(RunDirectoryError, match="in use by another townlet process"):
            lifecycle.resume(run)
    finally:
        holder.release()
    lifecycle.resume(run)
    assert _status(run)["state"] == "succeeded"


@pytest.mark.slow
def test_two_processes_given_one_run_dir_leave_one_run(tmp_path):
    """The race the red team won 10 of 10 times: both 'succeeded' into one folder."""
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "townlet_core.cli", "train", "--strategy", "cem", "-q",
        "--seed", "{seed}", "--run-dir", str(run), "--set", "cem.iterations=3",
    ]  # fmt: skip
    procs = [
        subprocess.Popen(
            [part.replace("{seed}", str(seed)) for part in command],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    loser = next(err for code, err in outcomes if code == 2)
    assert "in use by another townlet process" in loser or "not empty" in loser
    snapshot = json.loads((run / "config.json").read_text())
    result = json.loads((run / "result.json").read_text())
    assert snapshot["seed"] == result["seed"]  # one run's files, not a mixture
    assert _status(run)["state"] == "succeeded"


# ---------------------------------------------------------------- item 7: the commit order


def test_ctrl_c_during_the_commit_waits_for_it_and_the_run_stands(lifecycle, tmp_path):
    run = tmp_path / "run"
    result = lifecycle.run(
        "lifecycle", run_dir=run, config={"lifecycle": {"signal_at": "after_commit"}}
    )
    assert result.status == "succeeded"
    assert (run / "after_commit_finished.txt").exists()  # the handler did not cut it short
    assert _status(run)["state"] == "succeeded"
    assert json.loads((run / "result.json").read_text())["status"] == "succeeded"


def test_sigterm_during_the_commit_waits_too(lifecycle, tmp_path):
    run = tmp_path / "run"
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        lifecycle.run(
            "lifecycle",
            run_dir=run,
            config={"lifecycle": {"signal_at": "after_commit", "signal_name": "SIGTERM"}},
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert _status(run)["state"] == "succeeded"


def test_the_exit_code_agrees_with_run_json(site_env, tmp_path):
    """Ctrl-C after the run's work is done: exit 0 and 'succeeded', not 130 and 'succeeded'."""
    code = (
        "import sys, lifecycle_strategy_impl as impl\n"
        "from townlet_core import StrategyRegistry\n"
        "import townlet_core.cli._common as common\n"
        "def make(ctx):\n"
        "    r = StrategyRegistry(discover=False, strict=True)\n"
        "    r.add_plugin(impl.LifecyclePlugin())\n"
        "    return r\n"
        "common.make_registry = make\n"
        "import townlet_core.cli.train as train\n"
        "train.make_registry = make\n"
        "from townlet_core.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", code, "train", "-s", "lifecycle", "-q", "--run-dir", str(run),
         "--set", "lifecycle.signal_at=after_commit"],
        check=False, cwd=tmp_path, env=site_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _status(run)["state"] == "succeeded"


def test_ctrl_c_inside_a_stage_commit_stops_the_parent_after_the_stage_is_committed(
    site, tmp_path, monkeypatch
):
    """The stage's files agree (succeeded); the parent then stops as interrupted."""
    import lifecycle_strategy_impl

    monkeypatch.chdir(tmp_path)
    registry = StrategyRegistry(discover=False, strict=True)
    registry.add_plugin(lifecycle_strategy_impl.LifecyclePlugin())
    registry.add_plugin(lifecycle_strategy_impl.ParentPlugin())
    with pytest.raises(KeyboardInterrupt):
        Orchestrator(registry, quiet=True, progress=False).run("parent", run_dir=tmp_path / "p")
    assert _status(tmp_path / "p" / "stages" / "one")["state"] == "succeeded"
    assert not (tmp_path / "p" / "stages" / "two").exists()
    assert _status(tmp_path / "p")["state"] == "interrupted"


def test_a_killed_run_reads_as_stopped_and_offers_resume(lifecycle, tmp_path):
    run = tmp_path / "run"
    lifecycle.run("lifecycle", run_dir=run)
    RunDirectory(run).mark("running")  # what a SIGKILL mid-run leaves behind
    assert RunDirectory(run).recorded_state() == "stopped"
    with pytest.raises(RunDirectoryError, match=r"stopped run; continue it with 'townlet train"):
        lifecycle.run("lifecycle", run_dir=run)
    lifecycle.resume(run)
    assert _status(run)["state"] == "succeeded"


# ---------------------------------------------------------------- item 8: torn lines, full disk


def test_a_torn_last_metrics_line_is_dropped_on_resume_with_the_file_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"st')
    assert [r["step"] for r in read_metrics(path)] == [1, 2]  # readers skip it
    heard: list[str] = []
    with MetricsSink(path, log=heard.append) as sink:
        sink.log({"step": 3})
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n{"step": 3}\n'
    assert len(heard) == 1 and str(path) in heard[0] and "torn" in heard[0]


def test_a_zero_filled_last_line_counts_as_torn(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n\x00\x00\x00\x00\n')
    with MetricsSink(path) as sink:
        sink.log({"step": 2})
    assert [r["step"] for r in read_metrics(path)] == [1, 2]


def test_damage_before_the_last_line_names_the_file_and_line(tmp_path):
    from townlet_core.errors import DataError

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(DataError, match=r"metrics.jsonl: line 2 is not JSON"):
        read_metrics(path)


def test_resume_of_a_run_with_a_torn_metrics_line_succeeds(lifecycle, tmp_path):
    run = tmp_path / "run"
    lifecycle.run("lifecycle", run_dir=run)
    RunDirectory(run).mark("interrupted")
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 9')
    lifecycle.resume(run)
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3]


def _full_disk_after(monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    """Metrics writes fail with ENOSPC after `writes` lines, as a full disk does."""
    original = MetricsSink.log
    count = {"n": 0}

    def log(self: MetricsSink, record: Any) -> None:
        count["n"] += 1
        if count["n"] > writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(self, record)

    monkeypatch.setattr(MetricsSink, "log", log)


def test_a_full_disk_is_reported_as_such_with_the_path(lifecycle, tmp_path, monkeypatch):
    run = tmp_path / "run"
    _full_disk_after(monkeypatch, 1)
    with pytest.raises(RunDirectoryError) as caught:
        lifecycle.run("lifecycle", run_dir=run)
    message = str(caught.value)
    assert "no space left on device at" in message
    assert "townlet train --resume" in message
    assert _status(run)["state"] == "error"
    monkeypatch.undo()


def test_a_full_disk_that_also_refuses_run_json_leaves_a_resumable_stopped_run(
    lifecycle, tmp_path, monkeypatch
):
    from townlet_core import atomic

    run = tmp_path / "run"
    real_write = atomic.atomic_write_bytes
    full = {"on": False}

    def write(path: Path, data: bytes) -> None:
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)

    def log(self: MetricsSink, record: Any) -> None:
        full["on"] = True
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "atomic_write_bytes", write)
    monkeypatch.setattr(MetricsSink, "log", log)
    with pytest.raises(RunDirectoryError, match="no space left on device"):
        lifecycle.run("lifecycle", run_dir=run)
    monkeypatch.undo()
    assert _status(run)["state"] == "running"  # run.json could not be updated ...
    assert RunDirectory(run).recorded_state() == "stopped"  # ... and reads as stopped
    lifecycle.resume(run)
    assert _status(run)["state"] == "succeeded"


# ---------------------------------------------------------------- item 9: outputs checked first


def test_a_runs_root_that_is_a_file_is_refused_before_anything_is_written(lifecycle, tmp_path):
    (tmp_path / "blocked").write_text("a file where the runs root should be")
    before = _files(tmp_path)
    with pytest.raises(RunDirectoryError, match=r"runs root .* is a file"):
        lifecycle.run(
            "lifecycle",
            run_dir=tmp_path / "run",
            config={"runs_root": str(tmp_path / "blocked" / "runs")},
        )
    assert _files(tmp_path) == before


def test_a_run_dir_under_a_file_is_refused_before_anything_is_written(lifecycle, tmp_path):
    (tmp_path / "blocked").write_text("x")
    before = _files(tmp_path)
    with pytest.raises(RunDirectoryError, match="is a file"):
        lifecycle.run("lifecycle", run_dir=tmp_path / "blocked" / "run")
    assert _files(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_an_unwritable_runs_root_is_refused_before_training(lifecycle, tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        with pytest.raises(RunDirectoryError, match="not writable"):
            lifecycle.run("lifecycle", run_dir=tmp_path / "run", config={"runs_root": str(root)})
        assert not (tmp_path / "run").exists()
    finally:
        root.chmod(0o700)


# ---------------------------------------------------------------- item 11: concurrent state


def test_three_way_merge_adds_counters_and_replaces_the_rest():
    base = {"steps": 10, "cycle": 1, "loss": 0.5, "nested": {"n": 1}, "gone": 1}
    mine = {"steps": 12, "cycle": 1, "loss": 0.4, "nested": {"n": 3}, "new": 5}
    theirs = {"steps": 15, "cycle": 2, "loss": 0.3, "nested": {"n": 2}, "gone": 1, "other": 1}
    assert three_way_merge(base, mine, theirs) == {
        "steps": 17,  # 15 + (12 - 10)
        "cycle": 2,  # unchanged by this run: theirs stays
        "loss": 0.4,  # a measurement: replaced
        "nested": {"n": 4},
        "new": 5,
        "other": 1,
    }
    assert three_way_merge({}, {"steps": 7}, {"steps": 5}) == {"steps": 12}


def _count_in_parallel(path: str, start: Any, done: Any, amount: int) -> None:
    store = StateStore(Path(path))
    base = store.load("ppo")
    start.wait()  # every process has read the old value before any saves
    store.merge("ppo", base, {**base, "steps": base.get("steps", 0) + amount})
    done.put(amount)


def test_concurrent_runs_in_one_runs_root_lose_no_update(tmp_path):
    """3 parallel PPO runs left steps=1,979 where 3 sequential ones give 5,937."""
    path = tmp_path / "state.json"
    StateStore(path).save("ppo", {"steps": 100})
    context = multiprocessing.get_context("spawn")
    start, done = context.Barrier(3), context.Queue()
    workers = [
        context.Process(target=_count_in_parallel, args=(str(path), start, done, 1979))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert StateStore(path).load("ppo") == {"steps": 100 + 3 * 1979}


def test_two_runs_of_one_orchestrator_process_both_count(lifecycle, tmp_path):
    lifecycle.run("lifecycle", run_dir=tmp_path / "a")
    other = Orchestrator(lifecycle.registry, quiet=True, progress=False)
    other.run("lifecycle", run_dir=tmp_path / "b")
    state = json.loads((tmp_path / "runs" / "state.json").read_text())
    assert state["lifecycle"]["steps"] == 6


# ---------------------------------------------------------------- items 2 and 13: resume


def test_resume_writes_carried_state_only_under_the_runs_root_it_lives_in(lifecycle, tmp_path):
    run = tmp_path / "runs" / "one"
    lifecycle.run("lifecycle", run_dir=run)
    elsewhere = tmp_path / "elsewhere"
    snapshot = json.loads((run / "config.json").read_text())
    snapshot["config"]["runs_root"] = str(elsewhere)  # a handed-over run naming another place
    (run / "config.json").write_text(json.dumps(snapshot))
    RunDirectory(run).mark("interrupted")
    lifecycle.resume(run)
    assert not elsewhere.exists()
    assert json.loads((tmp_path / "runs" / "state.json").read_text())["lifecycle"]["steps"] == 6


@pytest.mark.parametrize("damaged", ["config.json", "run.json"])
def test_resume_names_the_unreadable_file(lifecycle, tmp_path, damaged):
    run = tmp_path / "run"
    lifecycle.run("lifecycle", run_dir=run)
    RunDirectory(run).mark("interrupted")
    (run / damaged).write_text("{not json")
    with pytest.raises(RunDirectoryError, match=rf"{damaged}: unreadable"):
        lifecycle.resume(run)


def test_resume_of_a_missing_folder_says_so(lifecycle, tmp_path):
    with pytest.raises(RunDirectoryError, match="no such run directory"):
        lifecycle.resume(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.slow
def test_three_parallel_ppo_runs_in_one_runs_root_count_every_step(tmp_path):
    """The red team's reproduction: 3 parallel PPO runs left steps=1,979 of 5,937."""
    config = tmp_path / "ppo.json"
    section = {"env": "CartPole-v1", "num_envs": 2, "num_steps": 16, "minibatch_size": 32,
               "update_epochs": 1, "total_timesteps": 96, "eval_every": None, "eval_episodes": 1,
               "stop_return": None, "max_episode_steps": 30}  # fmt: skip
    config.write_text(json.dumps({"ppo": section}))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}

    def start(seed: int, root: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "townlet_core.cli", "train", "-q", "-s", "ppo",
                   "-c", str(config), "--set", "ppo.torch_threads=1", "--set",
                   f"runs_root={root}", "--seed", str(seed)]  # fmt: skip
        return subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    parallel = [start(seed, "parallel") for seed in (1, 2, 3)]
    errors = [p.communicate(timeout=300)[1] for p in parallel]
    assert [p.returncode for p in parallel] == [0, 0, 0], errors
    for seed in (1, 2, 3):  # the same runs one after another
        sequential = start(seed, "sequential")
        assert sequential.wait(timeout=300) == 0, sequential.communicate()[1]

    def steps(root: str) -> int:
        return int(json.loads((tmp_path / root / "state.json").read_text())["ppo"]["steps"])

    assert steps("parallel") == steps("sequential") > 0
