"""What an original Townlet training config could hold, and the checks it passed there.

The original (`tachyon-beep/townlet`, commit bffd3f0) read one simulation config with a
`training:` section, a top-level `ppo:` section, `stability.promotion` and many simulation
sections. These models restate its training fields with the original defaults and bounds
(see `../shared/reference/townlet_original_behaviour.md` §3, §4.1, §5.1, §6), so a value
the original refused is refused here too, by its path. Unlike the original, which ignored
unknown keys silently, an unknown key is refused: a misspelt field would otherwise vanish.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from townlet_core._suggest import did_you_mean
from townlet_core.errors import ConfigError

Source = Literal["replay", "rollout", "mixed", "bc", "anneal"]
MODES: tuple[str, ...] = ("replay", "rollout", "mixed", "bc", "anneal")
SocialStage = Literal["OFF", "C1", "C2", "C3"]

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class OriginalPPO(BaseModel):
    """The top-level `ppo:` section (the original's `PPOConfig`, 12 fields)."""

    model_config = _STRICT

    learning_rate: float = Field(3e-4, gt=0)
    clip_param: float = Field(0.2, ge=0, le=1)
    value_loss_coef: float = Field(0.5, ge=0)
    entropy_coef: float = Field(0.01, ge=0)
    num_epochs: int = Field(4, ge=1, le=64)
    mini_batch_size: int = Field(32, ge=1)
    gae_lambda: float = Field(0.95, ge=0, le=1)
    gamma: float = Field(0.99, ge=0, le=1)
    max_grad_norm: float = Field(0.5, ge=0)
    value_clip: float = Field(0.2, ge=0, le=1)
    advantage_normalization: bool = True
    num_mini_batches: int = Field(4, ge=1, le=1024)


class OriginalBC(BaseModel):
    """`training.bc` (the original's `BCTrainingSettings`)."""

    model_config = _STRICT

    manifest: str | None = None
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    epochs: int = Field(10, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    device: str = "cpu"


class OriginalStage(BaseModel):
    """One entry of `training.anneal_schedule`."""

    model_config = _STRICT

    cycle: int = Field(0, ge=0)
    mode: Literal["bc", "ppo"] = "ppo"
    epochs: int = Field(1, ge=1)
    bc_weight: float = Field(1.0, ge=0, le=1)


class OriginalSocialEntry(BaseModel):
    """One entry of `training.social_reward_schedule`."""

    model_config = _STRICT

    cycle: int = Field(0, ge=0)
    stage: SocialStage


class OriginalTraining(BaseModel):
    """The `training:` section (the original's `TrainingConfig`)."""

    model_config = _STRICT

    source: Source = "replay"
    rollout_ticks: int = Field(100, ge=0)
    rollout_auto_seed_agents: bool = False
    replay_manifest: str | None = None
    social_reward_stage_override: SocialStage | None = None
    social_reward_schedule: list[OriginalSocialEntry] = Field(default_factory=list)
    bc: OriginalBC = Field(default_factory=OriginalBC)
    anneal_schedule: list[OriginalStage] = Field(default_factory=list)
    anneal_accuracy_threshold: float = Field(0.9, ge=0, le=1)
    anneal_enable_policy_blend: bool = False


class OriginalPromotion(BaseModel):
    """`stability.promotion` (the original's `PromotionGateConfig`)."""

    model_config = _STRICT

    required_passes: int = Field(2, ge=1, le=10)
    window_ticks: int = Field(1000, ge=1, le=100_000)
    allowed_alerts: list[str] | str = Field(default_factory=list)


#: Top-level sections of the original simulation config that configure the simulated town
#: (needs, rewards, jobs, queues, observations, telemetry, console, snapshots, ...), not
#: training. Today's Townlet trains in Gymnasium environments: nothing reads them.
SIMULATION_SECTIONS: tuple[str, ...] = (
    "config_id",
    "features",
    "rewards",
    "economy",
    "jobs",
    "shaping",
    "curiosity",
    "queue_fairness",
    "conflict",
    "embedding_allocator",
    "observations_config",
    "affordances",
    "behavior",
    "policy_runtime",
    "employment",
    "personalities",
    "telemetry",
    "console_auth",
    "snapshot",
    "perturbations",
    "lifecycle",
    "runtime",
    "scenario",
)
#: Top-level keys with a training meaning (`seed` was an extra key the simulation read).
TRAINING_KEYS: tuple[str, ...] = ("training", "ppo", "stability", "seed")
TOP_LEVEL_KEYS: tuple[str, ...] = (*TRAINING_KEYS, *SIMULATION_SECTIONS)


@dataclass(frozen=True)
class OriginalConfig:
    """An original config that passed the original's checks, with what was written in it."""

    raw: Mapping[str, Any]
    training: OriginalTraining
    ppo: OriginalPPO
    promotion: OriginalPromotion
    seed: int | None

    def given(self, path: str) -> bool:
        """Whether the file itself sets `path` (dotted, e.g. `training.bc.epochs`)."""
        node: Any = self.raw
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return False
            node = node[part]
        return True

    def given_in_list(self, path: str, index: int, key: str) -> bool:
        """Whether entry `index` of the list at `path` sets `key`."""
        node: Any = self.raw
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, list) or index >= len(node):
            return False
        entry = node[index]
        return isinstance(entry, Mapping) and key in entry


def parse_original(data: Mapping[str, Any], source: str) -> OriginalConfig:
    """Check `data` as the original would (plus: no unknown keys); raise ConfigError naming
    the field and what to do."""
    unknown = [key for key in data if key not in TOP_LEVEL_KEYS]
    if unknown:
        key = str(unknown[0])
        hint = did_you_mean(key, TOP_LEVEL_KEYS)
        raise ConfigError(
            f"{source}: cannot convert: unknown top-level key '{key}'{hint} (no original "
            "Townlet config has it; the original ignored unknown keys silently): fix its name "
            "or remove it"
        )
    training = _section(data, "training", OriginalTraining, source)
    ppo = _section(data, "ppo", OriginalPPO, source)
    stability = data.get("stability")
    if stability is not None and not isinstance(stability, Mapping):
        raise ConfigError(f"{source}: cannot convert: stability: must be a mapping of settings")
    promotion = _section(stability or {}, "promotion", OriginalPromotion, source, "stability.")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(
            f"{source}: cannot convert: seed: must be a whole number of 0 or more, got {seed!r}"
        )
    assert isinstance(training, OriginalTraining)
    assert isinstance(ppo, OriginalPPO)
    assert isinstance(promotion, OriginalPromotion)
    return OriginalConfig(raw=data, training=training, ppo=ppo, promotion=promotion, seed=seed)


def _section(
    data: Mapping[str, Any], key: str, model: type[BaseModel], source: str, prefix: str = ""
) -> BaseModel:
    value = data.get(key)
    if value is None:
        return model()
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: cannot convert: {prefix}{key}: must be a mapping of settings")
    try:
        return model.model_validate(dict(value))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, f"{prefix}{key}", model)) from exc


def _describe(exc: ValidationError, source: str, section: str, model: type[BaseModel]) -> str:
    """The first problem as one line: SOURCE: cannot convert: PATH: what is wrong."""
    error = exc.errors()[0]
    path = dotted(section, error["loc"])
    if error["type"] == "extra_forbidden":
        parent = _model_at(model, error["loc"][:-1])
        known = list(parent.model_fields) if parent else []
        hint = did_you_mean(str(error["loc"][-1]), known)
        return (
            f"{source}: cannot convert: {path}: unknown key{hint} (the original ignored it "
            "silently, so it never had an effect): fix its name or remove it"
        )
    hint = _HINTS.get(re.sub(r"\[\d+\]", "[]", path), "fix it in the original config first")
    return (
        f"{source}: cannot convert: {path}: {error['msg']} (got {error.get('input')!r}); "
        f"the original refused this value too; {hint}"
    )


#: What to do instead, for refusals a user may hit on purpose.
_HINTS = {
    "training.anneal_schedule[].mode": (
        "today a stage may name any installed strategy; convert the schedule without that "
        "stage, then add it to anneal.schedule as {cycle, strategy, overrides}"
    ),
    "training.source": (
        "for a strategy of today's (cem, ...), write the config in today's format; see "
        "docs/migrating.md"
    ),
}


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that holds the field at `loc` (list indices skipped)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        annotation = current.model_fields[str(part)].annotation
        args = getattr(annotation, "__args__", ())
        current = next(
            (a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def dotted(prefix: str, loc: tuple[Any, ...] | list[Any]) -> str:
    """`training` + ("anneal_schedule", 1, "mode") -> `training.anneal_schedule[1].mode`."""
    text = prefix
    for part in loc:
        text = f"{text}[{part}]" if isinstance(part, int) else f"{text}.{part}" if text else part
    return text


def original_fields() -> list[str]:
    """Every field of the original's training config, by path (`[]` marks a list entry),
    then each simulation section: the list `docs/migrating.md` and the tests go by."""
    fields = [
        *_paths(OriginalTraining, "training"),
        *_paths(OriginalPPO, "ppo"),
        *_paths(OriginalPromotion, "stability.promotion"),
        "seed",
    ]
    return [*fields, *SIMULATION_SECTIONS]


def _paths(model: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, info in model.model_fields.items():
        annotation = info.annotation
        path = f"{prefix}.{name}"
        args = getattr(annotation, "__args__", ())
        nested = next(
            (a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
        if nested is None:
            yield path
        elif getattr(annotation, "__origin__", None) is list:
            yield from _paths(nested, f"{path}[]")
        else:
            yield from _paths(nested, path)
