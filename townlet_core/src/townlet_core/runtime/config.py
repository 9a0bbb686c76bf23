"""Run configuration: a YAML, TOML or JSON file plus `--set a.b=value` overrides.

A config file is one mapping. Its top level holds the run settings (`seed`, `device`,
`run_dir`, `runs_root`, `metrics`) and one section per strategy involved in the run, named
after the strategy (`cem:`, or `anneal:` with `bc:` and `ppo:` beside it). Each section is
validated by that strategy's own config model. Every error names the file (or override),
the field path and the problem; unknown keys get a "did you mean".
"""

from __future__ import annotations

import json
import re
import secrets
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from townlet_core._suggest import did_you_mean
from townlet_core.errors import ConfigError

CONFIG_SUFFIXES = (".yaml", ".yml", ".toml", ".json")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def draw_seed() -> int:
    """A fresh seed for a run started without one (recorded, so the run can be repeated)."""
    return secrets.randbelow(2**31)


class MetricsSettings(BaseModel):
    """How the run's `metrics.jsonl` is written."""

    model_config = ConfigDict(extra="forbid")

    rotate_after: int | None = Field(
        None, ge=1, description="Start a new file (NAME.1, NAME.2, ...) after this many lines."
    )


class RunSettings(BaseModel):
    """Settings of the run itself, shared by every strategy."""

    model_config = ConfigDict(extra="forbid")

    strategy: str | None = Field(None, description="Strategy to run (`--strategy` wins).")
    seed: int = Field(
        default_factory=draw_seed,
        ge=0,
        description="Seeds Python, NumPy and (in torch strategies) torch. Unset: a seed is drawn "
        "and recorded in config.json, so two plain runs are two independent samples.",
    )
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")
    run_dir: Path | None = Field(None, description="Run directory; default RUNS_ROOT/NAME-TIME.")
    runs_root: Path = Field(Path("runs"), description="Where run directories are created.")
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value):
            raise ValueError(f"unknown device {value!r}; use auto, cpu, cuda, cuda:N or mps")
        return value


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration: run settings plus one validated section per strategy."""

    run: RunSettings
    strategy: str
    sections: dict[str, BaseModel]
    #: Where the settings came from ("defaults", a file path), for messages and the snapshot.
    source: str = "defaults"
    overrides: tuple[str, ...] = field(default_factory=tuple)

    def section(self, name: str) -> BaseModel:
        return self.sections[name]

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready view: what `config.json` in the run directory records."""
        data: dict[str, Any] = self.run.model_dump(mode="json")
        data["strategy"] = self.strategy
        for name, model in self.sections.items():
            data[name] = model.model_dump(mode="json")
        return data


# --------------------------------------------------------------------------- files


def load_config_file(path: Path | str) -> dict[str, Any]:
    """Read a YAML, TOML or JSON config file into a mapping, or raise ConfigError."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise ConfigError(
            f"{path}: unsupported config format {suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(CONFIG_SUFFIXES)}"
        )
    if not path.exists():
        raise ConfigError(f"{path}: config file does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of settings, not a {type(data).__name__}"
        )
    return data


# --------------------------------------------------------------------------- overrides


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated so we can see whether a field holds a model or a mapping."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _check_path(path: Sequence[str], root_fields: Mapping[str, Any], label: str) -> None:
    """Fail with a did-you-mean unless `path` names a settable field of the schema."""
    annotation: Any = None
    fields: Mapping[str, Any] | None = root_fields
    for depth, key in enumerate(path):
        where = f"in {'.'.join(path[:depth])}" if depth else "at the top level"
        if fields is None:
            if _is_mapping(annotation):
                return  # free-form mapping: any key below is the user's to choose
            raise ConfigError(f"{label}: '{'.'.join(path[:depth])}' is a value, not a section")
        if key not in fields:
            raise ConfigError(f"{label}: unknown key '{key}' {where}{did_you_mean(key, fields)}")
        annotation = _unwrap(fields[key])
        fields = (
            {name: info.annotation for name, info in annotation.model_fields.items()}
            if _is_model(annotation)
            else None
        )


def _parse_value(text: str) -> Any:
    """Collections and null are parsed as YAML; scalars stay strings for the model to coerce."""
    stripped = text.strip()
    if stripped[:1] in ("[", "{") or stripped in ("null", "~", "None"):
        try:
            return yaml.safe_load(stripped)
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse {text!r}: {exc}") from exc
    return text


def apply_override(data: dict[str, Any], override: str, schema: Mapping[str, Any]) -> str:
    """Apply one `a.b=value` override to the raw mapping, after checking the path exists.

    Returns the dotted path it set.
    """
    label = f"--set {override}"
    key, sep, value = override.partition("=")
    path = [part.strip() for part in key.split(".")]
    if not sep or not all(path):
        raise ConfigError(f"{label}: expected KEY=VALUE with a dotted KEY, e.g. seed=3")
    _check_path(path, schema, label)
    target = data
    for part in path[:-1]:
        child = target.get(part)
        if child is None:
            child = target[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{label}: '{part}' holds a value, not a section")
        target = child
    target[path[-1]] = _parse_value(value)
    return ".".join(path)


# --------------------------------------------------------------------------- validation


def _format_errors(
    exc: ValidationError,
    source: str,
    prefix: str,
    model: type[BaseModel],
    origins: Mapping[str, str] | None = None,
) -> str:
    """One line: each problem as `SOURCE: path.to.field: what is wrong`.

    A value set by `--set` is blamed on that override rather than on the file.
    """
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        where = ".".join([prefix, *loc] if prefix else loc) or "(top level)"
        label = (origins or {}).get(where, source)
        if error["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            known = list(parent.model_fields) if parent else []
            problems.append(f"{label}: {where}: unknown key{did_you_mean(loc[-1], known)}")
        else:
            problems.append(f"{label}: {where}: {error['msg']}")
    return "; ".join(problems)


def _model_at(model: type[BaseModel], loc: Sequence[str]) -> type[BaseModel] | None:
    current: Any = model
    for key in loc:
        if not _is_model(current) or key not in current.model_fields:
            return None
        current = _unwrap(current.model_fields[key].annotation)
    return current if _is_model(current) else None


def validate_section(
    model: type[BaseModel],
    data: Any,
    *,
    section: str,
    source: str,
    origins: Mapping[str, str] | None = None,
) -> BaseModel:
    """Validate one strategy section; errors name the source, the dotted path and the problem."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {section}: must be a mapping of settings")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source, section, model, origins)) from exc


def build_run_config(
    strategy: str | None,
    section_models: Mapping[str, type[BaseModel]] | None = None,
    *,
    file: Path | str | None = None,
    data: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    explicit: Mapping[str, Any] | None = None,
    optional_section: Callable[[str], type[BaseModel] | None] | None = None,
) -> RunConfig:
    """Merge file (or mapping), overrides and explicit options, and validate everything.

    Precedence, lowest first: defaults, the file or `data`, `--set` overrides, then
    `explicit` options (`--seed`, `--device`, `--run-dir`). `section_models` maps each
    strategy involved (the one run and those it requires) to its config model;
    `optional_section(key)` gives the model of another top-level section the config names
    (an installed strategy a composing strategy may run as a stage), or None.
    """
    section_models = dict(section_models or {})
    source = str(file) if file is not None else ("config mapping" if data else "defaults")
    raw: dict[str, Any] = dict(load_config_file(file)) if file is not None else {}
    if data:
        raw.update(data)
    if optional_section is not None:
        named = [*raw, *(o.partition("=")[0].partition(".")[0].strip() for o in overrides)]
        for key in named:
            if key not in section_models and key not in RunSettings.model_fields:
                model = optional_section(key)
                if model is not None:
                    section_models[key] = model
    schema: dict[str, Any] = {
        name: info.annotation for name, info in RunSettings.model_fields.items()
    }
    schema.update(section_models)
    origins = {apply_override(raw, o, schema): f"--set {o}" for o in overrides}
    for key, value in (explicit or {}).items():
        if value is not None:
            raw[key] = value
            origins[key] = f"--{key.replace('_', '-')} {value}"
    if strategy is None:
        strategy = raw.get("strategy")
    if not strategy:
        raise ConfigError("no strategy given: pass --strategy NAME or set 'strategy' in the config")
    raw["strategy"] = strategy
    unknown = [key for key in raw if key not in schema]
    if unknown:
        key = unknown[0]
        allowed = list(schema)
        hint = did_you_mean(key, allowed)
        if not hint and key not in section_models:
            hint = (
                f"; sections allowed here: {', '.join(section_models) or '(none)'}"
                " (a section is named after a strategy in this run)"
            )
        raise ConfigError(f"{source}: unknown key '{key}' at the top level{hint}")
    run_part = {k: v for k, v in raw.items() if k in RunSettings.model_fields}
    try:
        run = RunSettings.model_validate(run_part)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source, "", RunSettings, origins)) from exc
    sections = {
        name: validate_section(model, raw.get(name), section=name, source=source, origins=origins)
        for name, model in section_models.items()
    }
    return RunConfig(
        run=run, strategy=strategy, sections=sections, source=source, overrides=tuple(overrides)
    )


def strategy_from_config(data: Mapping[str, Any] | None, file: Path | None) -> str:
    """The `strategy` a config names, needed before its sections can be validated."""
    source: Mapping[str, Any] = (
        data if data is not None else (load_config_file(file) if file else {})
    )
    name = source.get("strategy")
    if not name:
        raise ConfigError(
            "no strategy given: pass --strategy NAME or set 'strategy' in the config file"
        )
    if not isinstance(name, str):
        raise ConfigError(f"{file or 'config'}: strategy: must be a strategy name, got {name!r}")
    return name
