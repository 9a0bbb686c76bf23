"""Where PPO keeps its checkpoints, and how it rotates and finds them.

    RUN_DIR/checkpoints/update-000010/   periodic, resumable (training state included)
    RUN_DIR/checkpoints/latest.json      which periodic checkpoint is newest
    RUN_DIR/checkpoint/                  the final policy
    RUN_DIR/checkpoint-best/             the best policy by greedy evaluation

Every folder is written under a temporary name and renamed into place (see
`townlet_core.nn.save_checkpoint`), and `latest.json` is replaced atomically, so a kill at
any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

from townlet_core import TrainingContext, atomic_write_json
from townlet_core.checkpoints import INFO_FILE
from townlet_core.nn import PolicyNetwork, save_checkpoint

PERIODIC_DIR = "checkpoints"
FINAL_DIR = "checkpoint"
BEST_DIR = "checkpoint-best"
LATEST = "latest.json"


class Checkpoints:
    """Periodic (rotated), final and best checkpoints of one run."""

    def __init__(self, context: TrainingContext, keep: int, env_id: str | None) -> None:
        self.context = context
        self.keep = keep
        self.env_id = env_id
        self.folder = context.run_dir / PERIODIC_DIR

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
        )
        return path

    def save_periodic(
        self,
        update: int,
        network: PolicyNetwork,
        metrics: dict[str, float | None],
        training_state: dict[str, Any],
    ) -> Path:
        name = f"update-{update:06d}"
        path = self.folder / name
        if path.exists():  # written before an interruption, then replayed after resuming
            shutil.rmtree(path)
        self._save(path, network, metrics, training_state)
        atomic_write_json(self.folder / LATEST, {"name": name, "update": update})
        periodic = sorted(p for p in self.folder.glob("update-*") if (p / INFO_FILE).exists())
        for old in periodic[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def latest(self) -> Path | None:
        """The newest complete periodic checkpoint, or None."""
        pointer = self.folder / LATEST
        if pointer.exists():
            name = str(json.loads(pointer.read_text(encoding="utf-8")).get("name") or "")
            if name and (self.folder / name / INFO_FILE).exists():
                return self.folder / name
        periodic = sorted(p for p in self.folder.glob("update-*") if (p / INFO_FILE).exists())
        return periodic[-1] if periodic else None

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
        staged = path.with_name(f".{path.name}.new-{secrets.token_hex(4)}")
        self._save(staged, network, metrics, training_state)
        retired = path.with_name(f".{path.name}.old-{secrets.token_hex(4)}")
        if path.exists():
            path.rename(retired)
        staged.rename(path)
        shutil.rmtree(retired, ignore_errors=True)
        return path
