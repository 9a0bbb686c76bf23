"""Entry point `townlet_core.strategies: anneal`. Torch-free, like all of anneal."""

from townlet_core import SpecCollector, StrategySpec, hookimpl


@hookimpl
def townlet_register_strategies(specs: SpecCollector) -> None:
    specs.add(
        StrategySpec(
            name="anneal",
            summary="A guarded schedule: BC warm start, PPO fine-tuning, PASS/HOLD/FAIL, promotion",
            config_model="townlet_strategies_anneal.config:AnnealConfig",
            prepare="townlet_strategies_anneal.schedule:prepare",
            run="townlet_strategies_anneal.schedule:run",
            after_commit="townlet_strategies_anneal.promotion:record_verdict",
            # `--nproc N`: every rank runs the schedule and judges alike; the stages train
            # data-parallel (each must support it), and rank 0 alone writes and records
            supports_distributed=True,
        )
    )
