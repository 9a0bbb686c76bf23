"""`migrate(original) -> MigrationResult`: an original Townlet training config in today's
format, with a note for every field that was renamed, dropped, changed in meaning or
filled in with the original's default. Nothing is dropped without a note; what cannot be
converted is refused with a ConfigError naming the field.

The converted config trains as the original would have wherever today's strategies can:
the original's PPO defaults are written out (today's are RL Zoo's CartPole settings), one
pass per epoch (its `num_epochs` was never read), constant learning rate and clip range.
Where the original's behaviour has no equivalent (its simulated town, its telemetry-only
`bc_weight`), the note says so and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from townlet_core.errors import ConfigError
from townlet_core.migration.original import (
    MODES,
    SIMULATION_SECTIONS,
    OriginalConfig,
    OriginalStage,
    parse_original,
)
from townlet_core.runtime.config import DEVICE_PATTERN

NoteKind = Literal["renamed", "dropped", "changed", "defaulted"]
#: Environment a converted `rollout` config trains in: the original's town has no
#: equivalent, so the note says to replace it.
LIVE_ENV = "CartPole-v1"
#: Today's PPO budget (`ppo.total_timesteps` default); a rollout larger than it is raised to it.
TODAY_TOTAL_TIMESTEPS = 60_000


@dataclass(frozen=True)
class Note:
    """One thing a user must know about the conversion.

    `original` is the path in the original config (None for a setting it never had);
    `new` the path in the converted one (None when dropped).
    """

    kind: NoteKind
    original: str | None
    new: str | None
    message: str

    def __str__(self) -> str:
        if self.kind == "dropped" or self.new is None:
            where = f"{self.original}"
        elif self.original is None or self.original == self.new:
            where = f"{self.new}"
        else:
            where = f"{self.original} -> {self.new}"
        return f"{self.kind:<9}  {where}" + (f": {self.message}" if self.message else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "original": self.original,
            "new": self.new,
            "message": self.message,
        }


@dataclass(frozen=True)
class MigrationResult:
    """The converted config (a mapping `townlet train -c` reads) and the notes about it."""

    config: dict[str, Any]
    notes: list[Note] = field(default_factory=list)

    @property
    def strategy(self) -> str:
        return str(self.config["strategy"])


def migrate(
    original: Mapping[str, Any], *, mode: str | None = None, source: str = "original config"
) -> MigrationResult:
    """Convert `original` (the mapping an original Townlet config file holds).

    `mode` plays the original's `--mode` flag (it wins over `training.source`). `source`
    names the file in error messages. Raises ConfigError for what cannot be converted.
    """
    parsed = parse_original(original, source)
    return _Migration(parsed, source).run(mode)


class _Migration:
    """Builds the converted config and its notes, one original section at a time."""

    def __init__(self, parsed: OriginalConfig, source: str) -> None:
        self.parsed = parsed
        self.source = source
        self.notes: list[Note] = []
        self.config: dict[str, Any] = {}
        #: The `--mode` given, if any (it wins over training.source, as in the original).
        self.flag: str | None = None

    # ------------------------------------------------------------------ notes

    def note(self, kind: NoteKind, original: str | None, new: str | None, message: str) -> None:
        self.notes.append(Note(kind, original, new, message))

    def drop_if_given(self, path: str, why: str) -> None:
        if self.parsed.given(path):
            self.note("dropped", path, None, why)

    def refuse(self, path: str, why: str) -> ConfigError:
        return ConfigError(f"{self.source}: cannot convert: {path}: {why}")

    # ------------------------------------------------------------------ the whole

    def run(self, mode: str | None) -> MigrationResult:
        chosen = self._mode(mode)
        self._run_settings()
        if chosen == "mixed":
            raise self.refuse(
                "training.source",
                "'mixed' ran two independent PPO trainings (replay, then rollout) sharing "
                "nothing but a log file; today each is its own run: convert the config twice, "
                "with --mode replay and with --mode rollout (or write an anneal schedule of a "
                "replay ppo stage then a live one, which warm-starts the second from the first)",
            )
        if chosen == "replay":
            self._ppo_run(live=False)
        elif chosen == "rollout":
            self._ppo_run(live=True)
        elif chosen == "bc":
            self._bc_run()
        else:
            self._anneal_run()
        self._training_leftovers(chosen)
        self._stability(chosen)
        self._simulation()
        order = ("strategy", "seed", "device", "anneal", "bc", "ppo")
        config = {key: self.config[key] for key in order if key in self.config}
        return MigrationResult(config=config, notes=self.notes)

    def _mode(self, mode: str | None) -> str:
        if mode is None:
            return self.parsed.training.source
        self.flag = mode.lower()
        if self.flag not in MODES:
            raise ConfigError(
                f"--mode {mode}: unknown mode; use one of {', '.join(MODES)} (the original's modes)"
            )
        return self.flag

    def _source_note(self, mode: str, strategy: str, message: str) -> None:
        """The note on where `training.source` (or `--mode`) went: the strategy."""
        self.config["strategy"] = strategy
        given = self.parsed.given("training.source")
        kind: NoteKind = "renamed" if mode == strategy else "changed"
        original: str | None = "training.source"
        written = self.parsed.training.source
        if self.flag is not None and given and written != mode:
            kind = "changed"
            message = f"'{written}' overridden by --mode {mode}, as the original's did. {message}"
        elif self.flag is not None and not given:
            original, kind = None, "changed"
            message = f"'{mode}' from --mode. {message}"
        elif not given:
            kind = "defaulted"
            message = f"not set: the original's default '{mode}' applies. {message}"
        self.note(kind, original, "strategy", message.strip())

    def _run_settings(self) -> None:
        if self.parsed.seed is not None:
            self.config["seed"] = self.parsed.seed
            self.note(
                "changed",
                "seed",
                "seed",
                "the original seeded its simulation only (training was unseeded); today it "
                "seeds the whole run: Python, NumPy, torch, environments and shuffling",
            )

    # ------------------------------------------------------------------ ppo

    def _ppo_run(self, *, live: bool) -> None:
        training = self.parsed.training
        if live:
            self._source_note(
                "rollout",
                "ppo",
                "the original captured training.rollout_ticks ticks of its simulated town "
                "with the scripted policy, once per invocation, and trained PPO on them "
                f"offline; today PPO acts itself, in ppo.env ({LIVE_ENV} here; the town has no "
                "equivalent), for ppo.total_timesteps steps",
            )
            if self.parsed.given("training.replay_manifest"):
                raise self.refuse(
                    "training.replay_manifest",
                    "the original refused a replay manifest in rollout mode; remove it, or "
                    "convert with --mode replay to train on that dataset",
                )
            if training.rollout_ticks <= 0:
                raise self.refuse(
                    "training.rollout_ticks",
                    f"must be positive to capture a rollout, got {training.rollout_ticks} "
                    "(the original refused it too: 'ticks must be positive')",
                )
        else:
            self._source_note(
                "replay",
                "ppo",
                "the original trained PPO on the replay data only with --train-ppo "
                "(without it, it summarised the data: today `townlet dataset inspect`); the "
                "converted run trains PPO on ppo.dataset",
            )
        self.config["ppo"] = self._ppo_section(live=live)
        if not live:
            self.config["ppo"]["replay_updates"] = 1
            self.note(
                "defaulted",
                None,
                "ppo.replay_updates",
                "1: passes over the dataset came from the original's --epochs flag (default "
                "1); set it to the --epochs you used",
            )

    def _ppo_section(self, *, live: bool) -> dict[str, Any]:
        """Today's `ppo:` section from the original's `ppo:` section (every field written:
        the original's defaults differ from today's)."""
        ppo = self.parsed.ppo
        out: dict[str, Any] = {}
        if live:
            ticks = self.parsed.training.rollout_ticks
            out["env"] = LIVE_ENV
            self.note(
                "defaulted",
                None,
                "ppo.env",
                f"{LIVE_ENV}: the original trained on its own simulated town, which "
                "today's Townlet does not have; set your Gymnasium environment",
            )
            out["num_envs"] = 1
            out["num_steps"] = ticks
            self.note(
                "defaulted",
                None,
                "ppo.num_envs",
                "1: the original captured one simulation (all its agents) per rollout",
            )
            path = "training.rollout_ticks"
            kind: NoteKind = "changed" if self.parsed.given(path) else "defaulted"
            self.note(
                kind,
                path,
                "ppo.num_steps",
                f"{ticks} steps per environment per rollout (the original's ticks per "
                "capture" + ("" if kind == "changed" else "; its default") + ")",
            )
            if ticks > TODAY_TOTAL_TIMESTEPS:
                out["total_timesteps"] = ticks
                self.note(
                    "defaulted",
                    None,
                    "ppo.total_timesteps",
                    f"{ticks}: one rollout (the original trained on one capture)",
                )
        else:
            manifest = self.parsed.training.replay_manifest
            if manifest is None:
                raise self.refuse(
                    "training.replay_manifest",
                    "PPO on replay data needs the dataset, and none is set (the original fell "
                    "back to its bundled docs/samples/replay_manifest.json); set "
                    "training.replay_manifest to your manifest or capture folder",
                )
            out["dataset"] = manifest
            self.note(
                "renamed",
                "training.replay_manifest",
                "ppo.dataset",
                "entries marked accepted: false are skipped and a listed file that is "
                "missing is an error (the original trained on every entry it found)",
            )
        self._ppo_field("learning_rate", "learning_rate", ppo.learning_rate, out)
        if ppo.clip_param == 0:
            raise self.refuse(
                "ppo.clip_param",
                "0 cannot be converted: today's ppo.clip_range must be above 0; use a small "
                "value such as 0.01",
            )
        self._ppo_field("clip_param", "clip_range", ppo.clip_param, out)
        self._ppo_field("value_loss_coef", "vf_coef", ppo.value_loss_coef, out)
        self._ppo_field("entropy_coef", "ent_coef", ppo.entropy_coef, out)
        self._ppo_field("gae_lambda", "gae_lambda", ppo.gae_lambda, out)
        self._ppo_field("gamma", "gamma", ppo.gamma, out)
        self._ppo_zero_is_off("max_grad_norm", ppo.max_grad_norm, "no gradient clipping", out)
        self._ppo_zero_is_off("value_clip", ppo.value_clip, "an unclipped value loss", out)
        self._ppo_field(
            "advantage_normalization",
            "advantage_normalization",
            "batch" if ppo.advantage_normalization else "none",
            out,
            changed=(
                "true -> batch: normalised over each update's whole batch (the rollout, or "
                "the whole dataset in replay), where the original normalised per replay batch"
                if ppo.advantage_normalization
                else "false -> none"
            ),
        )
        self._minibatches(live, out)
        out["update_epochs"] = 1
        self.note(
            "defaulted",
            None,
            "ppo.update_epochs",
            "1: the original made one pass over the data per epoch (it never read ppo.num_epochs)",
        )
        if self.parsed.given("ppo.num_epochs"):
            self.note(
                "dropped",
                "ppo.num_epochs",
                None,
                f"the original never read it (a bug: it made one pass per epoch); set "
                f"ppo.update_epochs to {ppo.num_epochs} if that is what you meant",
            )
        out["lr_schedule"] = "constant"
        out["clip_schedule"] = "constant"
        self.note(
            "defaulted",
            None,
            "ppo.lr_schedule",
            "constant (with ppo.clip_schedule): the original never decayed them",
        )
        return out

    def _ppo_field(
        self,
        name: str,
        new: str,
        value: Any,
        out: dict[str, Any],
        *,
        changed: str | None = None,
    ) -> None:
        """Write `ppo.new`; note a rename, a change of meaning, or the original's default."""
        path, target = f"ppo.{name}", f"ppo.{new}"
        out[new] = value
        if not self.parsed.given(path):
            default = type(self.parsed.ppo).model_fields[name].default
            said = f"not set: the original's default {default!r}"
            self.note("defaulted", path, target, f"{said}; {changed}" if changed else said)
        elif changed is not None:
            self.note("changed", path, target, changed)
        elif name != new:
            self.note("renamed", path, target, "")

    def _ppo_zero_is_off(self, name: str, value: float, meaning: str, out: dict[str, Any]) -> None:
        if value == 0:
            self._ppo_field(name, name, None, out, changed=f"0 -> null ({meaning}, as before)")
        else:
            self._ppo_field(name, name, value, out)

    def _minibatches(self, live: bool, out: dict[str, Any]) -> None:
        """The original's rule: per replay batch of N transitions, chunks of
        min(mini_batch_size, N // min(num_mini_batches, N)). A live rollout is one batch of
        known N, so the rule gives today's fixed size; a dataset's batches vary, so there
        the chunk is just mini_batch_size."""
        ppo = self.parsed.ppo
        size_path, count_path = "ppo.mini_batch_size", "ppo.num_mini_batches"
        size_given, count_given = self.parsed.given(size_path), self.parsed.given(count_path)
        if live:
            rollout = out["num_envs"] * out["num_steps"]
            size = min(ppo.mini_batch_size, max(1, rollout // min(ppo.num_mini_batches, rollout)))
            out["minibatch_size"] = size
            rule = (
                f"{size} = min(mini_batch_size {ppo.mini_batch_size}, rollout {rollout} // "
                f"num_mini_batches {ppo.num_mini_batches}), the original's rule for one batch"
            )
            self.note(
                "changed" if size_given else "defaulted", size_path, "ppo.minibatch_size", rule
            )
            self.note(
                "changed" if count_given else "defaulted",
                count_path,
                "ppo.minibatch_size",
                "folded into ppo.minibatch_size (today's mini-batches have a fixed size)",
            )
            return
        out["minibatch_size"] = ppo.mini_batch_size
        self.note(
            "changed" if size_given else "defaulted",
            size_path,
            "ppo.minibatch_size",
            f"{ppo.mini_batch_size} transitions per gradient step, drawn from the whole "
            "dataset (the original chunked each replay batch separately)",
        )
        if count_given:
            self.note(
                "dropped",
                count_path,
                None,
                "no equivalent: it set a floor on the chunks per replay batch; today's "
                "mini-batches have a fixed size, ppo.minibatch_size",
            )

    # ------------------------------------------------------------------ bc

    def _bc_run(self) -> None:
        self._source_note("bc", "bc", "")
        self.config["bc"] = self._bc_section(require_for="source 'bc'")
        bc = self.parsed.training.bc
        if self.parsed.given("training.bc.device"):
            self.config["device"] = self._device(bc.device)
            self.note("renamed", "training.bc.device", "device", "the run's device")

    def _bc_section(self, *, require_for: str) -> dict[str, Any]:
        bc = self.parsed.training.bc
        if bc.manifest is None:
            raise self.refuse(
                "training.bc.manifest",
                f"{require_for} needs demonstrations and none are set (the original refused "
                "too: 'BC manifest is required'); set training.bc.manifest",
            )
        out: dict[str, Any] = {"dataset": bc.manifest}
        self.note(
            "renamed",
            "training.bc.manifest",
            "bc.dataset",
            "entries marked accepted: false are skipped now (the original trained on them) "
            "and a missing file is an error (the original skipped it silently)",
        )
        for name in ("learning_rate", "batch_size", "epochs", "weight_decay"):
            path, value = f"training.bc.{name}", getattr(bc, name)
            out[name] = value
            if self.parsed.given(path):
                self.note("renamed", path, f"bc.{name}", "")
            else:
                self.note("defaulted", path, f"bc.{name}", f"{value!r}: the original's default")
        out["early_stopping_patience"] = None
        self.note(
            "defaulted",
            None,
            "bc.early_stopping_patience",
            "null: the original trained every epoch (today's default stops after 5 without a "
            "better validation loss)",
        )
        out["val_fraction"] = 0.2
        self.note(
            "defaulted",
            None,
            "bc.val_fraction",
            "0.2: a fifth of the trajectories is held out and accuracy is measured on it "
            "(the original measured it on the training data; 0 turns this off)",
        )
        return out

    def _device(self, device: str) -> str:
        if not DEVICE_PATTERN.match(device):
            raise self.refuse(
                "training.bc.device",
                f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps",
            )
        return device

    # ------------------------------------------------------------------ anneal

    def _anneal_run(self) -> None:
        training = self.parsed.training
        self._source_note("anneal", "anneal", "")
        if not training.anneal_schedule:
            raise self.refuse(
                "training.anneal_schedule",
                "empty; source 'anneal' needs stages of {cycle, mode, epochs, bc_weight} "
                "(the original refused it too: 'anneal_schedule is empty')",
            )
        modes = {stage.mode for stage in training.anneal_schedule}
        anneal: dict[str, Any] = {"schedule": []}
        self.config["anneal"] = anneal
        if "bc" in modes:
            self.config["bc"] = self._bc_section(require_for="a bc stage of the anneal schedule")
            if self.parsed.given("training.bc.device"):
                self.config["device"] = self._device(training.bc.device)
                self.note(
                    "changed",
                    "training.bc.device",
                    "device",
                    "the run's device, for the PPO stages too (the original used it for BC "
                    "and chose PPO's device itself)",
                )
        else:
            self.drop_if_given("training.bc", "the schedule has no bc stage")
        if "ppo" in modes:
            if training.replay_manifest is None:
                raise self.refuse(
                    "training.replay_manifest",
                    "the schedule's ppo stages train on replay data and none is set (the "
                    "original refused too: 'Replay manifest required for PPO stages in "
                    "anneal'); set training.replay_manifest",
                )
            self.config["ppo"] = self._ppo_section(live=False)
        else:
            self.drop_if_given("training.replay_manifest", "the schedule has no ppo stage")
            self.drop_if_given("ppo", "the schedule has no ppo stage")
        for index, stage in enumerate(training.anneal_schedule):
            anneal["schedule"].append(self._stage(index, stage))
        anneal["accuracy_threshold"] = training.anneal_accuracy_threshold
        path = "training.anneal_accuracy_threshold"
        self.note(
            "changed" if self.parsed.given(path) else "defaulted",
            path,
            "anneal.accuracy_threshold",
            "the BC gate now reads the held-out (validation) accuracy; the original read the "
            "accuracy on the training data",
        )
        promotion = self.parsed.promotion
        anneal["required_passes"] = promotion.required_passes
        path = "stability.promotion.required_passes"
        self.note(
            "changed" if self.parsed.given(path) else "defaulted",
            path,
            "anneal.required_passes",
            "the pass streak now persists in the promotion ledger across runs, so it can be "
            "reached (the original's lived in one process and never reached 2)",
        )
        self.drop_if_given(
            "training.anneal_enable_policy_blend",
            "no equivalent: the original's simulation runtime read it (blending scripted and "
            "learned intents), never training",
        )

    def _stage(self, index: int, stage: OriginalStage) -> dict[str, Any]:
        old = f"training.anneal_schedule[{index}]"
        new = f"anneal.schedule[{index}]"
        out: dict[str, Any] = {"cycle": stage.cycle, "strategy": stage.mode, "overrides": {}}
        self.note("renamed", f"{old}.cycle", f"{new}.cycle", "")
        self.note("renamed", f"{old}.mode", f"{new}.strategy", "")
        epochs_given = self.parsed.given_in_list("training.anneal_schedule", index, "epochs")
        if stage.mode == "ppo":
            out["overrides"]["replay_updates"] = stage.epochs
            self.note(
                "changed" if epochs_given else "defaulted",
                f"{old}.epochs",
                f"{new}.overrides.replay_updates",
                f"{stage.epochs} pass(es) over the replay dataset"
                + ("" if epochs_given else " (the original's default)"),
            )
        elif epochs_given:
            self.note(
                "dropped",
                f"{old}.epochs",
                None,
                f"the original ignored a bc stage's epochs and ran training.bc.epochs "
                f"({self.parsed.training.bc.epochs}), which the converted bc section keeps; "
                f"set {new}.overrides.epochs to {stage.epochs} if that is what you meant",
            )
        if self.parsed.given_in_list("training.anneal_schedule", index, "bc_weight"):
            self.note(
                "dropped",
                f"{old}.bc_weight",
                None,
                "telemetry only in the original: a bc stage set an anneal ratio that no loss "
                "or runtime read (and ppo stages reset it to 0), so it changed no training; "
                "today's ppo.bc_weight is a real KL term to the clone (set it in a ppo stage's "
                "overrides to use it), left off so the run trains as the original did",
            )
        return out

    # ------------------------------------------------------------------ the rest

    def _training_leftovers(self, mode: str) -> None:
        """Training fields the chosen mode never read: dropped, each with why."""
        if mode != "rollout":
            self.drop_if_given("training.rollout_ticks", "only source 'rollout' read it")
        self.drop_if_given(
            "training.rollout_auto_seed_agents",
            "no equivalent: it seeded agents into the original's simulated town; Gymnasium "
            "environments have none to seed",
        )
        for name in ("social_reward_stage_override", "social_reward_schedule"):
            self.drop_if_given(
                f"training.{name}",
                "no equivalent: it switched the original town's social-reward stage per "
                "cycle; a reward setting of your environment goes in ppo.env_kwargs",
            )
        if mode == "bc":
            self.drop_if_given("training.replay_manifest", "source 'bc' trains on training.bc")
            self.drop_if_given("ppo", "source 'bc' runs no PPO")
        if mode in ("replay", "rollout"):
            self.drop_if_given("training.bc", f"source '{mode}' runs no behaviour cloning")
        if mode != "anneal":
            for name in ("anneal_schedule", "anneal_accuracy_threshold"):
                self.drop_if_given(f"training.{name}", "only source 'anneal' read it")
            self.drop_if_given(
                "training.anneal_enable_policy_blend",
                "no equivalent: the original's simulation runtime read it, never training",
            )

    def _stability(self, mode: str) -> None:
        raw = self.parsed.raw.get("stability") or {}
        for key in raw:
            if key != "promotion":
                self.note(
                    "dropped",
                    f"stability.{key}",
                    None,
                    "a stability canary of the original's simulation; no equivalent",
                )
        if mode != "anneal":
            self.drop_if_given(
                "stability.promotion.required_passes",
                "only anneal runs are judged for promotion (anneal.required_passes)",
            )
        for key in ("window_ticks", "allowed_alerts"):
            self.drop_if_given(
                f"stability.promotion.{key}",
                "no equivalent: the original's promotion gate counted simulation ticks and "
                "alerts; today a candidate is judged by anneal's status and the ledger",
            )

    def _simulation(self) -> None:
        for key in SIMULATION_SECTIONS:
            if key in self.parsed.raw:
                self.note(
                    "dropped",
                    key,
                    None,
                    "a setting of the original's simulated town, not of training; today's "
                    "Townlet trains in Gymnasium environments and nothing reads it",
                )
