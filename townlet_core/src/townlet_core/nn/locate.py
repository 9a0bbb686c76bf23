"""`locate_checkpoint`: the checkpoint folder a path means (a checkpoint, or a run folder).

A run folder means the checkpoint its `result.json` names (`checkpoint`, the final policy;
with `best`, `best_checkpoint`, PPO's best by greedy evaluation). `result.json` is data from
disk, so the path it names is used only when it is relative, stays inside the run folder and
holds a `checkpoint.json`. A run without `result.json` (stopped before it finished) falls
back to its `checkpoint/` or `checkpoint-best/` folder when one is complete.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from townlet_core.checkpoints import INFO_FILE, checkpoint_dir
from townlet_core.errors import DataError

RESULT_FILE = "result.json"
#: The folders PPO and BC keep a run's final and best policy in.
FINAL_DIR, BEST_DIR = "checkpoint", "checkpoint-best"


def locate_checkpoint(path: Path | str, *, best: bool = False) -> Path:
    """The checkpoint folder `path` means, or a DataError saying what was found instead."""
    given = Path(path).expanduser()
    if not given.exists():
        raise DataError(f"{given}: no such checkpoint or run folder")
    folder = checkpoint_dir(given)
    if (folder / INFO_FILE).is_file():
        if best:
            raise DataError(
                f"{folder}: is a checkpoint, not a run folder; --best picks a run's best "
                "checkpoint: pass the run folder, or leave out --best"
            )
        return folder
    if (folder / RESULT_FILE).is_file():
        return _from_result(folder, best)
    fallback = folder / (BEST_DIR if best else FINAL_DIR)
    if (fallback / INFO_FILE).is_file():
        return fallback
    raise DataError(
        f"{folder}: not a Townlet checkpoint (no {INFO_FILE}) nor a finished run (no "
        f"{RESULT_FILE}); pass a checkpoint folder, e.g. RUN_DIR/checkpoint, or a run folder"
    )


def _from_result(run: Path, best: bool) -> Path:
    key = "best_checkpoint" if best else "checkpoint"
    result_path = run / RESULT_FILE
    try:
        result = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{result_path}: unreadable run result ({exc})") from exc
    named = result.get(key) if isinstance(result, dict) else None
    if not named:
        which = (
            "no best checkpoint (PPO keeps one only when it evaluates while training); leave "
            "out --best for the final one"
            if best
            else "no checkpoint (its strategy saved no policy)"
        )
        raise DataError(f"{run}: the run records {which}")
    relative = PurePosixPath(str(named))
    target = (run / relative).resolve()
    if relative.is_absolute() or not target.is_relative_to(run.resolve()):
        raise DataError(
            f"{result_path}: {key} {str(named)!r} points outside the run folder; pass the "
            "checkpoint folder itself"
        )
    if not (target / INFO_FILE).is_file():
        raise DataError(
            f"{run}: the run's {key} {str(named)!r} holds no {INFO_FILE} (moved or deleted); "
            "pass a checkpoint folder"
        )
    return run / relative
