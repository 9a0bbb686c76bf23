"""Datasets are data, bounded and checked (issue 10, items 4, 16 and 19).

A dataset someone hands over cannot exhaust memory (a manifest entry at /dev/zero, an `.npz`
whose headers declare terabytes, a sidecar of gigabytes), and everything `townlet dataset
validate` refuses is refused by the one check training runs too. Relative manifest entries
still fall back to the working directory, but say so, record it, and can be made strict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from townlet_core.data import ReplayDataset, open_source, read_sample
from townlet_core.data.npz import read_array_info
from townlet_core.data.report import inspect_dataset, validate_dataset
from townlet_core.data.validation import require_valid_dataset
from townlet_core.errors import ConfigError, DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "townlet"


def _arrays(steps: int = 5, features: int = 3, actions: int = 3, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    dones = np.zeros(steps, dtype=bool)
    dones[-1] = True
    return {
        "features": rng.normal(size=(steps, features)).astype(np.float32),
        "actions": rng.integers(0, actions, size=steps).astype(np.int64),
        "old_log_probs": np.zeros(steps, np.float32),
        "value_preds": np.zeros(steps + 1, np.float32),
        "rewards": np.ones(steps, np.float32),
        "dones": dones,
    }


def _save(directory: Path, name: str, arrays: dict[str, Any], meta: Any = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.npz"
    np.savez(path, **arrays)
    if meta is not None:
        path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def _manifest(directory: Path, entries: list[Any], name: str = "m.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(entries))
    return path


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """A version-1 `.npy` header declaring `shape` (as numpy writes it), no data."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (63 - (len(text) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")


def _header_bomb(path: Path, shape: tuple[int, ...]) -> Path:
    """A tiny `.npz` whose `features` header declares `shape`, with a few bytes of data."""
    arrays = _arrays()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays.items():
            if name == "features":
                archive.writestr("features.npy", _npy_header(shape) + b"\0" * 64)
            else:
                with archive.open(f"{name}.npy", "w") as handle:
                    np.lib.format.write_array(handle, value)
    return path


def _traced_peak(action: Any) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        try:
            action()
        except Exception as exc:
            return exc, tracemalloc.get_traced_memory()[1]
        return None, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------- item 4: bounded reads


def _run_bounded(code: str, cwd: Path, memory_mb: int = 1024) -> subprocess.CompletedProcess[str]:
    """Run `code` in a Python whose address space is capped: reading /dev/zero without a
    bound dies of MemoryError there within seconds instead of exhausting this machine."""
    prelude = textwrap.dedent(
        f"""
        import resource
        limit = {memory_mb} * 2**20 + resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit * 2, limit * 2))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("via_symlink", [False, True])
def test_a_manifest_entry_at_dev_zero_is_refused_naming_the_entry(tmp_path, via_symlink):
    _save(tmp_path, "good", _arrays())
    target = "/dev/zero"
    if via_symlink:
        (tmp_path / "zero.json").symlink_to("/dev/zero")
        target = "zero.json"
    _manifest(tmp_path, [{"sample": "good.npz", "meta": target}])
    done = _run_bounded(
        """
        from townlet_core.data import ReplayDataset
        from townlet_core.errors import DataError
        try:
            ReplayDataset("m.json")
        except DataError as exc:
            print("REFUSED", exc)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("REFUSED"), done.stdout
    assert "m.json" in done.stdout and target in done.stdout
    assert "/dev/zero" in done.stdout and "not a regular file" in done.stdout


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("name", ["m.json", "s.npz", "s.json"])
def test_manifests_samples_and_sidecars_that_are_devices_are_refused(tmp_path, name):
    _save(tmp_path, "s", _arrays())
    (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / name).symlink_to("/dev/zero")
    if name != "m.json":
        _manifest(tmp_path, ["s.npz"])
    done = _run_bounded(
        """
        from townlet_core.data.report import validate_dataset
        from townlet_core.errors import DataError
        try:
            report = validate_dataset("m.json")
            print("REFUSED" if not report.ok else "OK", report.problems)
        except DataError as exc:
            print("REFUSED", exc)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("REFUSED"), done.stdout
    assert name in done.stdout and "not a regular file" in done.stdout


def test_a_header_declaring_terabytes_is_refused_before_allocating(tmp_path):
    bomb = _header_bomb(tmp_path / "bomb.npz", (2**20, 2**20))  # 4 TiB of float32
    assert bomb.stat().st_size < 10_000
    for read in (lambda: read_sample(bomb), lambda: read_array_info(bomb)):
        error, peak = _traced_peak(read)
        assert isinstance(error, DataError), error
        message = str(error)
        assert str(bomb) in message and "'features'" in message
        assert "TOWNLET_MAX_ARRAY_BYTES" in message
        assert peak < 5 * 2**20, peak


def test_a_header_that_disagrees_with_its_member_size_is_refused(tmp_path):
    # 4 MB declared, 64 bytes stored: under the limit, but a lie caught before allocating.
    bomb = _header_bomb(tmp_path / "liar.npz", (1000, 1000))
    error, peak = _traced_peak(lambda: read_sample(bomb))
    assert isinstance(error, DataError), error
    assert "'features'" in str(error) and str(bomb) in str(error)
    assert peak < 2 * 2**20, peak


def test_a_compressed_bomb_is_refused_at_the_configured_limit(tmp_path, monkeypatch):
    arrays = _arrays(steps=2**20, features=2)  # 8 MB of features, deflated to kilobytes
    arrays["features"][:] = 0.0
    arrays["actions"][:] = 0
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, **arrays)
    assert path.stat().st_size < 200_000
    monkeypatch.setenv("TOWNLET_MAX_ARRAY_BYTES", "4000000")
    error, peak = _traced_peak(lambda: read_sample(path))
    assert isinstance(error, DataError), error
    assert "'features'" in str(error) and "8388608" in str(error)
    assert "TOWNLET_MAX_ARRAY_BYTES" in str(error) and "4000000" in str(error)
    assert peak < 1_000_000, peak
    monkeypatch.setenv("TOWNLET_MAX_ARRAY_BYTES", str(2**24))
    assert read_sample(path).features.shape == (2**20, 2)


def test_a_sidecar_or_manifest_above_the_json_limit_is_refused(tmp_path, monkeypatch):
    _save(tmp_path, "s", _arrays(), meta={"notes": "x" * 5000})
    _manifest(tmp_path, ["s.npz"])
    monkeypatch.setenv("TOWNLET_MAX_JSON_BYTES", "1000")
    with pytest.raises(DataError, match=r"s\.json.*TOWNLET_MAX_JSON_BYTES") as caught:
        read_sample(tmp_path / "s.npz")
    assert "1000" in str(caught.value)
    _manifest(tmp_path, ["s.npz"] * 200)
    with pytest.raises(DataError, match=r"m\.json.*TOWNLET_MAX_JSON_BYTES"):
        open_source(tmp_path / "m.json")


def test_reading_a_small_sidecar_costs_its_size_not_the_limit(tmp_path):
    _save(tmp_path, "s", _arrays(), meta={"feature_names": ["a", "b", "c"]})
    manifest = _manifest(tmp_path, ["s.npz"])
    error, peak = _traced_peak(lambda: [read_sample(tmp_path / "s.npz"), open_source(manifest)])
    assert error is None
    assert peak < 1_000_000, peak  # the 64 MiB limit is a bound, not a buffer


@pytest.mark.parametrize("value", ["lots", "-1", "0"])
def test_a_malformed_limit_names_the_variable(tmp_path, monkeypatch, value):
    _save(tmp_path, "s", _arrays())
    monkeypatch.setenv("TOWNLET_MAX_ARRAY_BYTES", value)
    with pytest.raises(ConfigError, match="TOWNLET_MAX_ARRAY_BYTES"):
        read_sample(tmp_path / "s.npz")


def test_the_original_fixtures_load_exactly_under_the_default_limits():
    for folder in ("replay_samples", "bc_idle_v1", "queue_conflict_capture"):
        for path in sorted((FIXTURES / folder).glob("*.npz")):
            with np.load(path) as original:
                loaded = read_sample(path).arrays()
                for name in original.files:
                    assert np.array_equal(loaded[name], original[name]), (path, name)
                    assert loaded[name].dtype == original[name].dtype


# ---------------------------------------------------------------- item 16: one check


def test_complex_observations_are_refused_not_cast(tmp_path):
    arrays = _arrays()
    arrays["features"] = arrays["features"].astype(np.complex64)
    _save(tmp_path, "c", arrays)
    with pytest.raises(DataError, match=r"c\.npz: 'features'.*complex"):
        read_sample(tmp_path / "c.npz")
    rewards = _arrays()
    rewards["rewards"] = rewards["rewards"].astype(np.complex128)
    _save(tmp_path, "r", rewards)
    with pytest.raises(DataError, match=r"'rewards'.*complex"):
        read_sample(tmp_path / "r.npz")


@pytest.mark.parametrize("declared", [0, -2, "3", 2.5, True, None, [3]])
def test_an_invalid_declared_action_dim_is_refused(tmp_path, declared):
    _save(tmp_path, "s", _arrays(), meta={"action_dim": declared})
    with pytest.raises(DataError, match=r"s\.json|s\.npz") as caught:
        ReplayDataset(tmp_path / "s.npz").action_dim  # noqa: B018
    assert "action_dim" in str(caught.value) and "positive integer" in str(caught.value)
    report = validate_dataset(tmp_path / "s.npz")
    assert not report.ok
    assert any("action_dim" in p["problem"] for p in report.problems)


def test_action_ids_at_or_above_the_declared_action_dim_are_refused(tmp_path):
    arrays = _arrays(actions=3)
    arrays["actions"][2] = 3
    _save(tmp_path, "s", arrays, meta={"action_dim": 3})
    with pytest.raises(DataError, match=r"s\.npz.*action id 3.*action_dim 3"):
        ReplayDataset(tmp_path / "s.npz").action_dim  # noqa: B018
    report = validate_dataset(tmp_path / "s.npz")
    assert [p["file"] for p in report.problems] == [str(tmp_path / "s.npz")]
    assert "action_dim 3" in report.problems[0]["problem"]


def test_a_huge_action_id_is_refused_before_any_network_is_sized(tmp_path):
    arrays = _arrays()
    arrays["actions"][0] = 2**40
    _save(tmp_path, "s", arrays)
    with pytest.raises(DataError, match=r"s\.npz.*1099511627776.*TOWNLET_MAX_ACTIONS"):
        ReplayDataset(tmp_path / "s.npz").action_dim  # noqa: B018
    with pytest.raises(DataError, match="TOWNLET_MAX_ACTIONS"):
        require_valid_dataset(tmp_path / "s.npz")


def test_fixture_per_sample_action_dims_still_load():
    # The original wrote each sample's own max id + 1; the dataset takes the largest.
    assert ReplayDataset(FIXTURES / "queue_conflict_capture").action_dim == 4
    assert ReplayDataset(FIXTURES / "replay_samples" / "replay_manifest.json").action_dim == 3


@pytest.mark.parametrize("difference", ["feature widths", "map in one sample"])
def test_what_validate_rejects_the_training_check_rejects(tmp_path, difference):
    first = _arrays(features=3)
    second = _arrays(features=4 if difference == "feature widths" else 3, seed=1)
    if difference == "map in one sample":
        second["map"] = np.zeros((5, 2, 3, 3), np.float32)
    _save(tmp_path, "a", first)
    _save(tmp_path, "b", second)
    manifest = _manifest(tmp_path, ["a.npz", "b.npz"])
    report = validate_dataset(manifest)
    assert not report.ok
    with pytest.raises(DataError) as caught:
        require_valid_dataset(manifest)
    message = str(caught.value)
    assert str(manifest) in message and "observations differ in shape" in message
    assert "townlet dataset validate" in message


def test_every_problem_validate_finds_is_in_the_training_refusal(tmp_path):
    nan = _arrays()
    nan["rewards"][1] = np.nan
    _save(tmp_path, "nan", nan)
    high = _arrays()
    high["actions"][0] = 9
    _save(tmp_path, "high", high, meta={"action_dim": 3})
    manifest = _manifest(tmp_path, ["nan.npz", "high.npz"])
    report = validate_dataset(manifest)
    assert len(report.problems) == 2
    with pytest.raises(DataError) as caught:
        require_valid_dataset(manifest)
    for problem in report.problems:
        assert problem["file"] in str(caught.value)
        assert problem["problem"] in str(caught.value)


def test_the_training_check_summarises_a_good_dataset():
    summary = require_valid_dataset(FIXTURES / "queue_conflict_capture")
    assert (summary.trajectories, summary.transitions, summary.action_dim) == (3, 180, 4)
    assert (summary.features_dim, summary.map_shape) == (36, (4, 11, 11))
    assert {f["found_by"] for f in summary.files} == {"manifest folder"}


# ---------------------------------------------------------------- item 19: path resolution


def _cwd_only_manifest(tmp_path: Path) -> tuple[Path, Path]:
    """A manifest in `elsewhere/` naming `b.npz`, which exists only in `work/` (the cwd)."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    _save(elsewhere, "a", _arrays())
    _save(work, "b", _arrays(seed=1), meta={})
    return _manifest(elsewhere, ["a.npz", {"sample": "b.npz", "meta": "b.json"}]), work


def test_entries_found_only_in_the_working_directory_are_named_in_a_warning(tmp_path, monkeypatch):
    manifest, work = _cwd_only_manifest(tmp_path)
    monkeypatch.chdir(work)
    warnings: list[str] = []
    source = open_source(manifest, warn=warnings.append)
    assert len(source.entries) == 2
    assert len(warnings) == 1
    assert "b.npz" in warnings[0] and "b.json" in warnings[0] and "a.npz" not in warnings[0]
    assert str(work) in warnings[0] and "strict" in warnings[0]
    found = {Path(f["sample"]).name: f["found_by"] for f in source.resolution()}
    assert found == {"a.npz": "manifest folder", "b.npz": "working directory"}


def test_strict_paths_refuse_the_working_directory_fallback(tmp_path, monkeypatch):
    manifest, work = _cwd_only_manifest(tmp_path)
    monkeypatch.chdir(work)
    with pytest.raises(DataError, match=r"m\.json.*'b\.npz'.*strict"):
        open_source(manifest, strict_paths=True)
    with pytest.raises(DataError, match=r"'b\.npz'.*strict"):
        require_valid_dataset(manifest, strict_paths=True)


def test_the_summaries_record_which_rule_found_each_file(tmp_path, monkeypatch):
    manifest, work = _cwd_only_manifest(tmp_path)
    monkeypatch.chdir(work)
    summary = inspect_dataset(manifest)
    assert [(Path(f["sample"]).name, f["found_by"]) for f in summary["files"]] == [
        ("a.npz", "manifest folder"),
        ("b.npz", "working directory"),
    ]
    report = validate_dataset(manifest).as_dict()
    assert [f["found_by"] for f in report["files"]] == ["manifest folder", "working directory"]


def test_cli_validate_warns_and_strict_paths_fails(townlet, tmp_path, monkeypatch):
    manifest, work = _cwd_only_manifest(tmp_path)
    monkeypatch.chdir(work)
    code, out, err = townlet("dataset", "validate", str(manifest))
    assert code == 0, out + err
    assert "townlet: warning:" in err and "b.npz" in err and "working directory" in err
    code, out, err = townlet("dataset", "validate", "--strict-paths", str(manifest))
    assert code == 1
    assert "'b.npz'" in out and "strict" in out
    code, out, _ = townlet("dataset", "validate", "--json", str(manifest))
    assert json.loads(out)["files"][1]["found_by"] == "working directory"


def test_the_original_manifest_still_resolves_through_the_working_directory(tmp_path, monkeypatch):
    original = json.loads((FIXTURES / "bc_idle_v1" / "manifest_original.json").read_text())
    root = tmp_path / "repo"
    for entry in original:
        for key in ("sample", "meta"):
            target = root / entry[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((FIXTURES / "bc_idle_v1" / Path(entry[key]).name).read_bytes())
    manifest = tmp_path / "elsewhere" / "manifest_original.json"
    manifest.parent.mkdir()
    manifest.write_text(json.dumps(original))
    monkeypatch.chdir(root)
    warnings: list[str] = []
    source = open_source(manifest, warn=warnings.append)
    assert ReplayDataset(source).transitions == 400
    assert len(warnings) == 1 and all(Path(e["sample"]).name in warnings[0] for e in original)
    assert os.fspath(root) in warnings[0]
