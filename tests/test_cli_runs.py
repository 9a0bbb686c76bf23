"""`townlet runs list|show|compare`: real runs (cem, an anneal schedule of cem stages, and
in the slow tests ppo and bc) and hand-made run folders for what real runs rarely leave
behind (a torn run.json, a killed run, a file that is not a file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import townlet_example_cem.plugin
import townlet_strategies_anneal.plugin
from townlet_core import Orchestrator, StrategyRegistry
from townlet_core.cli import main
from townlet_core.runtime.run_dir import RunLock

CEM = {"env_id": "CartPole-v1", "iterations": 3, "population": 8, "eval_episodes": 2}
Townlet = Callable[..., tuple[int, str, str]]


@pytest.fixture
def townlet(capsys: pytest.CaptureFixture[str]) -> Townlet:
    """`townlet ARGS` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _orchestrator(*plugins: tuple[Any, str]) -> Orchestrator:
    registry = StrategyRegistry(discover=False)
    registry.add_plugin(townlet_example_cem.plugin, distribution="townlet-example-cem")
    registry.add_plugin(townlet_strategies_anneal.plugin, distribution="townlet-strategies-anneal")
    for plugin, distribution in plugins:
        registry.add_plugin(plugin, distribution=distribution)
    return Orchestrator(registry, quiet=True, progress=False)


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A runs root with a cem run, then an anneal run of two cem stages (real trainings,
    about a second together); their result DTOs by strategy, and the root."""
    root = tmp_path_factory.mktemp("real") / "runs"
    orchestrator = _orchestrator()
    cem = orchestrator.run("cem", config={"runs_root": str(root), "cem": CEM}, seed=5)
    cem_dir = orchestrator.last_run_dir
    schedule = [{"cycle": c, "strategy": "cem", "overrides": CEM} for c in (0, 1)]
    anneal = orchestrator.run(
        "anneal", config={"runs_root": str(root), "anneal": {"schedule": schedule}}, seed=6
    )
    assert cem_dir is not None and orchestrator.last_run_dir is not None
    return {
        "root": root,
        "cem": cem,
        "anneal": anneal,
        "cem_dir": cem_dir,
        "anneal_dir": orchestrator.last_run_dir,
    }


def _list_json(townlet: Townlet, root: Path, *args: str) -> list[dict[str, Any]]:
    code, out, err = townlet("runs", "list", "--runs-root", str(root), "--json", *args)
    assert code == 0, err
    runs: list[dict[str, Any]] = json.loads(out)
    return runs


# --------------------------------------------------------------------------- hand-made runs


def make_run(
    root: Path,
    name: str,
    *,
    strategy: str = "ppo",
    state: str | None = "succeeded",
    started: str = "2026-01-01T10:00:00+00:00",
    finished: str | None = "2026-01-01T10:02:05+00:00",
    config: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
    seed: int = 1,
) -> Path:
    """A run folder as `townlet train` leaves it; `result=None` writes no result.json."""
    path = root / name
    path.mkdir(parents=True)
    section = config if config is not None else {"learning_rate": 0.001}
    snapshot = {
        "strategy": strategy,
        "seed": seed,
        "device": "auto",
        "config": {"strategy": strategy, "seed": seed, strategy: section},
        "config_source": "defaults",
        "overrides": [],
        "strategies": {
            strategy: {"distribution": f"townlet-strategies-{strategy}", "version": "0.1.0"}
        },
        "versions": {"python": "3.11.7", "townlet-core": "0.1.0"},
        "command": ["townlet", "train", "--strategy", strategy],
        "created_at": started,
    }
    (path / "config.json").write_text(json.dumps(snapshot), encoding="utf-8")
    if state is not None:
        status = {"strategy": strategy, "started_at": started, "state": state}
        if finished is not None:
            status["finished_at"] = finished
        status["updated_at"] = finished or started
        (path / "run.json").write_text(json.dumps(status), encoding="utf-8")
    if result is not None:
        (path / "result.json").write_text(json.dumps({"strategy": strategy, **result}))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


# --------------------------------------------------------------------------- list: real runs


def test_list_shows_real_runs_newest_first_with_their_recorded_facts(townlet, real_runs):
    code, out, err = townlet("runs", "list", "--runs-root", str(real_runs["root"]))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "NAME", "STRATEGY", "STATE", "VERDICT", "SEED", "RETURN", "DURATION", "STARTED", "(UTC)"
    ]  # fmt: skip
    anneal, cem = real_runs["anneal"], real_runs["cem"]
    first, second = (line.split() for line in lines[1:])
    assert first[:6] == [
        real_runs["anneal_dir"].name, "anneal", "succeeded", anneal.anneal_status, "6",
        f"{anneal.final_eval_mean_return:.2f}",
    ]  # fmt: skip
    assert second[:6] == [
        real_runs["cem_dir"].name, "cem", "succeeded", "-", "5", f"{cem.eval_mean_return:.2f}"
    ]  # fmt: skip
    assert len(lines) == 3  # the anneal stages are not runs of their own


def test_list_json_takes_each_field_from_the_documented_file(townlet, real_runs):
    anneal, cem = _list_json(townlet, real_runs["root"])
    status = json.loads((real_runs["anneal_dir"] / "run.json").read_text())
    assert anneal["verdict"] == real_runs["anneal"].anneal_status
    assert anneal["final_return"] == real_runs["anneal"].final_eval_mean_return
    assert anneal["return_field"] == "final_eval_mean_return"
    assert anneal["started_at"] == status["started_at"]
    assert anneal["finished_at"] == status["finished_at"]
    assert cem["return_field"] == "eval_mean_return"
    assert cem["final_return"] == real_runs["cem"].eval_mean_return
    assert cem["verdict"] is None
    assert set(cem) == {
        "name", "path", "strategy", "state", "reason", "verdict", "seed", "final_return",
        "return_field", "started_at", "finished_at", "duration_sec",
    }  # fmt: skip


def test_list_uses_the_default_runs_root_of_townlet_train(townlet, real_runs, monkeypatch):
    monkeypatch.chdir(real_runs["root"].parent)  # the folder holding `runs/`
    code, out, err = townlet("runs", "list", "--json")
    assert code == 0, err
    assert [run["strategy"] for run in json.loads(out)] == ["anneal", "cem"]


# --------------------------------------------------------------------------- list: edge cases


def test_newest_first_follows_the_start_time_not_the_name(townlet, root):
    newest_first = ["m", "c", "x", "a", "q"]  # neither name order, nor (likely) folder order
    for day, name in enumerate(reversed(newest_first), start=1):
        make_run(root, name, started=f"2026-01-{day:02d}T00:00:00+00:00", result={})
    (root / "c" / "run.json").unlink()  # killed before run.json: config.json's time counts
    assert [r["name"] for r in _list_json(townlet, root)] == newest_first


def test_duration_comes_from_run_json_timestamps(townlet, root):
    make_run(root, "run", result={"eval_mean_return": 12.5})
    code, out, _ = townlet("runs", "list", "--runs-root", str(root))
    assert code == 0
    assert out.splitlines()[1].split()[5:7] == ["12.50", "2m05s"]


def test_a_running_run_that_nobody_holds_is_listed_as_stopped(townlet, root):
    path = make_run(root, "killed", state="running", finished=None)
    (path / ".townlet.lock").write_text("")
    (run,) = _list_json(townlet, root)
    assert run["state"] == "stopped"
    assert run["reason"] == "no process is running it: it was killed, or the machine stopped"


def test_a_running_run_whose_lock_is_held_is_listed_as_running(townlet, root):
    path = make_run(root, "live", state="running", finished=None)
    lock = RunLock(path)
    lock.acquire()
    try:
        (run,) = _list_json(townlet, root)
    finally:
        lock.release()
    assert run["state"] == "running"
    assert run["duration_sec"] > 0  # up to now


def test_a_corrupt_run_json_is_unreadable_and_the_other_runs_still_list(townlet, root):
    make_run(root, "good", started="2026-01-01T00:00:00+00:00", result={})
    bad = make_run(root, "torn", started="2026-01-02T00:00:00+00:00", result={})
    (bad / "run.json").write_text('{"state": "succ', encoding="utf-8")
    code, out, err = townlet("runs", "list", "--runs-root", str(root))
    assert code == 0, err
    rows = [line.split()[:3] for line in out.splitlines()[1:3]]
    assert rows == [["torn", "ppo", "unreadable"], ["good", "ppo", "succeeded"]]
    assert out.splitlines()[-1] == (
        "torn: unreadable: run.json: not JSON (Unterminated string starting at: line 1 "
        "column 11 (char 10))"
    )


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("config-missing", "config.json: missing"),
        ("config-not-snapshot", "config.json: not a townlet config snapshot"),
        ("config-list", "config.json: not a JSON object"),
        ("result-missing", "result.json: missing, though run.json says succeeded"),
        ("result-binary", "result.json: not UTF-8 text"),
        ("unknown-state", "run.json: unknown state 'exploded'"),
    ],
)
def test_each_damaged_file_is_named_in_the_reason(townlet, root, damage, reason):
    path = make_run(root, "run", result={"eval_mean_return": 1.0})
    files = {
        "config-missing": ("config.json", None),
        "config-not-snapshot": ("config.json", b'{"strategy": "ppo"}'),
        "config-list": ("config.json", b"[1, 2]"),
        "result-missing": ("result.json", None),
        "result-binary": ("result.json", b"\xff\xfe\x00"),
        "unknown-state": ("run.json", b'{"state": "exploded"}'),
    }
    name, content = files[damage]
    if content is None:
        (path / name).unlink()
    else:
        (path / name).write_bytes(content)
    (run,) = _list_json(townlet, root)
    assert (run["state"], run["reason"]) == ("unreadable", reason)


def test_a_pipe_in_place_of_result_json_is_refused_without_reading_it(townlet, root):
    path = make_run(root, "run", result={})
    (path / "result.json").unlink()
    os.mkfifo(path / "result.json")  # reading it would wait for a writer forever
    (run,) = _list_json(townlet, root)
    assert run["state"] == "unreadable"
    assert run["reason"].startswith("result.json: ")
    assert "not a regular file" in run["reason"]


def test_a_file_above_the_json_limit_is_unreadable_with_the_variable_to_raise(
    townlet, root, monkeypatch
):
    make_run(root, "big", config={"blob": "x" * 4000}, result={})
    monkeypatch.setenv("TOWNLET_MAX_JSON_BYTES", "2000")
    (run,) = _list_json(townlet, root)
    assert run["state"] == "unreadable"
    assert "raise TOWNLET_MAX_JSON_BYTES" in run["reason"]


def test_non_finite_numbers_in_a_result_still_give_strict_json(townlet, root):
    make_run(root, "run", result={"eval_mean_return": float("nan"), "loss": float("inf")})
    code, out, _ = townlet("runs", "show", "run", "--runs-root", str(root), "--json")
    assert code == 0
    details = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert details["summary"]["final_return"] is None
    assert details["result"]["loss"] == "Infinity"


def test_folders_without_run_files_and_hidden_folders_are_not_runs(townlet, root):
    make_run(root, "run", result={})
    (root / "notes").mkdir()
    (root / ".cache").mkdir()
    (root / ".cache" / "config.json").write_text("{}")
    (root / "state.json").write_text("{}")
    assert [r["name"] for r in _list_json(townlet, root)] == ["run"]


def test_filters_by_strategy_state_and_verdict(townlet, root):
    make_run(root, "p1", strategy="ppo", result={})
    make_run(root, "p2", strategy="ppo", state="error", finished=None)
    make_run(root, "a1", strategy="anneal", result={"anneal_status": "PASS"})
    make_run(root, "a2", strategy="anneal", result={"anneal_status": "HOLD"})

    def names(*args: str) -> list[str]:
        return sorted(r["name"] for r in _list_json(townlet, root, *args))

    assert names("--strategy", "ppo") == ["p1", "p2"]
    assert names("--status", "error") == ["p2"]
    assert names("--status", "SUCCEEDED", "--strategy", "ppo") == ["p1"]
    assert names("--verdict", "pass") == ["a1"]


def test_a_filter_matching_nothing_says_so_and_suggests_a_strategy(townlet, root):
    make_run(root, "p1", strategy="ppo", result={})
    code, out, _ = townlet("runs", "list", "--runs-root", str(root), "--strategy", "ppoo")
    assert (code, out) == (0, f"none of the 1 runs under {root} match; did you mean 'ppo'?\n")
    assert _list_json(townlet, root, "--strategy", "ppoo") == []


def test_an_unknown_status_is_a_usage_error_with_the_choices(townlet, root):
    make_run(root, "p1", result={})
    code, _, err = townlet("runs", "list", "--runs-root", str(root), "--status", "stoped")
    assert code == 2
    assert (
        "Invalid value for --status: 'stoped' is not one of running, stopped, succeeded, "
        "failed, error, interrupted, unreadable; did you mean 'stopped'?"
    ) in err


def test_a_missing_runs_root_is_an_error_naming_it(townlet, tmp_path):
    code, out, err = townlet("runs", "list", "--runs-root", str(tmp_path / "nowhere"))
    assert (code, out) == (2, "")
    assert err == (
        f"townlet: error: runs root {tmp_path / 'nowhere'} does not exist; pass --runs-root "
        "DIR, the runs_root that 'townlet train' wrote to (default: runs, in the folder it "
        "ran in)\n"
    )


# --------------------------------------------------------------------------- show


def test_show_an_anneal_run_lists_its_stages_and_files(townlet, real_runs):
    name = real_runs["anneal_dir"].name
    code, out, err = townlet("runs", "show", name, "--runs-root", str(real_runs["root"]), "--json")
    assert code == 0, err
    details = json.loads(out)
    anneal = real_runs["anneal"]
    assert details["summary"]["verdict"] == anneal.anneal_status
    assert details["config"]["anneal"]["schedule"][0]["strategy"] == "cem"
    assert details["versions"]["townlet-core"] == "0.1.0"
    assert details["result"]["anneal_status"] == anneal.anneal_status
    assert [
        (s["stage_dir"], s["strategy"], s["state"], s["outcome"]) for s in details["stages"]
    ] == [(stage.stage_dir, "cem", "succeeded", stage.outcome) for stage in anneal.stages]
    files = {a["path"]: a["roles"] for a in details["artifacts"]}
    assert files["config.json"] == ["config"]
    assert files[anneal.checkpoint] == ["checkpoint"]
    assert f"{anneal.stages[0].stage_dir}/result.json" in files
    assert ".townlet.lock" not in files


def test_show_prints_state_config_result_and_artifacts_for_people(townlet, real_runs):
    path = real_runs["cem_dir"]
    code, out, err = townlet("runs", "show", str(path))  # a path, not a name
    assert code == 0, err
    assert out.splitlines()[0] == f"{path.name}  ({path})"
    assert "  strategy:     cem (townlet-example-cem " in out  # the distribution that ran it
    assert (
        f"  return:       {real_runs['cem'].eval_mean_return:.2f} (result.json eval_mean_return)"
        in out
    )
    assert "\nconfig:\n" in out
    assert ["cem.population", "8"] in [line.split() for line in out.splitlines()]
    assert "\nresult:\n" in out and "\nartifacts:\n" in out
    assert "policy.npz" in out


def test_show_takes_the_unique_start_of_a_name(townlet, root):
    make_run(root, "ppo-20260101-100000-abcd", result={})
    make_run(root, "cem-20260101-100000-ef01", strategy="cem", result={})
    code, out, _ = townlet("runs", "show", "ppo-2026", "--runs-root", str(root), "--json")
    assert code == 0
    assert json.loads(out)["summary"]["name"] == "ppo-20260101-100000-abcd"


def test_a_start_shared_by_several_runs_names_them(townlet, root):
    make_run(root, "ppo-1", result={})
    make_run(root, "ppo-2", result={})
    code, _, err = townlet("runs", "show", "ppo-", "--runs-root", str(root))
    assert code == 2
    assert err == (
        f"townlet: error: 'ppo-' could be any of 2 runs under {root} (ppo-1, ppo-2); give more "
        "of the name\n"
    )


def test_an_unknown_run_is_an_error_naming_it_and_the_closest_runs(townlet, root):
    make_run(root, "ppo-20260101-100000-abcd", result={})
    make_run(root, "bc-20260101-100000-ef01", strategy="bc", result={})
    code, out, err = townlet("runs", "show", "ppo-20260101-10000-abcd", "--runs-root", str(root))
    assert (code, out) == (2, "")
    assert err == (
        f"townlet: error: no run 'ppo-20260101-10000-abcd' under {root}; did you mean "
        "'ppo-20260101-100000-abcd' or 'bc-20260101-100000-ef01'?\n"
    )


def test_an_unknown_run_with_nothing_close_points_at_the_listing(townlet, root):
    make_run(root, "ppo-20260101-100000-abcd", result={})
    code, _, err = townlet("runs", "show", "zzz", "--runs-root", str(root))
    assert code == 2
    assert err == (
        f"townlet: error: no run 'zzz' under {root} (1 runs there; 'townlet runs list' "
        "shows them)\n"
    )


def test_a_folder_that_is_not_a_run_is_refused(townlet, tmp_path, root):
    (tmp_path / "empty").mkdir()
    code, _, err = townlet("runs", "show", str(tmp_path / "empty"), "--runs-root", str(root))
    assert code == 2
    assert err == (
        f"townlet: error: {tmp_path / 'empty'} is a folder but not a run: it holds none of "
        "config.json, run.json, result.json\n"
    )


def test_show_of_an_unreadable_run_shows_what_it_can(townlet, root):
    path = make_run(root, "torn", result={"eval_mean_return": 3.0})
    (path / "run.json").write_text("{", encoding="utf-8")
    code, out, _ = townlet("runs", "show", "torn", "--runs-root", str(root))
    assert code == 0
    assert "  state:        unreadable\n" in out
    assert "  reason:       run.json: not JSON (" in out
    assert "  ppo.learning_rate  0.001\n" in out


# --------------------------------------------------------------------------- compare


def test_compare_shows_only_the_settings_that_differ_side_by_side(townlet, root):
    make_run(root, "a", config={"learning_rate": 0.001, "gamma": 0.99, "net": {"width": 64}},
             result={"eval_mean_return": 10.0, "loss": 0.5})  # fmt: skip
    make_run(root, "b", config={"learning_rate": 0.0003, "gamma": 0.99, "extra": True},
             result={"eval_mean_return": 20.0, "loss": 0.25}, seed=2)  # fmt: skip
    code, out, err = townlet("runs", "compare", "a", "b", "--runs-root", str(root))
    assert code == 0, err
    assert out.splitlines()[:7] == [
        "config: 4 of 6 settings differ",
        "  SETTING            a      b",
        "  seed               1      2",
        "  ppo.learning_rate  0.001  0.0003",
        "  ppo.net.width      64     -",
        "  ppo.extra          -      true",
        "versions: the same",
    ]
    final = out.split("\nfinal metrics:\n")[1].splitlines()
    assert [line.split() for line in final] == [
        ["METRIC", "a", "b"],
        ["state", "succeeded", "succeeded"],
        ["final_return", "10", "20"],
        ["duration_sec", "125", "125"],
        ["seed", "1", "2"],
        ["eval_mean_return", "10", "20"],
        ["loss", "0.5", "0.25"],
    ]


def test_compare_json_keys_values_by_run_and_leaves_absent_keys_out(townlet, root):
    make_run(root, "a", config={"lr": 1, "only_a": 1}, result={"eval_mean_return": 1.0})
    make_run(root, "b", config={"lr": 2}, result={"eval_mean_return": 2.0})
    make_run(root, "c", config={"lr": 1}, result={})
    code, out, _ = townlet("runs", "compare", "a", "b", "c", "--runs-root", str(root), "--json")
    assert code == 0
    comparison = json.loads(out)
    assert comparison["runs"] == ["a", "b", "c"]
    assert comparison["config"] == [
        {"key": "ppo.lr", "values": {"a": 1, "b": 2, "c": 1}},
        {"key": "ppo.only_a", "values": {"a": 1}},
    ]
    final = {row["key"]: row["values"] for row in comparison["metrics"]}
    assert final["final_return"] == {"a": 1.0, "b": 2.0}
    assert final["state"] == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}


def test_compare_real_runs_of_two_strategies(townlet, real_runs):
    root = str(real_runs["root"])
    names = (real_runs["cem_dir"].name, real_runs["anneal_dir"].name)
    code, out, err = townlet("runs", "compare", *names, "--runs-root", root, "--json")
    assert code == 0, err
    comparison = json.loads(out)
    config = {row["key"]: row["values"] for row in comparison["config"]}
    assert config["strategy"] == {names[0]: "cem", names[1]: "anneal"}
    assert config["cem.population"] == {names[0]: 8}  # anneal's stages set it in its schedule
    final = {row["key"]: row["values"] for row in comparison["metrics"]}
    assert final["final_return"] == {
        names[0]: real_runs["cem"].eval_mean_return,
        names[1]: real_runs["anneal"].final_eval_mean_return,
    }
    assert final["verdict"] == {names[1]: real_runs["anneal"].anneal_status}


def test_compare_takes_two_or_more_different_runs(townlet, root):
    make_run(root, "a", result={})
    code, _, err = townlet("runs", "compare", "a", "--runs-root", str(root))
    assert code == 2 and "compare takes two or more runs" in err
    code, _, err = townlet("runs", "compare", "a", str(root / "a"), "--runs-root", str(root))
    assert code == 2 and f"'{root / 'a'}' and 'a' are the same run" in err


def test_compare_names_an_unknown_run(townlet, root):
    make_run(root, "alpha", result={})
    code, _, err = townlet("runs", "compare", "alpha", "alpah", "--runs-root", str(root))
    assert code == 2
    assert err == f"townlet: error: no run 'alpah' under {root}; did you mean 'alpha'?\n"


# --------------------------------------------------------------------------- light and safe


def test_runs_commands_import_no_torch(root):
    make_run(root, "a", result={})
    make_run(root, "b", result={})
    probe = (
        "import sys\n"
        "from townlet_core.cli import main\n"
        f"for args in (['runs', '--help'], ['runs', 'list', '--runs-root', {str(root)!r}],\n"
        f"             ['runs', 'show', 'a', '--runs-root', {str(root)!r}],\n"
        f"             ['runs', 'compare', 'a', 'b', '--runs-root', {str(root)!r}]):\n"
        "    assert main(args) == 0, args\n"
        "heavy = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not heavy, heavy[:5]\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("ok")


# --------------------------------------------------------------------------- torch strategies


@pytest.mark.slow
def test_real_ppo_and_bc_runs_list_their_greedy_return(townlet, tmp_path):
    import townlet_strategies_bc.plugin
    import townlet_strategies_ppo.plugin

    root = tmp_path / "runs"
    code, _, err = townlet("capture", "--env", "CartPole-v1", "--policy", "scripted",
                           "--episodes", "3", "--out", str(tmp_path / "demos"))  # fmt: skip
    assert code == 0, err
    orchestrator = _orchestrator(
        (townlet_strategies_ppo.plugin, "townlet-strategies-ppo"),
        (townlet_strategies_bc.plugin, "townlet-strategies-bc"),
    )
    ppo = orchestrator.run(
        "ppo", config={"runs_root": str(root), "ppo": {"total_timesteps": 2048}}, seed=1
    )
    ppo_dir = orchestrator.last_run_dir
    bc = orchestrator.run(
        "bc",
        config={"runs_root": str(root), "bc": {"dataset": str(tmp_path / "demos"), "epochs": 2}},
        seed=2,
    )
    assert ppo_dir is not None
    listed = {run["strategy"]: run for run in _list_json(townlet, root)}
    assert listed["ppo"]["final_return"] == ppo.eval_mean_return
    assert listed["ppo"]["state"] == "succeeded"
    assert listed["bc"]["final_return"] == bc.eval_mean_return  # None without an eval env
    assert listed["bc"]["seed"] == 2
    code, out, _ = townlet("runs", "show", ppo_dir.name, "--runs-root", str(root), "--json")
    files = {a["path"]: a["roles"] for a in json.loads(out)["artifacts"]}
    assert files["checkpoint/weights.safetensors"] == ["checkpoint"]


# --------------------------------------------------------------------------- stages


def _stage_folder(run: Path, name: str, strategy: str, ret: float) -> None:
    stage = run / "stages" / name
    stage.mkdir(parents=True)
    status = {"strategy": strategy, "state": "succeeded", "started_at": "2026-01-01T10:00:00Z"}
    (stage / "run.json").write_text(json.dumps(status))
    (stage / "result.json").write_text(json.dumps({"eval_mean_return": ret}))


def test_stages_of_a_run_without_a_result_yet_come_from_its_folders(townlet, root):
    run = make_run(root, "anneal-run", strategy="anneal", state="running", finished=None)
    _stage_folder(run, "00-cycle0-bc", "bc", 20.0)
    _stage_folder(run, "01-cycle1-ppo", "ppo", 180.0)
    assert [r["name"] for r in _list_json(townlet, root)] == ["anneal-run"]
    code, out, _ = townlet("runs", "show", "anneal-run", "--runs-root", str(root), "--json")
    assert code == 0
    stages = [(s["stage_dir"], s["strategy"], s["state"], s["final_return"])
              for s in json.loads(out)["stages"]]  # fmt: skip
    assert stages == [
        ("stages/00-cycle0-bc", "bc", "succeeded", 20.0),
        ("stages/01-cycle1-ppo", "ppo", "succeeded", 180.0),
    ]


def test_a_stage_a_result_places_outside_its_run_is_not_read(townlet, root):
    make_run(root, "elsewhere", result={"eval_mean_return": 99.0})
    stage = {"stage_dir": "../elsewhere", "strategy": "ppo", "outcome": "accepted"}
    make_run(root, "anneal-run", strategy="anneal", result={"stages": [stage]})
    code, out, _ = townlet("runs", "show", "anneal-run", "--runs-root", str(root), "--json")
    assert code == 0
    (shown,) = json.loads(out)["stages"]
    assert (shown["state"], shown["final_return"]) == ("missing", None)
    assert shown["reason"] == "../elsewhere: outside the run folder"
