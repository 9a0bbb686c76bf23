"""The JSONL metrics sink: append, flush per line, rotation, strict JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from townlet_core.runtime.metrics import MetricsSink, encode_record, read_metrics


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_record_is_on_disk_when_log_returns(tmp_path):
    path = tmp_path / "metrics.jsonl"
    sink = MetricsSink(path)
    sink.log({"epoch": 1, "loss": 0.5})
    assert _lines(path) == [{"epoch": 1, "loss": 0.5}]  # read while the sink is still open
    sink.log({"epoch": 2, "loss": 0.25})
    assert len(_lines(path)) == 2
    sink.close()


def test_reopening_appends_instead_of_truncating(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with MetricsSink(path) as sink:
        sink.log({"epoch": 1})
    with MetricsSink(path) as sink:
        sink.log({"epoch": 2})
    assert _lines(path) == [{"epoch": 1}, {"epoch": 2}]


def test_rotation_after_n_lines_writes_numbered_files(tmp_path):
    # the original trainer's pinned case: 3 epochs, one entry per file
    path = tmp_path / "metrics.jsonl"
    with MetricsSink(path, rotate_after=1) as sink:
        for epoch in (1, 2, 3):
            sink.log({"epoch": epoch})
    assert _lines(path) == [{"epoch": 1}]
    assert _lines(tmp_path / "metrics.jsonl.1") == [{"epoch": 2}]
    assert _lines(tmp_path / "metrics.jsonl.2") == [{"epoch": 3}]
    assert not (tmp_path / "metrics.jsonl.3").exists()


def test_rotation_continues_across_reopen(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with MetricsSink(path, rotate_after=2) as sink:
        for step in range(3):
            sink.log({"step": step})
    with MetricsSink(path, rotate_after=2) as sink:
        for step in range(3, 6):
            sink.log({"step": step})
        assert [p.name for p in sink.files] == [
            "metrics.jsonl",
            "metrics.jsonl.1",
            "metrics.jsonl.2",
        ]
    assert [len(_lines(p)) for p in sink.files] == [2, 2, 2]
    assert [r["step"] for r in read_metrics(path)] == list(range(6))


def test_non_finite_numbers_become_null_and_numpy_scalars_plain_numbers():
    line = encode_record(
        {
            "nan": math.nan,
            "inf": -math.inf,
            "np": np.float32(0.5),
            "n": np.int64(3),
            "nested": {"x": [math.nan]},
        }
    )
    assert json.loads(line) == {
        "nan": None,
        "inf": None,
        "np": 0.5,
        "n": 3,
        "nested": {"x": [None]},
    }


def test_rotate_after_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        MetricsSink(tmp_path / "m.jsonl", rotate_after=0)
