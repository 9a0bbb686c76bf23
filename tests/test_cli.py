"""The `townlet` command: every command's help, output shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from townlet_core.cli import LAZY_COMMANDS, main


@pytest.fixture
def townlet(site, monkeypatch, tmp_path, capsys):
    """Run `townlet ARGS` in-process over the fake plugins; returns (code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOWNLET_LOAD_PLUGINS", "good-strategy")
    monkeypatch.delenv("TOWNLET_STRICT_PLUGINS", raising=False)

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


HELP_COMMANDS = [
    [],
    *([name] for name in sorted(LAZY_COMMANDS)),  # every command group, present and future
    ["strategies", "list"],
    ["strategies", "show"],
]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "townlet")
def test_every_command_has_help(townlet, command):
    code, out, err = townlet(*command, "--help")
    assert code == 0, err
    assert out.startswith(f"Usage: townlet {' '.join(command)}".rstrip())


def test_root_help_lists_every_command_group(townlet):
    _, out, _ = townlet("--help")
    for name in LAZY_COMMANDS:
        assert f"  {name}" in out


def test_version_lists_strategies_from_metadata(townlet):
    code, out, _ = townlet("--version")
    assert code == 0
    assert out.splitlines() == [
        "townlet-core 0.1.0",
        "strategies:",
        "  combo  good-strategy 1.0.0",
        "  good   good-strategy 1.0.0",
    ]
    assert "good_strategy_plugin" not in sys.modules


def test_version_with_no_strategies(townlet):
    code, out, _ = townlet("--version", env={"TOWNLET_LOAD_PLUGINS": ""})
    assert code == 0
    assert out.splitlines()[1].startswith("strategies: none installed")


def test_strategies_list_table(townlet):
    code, out, _ = townlet("strategies", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "DISTRIBUTION", "VERSION", "STATUS", "SUMMARY"]
    assert lines[2].split()[:4] == ["good", "good-strategy", "1.0.0", "ok"]


def test_strategies_list_json_shape(townlet):
    code, out, _ = townlet("strategies", "list", "--json")
    assert code == 0
    entries = json.loads(out)
    assert [e["name"] for e in entries] == ["combo", "good"]
    assert entries[1] == {
        "name": "good",
        "distribution": "good-strategy",
        "version": "1.0.0",
        "entry_point": "good_strategy_plugin",
        "status": "ok",
        "error": None,
        "summary": "A small torch-free test strategy",
        "loaded": False,
        "requires_torch": None,
        "requires_strategies": None,
        "supports_resume": None,
        "api_version": None,
    }


def test_strategies_list_json_is_empty_when_none_installed(townlet):
    code, out, _ = townlet("strategies", "list", "--json", env={"TOWNLET_LOAD_PLUGINS": ""})
    assert (code, json.loads(out)) == (0, [])


def test_strategies_list_check_imports_and_fills_in_details(townlet):
    code, out, _ = townlet("strategies", "list", "--check", "--json")
    assert code == 0
    combo = json.loads(out)[0]
    assert (combo["loaded"], combo["requires_strategies"], combo["summary"]) == (
        True,
        ["good"],
        "Runs 'good' twice as stages",
    )


def test_strategies_list_check_marks_broken_plugins_and_exits_1(townlet):
    env = {
        "TOWNLET_LOAD_PLUGINS": "good-strategy,broken-strategy,oldapi-strategy,misnamed-strategy"
    }
    code, out, err = townlet("strategies", "list", "--check", env=env)
    assert code == 1
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "broken" in rows["broken"].split()[3]
    assert "No module named 'townlet_missing_dependency'" in rows["broken"]
    assert "incompatible" in rows["oldapi"]
    assert "registered no strategy named 'misnamed'" in rows["misnamed"]
    assert rows["good"].split()[3] == "ok"
    assert err == ""  # the table carries the reasons; no duplicate warnings


def test_strategies_list_all_shows_disabled(townlet):
    env = {"TOWNLET_LOAD_PLUGINS": "good-strategy", "TOWNLET_DISABLE_PLUGINS": "good-strategy"}
    _, out, _ = townlet("strategies", "list", "--all", env=env)
    assert "disabled" in out
    _, out, _ = townlet("strategies", "list", env=env)
    assert out.startswith("No strategies installed")


def test_strategies_show_prints_schema_with_defaults(townlet):
    code, out, _ = townlet("strategies", "show", "combo")
    assert code == 0
    assert out.splitlines()[0] == "combo: Runs 'good' twice as stages"
    assert "requires strategies: good" in out
    assert "  rounds  integer  2        How many 'good' stages to run." in out
    schema = json.loads(out.split("JSON schema:\n", 1)[1])
    assert schema["properties"]["rounds"]["default"] == 2


def test_strategies_show_json(townlet):
    code, out, _ = townlet("strategies", "show", "good", "--json")
    info = json.loads(out)
    assert code == 0
    assert info["config_schema"]["properties"]["steps"]["default"] == 3
    assert info["distribution"] == "good-strategy"


def test_train_prints_a_readable_summary(townlet, tmp_path):
    code, out, err = townlet("train", "--strategy", "good", "--run-dir", "r", "--seed", "2")
    assert code == 0
    assert out.splitlines()[0].startswith("good 1.0.0 succeeded in ")
    assert "(seed 2, device cpu)" in out
    assert "\n  estimate:      " in out  # the strategy's own line (its summary_lines)
    assert "\n  run directory: r\n  next:          townlet report r\n" in out
    assert "samples" not in out and "runs_so_far" not in out  # not the field list
    assert "running 'good' in r" in err
    assert (tmp_path / "r" / "result.json").exists()


def test_train_json_is_the_result_dto(townlet):
    code, out, _ = townlet(
        "train", "-s", "good", "--run-dir", "r", "--json", "--quiet", "--set", "good.steps=5"
    )
    result = json.loads(out)
    assert code == 0
    assert (result["strategy"], result["samples"], result["status"]) == ("good", 5, "succeeded")


def test_train_quiet_prints_no_status_lines(townlet):
    code, _, err = townlet("train", "-s", "good", "--run-dir", "r", "--quiet")
    assert (code, err) == (0, "")


def test_train_with_config_file_and_device(townlet, tmp_path):
    (tmp_path / "c.yaml").write_text("strategy: good\ngood:\n  steps: 7\n")
    code, out, _ = townlet("train", "-c", "c.yaml", "--device", "cpu", "--json", "--run-dir", "r")
    assert code == 0
    assert json.loads(out)["samples"] == 7


def test_train_failing_acceptance_exits_1(townlet):
    code, out, _ = townlet(
        "train", "-s", "good", "--run-dir", "r", "--set", "good.accept_error=1e-9"
    )
    assert code == 1
    assert "FAILED: error " in out


ERROR_CASES = [
    (
        ["train", "-s", "nonesuch"],
        "Unknown strategy 'nonesuch'. Installed: combo, good. Run 'townlet strategies list' to see what is installed.",
    ),
    (
        ["train", "-s", "good", "--set", "good.stepz=3"],
        "--set good.stepz=3: unknown key 'stepz' in good; did you mean 'steps'?",
    ),
    (
        ["train", "-s", "good", "--set", "good.steps=-1"],
        "--set good.steps=-1: good.steps: Input should be greater than or equal to 1",
    ),
    (
        ["train", "-s", "good", "--set", "seed.x=1"],
        "--set seed.x=1: 'seed' is a value, not a section",
    ),
    (
        ["train", "-s", "good", "--device", "tpu"],
        "--device tpu: device: Value error, unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps",
    ),
    (["train", "-s", "good", "-c", "missing.yaml"], "missing.yaml: config file does not exist"),
    (
        ["train", "-s", "good", "-c", "bad.ini"],
        "bad.ini: unsupported config format '.ini'; use one of .yaml, .yml, .toml, .json",
    ),
    (
        ["train", "-s", "good", "-c", "typo.yaml"],
        "typo.yaml: good.step: unknown key; did you mean 'steps'?",
    ),
    (
        ["train", "-s", "good", "-c", "broken.yaml"],
        "broken.yaml: invalid YAML at line 2: expected the node content, but found '<stream end>'",
    ),
    (["train"], "no strategy given: pass --strategy NAME or set 'strategy' in the config file"),
    (
        ["strategies", "show", "nope"],
        "Unknown strategy 'nope'. Installed: combo, good. Run 'townlet strategies list' to see what is installed.",
    ),
]


@pytest.mark.parametrize(
    ("args", "message"), ERROR_CASES, ids=[" ".join(a) for a, _ in ERROR_CASES]
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(townlet, tmp_path, args, message):
    (tmp_path / "bad.ini").write_text("[x]\n")
    (tmp_path / "typo.yaml").write_text("good:\n  step: 3\n")
    (tmp_path / "broken.yaml").write_text("good: [1,\n")
    code, out, err = townlet(*args)
    assert code == 2
    assert out == ""
    assert err == f"townlet: error: {message}\n"


def test_requested_broken_plugin_is_one_line_and_exit_2(townlet):
    code, _, err = townlet("train", "-s", "broken", env={"TOWNLET_LOAD_PLUGINS": "broken-strategy"})
    assert code == 2
    assert err == (
        "townlet: error: strategy 'broken' (broken-strategy 0.1.0) failed to load: "
        "ModuleNotFoundError: No module named 'townlet_missing_dependency'. "
        "Reinstall or upgrade broken-strategy.\n"
    )


def test_unrelated_broken_plugin_does_not_stop_training(townlet):
    code, _, err = townlet(
        "train",
        "-s",
        "good",
        "--run-dir",
        "r",
        "--quiet",
        env={"TOWNLET_LOAD_PLUGINS": "good-strategy,broken-strategy,future-strategy"},
    )
    assert code == 0
    assert err.count("\n") == 1  # one line for the incompatible one; broken is never imported
    assert err.startswith("townlet: warning: skipped strategy 'future' from future-strategy 3.0.0")


def test_strict_plugins_flag_makes_an_unrelated_problem_fatal(townlet):
    env = {"TOWNLET_LOAD_PLUGINS": "good-strategy,broken-strategy"}
    code, _, err = townlet("--strict-plugins", "train", "-s", "good", "--run-dir", "r", env=env)
    assert code == 2
    assert "skipped strategy 'broken'" in err
    assert "TOWNLET_STRICT_PLUGINS is set" in err


def test_unknown_option_is_a_usage_error(townlet):
    code, _, err = townlet("train", "--nope")
    assert code == 2
    assert "No such option '--nope'" in err


def test_strategy_crash_is_one_line_without_v_and_a_traceback_with_it(townlet):
    code, _, err = townlet(
        "train", "-s", "good", "--run-dir", "a", "--quiet", "--set", "good.explode=true"
    )
    assert code == 2
    assert err == (
        "townlet: error: strategy 'good' failed: ZeroDivisionError: boom at step 2 "
        "(run 'townlet -v ...' for the traceback)\n"
    )
    code, _, err = townlet(
        "-v", "train", "-s", "good", "--run-dir", "b", "--quiet", "--set", "good.explode=true"
    )
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert 'raise ZeroDivisionError("boom at step 2")' in err


def test_console_script_interrupted_run_keeps_its_files(site_env, tmp_path):
    site_env["TOWNLET_LOAD_PLUGINS"] = "good-strategy"
    run = tmp_path / "r"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "townlet_core.cli",
            "train",
            "-s",
            "good",
            "--run-dir",
            str(run),
            "--set",
            "good.steps=200",
            "--set",
            "good.pause=0.05",
        ],
        env=site_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text():
        assert time.monotonic() < deadline, "the run never started logging"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # as a scheduler stops a job; Ctrl-C behaves alike
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert err.splitlines()[-1] == (
        f"townlet: error: interrupted; {run} keeps what was written so far (run.json says "
        f"'interrupted'; strategies that checkpoint continue with 'townlet train --resume {run}')"
    )
    status = json.loads((run / "run.json").read_text())
    assert status["state"] == "interrupted"
    assert (run / "config.json").exists()
    assert (run / "metrics.jsonl").read_text().count("\n") >= 1
