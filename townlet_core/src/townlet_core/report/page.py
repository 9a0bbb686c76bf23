"""The report as one self-contained HTML page: figures embedded as base64 PNG data URIs,
styles inline, no script and nothing fetched, so the file opens offline anywhere. Every
text taken from a run is escaped."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from townlet_core.report.plotting import OUTCOME_COLOURS, Rendered
from townlet_core.report.rundata import RunData
from townlet_core.runtime.runs_index import format_duration as duration

#: The columns of the table of final figures, in order.
TABLE_COLUMNS = (
    "name",
    "strategy",
    "state",
    "verdict",
    "final greedy return",
    "env steps",
    "duration",
)

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
h3 { font-size: 1.05em; margin-top: 1.5em; }
.meta, .note { color: #666; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { text-align: left; padding: 0.25em 0.8em; border-bottom: 1px solid #eee; }
th { background: #f6f6f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; }
dl.facts dt { color: #666; } dl.facts dd { margin: 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #666; font-size: 0.9em; }
.outcome { font-weight: 600; }
.fired { color: #d62728; font-weight: 600; }
"""


@dataclass(frozen=True)
class RunSection:
    """One run's part of the page: its data, its figures, and those left out and why."""

    run: RunData
    figures: Sequence[tuple[str, Sequence[Rendered]]]
    left_out: Sequence[str]


def render_page(
    *,
    title: str,
    generated: datetime,
    version: str,
    sections: Sequence[RunSection],
    overlays: Sequence[Rendered],
) -> str:
    runs = [section.run for section in sections]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{len(runs)} run{"s" if len(runs) != 1 else ""}; made by townlet-core '
        f"{_e(version)} on {generated:%Y-%m-%d %H:%M} UTC from each run's JSON files "
        "(figures from metrics.jsonl, facts from run.json and result.json).</p>",
        '<h2 id="final">Final figures</h2>',
        _final_table(runs),
    ]
    if overlays:
        parts.append('<h2 id="overlaid">All runs overlaid</h2>')
        parts.extend(_figure(figure, "overlay") for figure in overlays)
    for number, section in enumerate(sections, start=1):
        parts.append(_section(number, section))
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _final_table(runs: Sequence[RunData]) -> str:
    head = "".join(f"<th>{_e(column)}</th>" for column in TABLE_COLUMNS)
    rows = []
    for number, run in enumerate(runs, start=1):
        s = run.summary
        cells = [
            f'<td><a href="#run-{number}" title="{_e(s.path)}">{_e(s.name)}</a></td>',
            f"<td>{_e(s.strategy or '-')}</td>",
            f"<td>{_e(s.state)}</td>",
            f"<td>{_e(s.verdict or '-')}</td>",
            f'<td class="num">{_return(s.final_return)}</td>',
            f'<td class="num">{_steps(run.env_steps)}</td>',
            f'<td class="num">{duration(s.duration_sec)}</td>',
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<table class="final"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _section(number: int, section: RunSection) -> str:
    run = section.run
    s = run.summary
    parts = [f'<section id="run-{number}" data-run="{_e(s.name)}">', f"<h2>{_e(s.name)}</h2>"]
    facts = [
        ("path", s.path),
        ("strategy", s.strategy or "-"),
        ("state", s.state + (f" ({s.reason})" if s.reason else "")),
        ("verdict", s.verdict),
        ("final greedy return", _return(s.final_return) + _field(s.return_field)),
        ("env steps", _steps(run.env_steps)),
        ("duration", duration(s.duration_sec)),
        ("reasons", ", ".join(run.reasons) or None),
    ]
    parts.append(
        '<dl class="facts">'
        + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts if v)
        + "</dl>"
    )
    if run.stages:
        parts.append(_stages_table(run))
    if run.guardrails:
        fired = ", ".join(f"{g.name} in {g.stage}" for g in run.guardrails)
        parts.append(f'<p class="fired">Guardrails fired: {_e(fired)}</p>')
    parts.extend(f'<p class="note">{_e(note)}</p>' for note in run.notes)
    for heading, figures in section.figures:
        if heading:
            parts.append(f"<h3>{_e(heading)}</h3>")
        parts.extend(_figure(figure, s.name) for figure in figures)
    if section.left_out:
        parts.append(
            '<p class="note left-out">Left out, no data in the metrics: '
            + "; ".join(_e(item) for item in section.left_out)
            + ".</p>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _stages_table(run: RunData) -> str:
    head = "".join(
        f"<th>{c}</th>"
        for c in ("stage", "strategy", "outcome", "greedy return", "env steps", "guardrails fired")
    )
    rows = []
    for stage in run.stages:
        colour = OUTCOME_COLOURS.get(stage.outcome or "", "#7f7f7f")
        outcome = stage.outcome or stage.state
        rows.append(
            "<tr>"
            f"<td>{_e(stage.name)}</td><td>{_e(stage.strategy or '-')}</td>"
            f'<td class="outcome" style="color: {colour}">{_e(outcome)}</td>'
            f'<td class="num">{_return(stage.final_return)}</td>'
            f'<td class="num">{_steps(stage.env_steps)}</td>'
            f"<td>{_e(', '.join(stage.flags) or '-')}</td>"
            "</tr>"
        )
    body = "".join(rows)
    return f'<table class="stages"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(figure: Rendered, run: str) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (
        f'<figure data-figure="{_e(figure.key)}" data-run="{_e(run)}">'
        f'<img alt="{_e(figure.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>From metrics.jsonl: {_e(', '.join(figure.fields))}</figcaption></figure>"
    )


# --------------------------------------------------------------------------- formatting


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _return(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _field(field: str | None) -> str:
    return f" (result.json {field})" if field else ""


def _steps(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
