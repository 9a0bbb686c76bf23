"""Manifests and capture directories in every layout the original tools wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from townlet_core.data import ReplayDataset, open_source
from townlet_core.errors import DataError

from .conftest import make_arrays, save_sample


def test_fixture_manifest_of_plain_paths(fixtures_dir):
    source = open_source(fixtures_dir / "replay_samples" / "replay_manifest.json")
    assert [e.name for e in source.entries] == [
        "observation_hybrid_sample_base.npz",
        "observation_hybrid_sample_conflict_high.npz",
        "observation_hybrid_sample_conflict_low.npz",
    ]
    assert source.label == "replay_manifest"


def test_fixture_bc_manifest_keeps_meta_and_entry_fields(fixtures_dir):
    source = open_source(fixtures_dir / "bc_idle_v1" / "manifest.json")
    first = source.entries[0]
    assert first.meta == fixtures_dir / "bc_idle_v1" / "idle_alice.json"
    assert first.extra["accepted"] is True
    assert first.extra["metrics"]["timesteps"] == 200


def test_original_manifest_paths_resolve_against_the_working_directory(
    fixtures_dir, monkeypatch, tmp_path
):
    # manifest_original.json names paths relative to the original repository root
    original = json.loads((fixtures_dir / "bc_idle_v1" / "manifest_original.json").read_text())
    root = tmp_path / "repo"
    for entry in original:
        for key in ("sample", "meta"):
            target = root / entry[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((fixtures_dir / "bc_idle_v1" / Path(entry[key]).name).read_bytes())
    manifest = tmp_path / "elsewhere" / "manifest_original.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps(original))
    monkeypatch.chdir(root)
    dataset = ReplayDataset(manifest)
    assert dataset.num_trajectories == 2
    assert dataset.transitions == 400


def test_capture_directory_with_metadata_layout(fixtures_dir):
    source = open_source(fixtures_dir / "queue_conflict_capture")
    assert source.label == "queue_conflict_capture"
    assert len(source.entries) == 3
    assert set(source.metrics_map) == {
        "rollout_sample_anna_001.npz",
        "rollout_sample_ben_002.npz",
        "rollout_sample_cara_003.npz",
    }


def test_capture_directory_with_flat_list_and_flat_metrics(tmp_path):
    # the RolloutBuffer.save layout: a plain list manifest and a flat metrics mapping
    for agent in ("a", "b"):
        save_sample(
            tmp_path, f"rollout_sample_{agent}_001", make_arrays(), meta={"agent_id": agent}
        )
    (tmp_path / "rollout_sample_manifest.json").write_text(
        json.dumps(
            [
                {"sample": f"rollout_sample_{a}_001.npz", "meta": f"rollout_sample_{a}_001.json"}
                for a in "ab"
            ]
        )
    )
    (tmp_path / "rollout_sample_metrics.json").write_text(
        json.dumps(
            {
                "rollout_sample_a_001.npz": {"reward_sum": 3.0},
                "rollout_sample_b_001.npz": {"reward_sum": 5.0},
            }
        )
    )
    dataset = ReplayDataset(tmp_path)
    assert dataset.source.metrics_map["rollout_sample_b_001.npz"] == {"reward_sum": 5.0}
    assert dataset.baseline_metrics == {
        "sample_count": 2.0,
        "reward_sum": 8.0,
        "reward_sum_mean": 4.0,
    }


def test_yaml_manifest_with_samples_mapping(tmp_path):
    save_sample(tmp_path, "one", make_arrays())
    (tmp_path / "m.yaml").write_text("metadata: {note: x}\nsamples:\n  - sample: one.npz\n")
    source = open_source(tmp_path / "m.yaml")
    assert [e.name for e in source.entries] == ["one.npz"]
    assert source.metadata == {"note": "x"}


def test_jsonl_manifest_is_read_line_by_line(tmp_path):
    save_sample(tmp_path, "one", make_arrays())
    save_sample(tmp_path, "two", make_arrays(seed=1))
    (tmp_path / "m.jsonl").write_text('{"sample": "one.npz"}\n\n"two.npz"\n')
    assert [e.name for e in open_source(tmp_path / "m.jsonl").entries] == ["one.npz", "two.npz"]


def test_rejected_entries_are_skipped_and_counted(tmp_path):
    for name in ("keep", "drop"):
        save_sample(tmp_path, name, make_arrays())
    (tmp_path / "m.json").write_text(
        json.dumps(
            [
                {"sample": "keep.npz", "accepted": True},
                {"sample": "drop.npz", "accepted": False},
            ]
        )
    )
    source = open_source(tmp_path / "m.json")
    assert [e.name for e in source.entries] == ["keep.npz"]
    assert source.skipped == 1


def test_all_entries_rejected_is_an_error(tmp_path):
    save_sample(tmp_path, "drop", make_arrays())
    (tmp_path / "m.json").write_text(json.dumps([{"sample": "drop.npz", "accepted": False}]))
    with pytest.raises(DataError, match="all 1 entries are marked accepted: false"):
        open_source(tmp_path / "m.json")


def test_missing_sample_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "m.json").write_text(json.dumps(["gone.npz"]))
    with pytest.raises(DataError) as info:
        open_source(folder / "m.json")
    assert str(info.value) == (
        f"{folder / 'm.json'}: listed file 'gone.npz' not found (looked in {folder} and "
        f"{tmp_path}); fix the path or remove the entry"
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.json", "[]", "the manifest lists no samples"),
        ("m.json", '{"entries": []}', "a manifest mapping needs a 'samples' list"),
        ("m.json", '"just a string"', "a manifest must be a list"),
        ("m.json", "[1, 2]", "entry 0 must be a path or a mapping with a 'sample' path"),
        ("m.json", "[{", "invalid JSON at line 1"),
        ("m.txt", "x", "unsupported manifest format '.txt'"),
    ],
)
def test_bad_manifests(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=message):
        open_source(tmp_path / name)


def test_directory_without_manifest(tmp_path):
    with pytest.raises(DataError, match="no manifest.json or \\*_manifest.json here"):
        open_source(tmp_path)


def test_missing_dataset_path(tmp_path):
    with pytest.raises(DataError, match="no such dataset"):
        open_source(tmp_path / "nope.json")
