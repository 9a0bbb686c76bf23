"""Lines of the summary `townlet train` prints when a run ends, built from a result DTO.

Each line is `label: text`; the CLI lines the texts up and adds the checkpoint, the run
directory and the commands that make sense next. `TrainingResultDTO.summary_lines()` uses
`standard_lines`, which reads the fields results conventionally have (see its docstring);
strategies that override `summary_lines` compose these helpers with their own lines.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

#: What the helpers read: any result DTO (typed as its pydantic base, so that this module,
#: which `dto.base` imports, does not import `dto.base` back).
TrainingResultDTO = BaseModel


def number(value: float) -> str:
    """A return or a loss to read at a glance: 487.3, -150.3, 0.953, 12,345.6."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"


def mean_std(mean: float, std: float | None) -> str:
    """`487.3 ± 12.1`: the spread with as many decimals as the mean shows."""
    text = number(mean)
    if std is None:
        return text
    _, dot, decimals = text.partition(".")
    if dot and decimals.isdigit() and math.isfinite(std):
        return f"{text} ± {std:,.{len(decimals)}f}"
    return f"{text} ± {number(std)}"


def count(value: int) -> str:
    return f"{value:,}"


def trained_on(*sources: str | None, note: str = "") -> list[str]:
    """`trained on: CartPole-v1` (several sources joined with 'and'); nothing when none."""
    named = [source for source in sources if source]
    if not named:
        return []
    return [f"trained on: {' and '.join(named)}{f' ({note})' if note else ''}"]


def evaluation(result: TrainingResultDTO, *, env: str | None = None, hint: str = "") -> list[str]:
    """`return: 487.3 ± 12.1 over 10 greedy episodes [of ENV]` from the `eval_*` fields;
    `return: not evaluated` when the result has them but no evaluation ran; nothing when
    the result has no `eval_mean_return` field at all."""
    if "eval_mean_return" not in type(result).model_fields:
        return []
    mean: float | None = getattr(result, "eval_mean_return", None)
    if mean is None:
        return [f"return: not evaluated{f' ({hint})' if hint else ''}"]
    std: float | None = getattr(result, "eval_std_return", None)
    episodes: int | None = getattr(result, "eval_episodes", None)
    text = mean_std(mean, std)
    if episodes is not None:
        text += f" over {count(episodes)} greedy episode{'s' if episodes != 1 else ''}"
    return [f"return: {text}{f' of {env}' if env else ''}"]


def throughput(total: int, unit: str, done_here: int, seconds: float, rate_unit: str) -> str:
    """`50,176 env steps, 1,608 steps/s`: `done_here` of them were done in `seconds` (a
    resumed run did the others before); no rate when nothing was done here."""
    text = f"{count(total)} {unit}"
    if done_here > 0 and seconds > 0:
        text += f", {count(round(done_here / seconds))} {rate_unit}/s"
    return text


def standard_lines(result: TrainingResultDTO) -> list[str]:
    """What any result says without code of its own, from the conventional fields:
    `env_id` and/or `dataset` (what it trained on), `eval_mean_return`, `eval_std_return`
    and `eval_episodes` (the final greedy evaluation; `eval_env` where it differs from
    `env_id`) and `env_steps` (environment steps, over the run's `duration_sec`)."""
    env = _text(result, "env_id")
    eval_env = _text(result, "eval_env")
    lines = trained_on(env, _text(result, "dataset"))
    lines += evaluation(result, env=eval_env if eval_env not in (None, env) else None)
    steps = getattr(result, "env_steps", None)
    if isinstance(steps, int) and steps > 0:
        lines.append(
            "steps: "
            + throughput(
                steps, "env steps", steps, float(getattr(result, "duration_sec", 0.0)), "steps"
            )
        )
    return lines


def _text(result: Any, name: str) -> str | None:
    value = getattr(result, name, None)
    return str(value) if value is not None else None
