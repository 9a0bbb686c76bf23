"""`townlet strategies list|show`: what is installed, read from metadata unless asked to check."""

from __future__ import annotations

import json
from typing import Any

import click

from townlet_core.cli._common import make_registry, print_table


@click.group()
def strategies() -> None:
    """List and inspect installed strategies."""


@strategies.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option(
    "--check",
    is_flag=True,
    help="Import every plugin and what its spec names (config model, run, factory), mark "
    "broken or incompatible ones, exit 1 if any (a conflict exits 1 with or without --check).",
)
@click.option("--all", "show_all", is_flag=True, help="Include disabled plugins.")
@click.pass_context
def list_strategies(ctx: click.Context, as_json: bool, check: bool, show_all: bool) -> None:
    """Show installed strategies: name, distribution, version, status, summary.

    Without --check nothing is imported: the listing comes from package metadata. Exits 1
    while two distributions provide one strategy name (the table still shows them).
    """
    registry = make_registry(ctx, quiet_warnings=True)
    if check:
        registry.load_all(check_imports=True)
    records = registry.records(include_disabled=show_all)
    if as_json:
        click.echo(json.dumps([record.as_dict() for record in records], indent=2))
    elif not records:
        click.echo("No strategies installed. Install one with: pip install 'townlet-core[ppo]'")
    else:
        rows = [
            [r.name, r.distribution, r.version, r.status, r.error if r.error else r.summary]
            for r in records
        ]
        print_table(["NAME", "DISTRIBUTION", "VERSION", "STATUS", "SUMMARY"], rows)
    conflicting = sorted({r.name for r in records if r.status == "conflict"})
    if conflicting:  # a conflict breaks every command that needs the name: never exit 0
        where = "each entry's status and error" if as_json else "the STATUS column above"
        click.echo(
            f"townlet: error: conflicting strategies: {', '.join(conflicting)}; see {where}",
            err=True,
        )
        ctx.exit(1)
    if check and any(r.status in ("broken", "incompatible") for r in records):
        ctx.exit(1)


@strategies.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
@click.pass_context
def show_strategy(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one strategy: summary, provider, requirements and its config schema."""
    from townlet_core.runtime.config import RunSettings

    registry = make_registry(ctx)
    spec = registry.resolve(name)
    record = registry.record_of(name)
    model = registry.config_model(name)
    schema = model.model_json_schema()
    info: dict[str, Any] = {
        **record.as_dict(),
        **spec.import_strings(),
        "supports_resume": spec.supports_resume,
        "config_schema": schema,
    }
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    click.echo(f"{spec.name}: {spec.summary}")
    click.echo(f"  distribution:        {record.distribution} {record.version}")
    click.echo(f"  entry point:         {record.entry_point}")
    click.echo(f"  requires torch:      {'yes' if spec.requires_torch else 'no'}")
    click.echo(f"  resumes stopped run: {'yes' if spec.supports_resume else 'no'}")
    requires = ", ".join(spec.requires_strategies) or "none"
    click.echo(f"  requires strategies: {requires}")
    click.echo(f"\nConfig section '{spec.name}' (set with --set {spec.name}.FIELD=VALUE):")
    try:  # every field has a default (the contract checks it); show the real values
        defaults = model().model_dump(mode="json")
    except ValueError:
        defaults = {}
    rows = [
        [
            field,
            _type_name(prop),
            _short(json.dumps(defaults.get(field, prop.get("default")))),
            prop.get("description", ""),
        ]
        for field, prop in schema.get("properties", {}).items()
    ]
    print_table(["FIELD", "TYPE", "DEFAULT", "DESCRIPTION"], rows, indent=2)
    click.echo(f"\nRun settings shared by every strategy: {', '.join(RunSettings.model_fields)}")
    click.echo("\nJSON schema:")
    click.echo(json.dumps(schema, indent=2, default=str))


def _short(text: str, limit: int = 40) -> str:
    """Long defaults (schedules, nested models) point to the schema below instead."""
    return text if len(text) <= limit else f"{text[: limit - 12]}... (below)"


def _type_name(prop: dict[str, Any]) -> str:
    if "type" in prop:
        return str(prop["type"])
    if "anyOf" in prop:
        return " | ".join(
            str(option.get("type", option.get("$ref", "?"))) for option in prop["anyOf"]
        )
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    return "any"
