"""`CEMStrategy`: the object the orchestrator runs for `townlet train --strategy cem`.

Glue only: check the environment, run the search (`training`), evaluate the mean policy on
fixed seeds (`rollout`), save it (`policy`) and report (`result`).
"""

from __future__ import annotations

from townlet_core import TrainingContext
from townlet_example_cem.config import CEMConfig
from townlet_example_cem.envs import make_env
from townlet_example_cem.policy import load_policy_vector, save_policy
from townlet_example_cem.result import CEMResultDTO
from townlet_example_cem.rollout import evaluate
from townlet_example_cem.training import evaluation_seeds, search

POLICY_FILE = "policy.npz"


class CEMStrategy:
    """Cross-entropy method on a linear policy for discrete-action Gymnasium tasks."""

    def prepare(self, context: TrainingContext, config: CEMConfig) -> None:
        """Fail before anything is written if the environment is unknown, its spaces do not
        fit, or the warm start is not a cem policy for them."""
        env, shape = make_env(config.env_id, config.max_episode_steps)
        env.close()
        if context.warm_start is not None:
            load_policy_vector(context.warm_start, shape)

    def run(self, context: TrainingContext, config: CEMConfig) -> CEMResultDTO:
        """Search, evaluate greedily, save `policy.npz` and return the result."""
        env, shape = make_env(config.env_id, config.max_episode_steps)
        try:
            outcome = search(env, shape, config, context)
            evaluation = evaluate(env, outcome.policy, evaluation_seeds(config.eval_episodes))
        finally:
            env.close()
        save_policy(
            context.artifact_path(POLICY_FILE),
            outcome.policy,
            std=outcome.std,
            env_id=config.env_id,
        )
        status_reason = None
        if config.target_return is not None and evaluation.mean < config.target_return:
            status_reason = (
                f"evaluation mean return {evaluation.mean:.6g} over {config.eval_episodes} "
                f"episodes is below target_return {config.target_return:.6g}"
            )
        return CEMResultDTO(
            **context.run_fields(device="cpu"),
            status="failed" if status_reason else "succeeded",
            status_reason=status_reason,
            checkpoint=POLICY_FILE,
            artifacts={"policy": POLICY_FILE},
            env_id=config.env_id,
            iterations_run=outcome.iterations_run,
            stopped_early=outcome.stopped_early,
            env_steps=outcome.env_steps,
            best_return=outcome.best_return,
            final_elite_mean_return=outcome.final_elite_mean_return,
            eval_episodes=config.eval_episodes,
            eval_mean_return=evaluation.mean,
            eval_std_return=evaluation.std,
            eval_min_return=evaluation.min,
            eval_max_return=evaluation.max,
            target_return=config.target_return,
        )
