"""`EnvSettings`: everything that decides which environment a rollout steps, in one model.

Training, capture and evaluation build their environments from the same settings (an id,
keyword arguments for its constructor, wrappers applied in order to each sub-env, an episode
limit), so a policy is evaluated in the environment it was trained in. Strategies expose the
fields in their config (`ppo.env_kwargs`, `ppo.wrappers`, ...) and the CLI as options
(`--env-kwargs JSON`, `--wrapper SPEC`); both build an `EnvSettings`.

Wrappers are import strings (`module:Class`), so naming one runs code. Settings therefore
only ever come from what the user passes (a config file, `--set`, a CLI option): a
checkpoint or dataset may record them as data (`as_data`), but nothing here reads them
back from a file. Errors name the setting (`EnvSettingsError.field`), which each caller
renames to its own spelling (`ppo.wrappers[0]`, `--wrapper #1`) with `at` or `renamed`.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from townlet_core.errors import ConfigError

#: How sub-envs step: in this process, in worker processes, or chosen by their step cost
#: (`make_vector_env`'s `vector`; a setting of how a run steps, not of the env it records).
VectorMode = Literal["sync", "async", "auto"]


class EnvSettingsError(ConfigError):
    """A setting of an `EnvSettings` is unusable; `field` names it relative to the settings:
    `env_kwargs` or `wrappers` (with `index`, from 0). (An unknown env id stays the plain
    ConfigError it always was, which callers already name.)"""

    def __init__(self, field: str, detail: str, index: int | None = None) -> None:
        self.field = field
        self.index = index
        self.detail = detail
        super().__init__(f"{self.name()}: {detail}")

    def name(self, prefix: str = "") -> str:
        """The field as a config path under `prefix` (e.g. `ppo.wrappers[1]`)."""
        return f"{prefix}{self.field}" + ("" if self.index is None else f"[{self.index}]")

    def at(self, prefix: str) -> ConfigError:
        """The same error named as a config field under `prefix` (e.g. "ppo.")."""
        return ConfigError(f"{self.name(prefix)}: {self.detail}")

    def renamed(self, names: Mapping[str, str]) -> ConfigError:
        """The same error named by `names[field]` (e.g. CLI options); a wrapper's position
        is counted from 1, as a user counts repeated options."""
        where = names.get(self.field, self.field)
        if self.index is not None:
            where = f"{where} #{self.index + 1}"
        return ConfigError(f"{where}: {self.detail}")


class WrapperSpec(BaseModel):
    """One wrapper: a `gymnasium.Wrapper` subclass by import string, and its arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wrapper: str = Field(
        ...,
        min_length=1,
        description="module:Class of a gymnasium.Wrapper subclass, e.g. "
        "gymnasium.wrappers:FrameStackObservation.",
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments after the env, e.g. {stack_size: 4}.",
    )


class EnvSettings(BaseModel):
    """An environment as every rollout builds it: `id` made with `kwargs`, cut at
    `max_episode_steps`, then wrapped by each of `wrappers` in order (innermost first)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(..., min_length=1, description="Gymnasium id or module:Class.")
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments to gymnasium.make or the class."
    )
    wrappers: tuple[WrapperSpec, ...] = Field(
        (), description="Wrappers applied in order to each sub-env before vectorising."
    )
    max_episode_steps: int | None = Field(None, ge=1, description="Cut episodes at this length.")
    action_mask_key: str | None = Field(
        None,
        min_length=1,
        description="Observation key that holds the action mask (else info['action_mask'] "
        "is read); that key is never encoded as a feature.",
    )

    @classmethod
    def of(cls, env: str | EnvSettings, max_episode_steps: int | None = None) -> EnvSettings:
        """Settings from an id or settings; a `max_episode_steps` given here wins."""
        settings = env if isinstance(env, EnvSettings) else cls(id=env)
        if max_episode_steps is not None and max_episode_steps != settings.max_episode_steps:
            return settings.model_copy(update={"max_episode_steps": max_episode_steps})
        return settings

    @property
    def plain(self) -> bool:
        """No keyword arguments, wrappers or mask key: the id as Gymnasium registers it."""
        return not self.kwargs and not self.wrappers and self.action_mask_key is None

    def spaces_key(self) -> EnvSettings:
        """The settings that decide observation and action spaces (not the episode limit)."""
        return self.model_copy(update={"max_episode_steps": None})

    def as_data(self) -> dict[str, Any]:
        """JSON-ready, for a manifest or checkpoint to record (as data, never to import);
        `action_mask_key` only when set, so records written before it existed compare
        equal."""
        data = self.model_dump(mode="json")
        if data.get("action_mask_key") is None:
            data.pop("action_mask_key", None)
        return data


# --- wrappers ------------------------------------------------------------------------------


def wrapper_factories(settings: EnvSettings) -> list[Callable[[Any], Any]]:
    """One callable per wrapper, each wrapping an env; every import happens here, so an
    unimportable or unsuitable wrapper is refused before any env is built."""
    return [
        _factory(index, spec, _wrapper_class(index, spec.wrapper))
        for index, spec in enumerate(settings.wrappers)
    ]


def _wrapper_class(index: int, target: str) -> type:
    import gymnasium

    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        module_part, dot, name = target.rpartition(".")
        example = (
            f"{module_part}:{name}"
            if dot and module_part
            else "gymnasium.wrappers:FrameStackObservation"
        )
        raise EnvSettingsError(
            "wrappers",
            f"'{target}' is not an import string; write module:Class, e.g. '{example}'",
            index,
        )
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise EnvSettingsError(
            "wrappers",
            f"cannot import module '{module_name}' ({exc}); install it or fix the "
            "module:Class name",
            index,
        ) from exc
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise EnvSettingsError(
                "wrappers", f"module '{module_name}' has no '{attribute}'", index
            )
    if not isinstance(found, type) or not issubclass(found, gymnasium.Wrapper):
        if isinstance(found, type) and issubclass(found, gymnasium.vector.VectorWrapper):
            kind = "a vector wrapper"
        elif isinstance(found, type):
            kind = f"the class {found.__module__}.{found.__qualname__}"
        else:
            kind = f"a {type(found).__name__}"
        raise EnvSettingsError(
            "wrappers",
            f"'{target}' is {kind}, not a gymnasium.Wrapper subclass; give a wrapper of "
            "one environment (it is applied to each sub-env before vectorising)",
            index,
        )
    return found


def _factory(index: int, spec: WrapperSpec, cls: type) -> Callable[[Any], Any]:
    def wrap(env: Any) -> Any:
        try:
            return cls(env, **spec.kwargs)
        except Exception as exc:  # the user's wrapper and arguments: name them, whatever broke
            raise EnvSettingsError(
                "wrappers",
                f"{spec.wrapper}(env, **{json.dumps(spec.kwargs, default=repr)}) failed: "
                f"{type(exc).__name__}: {exc}; fix its kwargs",
                index,
            ) from exc

    return wrap


# --- what a file records -------------------------------------------------------------------

#: The key of `CheckpointInfo.extra` (and of a capture manifest) that records env settings.
RECORDED_KEY = "env_settings"
#: A recorded value longer than this is shown cut: it is text from a file, not ours.
RECORDED_SHOWN_CHARS = 400


def checkpoint_record(settings: EnvSettings | None) -> dict[str, Any] | None:
    """What a checkpoint's `extra` records of the settings it was trained with (kwargs,
    wrappers), as data for `recorded_hint` to quote; None when there is nothing to say."""
    if settings is None or settings.plain:
        return None
    return {RECORDED_KEY: settings.as_data()}


def recorded_hint(extra: Mapping[str, Any], used: EnvSettings) -> str:
    """A sentence naming the env kwargs and wrappers a checkpoint says it was trained with,
    when they differ from `used`; empty otherwise.

    The record is only shown: a wrapper named by a file is never imported, so the user
    passes it themselves if they trust it.
    """
    recorded = extra.get(RECORDED_KEY)
    if not isinstance(recorded, Mapping):
        return ""
    kwargs, wrappers = recorded.get("kwargs") or {}, recorded.get("wrappers") or []
    if not kwargs and not wrappers:
        return ""
    if kwargs == used.kwargs and wrappers == used.as_data()["wrappers"]:
        return ""
    shown = json.dumps({"env_kwargs": kwargs, "wrappers": wrappers}, default=repr)
    if len(shown) > RECORDED_SHOWN_CHARS:
        shown = shown[:RECORDED_SHOWN_CHARS] + "..."
    return (
        f"; the checkpoint records that it was trained with {shown}: pass those with "
        "--env-kwargs and --wrapper if you trust them (a wrapper named only by a checkpoint "
        "is never imported)"
    )


# --- command-line options ------------------------------------------------------------------

#: How `townlet capture` and `townlet evaluate` spell each setting, for error messages.
CLI_OPTIONS = {
    "env": "--env",
    "env_kwargs": "--env-kwargs",
    "wrappers": "--wrapper",
    "max_episode_steps": "--max-episode-steps",
}


def settings_from_options(
    env_id: str,
    env_kwargs: str | None,
    wrappers: tuple[str, ...] | list[str],
    max_episode_steps: int | None,
) -> EnvSettings:
    """The settings `--env`, `--env-kwargs`, `--wrapper` (repeated, in order) and
    `--max-episode-steps` describe; a malformed option is a ConfigError naming it."""
    return EnvSettings(
        id=env_id,
        kwargs=parse_env_kwargs(env_kwargs),
        wrappers=tuple(parse_wrapper(text) for text in wrappers),
        max_episode_steps=max_episode_steps,
    )


def parse_env_kwargs(text: str | None, option: str = "--env-kwargs") -> dict[str, Any]:
    """`--env-kwargs '{"sutton_barto_reward": true}'`: a JSON object, or a ConfigError."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"{option}: not valid JSON ({exc}); pass an object, e.g. '{{\"k\": 1}}'"
        ) from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{option}: expected a JSON object, got {text!r}")
    return value


def parse_wrapper(text: str, option: str = "--wrapper") -> WrapperSpec:
    """`--wrapper module:Class`, or a JSON object `{"wrapper": "module:Class", "kwargs": {}}`."""
    if not text.lstrip().startswith("{"):
        return WrapperSpec(wrapper=text)
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{option} {text!r}: not valid JSON ({exc})") from exc
    try:
        return WrapperSpec.model_validate(value)
    except ValueError as exc:
        raise ConfigError(
            f'{option} {text!r}: expected {{"wrapper": "module:Class", "kwargs": {{...}}}} '
            f"({exc.__class__.__name__}: {str(exc).splitlines()[-1].strip()})"
        ) from exc


__all__ = [
    "CLI_OPTIONS",
    "RECORDED_KEY",
    "EnvSettings",
    "EnvSettingsError",
    "WrapperSpec",
    "checkpoint_record",
    "parse_env_kwargs",
    "parse_wrapper",
    "recorded_hint",
    "settings_from_options",
    "wrapper_factories",
]
