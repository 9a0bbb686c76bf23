"""Atomic files, the carried-over state store (also across processes), the progress line."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from townlet_core.atomic import atomic_write_json, atomic_write_text
from townlet_core.errors import ConfigError
from townlet_core.runtime.progress import Progress
from townlet_core.runtime.state import StateStore


def test_atomic_write_leaves_no_partial_file_when_serialising_fails(tmp_path):
    path = tmp_path / "out.json"
    atomic_write_json(path, {"ok": 1})
    with pytest.raises(ValueError):
        atomic_write_json(path, {"bad": float("nan")})  # strict JSON refuses NaN
    assert json.loads(path.read_text()) == {"ok": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_write_creates_parent_folders(tmp_path):
    atomic_write_text(tmp_path / "a" / "b" / "c.txt", "hello")
    assert (tmp_path / "a" / "b" / "c.txt").read_text() == "hello"


def test_state_namespaces_are_independent(tmp_path):
    store = StateStore(tmp_path / "state.json")
    store.save("ppo", {"steps": 10})
    store.save("anneal", {"baseline": 1.5})
    assert store.load("ppo") == {"steps": 10}
    assert store.load("anneal") == {"baseline": 1.5}
    assert store.load("bc") == {}


def test_corrupt_state_file_says_how_to_recover(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="fix or delete the file to start afresh"):
        StateStore(path).load("ppo")


INCREMENT = """
import sys
from pathlib import Path
from townlet_core.runtime.state import StateStore
store = StateStore(Path(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    store.update("counter", lambda state: {"n": state.get("n", 0) + 1})
"""


def test_concurrent_updates_from_two_processes_lose_nothing(tmp_path):
    path = tmp_path / "state.json"
    workers = [
        subprocess.Popen([sys.executable, "-c", INCREMENT, str(path), "50"]) for _ in range(2)
    ]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    assert StateStore(path).load("counter") == {"n": 100}


def test_files_written_atomically_get_normal_permissions(tmp_path):
    atomic_write_text(tmp_path / "f.txt", "x")
    reference = tmp_path / "plain.txt"
    reference.write_text("x")
    assert (tmp_path / "f.txt").stat().st_mode == reference.stat().st_mode


def test_progress_renders_count_bar_and_postfix():
    stream = io.StringIO()
    progress = Progress(4, "cem", enabled=True, stream=stream)
    progress.update(2, ret=123.456)
    line = progress.render()
    assert line.startswith("cem:  50%|")
    assert " 2/4 [" in line
    assert line.endswith(", ret=123.5]")
    progress.close()
    assert stream.getvalue().endswith("\n")


def test_disabled_progress_writes_nothing():
    stream = io.StringIO()
    with Progress(3, "quiet", enabled=False, stream=stream) as progress:
        progress.update(3)
    assert stream.getvalue() == ""
