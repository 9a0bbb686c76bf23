"""The promotion ledger: which trained policy is the candidate, and is it ready?

A SQLite file (standard library) shared by every run and process of a project: each
anneal run records its verdict in one transaction (`BEGIN IMMEDIATE`), so two runs
finishing together lose no update and a crash never leaves it half-written. The pass streak
grows on PASS and resets on HOLD or FAIL; at `required_passes` the candidate is ready;
`promote` makes it the current release and `rollback` returns to the previous one.

States: monitoring -> ready (streak reached) -> promoted (after `promote`); a HOLD or FAIL
while ready returns to monitoring.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from townlet_core.errors import ConfigError, DataError
from townlet_core.runtime.run_dir import utc_now

LEDGER_FILE = "promotion.sqlite"
HISTORY_LIMIT = 200
DEFAULT_REQUIRED_PASSES = 2

Decision = Literal["PROMOTE", "HOLD", "FAIL"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL,
    pass_streak INTEGER NOT NULL,
    required_passes INTEGER NOT NULL,
    evaluations INTEGER NOT NULL,
    last_result TEXT,
    last_evaluated_at TEXT,
    candidate_ready_at TEXT,
    candidate TEXT,
    current_release INTEGER
);
CREATE TABLE IF NOT EXISTS releases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    promoted_at TEXT NOT NULL,
    candidate TEXT NOT NULL,
    note TEXT
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


class PromotionLedger:
    """Open (creating if needed) the ledger at `path`."""

    def __init__(self, path: Path, *, required_passes: int | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as db:
            row = db.execute("SELECT required_passes FROM ledger WHERE id = 1").fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO ledger VALUES "
                    "(1, 'monitoring', 0, ?, 0, NULL, NULL, NULL, NULL, NULL)",
                    (required_passes or DEFAULT_REQUIRED_PASSES,),
                )
            elif required_passes is not None and row[0] != required_passes:
                db.execute("UPDATE ledger SET required_passes = ? WHERE id = 1", (required_passes,))

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DataError(
                f"{self.path}: not a readable promotion ledger ({exc}); move it aside to start a "
                "new one"
            ) from exc
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    @staticmethod
    def _event(db: sqlite3.Connection, event: str, detail: Mapping[str, Any]) -> None:
        db.execute(
            "INSERT INTO history (at, event, detail) VALUES (?, ?, ?)",
            (utc_now().isoformat(), event, json.dumps(dict(detail), default=str)),
        )
        db.execute(
            "DELETE FROM history WHERE id <= (SELECT MAX(id) FROM history) - ?", (HISTORY_LIMIT,)
        )

    # ------------------------------------------------------------------ updates

    def record_evaluation(
        self, status: str, candidate: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Record one PASS/HOLD/FAIL verdict; return the ledger's snapshot afterwards."""
        status = status.upper()
        if status not in ("PASS", "HOLD", "FAIL"):
            raise ConfigError(f"promotion status must be PASS, HOLD or FAIL, not {status!r}")
        with self._transaction() as db:
            state, streak, required, evaluations = db.execute(
                "SELECT state, pass_streak, required_passes, evaluations FROM ledger WHERE id = 1"
            ).fetchone()
            now = utc_now().isoformat()
            streak = streak + 1 if status == "PASS" else 0
            ready = streak >= required
            if ready and state != "ready":
                state, ready_at = "ready", now
                self._event(db, "candidate_ready", {"pass_streak": streak, **(candidate or {})})
            elif not ready and state == "ready":
                state, ready_at = "monitoring", None
            else:
                ready_at = db.execute("SELECT candidate_ready_at FROM ledger").fetchone()[0]
                if state == "promoted" and status != "PASS":
                    state = "monitoring"
            db.execute(
                "UPDATE ledger SET state = ?, pass_streak = ?, evaluations = ?, last_result = ?, "
                "last_evaluated_at = ?, candidate_ready_at = ?, candidate = ? WHERE id = 1",
                (
                    state,
                    streak,
                    evaluations + 1,
                    status.lower(),
                    now,
                    ready_at,
                    json.dumps(dict(candidate)) if status == "PASS" and candidate else None,
                ),
            )
            self._event(db, "evaluation", {"status": status, "pass_streak": streak})
        return self.snapshot()

    def promote(self, note: str | None = None) -> dict[str, Any]:
        """Make the ready candidate the current release (and start a new streak)."""
        with self._transaction() as db:
            state, streak, required, candidate = db.execute(
                "SELECT state, pass_streak, required_passes, candidate FROM ledger WHERE id = 1"
            ).fetchone()
            if state != "ready" or candidate is None:
                raise ConfigError(
                    f"no candidate is ready to promote (state {state}, pass streak {streak} of "
                    f"{required}); run anneal until {required} consecutive PASS"
                )
            cursor = db.execute(
                "INSERT INTO releases (promoted_at, candidate, note) VALUES (?, ?, ?)",
                (utc_now().isoformat(), candidate, note),
            )
            db.execute(
                "UPDATE ledger SET state = 'promoted', pass_streak = 0, candidate = NULL, "
                "candidate_ready_at = NULL, current_release = ? WHERE id = 1",
                (cursor.lastrowid,),
            )
            self._event(db, "promoted", {"release": cursor.lastrowid, **json.loads(candidate)})
        return self.snapshot()

    def rollback(self, to_release: int | None = None) -> dict[str, Any]:
        """Return to the previous release (or `to_release`)."""
        with self._transaction() as db:
            current = db.execute("SELECT current_release FROM ledger WHERE id = 1").fetchone()[0]
            if current is None:
                raise ConfigError("nothing to roll back: no release has been promoted yet")
            if to_release is None:
                row = db.execute("SELECT MAX(id) FROM releases WHERE id < ?", (current,)).fetchone()
                to_release = row[0]
                if to_release is None:
                    raise ConfigError(
                        f"release {current} is the first one; there is no earlier release"
                    )
            elif (
                db.execute("SELECT 1 FROM releases WHERE id = ?", (to_release,)).fetchone() is None
            ):
                raise ConfigError(f"no release {to_release} in {self.path}")
            db.execute(
                "UPDATE ledger SET current_release = ?, state = 'monitoring', pass_streak = 0 "
                "WHERE id = 1",
                (to_release,),
            )
            self._event(db, "rollback", {"from": current, "to": to_release})
        return self.snapshot()

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> dict[str, Any]:
        db = self._connect()
        try:
            row = db.execute(
                "SELECT state, pass_streak, required_passes, evaluations, last_result, "
                "last_evaluated_at, candidate_ready_at, candidate, current_release FROM ledger"
            ).fetchone()
            releases = db.execute(
                "SELECT id, promoted_at, candidate, note FROM releases ORDER BY id"
            ).fetchall()
            history = db.execute(
                "SELECT at, event, detail FROM history ORDER BY id DESC LIMIT 20"
            ).fetchall()
        finally:
            db.close()
        state, streak, required, evaluations, last, evaluated_at, ready_at, candidate, current = row
        by_id = {
            r[0]: {"id": r[0], "promoted_at": r[1], "candidate": json.loads(r[2]), "note": r[3]}
            for r in releases
        }
        return {
            "ledger": str(self.path),
            "state": state,
            "pass_streak": streak,
            "required_passes": required,
            "candidate_ready": streak >= required and state == "ready",
            "candidate_ready_at": ready_at,
            "evaluations": evaluations,
            "last_result": last,
            "last_evaluated_at": evaluated_at,
            "candidate": json.loads(candidate) if candidate else None,
            "current_release": by_id.get(current),
            "releases": len(by_id),
            "history": [
                {"at": at, "event": event, **json.loads(detail)} for at, event, detail in history
            ],
        }


def decide(status: str, candidate_ready: bool, reasons: list[str]) -> tuple[Decision, list[str]]:
    """PROMOTE / HOLD / FAIL from an anneal verdict and the candidate's readiness."""
    status = status.upper()
    if status == "PASS":
        if candidate_ready:
            return "PROMOTE", reasons
        return "HOLD", [*reasons, "candidate_not_ready"]
    if status == "HOLD":
        return "HOLD", reasons
    return "FAIL", reasons


def verdict(payload: Mapping[str, Any]) -> tuple[str, bool | None, list[str]]:
    """(status, candidate_ready or None if the payload does not say, reasons) of a payload.

    Reads an `AnnealSummaryDTO` (result.json of an anneal run), the original Townlet tools'
    full payload (`{status?, results: [stage, ...], promotion: {...}}`) or their simple one
    (`{bc_accuracy, bc_threshold, bc_passed?}`).
    """
    promotion = payload.get("promotion")
    ready = promotion.get("candidate_ready") if isinstance(promotion, Mapping) else None
    if "anneal_status" in payload:
        return str(payload["anneal_status"]), ready, list(payload.get("reasons") or [])
    if isinstance(payload.get("results"), list):
        status, reasons = _status_from_stages(payload["results"])
        given = payload.get("status")
        return (str(given).upper() if given else status), ready, reasons
    if "bc_accuracy" in payload or "bc_passed" in payload:
        passed = payload.get("bc_passed")
        if passed is None:
            passed = float(payload["bc_accuracy"]) >= float(payload.get("bc_threshold", 0.9))
        return ("PASS" if passed else "FAIL"), ready, ([] if passed else ["bc_below_threshold"])
    raise DataError(
        "unrecognised promotion payload: expected an anneal result (anneal_status), a payload "
        "with a 'results' list, or one with bc_accuracy"
    )


def _status_from_stages(stages: list[Any]) -> tuple[str, list[str]]:
    """FAIL if a BC stage did not pass, else HOLD if a guardrail fired, else PASS."""
    status, reasons = "PASS", list[str]()
    for stage in stages:
        if not isinstance(stage, Mapping):
            continue
        cycle = stage.get("cycle", 0)
        cycle = int(cycle) if isinstance(cycle, (int, float)) else cycle
        if stage.get("passed") is False:
            return "FAIL", [*reasons, f"bc_stage_failed_cycle_{cycle}"]
        flags = dict(stage.get("flags") or {})
        for name in ("loss", "queue", "intensity"):
            if stage.get(f"anneal_{name}_flag") or stage.get(f"{name}_flag"):
                flags[name] = True
        for name, fired in flags.items():
            if fired:
                status = "HOLD"
                reasons.append(f"{name}_flag_cycle_{cycle}")
    return status, reasons


EXIT_CODES: dict[Decision, int] = {"PROMOTE": 0, "HOLD": 1, "FAIL": 2}
