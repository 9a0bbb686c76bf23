"""`townlet promotion status|evaluate|promote|rollback`: the candidate and the releases."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

DEFAULT_LEDGER = Path("runs") / "promotion.sqlite"

ledger_option = click.option(
    "--ledger",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_LEDGER,
    show_default=True,
    help="The promotion ledger (anneal writes RUNS_ROOT/promotion.sqlite).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
lineage_option = click.option(
    "--lineage",
    help="The schedule's lineage (see `townlet promotion status`); needed when the ledger "
    "holds several.",
)


@click.group()
def promotion() -> None:
    """The promotion ledger: pass streak, candidate, releases."""


def _print_snapshot(snapshot: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(snapshot, indent=2))
        return
    ready = "yes" if snapshot["candidate_ready"] else "no"
    click.echo(f"lineage: {snapshot['lineage']}")
    click.echo(f"state: {snapshot['state']} (ledger {snapshot['ledger']})")
    click.echo(
        f"pass streak: {snapshot['pass_streak']} of {snapshot['required_passes']} "
        f"(candidate ready: {ready}); last result: {snapshot['last_result'] or '-'}"
    )
    candidate = snapshot["candidate"]
    if candidate:
        click.echo(f"candidate: {candidate.get('checkpoint')} from {candidate.get('run_dir')}")
    release = snapshot["current_release"]
    if release:
        click.echo(
            f"current release: #{release['id']} {release['candidate'].get('checkpoint')} "
            f"(promoted {release['promoted_at']})"
        )
    for event in snapshot["history"][:5]:
        details = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("at", "event"))
        click.echo(f"  {event['at']}  {event['event']}  {details}")


def _open(path: Path, must_exist: bool = True) -> Any:
    from townlet_core.errors import DataError
    from townlet_core.promotion import PromotionLedger

    if must_exist and not path.exists():
        raise DataError(
            f"{path}: no promotion ledger yet; it is created by 'townlet train --strategy "
            "anneal' (or pass --ledger)"
        )
    return PromotionLedger(path)


@promotion.command("status")
@lineage_option
@ledger_option
@json_option
def status_command(lineage: str | None, ledger: Path, as_json: bool) -> None:
    """Show the state, pass streak, candidate and current release (one line per lineage
    when the ledger holds several; --lineage NAME for one in full)."""
    book = _open(ledger)
    names = book.lineages()
    if lineage is not None or len(names) <= 1:
        _print_snapshot(book.snapshot(lineage), as_json)
        return
    snapshots = [book.snapshot(name) for name in names]
    if as_json:
        click.echo(json.dumps(snapshots, indent=2))
        return
    for snapshot in snapshots:
        release = snapshot["current_release"]
        click.echo(
            f"{snapshot['lineage']}: {snapshot['state']}, pass streak "
            f"{snapshot['pass_streak']} of {snapshot['required_passes']}, candidate ready: "
            f"{'yes' if snapshot['candidate_ready'] else 'no'}, current release: "
            f"{'#' + str(release['id']) if release else '-'}"
        )
    click.echo(f"{len(names)} lineages in {ledger}; --lineage NAME shows one in full")


@promotion.command("evaluate")
@click.argument("run_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--input",
    "input_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A JSON payload file.",
)
@click.option("--dry-run", is_flag=True, help="Decide, but always exit 0.")
@click.option(
    "--lineage",
    help="Where RUN_DIR's candidate is looked up when its result has no promotion block "
    "(default: every lineage).",
)
@ledger_option
@json_option
@click.pass_context
def evaluate_command(
    ctx: click.Context,
    run_dir: Path | None,
    input_file: Path | None,
    dry_run: bool,
    lineage: str | None,
    ledger: Path,
    as_json: bool,
) -> None:
    """Decide PROMOTE / HOLD / FAIL for an anneal run (RUN_DIR), a payload file (--input) or
    a payload on stdin. Exit 0 promote, 1 hold, 2 fail (always 0 with --dry-run)."""
    from townlet_core.errors import DataError
    from townlet_core.promotion import EXIT_CODES, decide, verdict

    if run_dir is not None and input_file is not None:
        raise click.UsageError("give RUN_DIR or --input, not both")
    if run_dir is not None:
        source = run_dir / "result.json"
        if not source.exists():
            raise DataError(f"{run_dir}: no result.json; is this a finished anneal run?")
        text = source.read_text(encoding="utf-8")
    elif input_file is not None:
        source = input_file
        text = input_file.read_text(encoding="utf-8")
    else:
        source = Path("<stdin>")
        text = sys.stdin.read()
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{source}: not JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise DataError(f"{source}: the payload must be a JSON object")
    status, ready, reasons = verdict(payload)
    if ready is None:
        ready, known = _readiness_of_this_run(run_dir, ledger, lineage)
        if not known and status.upper() == "PASS":
            reasons = [*reasons, "no_promotion_block"]
    decision, reasons = decide(status, ready, reasons)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "decision": decision,
                    "status": status,
                    "candidate_ready": ready,
                    "reasons": reasons,
                },
                indent=2,
            )
        )
    else:
        detail = f" ({', '.join(reasons)})" if reasons else ""
        ready_text = "yes" if ready else "no"
        click.echo(f"{decision}: anneal status {status}, candidate ready: {ready_text}{detail}")
    ctx.exit(0 if dry_run else EXIT_CODES[decision])


def _readiness_of_this_run(
    run_dir: Path | None, ledger: Path, lineage: str | None
) -> tuple[bool, bool]:
    """(ready, known) for a payload without a promotion block: only the ledger's view of
    this very run counts, never another run's candidate; no run directory, or no record of
    it, is not ready."""
    found = None
    if run_dir is not None and ledger.exists():
        book = _open(ledger)
        found = book.find_candidate(str(run_dir), lineage=lineage) or book.find_candidate(
            str(run_dir.resolve()), lineage=lineage
        )
    return (bool(found["candidate_ready"]), True) if found else (False, False)


@promotion.command("promote")
@click.option("--note", help="Why (kept in the release history).")
@lineage_option
@ledger_option
@json_option
def promote_command(note: str | None, lineage: str | None, ledger: Path, as_json: bool) -> None:
    """Make the ready candidate the current release."""
    _print_snapshot(_open(ledger).promote(note, lineage=lineage), as_json)


@promotion.command("rollback")
@click.option(
    "--to", "to_release", type=int, help="Release id to return to (default: the previous)."
)
@lineage_option
@ledger_option
@json_option
def rollback_command(
    to_release: int | None, lineage: str | None, ledger: Path, as_json: bool
) -> None:
    """Return to the previous release (or --to ID) and start monitoring again."""
    _print_snapshot(_open(ledger).rollback(to_release, lineage=lineage), as_json)
