"""The promotion ledger: which trained policy is the candidate, and is it ready?

A SQLite file (standard library) shared by every run and process of a project. Every update
is one `BEGIN IMMEDIATE` transaction, so two runs finishing together lose no update and a
crash never leaves it half-written. Nothing read from it runs code: rows hold JSON text.

It counts **evidence, not repetitions**, per **lineage** (a schedule; anneal names it by
label and a digest of the schedule, so another schedule in the same runs folder keeps a
streak of its own). Per lineage:

| verdict                                   | streak      | counted | state afterwards          |
| ----------------------------------------- | ----------- | ------- | ------------------------- |
| PASS, new evidence, with a checkpoint     | + 1         | yes     | ready once streak >= N    |
| PASS whose evidence was already counted   | unchanged   | no      | unchanged (`repeat_of`)   |
| PASS without a checkpoint                 | unchanged   | no      | unchanged (`refused`)     |
| HOLD or FAIL                              | reset to 0  | yes     | monitoring                |

`evidence` (required) is a fingerprint of the run's seed, config and code versions
(`evidence_fingerprint`): the same command with the same seed twice is one piece of
evidence. Once counted, a fingerprint is remembered by its lineage for good: a repeat stays
a repeat after a HOLD, a promote or a rollback. `required_passes` (N) is the lineage's own.

    monitoring --(N-th counted PASS)--> ready --promote--> promoted
        ^                                 |                   |
        +------ HOLD or FAIL -------------+-------------------+
        +------ rollback (from promoted, to the previous release)

`promote` makes the ready candidate the lineage's current release (state promoted, streak
restarts) and never releases a candidate without a checkpoint; `rollback` returns to the
previous release (state monitoring). `verdict` reads a payload as ready only when its own
run is the ready candidate: a lineage that is ready because of another run does not make a
repeat, or a PASS without a policy, ready.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from townlet_core.errors import ConfigError, DataError

LEDGER_FILE = "promotion.sqlite"
HISTORY_LIMIT = 200
DEFAULT_REQUIRED_PASSES = 2
#: How long a writer waits for another process's transaction before giving up.
LOCK_TIMEOUT_S = 60.0
#: The lineage of verdicts recorded without one, and of a migrated single-lineage ledger.
DEFAULT_LINEAGE = "default"

Decision = Literal["PROMOTE", "HOLD", "FAIL"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lineages (
    name TEXT PRIMARY KEY,
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
CREATE TABLE IF NOT EXISTS evidence (
    lineage TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    run_dir TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (lineage, fingerprint)
);
CREATE TABLE IF NOT EXISTS releases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    promoted_at TEXT NOT NULL,
    candidate TEXT NOT NULL,
    note TEXT,
    lineage TEXT NOT NULL DEFAULT 'default'
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL,
    lineage TEXT NOT NULL DEFAULT 'default'
);
"""


class LineageRow(NamedTuple):
    """One row of the `lineages` table (without its name), as `_row` reads it."""

    state: str
    pass_streak: int
    required_passes: int
    evaluations: int
    last_result: str | None
    last_evaluated_at: str | None
    candidate_ready_at: str | None
    candidate: str | None  # JSON
    current_release: int | None


_LINEAGE_COLUMNS = ", ".join(LineageRow._fields)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def evidence_fingerprint(seed: int, config: Mapping[str, Any], versions: Mapping[str, Any]) -> str:
    """What makes a run a repeat of another: its seed, its config and its code versions."""
    canonical = json.dumps(
        {"seed": seed, "config": config, "versions": versions}, sort_keys=True, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class PromotionLedger:
    """Open (creating or migrating if needed) the ledger at `path`.

    `required_passes` sets the streak needed by the lineages this instance records a verdict
    for (when None, a lineage keeps what it has; a new one needs `DEFAULT_REQUIRED_PASSES`).
    It never changes another lineage: one schedule's setting is not another's."""

    def __init__(self, path: Path, *, required_passes: int | None = None) -> None:
        if required_passes is not None and required_passes < 1:
            raise ConfigError(f"required_passes must be at least 1, not {required_passes}")
        self.path = path
        self.required_passes = required_passes
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as db:
            _migrate_single_row_ledger(db)

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
            db.executescript(_SCHEMA)
        except sqlite3.OperationalError as exc:
            raise self._failure(exc) from exc
        except sqlite3.DatabaseError as exc:
            raise DataError(
                f"{self.path}: not a readable promotion ledger ({exc}); move it aside to start a "
                "new one"
            ) from exc
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction: all of it is recorded or none of it is."""
        db = self._connect()
        try:
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back already (a full disk)
                    with suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise self._failure(exc) from exc
        finally:
            db.close()

    def _failure(self, exc: sqlite3.OperationalError) -> DataError:
        """SQLite's operational errors in words, each with what to do; nothing was changed."""
        text, path = str(exc).lower(), self.path
        if "full" in text:
            what = f"no space left on device at {path}; free space and record it again"
        elif "locked" in text or "busy" in text:
            what = (
                f"{path} stayed locked by another process for {LOCK_TIMEOUT_S:.0f} s; "
                "try again once it has finished"
            )
        elif "readonly" in text or "unable to open" in text:
            what = f"{path} cannot be written ({exc}); fix its permissions or location"
        else:
            what = f"{path}: the ledger failed ({exc})"
        return DataError(f"{what}; the ledger is unchanged (it records all or nothing)")

    @staticmethod
    def check_location(path: Path) -> None:
        """Refuse, without writing anything, a ledger path that cannot work: a folder, a file
        that is not a ledger, or a place that cannot be written. Run before training."""
        from townlet_core.runtime.run_dir import check_output_location

        if path.is_dir():
            raise ConfigError(f"{path}: the promotion ledger must be a file path, not a folder")
        check_output_location(path.parent, "the promotion ledger's folder")
        if not path.exists():
            return
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                db.execute("SELECT name FROM sqlite_master").fetchall()
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            raise DataError(
                f"{path}: not a readable promotion ledger ({exc}); move it aside to start a new one"
            ) from exc

    @staticmethod
    def _event(db: sqlite3.Connection, lineage: str, event: str, detail: Mapping[str, Any]) -> None:
        db.execute(
            "INSERT INTO history (at, event, detail, lineage) VALUES (?, ?, ?, ?)",
            (_now(), event, json.dumps(dict(detail), default=str), lineage),
        )
        db.execute(  # each lineage keeps its own last HISTORY_LIMIT events
            "DELETE FROM history WHERE lineage = ? AND id <= "
            "(SELECT MAX(id) FROM history WHERE lineage = ?) - ?",
            (lineage, lineage, HISTORY_LIMIT),
        )

    def _row(self, db: sqlite3.Connection, lineage: str, *, create: bool = False) -> LineageRow:
        """The lineage's row; a new lineage is created when `create`, and an empty ledger
        reads as one fresh lineage (monitoring, no streak)."""
        row = db.execute(
            f"SELECT {_LINEAGE_COLUMNS} FROM lineages WHERE name = ?", (lineage,)
        ).fetchone()
        if row is not None:
            return LineageRow(*row)
        required = self.required_passes or DEFAULT_REQUIRED_PASSES
        if create:
            db.execute(
                "INSERT INTO lineages VALUES "
                "(?, 'monitoring', 0, ?, 0, NULL, NULL, NULL, NULL, NULL)",
                (lineage, required),
            )
            return self._row(db, lineage)
        if db.execute("SELECT COUNT(*) FROM lineages").fetchone()[0] == 0:
            return LineageRow("monitoring", 0, required, 0, None, None, None, None, None)
        raise ConfigError(f"{self.path}: no lineage {lineage!r}; {self._known(db)}")

    @staticmethod
    def _known(db: sqlite3.Connection) -> str:
        names = [r[0] for r in db.execute("SELECT name FROM lineages ORDER BY name")]
        return f"lineages: {', '.join(names)}" if names else "no verdict recorded yet"

    def _choose(self, db: sqlite3.Connection, lineage: str | None) -> str:
        """`lineage`, or the only one there is."""
        if lineage is not None:
            return lineage
        names = [r[0] for r in db.execute("SELECT name FROM lineages ORDER BY name")]
        if len(names) == 1:
            return str(names[0])
        if not names:
            return DEFAULT_LINEAGE
        raise ConfigError(
            f"{self.path} holds several lineages ({', '.join(names)}); pass --lineage NAME"
        )

    # ------------------------------------------------------------------ updates

    def record_evaluation(
        self,
        status: str,
        candidate: Mapping[str, Any] | None = None,
        *,
        lineage: str = DEFAULT_LINEAGE,
        evidence: str,
    ) -> dict[str, Any]:
        """Record one PASS/HOLD/FAIL verdict of `lineage`; return its snapshot, with
        `counted` (did it move the streak), `repeat_of` (the run whose evidence it repeats)
        and `refused` (why a PASS was not taken as a candidate).

        `evidence` is required: without it a PASS could not be told from a repetition. Compute
        it with `evidence_fingerprint`. It is remembered per lineage for good once counted,
        so a repeat stays a repeat after a HOLD, a promote or a rollback."""
        status = status.upper()
        if status not in ("PASS", "HOLD", "FAIL"):
            raise ConfigError(f"promotion status must be PASS, HOLD or FAIL, not {status!r}")
        if not isinstance(evidence, str) or not evidence:
            raise ConfigError(
                "record_evaluation needs evidence: pass evidence=evidence_fingerprint(seed, "
                "config, versions) so a repeated run is not counted twice"
            )
        candidate = dict(candidate or {})
        with self._transaction() as db:
            row = self._row(db, lineage, create=True)
            state, streak, required = row.state, row.pass_streak, row.required_passes
            ready_at, kept = row.candidate_ready_at, row.candidate
            if self.required_passes is not None:
                required = self.required_passes
            now = _now()
            repeat_of: str | None = None
            refused: str | None = None
            if status == "PASS":
                seen = db.execute(
                    "SELECT run_dir, at FROM evidence WHERE lineage = ? AND fingerprint = ?",
                    (lineage, evidence),
                ).fetchone()
                if seen is not None:
                    repeat_of = str(seen[0]) if seen[0] else f"the run counted at {seen[1]}"
            if status == "PASS" and repeat_of is None and not candidate.get("checkpoint"):
                refused = "no_checkpoint"
            counted = repeat_of is None and refused is None
            if counted and status == "PASS":
                streak += 1
                kept = json.dumps(candidate)
                db.execute(
                    "INSERT INTO evidence VALUES (?, ?, ?, ?)",
                    (lineage, evidence, candidate.get("run_dir"), now),
                )
            elif counted:
                streak, kept = 0, None
                if state == "promoted":
                    state = "monitoring"
            ready = streak >= required and kept is not None
            if ready and kept is not None and state != "ready":
                state, ready_at = "ready", now
                self._event(
                    db, lineage, "candidate_ready", {"pass_streak": streak, **json.loads(kept)}
                )
            elif not ready and state == "ready":
                state, ready_at = "monitoring", None
            db.execute(
                "UPDATE lineages SET state = ?, pass_streak = ?, required_passes = ?, "
                "evaluations = ?, last_result = ?, last_evaluated_at = ?, "
                "candidate_ready_at = ?, candidate = ? WHERE name = ?",
                (
                    state,
                    streak,
                    required,
                    row.evaluations + 1,
                    status.lower(),
                    now,
                    ready_at,
                    kept,
                    lineage,
                ),
            )
            self._event(
                db,
                lineage,
                "evaluation",
                {"status": status, "pass_streak": streak, "counted": counted}
                | ({"repeat_of": repeat_of} if repeat_of else {})
                | ({"refused": refused} if refused else {}),
            )
        return {
            **self.snapshot(lineage),
            "counted": counted,
            "repeat_of": repeat_of,
            "refused": refused,
        }

    def promote(self, note: str | None = None, *, lineage: str | None = None) -> dict[str, Any]:
        """Make the lineage's ready candidate its current release (and start a new streak)."""
        with self._transaction() as db:
            lineage = self._choose(db, lineage)
            row = self._row(db, lineage)
            state, streak, required, candidate = (
                row.state,
                row.pass_streak,
                row.required_passes,
                row.candidate,
            )
            if state != "ready" or candidate is None:
                raise ConfigError(
                    f"no candidate is ready to promote (state {state}, pass streak {streak} of "
                    f"{required}); run anneal until {required} consecutive PASS"
                )
            if not json.loads(candidate).get("checkpoint"):  # only a hand-edited ledger
                raise ConfigError(
                    f"lineage {lineage}'s candidate has no checkpoint, so there is no policy to "
                    f"release; run anneal until {required} consecutive PASS with a checkpoint"
                )
            cursor = db.execute(
                "INSERT INTO releases (promoted_at, candidate, note, lineage) VALUES (?, ?, ?, ?)",
                (_now(), candidate, note, lineage),
            )
            db.execute(
                "UPDATE lineages SET state = 'promoted', pass_streak = 0, candidate = NULL, "
                "candidate_ready_at = NULL, current_release = ? WHERE name = ?",
                (cursor.lastrowid, lineage),
            )
            self._event(
                db, lineage, "promoted", {"release": cursor.lastrowid, **json.loads(candidate)}
            )
        return self.snapshot(lineage)

    def rollback(
        self, to_release: int | None = None, *, lineage: str | None = None
    ) -> dict[str, Any]:
        """Return the lineage to its previous release (or `to_release`)."""
        with self._transaction() as db:
            lineage = self._choose(db, lineage)
            current = self._row(db, lineage).current_release
            if current is None:
                raise ConfigError("nothing to roll back: no release has been promoted yet")
            if to_release is None:
                row = db.execute(
                    "SELECT MAX(id) FROM releases WHERE id < ? AND lineage = ?", (current, lineage)
                ).fetchone()
                to_release = row[0]
                if to_release is None:
                    raise ConfigError(
                        f"release {current} is the first one; there is no earlier release"
                    )
            elif (
                db.execute(
                    "SELECT 1 FROM releases WHERE id = ? AND lineage = ?", (to_release, lineage)
                ).fetchone()
                is None
            ):
                raise ConfigError(f"no release {to_release} of lineage {lineage} in {self.path}")
            db.execute(
                "UPDATE lineages SET current_release = ?, state = 'monitoring', pass_streak = 0 "
                "WHERE name = ?",
                (to_release, lineage),
            )
            self._event(db, lineage, "rollback", {"from": current, "to": to_release})
        return self.snapshot(lineage)

    # ------------------------------------------------------------------ reading

    def lineages(self) -> list[str]:
        db = self._connect()
        try:
            return [str(r[0]) for r in db.execute("SELECT name FROM lineages ORDER BY name")]
        finally:
            db.close()

    def snapshot(self, lineage: str | None = None) -> dict[str, Any]:
        """One lineage's state (the only one when `lineage` is None and there is one)."""
        db = self._connect()
        try:
            lineage = self._choose(db, lineage)
            row = self._row(db, lineage)
            releases = db.execute(
                "SELECT id, promoted_at, candidate, note FROM releases WHERE lineage = ? "
                "ORDER BY id",
                (lineage,),
            ).fetchall()
            history = db.execute(
                "SELECT at, event, detail FROM history WHERE lineage = ? ORDER BY id DESC LIMIT 20",
                (lineage,),
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
            "lineage": lineage,
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

    def find_candidate(self, run_dir: str, *, lineage: str | None = None) -> dict[str, Any] | None:
        """The snapshot of the lineage (any, or `lineage`) whose current candidate is
        `run_dir`'s, if any."""
        names = self.lineages()
        for name in names if lineage is None else [n for n in names if n == lineage]:
            snapshot = self.snapshot(name)
            if (snapshot["candidate"] or {}).get("run_dir") == run_dir:
                return snapshot
        return None


def _migrate_single_row_ledger(db: sqlite3.Connection) -> None:
    """A ledger written before lineages (one `ledger` row) becomes lineage 'default'."""
    old = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='ledger'").fetchone()
    if old is None:
        return
    columns = {r[1] for r in db.execute("PRAGMA table_info(releases)")}
    if "lineage" not in columns:
        db.execute("ALTER TABLE releases ADD COLUMN lineage TEXT NOT NULL DEFAULT 'default'")
    if "lineage" not in {r[1] for r in db.execute("PRAGMA table_info(history)")}:
        db.execute("ALTER TABLE history ADD COLUMN lineage TEXT NOT NULL DEFAULT 'default'")
    db.execute(
        f"INSERT OR IGNORE INTO lineages SELECT ?, {_LINEAGE_COLUMNS} FROM ledger WHERE id = 1",
        (DEFAULT_LINEAGE,),
    )
    db.execute("DROP TABLE ledger")
    # The old ledger counted a PASS without a policy; such a candidate is not carried over.
    row = db.execute(
        "SELECT candidate, pass_streak FROM lineages WHERE name = ?", (DEFAULT_LINEAGE,)
    ).fetchone()
    if row is not None and (row[0] is None or not json.loads(row[0]).get("checkpoint")):
        db.execute(
            "UPDATE lineages SET candidate = NULL, pass_streak = 0, candidate_ready_at = NULL, "
            "state = CASE WHEN state = 'ready' THEN 'monitoring' ELSE state END WHERE name = ?",
            (DEFAULT_LINEAGE,),
        )
        if row[1]:
            PromotionLedger._event(
                db,
                DEFAULT_LINEAGE,
                "migrated",
                {"pass_streak": 0, "dropped": "a candidate without a checkpoint"},
            )


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
    ready, not_counted = _readiness(payload.get("promotion"))
    if "anneal_status" in payload:
        reasons = list(payload.get("reasons") or [])
        return str(payload["anneal_status"]), ready, [*reasons, *not_counted]
    if isinstance(payload.get("results"), list):
        status, reasons = _status_from_stages(payload["results"])
        given = payload.get("status")
        return (str(given).upper() if given else status), ready, [*reasons, *not_counted]
    if "bc_accuracy" in payload or "bc_passed" in payload:
        passed = payload.get("bc_passed")
        if passed is None:
            passed = float(payload["bc_accuracy"]) >= float(payload.get("bc_threshold", 0.9))
        reasons = [] if passed else ["bc_below_threshold"]
        return ("PASS" if passed else "FAIL"), ready, [*reasons, *not_counted]
    raise DataError(
        "unrecognised promotion payload: expected an anneal result (anneal_status), a payload "
        "with a 'results' list, or one with bc_accuracy"
    )


def _readiness(promotion: Any) -> tuple[bool | None, list[str]]:
    """Is the payload's own run the ready candidate? A lineage can be ready while the run
    itself was not counted (a repeat of the candidate, or a PASS without a policy): then the
    readiness is another run's, and this payload is not ready."""
    if not isinstance(promotion, Mapping):
        return None, []
    ready = promotion.get("candidate_ready")
    if ready is None:
        return None, []
    if promotion.get("refused"):
        return False, [str(promotion["refused"])]
    if promotion.get("repeat_of"):
        return False, ["repeat_not_counted"]
    return bool(ready), []


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
