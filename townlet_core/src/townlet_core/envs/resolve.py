"""`resolve_policy`: turn a policy spec from the command line into a callable policy.

"scripted" (the built-in expert for the env), "random", "module:factory" or the PATH of a
checkpoint folder (loading weights needs torch). Kept apart from the policy interface in
`policies.py` so that the torch module can implement that interface without an import cycle.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from townlet_core._suggest import did_you_mean
from townlet_core.data.action_space import ActionSpace
from townlet_core.envs.policies import Policy, RandomPolicy
from townlet_core.envs.spaces import action_space_of
from townlet_core.errors import ConfigError

#: The named policies `resolve_policy` knows besides import strings and paths.
NAMED_POLICIES = ("scripted", "random")
_POSITIONAL = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.VAR_POSITIONAL,
)
_NO_PARAMETERS: tuple[inspect.Parameter, ...] = ()
_IMPORT_STRING = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def resolve_policy(
    spec: str,
    env_id: str,
    action_space: Any,
    seed: int,
    *,
    layout: Mapping[str, tuple[int, ...]] | None = None,
) -> Policy:
    """Turn a policy spec into a callable: "scripted", "random", "module:factory" or a PATH.

    The one place that routes specs, so a checkpoint loader can fill in the PATH branch.
    `action_space` is the env's Gymnasium action space (any `action_space_of` maps). With
    `layout` (the environment's recorded observation layout, see `observation_layout`) a
    checkpoint is first checked to fit it and the action space (kind, shape, counts), as
    `townlet evaluate` checks.
    """
    if spec == "scripted":
        from townlet_core.envs.experts import expert_for

        return expert_for(env_id)
    if spec == "random":
        return RandomPolicy(action_space_of(action_space, env_id), seed)
    path = Path(spec).expanduser()
    if _IMPORT_STRING.match(spec) and not path.exists():
        return _import_policy(spec, env_id)
    if path.exists() or _looks_like_path(spec):
        fits = None if layout is None else (layout, action_space_of(action_space, env_id))
        return _checkpoint_policy(spec, path, seed, fits)
    raise ConfigError(
        f"unknown policy '{spec}'{did_you_mean(spec, NAMED_POLICIES)} (a policy is scripted, "
        "random, module:factory or the path of a checkpoint)"
    )


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.startswith(("~", ".")) or Path(spec).suffix != ""


def _checkpoint_policy(
    spec: str,
    path: Path,
    seed: int = 0,
    fits: tuple[Mapping[str, tuple[int, ...]], ActionSpace] | None = None,
) -> Policy:
    """A trained policy from a checkpoint folder (greedy); loading weights needs torch.

    With `fits` (observation layout, action space) the checkpoint's description is checked
    against them first: a misfit is named field by field instead of failing on a shape.
    """
    if not path.exists():
        raise ConfigError(
            f"policy checkpoint {spec} does not exist; pass an existing checkpoint, "
            "'scripted', 'random' or module:factory"
        )
    if fits is not None:
        from townlet_core.checkpoints import ObservationSpec, check_compatible, read_info

        layout, space = fits
        check_compatible(
            path,
            read_info(path),
            ObservationSpec.from_layout(layout),
            space.count,
            action_space=space,
        )
    from townlet_core.runtime.torch_guard import require_torch

    require_torch(f"Loading the checkpoint policy {spec}", "bc")
    from townlet_core.nn import TorchPolicy

    return TorchPolicy.from_checkpoint(path, greedy=True, seed=seed)


def _import_policy(spec: str, env_id: str) -> Policy:
    """Import `module:factory` and call it with `env_id` when it takes an argument."""
    module_name, _, attribute = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"cannot import policy factory '{spec}' ({type(exc).__name__}: {exc}); check the "
            "module is installed and names the factory"
        ) from exc
    if not callable(target):
        raise ConfigError(f"policy factory '{spec}' is not callable")
    parameters: Iterable[inspect.Parameter]
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        parameters = _NO_PARAMETERS
    takes_env = any(p.kind in _POSITIONAL for p in parameters)
    policy = target(env_id) if takes_env else target()
    if not callable(policy):
        raise ConfigError(
            f"policy factory '{spec}' returned {type(policy).__name__}, not a callable policy"
        )
    return policy  # type: ignore[no-any-return]
