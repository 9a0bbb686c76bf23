"""Run configuration: a YAML, TOML or JSON file plus `--set a.b=value` overrides.

A config file is one mapping. Its top level holds the run settings (`seed`, `device`,
`run_dir`, `runs_root`, `metrics`, `track`) and one section per strategy involved in the run, named
after the strategy (`cem:`, or `anneal:` with `bc:` and `ppo:` beside it). Each section is
validated by that strategy's own config model. Every error names the file (or override),
the field path and the problem; unknown keys get a "did you mean".

Some checks hold for every strategy's model, so no strategy can forget them: a YAML key
given twice is refused (the last would silently win), a boolean given for a number field is
refused (pydantic would read `true` as 1), and an `inf` or `nan` in any float field is
refused (it would only fail later, when `config.json` is written) unless the field opts out
with `json_schema_extra={"allow_non_finite": True}`.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from townlet_core._suggest import did_you_mean
from townlet_core.errors import ConfigError

CONFIG_SUFFIXES = (".yaml", ".yml", ".toml", ".json")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
#: The largest seed a run takes. NumPy, torch and Gymnasium take larger ones (torch up to
#: 2**64 - 1, with the evaluation offsets added), but the promotion ledger stores the seed
#: in SQLite, whose integers are signed 64-bit.
MAX_SEED = 2**63 - 1
#: `json_schema_extra` key by which a float field says that inf or nan is meaningful for it
#: (its model must then also write it to JSON, e.g. `ser_json_inf_nan="strings"`).
ALLOW_NON_FINITE = "allow_non_finite"


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
        description=f"Seeds Python, NumPy and (in torch strategies) torch; 0 to {MAX_SEED}. "
        "Unset: a seed is drawn and recorded in config.json, so two plain runs are two "
        "independent samples.",
    )
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")
    run_dir: Path | None = Field(None, description="Run directory; default RUNS_ROOT/NAME-TIME.")
    runs_root: Path = Field(Path("runs"), description="Where run directories are created.")
    nproc: int = Field(
        1,
        ge=1,
        description="Processes (ranks) of a data-parallel run, started with torchrun "
        "(`--nproc`); only for strategies that support it.",
    )
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    track: list[str] = Field(
        default_factory=list,
        description="Trackers that also get the run's config, metrics and artifacts "
        "(`--track tensorboard,mlflow`; a comma list or a list): see docs/tracking.md.",
    )
    track_uri: str | None = Field(
        None,
        description="Where the mlflow tracker writes: an MLflow tracking URI. Unset: "
        "MLFLOW_TRACKING_URI, else a local store in RUNS_ROOT/mlruns.",
    )

    @field_validator("track", mode="before")
    @classmethod
    def _track_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # `--track a,b` and `--set track=a,b`
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("seed")
    @classmethod
    def _seed_in_range(cls, value: int) -> int:
        if not 0 <= value <= MAX_SEED:
            raise PydanticCustomError(
                "seed_range",
                "must be between 0 and {limit} (2**63 - 1: the promotion ledger stores "
                "seeds as 64-bit integers), got {value}",
                {"limit": MAX_SEED, "value": value},
            )
        return value

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
        data: dict[str, Any] = _json_ready(self.run)
        data["strategy"] = self.strategy
        for name, model in self.sections.items():
            data[name] = _json_ready(model)
        return data


def _json_ready(model: BaseModel) -> Any:
    """The model as JSON data, through its own JSON serialiser: a field that allows inf
    is then written as its model says (`ser_json_inf_nan="strings"`: "Infinity")."""
    return json.loads(model.model_dump_json())


# --------------------------------------------------------------------------- files


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.safe_load`'s loader (no Python objects), refusing a key given twice in one
    mapping: YAML itself lets the last silently win, hiding the setting the user meant.
    Merge keys (`<<: *base`) may still be overridden, as YAML intends."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, yaml.Mark] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first.get(key)
            except TypeError:  # an unhashable key: the base constructor explains it
                continue
            if seen is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key '{key}' (first given at line {seen.line + 1}); "
                    "remove one of them",
                    key_node.start_mark,
                )
            first[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no Python objects


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
            data = _load_yaml(text)
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
            return _load_yaml(stripped)
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
        label = _origin(where, source, origins) if loc else _whole(prefix, source, origins)
        if error["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            known = list(parent.model_fields) if parent else []
            problems.append(f"{label}: {where}: unknown key{did_you_mean(loc[-1], known)}")
        elif _non_finite_input(error, model, loc):
            problems.append(f"{label}: {where}: must be a finite number, got {error['input']}")
        else:
            problems.append(f"{label}: {where}: {error['msg']}")
    return "; ".join(problems)


#: Pydantic error types a number fails by being out of bounds (nan fails them all).
_BOUND_ERRORS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}
)


def _non_finite_input(error: Any, model: type[BaseModel], loc: Sequence[str]) -> bool:
    """True when a bound failed because the value is inf or nan (say so, not "should be
    greater than 0"), unless the field allows non-finite values."""
    if error["type"] not in _BOUND_ERRORS:
        return False
    value = error.get("input")
    try:
        number = float(value) if isinstance(value, (str, float)) else None
    except ValueError:
        return False
    if number is None or math.isfinite(number):
        return False
    parent = _model_at(model, loc[:-1])
    info = parent.model_fields.get(loc[-1]) if parent and loc else None
    return info is None or not _allows_non_finite(info)


def _origin(where: str, source: str, origins: Mapping[str, str] | None) -> str:
    """What set `where` (or the setting holding it, e.g. the list `hidden_sizes` for
    `hidden_sizes.0`): a `--set` or option, else the file."""
    parts = where.split(".")
    for end in range(len(parts), 0, -1):
        label = (origins or {}).get(".".join(parts[:end]))
        if label is not None:
            return label
    return source


def _whole(prefix: str, source: str, origins: Mapping[str, str] | None) -> str:
    """What set a section whose problem is no one field's (a check across fields): the
    file, and each `--set` inside the section."""
    inside = [
        label
        for key, label in (origins or {}).items()
        if not prefix or key == prefix or key.startswith(f"{prefix}.")
    ]
    return ", ".join([*([source] if source != "defaults" or not inside else []), *inside])


def _model_at(model: type[BaseModel], loc: Sequence[str]) -> type[BaseModel] | None:
    current: Any = model
    for key in loc:
        if not _is_model(current) or key not in current.model_fields:
            return None
        current = _unwrap(current.model_fields[key].annotation)
    return current if _is_model(current) else None


def _strip_annotated(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> list[Any]:
    """The types a field accepts: a union's members (None left out), else the type itself."""
    annotation = _strip_annotated(annotation)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [
            member
            for arg in typing.get_args(annotation)
            for member in _members(arg)
            if member is not type(None)
        ]
    return [annotation]


def _numbers_only(annotation: Any) -> bool:
    """True when the field takes numbers and nothing a boolean could honestly be."""
    members = _members(annotation)
    return bool(members) and all(m in (int, float) for m in members)


_SEQUENCES = (list, tuple, set, frozenset, Sequence, typing.Sequence)
_MAPPINGS = (dict, Mapping, typing.Mapping)


def _boolean_numbers(annotation: Any, value: Any, path: tuple[str, ...]) -> Iterator[str]:
    """Dotted paths where the raw data gives a boolean for a number field.

    Pydantic's lax mode reads `true` as 1 for an int or float field, so a YAML `yes` for
    `num_envs` would silently run one environment. Strings (from `--set`) stay untouched.
    """
    if isinstance(value, bool):
        if _numbers_only(annotation):
            yield ".".join(path)
        return
    for member in _members(annotation):
        origin = typing.get_origin(member)
        args = typing.get_args(member)
        if _is_model(member) and isinstance(value, Mapping):
            yield from _model_booleans(member, value, path)
            return
        if origin in _SEQUENCES and isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                item_type = _item_type(origin, args, index)
                yield from _boolean_numbers(item_type, item, (*path, str(index)))
            return
        if origin in _MAPPINGS and isinstance(value, Mapping) and len(args) == 2:
            for key, item in value.items():
                yield from _boolean_numbers(args[1], item, (*path, str(key)))
            return


def _item_type(origin: Any, args: tuple[Any, ...], index: int) -> Any:
    """The annotation of item `index` of a list[X], tuple[X, ...] or tuple[X, Y, Z]."""
    if origin is tuple and args and args[-1] is not Ellipsis:
        return args[index] if index < len(args) else Any
    return args[0] if args else Any


def _model_booleans(
    model: type[BaseModel], data: Mapping[str, Any], path: tuple[str, ...]
) -> Iterator[str]:
    for name, info in model.model_fields.items():
        for key in dict.fromkeys((name, info.alias or name)):
            if key in data:
                yield from _boolean_numbers(info.annotation, data[key], (*path, key))


def _refuse_boolean_numbers(
    model: type[BaseModel],
    data: Mapping[str, Any],
    prefix: tuple[str, ...],
    source: str,
    origins: Mapping[str, str] | None,
) -> None:
    problems = [
        f"{_origin(where, source, origins)}: {where}: must be a number, got a boolean; "
        "write the number itself"
        for where in _model_booleans(model, data, prefix)
    ]
    if problems:
        raise ConfigError("; ".join(problems))


def _allows_non_finite(info: Any) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and extra.get(ALLOW_NON_FINITE) is True


def _non_finite(value: Any, path: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """(dotted path, problem) for every inf or nan in a validated model, field by field."""
    if isinstance(value, float):
        if not math.isfinite(value):
            yield ".".join(path), f"must be a finite number, got {value!r}"
    elif isinstance(value, BaseModel):
        writes_strings = value.model_config.get("ser_json_inf_nan") == "strings"
        for name, info in type(value).model_fields.items():
            if not _allows_non_finite(info):
                yield from _non_finite(getattr(value, name), (*path, name))
            elif not writes_strings and any(_non_finite(getattr(value, name), ())):
                yield (
                    ".".join((*path, name)),
                    (
                        f"allows inf and nan, but {type(value).__name__} would write them to "
                        "config.json as null; its model_config needs ser_json_inf_nan='strings' "
                        "(a bug in the strategy's config model)"
                    ),
                )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _non_finite(item, (*path, str(key)))
    elif isinstance(value, (list, tuple, set, frozenset)):
        for index, item in enumerate(value):
            yield from _non_finite(item, (*path, str(index)))


def _refuse_non_finite(
    model: BaseModel, prefix: tuple[str, ...], source: str, origins: Mapping[str, str] | None
) -> None:
    """inf and nan pass pydantic's bounds (`gt=0` holds for inf) and only fail much later,
    when the config is written as JSON, naming no field: refuse them here, by name."""
    problems = [
        f"{_origin(where, source, origins)}: {where}: {problem}"
        for where, problem in _non_finite(model, prefix)
    ]
    if problems:
        raise ConfigError("; ".join(problems))


def _validate(
    model: type[BaseModel],
    data: Mapping[str, Any],
    *,
    prefix: str,
    source: str,
    origins: Mapping[str, str] | None,
) -> BaseModel:
    """Validate `data` by `model`, plus the checks every model gets (booleans, inf, nan)."""
    parts = (prefix,) if prefix else ()
    _refuse_boolean_numbers(model, data, parts, source, origins)
    try:
        validated = model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source, prefix, model, origins)) from exc
    _refuse_non_finite(validated, parts, source, origins)
    return validated


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
    return _validate(model, data, prefix=section, source=source, origins=origins)


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
    run = _validate(RunSettings, run_part, prefix="", source=source, origins=origins)
    assert isinstance(run, RunSettings)
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
