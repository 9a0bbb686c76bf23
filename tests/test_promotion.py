"""The promotion ledger (state machine, persistence, concurrency) and `townlet promotion`."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from townlet_core.errors import ConfigError
from townlet_core.promotion import PromotionLedger, decide, verdict

#: A candidate with a policy (a PASS without one is refused: see the tests below).
POLICY = {"checkpoint": "runs/x/checkpoint", "run_dir": "runs/x"}


def new() -> str:
    """Fresh evidence: each call is another independent run (repeats are pinned in
    test_promotion_evidence.py)."""
    return uuid.uuid4().hex


@pytest.fixture
def ledger(tmp_path):
    return PromotionLedger(tmp_path / "promotion.sqlite")


def test_streak_grows_on_pass_and_resets_on_hold_or_fail(ledger):
    assert ledger.record_evaluation("PASS", POLICY, evidence=new())["pass_streak"] == 1
    assert ledger.record_evaluation("HOLD", evidence=new())["pass_streak"] == 0
    assert ledger.record_evaluation("PASS", POLICY, evidence=new())["pass_streak"] == 1
    snapshot = ledger.record_evaluation("FAIL", evidence=new())
    assert (snapshot["pass_streak"], snapshot["last_result"], snapshot["evaluations"]) == (
        0,
        "fail",
        4,
    )


def test_states_monitoring_ready_promoted(ledger):
    assert ledger.snapshot()["state"] == "monitoring"
    assert (
        ledger.record_evaluation("PASS", {"checkpoint": "a"}, evidence=new())["state"]
        == "monitoring"
    )
    ready = ledger.record_evaluation("PASS", {"checkpoint": "b"}, evidence=new())
    assert (ready["state"], ready["candidate_ready"], ready["candidate"]) == (
        "ready",
        True,
        {"checkpoint": "b"},
    )
    again = ledger.record_evaluation("HOLD", evidence=new())
    assert (again["state"], again["candidate_ready"]) == ("monitoring", False)
    ledger.record_evaluation("PASS", {"checkpoint": "c"}, evidence=new())
    ledger.record_evaluation("PASS", {"checkpoint": "d"}, evidence=new())
    promoted = ledger.promote("ship it")
    assert promoted["state"] == "promoted"
    assert promoted["current_release"]["candidate"] == {"checkpoint": "d"}
    assert promoted["pass_streak"] == 0


def test_state_persists_across_instances_and_required_passes_is_configurable(tmp_path):
    path = tmp_path / "promotion.sqlite"
    PromotionLedger(path, required_passes=3).record_evaluation("PASS", POLICY, evidence=new())
    reopened = PromotionLedger(path)
    assert reopened.snapshot()["pass_streak"] == 1
    assert reopened.snapshot()["required_passes"] == 3
    reopened.record_evaluation("PASS", POLICY, evidence=new())
    assert reopened.record_evaluation("PASS", POLICY, evidence=new())["candidate_ready"] is True


def test_promote_requires_a_ready_candidate(ledger):
    ledger.record_evaluation("PASS", POLICY, evidence=new())
    with pytest.raises(
        ConfigError,
        match=r"no candidate is ready to promote \(state monitoring, pass streak 1 of 2\)",
    ):
        ledger.promote()


def test_rollback_returns_to_the_previous_release(ledger):
    for name in ("first", "second"):
        ledger.record_evaluation("PASS", {"checkpoint": name}, evidence=new())
        ledger.record_evaluation("PASS", {"checkpoint": name}, evidence=new())
        ledger.promote()
    rolled = ledger.rollback()
    assert rolled["current_release"]["candidate"] == {"checkpoint": "first"}
    assert [e["event"] for e in rolled["history"]][:1] == ["rollback"]
    with pytest.raises(ConfigError, match="is the first one"):
        ledger.rollback()


def test_history_is_bounded(tmp_path, monkeypatch):
    import townlet_core.promotion as module

    monkeypatch.setattr(module, "HISTORY_LIMIT", 5)
    ledger = PromotionLedger(tmp_path / "p.sqlite")
    for _ in range(12):
        ledger.record_evaluation("HOLD", evidence=new())
    import sqlite3

    count = (
        sqlite3.connect(tmp_path / "p.sqlite").execute("SELECT COUNT(*) FROM history").fetchone()[0]
    )
    assert count == 5


RECORD_MANY = """
import os
import sys
from pathlib import Path
from townlet_core.promotion import PromotionLedger
ledger = PromotionLedger(Path(sys.argv[1]))
for i in range(int(sys.argv[2])):
    ledger.record_evaluation("PASS", {"checkpoint": "c"}, evidence=f"{os.getpid()}-{i}")
"""


def test_concurrent_runs_lose_no_update(tmp_path):
    path = tmp_path / "promotion.sqlite"
    PromotionLedger(path)
    workers = [
        subprocess.Popen([sys.executable, "-c", RECORD_MANY, str(path), "40"]) for _ in range(2)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    snapshot = PromotionLedger(path).snapshot()
    assert (snapshot["evaluations"], snapshot["pass_streak"]) == (80, 80)


def test_a_corrupt_ledger_says_what_to_do(tmp_path):
    from townlet_core.errors import DataError

    path = tmp_path / "promotion.sqlite"
    path.write_text("not a database at all" * 100)
    with pytest.raises(DataError, match="not a readable promotion ledger"):
        PromotionLedger(path)


@pytest.mark.parametrize(
    ("status", "ready", "decision", "reasons"),
    [
        ("PASS", True, "PROMOTE", []),
        ("PASS", False, "HOLD", ["candidate_not_ready"]),
        ("HOLD", True, "HOLD", []),
        ("FAIL", True, "FAIL", []),
    ],
)
def test_decisions(status, ready, decision, reasons):
    assert decide(status, ready, []) == (decision, reasons)


def test_verdict_of_the_original_full_payload():
    payload = {
        "results": [
            {"cycle": 0.0, "mode": "bc", "passed": True},
            {"cycle": 1.0, "mode": "ppo", "anneal_queue_flag": True},
        ],
        "promotion": {"candidate_ready": False},
    }
    assert verdict(payload) == ("HOLD", False, ["queue_flag_cycle_1"])
    failing = {"results": [{"cycle": 2, "mode": "bc", "passed": False}]}
    assert verdict(failing) == ("FAIL", None, ["bc_stage_failed_cycle_2"])


@pytest.fixture
def townlet(townlet_in_tmp):
    """`townlet ARGS` in-process, from tmp_path (see tests/conftest.py)."""
    return townlet_in_tmp


@pytest.mark.parametrize(
    ("payload", "code", "decision"),
    [
        (
            {"anneal_status": "PASS", "reasons": [], "promotion": {"candidate_ready": True}},
            0,
            "PROMOTE",
        ),
        (
            {
                "status": "hold",
                "results": [{"cycle": 1, "loss_flag": True}],
                "promotion": {"candidate_ready": True},
            },
            1,
            "HOLD",
        ),
        ({"results": [{"cycle": 2, "mode": "bc", "passed": False}]}, 2, "FAIL"),
        (
            {"bc_accuracy": 0.95, "bc_threshold": 0.9, "promotion": {"candidate_ready": True}},
            0,
            "PROMOTE",
        ),
        ({"bc_accuracy": 0.8, "bc_threshold": 0.9}, 2, "FAIL"),
    ],
)
def test_evaluate_command_decisions_and_exit_codes(townlet, tmp_path, payload, code, decision):
    (tmp_path / "payload.json").write_text(json.dumps(payload))
    result = townlet("promotion", "evaluate", "--input", "payload.json", "--json")
    assert result[0] == code
    assert json.loads(result[1])["decision"] == decision
    assert townlet("promotion", "evaluate", "--input", "payload.json", "--dry-run")[0] == 0


def test_evaluate_reads_stdin_and_prints_reasons(townlet):
    payload = json.dumps({"results": [{"cycle": 1, "mode": "ppo", "anneal_loss_flag": True}]})
    code, out, _ = townlet("promotion", "evaluate", stdin=payload)
    assert code == 1
    assert out == "HOLD: anneal status HOLD, candidate ready: no (loss_flag_cycle_1)\n"


def test_status_promote_and_rollback_commands(townlet, tmp_path):
    code, _, err = townlet("promotion", "status")
    assert code == 2 and "no promotion ledger yet" in err
    ledger = PromotionLedger(tmp_path / "runs" / "promotion.sqlite")
    code, _, err = townlet("promotion", "promote")
    assert code == 2 and "no candidate is ready to promote" in err
    ledger.record_evaluation("PASS", {"checkpoint": "x", "run_dir": "r"}, evidence=new())
    ledger.record_evaluation("PASS", {"checkpoint": "x", "run_dir": "r"}, evidence=new())
    code, out, _ = townlet("promotion", "status")
    assert code == 0 and "pass streak: 2 of 2 (candidate ready: yes)" in out
    code, out, _ = townlet("promotion", "promote", "--json")
    assert code == 0 and json.loads(out)["state"] == "promoted"
    code, _, err = townlet("promotion", "rollback")
    assert code == 2 and "is the first one" in err


@pytest.mark.parametrize(
    "command",
    [
        ["promotion"],
        ["promotion", "status"],
        ["promotion", "evaluate"],
        ["promotion", "promote"],
        ["promotion", "rollback"],
    ],
)
def test_promotion_commands_have_help(townlet, command):
    code, out, _ = townlet(*command, "--help")
    assert code == 0 and out.startswith(f"Usage: townlet {' '.join(command)}")
