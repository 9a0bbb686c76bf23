"""Run config: files in three formats, `--set` overrides, and errors that point at the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from townlet_core.errors import ConfigError
from townlet_core.runtime.config import build_run_config, load_config_file


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = 64


class Toy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    iterations: int = Field(10, ge=1)
    learning_rate: float = 1e-3
    label: str = "toy"
    tolerance: float | None = None
    layers: list[int] = Field(default_factory=lambda: [32, 32])
    net: Inner = Field(default_factory=Inner)
    tags: dict[str, str] = Field(default_factory=dict)


SECTIONS = {"toy": Toy}


def _build(tmp_path: Path | None = None, text: str | None = None, suffix: str = ".yaml", **kw):
    file = None
    if text is not None and tmp_path is not None:
        file = tmp_path / f"config{suffix}"
        file.write_text(text)
    return build_run_config(kw.pop("strategy", "toy"), SECTIONS, file=file, **kw)


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".yaml", "seed: 7\ntoy:\n  iterations: 3\n  net: {width: 8}\n"),
        (".yml", "seed: 7\ntoy:\n  iterations: 3\n  net: {width: 8}\n"),
        (".toml", "seed = 7\n[toy]\niterations = 3\n[toy.net]\nwidth = 8\n"),
        (".json", json.dumps({"seed": 7, "toy": {"iterations": 3, "net": {"width": 8}}})),
    ],
)
def test_yaml_toml_and_json_files_give_the_same_config(tmp_path, suffix, text):
    config = _build(tmp_path, text, suffix)
    assert config.run.seed == 7
    toy = config.section("toy")
    assert isinstance(toy, Toy)
    assert (toy.iterations, toy.net.width, toy.label) == (3, 8, "toy")


def test_no_file_gives_every_default():
    config = _build()
    assert 0 <= config.run.seed < 2**31  # drawn (and recorded by the orchestrator)
    assert config.run.device == "auto"
    assert config.section("toy") == Toy()


def test_empty_yaml_file_is_an_empty_config(tmp_path):
    assert _build(tmp_path, "").section("toy") == Toy()


@pytest.mark.parametrize(
    ("override", "field", "expected"),
    [
        ("toy.iterations=5", "iterations", 5),
        ("toy.learning_rate=1e-4", "learning_rate", 1e-4),
        ("toy.label=123", "label", "123"),  # a string field keeps the text as typed
        ("toy.tolerance=null", "tolerance", None),
        ("toy.tolerance=0.5", "tolerance", 0.5),
        ("toy.layers=[8, 4]", "layers", [8, 4]),
        ("toy.tags={a: b}", "tags", {"a": "b"}),
        ("toy.tags.color=red", "tags", {"color": "red"}),
        ("toy.net.width=16", "net", Inner(width=16)),
    ],
)
def test_set_overrides_are_coerced_through_the_model(override, field, expected):
    config = _build(overrides=[override])
    assert getattr(config.section("toy"), field) == expected


def test_precedence_is_file_then_set_then_explicit_options(tmp_path):
    config = _build(
        tmp_path,
        "seed: 1\ndevice: cpu\ntoy: {iterations: 2}\n",
        overrides=["seed=2", "toy.iterations=3"],
        explicit={"seed": 3, "device": None},
    )
    assert config.run.seed == 3
    assert config.run.device == "cpu"
    assert config.section("toy").iterations == 3


def test_strategy_can_come_from_the_file(tmp_path):
    config = _build(tmp_path, "strategy: toy\n", strategy=None)
    assert config.strategy == "toy"


def test_missing_strategy_says_how_to_give_one():
    with pytest.raises(ConfigError, match="pass --strategy NAME"):
        build_run_config(None, {})


def test_unknown_top_level_key_suggests_the_close_one(tmp_path):
    with pytest.raises(ConfigError) as info:
        _build(tmp_path, "sed: 3\n")
    assert (
        str(info.value)
        == f"{tmp_path / 'config.yaml'}: unknown key 'sed' at the top level; did you mean 'seed'?"
    )


def test_section_of_a_strategy_not_in_the_run_is_rejected(tmp_path):
    with pytest.raises(
        ConfigError, match=r"unknown key 'ppo' at the top level; sections allowed here: toy"
    ):
        _build(tmp_path, "ppo: {}\n")


def test_unknown_key_in_a_section_names_file_path_and_suggestion(tmp_path):
    with pytest.raises(ConfigError) as info:
        _build(tmp_path, "toy:\n  iteratons: 3\n")
    assert str(info.value) == (
        f"{tmp_path / 'config.yaml'}: toy.iteratons: unknown key; did you mean 'iterations'?"
    )


def test_bad_value_names_file_field_and_problem(tmp_path):
    with pytest.raises(ConfigError) as info:
        _build(tmp_path, "toy:\n  iterations: 0\n")
    assert str(info.value) == (
        f"{tmp_path / 'config.yaml'}: toy.iterations: Input should be greater than or equal to 1"
    )


def test_bad_set_value_blames_the_override_not_the_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        _build(tmp_path, "seed: 1\n", overrides=["toy.iterations=lots"])
    assert str(info.value).startswith("--set toy.iterations=lots: toy.iterations: Input should be")


def test_bad_explicit_option_names_the_option():
    with pytest.raises(
        ConfigError, match=r"^--device gpu: device: Value error, unknown device 'gpu'"
    ):
        _build(explicit={"device": "gpu"})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "toy.iteration=3",
            "--set toy.iteration=3: unknown key 'iteration' in toy; did you mean 'iterations'?",
        ),
        (
            "tooy.iterations=3",
            "--set tooy.iterations=3: unknown key 'tooy' at the top level; did you mean 'toy'?",
        ),
        ("seed.value=3", "--set seed.value=3: 'seed' is a value, not a section"),
        ("toy.net.dept=3", "--set toy.net.dept=3: unknown key 'dept' in toy.net"),
        ("seed", "--set seed: expected KEY=VALUE with a dotted KEY, e.g. seed=3"),
        ("toy..x=1", "--set toy..x=1: expected KEY=VALUE with a dotted KEY, e.g. seed=3"),
    ],
)
def test_set_on_a_missing_path_is_refused(override, message):
    with pytest.raises(ConfigError) as info:
        _build(overrides=[override])
    assert str(info.value) == message


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_known_devices_are_accepted(device):
    assert _build(explicit={"device": device}).run.device == device


def test_unsupported_config_format(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[x]\n")
    with pytest.raises(
        ConfigError,
        match=r"config.ini: unsupported config format '.ini'; use one of .yaml, .yml, .toml, .json",
    ):
        load_config_file(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file does not exist"):
        load_config_file(tmp_path / "missing.yaml")


def test_unreadable_config_file(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match=r"binary\.yaml: cannot read config file"):
        load_config_file(path)


@pytest.mark.parametrize(
    ("suffix", "text", "message"),
    [
        (".yaml", "a: [1, 2\nb: 3\n", r"invalid YAML at line \d+"),
        (".json", '{"a": 1,,}', "invalid JSON at line 1"),
        (".toml", "a = = 1", "invalid TOML"),
        (".yaml", "- 1\n- 2\n", "the top level must be a mapping of settings, not a list"),
    ],
)
def test_malformed_config_files(tmp_path, suffix, text, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config_file(path)


def test_snapshot_is_json_ready():
    config = _build(overrides=["toy.iterations=4"])
    snapshot = json.loads(json.dumps(config.snapshot()))
    assert snapshot["toy"]["iterations"] == 4
    assert snapshot["strategy"] == "toy"
    assert snapshot["runs_root"] == "runs"


def test_a_run_without_a_seed_draws_a_fresh_one():
    """Two plain runs are two independent samples, not one repeated (the promotion ledger
    counts them as two pieces of evidence); the drawn seed is what config.json records."""
    seeds = {_build().run.seed for _ in range(8)}
    assert len(seeds) > 1
