"""The plugin contract: what a strategy author reads, in this order.

- `hookspecs`: the hooks: `townlet_register_strategies` (what a strategy plugin implements),
  `townlet_register_trackers` and the run hooks a tracker implements.
- `spec`: `StrategySpec`, the declaration of one strategy (its name, config model, what runs).
- `strategy`: the `TrainingStrategy` protocol a class-based factory returns.
- `context`: `TrainingContext`, what a run receives (seed, run directory, metrics, warm start,
  composition of other strategies by name through `context.run_strategy`).
- `tracker`: `TrackerSpec`, the declaration of one tracker (`townlet train --track NAME`).
- `townlet_core.dto`: the result DTOs a run returns (`TrainingResultDTO` and its `checkpoint`).

Everything here is torch-free and cheap to import.
"""
