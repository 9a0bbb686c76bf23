"""The live progress bar: drawn on a terminal only, with rate, ETA and the latest known
figures (never `None`), named after a composed stage, and never imported to list or help."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest

from townlet_core import Orchestrator
from townlet_core.runtime.progress import Progress, progress_wanted, write_line


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def _orchestrator(make_registry, **options):
    registry, _ = make_registry(TOWNLET_LOAD_PLUGINS="good-strategy")
    return Orchestrator(registry, **options)


def test_a_terminal_gets_a_bar_of_the_strategys_loop(make_registry, tmp_path):
    terminal = FakeTerminal()
    orchestrator = _orchestrator(make_registry, progress_stream=terminal, log=lambda _m: None)
    orchestrator.run("good", overrides=["good.steps=4"], run_dir=tmp_path / "r")
    drawn = terminal.getvalue()
    assert "\r" in drawn  # redrawn in place
    assert drawn.rstrip("\n").rsplit("\r", 1)[-1].startswith("good: 100%|")
    assert " 4/4 [" in drawn


def test_quiet_draws_no_bar_even_on_a_terminal(make_registry, tmp_path):
    terminal = FakeTerminal()
    orchestrator = _orchestrator(make_registry, quiet=True, progress_stream=terminal)
    orchestrator.run("good", run_dir=tmp_path / "r")
    assert progress_wanted(quiet=True, stream=terminal) is False
    assert terminal.getvalue() == ""


def test_output_that_is_not_a_terminal_gets_no_bar(make_registry, tmp_path):
    piped = io.StringIO()
    orchestrator = _orchestrator(make_registry, progress_stream=piped, log=lambda _m: None)
    orchestrator.run("good", run_dir=tmp_path / "r")
    assert progress_wanted(quiet=False, stream=piped) is False
    assert piped.getvalue() == ""


def test_the_line_shows_count_rate_and_eta():
    progress = Progress(10, "ppo", enabled=False, unit="update")
    progress.update(4, loss=0.5)
    line = progress.render()
    assert " 4/10 [" in line
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d, +[\d.]+[kM]?update/s, loss=0\.5\]$", line), line


def test_an_unknown_return_keeps_the_latest_known_one():
    terminal = FakeTerminal()
    with Progress(5, "ppo", enabled=True, stream=terminal) as progress:
        progress.update(1, ret=None)  # no episode ended yet
        assert "ret" not in progress.render()
        progress.update(1, ret=21.5)
        progress.update(1, ret=None)  # this update ended no episode
        progress.update(1, ret=float("nan"))  # a mean over no episodes
        assert progress.render().endswith("ret=21.5]")
    drawn = terminal.getvalue()
    assert "ret=21.5" in drawn
    assert "None" not in drawn
    assert "nan" not in drawn


def test_work_done_before_a_resume_is_counted_but_not_in_the_rate():
    progress = Progress(10, "ppo", enabled=False, unit="update", initial=6)
    progress.update(1)
    assert " 7/10 [" in progress.render()
    # tqdm's rate is (count - initial) / elapsed: one update, not seven
    fresh = Progress(10, "ppo", enabled=False, unit="update")
    fresh.update(7)
    rate = re.compile(r"([\d.]+)([kM]?)update/s")
    resumed_rate, fresh_rate = (rate.search(p.render()) for p in (progress, fresh))
    assert resumed_rate is not None and fresh_rate is not None
    scale = {"": 1, "k": 1e3, "M": 1e6}
    assert (
        float(resumed_rate[1]) * scale[resumed_rate[2]]
        < float(fresh_rate[1]) * scale[fresh_rate[2]]
    )


def test_a_stage_bar_is_named_after_its_stage(make_registry, tmp_path):
    terminal = FakeTerminal()
    orchestrator = _orchestrator(make_registry, progress_stream=terminal, log=lambda _m: None)
    orchestrator.run("combo", run_dir=tmp_path / "r")
    drawn = terminal.getvalue()
    assert "01-good: good: 100%|" in drawn
    assert "02-good: good: 100%|" in drawn


def test_a_log_line_is_written_above_the_open_bar():
    terminal = FakeTerminal()
    with Progress(3, "bc", enabled=True, stream=terminal, unit="epoch") as progress:
        progress.update(1)
        write_line("townlet: bc stopped early after epoch 1", terminal)
    drawn = terminal.getvalue()
    assert "townlet: bc stopped early after epoch 1\n" in drawn
    # the bar is drawn again after the log line
    after = drawn.split("townlet: bc stopped early after epoch 1\n", 1)[1]
    assert "bc:  33%|" in after


def test_a_disabled_bar_writes_nothing_and_imports_no_drawing_library():
    probe = (
        "import io, sys\n"
        "from townlet_core.runtime.progress import Progress\n"
        "with Progress(3, 'x', enabled=False, stream=io.StringIO()) as p:\n"
        "    p.update(3, ret=1.0)\n"
        "assert 'tqdm' not in sys.modules, 'tqdm imported'\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["strategies", "list"],
        ["train", "--help"],
        ["train", "-s", "good", "--run-dir", "RUN", "-q"],
    ],
    ids=["help", "version", "list", "train-help", "quiet-train"],
)
def test_the_cli_never_imports_tqdm_unless_it_draws(args, site_env, tmp_path):
    site_env["TOWNLET_LOAD_PLUGINS"] = "good-strategy"
    args = [str(tmp_path / "r") if arg == "RUN" else arg for arg in args]
    probe = (
        "import sys\n"
        "from townlet_core.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'tqdm' not in sys.modules, 'tqdm imported'\n"
        "print('ok')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=site_env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.rstrip().endswith("ok")


@pytest.mark.slow
def test_ppo_and_bc_bars_show_rate_eta_and_the_latest_return_never_none(ppo_registry, tmp_path):
    terminal = FakeTerminal()
    orchestrator = Orchestrator(ppo_registry, progress_stream=terminal, log=lambda _m: None)
    # 128 steps an update: most updates of CartPole end an episode, some may not
    orchestrator.run(
        "ppo",
        config={
            "ppo": {
                "total_timesteps": 1024,
                "num_envs": 1,
                "num_steps": 128,
                "minibatch_size": 64,
                "eval_every": 4,
                "eval_episodes": 2,
            }
        },
        seed=0,
        run_dir=tmp_path / "ppo",
    )
    orchestrator.run(
        "bc",
        config={"bc": {"capture": {"env": "CartPole-v1", "episodes": 2}, "epochs": 2}},
        seed=0,
        run_dir=tmp_path / "bc",
    )
    # each bar is redrawn in place ("\r") and left on its own line when it closes
    finished = [line.rsplit("\r", 1)[-1] for line in terminal.getvalue().split("\n")]
    ppo, capture, bc = (
        next(line for line in finished if line.startswith(prefix))
        for prefix in ("ppo:", "capture CartPole-v1:", "bc:")
    )
    # a rate under 1 a second reads the other way round (s/update)
    rate = r"(?:[\d.]+[kM]?{0}/s|[\d.]+s/{0})"
    assert re.search(rf" 8/8 \[\d\d:\d\d<00:00, +{rate.format('update')}, ret=[\d.]+, loss=", ppo)
    assert re.search(r", eval=[\d.]+\] *$", ppo), ppo  # the latest greedy evaluation's return
    assert re.search(rf" 2/2 \[.*{rate.format('episode')}, episodes=2, mean_return=", capture)
    assert re.search(rf" 2/2 \[.*{rate.format('epoch')}, loss=[\d.]+, val_acc=", bc), bc
    assert "None" not in terminal.getvalue()
    assert "nan" not in terminal.getvalue()
