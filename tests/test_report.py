"""`townlet report`: one self-contained HTML page of figures for real runs (ppo in the slow
test, an anneal schedule of cem stages) and hand-made run folders (an anneal run with a
held stage and a fired guardrail, bc, damaged metrics), read back by parsing the page and
decoding every embedded PNG."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: matplotlib's first colour (tab:blue): every figure draws its first curve in it
FIRST_CURVE = np.array([0x1F, 0x77, 0xB4]) / 255
PPO_FIGURES = {
    "return",
    "losses",
    "entropy",
    "kl",
    "clip_fraction",
    "explained_variance",
    "throughput",
}
BC_FIGURES = {"losses", "accuracy", "throughput"}


@pytest.fixture(autouse=True)
def _matplotlib_installed() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # a failure, not a skip: CI must install townlet-core[report]
        pytest.fail("matplotlib is not installed: pip install -e './townlet_core[report]'")


# --------------------------------------------------------------------------- reading the page


class Page(HTMLParser):
    """The parts of a report the tests look at: figures, tables (by class), notes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.figures: list[dict[str, str]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.notes: list[str] = []
        self.tags: set[str] = set()
        self._figure: dict[str, str] | None = None
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._note: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = {k: v or "" for k, v in attrs}
        if tag == "figure":
            self._figure = {"key": a["data-figure"], "run": a["data-run"]}
        elif tag == "img" and self._figure is not None:
            self._figure["src"] = a["src"]
            self._figure["alt"] = a.get("alt", "")
        elif tag == "table":
            self._table = a.get("class", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "p" and "class" in a:
            self._note = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure" and self._figure is not None:
            self.figures.append(self._figure)
            self._figure = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "p" and self._note is not None:
            self.notes.append("".join(self._note))
            self._note = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._note is not None:
            self._note.append(data)

    def keys(self, run: str) -> list[str]:
        return [figure["key"] for figure in self.figures if figure["run"] == run]


def drawn_png(src: str) -> np.ndarray:
    """The pixels of an embedded figure, checked to be a real PNG with a curve drawn."""
    import matplotlib.image

    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    raw = base64.b64decode(src[len(prefix) :], validate=True)
    assert raw[:8] == PNG_SIGNATURE
    assert len(raw) > 10_000, f"a {len(raw)}-byte PNG holds no figure"
    pixels = matplotlib.image.imread(io.BytesIO(raw))[..., :3]
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 700
    assert pixels.std() > 0.08, "the figure is nearly blank"
    curve = (np.abs(pixels - FIRST_CURVE).max(axis=2) < 0.08).sum()
    assert curve > 150, f"only {curve} pixels of the first curve's colour"
    return pixels


def report(townlet: Any, out: Path, *args: str) -> Page:
    code, stdout, stderr = townlet("report", *args, "-o", str(out))
    assert code == 0, stderr
    assert stdout.startswith(f"wrote {out}: ")
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    assert not page.tags & {"script", "link", "iframe", "object"}, "the page loads something"
    assert "http://" not in text and "https://" not in text
    for figure in page.figures:
        drawn_png(figure["src"])
    return page


# --------------------------------------------------------------------------- hand-made runs


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def make_run(
    root: Path,
    name: str,
    strategy: str,
    result: dict[str, Any],
    records: list[dict[str, Any]] | None = None,
    *,
    seconds: int = 125,
) -> Path:
    """A finished run folder as `townlet train` leaves it."""
    path = root / name
    config = {"strategy": strategy, "seed": 1, strategy: {}}
    write_json(path / "config.json", {"strategy": strategy, "seed": 1, "config": config})
    write_json(
        path / "run.json",
        {
            "strategy": strategy,
            "state": "succeeded",
            "started_at": "2026-01-01T10:00:00+00:00",
            "finished_at": f"2026-01-01T10:{seconds // 60:02d}:{seconds % 60:02d}+00:00",
        },
    )
    write_json(path / "result.json", {"strategy": strategy, "status": "succeeded", **result})
    if records is not None:
        write_lines(path / "metrics.jsonl", records)
    return path


def ppo_lines(
    count: int, *, steps_before: int = 0, flag_from: int | None = None, phase: float = 0.0
) -> list[dict[str, Any]]:
    """Metrics lines shaped like PPO's; `steps` counts on from `steps_before` (a runs
    root's earlier runs), an evaluation every 4 updates, anneal's loss flag from a line on;
    `phase` shifts the curves so two runs differ."""
    lines = []
    for i in range(1, count + 1):
        wave = math.sin(i / 2 + phase)
        line: dict[str, Any] = {
            "epoch": i,
            "transitions": 256,
            "steps": steps_before + 256 * i,
            "loss_policy": -0.01 * wave / i,
            "loss_value": 5.0 / i + 0.3 * wave,
            "loss_entropy": 0.69 - 0.005 * i + 0.02 * wave,
            "loss_total": 2.5 / i + 0.1 * wave,
            "approx_kl": 0.01 * (1 + wave),
            "kl_divergence": 0.012 * (1 + wave),
            "clip_fraction": 0.1 + 0.05 * wave,
            "clip_fraction_max": 0.2 + 0.05 * wave,
            "explained_variance": 1 - 1 / i + 0.05 * wave,
            "steps_per_second": 4000 + 300 * wave,
            "batch_entropy_mean": 0.69 - 0.005 * i + 0.02 * wave,
            "episode_return_mean": 20.0 * i + 15 * wave,
        }
        if i % 4 == 0:
            line["eval_mean_return"] = 22.0 * i
        if flag_from is not None:
            line["anneal_loss_flag"] = i >= flag_from
        lines.append(line)
    return lines


def return_lines(count: int, *, phase: float = 0.0) -> list[dict[str, Any]]:
    """PPO-shaped lines with the return only: one figure, quick to draw."""
    return [
        {"steps": 256 * i, "transitions": 256, "episode_return_mean": (10 + phase) * i}
        for i in range(1, count + 1)
    ]


def loss_lines(count: int) -> list[dict[str, Any]]:
    """BC-shaped lines with the loss only: one figure, quick to draw."""
    return [{"epoch": i, "loss": 0.6 / i + 0.02 * math.sin(i)} for i in range(1, count + 1)]


def bc_lines(count: int) -> list[dict[str, Any]]:
    return [
        {
            "epoch": i,
            "loss": 0.6 / i,
            "val_loss": 0.65 / i + 0.01,
            "accuracy": 1 - 0.2 / i,
            "val_accuracy": 1 - 0.25 / i,
            "samples_per_second": 100_000 + 5000 * math.sin(i),
        }
        for i in range(1, count + 1)
    ]


def make_anneal(
    root: Path,
    name: str = "anneal-held",
    *,
    ppo: list[dict[str, Any]] | None = None,
    bc: list[dict[str, Any]] | None = None,
) -> Path:
    """BC accepted, then PPO held by the loss guardrail (flagged from its 6th line), then
    BC rolled back: an anneal run as the strategy leaves it."""
    stages = [
        {"stage_dir": "stages/00-cycle0-bc", "strategy": "bc", "outcome": "accepted", "flags": {}},
        {
            "stage_dir": "stages/01-cycle1-ppo",
            "strategy": "ppo",
            "outcome": "held",
            "flags": {"loss": True, "return": False},
        },
        {
            "stage_dir": "stages/02-cycle2-bc",
            "strategy": "bc",
            "outcome": "rolled_back",
            "flags": {},
        },
    ]
    path = make_run(
        root,
        name,
        "anneal",
        {
            "anneal_status": "HOLD",
            "reasons": ["loss_flag_cycle_1"],
            "final_eval_mean_return": 480.0,
            "stages": stages,
        },
    )
    for stage, records, result in (
        (stages[0], bc or bc_lines(10), {"eval_mean_return": 450.0}),
        (
            stages[1],
            ppo or ppo_lines(24, steps_before=5000, flag_from=6, phase=4),
            {"env_steps": 6144},
        ),
        (stages[2], bc or bc_lines(5), {"eval_mean_return": 300.0}),
    ):
        inside = path / stage["stage_dir"]
        write_json(inside / "run.json", {"strategy": stage["strategy"], "state": "succeeded"})
        write_json(inside / "result.json", {"strategy": stage["strategy"], **result})
        write_lines(inside / "metrics.jsonl", records)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


# --------------------------------------------------------------------------- real runs


@pytest.mark.slow
def test_a_real_ppo_run_gets_every_ppo_figure_drawn_from_its_metrics(townlet, tmp_path):
    import townlet_strategies_ppo.plugin
    from townlet_core import Orchestrator, StrategyRegistry

    registry = StrategyRegistry(discover=False)
    registry.add_plugin(townlet_strategies_ppo.plugin, distribution="townlet-strategies-ppo")
    orchestrator = Orchestrator(registry, quiet=True, progress=False)
    settings = {"total_timesteps": 4096, "eval_every": 4, "eval_episodes": 2}
    result = orchestrator.run(
        "ppo", config={"runs_root": str(tmp_path / "runs"), "ppo": settings}, seed=3
    )
    run_dir = orchestrator.last_run_dir
    assert run_dir is not None

    page = report(townlet, tmp_path / "report.html", str(run_dir))

    assert set(page.keys(run_dir.name)) == PPO_FIGURES
    assert page.tables["final"][1][:3] == [run_dir.name, "ppo", "succeeded"]
    assert page.tables["final"][1][4] == f"{result.eval_mean_return:.2f}"
    assert page.tables["final"][1][5] == "4,096"
    left_out = next(note for note in page.notes if note.startswith("Left out"))
    assert "Action accuracy (accuracy, val_accuracy)" in left_out


def test_a_real_anneal_run_of_cem_stages_marks_its_stages(townlet, tmp_path):
    import townlet_example_cem.plugin
    import townlet_strategies_anneal.plugin
    from townlet_core import Orchestrator, StrategyRegistry

    registry = StrategyRegistry(discover=False)
    registry.add_plugin(townlet_example_cem.plugin, distribution="townlet-example-cem")
    registry.add_plugin(townlet_strategies_anneal.plugin, distribution="townlet-strategies-anneal")
    cem = {"env_id": "CartPole-v1", "iterations": 3, "population": 8, "eval_episodes": 2}
    schedule = [{"cycle": c, "strategy": "cem", "overrides": cem} for c in (0, 1)]
    orchestrator = Orchestrator(registry, quiet=True, progress=False)
    config = {"runs_root": str(tmp_path / "runs"), "anneal": {"schedule": schedule}}
    orchestrator.run("anneal", config=config, seed=6)
    run_dir = orchestrator.last_run_dir
    assert run_dir is not None

    page = report(townlet, tmp_path / "report.html", str(run_dir))

    assert page.keys(run_dir.name) == ["return"]  # cem logs mean_return against env_steps
    assert [row[0] for row in page.tables["stages"][1:]] == ["00-cycle0-cem", "01-cycle1-cem"]


# --------------------------------------------------------------------------- anneal


def test_an_anneal_run_shows_its_stages_outcomes_and_the_guardrail_that_fired(
    townlet, root, tmp_path
):
    path = make_anneal(root)

    page = report(townlet, tmp_path / "r.html", str(path))

    assert page.tables["stages"] == [
        ["stage", "strategy", "outcome", "greedy return", "env steps", "guardrails fired"],
        ["00-cycle0-bc", "bc", "accepted", "450.00", "-", "-"],
        ["01-cycle1-ppo", "ppo", "held", "-", "6,144", "loss"],
        ["02-cycle2-bc", "bc", "rolled_back", "300.00", "-", "-"],
    ]
    assert "Guardrails fired: loss in 01-cycle1-ppo" in page.notes
    # the PPO stage's figures on the environment-step axis, then each BC stage by epoch
    assert page.keys(path.name) == [
        *sorted_like_catalog(PPO_FIGURES),
        *["losses", "accuracy", "throughput"] * 2,
    ]


def sorted_like_catalog(keys: set[str]) -> list[str]:
    from townlet_core.report import FIGURES

    return [spec.key for spec in FIGURES if spec.key in keys]


def test_stages_and_guardrails_are_placed_on_the_environment_step_axis(root):
    from townlet_core.report import read_run_data

    run = read_run_data(make_anneal(root))

    spans = [(s.name, s.start, s.end) for s in run.stages]
    # PPO's `steps` counted from the stage's start (5000 earlier steps of the runs root)
    assert spans == [
        ("00-cycle0-bc", 0.0, 0.0),
        ("01-cycle1-ppo", 0.0, 24 * 256.0),
        ("02-cycle2-bc", 24 * 256.0, 24 * 256.0),
    ]
    assert [(g.name, g.stage, g.x) for g in run.guardrails] == [
        ("loss", "01-cycle1-ppo", 6 * 256.0)
    ]
    assert run.env_steps == 6144


def test_the_stage_marks_are_drawn_on_the_curve(root):
    from townlet_core.report import FIGURES, read_run_data
    from townlet_core.report.plotting import run_figure

    run = read_run_data(make_anneal(root))
    spec = next(spec for spec in FIGURES if spec.key == "return")
    plain = run_figure(spec, run.timeline, title="t")
    marked = run_figure(spec, run.timeline, title="t", stages=run.stages, guardrails=run.guardrails)
    assert plain is not None and marked is not None
    plain_pixels, marked_pixels = drawn_png(_uri(plain.png)), drawn_png(_uri(marked.png))
    held_tint = np.array([255, 242, 231]) / 255  # the held colour at 10% over white
    tinted = (np.abs(marked_pixels - held_tint).max(axis=2) < 0.02).mean()
    assert tinted > 0.2, "the held stage's span is not drawn"
    assert (np.abs(plain_pixels - held_tint).max(axis=2) < 0.02).mean() < 0.01
    guardrail = (np.abs(marked_pixels - np.array([0xD6, 0x27, 0x28]) / 255).max(axis=2) < 0.1).sum()
    assert guardrail > 100, "the fired guardrail's line is not drawn"


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


# --------------------------------------------------------------------------- several runs


def test_several_runs_get_a_table_of_final_figures(townlet, root, tmp_path):
    make_run(root, "ppo-a", "ppo", {"eval_mean_return": 321.5, "env_steps": 4096}, return_lines(16))
    result = {"eval_mean_return": 99.0, "env_steps": 2048}
    make_run(root, "ppo-b", "ppo", result, return_lines(8, phase=2), seconds=42)
    make_run(root, "bc-c", "bc", {"eval_mean_return": 500.0}, loss_lines(20), seconds=3)
    make_anneal(root, ppo=return_lines(24, phase=4), bc=loss_lines(5))
    runs = ("ppo-a", "ppo-b", "bc-c", "anneal-held")

    page = report(townlet, tmp_path / "r.html", *runs, "--runs-root", str(root))

    assert page.tables["final"] == [
        ["name", "strategy", "state", "verdict", "final greedy return", "env steps", "duration"],
        ["ppo-a", "ppo", "succeeded", "-", "321.50", "4,096", "2m05s"],
        ["ppo-b", "ppo", "succeeded", "-", "99.00", "2,048", "42.0s"],
        ["bc-c", "bc", "succeeded", "-", "500.00", "-", "3.0s"],
        ["anneal-held", "anneal", "succeeded", "HOLD", "480.00", "6,144", "2m05s"],
    ]


@pytest.mark.slow
def test_several_runs_have_their_curves_overlaid(townlet, root, tmp_path):
    make_run(root, "ppo-a", "ppo", {}, ppo_lines(16))
    make_run(root, "ppo-b", "ppo", {}, ppo_lines(8, phase=2))
    make_run(root, "bc-c", "bc", {}, bc_lines(20))
    make_anneal(root)
    runs = ("ppo-a", "ppo-b", "bc-c", "anneal-held")

    page = report(townlet, tmp_path / "r.html", *runs, "--runs-root", str(root))

    # the three runs counting environment steps overlaid; bc (epochs) is alone on its axis
    assert page.keys("overlay") == sorted_like_catalog(PPO_FIGURES)
    assert next(f["alt"] for f in page.figures if f["run"] == "overlay") == (
        "Episodic return: 3 runs by environment steps"
    )


def test_the_same_run_twice_is_a_usage_error(townlet, root, tmp_path):
    make_run(root, "ppo-a", "ppo", {}, return_lines(4))
    code, _, err = townlet(
        "report",
        "ppo-a",
        str(root / "ppo-a"),
        "--runs-root",
        str(root),
        "-o",
        str(tmp_path / "r.html"),
    )
    assert code == 2
    assert f"'{root / 'ppo-a'}' and 'ppo-a' are the same run" in err


# --------------------------------------------------------------------------- what is left out


def test_figures_without_data_are_left_out_with_a_note(townlet, root, tmp_path):
    make_run(root, "bc-c", "bc", {"eval_mean_return": 500.0}, bc_lines(20))

    page = report(townlet, tmp_path / "r.html", str(root / "bc-c"))

    assert page.keys("bc-c") == sorted_like_catalog(BC_FIGURES)
    left_out = next(note for note in page.notes if note.startswith("Left out"))
    assert "Clip fraction (clip_fraction, clip_fraction_max)" in left_out
    assert "Episodic return (episode_return_mean, mean_return, eval_mean_return)" in left_out


def test_a_rotated_metrics_file_with_a_torn_last_line_is_read_whole(root):
    from townlet_core.report import read_run_data

    lines = ppo_lines(10)
    path = make_run(root, "ppo-a", "ppo", {}, lines[:6])
    write_lines(path / "metrics.jsonl.1", lines[6:])
    with (path / "metrics.jsonl.1").open("a", encoding="utf-8") as handle:
        handle.write('{"epoch": 11, "loss_to')  # the run stopped while writing

    run = read_run_data(path)

    assert [r["epoch"] for r in run.timeline[0].records] == list(range(1, 11))
    assert run.notes == []


def test_a_damaged_metrics_file_is_a_note_and_the_other_runs_are_drawn(townlet, root, tmp_path):
    make_run(root, "ppo-a", "ppo", {}, ppo_lines(8))
    bad = make_run(root, "ppo-bad", "ppo", {}, ppo_lines(8))
    text = (bad / "metrics.jsonl").read_text().splitlines()
    (bad / "metrics.jsonl").write_text("\n".join([text[0], "{not json", *text[2:]]) + "\n")

    page = report(townlet, tmp_path / "r.html", "ppo-a", "ppo-bad", "--runs-root", str(root))

    assert page.keys("ppo-bad") == []
    assert any(note.startswith("ppo-bad: metrics.jsonl: line 2 is not JSON") for note in page.notes)
    assert set(page.keys("ppo-a")) == PPO_FIGURES


def test_a_pipe_in_place_of_the_metrics_is_not_opened(townlet, root, tmp_path):
    path = make_run(root, "ppo-a", "ppo", {})
    os.mkfifo(path / "metrics.jsonl")  # opening it would wait for a writer forever

    page = report(townlet, tmp_path / "r.html", str(path))

    assert (
        "ppo-a: metrics.jsonl is not a plain file; not read; its figures are left out" in page.notes
    )


def test_text_from_a_run_is_escaped(townlet, root, tmp_path):
    make_run(root, "ppo-a", "<script>alert(1)</script>", {}, return_lines(4))

    report(townlet, tmp_path / "r.html", str(root / "ppo-a"))  # asserts no <script> tag

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (tmp_path / "r.html").read_text()


# --------------------------------------------------------------------------- errors


def test_an_unknown_run_is_an_error_naming_it(townlet, root, tmp_path):
    make_run(root, "ppo-20260101-100000-abcd", "ppo", {}, return_lines(4))
    out = tmp_path / "r.html"

    code, _, err = townlet(
        "report", "ppo-20260101-10000-abcd", "--runs-root", str(root), "-o", str(out)
    )

    assert code == 2
    assert err == (
        f"townlet: error: no run 'ppo-20260101-10000-abcd' under {root}; did you mean "
        "'ppo-20260101-100000-abcd'?\n"
    )
    assert not out.exists()


def test_missing_matplotlib_says_how_to_install_it(townlet, root, tmp_path, monkeypatch):
    make_run(root, "ppo-a", "ppo", {}, return_lines(4))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    out = tmp_path / "r.html"

    code, _, err = townlet("report", str(root / "ppo-a"), "-o", str(out))

    assert code == 2
    assert err == (
        "townlet: error: townlet report draws its figures with matplotlib, which is not "
        "installed; install it with: pip install 'townlet-core[report]'\n"
    )
    assert not out.exists()


def test_an_existing_report_is_replaced_whole(townlet, root, tmp_path):
    make_run(root, "ppo-a", "ppo", {}, return_lines(4))
    out = tmp_path / "r.html"
    out.write_text("old")

    report(townlet, out, str(root / "ppo-a"))

    assert out.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "runs"]  # no temporary file


PROBE = """
import sys
from townlet_core.cli import main
for args in (['--help'], ['report', '--help']):
    try:
        main(args)
    except SystemExit:
        pass
import townlet_core.report
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'matplotlib'))
assert not heavy, f"imported: {heavy[:5]}"
print("ok")
"""


def test_help_and_the_report_package_import_neither_matplotlib_nor_torch():
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=False, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.rstrip().endswith("ok")
    assert "Write an HTML report of runs" in completed.stdout
