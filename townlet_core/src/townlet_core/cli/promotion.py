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


@click.group()
def promotion() -> None:
    """The promotion ledger: pass streak, candidate, releases."""


def _print_snapshot(snapshot: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(snapshot, indent=2))
        return
    ready = "yes" if snapshot["candidate_ready"] else "no"
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
@ledger_option
@json_option
def status_command(ledger: Path, as_json: bool) -> None:
    """Show the state, pass streak, candidate and current release."""
    _print_snapshot(_open(ledger).snapshot(), as_json)


@promotion.command("evaluate")
@click.argument("run_dir", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--input",
    "input_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A JSON payload file.",
)
@click.option("--dry-run", is_flag=True, help="Decide, but always exit 0.")
@ledger_option
@json_option
@click.pass_context
def evaluate_command(
    ctx: click.Context,
    run_dir: Path | None,
    input_file: Path | None,
    dry_run: bool,
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
        ready = bool(ledger.exists() and _open(ledger).snapshot()["candidate_ready"])
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


@promotion.command("promote")
@click.option("--note", help="Why (kept in the release history).")
@ledger_option
@json_option
def promote_command(note: str | None, ledger: Path, as_json: bool) -> None:
    """Make the ready candidate the current release."""
    _print_snapshot(_open(ledger).promote(note), as_json)


@promotion.command("rollback")
@click.option(
    "--to", "to_release", type=int, help="Release id to return to (default: the previous)."
)
@ledger_option
@json_option
def rollback_command(to_release: int | None, ledger: Path, as_json: bool) -> None:
    """Return to the previous release (or --to ID) and start monitoring again."""
    _print_snapshot(_open(ledger).rollback(to_release), as_json)
