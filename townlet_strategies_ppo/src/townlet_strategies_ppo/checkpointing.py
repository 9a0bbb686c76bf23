"""Where PPO keeps its checkpoints, and how it rotates, finds and tidies them.

    RUN_DIR/checkpoints/update-000010/   periodic, resumable (training state included)
    RUN_DIR/checkpoints/latest.json      which periodic checkpoint is newest
    RUN_DIR/checkpoint/                  the final policy
    RUN_DIR/checkpoint-best/             the best policy by greedy evaluation

Every folder is written under a temporary name and renamed into place (see
`townlet_core.nn.save_checkpoint`), and `latest.json` is replaced atomically, so a kill at
any moment leaves the previous checkpoint usable. A folder is removed by first renaming it
to a hidden trash name, so a kill during the deletion never leaves a half-deleted folder
that looks like a checkpoint.

What a kill can leave behind (hidden staging folders `.update-N.tmp-x`, `.checkpoint.new-x`,
`.checkpoint.old-x`, trash `.update-N.trash-x`, a folder missing its files) is removed on
resume and after every periodic checkpoint; the folder `latest.json` names never is.

`latest.json` is data from disk, so it is trusted only as far as it can be checked: its
`name` must be a plain `update-NNNNNN` folder that resolves inside `checkpoints/` and holds a
complete checkpoint. Otherwise it is ignored with a warning naming it, and the newest
complete folder is used.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from townlet_core import TrainingContext, atomic_write_json
from townlet_core.checkpoints import INFO_FILE, STATE_FILE, WEIGHTS_FILE
from townlet_core.envs.settings import EnvSettings, checkpoint_record
from townlet_core.envs.spaces import ActionMapping
from townlet_core.nn import PolicyNetwork, save_checkpoint
from townlet_core.nn.normalize import RewardScaler
from townlet_strategies_ppo import reward_scaling

PERIODIC_DIR = "checkpoints"
FINAL_DIR = "checkpoint"
BEST_DIR = "checkpoint-best"
LATEST = "latest.json"

#: A periodic checkpoint folder's name (6 digits, more past update 999999).
PERIODIC_NAME = re.compile(r"update-(\d{6,})")
#: Hidden leftovers in checkpoints/: save_checkpoint's staging, rotation's trash.
PERIODIC_LEFTOVER = re.compile(r"\.update-\d{6,}\.(tmp|trash)-[0-9a-f]+")
#: Hidden leftovers in the run directory: `_replace`'s staged and retired folders, the
#: staging of a staged folder, and trash.
FOLDER_LEFTOVER = re.compile(
    r"\.{1,2}(checkpoint|checkpoint-best|checkpoints)\.(new|old|trash)-[0-9a-f]+(\.tmp-[0-9a-f]+)?"
)
#: The files every periodic checkpoint has (it is resumable, so it has a training state).
PERIODIC_FILES = (INFO_FILE, WEIGHTS_FILE, STATE_FILE)


class Checkpoints:
    """Periodic (rotated), final and best checkpoints of one run."""

    def __init__(
        self,
        context: TrainingContext,
        keep: int,
        env_id: str | None,
        env_settings: EnvSettings | None = None,
    ) -> None:
        """`env_settings` (kwargs, wrappers) are recorded in every checkpoint as data, for
        `townlet evaluate` to quote; nothing ever imports them from there."""
        self.context = context
        #: Only rank 0 of a data-parallel run writes (or tidies) checkpoints; on the other
        #: ranks every save and clean is a no-op, and reading works as on rank 0.
        self.writer = context.world.is_writer
        self.keep = keep
        self.env_id = env_id
        self.extra = checkpoint_record(env_settings)
        self.folder = context.run_dir / PERIODIC_DIR
        #: How the policy's Box actions reach the env, recorded with it.
        self.action_mapping: ActionMapping = "clip"
        #: The trainer's reward scaling, whose statistics each checkpoint records (None:
        #: rewards are not scaled).
        self.reward_scaler: RewardScaler | None = None

    def _warn(self, message: str) -> None:
        self.context.log(f"townlet: warning: {message}")

    def _save(
        self,
        path: Path,
        network: PolicyNetwork,
        metrics: dict[str, float | None],
        training_state: dict[str, Any] | None,
    ) -> Path:
        save_checkpoint(
            path,
            network,
            strategy=self.context.strategy,
            strategy_version=self.context.strategy_version,
            seed=self.context.seed,
            metrics=metrics,
            env_id=self.env_id,
            training_state=training_state,
            extra=self._extra(),
            action_mapping=self.action_mapping,
        )
        return path

    def _extra(self) -> dict[str, Any] | None:
        """The env settings and, with reward scaling, its statistics now."""
        if self.reward_scaler is None:
            return self.extra
        record = reward_scaling.checkpoint_record(self.reward_scaler)
        return {**(self.extra or {}), reward_scaling.EXTRA_KEY: record}

    # ------------------------------------------------------------------ periodic

    def save_periodic(
        self,
        update: int,
        network: PolicyNetwork,
        metrics: dict[str, float | None],
        training_state: dict[str, Any],
    ) -> Path:
        name = f"update-{update:06d}"
        path = self.folder / name
        if not self.writer:
            return path
        if path.exists() or path.is_symlink():  # written before a stop, replayed on resume
            _discard(path)
        self._save(path, network, metrics, training_state)
        atomic_write_json(self.folder / LATEST, {"name": name, "update": update})
        for old in self._complete()[: -self.keep]:
            if old != path:
                _discard(old)
        self.clean(protect=path)
        return path

    def latest(self) -> Path | None:
        """The newest complete periodic checkpoint, or None (see the module docstring for
        what is trusted of `latest.json`)."""
        pointed = self._pointed(warn=True)
        if pointed is not None:
            if _is_complete(pointed):
                return pointed
            self._warn(
                f"{self.folder / LATEST} names {pointed.name}, which is not a complete "
                "checkpoint; using the newest complete checkpoint folder instead"
            )
        complete = self._complete()
        return complete[-1] if complete else None

    def _pointed(self, *, warn: bool) -> Path | None:
        """The folder `latest.json` names, if it names one of ours (else None)."""
        pointer = self.folder / LATEST
        if not pointer.exists() and not pointer.is_symlink():
            return None
        fallback = "ignoring it and using the newest complete checkpoint folder"
        try:
            data = json.loads(pointer.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            if warn:
                self._warn(f"{pointer}: unreadable ({exc}); {fallback}")
            return None
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str) or PERIODIC_NAME.fullmatch(name) is None:
            if warn:
                self._warn(
                    f"{pointer}: 'name' {str(name)[:80]!r} is not a checkpoint folder of this "
                    f"run (update-NNNNNN inside {self.folder}); {fallback}"
                )
            return None
        path = self.folder / name
        if not self._inside(path):
            if warn:
                self._warn(f"{pointer}: {name} leads outside {self.folder}; {fallback}")
            return None
        return path

    def _inside(self, path: Path) -> bool:
        """A real folder of checkpoints/ (not a link that leads elsewhere)."""
        if path.is_symlink():
            return False
        try:
            return path.resolve().parent == self.folder.resolve()
        except OSError:
            return False

    def _complete(self) -> list[Path]:
        """Complete periodic checkpoint folders, oldest first (by update number)."""
        if not self.folder.is_dir():
            return []
        found = [
            path
            for path in self.folder.iterdir()
            if PERIODIC_NAME.fullmatch(path.name) and self._inside(path) and _is_complete(path)
        ]
        return sorted(found, key=lambda p: int(p.name.partition("-")[2]))

    # ------------------------------------------------------------------ tidying

    def clean(self, protect: Path | None = None) -> list[str]:
        """Remove what stops left behind (see the module docstring); never `protect` nor
        the folder `latest.json` names. Returns the names removed."""
        if not self.writer:
            return []
        keep = {p for p in (protect, self._pointed(warn=False)) if p is not None}
        removed: list[str] = []
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if path in keep or path.is_symlink():
                    continue
                leftover = PERIODIC_LEFTOVER.fullmatch(path.name) is not None
                partial = PERIODIC_NAME.fullmatch(path.name) is not None and not _is_complete(path)
                if (leftover or partial) and path.is_dir():
                    _discard(path)
                    removed.append(f"{PERIODIC_DIR}/{path.name}")
        run_dir = self.context.run_dir
        if run_dir.is_dir():
            for path in run_dir.iterdir():
                if FOLDER_LEFTOVER.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
                    _discard(path)
                    removed.append(path.name)
        return removed

    def clean_all(self) -> None:
        """Remove every checkpoint of the run (a run starting over in its directory)."""
        if not self.writer:
            return
        for path in (
            self.folder,
            self.context.run_dir / FINAL_DIR,
            self.context.run_dir / BEST_DIR,
        ):
            if path.is_symlink():
                path.unlink()
            elif path.exists():
                _discard(path)
        self.clean()

    # ------------------------------------------------------------------ final, best

    def save_final(
        self,
        network: PolicyNetwork,
        metrics: dict[str, float | None],
        training_state: dict[str, Any],
    ) -> Path:
        return self._replace(self.context.run_dir / FINAL_DIR, network, metrics, training_state)

    def save_best(self, network: PolicyNetwork, metrics: dict[str, float | None]) -> Path:
        return self._replace(self.context.run_dir / BEST_DIR, network, metrics, None)

    def _replace(
        self,
        path: Path,
        network: PolicyNetwork,
        metrics: dict[str, float | None],
        training_state: dict[str, Any] | None,
    ) -> Path:
        """Write a new folder beside `path`, then swap it in (the old one removed last)."""
        if not self.writer:
            return path
        staged = path.with_name(f".{path.name}.new-{secrets.token_hex(4)}")
        self._save(staged, network, metrics, training_state)
        retired = path.with_name(f".{path.name}.old-{secrets.token_hex(4)}")
        if path.exists():
            path.rename(retired)
        staged.rename(path)
        shutil.rmtree(retired, ignore_errors=True)
        return path


def _is_complete(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in PERIODIC_FILES)


def _discard(path: Path) -> None:
    """Rename `path` to a hidden trash name first, then delete it: a kill half-way leaves
    hidden trash (cleaned later), never a half-deleted folder under its own name."""
    if path.is_symlink():
        path.unlink()
        return
    if path.name.startswith("."):  # already hidden: no one takes it for a checkpoint
        shutil.rmtree(path, ignore_errors=True)
        return
    trash = path.with_name(f".{path.name}.trash-{secrets.token_hex(4)}")
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
