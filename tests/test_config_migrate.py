"""`townlet config migrate`: original Townlet training configs in today's format.

The fixtures in tests/fixtures/original_configs/ are written from the original's field
list (../shared/reference/townlet_original_behaviour.md §3, §4.1, §5.1, §6). The promise
pinned here: every field either converted or reported, never silently dropped; the
converted config validates (and trains) the way `townlet train -c` reads it; what cannot be
converted is refused by the field's path.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from townlet_core.errors import ConfigError
from townlet_core.migration import MigrationResult, Note, migrate, original_fields
from townlet_core.runtime.config import build_run_config, load_config_file, validate_section
from townlet_core.runtime.registry import StrategyRegistry

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "original_configs"
GOOD = sorted(p for p in FIXTURES.glob("*.yaml") if not p.name.startswith("bad_"))
REFERENCE = ROOT.parent / "shared" / "reference" / "townlet_original_behaviour.md"
DOCS = ROOT / "docs" / "migrating.md"


def _load(name: str) -> dict[str, Any]:
    return load_config_file(FIXTURES / name)


def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every value the file sets, `a.b[0].c` style; an empty mapping or
    list is a leaf of its own (the file still wrote it)."""
    if isinstance(node, Mapping) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list) and node:
        for index, value in enumerate(node):
            yield from _leaves(value, f"{path}[{index}]")
    else:
        yield path, node


def _value_at(config: Mapping[str, Any], path: str) -> Any:
    node: Any = config
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(node, list) or index >= len(node):
                return KeyError
            node = node[index]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return KeyError
    return node


def _same(written: Any, converted: Any) -> bool:
    """Equal, or the same number (the original's pydantic read `3e-4`, a YAML string)."""
    if written == converted:
        return True
    try:
        return isinstance(converted, float) and float(written) == converted
    except (TypeError, ValueError):
        return False


def _accounted(path: str, value: Any, result: MigrationResult) -> bool:
    """A leaf is converted (same path, same value) or named by a note; a dropped section's
    note covers everything under it."""
    if _same(value, _value_at(result.config, path)):
        return True
    for note in result.notes:
        if note.original == path:
            return True
        if note.kind == "dropped" and note.original and path.startswith(f"{note.original}."):
            return True
        if note.kind == "dropped" and note.original and path.startswith(f"{note.original}["):
            return True
    return False


# --------------------------------------------------------------------------- coverage


def test_the_full_fixture_sets_every_original_field():
    """The catalogue (from the original's models) is what `full.yaml` is checked against."""
    written = {re.sub(r"\[\d+\]", "[]", path) for path, _ in _leaves(_load("full.yaml"))}
    missing = [
        field
        for field in original_fields()
        if field not in written
        and not any(w.startswith((f"{field}.", f"{field}[")) for w in written)
    ]
    assert not missing, f"full.yaml does not set: {missing}"


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_every_field_is_converted_or_reported(path: Path):
    original = load_config_file(path)
    result = migrate(original, source=path.name)
    leaves = list(_leaves(original))
    silent = [leaf for leaf, value in leaves if not _accounted(leaf, value, result)]
    assert leaves and not silent, f"silently dropped from {path.name}: {silent}"


def test_every_note_names_a_field_the_original_had():
    """Notes point at real original paths (catalogue entries), so a user can find them."""
    catalogue = set(original_fields())
    result = migrate(_load("full.yaml"))
    for note in result.notes:
        if note.original is None:
            continue
        generic = re.sub(r"\[\d+\]", "[]", note.original)
        below = (f"{generic}.", f"{generic}[")
        assert (
            generic in catalogue
            or any(f.startswith(below) for f in catalogue)
            or (
                generic.split(".")[0] == "stability"  # its canaries: simulation settings
            )
        ), note


def test_the_catalogue_matches_the_reference():
    """Every field the reference names (PPO table §4.1, training.bc §3, the stage format
    §5.1 and every `training.X` it mentions) is in the catalogue, and the other way round
    for PPO and the stages."""
    if not REFERENCE.exists():
        pytest.skip(f"the reference is not in this checkout ({REFERENCE})")
    text = REFERENCE.read_text(encoding="utf-8")
    catalogue = set(original_fields())
    ppo_table = text.split("### 4.1", 1)[1].split("### 4.2", 1)[0]
    ppo = set(re.findall(r"^\| `(\w+)` \|", ppo_table, flags=re.MULTILINE))
    assert len(ppo) == 12
    assert {f"ppo.{name}" for name in ppo} == {f for f in catalogue if f.startswith("ppo.")}
    bc_line = next(line for line in text.splitlines() if "Config `training.bc`" in line)
    for name in re.findall(r"`(\w+)` \(", bc_line):
        assert f"training.bc.{name}" in catalogue
    stage_line = next(line for line in text.splitlines() if "Each stage is {" in line)
    stage = set(re.findall(r"`(\w+)` (?:int|\"bc\"|float)", stage_line))
    assert stage == {"cycle", "mode", "epochs", "bc_weight"}
    assert {f"training.anneal_schedule[].{n}" for n in stage} <= catalogue
    for name in set(re.findall(r"(?<![/\w])training\.(\w+)", text)):
        assert any(
            f == f"training.{name}" or f.startswith(f"training.{name}") for f in catalogue
        ), name
    assert "stability.promotion.required_passes" in catalogue


def test_docs_list_every_field_and_flag():
    """docs/migrating.md names every catalogue field and every flag of the original's
    scripts/run_training.py (the flag table of the reference, when it is here)."""
    docs = DOCS.read_text(encoding="utf-8")
    missing = [f for f in original_fields() if f"`{f}`" not in docs]
    assert not missing, f"docs/migrating.md does not list: {missing}"
    if not REFERENCE.exists():
        pytest.skip(f"the reference is not in this checkout ({REFERENCE})")
    table = REFERENCE.read_text(encoding="utf-8").split("### 8.1 Flags", 1)[1].split("###")[0]
    flags = set(re.findall(r"`(--[\w-]+)", table))
    assert len(flags) >= 30
    assert not [flag for flag in sorted(flags) if f"`{flag}" not in docs]


# --------------------------------------------------------------------------- validity


def _registry() -> StrategyRegistry:
    registry = StrategyRegistry(warn=lambda _m: None)
    if not {"anneal", "bc", "ppo"} <= set(registry.available()):
        pytest.skip("the first-party strategies are not installed here")
    return registry


def _validate(config: Mapping[str, Any], registry: StrategyRegistry) -> None:
    """As `townlet train -c` does (Orchestrator._configure), then each anneal stage as
    the stage runner does: its strategy's section updated with its overrides."""
    strategy = str(config["strategy"])
    run = build_run_config(
        strategy,
        {strategy: registry.config_model(strategy)},
        data=config,
        optional_section=lambda name: (
            registry.config_model(name) if name in registry.available() else None
        ),
    )
    for index, stage in enumerate(config.get("anneal", {}).get("schedule", [])):
        name = stage["strategy"]
        base = run.sections[name].model_dump(exclude_unset=True) if name in run.sections else {}
        validate_section(
            registry.config_model(name),
            {**base, **stage["overrides"]},
            section=name,
            source=f"stage {index}",
        )


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_the_converted_config_validates_as_train_reads_it(path: Path):
    registry = _registry()
    _validate(migrate(load_config_file(path)).config, registry)


def test_a_converted_anneal_config_trains_and_passes(townlet_in_tmp, tmp_path):
    """The original's acceptance rehearsal shape (BC on idle_v1, then PPO on it as replay)
    converted, then run with `townlet train -c`: PASS, as the original's rehearsal was.
    About 3 s (torch import included)."""
    pytest.importorskip("torch")
    _registry()
    original = _load("anneal.yaml")
    manifest = str(ROOT / "tests" / "fixtures" / "townlet" / "bc_idle_v1" / "manifest.json")
    original["training"]["replay_manifest"] = manifest
    original["training"]["bc"]["manifest"] = manifest
    old = tmp_path / "old.yaml"
    old.write_text(json.dumps(original))  # JSON is YAML
    code, _, err = townlet_in_tmp("config", "migrate", str(old), "-o", "new.yaml")
    assert code == 0, err
    code, out, err = townlet_in_tmp("train", "-c", "new.yaml", "-q", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["anneal_status"] == "PASS"
    assert [stage["strategy"] for stage in result["stages"]] == ["bc", "ppo"]


# --------------------------------------------------------------------------- meanings


def _notes(result: MigrationResult, original: str) -> list[Note]:
    return [note for note in result.notes if note.original == original]


def test_ppo_fields_are_renamed_and_the_originals_defaults_written():
    result = migrate(_load("ppo_replay.yaml"))
    ppo = result.config["ppo"]
    assert result.strategy == "ppo"
    assert ppo["dataset"] == "tests/fixtures/townlet/replay_samples/replay_manifest.json"
    assert ppo["learning_rate"] == pytest.approx(3e-4)  # "3e-4", a YAML 1.1 string
    assert ppo["clip_range"] == 0.1 and ppo["vf_coef"] == 0.5 and ppo["ent_coef"] == 0.01
    assert ppo["advantage_normalization"] == "batch"
    assert (ppo["update_epochs"], ppo["replay_updates"]) == (1, 1)
    assert (ppo["lr_schedule"], ppo["clip_schedule"]) == ("constant", "constant")
    assert [n.kind for n in _notes(result, "ppo.clip_param")] == ["renamed"]
    assert _notes(result, "ppo.clip_param")[0].new == "ppo.clip_range"
    # replay data: no fixed batch, so the chunk is mini_batch_size; num_mini_batches goes
    assert ppo["minibatch_size"] == 16
    assert [n.kind for n in _notes(result, "ppo.num_mini_batches")] == ["dropped"]


def test_rollout_applies_the_originals_minibatch_rule():
    """One rollout of 1 env x 64 ticks: min(mini_batch_size 32, 64 // num_mini_batches 4)
    = 16 transitions per step. max_grad_norm 0 meant no clipping: null today."""
    result = migrate(_load("rollout.yaml"))
    ppo = result.config["ppo"]
    assert (ppo["num_envs"], ppo["num_steps"], ppo["minibatch_size"]) == (1, 64, 16)
    assert ppo["max_grad_norm"] is None
    assert ppo["env"] == "CartPole-v1"
    assert [n.kind for n in _notes(result, "training.rollout_ticks")] == ["changed"]
    assert [n.kind for n in _notes(result, "ppo.num_epochs")] == ["dropped"]
    assert "never read it" in _notes(result, "ppo.num_epochs")[0].message
    dropped = {n.original for n in result.notes if n.kind == "dropped"}
    assert {"training.social_reward_schedule", "training.rollout_auto_seed_agents"} <= dropped


def test_bc_fields_move_to_the_bc_section():
    result = migrate(_load("bc.yaml"))
    assert result.strategy == "bc"
    assert result.config["device"] == "cpu"
    bc = result.config["bc"]
    assert bc["dataset"] == "tests/fixtures/townlet/bc_idle_v1/manifest.json"
    assert (bc["learning_rate"], bc["batch_size"], bc["epochs"]) == (0.01, 32, 3)
    assert bc["early_stopping_patience"] is None
    assert "ppo" not in result.config
    assert [n.kind for n in _notes(result, "ppo")] == ["dropped"]


def test_the_anneal_schedule_becomes_stages_and_bc_weight_is_reported_not_used():
    result = migrate(_load("full.yaml"))
    anneal = result.config["anneal"]
    assert [(s["cycle"], s["strategy"]) for s in anneal["schedule"]] == [
        (0, "bc"),
        (1, "ppo"),
        (2, "ppo"),
    ]
    # a ppo stage's epochs were passes over the replay data; a bc stage's were ignored
    assert [s["overrides"] for s in anneal["schedule"]] == [
        {},
        {"replay_updates": 2},
        {"replay_updates": 1},
    ]
    assert result.config["bc"]["epochs"] == 2
    ignored = _notes(result, "training.anneal_schedule[0].epochs")
    assert [n.kind for n in ignored] == ["dropped"] and "training.bc.epochs" in ignored[0].message
    for index in range(3):
        (note,) = _notes(result, f"training.anneal_schedule[{index}].bc_weight")
        assert note.kind == "dropped" and "telemetry only" in note.message
    assert not re.search(r"bc_weight|anneal_ratio", json.dumps(result.config))
    assert (anneal["accuracy_threshold"], anneal["required_passes"]) == (0.85, 3)
    assert [n.kind for n in _notes(result, "training.anneal_accuracy_threshold")] == ["changed"]
    assert result.config["ppo"]["value_clip"] is None  # 0: unclipped, as before
    assert result.config["ppo"]["advantage_normalization"] == "none"
    assert result.config["seed"] == 11


def test_mode_wins_over_training_source_as_the_originals_flag_did():
    result = migrate(_load("full.yaml"), mode="BC")
    assert result.strategy == "bc"
    (note,) = _notes(result, "training.source")
    assert note.kind == "changed" and "--mode bc" in note.message
    assert {"training.anneal_schedule", "ppo"} <= {
        n.original for n in result.notes if n.kind == "dropped"
    }


# --------------------------------------------------------------------------- refusals

REFUSALS = [
    ("bad_unknown_top_level.yaml", "unknown top-level key 'trainig'; did you mean 'training'?"),
    ("bad_stage_mode.yaml", "training.anneal_schedule[1].mode: Input should be 'bc' or 'ppo'"),
    ("bad_bc_weight.yaml", "training.anneal_schedule[0].bc_weight: Input should be less than"),
    ("bad_mixed.yaml", "training.source: 'mixed' ran two independent PPO trainings"),
    ("bad_ppo_key.yaml", "ppo.clip_parm: unknown key; did you mean 'clip_param'?"),
    ("bad_no_bc_manifest.yaml", "training.bc.manifest: a bc stage of the anneal schedule needs"),
    ("bad_empty_schedule.yaml", "training.anneal_schedule: empty"),
    ("bad_clip_zero.yaml", "ppo.clip_param: 0 cannot be converted"),
    ("bad_out_of_range.yaml", "ppo.num_mini_batches: Input should be greater than or equal to 1"),
    ("bad_device.yaml", "training.bc.device: unknown device 'tpu'"),
]


def test_every_bad_fixture_has_a_refusal_case():
    assert {name for name, _ in REFUSALS} == {p.name for p in FIXTURES.glob("bad_*.yaml")}


@pytest.mark.parametrize(("name", "expected"), REFUSALS, ids=[n for n, _ in REFUSALS])
def test_refusals_name_the_field(townlet_in_tmp, name: str, expected: str):
    path = FIXTURES / name
    code, out, err = townlet_in_tmp("config", "migrate", str(path))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"townlet: error: {path}: cannot convert: ")
    assert expected in err


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ({"training": {"source": "replay"}}, "training.replay_manifest: PPO on replay data"),
        ({}, "training.replay_manifest"),
        (
            {"training": {"source": "rollout", "rollout_ticks": 0}},
            "training.rollout_ticks: must be positive",
        ),
        (
            {"training": {"source": "rollout", "replay_manifest": "x.json"}},
            "training.replay_manifest: the original refused a replay manifest in rollout mode",
        ),
        (
            {"training": {"source": "anneal", "anneal_schedule": [{"mode": "ppo"}]}},
            "training.replay_manifest: the schedule's ppo stages",
        ),
        ({"training": {"source": "ppo"}}, "training.source: Input should be 'replay'"),
        ({"training": ["bc"]}, "training: must be a mapping"),
        ({"seed": -1}, "seed: must be a whole number"),
        ({"stability": {"promotion": {"required_passes": 11}}}, "stability.promotion.required"),
    ],
)
def test_refusals_in_memory(original: dict[str, Any], expected: str):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        migrate(original, source="old.yaml")


def test_an_unknown_mode_is_refused():
    with pytest.raises(ConfigError, match=r"--mode dagger: unknown mode; use one of replay"):
        migrate({}, mode="dagger")


# --------------------------------------------------------------------------- the command


def test_the_command_prints_yaml_and_one_note_per_line(townlet_in_tmp):
    code, out, err = townlet_in_tmp("config", "migrate", str(FIXTURES / "rollout.yaml"))
    assert code == 0, err
    assert out.startswith("# Converted from ")
    import yaml

    assert yaml.safe_load(out) == migrate(_load("rollout.yaml")).config
    lines = err.splitlines()
    result = migrate(_load("rollout.yaml"))
    assert lines[: len(result.notes)] == [str(note) for note in result.notes]
    assert lines[-1].startswith(f"townlet: converted {FIXTURES / 'rollout.yaml'} for strategy")
    assert "dropped    training.rollout_auto_seed_agents: no equivalent" in err


def test_output_is_written_once_and_overwritten_only_with_force(townlet_in_tmp, tmp_path):
    old = str(FIXTURES / "bc.yaml")
    code, out, err = townlet_in_tmp("config", "migrate", old, "-o", "new.yaml")
    assert code == 0, err
    assert out == ""
    assert load_config_file(tmp_path / "new.yaml") == migrate(_load("bc.yaml")).config
    (tmp_path / "new.yaml").write_text("strategy: ppo\n")
    code, _, err = townlet_in_tmp("config", "migrate", old, "-o", "new.yaml")
    assert code == 2
    assert "new.yaml: the file already exists; pass --force to overwrite it" in err
    assert (tmp_path / "new.yaml").read_text() == "strategy: ppo\n"
    code, _, err = townlet_in_tmp("config", "migrate", old, "-o", "new.yaml", "--force")
    assert code == 0, err
    assert load_config_file(tmp_path / "new.yaml")["strategy"] == "bc"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_refused_config_writes_nothing(townlet_in_tmp, tmp_path):
    code, _, _ = townlet_in_tmp(
        "config", "migrate", str(FIXTURES / "bad_mixed.yaml"), "-o", "new.yaml"
    )
    assert code == 2
    assert not (tmp_path / "new.yaml").exists()


def test_json_output_and_json_files(townlet_in_tmp, tmp_path):
    old = str(FIXTURES / "anneal.yaml")
    code, out, err = townlet_in_tmp("config", "migrate", old, "--json", "-o", "new.json")
    assert code == 0, err
    report = json.loads(out)
    expected = migrate(_load("anneal.yaml"))
    assert report["config"] == expected.config
    assert report["notes"] == [note.as_dict() for note in expected.notes]
    assert (report["strategy"], report["output"]) == ("anneal", "new.json")
    assert report["checked"] is (
        {"anneal", "bc", "ppo"} <= set(StrategyRegistry(warn=lambda _m: None).available())
    )
    assert json.loads((tmp_path / "new.json").read_text()) == expected.config
    code, _, err = townlet_in_tmp("config", "migrate", old, "-o", "new.toml")
    assert code == 2
    assert "write the converted config as .yaml, .yml, .json" in err


def test_migrate_does_not_import_torch(site_env):
    """The conversion and its check against the strategies' config models (imported
    through the registry) stay torch-free, in a fresh interpreter that has torch."""
    _registry()
    probe = (
        "import sys\n"
        "from townlet_core.cli import main\n"
        f"assert main(['config', 'migrate', {str(FIXTURES / 'full.yaml')!r}, '--json']) == 0\n"
        "assert main(['config', 'migrate', '--help']) == 0\n"
        "heavy = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not heavy, heavy[:5]\n"
        "print('ok')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=site_env,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.rstrip().endswith("ok")
    assert '"checked": true' in completed.stdout
