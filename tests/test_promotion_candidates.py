"""Only the run that is the ready candidate reads as ready, and one lineage never moves another.

Each test fails on the first lineage ledger (7f1db54): a repeat or a policy-less PASS in a
ready lineage evaluated as PROMOTE (its promotion block carried the lineage's readiness), a
PASS without evidence counted every time, opening the ledger with one schedule's
`required_passes` rewrote every lineage, a busy lineage pushed the others' history out, a
migrated policy-less candidate stayed ready, and `status --json` changed shape.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from townlet_core.errors import ConfigError
from townlet_core.promotion import PromotionLedger, verdict


def policy(run: str) -> dict[str, str]:
    return {"checkpoint": f"{run}/checkpoint", "run_dir": run}


def block(snapshot: dict) -> dict:
    """The promotion block anneal writes into result.json."""
    return {k: v for k, v in snapshot.items() if k != "history"}


@pytest.fixture
def ledger(tmp_path):
    return PromotionLedger(tmp_path / "runs" / "promotion.sqlite")


@pytest.fixture
def townlet(townlet_in_tmp):
    """`townlet ARGS` in-process, from tmp_path (see tests/conftest.py)."""
    return townlet_in_tmp


def finished_run(tmp_path, name: str, promotion: dict) -> str:
    run = tmp_path / name
    run.mkdir()
    payload = {"anneal_status": "PASS", "reasons": [], "promotion": promotion}
    (run / "result.json").write_text(json.dumps(payload))
    return str(run)


def test_a_repeat_of_the_ready_candidate_evaluates_as_hold(ledger, townlet, tmp_path):
    ledger.record_evaluation("PASS", policy("one"), lineage="L", evidence="e1")
    two = ledger.record_evaluation("PASS", policy("two"), lineage="L", evidence="e2")
    three = ledger.record_evaluation("PASS", policy("three"), lineage="L", evidence="e2")
    assert three["candidate_ready"] and three["repeat_of"] == "two"  # the lineage is ready
    code, out, _ = townlet("promotion", "evaluate", finished_run(tmp_path, "three", block(three)))
    assert (code, out) == (
        1,
        "HOLD: anneal status PASS, candidate ready: no (repeat_not_counted, candidate_not_ready)\n",
    )
    code, _, _ = townlet("promotion", "evaluate", finished_run(tmp_path, "two", block(two)))
    assert code == 0  # the candidate itself still reads PROMOTE


def test_a_pass_without_a_policy_in_a_ready_lineage_is_not_ready(ledger):
    ledger.record_evaluation("PASS", policy("one"), lineage="L", evidence="e1")
    ledger.record_evaluation("PASS", policy("two"), lineage="L", evidence="e2")
    refused = ledger.record_evaluation(
        "PASS", {"run_dir": "three", "checkpoint": None}, lineage="L", evidence="e3"
    )
    assert refused["candidate_ready"] is True  # the lineage's, i.e. run two's
    payload = {"anneal_status": "PASS", "reasons": [], "promotion": block(refused)}
    assert verdict(payload) == ("PASS", False, ["no_checkpoint"])


def test_a_verdict_without_evidence_is_refused(ledger):
    with pytest.raises(ConfigError, match=r"needs evidence: pass evidence=evidence_fingerprint"):
        ledger.record_evaluation("PASS", policy("one"), evidence=None)
    assert ledger.lineages() == []


def test_one_lineages_required_passes_leaves_the_others_alone(tmp_path):
    path = tmp_path / "promotion.sqlite"
    two = PromotionLedger(path, required_passes=2)
    two.record_evaluation("PASS", policy("a1"), lineage="A", evidence="a1")
    assert two.record_evaluation("PASS", policy("a2"), lineage="A", evidence="a2")[
        "candidate_ready"
    ]
    five = PromotionLedger(path, required_passes=5)
    assert (
        five.record_evaluation("PASS", policy("b1"), lineage="B", evidence="b1")["required_passes"]
        == 5
    )
    a = five.snapshot("A")
    assert (a["required_passes"], a["state"], a["candidate_ready"]) == (2, "ready", True)


def test_a_repeat_names_the_earlier_run_even_without_its_run_dir(ledger):
    ledger.record_evaluation("PASS", {"checkpoint": "c"}, lineage="L", evidence="e")
    repeat = ledger.record_evaluation("PASS", {"checkpoint": "c"}, lineage="L", evidence="e")
    assert repeat["counted"] is False
    assert repeat["repeat_of"].startswith("the run counted at ")


def test_a_busy_lineage_keeps_the_others_history(tmp_path, monkeypatch):
    import townlet_core.promotion as module

    monkeypatch.setattr(module, "HISTORY_LIMIT", 5)
    ledger = PromotionLedger(tmp_path / "promotion.sqlite")
    ledger.record_evaluation("HOLD", lineage="quiet", evidence="q")
    for i in range(12):
        ledger.record_evaluation("HOLD", lineage="busy", evidence=str(i))
    assert [e["event"] for e in ledger.snapshot("quiet")["history"]] == ["evaluation"]
    assert len(ledger.snapshot("busy")["history"]) == 5


OLD_SCHEMA = """
CREATE TABLE ledger (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL,
    pass_streak INTEGER NOT NULL, required_passes INTEGER NOT NULL,
    evaluations INTEGER NOT NULL, last_result TEXT, last_evaluated_at TEXT,
    candidate_ready_at TEXT, candidate TEXT, current_release INTEGER);
CREATE TABLE releases (id INTEGER PRIMARY KEY AUTOINCREMENT, promoted_at TEXT NOT NULL,
    candidate TEXT NOT NULL, note TEXT);
CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
    event TEXT NOT NULL, detail TEXT NOT NULL);
"""


@pytest.mark.parametrize("candidate", [None, '{"run_dir": "r"}'])
def test_a_migrated_candidate_without_a_policy_is_not_ready(tmp_path, candidate):
    # the old ledger counted `record_evaluation("PASS")` with no candidate, or one without a
    # checkpoint, towards the streak
    path = tmp_path / "promotion.sqlite"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute(
        "INSERT INTO ledger VALUES (1, 'ready', 2, 2, 2, 'pass', NULL, 'x', ?, NULL)", (candidate,)
    )
    db.commit()
    db.close()
    snapshot = PromotionLedger(path).snapshot()
    assert (snapshot["state"], snapshot["pass_streak"], snapshot["candidate_ready"]) == (
        "monitoring",
        0,
        False,
    )
    assert snapshot["history"][0]["event"] == "migrated"


def test_promote_never_releases_a_candidate_without_a_checkpoint(ledger):
    ledger.record_evaluation("PASS", policy("one"), evidence="1")
    ledger.record_evaluation("PASS", policy("two"), evidence="2")
    db = sqlite3.connect(ledger.path)  # a hand-edited ledger
    db.execute("""UPDATE lineages SET candidate = '{"run_dir": "two"}'""")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="candidate has no checkpoint, so there is no policy"):
        ledger.promote()
    assert ledger.snapshot()["releases"] == 0


def test_status_with_several_lineages_prints_one_line_each(ledger, townlet):
    ledger.record_evaluation("PASS", policy("a1"), lineage="A", evidence="a1")
    ledger.record_evaluation("HOLD", lineage="B", evidence="b1")
    code, out, _ = townlet("promotion", "status")
    assert (code, out) == (
        0,
        "A: monitoring, pass streak 1 of 2, candidate ready: no, current release: -\n"
        "B: monitoring, pass streak 0 of 2, candidate ready: no, current release: -\n"
        "2 lineages in runs/promotion.sqlite; --lineage NAME shows one in full\n",
    )
    code, out, _ = townlet("promotion", "status", "--json")
    assert [s["lineage"] for s in json.loads(out)] == ["A", "B"]
    code, out, _ = townlet("promotion", "status", "--lineage", "B", "--json")
    assert json.loads(out)["lineage"] == "B"


def test_status_json_of_a_single_lineage_is_one_snapshot_as_before(ledger, townlet):
    ledger.record_evaluation("PASS", policy("a1"), evidence="a1")
    code, out, _ = townlet("promotion", "status", "--json")
    assert code == 0 and json.loads(out)["pass_streak"] == 1


def test_evaluate_lineage_looks_up_the_run_in_that_lineage_only(ledger, townlet, tmp_path):
    run = finished_run(tmp_path, "mine", {})
    ledger.record_evaluation("PASS", policy(run), lineage="A", evidence="1")
    ledger.record_evaluation("PASS", policy(run), lineage="A", evidence="2")
    ledger.record_evaluation("HOLD", lineage="B", evidence="3")
    assert townlet("promotion", "evaluate", run, "--lineage", "A")[0] == 0
    code, out, _ = townlet("promotion", "evaluate", run, "--lineage", "B")
    assert code == 1 and "no_promotion_block" in out
