"""The plugin contract: what a strategy author reads, in this order.

- `hookspecs`: the one hook a plugin module implements, `townlet_register_strategies`.
- `spec`: `StrategySpec`, the declaration of one strategy (its name, config model, what runs).
- `strategy`: the `TrainingStrategy` protocol a class-based factory returns.
- `context`: `TrainingContext`, what a run receives (seed, run directory, metrics, warm start,
  composition of other strategies by name through `context.run_strategy`).
- `townlet_core.dto`: the result DTOs a run returns (`TrainingResultDTO` and its `checkpoint`).

Everything here is torch-free and cheap to import.
"""
