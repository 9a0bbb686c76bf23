"""The ledger counts evidence, not repetitions (issue 9's promotion findings).

Each test fails on the single-row ledger that came before: it promoted a release without a
checkpoint, counted a byte-identical repeat as a second pass, shared one streak across every
schedule of a runs folder, and answered PROMOTE for a bare payload from whatever candidate
it held.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.test_promotion_candidates import OLD_SCHEMA
from townlet_core.errors import ConfigError
from townlet_core.promotion import PromotionLedger, evidence_fingerprint


def policy(run: str) -> dict[str, str]:
    return {"checkpoint": f"{run}/checkpoint", "run_dir": run}


@pytest.fixture
def ledger(tmp_path):
    return PromotionLedger(tmp_path / "promotion.sqlite")


@pytest.fixture
def townlet(townlet_in_tmp):
    """`townlet ARGS` in-process, from tmp_path (see tests/conftest.py)."""
    return townlet_in_tmp


def test_a_pass_without_a_checkpoint_is_refused_and_never_released(ledger):
    for run in ("a", "b"):
        snapshot = ledger.record_evaluation(
            "PASS", {"run_dir": run, "checkpoint": None}, evidence=run
        )
        assert (snapshot["counted"], snapshot["refused"]) == (False, "no_checkpoint")
    assert (snapshot["pass_streak"], snapshot["candidate_ready"]) == (0, False)
    with pytest.raises(ConfigError, match="no candidate is ready to promote"):
        ledger.promote()


def test_the_same_evidence_twice_counts_once(ledger):
    evidence = evidence_fingerprint(7, {"anneal": {"x": 1}}, {"townlet-core": "0.1.0"})
    first = ledger.record_evaluation("PASS", policy("one"), lineage="L", evidence=evidence)
    repeat = ledger.record_evaluation("PASS", policy("two"), lineage="L", evidence=evidence)
    assert first["counted"] and not repeat["counted"]
    assert repeat["repeat_of"] == "one"
    assert (repeat["pass_streak"], repeat["candidate_ready"]) == (1, False)
    assert repeat["candidate"] == policy("one")  # the candidate stays the counted run
    other = evidence_fingerprint(8, {"anneal": {"x": 1}}, {"townlet-core": "0.1.0"})
    ready = ledger.record_evaluation("PASS", policy("three"), lineage="L", evidence=other)
    assert (ready["pass_streak"], ready["candidate_ready"]) == (2, True)


def test_the_fingerprint_covers_seed_config_and_code():
    base = evidence_fingerprint(1, {"a": 1}, {"townlet-core": "0.1.0"})
    assert base == evidence_fingerprint(1, {"a": 1}, {"townlet-core": "0.1.0"})
    assert base != evidence_fingerprint(2, {"a": 1}, {"townlet-core": "0.1.0"})
    assert base != evidence_fingerprint(1, {"a": 2}, {"townlet-core": "0.1.0"})
    assert base != evidence_fingerprint(1, {"a": 1}, {"townlet-core": "0.2.0"})


def test_streaks_are_kept_per_lineage(ledger):
    ledger.record_evaluation("PASS", policy("a1"), lineage="A", evidence="1")
    other = ledger.record_evaluation("PASS", policy("b1"), lineage="B", evidence="2")
    assert other["pass_streak"] == 1
    ledger.record_evaluation("HOLD", lineage="B", evidence="3")
    assert ledger.snapshot("A")["pass_streak"] == 1  # B's HOLD did not reset A
    assert ledger.lineages() == ["A", "B"]
    with pytest.raises(ConfigError, match=r"several lineages \(A, B\); pass --lineage NAME"):
        ledger.snapshot()


def test_an_old_single_row_ledger_is_migrated_in_place(tmp_path):
    path = tmp_path / "promotion.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        OLD_SCHEMA
        + """
        INSERT INTO releases (promoted_at, candidate, note)
            VALUES ('2026-11-30', '{"checkpoint": "old/checkpoint"}', 'first');
        INSERT INTO ledger VALUES (1, 'ready', 2, 2, 5, 'pass', NULL, NULL,
            '{"checkpoint": "new/checkpoint"}', 1);
        """
    )
    db.commit()
    db.close()
    snapshot = PromotionLedger(path).snapshot()
    assert (snapshot["lineage"], snapshot["state"], snapshot["pass_streak"]) == (
        "default",
        "ready",
        2,
    )
    assert snapshot["current_release"]["candidate"] == {"checkpoint": "old/checkpoint"}
    promoted = PromotionLedger(path).promote()
    assert promoted["current_release"]["candidate"] == {"checkpoint": "new/checkpoint"}


def test_evaluate_decides_from_the_payload_not_from_another_candidate(townlet, tmp_path):
    book = PromotionLedger(tmp_path / "runs" / "promotion.sqlite")
    book.record_evaluation("PASS", policy("other-run"), evidence="1")
    assert book.record_evaluation("PASS", policy("other-run-2"), evidence="2")["candidate_ready"]
    bare = {"anneal_status": "PASS", "reasons": []}  # no promotion block
    (tmp_path / "payload.json").write_text(json.dumps(bare))
    code, out, _ = townlet("promotion", "evaluate", "--input", "payload.json", "--json")
    assert code == 1
    assert json.loads(out)["decision"] == "HOLD"
    assert json.loads(out)["reasons"] == ["no_promotion_block", "candidate_not_ready"]


def test_evaluate_of_a_run_directory_asks_the_ledger_about_that_run_only(townlet, tmp_path):
    book = PromotionLedger(tmp_path / "runs" / "promotion.sqlite")
    run = tmp_path / "mine"
    run.mkdir()
    (run / "result.json").write_text(json.dumps({"anneal_status": "PASS", "reasons": []}))
    book.record_evaluation("PASS", policy(str(run)), evidence="1")
    book.record_evaluation("PASS", policy(str(run)), evidence="2")
    code, out, _ = townlet("promotion", "evaluate", str(run), "--json")
    assert (code, json.loads(out)["decision"]) == (0, "PROMOTE")
