"""The promotion ledger under faults (issue 10, items 8 and 9): a full disk and a ledger held
by another process are named as such and change nothing; a ledger path that cannot work is
refused before anything trains."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from townlet_core import promotion
from townlet_core.errors import ConfigError, DataError, RunDirectoryError
from townlet_core.promotion import PromotionLedger


def _record(ledger: PromotionLedger, status: str = "PASS", run: str = "a", size: int = 10) -> dict:
    candidate = {"run_dir": run, "checkpoint": f"{run}/checkpoint", "notes": "x" * size}
    return ledger.record_evaluation(status, candidate, lineage="L", evidence=run)


def test_a_full_disk_is_named_and_the_ledger_is_unchanged(tmp_path, monkeypatch):
    ledger = PromotionLedger(tmp_path / "ledger.sqlite")
    _record(ledger, run="a")
    before = ledger.snapshot(lineage="L")
    connect = PromotionLedger._connect

    def full(self: PromotionLedger) -> sqlite3.Connection:
        db = connect(self)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk is full"
        return db

    monkeypatch.setattr(PromotionLedger, "_connect", full)
    with pytest.raises(DataError) as caught:
        _record(ledger, run="b", size=200_000)
    message = str(caught.value)
    assert f"no space left on device at {tmp_path / 'ledger.sqlite'}" in message
    assert "no transaction is active" not in message
    monkeypatch.undo()
    assert ledger.snapshot(lineage="L") == before


def test_a_ledger_held_by_another_process_is_named_not_a_raw_sqlite_error(tmp_path, monkeypatch):
    path = tmp_path / "ledger.sqlite"
    ledger = PromotionLedger(path)
    monkeypatch.setattr(promotion, "LOCK_TIMEOUT_S", 0.1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DataError, match="stayed locked by another process"):
            _record(ledger)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_ledger_locations_that_cannot_work_are_refused_without_writing(tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(ConfigError, match="must be a file path, not a folder"):
        PromotionLedger.check_location(folder)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_text("not a database" * 100)
    with pytest.raises(DataError, match="not a readable promotion ledger"):
        PromotionLedger.check_location(garbage)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file"):
        PromotionLedger.check_location(tmp_path / "file" / "ledger.sqlite")
    before = sorted(p.name for p in tmp_path.iterdir())
    PromotionLedger.check_location(tmp_path / "new" / "ledger.sqlite")  # fine: created later
    PromotionLedger(tmp_path / "ok.sqlite")
    PromotionLedger.check_location(tmp_path / "ok.sqlite")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "ok.sqlite"])


def test_an_anneal_run_with_a_folder_as_its_ledger_stops_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found only after the whole run trained, before; now refused before the run exists."""
    from townlet_core import Orchestrator

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ledger-dir").mkdir()
    with pytest.raises(ConfigError, match="must be a file path, not a folder"):
        Orchestrator(quiet=True, progress=False).run(
            "anneal",
            config={"anneal": {"ledger": str(tmp_path / "ledger-dir")}},
            run_dir=tmp_path / "run",
        )
    assert not (tmp_path / "run").exists()
